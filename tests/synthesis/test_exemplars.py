"""Exemplar index and choice: states from landmarks, Viterbi hold, cross-fade, clamps."""

from __future__ import annotations

import numpy as np

from synthesis import exemplars as ex
from synthesis import regions as rg

#: Closure of an eye whose upper lid lies on the lower one.
CLOSED_MIN = 0.95


def _face(n: int = 1) -> np.ndarray:
    """(n, 478, 3) a frontal face in pixels (canonical points, y flipped, scaled)."""
    p = rg.canonical_points().copy()
    p[:, 1] *= -1
    p = p * 20.0 + np.array([256.0, 256.0, 0.0])
    return np.repeat(p[None], n, axis=0)


def _close_eye(face: np.ndarray, side: str, amount: float = 1.0) -> np.ndarray:
    out = face.copy()
    upper, lower, _ = rg.EYES[side]
    out[..., list(upper), :] += amount * (face[..., list(lower), :] - face[..., list(upper), :])
    return out


def test_closure_reads_open_and_closed_eyes() -> None:
    face = _face(2)
    face[1] = _close_eye(face[1], "left")
    raw = ex.raw_features(face, "eye_left")
    gap = float(raw[0, 0])
    closure = ex.state(raw, "eye_left", gap)[:, 0]
    assert closure[0] < 0.05 and closure[1] > CLOSED_MIN
    # the other eye is untouched
    right = ex.state(ex.raw_features(face, "eye_right"), "eye_right", gap)[:, 0]
    assert np.all(right < 0.05)


def _index(faces: np.ndarray, yaw: np.ndarray) -> ex.ExemplarIndex:
    n = len(faces)
    angles = np.stack([yaw, np.zeros(n), np.zeros(n)], -1)
    return ex.build_index(np.arange(n), faces, angles, np.zeros((n, 52)))


def _targets(m: int, closure: float) -> tuple[np.ndarray, ...]:
    before = np.zeros((m, 3))
    after = before.copy()
    after[:, 0] = closure
    return before, after, np.zeros((m, 3)), np.zeros((m, 52)), np.zeros(m, np.int32)


def test_choice_takes_a_closed_frame_of_close_pose_and_holds_it() -> None:
    faces = _face(6)
    for k in (2, 4):
        faces[k] = _close_eye(faces[k], "left")
    index = _index(faces, np.array([0.0, 0.0, 12.0, 0.0, 1.0, 0.0]))
    gap = index.open_gap["eye_left"]
    before, after, angles, bs, seg = _targets(10, 1.0)
    after[:3, 0] = 0.0  # first three frames: no edit
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], gap)
    assert np.all(ch.first[:3] == -1) and np.all(ch.need[:3] == 0)
    picked = {int(ch.candidates[c][1]) for c in ch.first[3:]}
    assert picked == {4}  # closed and nearest in pose (frame 2 is 12 degrees away)
    assert not ch.unsupported.any()


def test_choice_does_not_flicker_between_equal_candidates() -> None:
    faces = _face(4)
    for k in (1, 3):
        faces[k] = _close_eye(faces[k], "left")
    index = _index(faces, np.zeros(4))
    before, after, angles, bs, seg = _targets(12, 1.0)
    # targets alternate their yaw by 1 degree around both candidates' (equal) pose
    angles[:, 0] = np.where(np.arange(12) % 2, 0.5, -0.5)
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], index.open_gap["eye_left"])
    assert len(set(ch.first.tolist())) == 1


def test_change_of_exemplar_is_cross_faded() -> None:
    faces = _face(4)
    for k in (1, 3):
        faces[k] = _close_eye(faces[k], "left")
    index = _index(faces, np.array([0.0, -10.0, 0.0, 10.0]))
    before, after, angles, bs, seg = _targets(30, 1.0)
    angles[:, 0] = np.linspace(-12, 12, 30)  # the head turns: the best exemplar must change once
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], index.open_gap["eye_left"])
    changes = np.flatnonzero(np.diff(ch.first) != 0)
    assert changes.size >= 1
    fading = ch.second >= 0
    assert fading.sum() == ex.ChoiceConfig().crossfade
    assert np.all(np.diff(ch.mix[fading]) > 0) and np.all((ch.mix[fading] > 0) & (ch.mix[fading] < 1))


