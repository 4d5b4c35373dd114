"""Applying deltas in code space (identity untouched, pose changes achieved) and delta files."""

from __future__ import annotations

import json
import math
from pathlib import Path

import cv2
import numpy as np
import pytest

from synthesis.codespace import FLIP, invert_single, render_code
from synthesis.controls import control, named_controls
from synthesis.deltas import (
    FORMAT,
    MAX_FILE_BYTES,
    Delta,
    apply_delta,
    apply_deltas,
    delta_to_document,
    identity_change,
    load_delta,
    pivot,
    save_delta,
)
from synthesis.regions import EYES, inter_ocular, lid_clearance
from tracking.errors import ConfigError, InputError
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.pose import euler_from_matrix, matrix_from_euler

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
PACKAGED_ASTRONAUT = Path(__file__).resolve().parents[2] / "plugin" / "data" / "astronaut.png"

#: Requested rotation read back from the code (euler_from_matrix of the edited rotation).
ANGLE_TOL_DEG = 1e-6
#: Re-inverting the rendered landmarks (a Procrustes reader on the 2-D + depth points) finds
#: the requested change within this.
REFIT_ANGLE_TOL_DEG = 0.05
#: Points land where a rigid turn about the pivot puts them, to float rounding.
POINT_TOL_PX = 1e-6
#: Identity change outside an edit's region, fraction of inter-ocular distance.
IDENTITY_TOL = 0.01
#: A closed eye: upper lid points within this of the lower lid line (inter-ocular units; the
#: lids meet on a line that the lower lid's polyline follows to within its interpolation).
CLOSED_TOL = 0.002
#: File numbers are rounded to 1e-5.
FILE_TOL = 1e-5


@pytest.fixture(scope="module")
def astronaut_landmarks() -> np.ndarray:
    path = FIXTURES / "skimage_astronaut.png"
    path = path if path.exists() else PACKAGED_ASTRONAUT
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        faces = lm.detect_image(image)
    assert len(faces) == 1
    return faces[0].landmarks.astype(np.float64)


def _turn_about(points: np.ndarray, centre: np.ndarray, rot_cam: np.ndarray) -> np.ndarray:
    """Rotate pixel-space 3-D points about a pixel-space centre by a camera-space rotation."""
    m = FLIP @ rot_cam @ FLIP
    return (points - centre) @ m.T + centre


@pytest.mark.parametrize("axis", [0, 1, 2])
@pytest.mark.parametrize("angle", [-15.0, -10.0, -5.0, 5.0, 10.0, 15.0])
def test_pose_delta_is_achieved_in_code_space(astronaut_landmarks: np.ndarray, axis: int, angle: float) -> None:
    identity, code = invert_single(astronaut_landmarks)
    name = ("head_yaw", "head_pitch", "head_roll")[axis]
    edited = apply_delta(code, identity, control(name), angle)
    before = np.array(euler_from_matrix(code.pose.rotation))
    after = np.array(euler_from_matrix(edited.pose.rotation))
    want = np.zeros(3)
    want[axis] = angle
    assert np.abs(after - before - want).max() < ANGLE_TOL_DEG
    # identity and expression untouched: the edit is a rigid turn of the same shape ...
    assert np.array_equal(edited.expression, code.expression)
    out = render_code(identity, edited)
    assert identity_change(astronaut_landmarks, out).max < 1e-9
    # ... about the pivot, which stays where it was in the image ...
    piv = pivot(identity)
    p0 = code.pose.to_pixels(piv[None])[0]
    assert np.abs(edited.pose.to_pixels(piv[None])[0] - p0).max() < POINT_TOL_PX
    # ... and every point lands where that rigid turn of the tracked 3-D landmarks puts it
    turn = edited.pose.rotation @ code.pose.rotation.T
    assert np.abs(out - _turn_about(astronaut_landmarks, p0, turn)).max() < POINT_TOL_PX
    # a fresh Procrustes fit of the rendered landmarks reads the requested change back
    _, refit = invert_single(out)
    got = np.array(euler_from_matrix(refit.pose.rotation)) - before
    assert np.abs(got - want).max() < REFIT_ANGLE_TOL_DEG


