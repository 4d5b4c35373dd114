from __future__ import annotations

import pytest

from plugin.ranges import FrameRange
from tracking.errors import ConfigError


def test_parse_range_and_single_frame() -> None:
    assert FrameRange.parse("10-20") == FrameRange(10, 20)
    assert FrameRange.parse(" 7 ") == FrameRange(7, 7)
    assert len(FrameRange.parse("10-20")) == 11
    assert 10 in FrameRange(10, 20) and 20 in FrameRange(10, 20) and 21 not in FrameRange(10, 20)


@pytest.mark.parametrize("text", ["", "a-b", "5-3", "-3", "1-2-3", "1.5-4"])
def test_bad_ranges_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        FrameRange.parse(text)


def test_range_outside_clip_is_rejected() -> None:
    FrameRange(0, 9).check_within(10, "clip.mp4")
    with pytest.raises(ConfigError, match="clip.mp4"):
        FrameRange(5, 10).check_within(10, "clip.mp4")