def test_no_exemplar_is_unsupported_and_clamp_factor_limits_change() -> None:
    index = _index(_face(5), np.zeros(5))  # all open
    before, after, angles, bs, seg = _targets(4, 1.0)
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], index.open_gap["eye_left"])
    assert ch.unsupported.all() and np.all(ch.first == -1)
    f = ex.clamp_factor("eye_left", before, after)
    limit = ex.REGIONS["eye_left"].warp_limit[0]
    assert np.allclose(f * (after[:, 0] - before[:, 0]), limit)
    assert np.all(ex.clamp_factor("eye_left", before, before) == 1.0)


def _open_half_closed() -> tuple[ex.ExemplarIndex, float, float]:
    """An index of an open, a half-closed and a closed left eye (equal pose), the eye's open gap,
    and the half-closed frame's closure."""
    faces = _face(3)
    faces[1] = _close_eye(faces[1], "left", 0.5)
    faces[2] = _close_eye(faces[2], "left", 1.0)
    index = _index(faces, np.zeros(3))
    gap = index.open_gap["eye_left"]
    return index, gap, float(ex.state(ex.raw_features(faces[1], "eye_left"), "eye_left", gap)[0])


def test_a_closing_eye_borrows_from_frames_in_its_intermediate_state() -> None:
    # the clip holds an open, a half-closed and a closed frame of equal pose
    index, gap, half = _open_half_closed()
    # a blink ramp: open, half, closed for a while, half, open
    closure = np.array([0.0, half, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, half, 0.0])
    before, after, angles, bs, seg = _targets(closure.size, 0.0)
    after[:, 0] = closure
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], gap)
    rows = ch.candidates[:, 1]
    half_rows = np.flatnonzero(np.isclose(closure, half))
    closed_rows = np.flatnonzero(closure == 1.0)
    # the ramp frames take the half-closed frame, not the held closed one
    assert np.all(rows[ch.first[half_rows]] == 1)
    assert np.all(rows[ch.first[closed_rows]] == 2)
    # and no frame blends in an exemplar of another state (a ghost): the switch is a cut
    assert np.all(ch.second == -1)


def test_cross_fade_never_blends_in_an_exemplar_far_from_the_target_state() -> None:
    faces = _face(3)
    faces[1] = _close_eye(faces[1], "left", 1.0)
    faces[2] = _close_eye(faces[2], "left", 0.3)
    index = _index(faces, np.zeros(3))
    gap = index.open_gap["eye_left"]
    slight = float(ex.state(ex.raw_features(faces[2], "eye_left"), "eye_left", gap)[0])
    closure = np.array([1.0] * 8 + [slight] * 4)
    before, after, angles, bs, seg = _targets(closure.size, 0.0)
    after[:, 0] = closure
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], gap)
    state_of = ex.state(ex.raw_features(faces, "eye_left"), "eye_left", gap)[:, 0]
    scale = ex.REGIONS["eye_left"].feature_scale[0]
    fading = np.flatnonzero(ch.second >= 0)
    for r in fading:
        assert abs(state_of[ch.candidates[ch.second[r], 1]] - closure[r]) <= scale
    # the closed rows show only the closed frame
    assert np.all(ch.candidates[ch.first[:8], 1] == 1) and not np.any(ch.second[:8] >= 0)


