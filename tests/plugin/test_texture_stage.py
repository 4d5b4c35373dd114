"""Texture transfer in the edit job: exemplar choice on a real clip, compositing, rebuild, clamp."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugin import texture_stage
from plugin.analyze import run_analysis
from plugin.texture_stage import TextureConfig, chain_texture_events, load_references, prepare_texture, rebuild_face
from synthesis.controls import named_controls
from synthesis.exemplars import raw_features, state
from synthesis.texregions import FACE, REGIONS
from synthesis.plan import PlanConfig, plan_track
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
from tracking.analysis import TRACK_ARRAYS

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
CLIP = FIXTURES / "liveportrait_d0.mp4"
#: The natural blink of liveportrait_d0.mp4 (eyeBlink > 0.3 on the analysis): frames 64-68.
BLINK_FRAMES = range(64, 69)
#: Mean absolute difference (0..255) of a face rebuilt from itself.
SELF_REBUILD_TOL = 2.0
#: Closure change left after a clamp, beyond the region's warp limit.
CLAMP_TOL = 0.05
#: liveportrait_d0's frame with both eyes closed (inside its natural blink).
CLOSED_FRAME = 66
#: The subject's left eye's upper and lower lid midpoints (``plugin.editing._EYES``).
LEFT_LIDS = (386, 374)


def test_rebuild_from_itself_changes_little(astronaut_face) -> None:
    image, lm = astronaut_face
    out = rebuild_face(image, lm, image, lm, "face")
    assert out is not image and out.shape == image.shape
    assert np.abs(out.astype(float) - image.astype(float)).mean() < SELF_REBUILD_TOL / 10
    oval = cv2.convexHull(lm[:468, :2].astype(np.float32)).astype(np.int32)
    outside = np.ones(image.shape[:2], np.uint8)
    cv2.fillPoly(outside, [oval], 0)
    assert np.array_equal(out[outside > 0], image[outside > 0])


def test_rebuild_undoes_a_moved_and_relit_exemplar(astronaut_face) -> None:
    image, lm = astronaut_face
    m = cv2.getRotationMatrix2D((256, 256), 7.0, 1.08)
    m[:, 2] += (9.0, -6.0)
    moved = cv2.warpAffine(image, m, (512, 512), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    moved = np.clip(moved.astype(float) * 0.8 + 10, 0, 255).astype(np.uint8)  # darker
    lm_moved = lm.copy()
    lm_moved[:, :2] = lm[:, :2] @ m[:, :2].T + m[:, 2]
    damaged = image.copy()
    hull = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(hull, [cv2.convexHull(lm[list(FACE.core), :2].astype(np.int32))], 1)
    hull = cv2.erode(hull, np.ones((15, 15), np.uint8)) > 0
    damaged[hull] = 128  # a garbled face (the band inside the face oval is intact)
    out = rebuild_face(damaged, lm, moved, lm_moved, "face")
    inner = np.zeros(image.shape[:2], bool)
    core = REGIONS["eye_left"].core  # well inside the face: rebuilt at full weight
    pts = lm[list(core), :2].astype(np.int32)
    cv2.fillPoly(inner.view(np.uint8), [cv2.convexHull(pts)], 1)
    err_rebuilt = np.abs(out[inner].astype(float) - image[inner].astype(float)).mean()
    err_damaged = np.abs(damaged[inner].astype(float) - image[inner].astype(float)).mean()
    assert err_rebuilt < 0.25 * err_damaged
    assert err_rebuilt < 12.0


@pytest.fixture(scope="module")
def lp_track(tmp_path_factory):
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    analysis = run_analysis(CLIP, cache_dir=tmp_path_factory.mktemp("cache")).analysis
    return max(analysis.tracks, key=lambda t: len(t.frame_indices))


@pytest.fixture(scope="module")
def closed_still(tmp_path_factory):
    """liveportrait_d0's closed-eye frame 66 as a reference still, found by the real landmarker."""
    from plugin.video import VideoReader

    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    path = tmp_path_factory.mktemp("refs") / "closed.png"
    with VideoReader(CLIP) as reader:
        cv2.imwrite(str(path), reader.frame_at(CLOSED_FRAME).image[:, :, ::-1])
    return load_references([path])


def _before_blink(track):
    """The track cut before its natural blink (frames 64-68): no closed eye of its own."""
    keep = track.frame_indices < 50
    return dataclasses.replace(track, **{n: getattr(track, n)[keep] for n in TRACK_ARRAYS})


