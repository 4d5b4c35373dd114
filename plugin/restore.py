"""The restore job: track a plate and its swap, plan the correction, render it onto the swap.

Orchestration only (the maths is ``synthesis.restore``). Steps: check that the two inputs hold
the same frames (count, size; image sequences: the same file stems), analyse both (cached, as
every command does), match faces and plan the correction per face, close the loop on each plan
(:func:`refine_plan`: render the planned frames, re-detect the face, add the shortfall of the
change achieved against the change planned, on the points the warp can move in full: a face cut
by the picture's border has made-up points outside it, and the warp fades at its edge), add any
edit list (face ids are the swap's track ids, as ``deltaface track SWAPPED`` prints), render the swapped clip through
the edit stage (and the bridge stage with ``bridge``), then, with ``verify``, track the output
and measure the divergence that is left on every fixed range.

Bridging a frame in which the swap has no trackable face: the nearest swap frame (within
``RestoreConfig.bridge_max_frames``) whose face was found is warped so that its face takes the
plate's pose, expression and place in the lost frame (``synthesis.restore.bridge_target``); the
warped frame is pasted inside the face oval grown by :data:`BRIDGE_GROW`, with a feathered
edge (the smear a lost face leaves reaches past the oval, and the warp carries the neighbour's
forehead, hair and jaw along with the face), and the face itself is then rebuilt from the same
frame through the mesh's UV space (``plugin.texture_stage.rebuild_face``, the texture machinery
edits use: exact at every landmark, colour-matched to the pasted ring around it). Frames neither fixed nor bridged pass through untouched (bit-identical with a lossless
codec).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from compositing.crop import crop_for_landmarks
from compositing.crop import FaceCrop
from compositing.mask import face_oval
from compositing.support import picture_area
from plugin.analyze import AnalysisConfig, AnalysisResult, ProgressCallback, run_analysis
from plugin.edit_job import resolve_deltas, warn_if_interlaced
from plugin.editing import EditStage, RenderConfig, field_support, render_face, to_crop
from plugin.output import check_output_path
from plugin.pipeline import RenderJob, RenderSummary, run_render
from plugin.provenance import merge_ranges
from plugin.texture_stage import (
    Reference, TextureCompositor, TextureConfig, load_references, prepare_texture, rebuild_face,
)
from plugin.video import VideoReader, probe
from plugin.writer import OutputConfig
from synthesis.codespace import TrackCode, invert_track
from synthesis.plan import FacePlan, plan_track
from synthesis.regions import LEFT_BROW, LEFT_EYE, LIPS, RIGHT_BROW, RIGHT_EYE, inter_ocular
from synthesis.restore import (
    PairRestore, RestoreConfig, bridge_target, combine_plans, divergence, match_tracks, restore_pair,
)
from synthesis.restore_loop import loop_correction, smooth_correction
from synthesis.schedule import EditSchedule
from tracking.analysis import SOURCE_CODES, ClipAnalysis, Track
from tracking.errors import ConfigError, InputError
from tracking.frame import Frame
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.observation import Source

#: Feather of the bridged face's paste, as a fraction of the face's size.
BRIDGE_FEATHER = 0.04
#: The bridged paste covers the face oval grown this much about its centre: where a swap loses
#: the face it usually smears past the oval (forehead, hairline, jaw), and the good neighbour
#: frame's pixels there (moved with the face by the warp near it) are the better guess.
BRIDGE_GROW = 1.6
#: The loop takes the detected face nearest the planned one, if within this many inter-ocular
#: distances (mean over the mesh points); else the frame keeps the open-loop plan.
REFINE_MATCH_IOD = 0.5
#: The loop's figures (``shortfall_iod_*``) are read on the mesh points the plan moves at least
#: this far (inter-ocular distances): elsewhere only the detector's noise is measured.
REFINE_STAT_MIN_IOD = 0.01
#: The loop closes the shortfall only on points where the warp's support (the fades at the
#: picture's edge and below the jaw, ``plugin.editing.field_support``) is at least this, before
#: and after the change: elsewhere the warp cannot deliver it (:func:`reachable_points`).
REFINE_MIN_SUPPORT = 0.9
#: Point sets whose mean change the loop's ``feature_shortfall`` figures compare: brows, lids,
#: lips and irises, each side apart.
FEATURES = (LEFT_BROW, RIGHT_BROW, LEFT_EYE, RIGHT_EYE, LIPS, tuple(range(468, 473)), tuple(range(473, 478)))


@dataclass(frozen=True)
class RestoreJob:
    """One restore: the plate, the swap, where to write, and how.

    Attributes:
        plate: the original frames (video or image-sequence folder); read only.
        swapped: the same frames after the swap; read only.
        output: the repaired swap (a folder for png output).
        output_config: codec and quality.
        config: thresholds and limits.
        bridge: fill frames where the swap lost the face from the nearest good swap frame.
        schedule: extra edits of the swap's faces (track ids of the swapped clip).
        plate_faces: plate track ids to restore (None: every matched face).
        verify: track the output and measure the divergence left on each fixed range.
        texture: region textures borrowed from other frames of the swap's own track where the
            correction changes a region's state (an eye the swap kept open while the plate
            blinks), as edits do (``plugin.texture_stage``); None: warp only.
        references: stills or clips of the SWAPPED identity (for example DeepFaceLab's
            ``data_src/aligned`` images) lending region texture where the swap's own frames have
            none in the needed state (an eye the swap never closes); never the plate's person.
        reference_stills: such stills already read (``plugin.texture_stage.load_references``),
            used as well.
    """

    plate: Path
    swapped: Path
    output: Path
    output_config: OutputConfig = field(default_factory=OutputConfig)
    config: RestoreConfig = field(default_factory=RestoreConfig)
    bridge: bool = False
    schedule: EditSchedule | None = None
    plate_faces: tuple[int, ...] | None = None
    verify: bool = True
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    render_config: RenderConfig = field(default_factory=RenderConfig)
    cache_dir: Path | None = None
    use_cache: bool = True
    texture: TextureConfig | None = field(default_factory=TextureConfig)
    references: tuple[Path, ...] = ()
    reference_stills: tuple[Reference, ...] = ()


@dataclass(frozen=True, eq=False)
class RestorePlan:
    """Everything decided before rendering.

    ``refinement`` holds the closed loop's figures per swap face (:func:`refine_plan`);
    ``texture`` the compositor the edit stage calls (None: warp only; :meth:`close` releases it)
    and ``texture_events`` where region textures came from or an edit was clamped.
    """

    plate: AnalysisResult
    swapped: AnalysisResult
    restores: tuple[PairRestore, ...]
    plans: tuple[FacePlan, ...]
    bridges: dict[int, list[tuple[int, NDArray[np.float32], NDArray[np.float64]]]]
    refinement: dict[int, dict[str, Any]] = field(default_factory=dict)
    texture: TextureCompositor | None = None
    texture_events: list[dict[str, Any]] = field(default_factory=list)

    def close(self) -> None:
        if self.texture is not None:
            self.texture.close()


@dataclass(frozen=True, eq=False)
class RestoreSummary:
    """What a restore job did."""

    plate: Path
    plan: RestorePlan
    render: RenderSummary
    ranges: list[dict[str, Any]]
    lost: dict[int, list[list[int]]]
    bridged: list[list[int]]
    verified: bool

    def as_dict(self) -> dict[str, Any]:
        return {
            "plate": str(self.plate),
            "swapped": str(self.render.input),
            "output": str(self.render.output),
            "frames": self.render.frames_written,
            "faces": [{"plate_face": r.pair.plate_id, "swap_face": r.pair.swap_id,
                       "matched_frames": int(r.pair.frame_indices.size)} for r in self.plan.restores],
            "fixed_ranges": self.ranges,
            "lost_frames_by_face": {str(k): v for k, v in self.lost.items()},
            "border_limited_frames_by_face": {
                str(r.pair.plate_id): merge_ranges((int(f), int(f)) for f in r.border_limited)
                for r in self.plan.restores if r.border_limited.size},
            "bridged_frames": self.bridged,
            "closed_loop": {str(k): v for k, v in self.plan.refinement.items()},
            "texture": self.plan.texture_events,
            "verified_by_retracking": self.verified,
        }


def _check_inputs(plate: Path, swapped: Path) -> int:
    a, b = probe(plate), probe(swapped)
    if (a.width, a.height) != (b.width, b.height):
        raise InputError(f"{swapped}: frames are {b.width}x{b.height}, the plate {plate} is {a.width}x{a.height}")
    if a.num_frames != b.num_frames:
        raise InputError(f"{swapped}: {b.num_frames} frames, the plate {plate} has {a.num_frames}; "
                         "restore needs the same frames twice")
    if a.is_image_sequence and b.is_image_sequence and a.stems != b.stems:
        odd = sorted(set(a.stems) ^ set(b.stems))[:3]
        raise InputError(f"{swapped}: file names differ from the plate's {plate} (e.g. {', '.join(odd)})")
    return a.num_frames


def _track_code(track: Track) -> TrackCode:
    conf = np.asarray(track.confidence, np.float64)
    return invert_track(track.landmarks, track.blendshapes, conf if conf.sum() > 0 else None)


def plan_restore(job: RestoreJob, progress: ProgressCallback | None = None,
                 refine_progress: ProgressCallback | None = None) -> RestorePlan:
    """Analyse both inputs and plan the correction (nothing is written but analysis caches).

    ``progress`` follows the two analyses, ``refine_progress`` the closed loop
    (:func:`refine_plan`, per face: frames refined of those planned).

    Raises:
        InputError: the inputs do not hold the same frames.
        ConfigError: the edit list names an unknown face or delta.
    """
    _check_inputs(job.plate, job.swapped)
    kw: dict[str, Any] = dict(cache_dir=job.cache_dir, use_cache=job.use_cache, progress=progress)
    plate = run_analysis(job.plate, job.analysis, **kw)
    swapped = run_analysis(job.swapped, job.analysis, **kw)
    ptracks = {t.track_id: t for t in plate.analysis.tracks}
    stracks = {t.track_id: t for t in swapped.analysis.tracks}
    if job.plate_faces is not None:
        unknown = sorted(set(job.plate_faces) - set(ptracks))
        if unknown:
            raise ConfigError(f"{job.plate}: no face with id {', '.join(map(str, unknown))}")
        ptracks = {k: v for k, v in ptracks.items() if k in job.plate_faces}
    pairs = match_tracks(list(ptracks.values()), list(stracks.values()), job.config.match_min_iou)
    restores, plans = [], []
    bridges: dict[int, list[tuple[int, NDArray[np.float32], NDArray[np.float64]]]] = {}
    refinement: dict[int, dict[str, Any]] = {}
    info = probe(job.swapped)
    warn_if_interlaced(info)
    refs = [*job.reference_stills, *(load_references(job.references) if job.references else [])] \
        if job.texture is not None else []
    for pair in pairs:
        pt, st = ptracks[pair.plate_id], stracks[pair.swap_id]
        pc, sc = _track_code(pt), _track_code(st)
        r = restore_pair(pair, pt, st, job.config, pc, sc, (info.height, info.width))
        if job.config.refine_rounds > 0 and r.plan.frame_indices.size:
            plan, comp = r.plan, None
            if job.texture is not None:
                (plan,), comp, _ = prepare_texture([plan], stracks, job.swapped, refs, job.texture)
            try:
                plan, refinement[pair.swap_id] = refine_plan(job.swapped, plan, job.config, job.render_config,
                                                             (info.height, info.width), comp, refine_progress)
            finally:
                if comp is not None:
                    comp.close()
            r = dataclasses.replace(r, plan=plan)
        restores.append(r)
        plans.append(r.plan)
        if job.bridge:
            for f, src, target in _bridge_jobs(r, pt, st, pc, sc, job.config.bridge_max_frames):
                bridges.setdefault(f, []).append((src, st.landmarks[st.row(src)], target))
    if job.schedule is not None and len(job.schedule.face_ids()):
        deltas = resolve_deltas(job.schedule.delta_names())
        unknown = sorted(set(job.schedule.face_ids()) - set(stracks))
        if unknown:
            raise ConfigError(f"{job.swapped}: no face with id {', '.join(map(str, unknown))} "
                              f"(edit lists name the swapped clip's faces: {sorted(stracks)})")
        for fid in sorted(set(job.schedule.face_ids())):
            t = stracks[fid]
            plans.append(plan_track(fid, t.frame_indices, t.times, t.segment_ids, t.landmarks, t.blendshapes,
                                    t.confidence, job.schedule, deltas))
    final = combine_plans(plans)
    compositor, events = None, []
    if job.texture is not None and final:
        final, compositor, events = prepare_texture(final, stracks, job.swapped, refs, job.texture)
    return RestorePlan(plate, swapped, tuple(restores), tuple(final), bridges, refinement, compositor, events)


def _detect_near(lm: Landmarker, image: NDArray[np.uint8], near: NDArray[np.floating]) -> NDArray[np.float64] | None:
    """The detected face (``(478, 3)`` pixels) closest to ``near``; None when none is within
    :data:`REFINE_MATCH_IOD` inter-ocular distances (mean over the mesh points)."""
    ref = np.asarray(near, np.float64)
    best, dist = None, REFINE_MATCH_IOD * inter_ocular(ref)
    for face in lm.detect_image(image):
        d = float(np.linalg.norm(face.landmarks[:468, :2] - ref[:468, :2], axis=1).mean())
        if d < dist:
            best, dist = np.asarray(face.landmarks, np.float64), d
    return best


def reachable_points(before: NDArray[np.floating], after: NDArray[np.floating], crop: FaceCrop,
                     render_config: RenderConfig, picture: tuple[int, int, int, int] | None = None
                     ) -> NDArray[np.bool_]:
    """``(478,)`` bool: the points whose planned change the warp can show in full.

    The warp's displacement is weighted by :func:`plugin.editing.field_support` (it fades at the
    picture's edge and below the jaw line); a point where that weight, read at its place before
    and after the change, is under :data:`REFINE_MIN_SUPPORT`, or that lies outside the crop or
    the picture, is not reachable.

    Args:
        before, after: ``(478, 2|3)`` frame pixels.
        crop: the face's crop (``EditStage.face_crop``).
        render_config: as the render uses.
        picture: the frame's picture area ``(x0, y0, x1, y1)``, exclusive ends (None: the whole frame).
    """
    h, w = crop.frame_size
    x0, y0, x1, y1 = picture or (0, 0, w, h)
    ok = np.ones(len(before), bool)
    pts = []
    for frame_pts in (before, after):
        p = np.asarray(frame_pts, np.float64)[:, :2]
        ok &= (p[:, 0] >= x0) & (p[:, 0] <= x1 - 1) & (p[:, 1] >= y0) & (p[:, 1] <= y1 - 1)
        pts.append(to_crop(p, crop))
    support = field_support(pts[0], pts[1], crop, render_config, picture)
    weight = None if support is None else support.detach().cpu().numpy()
    for c in pts:
        ij = np.round(c).astype(np.int64)
        inside = (ij >= 0).all(axis=1) & (ij < crop.size).all(axis=1)
        ok &= inside
        if weight is not None:
            val = np.zeros(len(c))
            val[inside] = weight[ij[inside, 1], ij[inside, 0]]
            ok &= val >= REFINE_MIN_SUPPORT
    return ok


def refine_plan(swapped: Path, plan: FacePlan, config: RestoreConfig, render_config: RenderConfig,
                frame_size: tuple[int, int], texture: TextureCompositor | None = None,
                progress: ProgressCallback | None = None) -> tuple[FacePlan, dict[str, Any]]:
    """Close the loop on a restore plan: make the re-detected face show the planned change.

    Each planned frame of the swap is rendered with the plan, the face is detected in the
    rendered frame and in the input frame (IMAGE mode, the same detector both times, so that its
    biases cancel), and the change it shows is compared with the planned change
    (:func:`synthesis.restore_loop.loop_correction`); the shortfall is added and the frame rendered
    again, ``config.refine_rounds`` times. The corrections are then smoothed over time and faded
    with the restore weight (:func:`synthesis.restore_loop.smooth_correction`). Frames where no face is
    detected keep the open-loop plan. Only the points the warp can move in full
    (:func:`reachable_points`) are compared and corrected; a frame with none keeps the open-loop
    plan too.

    Args:
        swapped: the swapped clip (frames are decoded in order; only planned frames are used).
        plan: the restore plan of one face (``strengths["restore"]`` is its weight).
        config: ``refine_*`` and ``smooth_sigma_frames`` are used.
        render_config: as the final render uses.
        frame_size: ``(height, width)``.
        texture: the region-texture compositor the final render will call (rendered frames in the
            loop go through it too).
        progress: optional ``progress(done, total)`` after each planned frame (the loop renders
            three times and detects four times per frame: the slowest part of a restore).

    Returns:
        The plan with the correction added to ``after``, and figures for the summary:
        ``shortfall_iod_before`` / ``shortfall_iod_after`` (mean over planned frames and the mesh
        points the plan moves, :data:`REFINE_STAT_MIN_IOD`, of |planned - achieved change|, in
        inter-ocular distances, with the open-loop plan and after the last round),
        ``feature_shortfall_iod_before`` / ``_after`` (the same for the mean change of each of
        :data:`FEATURES`: what blendshapes read; reachable points only), ``frames_refined``,
        ``frames_partly_unreachable`` (refined frames where some of the points the plan moves
        were left out: cut by the picture's border, say).
    """
    stage = EditStage([plan], frame_size, render_config)
    rows = {int(f): k for k, f in enumerate(plan.frame_indices)}
    planned = (plan.after - plan.before).astype(np.float64)
    corr = np.zeros(plan.after.shape, np.float64)
    first, last, done = [], [], np.zeros(len(rows), bool)
    partial = 0
    work = plan.after.copy()
    live = dataclasses.replace(plan, after=work)  # the texture hook reads ``after`` of the frame's row
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm, \
            VideoReader(swapped) as reader:
        for frame in reader:
            k = rows.get(frame.index)
            if k is None:
                continue
            if progress is not None:
                progress(k, len(rows))
            crop = stage.face_crop(plan.track_id, frame.index)
            src = _detect_near(lm, frame.image, plan.before[k])
            if src is None or crop is None:
                continue
            iod = inter_ocular(plan.before[k])
            picture = picture_area(frame.image)
            valid = reachable_points(plan.before[k], plan.after[k], crop, render_config, picture)
            if not valid[:468].any():
                continue
            moving = np.linalg.norm(planned[k, :468, :2], axis=1) >= REFINE_STAT_MIN_IOD * iod
            partial += int((moving & ~valid[:468]).any())
            moving &= valid[:468]
            feats = [ix for ix in (np.asarray(f)[valid[list(f)]] for f in FEATURES) if ix.size]
            c = np.zeros((plan.after.shape[1], 3))
            for rnd in range(config.refine_rounds + 1):
                work[k] = plan.after[k] + c
                image, _ = render_face(frame.image, plan.before[k], work[k], crop, render_config, stage.device,
                                       picture=picture)
                if texture is not None:
                    image = texture(image, frame.index, live, k)
                out = _detect_near(lm, image, plan.after[k] + c)
                if out is None:
                    break
                short = (planned[k] - (out - src))[:, :2]
                miss = np.linalg.norm(short[:468], axis=1)
                gap = float(miss[moving].mean() if moving.any() else miss[valid[:468]].mean()) / iod
                feat = float(np.mean([np.linalg.norm(short[ix].mean(axis=0)) for ix in feats])) / iod if feats else 0.0
                if rnd == 0:
                    first.append((gap, feat))
                if rnd == config.refine_rounds:
                    last.append((gap, feat))
                    break
                c = loop_correction(planned[k], out - src, c, iod, config.refine_gain, config.refine_max_iod,
                                    config.refine_smooth_rounds, valid)
            corr[k], done[k] = c, True
    if progress is not None:
        progress(len(rows), len(rows))
    weights = plan.strengths.get("restore", np.ones(len(rows)))
    corr = smooth_correction(corr, plan.frame_indices, weights, config.smooth_sigma_frames)
    corr[~done] = 0.0
    refined = dataclasses.replace(plan, after=(plan.after + corr).astype(np.float32))
    stats: dict[str, Any] = {"frames_refined": int(done.sum()), "frames_partly_unreachable": partial}
    for key, vals in (("before", first), ("after", last)):
        stats[f"shortfall_iod_{key}"] = round(float(np.mean([v[0] for v in vals])), 4) if vals else None
        stats[f"feature_shortfall_iod_{key}"] = round(float(np.mean([v[1] for v in vals])), 4) if vals else None
    return refined, stats


def _bridge_jobs(r: PairRestore, pt: Track, st: Track, pc: TrackCode, sc: TrackCode,
                 max_frames: int) -> list[tuple[int, int, NDArray[np.float64]]]:
    """(lost frame, source frame, target landmarks) for each lost frame with a good frame near.

    The source is the nearest swap frame where the swap's face was found (fixed or not: its
    input pixels and tracked landmarks are what is warped).
    """
    good_frames = st.frame_indices[st.sources != SOURCE_CODES[Source.BRIDGED]]
    out = []
    for f in r.lost:
        prow = pt.row(int(f))
        if prow is None or good_frames.size == 0:
            continue
        k = int(good_frames[np.argmin(np.abs(good_frames - f))])
        if abs(k - int(f)) > max_frames:
            continue
        out.append((int(f), k, bridge_target(pc, prow, sc, r.offset, r.scale_ratio, r.expression_offset)))
    return out


class BridgeStage:
    """Render stage pasting the nearest good swap frame's face, warped, into lost frames.

    Args:
        swapped: the swapped clip (frames are read from it by index).
        jobs: per lost frame, ``(source frame, (478, 3) source landmarks, (478, 3) target)``.
        config: render settings.
    """

    latency = 0

    def __init__(self, swapped: Path, jobs: dict[int, list[tuple[int, NDArray[np.float32], NDArray[np.float64]]]],
                 config: RenderConfig) -> None:
        self._reader = VideoReader(swapped)
        self._jobs = jobs
        self.config = config
        self.done: list[int] = []

    def push(self, frame: Frame) -> list[Frame]:
        jobs = self._jobs.get(frame.index)
        if not jobs:
            return [frame]
        image = frame.image
        for src, before, target in jobs:
            source = self._reader.frame_at(src).image
            both = np.concatenate([before[:, :2], target[:, :2]])
            crop = crop_for_landmarks(both, image.shape[:2], out_size=None)
            warped, _ = render_face(source, before.astype(np.float64), target, crop, self.config)
            image = rebuild_face(_paste(image, warped, target), target, source, before)
        self.done.append(frame.index)
        return [Frame(frame.index, frame.pts, frame.time_base, image)]

    def flush(self) -> list[Frame]:
        self._reader.close()
        return []

    def reset(self) -> None:
        pass


def _paste(image: NDArray[np.uint8], face: NDArray[np.uint8], landmarks: NDArray[np.floating]) -> NDArray[np.uint8]:
    """``face`` over ``image`` inside the face oval of ``landmarks`` grown by :data:`BRIDGE_GROW`
    (feathered inward)."""
    oval = face_oval(landmarks)
    centre = oval.mean(axis=0)
    oval = (centre + BRIDGE_GROW * (oval - centre)).astype(np.float32)
    hull = cv2.convexHull(oval).astype(np.int32)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, hull, 255)
    size = float(np.ptp(oval, axis=0).max())
    sigma = max(BRIDGE_FEATHER * size, 1.0)
    inner = cv2.erode(mask, np.ones((3, 3), np.uint8), iterations=int(round(2 * sigma)))
    alpha = cv2.GaussianBlur(inner.astype(np.float32) / 255.0, (0, 0), sigma)[..., None]
    out = image.astype(np.float32) * (1 - alpha) + face.astype(np.float32) * alpha
    return np.where(alpha > 0, np.clip(np.round(out), 0, 255), image).astype(np.uint8)


def _range_rows(r: PairRestore, a: int, b: int) -> NDArray[np.intp]:
    fr = r.pair.frame_indices
    return np.flatnonzero((fr >= a) & (fr <= b) & ~r.pair.swap_lost)


def measure_output(plate: ClipAnalysis, output: ClipAnalysis, restores: Sequence[PairRestore],
                   config: RestoreConfig) -> dict[tuple[int, int], tuple[NDArray[np.int64], NDArray[np.float64],
                                                                        NDArray[np.float64]]]:
    """Per restored face: (frames, pose divergence, expression divergence) of the output vs the plate.

    The output is matched to the plate as the swap was (:func:`match_tracks`).
    """
    ptracks = {t.track_id: t for t in plate.tracks}
    otracks = {t.track_id: t for t in output.tracks}
    wanted = [ptracks[r.pair.plate_id] for r in restores]
    out = {}
    for pair in match_tracks(wanted, list(otracks.values()), config.match_min_iou):
        pt, ot = ptracks[pair.plate_id], otracks[pair.swap_id]
        pc, oc = _track_code(pt), _track_code(ot)
        _, pose, expr = divergence(pc.rotations[pair.plate_rows], oc.rotations[pair.swap_rows],
                                   pt.blendshapes[pair.plate_rows], ot.blendshapes[pair.swap_rows])
        out[(pair.plate_id, pair.swap_id)] = (pair.frame_indices, pose, expr)
    return out


def _stats(x: NDArray[np.float64]) -> dict[str, float] | None:
    return None if x.size == 0 else {"mean": round(float(x.mean()), 3), "max": round(float(x.max()), 3)}


def range_report(restores: Sequence[PairRestore], measured: dict[int, tuple[NDArray[np.int64], NDArray[np.float64],
                                                                           NDArray[np.float64]]] | None
                 ) -> list[dict[str, Any]]:
    """One entry per fixed range: divergence before, planned after and (measured) after."""
    rows = []
    for r in restores:
        for a, b in r.ranges:
            idx = _range_rows(r, a, b)
            entry: dict[str, Any] = {
                "plate_face": r.pair.plate_id, "swap_face": r.pair.swap_id, "frames": [a, b],
                "pose_divergence_deg_before": _stats(r.pose_div[idx]),
                "expression_divergence_before": _stats(r.expr_div[idx]),
                "pose_divergence_deg_planned": _stats(r.planned_pose_div[idx]),
                "rotation_clamped": bool(r.clamped[idx].any()),
                "border_limited": bool(np.isin(r.pair.frame_indices[idx], r.border_limited).any()),
            }
            if measured is not None:
                got = measured.get(r.pair.plate_id)
                if got is None:
                    entry["pose_divergence_deg_after"] = entry["expression_divergence_after"] = None
                else:
                    fr, pose, expr = got
                    sel = (fr >= a) & (fr <= b)
                    entry["pose_divergence_deg_after"] = _stats(pose[sel])
                    entry["expression_divergence_after"] = _stats(expr[sel])
            rows.append(entry)
    return rows


def run_restore(job: RestoreJob, progress: ProgressCallback | None = None,
                render_progress: ProgressCallback | None = None,
                refine_progress: ProgressCallback | None = None) -> RestoreSummary:
    """Plan, render and (with ``job.verify``) measure one restore.

    Raises:
        InputError: the inputs differ in frames, or cannot be read.
        ConfigError: see :func:`plan_restore`.
        OutputError: the output exists (without overwrite) or cannot be written.
    """
    oc = job.output_config
    check_output_path(job.output, overwrite=oc.overwrite, inputs=[job.plate, job.swapped], is_folder=oc.codec == "png")
    plan = plan_restore(job, progress, refine_progress)
    info = probe(job.swapped)
    stages: list[Any] = [EditStage(plan.plans, (info.height, info.width), job.render_config, texture=plan.texture)]
    bridge = BridgeStage(job.swapped, plan.bridges, job.render_config) if plan.bridges else None
    if bridge is not None:
        stages.append(bridge)
    by_face = {p.track_id: merge_ranges((f, f) for f in p.frame_indices) for p in plan.plans if p.frame_indices.size}
    if plan.bridges:
        for r in plan.restores:
            fr = [f for f in plan.bridges if f in set(int(x) for x in r.lost)]
            if fr:
                by_face[r.pair.swap_id] = merge_ranges([*by_face.get(r.pair.swap_id, []), *((f, f) for f in fr)])
    ranges = merge_ranges(x for rs in by_face.values() for x in rs)
    try:
        render = run_render(RenderJob(job.swapped, job.output, oc), stages, edited_ranges=[tuple(x) for x in ranges],
                            edited_by_face=by_face, progress=render_progress)
    finally:
        plan.close()
    measured = None
    if job.verify and plan.restores:
        out = run_analysis(job.output, job.analysis, cache_dir=job.cache_dir, use_cache=False)
        per_pair = measure_output(plan.plate.analysis, out.analysis, plan.restores, job.config)
        measured = {pid: v for (pid, _), v in per_pair.items()}
    lost = {r.pair.plate_id: merge_ranges((int(f), int(f)) for f in r.lost) for r in plan.restores if r.lost.size}
    bridged = merge_ranges((f, f) for f in (bridge.done if bridge is not None else []))
    return RestoreSummary(job.plate, plan, render, range_report(plan.restores, measured), lost, bridged,
                          measured is not None)