def test_state_motion_is_zero_for_a_held_state_and_grows_with_the_step() -> None:
    after = np.zeros((5, 3))
    after[:, 0] = [0.0, 0.0, 0.5, 1.0, 1.0]
    motion = ex.state_motion("eye_left", after)
    scale = ex.REGIONS["eye_left"].feature_scale[0]
    assert np.allclose(motion, [0.0, 0.0, 0.5 / scale, 0.5 / scale, 0.0])


#: The compositor's default need for full weight (``plugin.texture_stage.TextureConfig``).
FULL_WEIGHT_NEED = 0.5
#: Largest rise or fall of the texture's weight between consecutive frames of a 4-frame blink
#: ramp whose only closed exemplar is a reference still (one in-between frame: about 0.6 there;
#: without the fade-in it jumps from 0 to 1).
MAX_WEIGHT_STEP = 0.65
#: Closure from which a frame may show no open-eye exemplar at all.
CLOSED_TARGET = 0.5


def test_a_closed_reference_alone_is_faded_in_over_the_ramp() -> None:
    clip = _index(_face(4), np.zeros(4))  # open eyes only
    gap = clip.open_gap["eye_left"]
    closed = _close_eye(_face(1), "left")
    ref = ex.build_index(np.arange(1), closed, np.zeros((1, 3)), np.zeros((1, 52)), source="reference",
                         open_gap=clip.open_gap)
    closure = np.array([0.0, 0.15, 0.5, 0.85, 1.0, 1.0, 1.0, 1.0, 0.85, 0.5, 0.15, 0.0])  # eased over 4 frames
    before, after, angles, bs, seg = _targets(closure.size, 0.0)
    after[:, 0] = closure
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [clip, ref], gap)
    weight = ch.weight(FULL_WEIGHT_NEED)
    assert np.all(weight[closure == 1.0] == 1.0)
    assert np.abs(np.diff(weight)).max() <= MAX_WEIGHT_STEP
    # the frames at CLOSED_TARGET or beyond show the closed reference and nothing else
    shown = np.flatnonzero((closure >= CLOSED_TARGET) & (weight > 0))
    assert shown.size == np.count_nonzero(closure >= CLOSED_TARGET)
    assert np.all(ch.candidates[ch.first[shown], 0] == 1) and np.all(ch.second[shown] == -1)
    # a faded-in row lays the closed lid on at its own state, not stretched open to the row's
    faded = np.flatnonzero(ch.fade < 1)
    assert faded.size and np.all(closure[faded] == CLOSED_TARGET)
    ref_closure = float(ex.state(ex.raw_features(closed, "eye_left"), "eye_left", gap)[0, 0])
    assert np.allclose(closure[faded] * ch.extend[faded], ref_closure)
    assert not ch.unsupported.any()


def test_in_between_exemplars_are_not_faded() -> None:
    index, gap, half = _open_half_closed()
    closure = np.array([0.0, half, 1.0, 1.0, 1.0, half, 0.0])
    before, after, angles, bs, seg = _targets(closure.size, 0.0)
    after[:, 0] = closure
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], gap)
    assert ch.fade is None or np.all(ch.fade == 1.0)
    assert ch.extend is None
    need = ch.need > 0
    assert np.array_equal(ch.weight(FULL_WEIGHT_NEED)[need], np.minimum(ch.need[need] / FULL_WEIGHT_NEED, 1.0))


#: Closure of a slit whose lid gap still shows the iris (liveportrait_d0 frame 64 at 0.61 shows it
#: plainly), and how far its gaze may lie from the edited frame's: one feature unit (eye widths).
SLIT_CLOSURE = 0.6
GAZE_X_TOL = ex.REGIONS["eye_left"].feature_scale[1]
#: Iris offset (eye widths along the corner line) of a frame looking to one side: liveportrait_d0
#: looks from -0.2 to +0.28.
SIDE_GAZE = 0.15


def _look(face: np.ndarray, side: str, amount: float) -> np.ndarray:
    """The face with its iris moved ``amount`` eye widths along the eye's corner line."""
    out = face.copy()
    upper, _, iris = rg.EYES[side]
    axis = face[..., upper[-1], :2] - face[..., upper[0], :2]
    out[..., list(iris), :2] += amount * axis[..., None, :]
    return out