def _blink_plan(track, frames=(10, 20)):
    sched = EditSchedule((EditEntry(track.track_id, "blink_left", StrengthCurve.over_range(1.0, frames[0], frames[1], 2)),))
    return plan_track(track.track_id, track.frame_indices, track.times, track.segment_ids, track.landmarks,
                      track.blendshapes, track.confidence, sched, named_controls())


def test_blink_borrows_the_clips_own_closed_eye(lp_track) -> None:
    plan = _blink_plan(lp_track)
    plans, comp, events = prepare_texture([plan], {lp_track.track_id: lp_track}, CLIP, config=TextureConfig())
    try:
        tex = [e for e in events if e["action"] == "texture"]
        assert [e["region"] for e in tex] == ["eye_left"]
        used = {int(s.split(":")[1]) for e in tex for s in e["exemplars"]}
        full = [int(f) for f in plans[0].frame_indices if 10 <= f <= 20]
        assert used and used <= set(range(60, 72))
        row = int(np.searchsorted(plans[0].frame_indices, 15))
        from plugin.video import VideoReader
        with VideoReader(CLIP) as r:
            frame = r.frame_at(15).image
        kept = frame.copy()
        out = comp(frame, 15, plans[0], row)
        assert np.array_equal(frame, kept)  # not owned: the caller's frame is left alone
        mine = frame.copy()
        assert comp(mine, 15, plans[0], row, owned=True) is mine and np.array_equal(mine, out)
        changed = np.abs(out.astype(int) - frame.astype(int)).max(axis=2) > 0
        ys, xs = np.nonzero(changed)
        eye = lp_track.landmarks[int(np.searchsorted(lp_track.frame_indices, 15))][list(REGIONS["eye_left"].outer), :2]
        assert changed.sum() > 50 and full
        # only pixels around the left eye change
        assert xs.min() >= eye[:, 0].min() - 10 and xs.max() <= eye[:, 0].max() + 10
        assert ys.min() >= eye[:, 1].min() - 10 and ys.max() <= eye[:, 1].max() + 10
    finally:
        comp.close()


#: Texture without closed lids made from the face's own frames: only the clip and references lend.
NO_LIDS = TextureConfig(closed_lids=False)


def test_without_an_exemplar_the_blink_is_clamped_and_recorded(lp_track) -> None:
    short = _before_blink(lp_track)
    plan = _blink_plan(short)
    plans, comp, events = prepare_texture([plan], {short.track_id: short}, CLIP, config=NO_LIDS)
    comp.close()
    clamps = [e for e in events if e["action"] == "clamp"]
    assert clamps and clamps[0]["region"] == "eye_left" and clamps[0]["factor"] < 1
    gap = float(np.percentile(raw_features(short.landmarks, "eye_left")[:, 0], 90))
    before = state(raw_features(plans[0].before, "eye_left"), "eye_left", gap)[:, 0]
    after = state(raw_features(plans[0].after, "eye_left"), "eye_left", gap)[:, 0]
    requested = state(raw_features(plan.after, "eye_left"), "eye_left", gap)[:, 0]
    assert (requested - before).max() > REGIONS["eye_left"].warp_limit[0] + CLAMP_TOL
    assert (after - before).max() <= REGIONS["eye_left"].warp_limit[0] + CLAMP_TOL


def test_without_a_closed_eye_anywhere_the_lid_is_made_from_the_face_itself(lp_track) -> None:
    from plugin.video import VideoReader
    from tracking.landmarker import Landmarker, LandmarkerConfig

    short = _before_blink(lp_track)
    plan = _blink_plan(short)
    plans, comp, events = prepare_texture([plan], {short.track_id: short}, CLIP)
    try:
        assert not [e for e in events if e["action"] == "clamp" and e["region"] == "eye_left"]
        tex = [e for e in events if e["action"] == "texture" and e["region"] == "eye_left"]
        made = {s for e in tex for s in e["exemplars"] if s.startswith("reference:closed lids made from frame ")}
        assert len(made) == 1 and int(made.pop().rsplit(" ", 1)[1]) in set(short.frame_indices.tolist())
        ref = next(r for r in comp.track_references[short.track_id] if r.name.startswith("closed lids"))
        gap = float(np.percentile(raw_features(short.landmarks, "eye_left")[:, 0], 90))
        assert state(raw_features(ref.landmarks, "eye_left"), "eye_left", gap)[0] >= texture_stage.LID_MIN_CLOSURE
        # The borrowed lid, laid on the planned (closed) geometry, reads closed to the landmarker.
        row = int(np.searchsorted(plans[0].frame_indices, 15))
        with VideoReader(CLIP) as r:
            frame = r.frame_at(15).image
        out = comp(frame, 15, plans[0], row)
        with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
            read = [state(raw_features(lm.detect_image(img)[0].landmarks, "eye_left"), "eye_left", gap)[0]
                    for img in (frame, out)]
        # composited on the frame as it is (no warp): the open eye now reads mostly closed
        assert read[0] < 0.1 and read[1] > read[0] + 0.3
    finally:
        comp.close()


