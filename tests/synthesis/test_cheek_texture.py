"""Cheek texture for head turns: the cheek regions, their facing state, the edited frames' pose,
and the fade that keeps borrowed skin from switching on or off in one frame."""

from __future__ import annotations

import numpy as np
import pytest

from synthesis import regions as rg
from synthesis.exemplar_runs import fade_runs, smooth_in_segments
from synthesis.exemplars import TURN_GAIN_DEG, ChoiceConfig, build_index, choose, need_of, raw_features
from synthesis.texregions import REGIONS
from tracking.pose import matrix_from_euler, turned_angles

#: Degrees the fitted pose of an exactly rotated face may miss by (float rounding and the fit).
ANGLE_TOL = 0.05
#: Pixels per canonical centimetre of the synthetic faces.
SCALE = 12.0


def face(yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, shift=(320.0, 240.0)) -> np.ndarray:
    """``(478, 3)`` pixel landmarks (MediaPipe z: smaller is nearer) of the canonical face at a pose."""
    canon = rg.canonical_points()
    cam = canon @ matrix_from_euler(yaw, pitch, roll).T  # camera frame: x right, y up, z toward the viewer
    return np.stack([shift[0] + SCALE * cam[:, 0], shift[1] - SCALE * cam[:, 1], -SCALE * cam[:, 2]], axis=1)


def test_cheek_regions_mirror_each_other_and_keep_clear_of_the_features() -> None:
    v = rg.canonical_points()
    left, right = REGIONS["cheek_left"], REGIONS["cheek_right"]
    assert len(left.core) == len(right.core) >= 15
    assert (v[list(left.core), 0] > 0).all() and (v[list(right.core), 0] < 0).all()
    features = set(rg.LEFT_EYE) | set(rg.RIGHT_EYE) | set(rg.LIPS) | set(rg.NOSE) | set(rg.FACE_OVAL)
    assert not (set(left.core) | set(right.core)) & features
    assert left.turn and left.fade and left.need_direction == (-1,)


def test_a_cheek_faces_the_camera_more_as_the_head_turns_toward_its_side() -> None:
    yaws = [-20.0, -10.0, 0.0, 10.0, 20.0]
    left = [float(raw_features(face(y), "cheek_left")[0]) for y in yaws]
    right = [float(raw_features(face(y), "cheek_right")[0]) for y in yaws]
    assert 15.0 < left[2] < 75.0 and abs(left[2] - right[2]) < 1.0  # the canonical face is symmetric
    assert np.all(np.diff(left) > 0) or np.all(np.diff(left) < 0)  # monotonic in yaw
    # One cheek turns toward the camera exactly as the other turns away.
    assert np.sign(left[-1] - left[0]) == -np.sign(right[-1] - right[0]) != 0
    with pytest.raises(ValueError):
        raw_features(face()[:, :2], "cheek_left")


def test_only_a_cheek_turning_toward_the_camera_needs_texture() -> None:
    before = np.array([[40.0], [40.0], [40.0]])
    after = np.array([[28.0], [52.0], [38.0]])  # toward, away, a little toward
    need = need_of("cheek_left", before, after)
    assert need[0] == 1.0 and need[1] == 0.0 and need[2] == 0.0


def test_turned_angles_follow_a_pose_edit_and_ignore_an_expression_edit() -> None:
    start = (12.0, -5.0, 3.0)
    before = np.stack([face(*start), face(*start)])
    after = np.stack([face(start[0] + 8.0, start[1], start[2]), face(*start)])
    lips = list(rg.LIPS)
    after[1, lips, 1] += 6.0  # the mouth opens; the head does not move
    w = rg.rigid_weights()
    out = turned_angles(before, after, np.array([start, start]), w)
    assert np.allclose(out[0], (start[0] + 8.0, start[1], start[2]), atol=ANGLE_TOL)
    assert np.allclose(out[1], start, atol=0.5)
    assert np.array_equal(turned_angles(before, before, np.array([start, start]), w), np.array([start, start]))