def _sideways_blink(slit_gazes: tuple[float, ...]) -> tuple[ex.ExemplarIndex, float, np.ndarray, np.ndarray]:
    """An index of open eyes (looking ahead and to the side), one slit per gaze in ``slit_gazes``
    and a closed eye, all of equal pose; the open gap; and a blink ramp's target states on a frame
    looking to the side: (closure, gaze) before and after."""
    faces = [_face(1)[0], _look(_face(1), "left", SIDE_GAZE)[0]]
    faces += [_close_eye(_look(_face(1), "left", g), "left", SLIT_CLOSURE)[0] for g in slit_gazes]
    faces.append(_close_eye(_face(1), "left")[0])
    index = _index(np.stack(faces), np.zeros(len(faces)))
    gap = index.open_gap["eye_left"]
    own = ex.state(index.features["eye_left"][1], "eye_left", gap)
    closure = np.array([0.0, SLIT_CLOSURE, 1.0, 1.0, 1.0, 1.0, SLIT_CLOSURE, 0.0])
    before = np.repeat(own[None], closure.size, axis=0)
    after = before.copy()
    after[:, 0] = closure
    return index, gap, before, after


def _choose_blink(index: ex.ExemplarIndex, gap: float, before: np.ndarray, after: np.ndarray) -> ex.Choice:
    m = before.shape[0]
    return ex.choose("eye_left", before, after, np.zeros((m, 3)), np.zeros((m, 52)), np.zeros(m, np.int32),
                     [index], gap)


def test_a_slit_never_borrows_a_slit_whose_iris_lies_elsewhere() -> None:
    # the only slit in the clip looks the other way: its lid gap would show white where the
    # edited frame's iris is
    index, gap, before, after = _sideways_blink((-SIDE_GAZE,))
    ch = _choose_blink(index, gap, before, after)
    states = ex.state(index.features["eye_left"], "eye_left", gap)
    shown = ch.weight(FULL_WEIGHT_NEED) > 0
    for r in np.flatnonzero(shown):
        for c in (ch.first[r], ch.second[r]):
            if c < 0:
                continue
            s = states[ch.candidates[c, 1]]
            if s[0] <= SLIT_CLOSURE:  # its iris shows
                assert abs(s[1] - after[r, 1]) <= GAZE_X_TOL
    # the closed rows still take the closed eye, whatever its gaze
    closed = np.flatnonzero(after[:, 0] == 1.0)
    assert np.all(ch.candidates[ch.first[closed], 1] == len(states) - 1)


def test_a_slit_borrows_the_slit_whose_iris_lies_where_its_own_does() -> None:
    index, gap, before, after = _sideways_blink((-SIDE_GAZE, SIDE_GAZE))
    ch = _choose_blink(index, gap, before, after)
    slit = np.flatnonzero(after[:, 0] == SLIT_CLOSURE)
    # frame 3 is the slit looking the frame's way (frame 2 looks the other way)
    assert np.all(ch.candidates[ch.first[slit], 1] == 3) and np.all(ch.second[slit] == -1)
    assert np.all(ch.weight(FULL_WEIGHT_NEED)[slit] == 1.0)


#: How far toward the lower lid the upper one of a nearly shut eye is moved (its closure is
#: about 0.78 here, like liveportrait_d0 frame 67 at 0.81): within one closure unit (0.25) of
#: :data:`SLIT_CLOSURE`, but laid on the slit's wider opening its lash line would be stretched
#: into a dark band across the eye.
LASH_CLOSURE = 0.82
#: Agreement of a faded-in exemplar's laid-on closure with its own (closure is linear in the lid
#: gap of these synthetic faces).
CLOSURE_ATOL = 1e-6


