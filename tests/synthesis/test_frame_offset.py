"""synthesis.frame_offset: a swap a few frames early or late is told from its head's path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthesis.frame_offset import Offset, agreed_lag, frame_offset
from synthesis.regions import inter_ocular
from tracking.landmarker import Landmarker, LandmarkerConfig

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    import cv2

    image = cv2.cvtColor(cv2.imread(str(FIXTURES / "skimage_astronaut.png")), cv2.COLOR_BGR2RGB)
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        (found,) = lm.detect_image(image)
    return found.landmarks.astype(np.float64)


def moving(face: np.ndarray, path: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """(N, 478, 3) landmarks: the face shifted along ``path`` (N, 2), plus Gaussian noise (px)."""
    rng = np.random.default_rng(seed)
    out = np.repeat(face[None], len(path), 0)
    out[:, :, :2] += path[:, None, :] + rng.normal(0, noise, (len(path), 478, 2))
    return out


@pytest.mark.parametrize("lag", [-2, -1, 1, 3])
def test_a_shifted_swap_is_found_at_its_lag(face: np.ndarray, lag: int) -> None:
    rng = np.random.default_rng(1)
    n = 60
    path = np.cumsum(rng.normal(0, 2.0, (n + 10, 2)), axis=0)  # a head wandering ~2 px a frame
    frames = np.arange(n)
    plate = moving(face, path[5:5 + n], 0.3, 2)
    swap = moving(face, path[5 - lag:5 - lag + n], 0.3, 3)  # swap frame f + lag shows plate frame f
    off = frame_offset(frames, plate, frames, swap)
    assert off is not None and off.lag == lag and off.suspect
    assert off.mismatch < 0.5 * off.mismatch_at_zero


def test_aligned_still_or_steady_heads_are_not_suspected(face: np.ndarray) -> None:
    n = 60
    frames = np.arange(n)
    still = np.zeros((n + 2, 2))
    steady = np.stack([np.arange(n + 2) * 3.0, np.zeros(n + 2)], axis=1)  # the same path at every lag
    rng = np.random.default_rng(4)
    wander = np.cumsum(rng.normal(0, 2.0, (n + 2, 2)), axis=0)
    for path, shift in ((still, 2), (steady, 2), (wander, 0)):
        plate = moving(face, path[:n], 0.3, 5)
        swap = moving(face, path[shift:shift + n], 0.3, 6)  # two frames early: nothing to tell it by
        off = frame_offset(frames, plate, frames, swap)
        assert off is not None and not off.suspect
    # too few frames in common to tell
    assert frame_offset(frames[:5], plate[:5], frames[:5], swap[:5]) is None


def test_mismatch_is_in_inter_ocular_distances(face: np.ndarray) -> None:
    n = 30
    frames = np.arange(n)
    path = np.stack([np.arange(n) % 2 * 4.0, np.zeros(n)], axis=1)  # 4 px jumps, back and forth
    plate = moving(face, path, 0.0, 0)
    swap = moving(face, np.zeros((n, 2)), 0.0, 0)  # a swap that stays put
    off = frame_offset(frames, plate, frames, swap)
    assert off is not None
    assert off.mismatch_at_zero == pytest.approx(4.0 / inter_ocular(face), rel=1e-6)


def test_the_agreed_lag_needs_every_clear_face_to_agree() -> None:
    late = Offset(2, 0.0005, 0.004, True)
    lined_up = Offset(0, 0.003, 0.003, False)
    still = Offset(0, 0.0002, 0.0002, False)  # a still head: no lag to tell
    assert agreed_lag([late]) == 2
    assert agreed_lag([late, still]) == 2
    assert agreed_lag([late, Offset(-1, 0.0004, 0.004, True)]) is None  # faces disagree
    assert agreed_lag([late, lined_up]) is None  # as many faces read as lined up
    assert agreed_lag([late, late, lined_up]) == 2
    assert agreed_lag([lined_up, still]) is None and agreed_lag([]) is None
