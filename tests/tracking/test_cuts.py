"""Shot-cut detection on synthetic shots (motion, flash, cut) and on real fixture frames."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tracking.cuts import CutConfig, CutDetector, detect_cuts, frame_distance, frame_features
from tracking.frame import Frame

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
TB = Fraction(1, 25)


def first_frames(name: str, count: int) -> list[np.ndarray]:
    """The first ``count`` frames of fixture clip ``name``, RGB."""
    import av

    out = []
    with av.open(str(FIXTURES / name)) as c:
        for frame in c.decode(video=0):
            out.append(frame.to_ndarray(format="rgb24"))
            if len(out) == count:
                break
    return out


def _texture(seed: int, size: int = 400) -> np.ndarray:
    """A smooth random colour texture (H, W, 3) uint8."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (size // 20, size // 20, 3)).astype(np.float32)
    import cv2
    return cv2.resize(small, (size, size), interpolation=cv2.INTER_CUBIC).clip(0, 255).astype(np.uint8)


def _pan(texture: np.ndarray, count: int, speed: int, start: int = 0) -> list[np.ndarray]:
    """Frames of a 160x120 window panning across ``texture`` by ``speed`` pixels a frame."""
    return [np.ascontiguousarray(texture[40:160, start + speed * i:start + speed * i + 160]) for i in range(count)]


def _frames(images: list[np.ndarray]) -> list[Frame]:
    return [Frame(i, i, TB, img) for i, img in enumerate(images)]


def test_cut_between_panning_shots_is_found_at_its_frame() -> None:
    shot_a = _pan(_texture(1), 30, speed=3)
    shot_b = _pan(_texture(2), 30, speed=5)
    assert detect_cuts(_frames(shot_a + shot_b)) == [30]


def test_fast_motion_inside_a_shot_is_not_a_cut() -> None:
    images = _pan(_texture(3), 40, speed=6)
    assert detect_cuts(_frames(images)) == []


def test_a_flash_is_not_a_cut_but_a_cut_right_after_motion_is() -> None:
    images = _pan(_texture(4), 30, speed=2)
    images[15] = np.clip(images[15].astype(np.int16) + 120, 0, 255).astype(np.uint8)  # one-frame flash
    images += _pan(_texture(5), 20, speed=2)
    assert detect_cuts(_frames(images)) == [30]


def test_cuts_too_close_together_are_merged() -> None:
    images = _pan(_texture(6), 20, speed=2) + _pan(_texture(7), 2, speed=2) + _pan(_texture(8), 20, speed=2)
    cfg = CutConfig(min_shot_frames=6)
    assert detect_cuts(_frames(images), cfg) == [20]


def test_streaming_decisions_lag_by_one_frame() -> None:
    det = CutDetector()
    frames = _frames(_pan(_texture(9), 10, 2) + _pan(_texture(10), 10, 2))
    out = []
    for i, f in enumerate(frames):
        got = det.push(f)
        assert [d.frame_index for d in got] == ([i - 1] if i else [])
        out += got
    out += det.flush()
    assert [d.frame_index for d in out] == list(range(20))
    assert [d.frame_index for d in out if d.is_cut] == [10]
    assert det.latency == 1


def test_frame_distance_is_zero_for_equal_frames_and_symmetric() -> None:
    a, b = frame_features(_texture(11)), frame_features(_texture(12))
    assert frame_distance(a, a) == 0.0
    assert frame_distance(a, b) == pytest.approx(frame_distance(b, a))


@pytest.mark.skipif(not (FIXTURES / "liveportrait_d0.mp4").exists(), reason="shared fixtures not present")
def test_real_shots_joined_give_one_cut_at_the_join() -> None:
    talking = first_frames("retalking_face_1.mp4", 20)
    three_quarter = first_frames("pcavs_audio_source_00015.mp4", 20)
    import cv2
    three_quarter = [cv2.resize(f, (700, 700)) for f in three_quarter]
    assert detect_cuts(_frames(talking)) == []
    assert detect_cuts(_frames(talking + three_quarter)) == [20]