#: liveportrait_d0 keeps its mouth closed up to frame 16 (inner-lip gap 0.003-0.005 IOD).
CLOSED_MOUTH_FRAMES = 17


def test_a_mouth_opened_wider_than_the_clip_shows_is_made_from_the_face_itself(lp_track) -> None:
    """Cut to its closed-mouth frames, the clip has no open mouth to lend: a jaw opening is
    clamped without the made mouth, and with it borrows a still of this face with the mouth
    opened (lower lip dropped, the inside shown), which the landmarker reads as open."""
    from plugin.video import VideoReader
    from tracking.landmarker import Landmarker, LandmarkerConfig

    keep = lp_track.frame_indices < CLOSED_MOUTH_FRAMES
    short = dataclasses.replace(lp_track, **{n: getattr(lp_track, n)[keep] for n in TRACK_ARRAYS})
    # an opening of 0.11 IOD (past the control's range, as a plate's open mouth in a swap repair
    # can ask): more than the chooser lets a closed mouth lend for
    sched = EditSchedule((EditEntry(short.track_id, "jaw_open", StrengthCurve.over_range(1.0, 5, 11, 2)),))
    plan = plan_track(short.track_id, short.frame_indices, short.times, short.segment_ids, short.landmarks,
                      short.blendshapes, short.confidence, sched, named_controls(), PlanConfig(clamp_to_range=False))
    _, comp, events = prepare_texture([plan], {short.track_id: short}, CLIP,
                                      config=TextureConfig(opened_mouth=False))
    comp.close()
    assert [e for e in events if e["action"] == "clamp" and e["region"] == "mouth"]
    plans, comp, events = prepare_texture([plan], {short.track_id: short}, CLIP)
    try:
        assert not [e for e in events if e["action"] == "clamp" and e["region"] == "mouth"]
        tex = [e for e in events if e["action"] == "texture" and e["region"] == "mouth"]
        made = {s for e in tex for s in e["exemplars"] if s.startswith("reference:mouth opened to ")}
        assert made and all(int(m.rsplit(" ", 1)[1]) < CLOSED_MOUTH_FRAMES for m in made)
        wanted = float(raw_features(plan.after, "mouth")[:, 0].max())
        widest = max(float(raw_features(r.landmarks, "mouth")[0]) for r in comp.track_references[short.track_id]
                     if r.name.startswith("mouth opened"))
        assert widest == pytest.approx(wanted, rel=0.1)
        # The borrowed mouth, laid on the planned (open) geometry, reads open to the landmarker.
        row = int(np.searchsorted(plans[0].frame_indices, 8))
        with VideoReader(CLIP) as r:
            frame = r.frame_at(8).image
        out = comp(frame, 8, plans[0], row)
        with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
            read = [float(raw_features(lm.detect_image(img)[0].landmarks, "mouth")[0]) for img in (frame, out)]
        assert read[0] < 0.01 and read[1] > read[0] + 0.5 * (wanted - read[0])
    finally:
        comp.close()


def _dark_area(image: np.ndarray, polygon: np.ndarray, lit: float) -> int:
    """Pixels inside ``polygon`` (frame pixels) darker than a third of ``lit`` (the lips'
    brightness before the edit): the mouth's open inside."""
    x0, y0 = np.floor(polygon.min(axis=0)).astype(int) - 2
    x1, y1 = np.ceil(polygon.max(axis=0)).astype(int) + 3
    crop = cv2.cvtColor(image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY).astype(np.float64)
    inside = np.zeros(crop.shape, np.uint8)
    cv2.fillPoly(inside, [np.round(polygon - (x0, y0)).astype(np.int32)], 1)
    return int((crop[inside > 0] < lit / 3).sum())


