"""Sources of more than 8 bits a sample: what the stages did not change keeps the source's precision.

Stages work on 8-bit RGB (``Frame.image``). When the source has more than 8 bits a sample (a
10-bit ProRes or HEVC master) and the output can hold more (ProRes 422 HQ is 10-bit; FFV1 is
then written as 16-bit planar RGB), the render pass asks the reader for each frame as 16-bit RGB
too (``Frame.deep``) and the writer encodes that, with the stages' change added where they
changed the frame: ``deep + 257 (after - before)`` over the box the 8-bit images differ in,
clipped to 0..65535. A pixel the stages did not touch is encoded from the source's own samples;
an edited one keeps the source's fine gradation under the edit's change (a feathered mask edge
does not turn into 8-bit steps).

Everything else (H.264, which is written 8-bit, and PNG folders) renders 8-bit as before, and the
writer says what precision is lost.
"""

from __future__ import annotations

import dataclasses

import av
import numpy as np
from numpy.typing import NDArray

from tracking.frame import Frame

#: Output pixel format of a codec when the source has more than 8 bits a sample and none was
#: asked for (the 8-bit default would throw the extra bits away): lossless 16-bit planar RGB.
DEEP_PIX_FMT = {"ffv1": "gbrp16le"}


def bits(pix_fmt: str) -> int:
    """Bits a sample of ``pix_fmt``'s first component."""
    return int(av.video.format.VideoFormat(pix_fmt).components[0].bits)


def merge(deep: NDArray[np.uint16], before: NDArray[np.uint8], after: NDArray[np.uint8]) -> NDArray[np.uint16]:
    """``deep`` with the change from ``before`` to ``after`` (8-bit, same shape) added, x 257, in
    place (over the box where the two differ only) and returned."""
    if after is before:
        return deep
    differ = after != before
    rows = np.flatnonzero(differ.any(axis=(1, 2)))
    if rows.size == 0:
        return deep
    y0, y1 = int(rows[0]), int(rows[-1]) + 1
    cols = np.flatnonzero(differ[y0:y1].any(axis=(0, 2)))
    x0, x1 = int(cols[0]), int(cols[-1]) + 1
    change = after[y0:y1, x0:x1].astype(np.int32) - before[y0:y1, x0:x1]
    deep[y0:y1, x0:x1] = np.clip(deep[y0:y1, x0:x1] + 257 * change, 0, 65535)
    return deep


class DeepSources:
    """Frames read with a 16-bit image, by index, until what the stages made of them is written
    (the render pass and a partial re-render; the stages return new frames without it)."""

    def __init__(self) -> None:
        self._by_index: dict[int, Frame] = {}

    def keep(self, frame: Frame) -> Frame:
        """Remember ``frame`` when it has a 16-bit image; returns it."""
        if frame.deep is not None:
            self._by_index[frame.index] = frame
        return frame

    def carry(self, out: Frame) -> Frame:
        """``out`` (what the stages made of a kept frame) with that frame's 16-bit image, the
        stages' change added (:func:`merge`; the kept image is changed in place, and forgotten).
        ``out`` itself when its source had no 16-bit image."""
        source = self._by_index.pop(out.index, None)
        if source is None:
            return out
        assert source.deep is not None  # only such frames are kept
        return dataclasses.replace(out, deep=merge(source.deep, source.image, out.image))
