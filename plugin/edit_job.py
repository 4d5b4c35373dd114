"""The edit job: analysis pass, planning per face, render pass with the edit stage.

Orchestration only (DESIGN.md's two passes). Every check that can fail on user input runs before
the render starts: unknown face ids, unknown deltas, frame ranges outside the clip, an output that
exists, so nothing is written when the edit list is wrong.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin.analyze import AnalysisConfig, AnalysisResult, ProgressCallback, run_analysis
from plugin.editing import EditStage, RenderConfig, tracked_faces
from plugin.occluder_pass import Occluders, find_occluders
from plugin.output import check_output_path
from plugin.pipeline import RenderJob, RenderSummary, run_render
from plugin.provenance import merge_ranges
from plugin.texture_stage import TextureCompositor, TextureConfig, load_references, prepare_texture
from plugin.probe import VideoInfo
from plugin.video import probe
from synthesis.controls import named_controls
from synthesis.deltas import Delta, load_delta
from synthesis.occluders import OccluderConfig
from synthesis.plan import FacePlan, PlanConfig, plan_track
from synthesis.schedule import EditSchedule
from tracking.errors import ConfigError

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EditJob:
    """One edit: what to read, what to do to which faces, what to write."""

    render: RenderJob
    schedule: EditSchedule
    analysis: AnalysisConfig = field(default_factory=AnalysisConfig)
    plan: PlanConfig = field(default_factory=PlanConfig)
    render_config: RenderConfig = field(default_factory=RenderConfig)
    cache_dir: Path | None = None
    use_cache: bool = True
    #: Region textures borrowed from other frames (None: warp only) and reference stills or
    #: clips of the same person for them (plugin/texture_stage.py).
    texture: TextureConfig | None = field(default_factory=TextureConfig)
    references: tuple[Path, ...] = ()
    #: What covers the edited faces keeps its pixels (synthesis/occluders.py; None: not looked for).
    occluders: OccluderConfig | None = field(default_factory=OccluderConfig)


@dataclass(frozen=True)
class EditSummary:
    """What an edit job did."""

    analysis: AnalysisResult
    plans: tuple[FacePlan, ...]
    render: RenderSummary
    edited_ranges_by_face: Mapping[int, list[list[int]]]
    clamps: list[dict[str, Any]]
    fold_repairs: int
    texture: list[dict[str, Any]] = field(default_factory=list)
    occluders: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "input": str(self.render.input),
            "output": str(self.render.output),
            "frames": self.render.frames_written,
            "render_fps": round(self.render.fps, 2),
            "analysis_from_cache": self.analysis.from_cache,
            "analysis_file": str(self.analysis.cache_path),
            "edited_ranges_by_face": {str(k): v for k, v in self.edited_ranges_by_face.items()},
            "clamps": self.clamps,
            "fold_repairs": self.fold_repairs,
            "texture": self.texture,
            "occluders": self.occluders,
        }


def resolve_deltas(names: list[str]) -> dict[str, Delta]:
    """Every delta a schedule names: a shipped control, or a ``.delta`` file (absolute path)."""
    controls = named_controls()
    out: dict[str, Delta] = {}
    for name in names:
        if name in controls:
            out[name] = controls[name]
        elif name.endswith(".delta"):
            out[name] = load_delta(name)
        else:
            raise ConfigError(f"unknown delta {name!r}; named controls are: {', '.join(sorted(controls))}")
    return out


@dataclass
class PreparedEdit:
    """What a render pass of an edit needs: the analysis, the plans and the edit stage.

    The stage is stateless per frame (latency 0), so any subset of frames can be pushed through it
    in order (re-renders of a range). :meth:`close` releases the texture source it may hold.

    Attributes:
        analysis: the analysis (``from_cache`` says whether it was reused).
        plans: one plan per edited face (clamped where texture had no exemplar).
        stage: the edit stage.
        texture: the texture compositor the stage calls (None: warp only).
        texture_events: where texture came from, or where the edit was clamped for lack of it.
        edited_by_face: frames edited per face id, merged ranges.
        edited_ranges: their union.
        occluders: what covers the edited faces (None: not looked for).
    """

    analysis: AnalysisResult
    plans: tuple[FacePlan, ...]
    stage: EditStage
    texture: TextureCompositor | None
    texture_events: list[dict[str, Any]]
    edited_by_face: dict[int, list[list[int]]]
    edited_ranges: list[list[int]]
    occluders: Occluders | None = None

    def close(self) -> None:
        if self.texture is not None:
            self.texture.close()

    def clamps(self) -> list[dict[str, Any]]:
        """Every clamp event of every plan, as the run summary reports them."""
        return [e.as_dict() for p in self.plans for e in p.events]


def warn_about_source(info: VideoInfo) -> None:
    """Say once what editing this source gives up: an interlaced clip displayed turned by 90 or
    270 degrees has its fields across its rows, so it is edited in woven frames (both fields
    warped together: fine for a still or slow face, while on fast motion the warp mixes the
    fields' lines). Other interlaced clips are edited field by field (``EditStage.fields``).
    (What an output keeps of a source of more than 8 bits a sample the writer says.)"""
    if info.interlaced and not info.fields_are_rows:
        _log.warning("%s is interlaced and displayed turned by %d degrees: faces are edited in whole frames, "
                     "both fields together; on fast motion check the edited frames for mixed lines",
                     info.path, info.rotation)


def prepare_edit(
    input_path: Path,
    schedule: EditSchedule,
    *,
    analysis: AnalysisConfig | None = None,
    plan: PlanConfig | None = None,
    render_config: RenderConfig | None = None,
    texture: TextureConfig | None = None,
    references: Sequence[Path] = (),
    occluders: OccluderConfig | None = None,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    allow_truncated: bool = False,
    progress: ProgressCallback | None = None,
    where: str | Path | None = None,
) -> PreparedEdit:
    """Analyse (or load the cached analysis), check the schedule against it, plan every edited face
    and build the edit stage (with texture from other frames unless ``texture`` is None, and
    with what covers the faces kept in front unless ``occluders`` is None).

    Args:
        occluders: how occluders are found (``plugin.occluder_pass``; None: not looked for).
        where: what error messages name (default: the input).

    Raises:
        ConfigError: an unknown face id or delta, or an edit reaching past the clip's end.
        InputError, ModelLoadError: as for :func:`plugin.analyze.run_analysis`.
    """
    where = input_path if where is None else where
    deltas = resolve_deltas(schedule.delta_names())
    result = run_analysis(input_path, analysis or AnalysisConfig(), cache_dir=cache_dir, use_cache=use_cache,
                          allow_truncated=allow_truncated, progress=progress)
    clip = result.analysis
    tracks = {t.track_id: t for t in clip.tracks}
    unknown = sorted(set(schedule.face_ids()) - set(tracks))
    if unknown:
        known = ", ".join(str(i) for i in sorted(tracks)) or "none (no face was found)"
        raise ConfigError(f"{where}: no face with id {', '.join(map(str, unknown))}; faces in this clip: {known}")
    for entry in schedule:
        last = max((k.frame for k in entry.curve.keyframes if k.strength != 0), default=0)
        if last >= clip.frame_count:
            raise ConfigError(f"{where}: edit of face {entry.face_id} ({entry.delta_name}) reaches frame "
                              f"{last}, but the clip has {clip.frame_count} frames (0-{clip.frame_count - 1})")
    plans = []
    for face_id in sorted(set(schedule.face_ids())):
        t = tracks[face_id]
        plans.append(plan_track(face_id, t.frame_indices, t.times, t.segment_ids, t.landmarks, t.blendshapes,
                                t.confidence, schedule, deltas, plan or PlanConfig()))
    info = probe(input_path)
    warn_about_source(info)
    compositor, events = None, []
    if texture is not None:
        plans, compositor, events = prepare_texture(plans, tracks, input_path, load_references(references), texture)
    try:
        covered = (find_occluders(input_path, plans, tracks, occluders, allow_truncated)
                   if occluders is not None else None)
        stage = EditStage(plans, (info.height, info.width), render_config, texture=compositor,
                          fields=info.fields_are_rows, faces=tracked_faces(tracks.values()),
                          occluders=covered.covering if covered is not None else None)
    except BaseException:
        if compositor is not None:
            compositor.close()
        raise
    by_face = {p.track_id: merge_ranges((f, f) for f in p.frame_indices) for p in plans if p.frame_indices.size}
    ranges = merge_ranges(r for rs in by_face.values() for r in rs)
    return PreparedEdit(result, tuple(plans), stage, compositor, events, by_face, ranges, covered)


def check_output(render: RenderJob) -> None:
    """Refuse an output the codec cannot write, or one that exists (without overwrite) or is an
    input, before anything is tracked (``plugin.output.check_output_path``)."""
    render.output_config.check_path(render.output)
    check_output_path(render.output, overwrite=render.output_config.overwrite, inputs=[render.input],
                      is_folder=render.output_config.codec == "png")


def run_edit(job: EditJob, progress: ProgressCallback | None = None,
             render_progress: ProgressCallback | None = None) -> EditSummary:
    """Analyse, plan and render one edit job.

    Raises:
        ConfigError: an unknown face id or delta, or a frame range outside the clip.
        InputError, OutputError: as for the render pass.
    """
    rj = job.render
    check_output(rj)
    prepared = prepare_edit(rj.input, job.schedule, analysis=job.analysis, plan=job.plan,
                            render_config=job.render_config, texture=job.texture, references=job.references,
                            occluders=job.occluders,
                            cache_dir=job.cache_dir, use_cache=job.use_cache, allow_truncated=rj.allow_truncated,
                            progress=progress)
    try:
        summary = run_render(rj, [prepared.stage], edited_ranges=[tuple(r) for r in prepared.edited_ranges],
                             edited_by_face=prepared.edited_by_face, progress=render_progress)
    finally:
        prepared.close()
    repairs = sum(i.repairs for i in prepared.stage.info)
    covered = prepared.texture.covered_events() if prepared.texture is not None else []
    occluded = prepared.occluders.events() if prepared.occluders is not None else []
    return EditSummary(prepared.analysis, prepared.plans, summary, prepared.edited_by_face, prepared.clamps(),
                       repairs, prepared.texture_events + covered, occluded)