def test_a_mouth_opening_eases_in_with_its_gap(tmp_path) -> None:
    """On the clip's closed-mouth frames a jaw opening eased in over five frames borrows a made
    mouth on the ease too (``Region.run_need``): the dark gap between the lips grows with the
    planned opening, frame by frame, instead of the lips stretching until the need starts and
    the gap then coming in at once (before: no dark pixel on frames 5-6, opened 0.015 and 0.028
    IOD, half the peak's gap per opening on 7)."""
    from plugin.edit_job import EditJob, run_edit
    from plugin.pipeline import RenderJob
    from plugin.video import VideoReader
    from plugin.writer import OutputConfig, VideoWriter
    from synthesis.regions import LIPS, LIPS_INNER_LOWER, LIPS_INNER_UPPER

    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    clip = tmp_path / "closed.mp4"
    with VideoReader(CLIP) as reader, VideoWriter(clip, reader, OutputConfig(codec="ffv1", overwrite=True), {}) as w:
        for f in reader:
            if f.index >= CLOSED_MOUTH_FRAMES:
                break
            w.write(f)
    sched = EditSchedule((EditEntry(0, "jaw_open", StrengthCurve.over_range(0.4, 8, 12, 5)),))
    out = tmp_path / "open.mp4"
    summary = run_edit(EditJob(RenderJob(clip, out, OutputConfig(codec="ffv1", overwrite=True)), sched,
                               cache_dir=tmp_path / "cache"))
    plan = summary.plans[0]
    ease = range(3, 9)
    rows = np.searchsorted(plan.frame_indices, ease)
    change = raw_features(plan.after[rows], "mouth")[:, 0] - raw_features(plan.before[rows], "mouth")[:, 0]
    assert np.all(np.diff(change) >= 0) and change[-1] > 0.04  # the ease, opening to past the need's start
    ring = list(LIPS_INNER_UPPER) + list(LIPS_INNER_LOWER)[::-1]
    lips = plan.before[rows[0]][list(LIPS), :2]
    (x0, y0), (x1, y1) = np.floor(lips.min(axis=0)).astype(int), np.ceil(lips.max(axis=0)).astype(int)
    with VideoReader(clip) as reader:
        lit = float(np.median(cv2.cvtColor(reader.frame_at(ease[0]).image[y0:y1, x0:x1], cv2.COLOR_RGB2GRAY)))
    with VideoReader(out) as reader:
        dark = np.array([_dark_area(reader.frame_at(f).image, plan.after[r][ring, :2], lit)
                         for f, r in zip(ease, rows)])
    assert dark[-1] > 100  # the full opening shows its inside
    # from a quarter of the peak's opening on, the dark gap's area follows the planned opening
    # (within a factor of two of the peak's area per opening), frame by frame
    shown = change > 0.25 * change[-1]
    assert shown.sum() >= 3
    per = (dark / change)[shown] / (dark[-1] / change[-1])
    assert np.all((per > 0.5) & (per < 2.0)), per


def test_sources_tried_are_spread_over_the_equally_good_frames() -> None:
    # frames 10-19 all about as open (an occluder may sit over any run of them), 30 a little
    # less: the tries are the best first, then spread over the run, not its neighbours
    score = np.zeros(40)
    score[10:20] = 0.1 + 0.001 * np.arange(10)
    score[30] = 0.05
    rows = np.arange(40)
    order = texture_stage.source_order(rows, score, tol=0.01)
    assert order[0] == 19 and len(order) == texture_stage.SOURCE_TRIES
    assert sorted(order) == [10, 13, 16, 19]
    # nothing else within the tolerance: the best, then the next best
    assert texture_stage.source_order(rows, score, tol=0.0)[:2] == [19, 18]
    assert texture_stage.source_order(np.array([], np.int64), score, tol=0.01) == []


def test_a_second_pass_on_clamped_plans_keeps_the_first_clamp(lp_track) -> None:
    # Swap repair prepares texture twice: before its closed loop and on the refined plans.
    short = _before_blink(lp_track)
    tracks = {short.track_id: short}
    plans, comp, first = prepare_texture([_blink_plan(short)], tracks, CLIP, config=NO_LIDS)
    comp.close()
    again, comp, second = prepare_texture(plans, tracks, CLIP, config=NO_LIDS)
    comp.close()
    f1 = {tuple(e["frames"]): e["factor"] for e in first if e["action"] == "clamp"}
    low1 = min(f1.values())
    assert low1 < 0.9
    # Alone, the second pass under-states the clamp: near 1, or no clamp at all.
    assert min([e["factor"] for e in second if e["action"] == "clamp"], default=1.0) > low1 + 0.05
    chained = chain_texture_events(first, second)
    clamps = [e for e in chained if e["action"] == "clamp"]
    assert [e["region"] for e in clamps] == ["eye_left"] * len(clamps)
    clamped = {f for e in clamps for f in range(e["frames"][0], e["frames"][1] + 1)}
    assert clamped >= {f for a, b in f1 for f in range(a, b + 1)}
    assert low1 * 0.95 <= min(e["factor"] for e in clamps) <= low1
    # No frame the first pass clamped is called "within what a warp shows".
    for e in chained:
        if e["action"] == "warp_only":
            assert not clamped & set(range(e["frames"][0], e["frames"][1] + 1))
    assert [e for e in chained if e["action"] == "texture"] == [e for e in second if e["action"] == "texture"]