def _slit_and_lash(closure: np.ndarray) -> tuple[ex.Choice, np.ndarray, float]:
    """Choice for a left eye going through ``closure`` (from open) on a clip holding an open eye,
    one nearly shut at :data:`LASH_CLOSURE` and a closed one (equal pose and gaze); and the
    candidates' closures and the open gap."""
    faces = _face(3)
    faces[1] = _close_eye(faces[1], "left", LASH_CLOSURE)
    faces[2] = _close_eye(faces[2], "left", 1.0)
    index = _index(faces, np.zeros(3))
    gap = index.open_gap["eye_left"]
    before, after, angles, bs, seg = _targets(closure.size, 0.0)
    after[:, 0] = closure
    ch = ex.choose("eye_left", before, after, angles, bs, seg, [index], gap)
    return ch, ex.state(index.features["eye_left"], "eye_left", gap)[:, 0], gap


def test_a_ramp_slit_never_stretches_a_nearly_shut_lid_over_its_opening() -> None:
    closure = np.array([0.0, SLIT_CLOSURE, 1.0, 1.0, 1.0, 1.0, SLIT_CLOSURE, 0.0])
    ch, cand_closure, _ = _slit_and_lash(closure)
    weight = ch.weight(FULL_WEIGHT_NEED)
    slit = np.flatnonzero(closure == SLIT_CLOSURE)
    for r in slit[weight[slit] > 0]:
        own = cand_closure[ch.candidates[ch.first[r], 1]]
        laid_on = closure[r] * (1.0 if ch.extend is None else ch.extend[r])
        # a more closed exemplar is laid on near its own state, or faded in at its own state
        if own - laid_on > ex.CLOSER_CLOSURE:
            raise AssertionError(f"row {r}: closure {own:.2f} laid on a slit at {laid_on:.2f}")
        if own - closure[r] > ex.CLOSER_CLOSURE:
            assert ch.fade is not None and ch.fade[r] < 1.0
            assert abs(laid_on - own) <= CLOSURE_ATOL
    assert not ch.unsupported.any()


def test_a_held_slit_still_borrows_a_nearly_shut_lid() -> None:
    # the edit's end state itself (no ramp to fade from): the nearly shut lid is taken, not clamped
    closure = np.full(6, SLIT_CLOSURE)
    ch, cand_closure, _ = _slit_and_lash(closure)
    assert np.all(ch.first >= 0) and np.all(ch.candidates[ch.first, 1] == 1)
    assert cand_closure[1] - SLIT_CLOSURE > ex.CLOSER_CLOSURE  # more closed than a ramp slit may take
    assert np.all(ch.weight(FULL_WEIGHT_NEED) == 1.0) and not ch.unsupported.any()


def _open_mouth(face: np.ndarray, drop: float) -> np.ndarray:
    """The face with its lower inner lip moved down by ``drop`` pixels (its gap grows by that)."""
    out = face.copy()
    out[..., list(rg.LIPS_INNER_LOWER[1:-1]), 1] += drop
    return out


def test_a_mouth_lends_only_a_little_less_open_but_well_more_open() -> None:
    # A less open mouth is warped open to its target, stretching what shows between the lips:
    # it may fall short by LESS_OPEN_GAP only; a more open one, by the gap's feature scale.
    face = _face(1)[0]
    iod = float(ex.iod_2d(face[None])[0])
    target = 0.12
    base = float(ex.raw_features(face[None], "mouth")[0, 0])
    shorts = (0.5 * ex.LESS_OPEN_GAP, 2.0 * ex.LESS_OPEN_GAP)  # accepted, refused
    longs = (0.04,)  # more open: accepted
    gaps = [target - s for s in shorts] + [target + x for x in longs]
    faces = np.stack([_open_mouth(face, (g - base) * iod) for g in gaps])
    index = _index(faces, np.zeros(len(gaps)))
    read = ex.raw_features(faces, "mouth")[:, 0]
    assert np.allclose(read, gaps, atol=0.002)
    m = 3
    before = np.tile(ex.raw_features(face[None], "mouth"), (m, 1))
    after = before.copy()
    after[:, 0] = target
    for allowed in ([0], [1], [2]):
        keep = np.zeros(len(gaps), bool)
        keep[allowed] = True
        ch = ex.choose("mouth", before, after, np.zeros((m, 3)), np.zeros((m, 52)), np.zeros(m, np.int32),
                       [index], 1.0, exclude=[~keep])
        usable = not ch.unsupported.any() and np.all(ch.first >= 0)
        assert usable == (allowed != [1]), (allowed, gaps)


