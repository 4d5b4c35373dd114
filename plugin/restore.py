"""The restore job: track a plate and its swap, plan the correction, render it onto the swap.

Orchestration only (the maths is ``synthesis.restore``). Steps: check that the two inputs hold
the same frames (count, size; image sequences: the same file stems), analyse both (cached, as
every command does), match faces and plan the correction per face, close the loop on each plan
(``plugin.restore_loop.refine_plan``: render the planned frames, re-detect the face, add the shortfall of the
change achieved against the change planned, on the points the warp can move in full: a face cut
by the picture's border has made-up points outside it, and the warp fades at its edge), add any
edit list (face ids are the swap's track ids, as ``deltaface track SWAPPED`` prints), render the swapped clip through
the edit stage (and the bridge stage with ``bridge``), then, with ``verify``, track the output
and measure the divergence that is left on every fixed range.

Frames where the swap's face is found but garbled (``synthesis.consistency``: its texture
strays from the rest of its track far more than the plate's face does on the same frame;
:func:`detail_agreements` decodes both inputs once more for it) are not warped, and are bridged
like lost ones.

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
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from numpy.typing import NDArray

from compositing.crop import crop_for_landmarks
from compositing.fields import crop_box
from compositing.mask import face_oval
from compositing.occlusion import keep_covered
from plugin.analyze import AnalysisConfig, AnalysisResult, ProgressCallback, run_analysis
from plugin.edit_job import resolve_deltas, warn_about_source
from plugin.editing import EditStage, RenderConfig, render_face, tracked_faces
from plugin.occluder_pass import Occluders, occluders_on, shown_in
from plugin.output import check_output_path
from plugin.pipeline import RenderJob, RenderSummary, run_render
from plugin.provenance import merge_ranges
from plugin.restore_loop import refine_plan
from plugin.texture_stage import (
    Reference, TextureCompositor, TextureConfig, chain_texture_events, load_references, prepare_texture, rebuild_face,
)
from plugin.video import VideoReader, probe
from plugin.writer import OutputConfig
from synthesis.codespace import TrackCode, invert_track
from synthesis.consistency import detail_agreement, face_detail
from synthesis.frame_offset import Offset, agreed_lag, frame_offset
from synthesis.occluders import OccluderConfig
from synthesis.plan import FacePlan, plan_track
from synthesis.restore import (
    FacePair, PairRestore, RestoreConfig, bridge_target, combine_plans, divergence, garbled_rows, match_tracks,
    restore_pair,
)
from synthesis.schedule import EditSchedule
from tracking.analysis import SOURCE_CODES, TRACK_ARRAYS, ClipAnalysis, Track
from tracking.errors import ConfigError, InputError
from tracking.frame import Frame
from tracking.observation import Source

_log = logging.getLogger(__name__)

#: Feather of the bridged face's paste, as a fraction of the face's size.
BRIDGE_FEATHER = 0.04
#: The bridged paste covers the face oval grown this much about its centre: where a swap loses
#: the face it usually smears past the oval (forehead, hairline, jaw), and the good neighbour
#: frame's pixels there (moved with the face by the warp near it) are the better guess.
BRIDGE_GROW = 1.6
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
        offset: the swap's frame ``f + offset`` shows the plate's frame ``f`` (a swap exported
            that many frames late; negative: early). The swap's numbering is kept: the output
            has the swap's frames, and the plate's faces are compared with the swap frames that
            show them; frames with no plate frame to compare are left as they are.
        auto_offset: use the lag the head motion shows instead of ``offset`` where it is clear
            (``synthesis.frame_offset.agreed_lag``: every paired face with a clear lag shows the
            same one), else ``offset``.
        occluders: how what covers a repaired face (a hand, a microphone) is found, so that it
            keeps its pixels through the repair (``plugin.occluder_pass``; None: not looked
            for). A face paired with the plate's is looked at in the PLATE: the occluder is the
            same picture in both, and the swap's own failures (a melting face) would read as
            occluders in the swap; a face only scheduled (``schedule``) in the swap.
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
    offset: int = 0
    auto_offset: bool = False
    occluders: OccluderConfig | None = field(default_factory=OccluderConfig)


@dataclass(frozen=True, eq=False)
class RestorePlan:
    """Everything decided before rendering.

    ``refinement`` holds the closed loop's figures per swap face (``plugin.restore_loop.refine_plan``);
    ``texture`` the compositor the edit stage calls (None: warp only; :meth:`close` releases it)
    and ``texture_events`` where region textures came from or an edit was clamped. ``offsets``
    holds the frame lag each paired face's head motion shows (``synthesis.frame_offset``),
    ``offset`` the lag restored with (``RestoreJob.offset``), and ``plate_tracks`` the plate's
    tracks as compared: renumbered by that lag, so that rows of ``PairRestore.pair`` index them.
    """

    plate: AnalysisResult
    swapped: AnalysisResult
    restores: tuple[PairRestore, ...]
    plans: tuple[FacePlan, ...]
    bridges: dict[int, list[tuple[int, int, NDArray[np.float32], NDArray[np.float64]]]]
    refinement: dict[int, dict[str, Any]] = field(default_factory=dict)
    texture: TextureCompositor | None = None
    texture_events: list[dict[str, Any]] = field(default_factory=list)
    offsets: dict[int, Offset] = field(default_factory=dict)
    offset: int = 0
    plate_tracks: dict[int, Track] = field(default_factory=dict)

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
    garbled: dict[int, list[list[int]]] = field(default_factory=dict)
    #: what was found covering the repaired faces (``plugin.occluder_pass.Occluders.events``, swap face ids)
    occluders: list[dict[str, Any]] = field(default_factory=list)

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
            "garbled_frames_by_face": {str(k): v for k, v in self.garbled.items()},
            "border_limited_frames_by_face": {
                str(r.pair.plate_id): merge_ranges((int(f), int(f)) for f in r.border_limited)
                for r in self.plan.restores if r.border_limited.size},
            "bridged_frames": self.bridged,
            "closed_loop": {str(k): v for k, v in self.plan.refinement.items()},
            "texture": self.plan.texture_events + (self.plan.texture.covered_events() if self.plan.texture else []),
            "occluders": self.occluders,
            "frame_offset": self.plan.offset,
            "suspected_frame_offsets": {str(k): v.lag for k, v in self.plan.offsets.items() if v.suspect},
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


def detail_agreements(clip: Path, tracks: Sequence[Track],
                      progress: ProgressCallback | None = None) -> dict[int, dict[int, float]]:
    """Per track id and frame: how well the face's texture agrees with the rest of its track
    (``synthesis.consistency``; frames where the face was found, bridged rows left out). Decodes
    ``clip`` once (``progress``: frames read of the clip's)."""
    rows: dict[int, list[tuple[int, NDArray[np.int8], NDArray[np.bool_]]]] = {t.track_id: [] for t in tracks}
    found = {t.track_id: t.sources != SOURCE_CODES[Source.BRIDGED] for t in tracks}
    with VideoReader(clip) as reader:
        total = len(reader)
        for done, frame in enumerate(reader, 1):
            if progress is not None:
                progress(done, total)
            for t in tracks:
                row = t.row(frame.index)
                if row is not None and found[t.track_id][row]:
                    rows[t.track_id].append((row, *face_detail(frame.image, t.landmarks[row])))
    out: dict[int, dict[int, float]] = {}
    for t in tracks:
        got = rows[t.track_id]
        if not got:
            out[t.track_id] = {}
            continue
        r = np.array([g[0] for g in got])
        agree = detail_agreement(np.stack([g[1] for g in got]), np.stack([g[2] for g in got]), t.segment_ids[r])
        out[t.track_id] = {int(t.frame_indices[k]): float(v) for k, v in zip(r, agree)}
    return out


def _garbled(pair: FacePair, plate: dict[int, float], swap: dict[int, float], lag: int, drop: float) -> NDArray[np.bool_]:
    """Per pair row: the swap's face garbled there (``synthesis.restore.garbled_rows``); the
    plate's frame ``f`` was renumbered ``f + lag``."""
    fr = [int(f) for f in pair.frame_indices]
    return garbled_rows(np.array([plate.get(f - lag, np.nan) for f in fr]), np.array([swap.get(f, np.nan) for f in fr]), drop)


def plan_restore(job: RestoreJob, progress: ProgressCallback | None = None,
                 refine_progress: ProgressCallback | None = None) -> RestorePlan:
    """Analyse both inputs and plan the correction (nothing is written but analysis caches).

    ``progress`` follows the two analyses, ``refine_progress`` the closed loop
    (``plugin.restore_loop.refine_plan``, per face: frames refined of those planned).

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
    # garbled swap faces: each face's texture against its own track, plate and swap (as numbered)
    agreement: tuple[dict[int, dict[int, float]], dict[int, dict[int, float]]] | None = None
    if job.config.garbled_drop > 0 and ptracks and stracks:
        agreement = (detail_agreements(job.plate, list(ptracks.values()), progress),
                     detail_agreements(job.swapped, list(stracks.values()), progress))
    frame_times = swapped.analysis.frame_times
    lag = job.offset
    if job.auto_offset:
        unshifted = match_tracks(list(ptracks.values()), list(stracks.values()), job.config.match_min_iou)
        found = agreed_lag(_check_offsets(job, unshifted, ptracks, stracks, warn=False).values())
        lag = lag if found is None else found
        if lag:
            _log.info("%s: restoring with the swap %d frame(s) %s the plate", job.swapped, abs(lag),
                      "after" if lag > 0 else "before")
    if lag:
        ptracks = {k: t for k, t in ((k, shift_track(t, lag, frame_times)) for k, t in ptracks.items())
                   if t is not None}
    pairs = match_tracks(list(ptracks.values()), list(stracks.values()), job.config.match_min_iou)
    offsets = _check_offsets(job, pairs, ptracks, stracks)
    restores, plans = [], []
    first_events: list[dict[str, Any]] = []  # the clamps made before the closed loop
    # lids and mouths made from the swap's frames, once for both passes
    lids: dict[int, list[Reference]] = {}
    mouths: dict[int, list[Reference]] = {}
    bridges: dict[int, list[tuple[int, int, NDArray[np.float32], NDArray[np.float64]]]] = {}
    refinement: dict[int, dict[str, Any]] = {}
    info = probe(job.swapped)
    warn_about_source(info)
    refs = [*job.reference_stills, *(load_references(job.references) if job.references else [])] \
        if job.texture is not None else []
    for pair in pairs:
        pt, st = ptracks[pair.plate_id], stracks[pair.swap_id]
        pc, sc = _track_code(pt), _track_code(st)
        garbled = None if agreement is None else _garbled(
            pair, agreement[0].get(pair.plate_id, {}), agreement[1].get(pair.swap_id, {}), lag, job.config.garbled_drop)
        r = restore_pair(pair, pt, st, job.config, pc, sc, (info.height, info.width), garbled)
        if job.config.refine_rounds > 0 and r.plan.frame_indices.size:
            plan, comp = r.plan, None
            if job.texture is not None:
                (plan,), comp, events0 = prepare_texture([plan], stracks, job.swapped, refs, job.texture,
                                                         lids, mouths)
                first_events.extend(events0)
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
                bridges.setdefault(f, []).append((pair.swap_id, src, st.landmarks[st.row(src)], target))
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
        final, compositor, events = prepare_texture(final, stracks, job.swapped, refs, job.texture,
                                                     lids, mouths)
        events = chain_texture_events(first_events, events)
    return RestorePlan(plate, swapped, tuple(restores), tuple(final), bridges, refinement, compositor, events,
                       offsets, lag, ptracks)


def shift_track(track: Track, lag: int, frame_times: NDArray[np.float64]) -> Track | None:
    """``track`` renumbered ``lag`` frames later (earlier when negative) in a clip with
    ``frame_times``: its frame ``f`` becomes ``f + lag``, with that frame's time; rows that land
    outside the clip are dropped (None when none is left)."""
    moved = track.frame_indices + lag
    keep = (moved >= 0) & (moved < frame_times.shape[0])
    if not keep.any():
        return None
    arrays = {name: getattr(track, name)[keep] for name in TRACK_ARRAYS}
    arrays["frame_indices"] = moved[keep]
    arrays["times"] = frame_times[moved[keep]]
    return Track(track_id=track.track_id, **arrays)


def _check_offsets(job: RestoreJob, pairs: Sequence[FacePair], ptracks: dict[int, Track],
                   stracks: dict[int, Track], warn: bool = True) -> dict[int, Offset]:
    """Per plate face, the lag between its head motion and the swap's
    (``synthesis.frame_offset``); a clear lag other than 0 is warned about: restore compares the
    two clips frame by frame, so it would "repair" every fast change one frame off. (With
    ``job.offset`` applied, a lag other than 0 says that offset is wrong.)"""
    offsets = {}
    for pair in pairs:
        pt, st = ptracks[pair.plate_id], stracks[pair.swap_id]
        off = frame_offset(pt.frame_indices, pt.landmarks, st.frame_indices, st.landmarks)
        if off is None:
            continue
        offsets[pair.plate_id] = off
        if off.suspect and warn:
            n = abs(off.lag)
            _log.warning("%s: face %d moves as the plate's face %d does %d frame%s %s (motion mismatch %.4f "
                         "against %.4f as numbered): restore compares the clips frame by frame; trim the "
                         "swap, or restore with --offset %d (or --offset auto)", job.swapped, pair.swap_id,
                         pair.plate_id, n, "" if n == 1 else "s", "later" if off.lag > 0 else "earlier",
                         off.mismatch, off.mismatch_at_zero, job.offset + off.lag)
    return offsets


def _bridge_jobs(r: PairRestore, pt: Track, st: Track, pc: TrackCode, sc: TrackCode,
                 max_frames: int) -> list[tuple[int, int, NDArray[np.float64]]]:
    """(lost frame, source frame, target landmarks) for each lost or garbled frame with a good
    frame near.

    The source is the nearest swap frame where the swap's face was found and is not garbled
    (fixed or not: its input pixels and tracked landmarks are what is warped).
    """
    good_frames = st.frame_indices[(st.sources != SOURCE_CODES[Source.BRIDGED]) & ~np.isin(st.frame_indices, r.garbled)]
    out = []
    for f in r.faceless:
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
        jobs: per lost frame, ``(swap face id, source frame, (478, 3) source landmarks, (478, 3)
            target)``.
        config: render settings.
        occluders: what covers the face there (``plugin.occluder_pass.Occluders.covering``, by swap
            face id and frame): those pixels keep the frame's bytes instead of the pasted face's
            (a face lost because a hand went over it). None: none known.
    """

    latency = 0

    def __init__(self, swapped: Path, jobs: dict[int, list[tuple[int, int, NDArray[np.float32], NDArray[np.float64]]]],
                 config: RenderConfig,
                 occluders: Callable[[int, int], tuple[NDArray[np.float32], NDArray[np.floating] | None] | None]
                 | None = None) -> None:
        self._reader = VideoReader(swapped)
        self._jobs = jobs
        self.config = config
        self.occluders = occluders
        self.done: list[int] = []

    def push(self, frame: Frame) -> list[Frame]:
        jobs = self._jobs.get(frame.index)
        if not jobs:
            return [frame]
        image = frame.image
        for face, src, before, target in jobs:
            source = self._reader.frame_at(src).image
            both = np.concatenate([before[:, :2], target[:, :2]])
            crop = crop_for_landmarks(both, image.shape[:2], out_size=None)
            warped, _ = render_face(source, before.astype(np.float64), target, crop, self.config)
            pasted = rebuild_face(_paste(image, warped, target), target, source, before)
            covered = self.occluders(face, frame.index) if self.occluders is not None else None
            image = keep_covered(pasted, image, covered, target, crop_box(crop), self.config.neck_fade)
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


def measure_output(ptracks: dict[int, Track], output: ClipAnalysis, restores: Sequence[PairRestore],
                   config: RestoreConfig) -> dict[tuple[int, int], tuple[NDArray[np.int64], NDArray[np.float64],
                                                                        NDArray[np.float64]]]:
    """Per restored face: (frames, pose divergence, expression divergence) of the output vs the plate.

    The output is matched to the plate's tracks (as compared: ``RestorePlan.plate_tracks``) as the
    swap was (:func:`match_tracks`).
    """
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
    oc.check_path(job.output)
    check_output_path(job.output, overwrite=oc.overwrite, inputs=[job.plate, job.swapped], is_folder=oc.codec == "png")
    plan = plan_restore(job, progress, refine_progress)
    info = probe(job.swapped)
    try:
        covered = restore_occluders(job, plan) if job.occluders is not None else None
    except BaseException:
        plan.close()
        raise
    stages: list[Any] = [EditStage(plan.plans, (info.height, info.width), job.render_config, texture=plan.texture,
                                   fields=info.fields_are_rows, faces=tracked_faces(plan.swapped.analysis.tracks),
                                   occluders=covered.covering if covered is not None else None)]
    bridge = BridgeStage(job.swapped, plan.bridges, job.render_config,
                         covered.covering if covered is not None else None) if plan.bridges else None
    if bridge is not None:
        stages.append(bridge)
    by_face = {p.track_id: merge_ranges((f, f) for f in p.frame_indices) for p in plan.plans if p.frame_indices.size}
    if plan.bridges:
        for r in plan.restores:
            faceless = {int(x) for x in r.faceless}
            fr = [f for f in plan.bridges if f in faceless]
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
        per_pair = measure_output(plan.plate_tracks, out.analysis, plan.restores, job.config)
        measured = {pid: v for (pid, _), v in per_pair.items()}
    lost = {r.pair.plate_id: merge_ranges((int(f), int(f)) for f in r.lost) for r in plan.restores if r.lost.size}
    garbled = {r.pair.plate_id: merge_ranges((int(f), int(f)) for f in r.garbled) for r in plan.restores
               if r.garbled.size}
    bridged = merge_ranges((f, f) for f in (bridge.done if bridge is not None else []))
    return RestoreSummary(job.plate, plan, render, range_report(plan.restores, measured), lost, bridged,
                          measured is not None, garbled, covered.events() if covered is not None else [])


def restore_occluders(job: RestoreJob, plan: RestorePlan) -> Occluders:
    """What covers the repaired faces on their repaired and bridged frames (:attr:`RestoreJob.occluders`):
    found on the plate's face for a face paired with one (the plate's frame ``f`` for the swap's
    ``f + offset``), kept where the swap shows the plate's picture (``plugin.occluder_pass.shown_in``)
    and carried onto the swap's face with the plate's landmarks; found on the swap for a face only
    scheduled there."""
    swap_to_plate = {r.pair.swap_id: r.pair.plate_id for r in plan.restores}
    bridged: dict[int, list[int]] = {}
    for f, jobs in plan.bridges.items():
        for face, *_ in jobs:
            bridged.setdefault(face, []).append(f)
    paired = {swap_to_plate[p.track_id]: np.union1d(p.frame_indices, bridged.get(p.track_id, [])) - plan.offset
              for p in plan.plans if p.track_id in swap_to_plate}
    alone = {p.track_id: p.frame_indices for p in plan.plans if p.track_id not in swap_to_plate}
    ptracks = {t.track_id: t for t in plan.plate.analysis.tracks}
    found = shown_in(occluders_on(job.plate, paired, ptracks, job.occluders), job.plate, job.swapped, plan.offset,
                     ptracks)
    out = found.carried({v: k for k, v in swap_to_plate.items()}, plan.offset, ptracks)
    if alone:
        out = out.merged(occluders_on(job.swapped, alone, {t.track_id: t for t in plan.swapped.analysis.tracks},
                                      job.occluders))
    return out