def test_chained_factors_multiply_per_frame() -> None:
    first = [{"face": 0, "region": "eye_left", "frames": [4, 6], "action": "clamp", "reason": "r", "factor": 0.5}]
    second = [{"face": 0, "region": "eye_left", "frames": [6, 8], "action": "clamp", "reason": "r", "factor": 0.8},
              {"face": 0, "region": "mouth", "frames": [1, 9], "action": "warp_only", "reason": "w"},
              {"face": 0, "region": "eye_left", "frames": [3, 5], "action": "warp_only", "reason": "w"}]
    out = chain_texture_events(first, second)
    assert out == [
        {"face": 0, "region": "eye_left", "frames": [4, 8], "action": "clamp", "reason": "r", "factor": 0.4},
        {"face": 0, "region": "eye_left", "frames": [3, 3], "action": "warp_only", "reason": "w"},
        {"face": 0, "region": "mouth", "frames": [1, 9], "action": "warp_only", "reason": "w"},
    ]


def _closure(before: Path, after: Path, cache: Path, frames=range(12, 19)) -> float:
    """Median left-eye closure re-read on ``after``'s ``frames``: 1 - its lid gap over ``before``'s."""
    gaps = []
    for clip in (before, after):
        track = run_analysis(clip, cache_dir=cache).analysis.tracks[0]
        gaps.append(raw_features(track.landmarks[np.isin(track.frame_indices, list(frames))], "eye_left")[:, 0])
    return float(np.median(1.0 - gaps[1] / gaps[0]))


def _lid_gap(lm) -> float:
    """Pixels between the left eye's upper and lower lid midpoints."""
    return float(np.linalg.norm(lm[LEFT_LIDS[0], :2] - lm[LEFT_LIDS[1], :2]))


def test_a_faded_in_reference_is_laid_on_at_its_own_closure(lp_track, closed_still, monkeypatch) -> None:
    """The ramp frames of a blink whose only closed eye is a reference still get that still faded
    in (``Choice.fade`` < 1), laid on at its own, more closed state (``Choice.extend`` > 1): the
    geometry given to ``transfer_region`` closes the lid further than the frame's planned one
    (a closed lid on the half-open geometry would stretch its lash line into a dark band), and
    stays the plan's away from the eye. Rows not faded in are laid on at the planned geometry."""
    from plugin.video import VideoReader

    short = _before_blink(lp_track)
    plans, comp, _ = prepare_texture([_blink_plan(short)], {short.track_id: short}, CLIP, closed_still)
    plan = plans[0]
    (job,) = comp.jobs[short.track_id]
    ch = job.choice
    assert job.region.name == "eye_left" and ch.extend is not None and ch.fade is not None
    extended = np.flatnonzero(ch.extend > 1).tolist()
    assert extended  # the ramp frames have no exemplar of their own: the still is faded in
    assert (ch.fade[extended] < 1).all() and (ch.extend[ch.fade == 1] == 1).all()
    assert all(ch.candidates[ch.first[r], 0] == 1 for r in extended)  # source 1: the reference

    calls = []  # the geometry each transfer_region call lays the exemplar on
    original = texture_stage.transfer_region

    def recording(frame, target_landmarks, *args, **kwargs):
        calls.append(np.array(target_landmarks))
        return original(frame, target_landmarks, *args, **kwargs)

    monkeypatch.setattr(texture_stage, "transfer_region", recording)
    targets = {}
    try:
        with VideoReader(CLIP) as reader:
            for row in np.flatnonzero(job.weights > 0).tolist():
                f = int(plan.frame_indices[row])
                comp(reader.frame_at(f).image, f, plan, row)
                (targets[row],) = calls  # one region borrows: one call per row
                calls.clear()
    finally:
        comp.close()
    assert set(extended) <= set(targets)

    near = texture_stage._clamp_weights(job.region)  # 1 on the eye, falling to 0 around it
    for row in extended:
        before, after, target = plan.before[row], plan.after[row], targets[row]
        assert _lid_gap(before) > _lid_gap(after) > _lid_gap(target)  # closed further than planned
        lids = before[LEFT_LIDS[1], :2] - before[LEFT_LIDS[0], :2]  # upper lid to lower lid
        assert np.dot(target[LEFT_LIDS[1], :2] - target[LEFT_LIDS[0], :2], lids) > 0  # not past shut
        np.testing.assert_allclose(target[near == 0], after[near == 0], atol=1e-4)
        # the extension fades out toward the region's edge, where the exemplar joins the frame
        change = np.linalg.norm(after - before, axis=1)
        extra = np.linalg.norm(target - after, axis=1) / np.maximum(change, 1e-9)
        moved = change > 0.01
        assert (moved & (near < 1)).any()
        assert extra[moved & (near < 1)].max() < extra[moved & (near == 1)].min()
    for row in set(targets) - set(extended):
        assert np.array_equal(targets[row], plan.after[row])


