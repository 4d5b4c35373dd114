"""The decoded video frame, the record every stage receives."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np
from numpy.typing import NDArray


@dataclass(frozen=True, eq=False)
class Frame:
    """One decoded video frame, in presentation order.

    Attributes:
        index: 0-based position of the frame in presentation order within its stream.
        pts: presentation timestamp in ``time_base`` units, exactly as the container stores it
            (``None`` only for streams that carry no timestamps, such as image sequences).
        time_base: the stream's time base in seconds per tick.
        image: ``(H, W, 3)`` uint8 RGB, display orientation (container rotation already applied).
        deep: the same picture as ``(H, W, 3)`` uint16 RGB (0..65535), from a source of more than
            8 bits a sample when the render pass asked the reader for it (``plugin.deep``); None
            otherwise. Stages read and write ``image`` only; the render pass's writer encodes
            ``deep`` with their changes added.
    """

    index: int
    pts: int | None
    time_base: Fraction
    image: NDArray[np.uint8]
    deep: NDArray[np.uint16] | None = None

    def __post_init__(self) -> None:
        img = self.image
        if img.ndim != 3 or img.shape[2] != 3 or img.dtype != np.uint8:
            raise ValueError(
                f"frame {self.index}: image must be (H, W, 3) uint8 RGB, got {img.shape} {img.dtype}"
            )
        deep = self.deep
        if deep is not None and (deep.shape != img.shape or deep.dtype != np.uint16):
            raise ValueError(f"frame {self.index}: deep must be {img.shape} uint16 RGB, got {deep.shape} {deep.dtype}")

    @property
    def time(self) -> float:
        """Presentation time in seconds (``index`` / 25 is never assumed: VFR is kept)."""
        if self.pts is None:
            return float("nan")
        return float(self.pts * self.time_base)

    @property
    def timestamp_ms(self) -> int:
        """Presentation time in whole milliseconds, rounded down (MediaPipe VIDEO mode input)."""
        if self.pts is None:
            raise ValueError(f"frame {self.index} has no pts")
        return int((self.pts * self.time_base * 1000) // 1)

    @property
    def height(self) -> int:
        return int(self.image.shape[0])

    @property
    def width(self) -> int:
        return int(self.image.shape[1])
