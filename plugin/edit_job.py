"""The edit job: analysis pass, planning per face, render pass with the edit stage.

Orchestration only (DESIGN.md's two passes). Every check that can fail on user input runs before
the render starts: unknown face ids, unknown deltas, frame ranges outside the clip, an output that
exists, so nothing is written when the edit list is wrong.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plugin.analyze import AnalysisConfig, AnalysisResult, ProgressCallback, run_analysis
from plugin.editing import EditStage, RenderConfig
from plugin.output import check_output_path
from plugin.pipeline import RenderJob, RenderSummary, run_render
from plugin.provenance import merge_ranges
from plugin.video import probe
from synthesis.controls import named_controls
from synthesis.deltas import Delta, load_delta
from synthesis.plan import FacePlan, PlanConfig, plan_track
from synthesis.schedule import EditSchedule
from tracking.errors import ConfigError


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


@dataclass(frozen=True)
class EditSummary:
    """What an edit job did."""

    analysis: AnalysisResult
    plans: tuple[FacePlan, ...]
    render: RenderSummary
    edited_ranges_by_face: Mapping[int, list[list[int]]]
    clamps: list[dict[str, Any]]
    fold_repairs: int

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


def run_edit(job: EditJob, progress: ProgressCallback | None = None,
             render_progress: ProgressCallback | None = None) -> EditSummary:
    """Analyse, plan and render one edit job.

    Raises:
        ConfigError: an unknown face id or delta, or a frame range outside the clip.
        InputError, OutputError: as for the render pass.
    """
    rj = job.render
    check_output_path(rj.output, overwrite=rj.output_config.overwrite, inputs=[rj.input],
                      is_folder=rj.output_config.codec == "png")
    deltas = resolve_deltas(job.schedule.delta_names())
    result = run_analysis(rj.input, job.analysis, cache_dir=job.cache_dir, use_cache=job.use_cache,
                          allow_truncated=rj.allow_truncated, progress=progress)
    analysis = result.analysis
    tracks = {t.track_id: t for t in analysis.tracks}
    unknown = sorted(set(job.schedule.face_ids()) - set(tracks))
    if unknown:
        known = ", ".join(str(i) for i in sorted(tracks)) or "none (no face was found)"
        raise ConfigError(f"{rj.input}: no face with id {', '.join(map(str, unknown))}; faces in this clip: {known}")
    for entry in job.schedule:
        named = [k.frame for k in entry.curve.keyframes if k.strength != 0]
        last = max(named, default=0)
        if last >= analysis.frame_count:
            raise ConfigError(f"{rj.input}: edit of face {entry.face_id} ({entry.delta_name}) reaches frame "
                              f"{last}, but the clip has {analysis.frame_count} frames (0-{analysis.frame_count - 1})")
    plans = []
    for face_id in sorted(set(job.schedule.face_ids())):
        t = tracks[face_id]
        plans.append(plan_track(face_id, t.frame_indices, t.times, t.segment_ids, t.landmarks, t.blendshapes,
                                t.confidence, job.schedule, deltas, job.plan))
    info = probe(rj.input)
    stage = EditStage(plans, (info.height, info.width), job.render_config)
    by_face = {p.track_id: merge_ranges((f, f) for f in p.frame_indices) for p in plans if p.frame_indices.size}
    ranges = merge_ranges(r for rs in by_face.values() for r in rs)
    summary = run_render(rj, [stage], edited_ranges=[tuple(r) for r in ranges], edited_by_face=by_face,
                         progress=render_progress)
    clamps = [
        {"face": e.face_id, "delta": e.delta, "frames": [e.first_frame, e.last_frame],
         "requested": round(e.requested, 4), "applied": round(e.applied, 4)}
        for p in plans for e in p.events
    ]
    repairs = sum(i.repairs for i in stage.info)
    return EditSummary(result, tuple(plans), summary, by_face, clamps, repairs)

