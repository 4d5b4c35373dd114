"""Frame ranges as users write them: ``A-B`` (0-based frame indices, both inclusive)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from tracking.errors import ConfigError

_RANGE = re.compile(r"^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$")


@dataclass(frozen=True)
class FrameRange:
    """An inclusive range of 0-based frame indices in presentation order."""

    start: int
    end: int

    def __post_init__(self) -> None:
        if self.start < 0 or self.end < self.start:
            raise ConfigError(f"frame range {self.start}-{self.end} is empty or negative")

    def __contains__(self, index: object) -> bool:
        return isinstance(index, int) and self.start <= index <= self.end

    def __len__(self) -> int:
        return self.end - self.start + 1

    def __str__(self) -> str:
        return f"{self.start}-{self.end}"

    @classmethod
    def parse(cls, text: str) -> FrameRange:
        """Parse ``"A-B"`` or a single frame ``"A"``.

        Raises:
            ConfigError: the text is not a range of non-negative integers.
        """
        m = _RANGE.match(text)
        if m is None:
            raise ConfigError(f"frame range {text!r} is not of the form A-B (0-based frame indices)")
        start = int(m.group(1))
        end = int(m.group(2)) if m.group(2) is not None else start
        return cls(start, end)

    def check_within(self, num_frames: int, what: str) -> None:
        """Raise ConfigError unless the range lies inside a clip of ``num_frames`` frames."""
        if self.end >= num_frames:
            raise ConfigError(
                f"frame range {self} is outside {what}, which has {num_frames} frames (0-{num_frames - 1})"
            )
