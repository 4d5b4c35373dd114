"""A face turned three quarters away: the warp is steered by the points the frame shows."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from compositing.crop import crop_for_landmarks
from plugin import editing
from plugin.editing import RenderConfig, face_field, to_crop, warp_points
from synthesis import regions as rg
from synthesis.controls import control
from synthesis.plan import PlanConfig, plan_track
from synthesis.reveal import hidden_points
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from synthesis.warpfield import field_at
from tracking.landmarker import Landmarker, LandmarkerConfig

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
#: Where the field sends a seen nose point, against where the plan says it comes from (crop px).
NOSE_TOL_PX = 1.0


def _aflw_turn(degrees: float) -> tuple[np.ndarray, np.ndarray]:
    image = cv2.cvtColor(cv2.imread(str(FIXTURES / "aflw2000_image04331.jpg")), cv2.COLOR_BGR2RGB)
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        (face,) = lm.detect_image(image)
    n = 3
    frames = np.arange(n, dtype=np.int64)
    schedule = EditSchedule((EditEntry(0, "head_yaw", StrengthCurve.constant(degrees)),))
    plan = plan_track(0, frames, frames / 25.0, np.zeros(n, np.int32),
                      np.repeat(face.landmarks[None].astype(np.float32), n, 0), np.zeros((n, 52), np.float32),
                      np.ones(n), schedule, {"head_yaw": control("head_yaw")}, PlanConfig(max_hidden_share=0.0))
    return plan.before[1].astype(np.float64), plan.after[1].astype(np.float64)


def test_points_behind_the_nose_do_not_drag_the_nose(monkeypatch) -> None:
    # AFLW2000 image04331, turned about 45 degrees: 10 degrees back toward the camera. The far
    # cheek's points behind the nose move as the cheek does; steering by them pulled the seen
    # nose 4.4 px off its planned motion (and smeared the background into the cheek's outline).
    before, after = _aflw_turn(10.0)
    hidden = hidden_points(before)
    assert hidden.sum() > 20
    idx = warp_points(before, after)
    assert not np.isin(idx, np.flatnonzero(hidden)).any()
    assert np.isin(np.flatnonzero(~hidden), idx).all()
    assert warp_points(before[:, :2], after[:, :2]).size >= 468  # 2-D landmarks: every mesh point

    crop = crop_for_landmarks(np.concatenate([before, after]), (450, 450), None)
    nose = np.intersect1d(np.flatnonzero(~hidden), rg.NOSE)

    def nose_error() -> float:
        field = face_field(before, after, crop, RenderConfig())
        return float(np.linalg.norm(field_at(field, to_crop(after[nose], crop)) - to_crop(before[nose], crop),
                                    axis=1).max())

    assert nose_error() < NOSE_TOL_PX
    monkeypatch.setattr(editing, "hidden_points", lambda lm: np.zeros(468, bool))
    assert nose_error() > 2 * NOSE_TOL_PX  # the same field steered by every point
