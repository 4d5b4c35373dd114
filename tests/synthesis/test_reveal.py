"""synthesis.reveal: a turn toward the camera is kept to the skin the frame shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from synthesis.controls import control
from synthesis.plan import REVEAL_LABEL, PlanConfig, plan_track
from synthesis.reveal import MAX_HIDDEN_SHARE, hidden_share, limited_gain
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from tracking.geometry import canonical_mesh
from tracking.landmarker import Landmarker, LandmarkerConfig

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
PACKAGED_ASTRONAUT = Path(__file__).resolve().parents[2] / "plugin" / "data" / "astronaut.png"


def _canonical_face(yaw_deg: float) -> np.ndarray:
    """The canonical mesh turned by ``yaw_deg`` about the vertical axis, seen orthographically:
    (478, 3) pixels, MediaPipe's z (nearer is smaller); the iris rows copy the nose tip."""
    v = canonical_mesh().vertices[:468].astype(np.float64)
    a = np.radians(yaw_deg)
    rot = np.array([[np.cos(a), 0.0, np.sin(a)], [0.0, 1.0, 0.0], [-np.sin(a), 0.0, np.cos(a)]])
    w = v @ rot.T
    lm = np.stack([300 + 20 * w[:, 0], 300 - 20 * w[:, 1], -20 * w[:, 2]], axis=1)
    return np.concatenate([lm, np.repeat(lm[[1]], 10, axis=0)])


def test_turning_a_frontal_face_shows_nothing_hidden_and_a_turned_face_shows_its_far_cheek() -> None:
    front = _canonical_face(0.0)
    assert hidden_share(front, front) < 0.002  # edge pixels only
    for turn in (-10.0, 10.0):
        assert hidden_share(front, _canonical_face(turn)) < MAX_HIDDEN_SHARE / 2
    turned = _canonical_face(-40.0)
    back = hidden_share(turned, _canonical_face(-30.0))
    assert back > 1.25 * MAX_HIDDEN_SHARE  # the cheek behind the nose comes into view
    assert hidden_share(turned, _canonical_face(-50.0)) < 0.002  # turning further away hides more
    assert hidden_share(turned, _canonical_face(-35.0)) < back  # half the turn, less of it


def test_the_limited_gain_keeps_the_turn_within_the_limit() -> None:
    turned = _canonical_face(-40.0)

    def edited(g: float) -> np.ndarray:
        return _canonical_face(-40.0 + 10.0 * g)

    gain = limited_gain(turned, edited)
    assert 0.1 < gain < 1.0
    assert hidden_share(turned, edited(gain)) <= MAX_HIDDEN_SHARE
    assert hidden_share(turned, edited(min(gain + 0.1, 1.0))) > MAX_HIDDEN_SHARE
    assert limited_gain(turned, edited, limit=0.0) == 1.0  # no limit
    assert limited_gain(_canonical_face(0.0), lambda g: _canonical_face(10.0 * g)) == 1.0


def _still_landmarks(path: Path) -> np.ndarray:
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        (face,) = lm.detect_image(image)
    return face.landmarks.astype(np.float32)


def _plan_yaw(landmarks: np.ndarray, degrees: float, config: PlanConfig | None = None):
    n = 5
    frames = np.arange(n, dtype=np.int64)
    lm = np.repeat(landmarks[None], n, axis=0)
    schedule = EditSchedule((EditEntry(0, "head_yaw", StrengthCurve.constant(degrees)),))
    return plan_track(0, frames, frames / 25.0, np.zeros(n, np.int32), lm, np.zeros((n, 52), np.float32),
                      np.ones(n), schedule, {"head_yaw": control("head_yaw")}, config)


def test_a_turn_of_a_three_quarter_face_toward_the_camera_is_limited_and_reported() -> None:
    # AFLW2000 image04331: a woman turned about 45 degrees toward image left, glasses on. A
    # 10-degree turn toward the camera brings her far cheek out from behind her nose.
    lm = _still_landmarks(FIXTURES / "aflw2000_image04331.jpg")
    toward = _plan_yaw(lm, 10.0)
    (event,) = [e for e in toward.events if e.delta == REVEAL_LABEL]
    assert event.requested == pytest.approx(10.0) and 2.0 < event.applied < 9.0
    assert (event.first_frame, event.last_frame) == (0, 4)
    assert np.allclose(toward.strengths["head_yaw"], event.applied, atol=1e-6)
    # what the turn adds to the frame's own reading (its rasterization's edge slivers)
    start = hidden_share(lm, lm)
    assert start < 0.1 * MAX_HIDDEN_SHARE
    assert hidden_share(lm, toward.after[2]) <= start + MAX_HIDDEN_SHARE
    unlimited = _plan_yaw(lm, 10.0, PlanConfig(max_hidden_share=0.0))
    assert hidden_share(lm, unlimited.after[2]) > 1.25 * MAX_HIDDEN_SHARE
    assert not [e for e in unlimited.events if e.delta == REVEAL_LABEL]
    away = _plan_yaw(lm, -10.0)  # toward profile: nothing hidden comes into view
    assert not [e for e in away.events if e.delta == REVEAL_LABEL]
    assert np.allclose(away.strengths["head_yaw"], -10.0)


def test_a_frontal_face_keeps_its_whole_turn() -> None:
    path = FIXTURES / "skimage_astronaut.png"
    lm = _still_landmarks(path if path.exists() else PACKAGED_ASTRONAUT)
    for degrees in (-10.0, 10.0):
        plan = _plan_yaw(lm, degrees)
        assert not [e for e in plan.events if e.delta == REVEAL_LABEL]
        assert np.allclose(plan.strengths["head_yaw"], degrees)


def test_hidden_points_are_the_ones_a_nearer_part_covers() -> None:
    from synthesis import regions as rg
    from synthesis.reveal import hidden_points

    assert not hidden_points(_canonical_face(0.0)).any()  # frontal: nothing folds over
    turned = hidden_points(_canonical_face(-40.0))
    v = canonical_mesh().vertices[:468]
    # the face turned toward image left (its own right): what hides is its right cheek, behind the
    # nose (and, in the canonical mesh, an inner mouth corner behind the lips)
    assert turned.sum() > 20 and np.mean(v[turned, 0] < 0) > 0.9
    assert not turned[list(rg.LEFT_EYE)].any()  # the near eye (the far nose wing may hide)
    assert hidden_points(_canonical_face(-40.0)[:, [0, 1, 2]]).sum() == turned.sum()