def test_a_turn_borrows_only_from_frames_turned_nearer_the_target() -> None:
    """Candidates at yaw 0 (the edited frame's own pose) and 12 (turned toward a +15 target): only
    the turned one may lend the revealed cheek."""
    yaws = np.array([0.0, 12.0])
    lm = np.stack([face(y) for y in yaws])
    angles = np.stack([yaws, np.zeros(2), np.zeros(2)], axis=1)
    index = build_index(np.arange(2), lm, angles, np.zeros((2, 52)))
    region = "cheek_left" if raw_features(face(15.0), "cheek_left")[0] < raw_features(face(0.0), "cheek_left")[0] \
        else "cheek_right"
    m = 12
    before = np.repeat(raw_features(face(0.0), region)[None], m, axis=0)
    after = np.repeat(raw_features(face(15.0), region)[None], m, axis=0)
    target = np.tile([15.0, 0.0, 0.0], (m, 1))
    own = np.zeros((m, 3))
    ch = choose(region, before, after, target, np.zeros((m, 52)), np.zeros(m, np.int32), [index], 1.0,
                config=ChoiceConfig(max_pose_deg=30.0), angles_before=own)
    used = {int(ch.candidates[c][1]) for c in ch.first if c >= 0}
    assert used == {1}
    # Seen from a frame already at +14, the +12 frame is not nearer the target (by TURN_GAIN_DEG).
    assert abs(15.0 - 12.0) > abs(15.0 - 14.0) - TURN_GAIN_DEG
    ch2 = choose(region, before, after, target, np.zeros((m, 52)), np.zeros(m, np.int32), [index], 1.0,
                 config=ChoiceConfig(max_pose_deg=30.0), angles_before=np.tile([14.0, 0.0, 0.0], (m, 1)))
    assert (ch2.first < 0).all()


def test_fade_fills_short_gaps_and_ramps_run_ends() -> None:
    width = 3
    first = np.array([-1, 4, 4, 4, 4, -1, -1, 4, 4, 4, 4, 4, -1, -1, -1, -1, -1, -1, -1, 5, 5, 5], np.int64)
    need = np.ones(first.shape[0])
    segments = np.zeros(first.shape[0], np.int32)
    out_first, out_need = fade_runs(first, need, segments, width)
    assert (out_first[5:7] == 4).all()  # a 2-row gap keeps the exemplar before it
    assert (out_first[12:19] == -1).all()  # a 7-row gap (> 2 * width) does not
    on = out_first >= 0
    # Weight moves by at most 1 / (width + 1) per row wherever the texture is on at both rows,
    # and starts and ends a run at that step, never at full weight.
    w = np.where(on, out_need, 0.0)
    assert np.abs(np.diff(w)).max() <= 1.0 / (width + 1) + 1e-12
    assert out_need[~on].min() == 1.0  # rows without an exemplar keep their need (reported)
    # Segments are not crossed: a cut between two runs leaves two runs, each ramped.
    seg = np.array([0] * 6 + [1] * 6, np.int32)
    _, n2 = fade_runs(np.full(12, 7, np.int64), np.ones(12), seg, width)
    assert np.allclose(n2[:6], [0.25, 0.5, 0.75, 0.75, 0.5, 0.25]) and np.array_equal(n2[:6], n2[6:])


def test_smoothing_stays_inside_segments() -> None:
    values = np.array([0.0, 0.0, 1.0, 1.0, 5.0, 5.0])
    seg = np.array([0, 0, 0, 0, 1, 1])
    out = smooth_in_segments(values, seg, 1)
    assert np.allclose(out[4:], 5.0)  # the second segment never sees the first
    assert np.allclose(out[:4], [0.0, 1 / 3, 2 / 3, 1.0])


def test_regions_cut_by_the_frame_border_are_never_exemplars() -> None:
    """A face half outside its frame lends nothing from the cut side: its texture there would be
    the border's pixels smeared (seen as streaks on a head turn at the picture's edge)."""
    inside, cut = face(shift=(320.0, 240.0)), face(shift=(20.0, 240.0))  # the second's right half is at x < 0
    lm = np.stack([inside, cut])
    index = build_index(np.arange(2), lm, np.zeros((2, 3)), np.zeros((2, 52)), frame_size=(480, 640))
    left_x = lm[:, list(REGIONS["eye_left"].outer), 0]
    right_x = lm[:, list(REGIONS["eye_right"].outer), 0]
    cut_side = "eye_right" if right_x[1].min() < 0 else "eye_left"
    assert min(left_x[1].min(), right_x[1].min()) < 0  # the test face really is cut
    assert index.quality[cut_side][0] > 0.5 and index.quality[cut_side][1] == 0.0
    unchecked = build_index(np.arange(2), lm, np.zeros((2, 3)), np.zeros((2, 52)))
    assert unchecked.quality[cut_side][1] > 0.5
    # One size per frame (reference stills of different sizes).
    sizes = np.array([[480, 640], [480, 640]])
    assert np.array_equal(build_index(np.arange(2), lm, np.zeros((2, 3)), np.zeros((2, 52)),
                                      frame_size=sizes).quality[cut_side], index.quality[cut_side])
