"""Stage light is not a shot cut: flashes, strobes and light changes on real footage.

A flash that decays over a few frames, a strobe, or a light cue (the key light turning magenta)
changes every pixel's level but not the picture's structure. Taking such a frame for a cut resets
tracking and smoothing at every flash (``bench/robustness.py``, case ``stage_strobe``: a cut
every 6 frames before this test). Real cuts between the fixture shots must still be found.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tracking.cuts import detect_cuts
from tracking.frame import Frame

from tests.tracking.test_cuts import first_frames

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
pytestmark = pytest.mark.skipif(not (FIXTURES / "liveportrait_d0.mp4").exists(), reason="shared fixtures not present")


def _frames(images: list[np.ndarray]) -> list[Frame]:
    return [Frame(i, i, Fraction(1, 25), img) for i, img in enumerate(images)]


def _light(img: np.ndarray, gain: np.ndarray | float, offset: np.ndarray | float) -> np.ndarray:
    return np.clip(img.astype(np.float32) * gain + offset, 0, 255).astype(np.uint8)


def test_a_strobe_with_a_decaying_flash_is_not_a_cut() -> None:
    shot = first_frames("liveportrait_d0.mp4", 36)
    # every 6th frame a flash (clipped highlights), the next frame still half lit
    lit = [_light(f, 2.2, 70) if i % 6 == 0 else _light(f, 1.4, 20) if i % 6 == 1 else f
           for i, f in enumerate(shot)]
    assert detect_cuts(_frames(lit)) == []


def test_a_light_cue_is_not_a_cut_but_a_cut_under_the_same_light_is() -> None:
    talking = first_frames("retalking_face_1.mp4", 24)
    other = first_frames("pcavs_audio_source_00015.mp4", 12)
    import cv2

    other = [cv2.resize(f, talking[0].shape[1::-1]) for f in other]
    magenta = (np.array([1.35, 0.55, 1.45], np.float32), np.array([25, 0, 35], np.float32))
    # the key light turns magenta at frame 12 and stays; a cut to another shot (same light) at 24
    images = talking[:12] + [_light(f, *magenta) for f in talking[12:]] + [_light(f, *magenta) for f in other]
    assert detect_cuts(_frames(images)) == [24]


def test_a_cut_between_two_pillarboxed_shots_is_found() -> None:
    """Letterboxed shots share their black bars: the structure test must look inside them."""
    a = first_frames("liveportrait_d0.mp4", 12)
    b = first_frames("retalking_face_1.mp4", 12)
    import cv2

    def boxed(img: np.ndarray) -> np.ndarray:
        canvas = np.zeros((720, 1280, 3), np.uint8)
        canvas[:, 280:1000] = cv2.resize(img, (720, 720))
        return canvas

    assert detect_cuts(_frames([boxed(f) for f in a + b])) == [12]