def test_pose_signs_move_points_the_documented_way(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    nose = astronaut_landmarks[4]

    def moved(name: str, strength: float) -> np.ndarray:
        return render_code(identity, apply_delta(code, identity, control(name), strength))

    assert moved("head_yaw", 8.0)[4, 0] > nose[0] + 1.0  # toward image right
    assert moved("head_pitch", 6.0)[4, 1] < nose[1] - 1.0  # up (y down)
    rolled = moved("head_roll", 10.0)
    eye_line = lambda p: math.atan2(p[263, 1] - p[33, 1], p[263, 0] - p[33, 0])  # noqa: E731
    assert math.degrees(eye_line(rolled) - eye_line(astronaut_landmarks)) == pytest.approx(10.0, abs=1.5)  # clockwise


def test_pivot_is_at_the_outline_depth(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    p = code.pose.to_pixels(pivot(identity)[None])[0]
    iod = inter_ocular(astronaut_landmarks)
    behind = (p[2] - astronaut_landmarks[4, 2]) / iod  # z grows away from the camera
    assert 0.8 < behind < 1.8  # FACTS.md: about 1.2 inter-ocular distances behind the nose
    assert abs(p[0] - (astronaut_landmarks[234, 0] + astronaut_landmarks[454, 0]) / 2) < 0.05 * iod


def test_expression_delta_leaves_identity_and_outside_points(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    kept = identity.shape.copy()
    for name, delta in named_controls().items():
        if delta.kind != "expression":
            continue
        edited = apply_delta(code, identity, delta, delta.max_strength)
        assert np.array_equal(identity.shape, kept), name
        assert edited.pose is code.pose, name
        out = render_code(identity, edited)
        assert np.abs(out - astronaut_landmarks).max() > 0.5, f"{name} did nothing"
        change = identity_change(astronaut_landmarks, out, delta.region)
        assert change.rms < IDENTITY_TOL and change.max < IDENTITY_TOL, (name, change)


def test_zero_strength_returns_the_code_unchanged(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    assert apply_delta(code, identity, control("smile"), 0.0) is code
    assert apply_deltas(code, identity, []) is code


def test_combined_deltas_sum_displacements_and_rotations(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    smile, brow = control("smile"), control("brow_raise")
    both = apply_deltas(
        code, identity, [(smile, 0.5), (brow, 0.7), (control("head_yaw"), 6.0), (control("head_pitch"), -4.0)]
    )
    one = apply_delta(code, identity, smile, 0.5).expression - code.expression
    two = apply_delta(code, identity, brow, 0.7).expression - code.expression
    assert np.abs(both.expression - code.expression - one - two).max() < 1e-12
    y0, p0, r0 = euler_from_matrix(code.pose.rotation)
    assert np.allclose(euler_from_matrix(both.pose.rotation), (y0 + 6.0, p0 - 4.0, r0), atol=ANGLE_TOL_DEG)
    assert np.allclose(both.pose.rotation, matrix_from_euler(y0 + 6.0, p0 - 4.0, r0))


def test_blink_closes_any_eye_and_lids_never_cross(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    iod = identity.inter_ocular
    for start in (0.0, 0.4):  # an open eye, and one already partly closed by a squint
        base = apply_delta(code, identity, control("squint"), start)
        closed = apply_delta(base, identity, control("blink_left"), 1.0)
        shape = identity.shape + closed.expression
        assert np.abs(lid_clearance(shape, "left")).max() / iod < CLOSED_TOL
        assert lid_clearance(shape, "right").max() / iod > 0.1  # the other eye stays open
    for strength in (1.5, 3.0):
        over = apply_deltas(code, identity, [(control("blink_left"), strength), (control("squint"), strength)])
        for side in EYES:
            assert lid_clearance(identity.shape + over.expression, side).min() >= -1e-12


def test_gaze_keeps_iris_points_inside_the_eye(astronaut_landmarks: np.ndarray) -> None:
    identity, code = invert_single(astronaut_landmarks)
    for strength in (1.0, 4.0, -4.0):
        shape = identity.shape + apply_delta(code, identity, control("gaze_x"), strength).expression
        for upper, lower, iris in EYES.values():
            centre = shape[iris[0]]
            up = np.interp(centre[0], *shape[list(upper)][np.argsort(shape[list(upper), 0])][:, :2].T)
            lo = np.interp(centre[0], *shape[list(lower)][np.argsort(shape[list(lower), 0])][:, :2].T)
            assert lo < centre[1] < up
            xs = shape[[upper[0], upper[-1]], 0]
            assert xs.min() < centre[0] < xs.max()


# --- files -------------------------------------------------------------------------------------


def _random_delta() -> Delta:
    rng = np.random.default_rng(3)
    region = np.clip(rng.random(478), 0.0, 1.0)
    bs = np.zeros(52, np.float32)
    bs[[9, 25]] = (0.3, -0.2)
    return Delta(
        name="learned.wink-1",
        kind="mixed",
        displacement=rng.normal(0.0, 0.05, (478, 3)) * region[:, None],
        pose=np.array([2.5, -1.0, 0.25]),
        region=region,
        blendshapes=bs,
        max_strength=0.8,
        description="a test delta with \"quotes\" and ünïcode",
        provenance={"source": "test", "pairs": 3, "min_cosine": 0.91, "synthetic": True},
        lids={"right": (0.1, 0.5)},
    )


@pytest.mark.parametrize("name", ["random", *named_controls()])
def test_delta_files_round_trip(tmp_path: Path, name: str) -> None:
    delta = _random_delta() if name == "random" else control(name)
    path = tmp_path / f"{delta.name}.json"
    save_delta(path, delta)
    assert path.stat().st_size < 64 * 1024
    back = load_delta(path)
    for field in ("name", "kind", "description", "provenance", "max_strength", "lids"):
        assert getattr(back, field) == getattr(delta, field), field
    for field in ("displacement", "pose", "region", "blendshapes"):
        assert np.abs(getattr(back, field) - getattr(delta, field)).max() <= FILE_TOL, field
    doc = json.loads(path.read_text(encoding="utf-8"))
    assert doc["format"] == FORMAT and doc["version"] == 1


def _write(path: Path, doc: object) -> Path:
    path.write_text(json.dumps(doc), encoding="utf-8")
    return path


def _bad_documents() -> dict[str, object]:
    good = delta_to_document(control("smile"))
    cases: dict[str, object] = {"not_an_object": [1, 2, 3]}
    cases["wrong_format"] = {**good, "format": "something-else"}
    cases["newer_version"] = {**good, "version": 2}
    cases["bool_version"] = {**good, "version": True}
    cases["short_displacement"] = {**good, "displacement": good["displacement"][:100]}
    cases["flat_displacement"] = {**good, "displacement": [0.0] * (478 * 3)}
    cases["region_out_of_range"] = {**good, "region": [2.0] * 478}
    cases["unknown_blendshape"] = {**good, "blendshapes": {"eyeBlinkMiddle": 0.3}}
    cases["bad_kind"] = {**good, "kind": "identity"}
    cases["bad_name"] = {**good, "name": "../../etc/passwd"}
    cases["missing_region"] = {k: v for k, v in good.items() if k != "region"}
    cases["huge_displacement"] = {**good, "displacement": [[100.0, 0.0, 0.0]] * 478}
    cases["bad_lids"] = {**good, "lids": {"middle": [0.0, 1.0]}}
    cases["string_pose"] = {**good, "pose": "turn left"}
    return cases


@pytest.mark.parametrize("case", list(_bad_documents()))
def test_bad_delta_files_are_refused_with_a_one_line_error(tmp_path: Path, case: str) -> None:
    path = _write(tmp_path / f"{case}.json", _bad_documents()[case])
    with pytest.raises(InputError) as info:
        load_delta(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message


def test_nan_garbage_and_huge_files_are_refused(tmp_path: Path) -> None:
    doc = delta_to_document(control("smile"))
    doc["displacement"][5][1] = float("nan")
    text = json.dumps(doc)
    assert "NaN" in text
    cases = {
        "nan.json": text.encode(),
        "garbage.json": b"\x80\x81 not json",
        "pickle.json": b"\x80\x04\x95\x10\x00\x00\x00\x00\x00\x00\x00}\x94.",
        "huge.json": b" " * (MAX_FILE_BYTES + 1),
    }
    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputError) as info:
            load_delta(path)
        assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(InputError):
        load_delta(tmp_path / "missing.json")


def test_delta_records_are_validated() -> None:
    zeros = np.zeros((478, 3))
    with pytest.raises(ValueError):
        Delta("x", "expression", zeros, region=np.full(478, 1.5))
    with pytest.raises(ValueError):
        Delta("x", "warp", zeros)
    with pytest.raises(ValueError):
        Delta("x", "expression", np.full((478, 3), np.nan))
    with pytest.raises(ValueError):
        Delta("has space", "expression", zeros)
    with pytest.raises(ValueError):
        Delta("x", "expression", zeros, lids={"left": (0.0, 2.0)})
    d = Delta("x", "expression", zeros)
    with pytest.raises(ValueError):
        d.displacement[0, 0] = 1.0


@pytest.mark.parametrize("strength, limited", [(0.3, False), (4.0, True)])
def test_plan_records_where_the_eye_opening_cut_a_gaze_short(astronaut_landmarks: np.ndarray, strength: float,
                                                              limited: bool) -> None:
    from synthesis.plan import IRIS_KEPT_EVENT, IRIS_LIMIT_LABEL, PlanConfig, plan_track
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve

    n = 6
    frames = np.arange(n, dtype=np.int64)
    lm = np.repeat(astronaut_landmarks[None], n, 0).astype(np.float32)
    schedule = EditSchedule((EditEntry(0, "gaze_x", StrengthCurve.constant(strength)),))
    plan = plan_track(0, frames, frames / 25.0, np.zeros(n, np.int32), lm, np.zeros((n, 52), np.float32),
                      np.ones(n), schedule, {"gaze_x": control("gaze_x")}, PlanConfig(clamp_to_range=False))
    events = [e for e in plan.events if e.delta == IRIS_LIMIT_LABEL]
    if not limited:
        assert events == []
        return
    (event,) = events
    assert (event.first_frame, event.last_frame) == (0, n - 1)
    assert event.requested == pytest.approx(strength * np.linalg.norm(control("gaze_x").displacement[468, :2]))
    assert 0 < event.applied < IRIS_KEPT_EVENT * event.requested


def test_seen_weight_is_zero_where_the_face_was_not_seen_and_eases_back() -> None:
    from synthesis.plan import seen_weight

    frames = np.arange(30, dtype=np.int64)
    unseen = np.zeros(30, bool)
    unseen[[12, 13, 14, 20]] = True
    w = seen_weight(frames, unseen, ramp=4)
    assert np.all(w[unseen] == 0)
    assert np.all(w[:8] == 1) and np.all(w[25:] == 1)  # 5 frames or more from every unseen frame
    assert np.all((w[8:12] > 0) & (w[8:12] < 1)) and np.all(np.diff(w[8:12]) < 0)
    assert np.all((w[15:20] > 0) & (w[15:20] < 1))
    assert np.all(seen_weight(frames, np.zeros(30, bool), ramp=4) == 1)
    hard = seen_weight(frames, unseen, ramp=0)
    assert np.array_equal(hard, (~unseen).astype(float))


@pytest.mark.parametrize("edit_unseen", [False, True])
def test_frames_where_the_face_was_not_seen_are_left_out_of_the_plan(astronaut_landmarks: np.ndarray,
                                                                     edit_unseen: bool) -> None:
    from synthesis.plan import UNSEEN_LABEL, PlanConfig, plan_track
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve

    n = 24
    frames = np.arange(n, dtype=np.int64) + 100
    lm = np.repeat(astronaut_landmarks[None], n, 0).astype(np.float32)
    confidence = np.ones(n)
    confidence[10:13] = 0.0  # bridged: the tracker did not see the face on frames 110-112
    schedule = EditSchedule((EditEntry(0, "smile", StrengthCurve.constant(0.5)),
                             EditEntry(0, "head_yaw", StrengthCurve.constant(6.0))))
    deltas = {"smile": control("smile"), "head_yaw": control("head_yaw")}
    plan = plan_track(0, frames, frames / 25.0, np.zeros(n, np.int32), lm, np.zeros((n, 52), np.float32),
                      confidence, schedule, deltas, PlanConfig(edit_unseen=edit_unseen))
    events = [e for e in plan.events if e.delta.endswith(f"({UNSEEN_LABEL})")]
    if edit_unseen:
        assert plan.frame_indices.tolist() == frames.tolist() and events == []
        return
    assert plan.frame_indices.tolist() == [f for f in frames.tolist() if not 110 <= f <= 112]
    yaw = dict(zip(plan.frame_indices.tolist(), plan.strengths["head_yaw"]))
    assert yaw[100] == yaw[105] == 6.0 and yaw[117] == 6.0  # 5 frames from the unseen run: untouched
    assert 0 < yaw[109] < yaw[108] < yaw[106] < 6.0 and 0 < yaw[113] < yaw[114] < yaw[116] < 6.0
    assert sorted((e.delta, e.first_frame, e.last_frame, e.requested, e.applied) for e in events) == [
        (f"head_yaw ({UNSEEN_LABEL})", 110, 112, 6.0, 0.0), (f"smile ({UNSEEN_LABEL})", 110, 112, 0.5, 0.0)]
    # where the strength is eased, the landmarks move less
    move = np.abs(plan.after - plan.before).max(axis=(1, 2))
    rows = {f: i for i, f in enumerate(plan.frame_indices.tolist())}
    assert move[rows[109]] < move[rows[106]] < move[rows[100]]


def test_plan_config_refuses_a_negative_unseen_ramp() -> None:
    from synthesis.plan import PlanConfig

    with pytest.raises(ConfigError):
        PlanConfig(unseen_ramp=-1)