@pytest.mark.slow
def test_edit_job_takes_a_reference_still_where_the_clip_has_no_closed_eye(tmp_path) -> None:
    """End to end: liveportrait cut before its blink; with its frame 66 as a --reference still
    the blink borrows it, without it the blink is clamped; both are in the run summary."""
    from plugin.edit_job import EditJob, run_edit
    from plugin.pipeline import RenderJob
    from plugin.video import VideoReader
    from plugin.writer import OutputConfig, VideoWriter

    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    cut, still = tmp_path / "cut.mkv", tmp_path / "closed.png"
    with VideoReader(CLIP) as reader:
        with VideoWriter(cut, reader, OutputConfig(codec="ffv1", overwrite=True), {}) as writer:
            for f in reader:
                if f.index >= 30:
                    break
                writer.write(f)
        cv2.imwrite(str(still), reader.frame_at(66).image[:, :, ::-1])
    sched = EditSchedule((EditEntry(0, "blink_left", StrengthCurve.over_range(1.0, 10, 20, 2)),))
    actions, closure = {}, {}
    for label, refs, config in (("clamp", (), NO_LIDS), ("made", (), TextureConfig()), ("ref", (still,), NO_LIDS)):
        out = tmp_path / f"{label}.mkv"
        summary = run_edit(EditJob(RenderJob(cut, out, OutputConfig(codec="ffv1", overwrite=True)), sched,
                                   cache_dir=tmp_path / "cache", references=refs, texture=config))
        actions[label] = summary.texture
        assert summary.as_dict()["texture"] == summary.texture
        closure[label] = _closure(cut, out, tmp_path / "cache")
    assert any(e["action"] == "clamp" and e["region"] == "eye_left" for e in actions["clamp"])
    lent = [x for e in actions["ref"] if e["action"] == "texture" for x in e["exemplars"]]
    assert any(x.startswith("reference:") for x in lent)
    made = [x for e in actions["made"] if e["action"] == "texture" for x in e["exemplars"]]
    assert any(x.startswith("reference:closed lids made from frame ") for x in made)
    assert not any(e["action"] == "clamp" and e["region"] == "eye_left" for e in actions["made"])
    # Re-read on the output: the made lid closes the eye further than the clamped warp.
    assert closure["made"] > closure["clamp"] + 0.2


def test_transfer_in_place_writes_the_same_pixels_into_the_frame(astronaut_face) -> None:
    from plugin.texture_stage import transfer_region

    image, lm = astronaut_face
    shifted = np.roll(image, 3, axis=1)  # an exemplar whose mouth sits 3 px off its landmarks
    layers = [(shifted, lm, 1.0)]
    copy = transfer_region(image, lm, layers, REGIONS["mouth"])
    assert copy is not image and not np.array_equal(copy, image)
    mine = image.copy()
    same = transfer_region(mine, lm, layers, REGIONS["mouth"], in_place=True)
    assert same is mine and np.array_equal(mine, copy)
    # weight 0: nothing to do
    assert transfer_region(image, lm, layers, REGIONS["mouth"], weight=0.0) is image


def test_full_weight_need_is_validated() -> None:
    from tracking.errors import ConfigError

    with pytest.raises(ConfigError):
        TextureConfig(full_weight_need=0.0)
    assert TextureConfig(full_weight_need=1.0).full_weight_need == 1.0
