"""The edit stage on a real face: zero edits are bit-identical, real edits stay in the face."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from plugin.demo import astronaut_image
from plugin.editing import EditStage
from synthesis.plan import FacePlan
from tracking.frame import Frame
from tracking.landmarker import Landmarker, LandmarkerConfig

#: A landmark moved by the edit must land this close to where it was asked (frame pixels),
#: re-read by the landmarker on the output.
WIDEN_PX = 8.0


@pytest.fixture(scope="module")
def face() -> tuple[np.ndarray, np.ndarray]:
    image = astronaut_image()
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        obs = lm.detect_image(image)
    assert len(obs) == 1
    return image, obs[0].landmarks


def widen_mouth(lm: np.ndarray, px: float) -> np.ndarray:
    """Move the mouth corners outward by ``px`` with a smooth falloff over the lips."""
    out = lm.copy()
    for corner, sign in ((61, -1.0), (291, 1.0)):
        d = np.linalg.norm(lm[:, :2] - lm[corner, :2], axis=1)
        w = np.exp(-0.5 * (d / 12.0) ** 2)
        out[:, 0] += sign * px * w
    return out


def plan(lm_before: np.ndarray, lm_after: np.ndarray, frames: int = 1) -> FacePlan:
    return FacePlan(
        track_id=0,
        frame_indices=np.arange(frames, dtype=np.int64),
        times=np.arange(frames, dtype=np.float64) / 25,
        segments=np.zeros(frames, dtype=np.int32),
        before=np.repeat(lm_before[None], frames, 0).astype(np.float32),
        after=np.repeat(lm_after[None], frames, 0).astype(np.float32),
    )


def test_zero_edit_leaves_the_frame_bit_identical(face) -> None:
    image, lm = face
    stage = EditStage([plan(lm, lm)], image.shape[:2])
    frame = Frame(0, 0, Fraction(1, 25), image)
    (out,) = stage.push(frame)
    assert np.array_equal(out.image, image)


def test_frames_outside_the_plan_pass_through(face) -> None:
    image, lm = face
    stage = EditStage([plan(lm, widen_mouth(lm, WIDEN_PX))], image.shape[:2])
    frame = Frame(5, 5, Fraction(1, 25), image)
    (out,) = stage.push(frame)
    assert out is frame


def test_mouth_edit_changes_only_the_face_and_lands_where_asked(face) -> None:
    image, lm = face
    after = widen_mouth(lm, WIDEN_PX)
    stage = EditStage([plan(lm, after)], image.shape[:2])
    (out,) = stage.push(Frame(0, 0, Fraction(1, 25), image))
    changed = np.any(out.image != image, axis=2)
    assert changed.sum() > 100
    ys, xs = np.nonzero(changed)
    x0, y0 = lm[:, :2].min(axis=0)
    x1, y1 = lm[:, :2].max(axis=0)
    # every changed pixel lies within the face's box grown by a quarter of its size
    pad = 0.25 * max(x1 - x0, y1 - y0)
    assert xs.min() >= x0 - pad and xs.max() <= x1 + pad and ys.min() >= y0 - pad and ys.max() <= y1 + pad
    with Landmarker(LandmarkerConfig(running_mode="image")) as landmarker:
        (reread,) = landmarker.detect_image(out.image)
    width_before = lm[291, 0] - lm[61, 0]
    width_after = reread.landmarks[291, 0] - reread.landmarks[61, 0]
    # asked for 2 * WIDEN_PX wider; the landmarker must see at least half of it
    assert width_after - width_before > WIDEN_PX
