"""Display orientation and YUV -> RGB conversion of decoded frames (see ``plugin/video.py``).

The display matrix (rotation, mirroring) is applied the way FFmpeg's own autorotation does, and
YUV is converted with the matrix and range the stream declares; an untagged stream is read as
BT.601, as FFmpeg itself assumes.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from av.sidedata.sidedata import Type as SideDataType
from av.video.reformatter import Colorspace, ColorRange, VideoReformatter
from numpy.typing import NDArray

from tracking.errors import InputError

# FFmpeg AVColorSpace codes -> swscale matrices. names as ffprobe prints them.
_MATRIX_BY_SPACE = {1: "bt709", 4: "fcc", 5: "bt601", 6: "bt601", 7: "smpte240m", 9: "bt2020", 10: "bt2020"}
_SWS_MATRIX = {
    "bt709": Colorspace.ITU709,
    "bt601": Colorspace.ITU601,
    "fcc": Colorspace.FCC,
    "smpte240m": Colorspace.SMPTE240M,
    "bt2020": Colorspace.BT2020,
}


def display_matrix(frame: av.VideoFrame) -> NDArray[np.int32] | None:
    try:
        data = frame.side_data.get(SideDataType.DISPLAYMATRIX)
    except (KeyError, ValueError):
        data = None
    if data is None:
        return None
    m = np.frombuffer(bytes(data), dtype=np.int32)
    return m if m.size == 9 else None


def orientation(m: NDArray[np.int32] | None, path: Path) -> tuple[int, bool, tuple[int, bool, bool]]:
    """Read a display matrix as (ccw rotation, mirrored, (rot90 k, flip rows, flip columns)).

    Follows FFmpeg's own autorotation (fftools ``get_rotation`` and its transpose/flip choice);
    the operations apply in that order with ``np.rot90`` (counter-clockwise for positive k).
    """
    if m is None:
        return 0, False, (0, False, False)
    a, b, c, d = (float(x) / 65536.0 for x in (m[0], m[1], m[3], m[4]))
    s0, s1 = np.hypot(a, c), np.hypot(b, d)
    if s0 == 0 or s1 == 0:
        return 0, False, (0, False, False)
    ccw = -float(np.degrees(np.arctan2(b / s1, a / s0)))  # av_display_rotation_get
    theta = float(-round(ccw))  # clockwise degrees to apply
    theta -= 360 * np.floor(theta / 360 + 0.9 / 360)
    if abs(theta - 90) < 1:
        ops = (1, True, False) if c > 0 else (-1, False, False)  # transpose / clockwise
    elif abs(theta - 180) < 1:
        ops = (0, d < 0, a < 0)
    elif abs(theta - 270) < 1:
        ops = (-1, True, False) if c < 0 else (1, False, False)  # anti-transpose / ccw
    elif abs(theta) < 1:
        ops = (0, d < 0, False)
    else:
        raise InputError(f"{path}: display rotation of {theta:.0f} degrees is not supported "
                         "(only multiples of 90)")
    return int(round(ccw)) % 360, bool(a * d - b * c < 0), (ops[0], bool(ops[1]), bool(ops[2]))


def orient(img: NDArray[np.uint8], ops: tuple[int, bool, bool]) -> NDArray[np.uint8]:
    k, flip_rows, flip_cols = ops
    if k:
        img = np.rot90(img, k)
    if flip_rows:
        img = img[::-1]
    if flip_cols:
        img = img[:, ::-1]
    return np.ascontiguousarray(img)


def resolve_colour(frame: av.VideoFrame) -> tuple[str, bool]:
    """The YUV matrix name and full-range flag to read this frame with."""
    fmt = frame.format
    if fmt.is_rgb or len(fmt.components) <= 2 or fmt.has_palette:
        return "rgb", True
    full = frame.color_range == 2 or fmt.name.startswith("yuvj")
    # Unspecified (or YCgCo, which swscale lacks): BT.601, as FFmpeg itself converts and as the
    # untagged files of face-swap tools (FFmpeg CLI pipes) were made.
    return _MATRIX_BY_SPACE.get(frame.colorspace, "bt601"), full


class RgbConverter:
    """Decoded frame -> display-oriented ``(H, W, 3)`` RGB, one swscale context reused: uint8
    (``"rgb24"``), or uint16 (``"rgb48le"``, 0..65535) for sources of more than 8 bits a sample."""

    def __init__(self, matrix: str, full_range: bool, ops: tuple[int, bool, bool], fmt: str = "rgb24") -> None:
        self.matrix, self.full_range, self.ops, self.fmt = matrix, full_range, ops, fmt
        self._sws = VideoReformatter()

    def __call__(self, frame: av.VideoFrame) -> NDArray[np.uint8] | NDArray[np.uint16]:
        if self.matrix == "rgb":
            out = self._sws.reformat(frame, format=self.fmt, threads=1)
        else:
            out = self._sws.reformat(
                frame,
                format=self.fmt,
                src_colorspace=_SWS_MATRIX[self.matrix],
                src_color_range=ColorRange.JPEG if self.full_range else ColorRange.MPEG,
                dst_color_range=ColorRange.JPEG,
                threads=1,
            )
        return orient(out.to_ndarray(format=self.fmt), self.ops)
