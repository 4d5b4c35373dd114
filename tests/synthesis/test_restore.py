"""Swap repair maths on synthetic tracks with known pose, expression and identity."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from synthesis.codespace import Identity, Pose, invert_track
from synthesis.regions import LIPS, canonical_points, inter_ocular, rigid_weights
from synthesis.reveal import MAX_HIDDEN_SHARE, hidden_share
from synthesis.restore import (
    RestoreConfig, bridge_target, combine_plans, divergence, flag_ranges, match_tracks, range_weights, restore_pair,
)
from synthesis.restore_loop import loop_correction, smooth_correction
from tracking.analysis import SOURCE_CODES, Track
from tracking.errors import ConfigError
from tracking.observation import NUM_BLENDSHAPES, Source
from tracking.pose import euler_from_rotations, matrix_from_euler, similarity_fit

N = 40
#: The synthetic swap turns the head by this much on frames DAMAGED.
WRONG_YAW_DEG = 8.0
DAMAGED = (12, 21)
#: Pose read back from planned landmarks vs the plate (degrees): the inversion's own error.
ANGLE_TOL_DEG = 0.3
#: Shape differences in inter-ocular distances.
SHAPE_TOL_IOD = 0.01
JAW = 25  # jawOpen
#: The plate's pose fit absorbs a little of a large jaw move: rigid points may move this fraction of it.
RIGID_LEAK = 0.15


def _posed(shape: np.ndarray, yaw: float, pitch: float = 0.0, x: float = 300.0) -> np.ndarray:
    pose = Pose(60.0, matrix_from_euler(yaw, pitch, 0.0), np.array([x, 250.0, 0.0]))
    return pose.to_pixels(shape).astype(np.float32)


def _track(tid: int, landmarks: np.ndarray, blendshapes: np.ndarray, frames: np.ndarray | None = None,
           bridged: np.ndarray | None = None) -> Track:
    n = len(landmarks)
    fi = np.arange(n, dtype=np.int64) if frames is None else frames.astype(np.int64)
    lm = landmarks.astype(np.float32)
    boxes = np.concatenate([lm[:, :, :2].min(axis=1), lm[:, :, :2].max(axis=1)], axis=1)
    src = np.full(n, SOURCE_CODES[Source.LANDMARKER], np.uint8)
    conf = np.ones(n, np.float32)
    if bridged is not None:
        src[bridged] = SOURCE_CODES[Source.BRIDGED]
        conf[bridged] = 0
    eye = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    return Track(tid, fi, fi / 25.0, np.zeros(n, np.int32), lm, blendshapes.astype(np.float32), eye,
                 np.zeros((n, 3), np.float32), lm.copy(), blendshapes.astype(np.float32), eye.copy(),
                 np.zeros((n, 3), np.float32), conf, boxes.astype(np.float32), src)


def _swap_identity() -> np.ndarray:
    """A different face: eyes set wider, nose longer (what a swap puts on the plate's head)."""
    s = canonical_points().copy()
    s[:, 0] *= 1.08
    s[:, 1] *= 0.95
    return s


def _pair(yaw_wrong: float = WRONG_YAW_DEG, swap_jaw: float = 0.0, plate_jaw: float = 0.0):
    yaw = 6.0 * np.sin(np.linspace(0, 3, N))
    plate_lm = np.stack([_posed(canonical_points(), y) for y in yaw])
    wrong = yaw.copy()
    a, b = DAMAGED
    wrong[a:b + 1] += yaw_wrong
    swap_lm = np.stack([_posed(_swap_identity(), y) for y in wrong])
    pb = np.zeros((N, NUM_BLENDSHAPES))
    sb = np.zeros((N, NUM_BLENDSHAPES))
    pb[:, JAW] = plate_jaw
    sb[:, JAW] = plate_jaw
    sb[a:b + 1, JAW] = swap_jaw
    return _track(0, plate_lm, pb), _track(0, swap_lm, sb), yaw


def test_identical_swap_is_left_alone():
    plate, _, _ = _pair()
    swap = _track(3, plate.landmarks, plate.blendshapes)
    (pair,) = match_tracks([plate], [swap])
    r = restore_pair(pair, plate, swap, RestoreConfig())
    assert pair.swap_id == 3
    assert r.ranges == []
    assert r.plan.frame_indices.size == 0
    assert np.abs(r.pose_div).max() < ANGLE_TOL_DEG


def test_wrong_yaw_is_found_and_turned_back_keeping_the_swap_identity():
    plate, swap, yaw = _pair()
    (pair,) = match_tracks([plate], [swap])
    cfg = RestoreConfig()
    r = restore_pair(pair, plate, swap, cfg)
    assert r.ranges == [list(DAMAGED)]
    assert r.pose_div[DAMAGED[0]] == pytest.approx(WRONG_YAW_DEG, abs=ANGLE_TOL_DEG)
    # ramps: the plan covers the range and ramp_frames on each side, weight 1 inside
    a, b = DAMAGED
    assert r.plan.frame_indices.tolist() == list(range(a - cfg.ramp_frames, b + cfg.ramp_frames + 1))
    inside = (r.plan.frame_indices >= a) & (r.plan.frame_indices <= b)
    assert np.all(r.plan.strengths["restore"][inside] == 1.0)
    assert np.all(np.diff(r.plan.strengths["restore"][:cfg.ramp_frames + 1]) > 0)
    # the planned landmarks read back with the plate's yaw ...
    code = invert_track(r.plan.after[inside])
    got = euler_from_rotations(code.rotations)[:, 0]
    assert np.abs(got - yaw[a:b + 1]).max() < ANGLE_TOL_DEG
    assert np.abs(r.planned_pose_div[a:b + 1]).max() < ANGLE_TOL_DEG
    # ... and with the swap's face shape, not the plate's
    w = rigid_weights()
    for k in np.flatnonzero(inside)[[0, -1]]:
        after = r.plan.after[k].astype(np.float64)
        for ref, expect_close in ((_swap_identity(), True), (canonical_points(), False)):
            s, rot, t = similarity_fit(ref, after * np.array([1, -1, -1]), w)
            fitted = s * ref @ rot.T + t
            err = np.linalg.norm(fitted - after * np.array([1, -1, -1]), axis=1)[w > 0].max() / inter_ocular(after)
            assert (err < SHAPE_TOL_IOD) == expect_close


def test_untouched_frames_are_not_in_the_plan_and_lost_frames_are_listed():
    plate, swap, _ = _pair()
    lost = np.array([30, 31])
    swap = _track(0, swap.landmarks, swap.blendshapes, bridged=lost)
    (pair,) = match_tracks([plate], [swap])
    r = restore_pair(pair, plate, swap, RestoreConfig())
    assert r.lost.tolist() == lost.tolist()
    assert not set(r.plan.frame_indices.tolist()) & set(lost.tolist())
    assert set(r.plan.frame_indices.tolist()) <= set(range(DAMAGED[0] - 4, DAMAGED[1] + 5))


def test_expression_divergence_moves_the_swap_to_the_plate_residual():
    plate, swap, _ = _pair(yaw_wrong=0.0, swap_jaw=0.0, plate_jaw=0.0)
    # the plate opens the jaw on the damaged frames; the swap does not
    a, b = DAMAGED
    lm = plate.landmarks.copy()
    chin = canonical_points()[:, 1] < -4.0
    shape = canonical_points().copy()
    shape[chin, 1] -= 1.0
    yaw = 6.0 * np.sin(np.linspace(0, 3, N))
    for f in range(a, b + 1):
        lm[f] = _posed(shape, yaw[f])
    pb = plate.blendshapes.copy()
    pb[a:b + 1, JAW] = 0.6
    plate = _track(0, lm, pb)
    (pair,) = match_tracks([plate], [swap])
    r = restore_pair(pair, plate, swap, RestoreConfig(correct_pose=False))
    assert r.ranges == [[a, b]]
    assert r.expr_div[a] == pytest.approx(0.6, abs=1e-6)
    k = int(np.flatnonzero(r.plan.frame_indices == (a + b) // 2)[0])
    moved = r.plan.after[k] - r.plan.before[k]
    iod = inter_ocular(r.plan.before[k])
    chin_drop = moved[chin, 1].mean() / iod
    upper = canonical_points()[:, 1] > 0
    other = np.abs(moved[upper & (rigid_weights() > 0)]).max() / iod
    assert chin_drop > 0.1  # the chin goes down (y down in pixels) ...
    assert other < RIGID_LEAK * chin_drop  # ... and the upper face's rigid points nearly stay


def test_pose_correction_is_clamped_to_the_warp_limits():
    plate, swap, _ = _pair(yaw_wrong=30.0)
    (pair,) = match_tracks([plate], [swap])
    # the angle limit alone (turned 30 degrees away, the turn back would also reveal the far
    # cheek: test_a_turn_back_toward_the_camera_keeps_to_what_the_frame_shows)
    cfg = RestoreConfig(max_yaw_deg=10.0, max_hidden_share=0.0)
    r = restore_pair(pair, plate, swap, cfg)
    a, b = DAMAGED
    assert r.clamped[a:b + 1].all()
    assert r.planned_pose_div[a:b + 1] == pytest.approx(np.full(b - a + 1, 20.0), abs=0.5)


def test_matching_follows_overlap_not_ids():
    yaw = np.zeros(N)
    left = np.stack([_posed(canonical_points(), y, x=150.0) for y in yaw])
    right = np.stack([_posed(canonical_points(), y, x=600.0) for y in yaw])
    z = np.zeros((N, NUM_BLENDSHAPES))
    plate = [_track(0, left, z), _track(1, right, z)]
    swap = [_track(5, right, z), _track(9, left, z)]
    pairs = {p.plate_id: p.swap_id for p in match_tracks(plate, swap)}
    assert pairs == {0: 9, 1: 5}
    far = [_track(2, np.stack([_posed(canonical_points(), 0.0, x=2000.0)] * N), z)]
    assert match_tracks(plate[:1], far) == []


def test_bridge_target_puts_the_swap_face_where_the_plate_is():
    plate, swap, yaw = _pair(yaw_wrong=0.0)
    (pair,) = match_tracks([plate], [swap])
    r = restore_pair(pair, plate, swap, RestoreConfig())
    pc, sc = invert_track(plate.landmarks), invert_track(swap.landmarks)
    target = bridge_target(pc, 30, sc, r.offset, r.scale_ratio)
    # the swap sits exactly on the plate here, so the target is the swap face in frame 30's pose
    np.testing.assert_allclose(target, swap.landmarks[30], atol=SHAPE_TOL_IOD * inter_ocular(swap.landmarks[30]))


def test_ranges_weights_and_plan_merging():
    frames = np.arange(30)
    flags = np.zeros(30, bool)
    flags[[5, 6, 9, 20]] = True
    assert flag_ranges(flags, frames, gap_fill=2, min_frames=1) == [[5, 9], [20, 20]]
    assert flag_ranges(flags, frames, gap_fill=2, min_frames=2) == [[5, 9]]
    w = range_weights(frames, [[10, 12]], ramp=3)
    assert w[10:13].tolist() == [1.0, 1.0, 1.0]
    assert w[9] == pytest.approx(w[13]) and 0 < w[7] < w[8] < w[9] < 1
    assert w[6] == 0 and w[16] == 0
    plate, swap, _ = _pair()
    (pair,) = match_tracks([plate], [swap])
    p = restore_pair(pair, plate, swap, RestoreConfig()).plan
    both = combine_plans([p, p])
    assert len(both) == 1
    np.testing.assert_allclose(both[0].after - both[0].before, 2 * (p.after - p.before), atol=1e-4)


def test_divergence_wraps_angles():
    r0 = np.stack([matrix_from_euler(179.0, 0, 0)])
    r1 = np.stack([matrix_from_euler(-179.0, 0, 0)])
    z = np.zeros((1, NUM_BLENDSHAPES))
    diff, pose, _ = divergence(r0, r1, z, z)
    assert pose[0] == pytest.approx(2.0, abs=1e-6)


@pytest.mark.parametrize("kw", [{"pose_threshold_deg": 0}, {"ramp_frames": -1}, {"match_min_iou": 0},
                                {"correct_pose": False, "correct_expression": False}, {"refine_rounds": -1},
                                {"refine_gain": 0}, {"refine_max_iod": 0}, {"expression_sigma_frames": -1}])
def test_bad_config_is_refused(kw):
    with pytest.raises(ConfigError):
        RestoreConfig(**kw)


#: How far the lips may move when only the pose is wrong (inter-ocular distances).
UNTOUCHED_REGION_TOL_IOD = 1e-3
#: The identity estimate error planted on the swap's lips (canonical units, about 0.03 IOD).
PLANTED = 0.2


def test_an_identity_estimate_error_is_not_carried_into_the_expression():
    """The swap's identity read with its lips slightly off (as an estimate from other frames is):
    its residuals carry the opposite error on every frame, and the correction of a wrong turn
    must not move the lips to undo it."""
    plate, swap, _ = _pair()
    sc = invert_track(swap.landmarks, swap.blendshapes)
    lips = sorted(LIPS)
    shape = sc.identity.shape.copy()
    shape[lips, 0] += PLANTED
    exprs = sc.expressions.copy()
    exprs[:, lips, 0] -= PLANTED
    skewed = dataclasses.replace(sc, identity=Identity(shape), expressions=exprs)
    (pair,) = match_tracks([plate], [swap])
    r = restore_pair(pair, plate, swap, RestoreConfig(), swap_code=skewed)
    assert r.ranges == [list(DAMAGED)]
    mid = sum(DAMAGED) // 2
    k = int(np.flatnonzero(r.plan.frame_indices == mid)[0])
    after = r.plan.after[k].astype(np.float64)
    # take the head turn out (a similarity on the rigid points): the lips must keep the swap's shape
    w = rigid_weights()
    before = swap.landmarks[mid].astype(np.float64)
    s_, rot, t = similarity_fit(before, after, w)
    aligned = s_ * before @ rot.T + t
    lip_err = np.linalg.norm((after - aligned)[lips, :2], axis=1).mean() / inter_ocular(after)
    planted_iod = PLANTED / inter_ocular(canonical_points())
    assert lip_err < LIP_KEEP_FRACTION * planted_iod


#: Of the planted identity error, at most this fraction may show on the lips after the correction.
LIP_KEEP_FRACTION = 0.2


#: The warp of test_the_closed_loop_makes_an_under_achieving_warp_reach_the_plan shows this
#: fraction of a planned landmark move.
WARP_EFFICIENCY = 0.6


def test_the_closed_loop_makes_an_under_achieving_warp_reach_the_plan():
    rng = np.random.default_rng(3)
    planned = np.zeros((478, 3))
    planned[:, :2] = rng.normal(0, 2.0, (478, 2))
    planned[:, 2] = 5.0  # depth: not corrected
    iod, c = 100.0, np.zeros((478, 3))
    misses = []
    for _ in range(4):  # three rounds of correction, each measured
        achieved = WARP_EFFICIENCY * (planned + c)
        misses.append(np.abs(planned - achieved)[:, :2].max())
        c = loop_correction(planned, achieved, c, iod, gain=1.0, max_iod=0.2)
    assert misses[-1] < 0.1 * misses[0]
    assert np.all(c[:, 2] == 0)
    # the cap: no landmark is moved further than max_iod * iod beyond the plan
    big = loop_correction(planned * 100, np.zeros((478, 3)), np.zeros((478, 3)), iod, gain=1.0, max_iod=0.05)
    assert np.linalg.norm(big[:, :2], axis=1).max() == pytest.approx(5.0, rel=1e-9)


def test_loop_corrections_are_smoothed_and_faded_with_the_weight():
    m = 9
    frames = np.arange(m)
    corr = np.zeros((m, 478, 3))
    corr[:, :, 0] = np.where(frames % 2 == 0, 1.0, -1.0)[:, None] + 2.0  # a flickering shortfall
    weights = np.ones(m)
    weights[0] = 0.0
    out = smooth_correction(corr, frames, weights, sigma=1.0)
    assert np.all(out[0] == 0)
    inner = out[2:-2, 0, 0]
    assert np.abs(inner - 2.0).max() < 0.5 * np.abs(corr[2:-2, 0, 0] - 2.0).max()


def test_a_turn_back_toward_the_camera_keeps_to_what_the_frame_shows():
    """A swap left turned 45 degrees where the plate turns 28: turning it back 17 degrees would
    bring its far cheek out from behind the nose (a warp paints it with the nose). The turn is
    lowered there and counted as clamped; without the limit it is made in full."""
    yaw = np.full(N, 28.0)
    plate_lm = np.stack([_posed(canonical_points(), y) for y in yaw])
    wrong = yaw.copy()
    a, b = DAMAGED
    wrong[a:b + 1] = 45.0
    swap_lm = np.stack([_posed(_swap_identity(), y) for y in wrong])
    blend = np.zeros((N, NUM_BLENDSHAPES))
    plate, swap = _track(0, plate_lm, blend), _track(0, swap_lm, blend)
    (pair,) = match_tracks([plate], [swap])
    free = restore_pair(pair, plate, swap, RestoreConfig(max_hidden_share=0.0, max_yaw_deg=20.0))
    assert not free.clamped.any()
    assert np.abs(free.planned_pose_div[a:b + 1]).max() < 1.0
    shown = [hidden_share(free.plan.before[k], free.plan.after[k])
             for k in np.flatnonzero(np.isin(free.plan.frame_indices, range(a, b + 1)))]
    assert min(shown) > 2 * MAX_HIDDEN_SHARE
    kept = restore_pair(pair, plate, swap, RestoreConfig(max_yaw_deg=20.0))
    assert kept.clamped[a:b + 1].all()
    assert 3.0 < kept.planned_pose_div[a:b + 1].min() and kept.planned_pose_div[a:b + 1].max() < 17.0
    inside = np.flatnonzero(np.isin(kept.plan.frame_indices, range(a, b + 1)))
    shown = [hidden_share(kept.plan.before[k], kept.plan.after[k]) for k in inside]
    assert max(shown) <= MAX_HIDDEN_SHARE * 1.1
    # untouched outside the range: the pose edit it asks for there is zero
    assert not kept.clamped[:a - RestoreConfig().ramp_frames].any()