def test_a_mouth_borrows_over_the_whole_run_of_an_opening_that_needs_texture_somewhere() -> None:
    # An opening eased in and out: its peak needs texture, its ease would not on its own; the run's
    # need follows the opening from its start (MOUTH_RUN_NEED), up to 1. A run of frames opened too
    # little to need texture anywhere, and a closing elsewhere, keep their own (zero) need.
    from synthesis.texregions import MOUTH_RUN_NEED

    open_ = np.array([0.0, 0.002, 0.008, 0.02, 0.045, 0.05, 0.045, 0.02, 0.0, 0.01, 0.02, 0.01, 0.0, -0.01, 0.0])
    before = np.zeros((open_.size, 2))
    after = before.copy()
    after[:, 0] = open_
    segments = np.zeros(open_.size, np.int32)
    own = ex.need_of("mouth", before, after)
    assert own[4:7].min() > 0 and own[:4].max() == 0 and own[7:].max() == 0
    need = ex.run_need("mouth", before, after, own, segments)
    assert np.allclose(need[1:8], np.clip(open_[1:8] / MOUTH_RUN_NEED, 0, 1))
    assert need[0] == 0 and np.all(need[8:] == 0)
    # a cut inside the run: the part in the other shot has no row that needs texture
    segments[3:] = 1
    need = ex.run_need("mouth", before, after, own, segments)
    assert np.all(need[:3] == 0) and need[3] == 1.0
    # regions without a run need keep their own
    assert np.all(ex.run_need("eye_left", np.zeros((3, 3)), np.ones((3, 3)), np.ones(3), np.zeros(3)) == 0)


def test_an_opening_s_ease_takes_a_more_open_exemplar_rather_than_stretch_a_less_open_one() -> None:
    # Rows 3-4 open the mouth by 0.05 and need texture; the ease (rows 1-2, 5-6) needs it only for
    # the run's sake. A frame a little less open than an ease row (by more than
    # EASE_LESS_OPEN_GAP, within LESS_OPEN_GAP) would be stretched open there, showing no inside
    # beside rows that show it: the ease takes the wide one, warped to its smaller opening.
    face = _face(1)[0]
    iod = float(ex.iod_2d(face[None])[0])
    base = float(ex.raw_features(face[None], "mouth")[0, 0])
    change = np.array([0.0, 0.008, 0.02, 0.05, 0.05, 0.02, 0.008, 0.0])
    gaps = [base + 0.008, base + 0.06]  # a barely open frame, a wide one
    index = _index(np.stack([_open_mouth(face, g * iod - base * iod) for g in gaps]), np.zeros(2))
    before = np.tile(ex.raw_features(face[None], "mouth"), (change.size, 1))
    after = before.copy()
    after[:, 0] += change
    m = change.size
    ch = ex.choose("mouth", before, after, np.zeros((m, 3)), np.zeros((m, 52)), np.zeros(m, np.int32), [index], 1.0)
    wide = [k for k, (_, row) in enumerate(ch.candidates) if row == 1]
    assert ch.first[3] in wide and ch.first[4] in wide  # the opening itself
    assert ch.first[2] in wide and ch.first[5] in wide  # 0.012 more open than the barely open frame
    assert not ch.unsupported.any()
