"""The ``deltaface`` commands: each turns the options ``plugin/cli.py`` parsed into the stage
configs, runs its job and reports (a line on stderr, JSON on stdout with ``--json``).

Defaults are never restated here: every option's default comes from its config dataclass.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path
from typing import Any

from plugin.analyze import AnalysisConfig
from plugin.cli import _LANDMARKER_DEFAULTS, _OUTPUT_DEFAULTS, LARGE_FACE_TILES, SMALL_FACE_INTERVAL_S
from plugin.progress import Progress
from plugin.ranges import FrameRange
from plugin.writer import OutputConfig
from tracking.errors import ConfigError

def _map_timeline(path: Path, info: Any, space: str, rate: float | None) -> list[Any]:
    """The timeline's items on the frames of the probed input ``info``."""
    from plugin.timeline import input_start_timecode, map_timeline, read_timeline

    fps = float(info.average_rate) if info.average_rate else None
    if fps is None:
        raise ConfigError(f"{info.path}: has no frame rate, so timeline times cannot be mapped onto its frames")
    timeline = read_timeline(path, edl_rate=rate if rate is not None else fps)
    return map_timeline(timeline, fps, info.num_frames, space=space,
                        start_timecode=input_start_timecode(info.path))


def _analysis_config(args: argparse.Namespace) -> AnalysisConfig:
    landmarker = dataclasses.replace(
        _LANDMARKER_DEFAULTS, num_faces=args.num_faces,
        bundle_path=str(args.landmarker_bundle) if args.landmarker_bundle else None,
    )
    if getattr(args, "small_faces", False):
        landmarker = dataclasses.replace(landmarker, small_tile_interval_s=SMALL_FACE_INTERVAL_S)
    elif getattr(args, "large_faces_only", False):
        recovery = dataclasses.replace(landmarker.recovery, tile_scales=LARGE_FACE_TILES)
        landmarker = dataclasses.replace(landmarker, recovery=recovery)
    return AnalysisConfig(landmarker=landmarker)


def _output_config(args: argparse.Namespace) -> OutputConfig:
    return OutputConfig(codec=args.codec, crf=args.crf, preset=args.preset, overwrite=args.overwrite)


def _emit(args: argparse.Namespace, summary: dict[str, Any], line: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=1, default=str))
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr)


def cmd_render(args: argparse.Namespace) -> int:
    from plugin.pipeline import RenderJob, run_render

    if args.input.suffix.lower() == ".toml" and not args.input.is_dir():  # plugin.project.is_project_file,
        return _render_project(args)                                     # without importing torch
    if args.output is None:
        raise ConfigError("render needs -o OUT (or a project file as IN)")
    if args.resume:
        return _resume_render(args)
    job = RenderJob(
        input=args.input,
        output=args.output,
        output_config=_output_config(args),
        frames=None if args.frames is None else FrameRange.parse(args.frames),
        allow_truncated=args.allow_truncated,
    )
    summary = run_render(job, progress=Progress("render", args.quiet))
    result = dataclasses.asdict(summary) | {"fps": round(summary.fps, 2), "mode": "pass-through"}
    note = ""
    if summary.truncated_at is not None:
        note = f"; input truncated: stopped at frame {summary.truncated_at}"
    _emit(args, result,
          f"deltaface: wrote {summary.output} ({summary.frames_written} frames, pass-through: "
          f"no edits yet){note}")
    return 0


def _resume_render(args: argparse.Namespace) -> int:
    from plugin.pipeline import RenderJob, run_render
    from plugin.sequence import check_resumable, resume_png
    from plugin.video import probe

    check_resumable(args.codec)
    if args.frames is not None:
        raise ConfigError("--frames and --resume cannot be combined")
    result = resume_png(args.output, probe(args.input), (), overwrite=args.overwrite,
                        progress=Progress("render", args.quiet))
    if result is None:
        job = RenderJob(input=args.input, output=args.output, output_config=_output_config(args),
                        allow_truncated=args.allow_truncated)
        summary = run_render(job, progress=Progress("render", args.quiet))
        _emit(args, {"output": str(summary.output), "mode": "full", "frames_written": summary.frames_written},
              f"deltaface: nothing to resume; wrote {summary.output} ({summary.frames_written} frames)")
        return 0
    _emit(args, {"output": str(result.output), "mode": "resume", "files_written": result.files_written,
                 "files_kept": result.frames_kept, "resumed_from": str(result.resumed_from)},
          f"deltaface: resumed {result.output} at frame {result.first_frame}: kept {result.frames_kept} "
          f"files, wrote {result.files_written}")
    return 0


def _render_project(args: argparse.Namespace) -> int:
    from plugin.project import load_project, render_project

    given = [f"--{k}" for k in ("codec", "crf", "preset") if getattr(args, k) != getattr(_OUTPUT_DEFAULTS, k)]
    if given:
        raise ConfigError(f"{args.input}: {', '.join(given)} cannot be combined with a project file; set them in "
                          "its [output] table")
    project = load_project(args.input)
    s = render_project(project, frames=args.frames, resume=args.resume, output=args.output,
                       overwrite=args.overwrite, cache_dir=args.cache_dir, use_cache=not args.no_cache,
                       allow_truncated=args.allow_truncated, progress=Progress("track", args.quiet),
                       render_progress=Progress("render", args.quiet))
    d = s.details
    if s.mode == "full":
        what = f"rendered every frame ({d.get('frames_written')})"
    elif s.mode == "resume":
        what = f"resumed: kept {d.get('files_kept')} files, wrote {d.get('files_written')}"
    elif "files_written" in d:
        what = f"re-rendered frames {s.frames_rendered}: {d['files_written']} files written, {d['files_kept']} kept"
    else:
        what = (f"re-rendered frames {s.frames_rendered}: {d['gops_reencoded']} of {d['gops_total']} GOPs "
                f"re-encoded ({d['packets_reencoded']} packets), {d['packets_copied']} video packets copied")
    lines = [f"deltaface: {s.output}: {what}"]
    if s.note:
        lines.append(f"  note: {s.note}")
    for face, ranges in s.edited_ranges_by_face.items():
        lines.append(f"  face {face}: edited frames " + ", ".join(f"{a}-{b}" for a, b in ranges))
    for c in s.clamps:
        lines.append(f"  clamp: face {c['face']} {c['delta']} frames {c['frames'][0]}-{c['frames'][1]}: "
                     f"asked {c['requested']}, applied {c['applied']}")
    _emit(args, s.as_dict(), "\n".join(lines))
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from compositing.blend import BlendConfig
    from plugin.edit_job import EditJob, check_output, resolve_deltas, run_edit
    from plugin.editing import RenderConfig
    from plugin.editlist import load_edit_list, schedule_from_specs
    from plugin.pipeline import RenderJob
    from plugin.video import probe
    from synthesis.plan import PlanConfig
    from synthesis.schedule import EditSchedule

    if not args.delta and args.edits is None:
        raise ConfigError("nothing to do: give --face ID --delta NAME=STRENGTH@A-B, or --edits FILE")
    info = probe(args.input)
    fps = float(info.average_rate) if info.average_rate else None
    schedule = EditSchedule()
    specs = list(args.delta)
    if args.timeline is not None or any("@marker:" in d or "@clip:" in d for d in specs):
        from plugin.timeline import expand_delta_specs

        mapped = None if args.timeline is None else _map_timeline(
            args.timeline, info, args.timeline_space, args.timeline_rate)
        specs = expand_delta_specs(specs, mapped, args.timeline)
    if args.report_retrack and args.report is None:
        raise ConfigError("--report-retrack needs --report DIR")
    if args.report is not None:
        from plugin.report import check_report_dir

        check_report_dir(args.report, overwrite=args.overwrite)
    render = RenderJob(input=args.input, output=args.output, output_config=_output_config(args),
                       allow_truncated=args.allow_truncated)
    # parsed (and so checked) before any tracking; face 0 stands in until the face is known
    from_specs = schedule_from_specs(specs, args.face or 0, info.num_frames, fps) if specs else EditSchedule()
    if args.edits is not None:
        schedule = load_edit_list(args.edits, info.num_frames, fps)
    resolve_deltas(list((from_specs + schedule).delta_names()))
    use_cache = not args.no_cache
    if args.delta and args.face is None:  # the clip's only face, or say which there are
        check_output(render)  # before tracking, as run_edit does
        from plugin.analyze import run_analysis

        with Progress("track", args.quiet) as track_progress:
            tracks = run_analysis(args.input, _analysis_config(args), cache_dir=args.cache_dir, use_cache=use_cache,
                                  allow_truncated=args.allow_truncated, progress=track_progress).analysis.tracks
        if len(tracks) != 1:
            raise ConfigError(f"--delta needs --face ID: {args.input} has "
                              + (f"faces {', '.join(str(t.track_id) for t in tracks)}" if tracks else "no face")
                              + " (see 'deltaface track')")
        use_cache = True  # the analysis just made is the one to use
        if tracks[0].track_id != 0:
            from_specs = schedule_from_specs(specs, tracks[0].track_id, info.num_frames, fps)
    schedule = from_specs + schedule
    job = EditJob(render=render, schedule=schedule, analysis=_analysis_config(args),
                  render_config=RenderConfig(blend=BlendConfig(method=args.blend), device=args.device),
                  plan=PlanConfig(edit_unseen=args.edit_unseen), cache_dir=args.cache_dir, use_cache=use_cache,
                  references=tuple(args.reference), **({"texture": None} if args.no_texture else {}),
                  **({"occluders": None} if args.no_occluders else {}))
    with Progress("track", args.quiet) as track_progress, Progress("render", args.quiet) as render_progress:
        summary = run_edit(job, progress=track_progress, render_progress=render_progress)
    result = summary.as_dict()
    if specs != list(args.delta):
        result["timeline_deltas"] = {a: b for a, b in zip(args.delta, specs) if a != b}
    if args.report is not None:
        from plugin.report import write_edit_report

        with Progress("re-track", args.quiet) as retrack_progress:
            result["report"] = str(write_edit_report(
                args.report, summary, retrack=_analysis_config(args) if args.report_retrack else None,
                cache_dir=args.cache_dir, progress=retrack_progress))
    lines = [f"deltaface: wrote {result['output']} ({result['frames']} frames, {result['render_fps']} fps)"]
    for face, ranges in result["edited_ranges_by_face"].items():
        lines.append(f"  face {face}: edited frames " + ", ".join(f"{a}-{b}" for a, b in ranges))
    lines.extend(_clamp_and_texture_lines(result))
    if "report" in result:
        lines.append(f"  QC report: {result['report']}")
    _emit(args, result, "\n".join(lines))
    return 0


def _clamp_and_texture_lines(result: dict[str, Any]) -> list[str]:
    """Where an edit run clamped a delta, and where region textures came from (or were missing)."""
    lines = [f"  clamp: face {c['face']} {c['delta']} frames {c['frames'][0]}-{c['frames'][1]}: "
             f"asked {c['requested']}, applied {c['applied']}" for c in result["clamps"]]
    for t in result.get("texture", []):
        detail = ", ".join(t["exemplars"]) if t["action"] == "texture" else t["reason"]
        if "factor" in t:
            detail += f" (strength x {t['factor']})"
        lines.append(f"  {t['action']}: face {t['face']} {t['region']} frames {t['frames'][0]}-{t['frames'][1]}: {detail}")
    return lines


def cmd_learn_delta(args: argparse.Namespace) -> int:
    from plugin.learn_job import learn_from_images, report_dict

    if len(args.before) != len(args.after):
        raise ConfigError(f"{len(args.before)} --before but {len(args.after)} --after: give them in pairs")
    name = args.name or args.output.stem
    delta, report = learn_from_images(
        list(zip(args.before, args.after)), name, args.output, description=args.description,
        max_strength=args.max_strength, overwrite=args.overwrite,
        bundle_path=str(args.landmarker_bundle) if args.landmarker_bundle else None,
    )
    result = report_dict(delta, report) | {"output": str(args.output)}
    cos = ", ".join(f"{c:.3f}" for c in report.cosine)
    _emit(args, result,
          f"deltaface: wrote {args.output} ({delta.kind} delta '{name}' from {report.pairs} pair(s); "
          f"consistency: cosine to the others {cos}, relative spread {report.relative_spread:.2f}; "
          f"{report.region_points} points in its region)")
    return 0


def cmd_controls(args: argparse.Namespace) -> int:
    from synthesis.controls import listing

    rows = listing()
    if args.json:
        print(json.dumps([{"name": n, "max_strength": m, "description": d} for n, m, d in rows], indent=1))
    else:
        for name, max_strength, description in rows:
            print(f"{name:16s} |strength| <= {max_strength:g}   {description}")
    return 0


def cmd_track(args: argparse.Namespace) -> int:
    from plugin.analyze import run_analysis, summarize
    from plugin.output import AtomicOutput, check_output_path
    from plugin.pipeline import RenderJob, run_render
    from plugin.preview import PreviewStage
    from tracking.analysis import save_analysis

    inputs = [args.input]
    if args.output is not None:
        check_output_path(args.output, overwrite=args.overwrite, inputs=inputs)
    if args.preview is not None:
        _output_config(args).check_path(args.preview)
        check_output_path(args.preview, overwrite=args.overwrite, inputs=inputs,
                          is_folder=args.codec == "png")
    result = run_analysis(args.input, _analysis_config(args), cache_dir=args.cache_dir,
                          use_cache=not args.no_cache, allow_truncated=args.allow_truncated,
                          progress=Progress("track", args.quiet))
    if args.output is not None:
        with AtomicOutput(args.output, overwrite=args.overwrite, inputs=inputs) as tmp:
            save_analysis(result.analysis, tmp)
    if args.preview is not None:
        job = RenderJob(input=args.input, output=args.preview, output_config=_output_config(args),
                        allow_truncated=args.allow_truncated)
        run_render(job, [PreviewStage(result.analysis)], progress=Progress("preview", args.quiet))
    summary = summarize(result.analysis) | {
        "input": str(args.input),
        "analysis_file": str(args.output or result.cache_path),
        "from_cache": result.from_cache,
        "seconds": round(result.seconds, 2),
        "fps": None if result.from_cache else round(result.fps, 1),
        "preview": None if args.preview is None else str(args.preview),
    }
    lines = [f"deltaface: {len(summary['tracks'])} face track(s) in {summary['frames']} frames "
             f"({summary['frames_with_a_track']} with a face, {len(summary['cuts'])} cut(s)); "
             f"analysis {'loaded from' if result.from_cache else 'written to'} {summary['analysis_file']}"]
    for t in summary["tracks"]:
        lines.append(f"  face {t['id']}: frames {t['first_frame']}-{t['last_frame']} ({t['frames']}), "
                     f"yaw {t['yaw_range_deg'][0]:+.0f}..{t['yaw_range_deg'][1]:+.0f} deg, "
                     f"{len(t['gaps'])} gap(s), {sum(b - a + 1 for a, b in t['bridged'])} bridged frame(s)")
    _emit(args, summary, "\n".join(lines))
    return 0


def cmd_timeline(args: argparse.Namespace) -> int:
    from plugin.video import probe

    info = probe(args.input)
    mapped = _map_timeline(args.file, info, args.timeline_space, args.timeline_rate)
    if args.json:
        print(json.dumps({"timeline": str(args.file), "input": str(args.input), "space": args.timeline_space,
                          "input_frames": info.num_frames, "items": [m.as_dict() for m in mapped]}, indent=1))
        return 0
    print(f"{args.file}: {len(mapped)} item(s) on the {info.num_frames} frames of {args.input} "
          f"({args.timeline_space} time)")
    for m in mapped:
        d = m.as_dict()
        a_b = d["frames"]
        frames = "no frames" if not a_b else f"frame {a_b[0]}" if a_b[0] == a_b[1] else f"frames {a_b[0]}-{a_b[1]}"
        where = "-".join(d["record_tc"]) if args.timeline_space == "record" else "-".join(d["source_tc"] or ["?"])
        status = f"  ({d['problem']})" if d["problem"] else ""
        print(f"  {d['ref']:<32s} {frames:<18s} {args.timeline_space} {where}  track {d['track'] or '-'}{status}")
    return 0


def cmd_probe(args: argparse.Namespace) -> int:
    from plugin.provenance import read_provenance
    from plugin.video import probe

    info = probe(args.input)
    fields = {k: (str(v) if not isinstance(v, (int, float, bool, type(None), list, dict)) else v)
              for k, v in dataclasses.asdict(info).items()}
    fields["provenance"] = read_provenance(args.input)
    if args.json:
        print(json.dumps(fields, indent=1))
    else:
        for k, v in fields.items():
            print(f"{k}: {v}")
    return 0


#: The demo's edits of the astronaut clip: a smile, a wink of her left eye, a head turn.
DEMO_EDITS = ("smile=0.6@8-30", "blink_left=1@40-46", "head_yaw=8@55-68")


def cmd_demo(args: argparse.Namespace) -> int:
    from plugin.analyze import run_analysis, summarize
    from plugin.demo import write_demo_clip
    from plugin.pipeline import RenderJob, run_render
    from plugin.preview import PreviewStage

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    clip = write_demo_clip(out / "demo_input.mp4")
    print(f"deltaface demo: wrote the input clip {clip} (astronaut portrait with known synthetic "
          f"head motion; ground truth in {clip.with_suffix('.motion.json')})", file=sys.stderr)
    result = run_analysis(clip, cache_dir=out / "cache", progress=Progress("track", False))
    tracks = summarize(result.analysis)["tracks"]
    print(f"deltaface demo: tracked {len(tracks)} face(s); analysis in {result.cache_path}", file=sys.stderr)
    preview = RenderJob(input=clip, output=out / "demo_tracking_preview.mp4",
                        output_config=OutputConfig(overwrite=True))
    run_render(preview, [PreviewStage(result.analysis)], progress=Progress("preview", False))
    print(f"deltaface demo: wrote {preview.output} (ids, landmarks, head axes)", file=sys.stderr)
    job = RenderJob(input=clip, output=out / "demo_output.mp4", output_config=OutputConfig(overwrite=True))
    summary = run_render(job, progress=Progress("render", False))
    print(f"deltaface demo: wrote {summary.output} ({summary.frames_written} frames): the pass-through "
          "pipeline (exact timing, stream copy, provenance tag; faces untouched)", file=sys.stderr)
    from plugin.edit_job import EditJob, run_edit
    from plugin.editlist import schedule_from_specs

    specs = DEMO_EDITS
    edit = EditJob(
        render=RenderJob(input=clip, output=out / "demo_edited.mp4", output_config=OutputConfig(overwrite=True)),
        schedule=schedule_from_specs(specs, 0, result.analysis.frame_count),
        cache_dir=out / "cache",
    )
    with Progress("edit", False) as edit_progress:
        edited = run_edit(edit, render_progress=edit_progress)
    print(f"deltaface demo: wrote {edited.render.output}: face 0 edited with " + ", ".join(specs)
          + f" (frames {edited.edited_ranges_by_face.get(0)})", file=sys.stderr)
    for line in _clamp_and_texture_lines(edited.as_dict()):
        print(line, file=sys.stderr)
    from plugin.report import check_report_dir, write_edit_report

    with Progress("re-track", False) as retrack_progress:
        report = write_edit_report(check_report_dir(out / "report", overwrite=True), edited,
                                   retrack=AnalysisConfig(), cache_dir=out / "cache", progress=retrack_progress)
    print(f"deltaface demo: wrote the QC report {report} (open it in a browser)", file=sys.stderr)
    print(f"deltaface demo: results are in {out.resolve()}", file=sys.stderr)
    return 0


def _restore_job(args: argparse.Namespace, plate: Path, swapped: Path, output: Path, output_config: OutputConfig) -> Any:
    from plugin.editlist import load_edit_list
    from plugin.restore import RestoreJob
    from plugin.video import probe
    from synthesis.restore import RestoreConfig

    given = {"pose_threshold_deg": args.pose_threshold, "expression_threshold": args.expression_threshold,
             "ramp_frames": args.ramp, "refine_rounds": args.loop_rounds, "garbled_drop": args.garbled_drop}
    config = RestoreConfig(**{k: v for k, v in given.items() if v is not None}, correct_pose=not args.no_pose,
                           correct_expression=not args.no_expression)
    schedule = None
    if args.edits is not None:
        info = probe(swapped)
        schedule = load_edit_list(args.edits, info.num_frames, float(info.average_rate) if info.average_rate else None)
    auto = args.offset.strip().lower() == "auto"
    try:
        offset = 0 if auto else int(args.offset)
    except ValueError:
        raise ConfigError(f"--offset {args.offset!r}: give a whole number of frames or 'auto'") from None
    return RestoreJob(plate=plate, swapped=swapped, output=output, output_config=output_config, config=config,
                      bridge=args.bridge, schedule=schedule, verify=not args.no_verify,
                      analysis=_analysis_config(args), cache_dir=args.cache_dir, use_cache=not args.no_cache,
                      references=tuple(args.reference or ()), offset=offset, auto_offset=auto,
                      **({"occluders": None} if args.no_occluders else {}))


def _restore_lines(result: dict[str, Any]) -> list[str]:
    def fmt(x: Any) -> str:
        return "-" if x is None else f"{x['mean']:.2f} (max {x['max']:.2f})"

    lines = []
    for r in result["fixed_ranges"]:
        a, b = r["frames"]
        line = (f"  face {r['plate_face']}: fixed frames {a}-{b}: pose divergence {fmt(r['pose_divergence_deg_before'])} "
                f"deg, expression {fmt(r['expression_divergence_before'])}")
        if "pose_divergence_deg_after" in r:
            line += (f" -> after {fmt(r['pose_divergence_deg_after'])} deg, "
                     f"expression {fmt(r['expression_divergence_after'])}")
        if r["rotation_clamped"]:
            line += " (rotation clamped to the warp's limits: its angles, or the skin the frame shows)"
        lines.append(line)
    bridged = (" (bridged: " + ", ".join(f"{a}-{b}" for a, b in result["bridged_frames"]) + ")"
               if result["bridged_frames"] else " (passed through; --bridge fills them)")
    for face, ranges in result["lost_frames_by_face"].items():
        lines.append(f"  face {face}: the swap has no face on frames " + ", ".join(f"{a}-{b}" for a, b in ranges) + bridged)
    for face, ranges in result.get("garbled_frames_by_face", {}).items():
        lines.append(f"  face {face}: the swap's face is garbled on frames " + ", ".join(f"{a}-{b}" for a, b in ranges)
                     + " (its texture strays from the rest of the face's frames; not warped)" + bridged)
    offset = result.get("frame_offset", 0)
    if offset:
        lines.append(f"  the plate's frame F was compared with the swap's frame F{offset:+d}")
    for face, lag in result.get("suspected_frame_offsets", {}).items():
        lines.append(f"  face {face}: the swap's head moves {abs(lag)} frame{'' if abs(lag) == 1 else 's'} "
                     f"{'later' if lag > 0 else 'earlier'} than the plate's: are the clips lined up? "
                     f"(--offset {offset + lag} or --offset auto compares them so)")
    if not result["fixed_ranges"]:
        lines.append("  no frame diverged beyond the thresholds: the swap passed through unchanged")
    return lines


def cmd_restore(args: argparse.Namespace) -> int:
    from plugin.restore import run_restore

    job = _restore_job(args, args.plate, args.swapped, args.output, _output_config(args))
    if args.report is not None:
        from plugin.report import check_report_dir

        check_report_dir(args.report, overwrite=args.overwrite)  # before any work
    with Progress("track", args.quiet) as track_progress, Progress("refine", args.quiet) as refine_progress, \
            Progress("render", args.quiet) as render_progress:
        summary = run_restore(job, progress=track_progress, render_progress=render_progress,
                              refine_progress=refine_progress)
    result = summary.as_dict()
    if args.report is not None:
        from plugin.report import write_restore_report

        result["report"] = str(write_restore_report(args.report, summary))
    lines = [f"deltaface: wrote {result['output']} ({result['frames']} frames)", *_restore_lines(result)]
    if "report" in result:
        lines.append(f"  QC report: {result['report']}")
    _emit(args, result, "\n".join(lines))
    return 0


def cmd_dfl(args: argparse.Namespace) -> int:
    from plugin.dfl import DflFixJob, encode_video, fix_workspace

    if args.dfl_command == "video":
        result = encode_video(args.workspace, crf=args.crf, overwrite=args.overwrite)
        _emit(args, result, f"deltaface: wrote {result['output']} ({result['frames']} frames at "
                            f"{result['fps']:g} fps, audio {'copied' if result['audio_copied'] else 'none'})")
        return 0
    settings = _restore_job(args, Path("data_dst"), Path("merged"), Path("out"), OutputConfig(codec="png"))
    with Progress("track", args.quiet) as track_progress:
        fixed = fix_workspace(args.workspace, DflFixJob(settings, overwrite=args.overwrite,
                                                        src_references=not args.no_src_references),
                              progress=track_progress)
    result = fixed.as_dict()
    lines = [f"deltaface: wrote {result['merged_out']} and {result['mask_out']} ({result['frames']} frames; "
             f"{result['aligned_faces_read']} aligned face(s) read, {result['src_reference_stills']} source "
             f"faceset still(s) as references)", *_restore_lines(result["restore"])]
    _emit(args, result, "\n".join(lines))
    return 0


COMMANDS = {"render": cmd_render, "edit": cmd_edit, "controls": cmd_controls, "learn-delta": cmd_learn_delta, "track": cmd_track, "probe": cmd_probe, "demo": cmd_demo, "timeline": cmd_timeline, "restore": cmd_restore, "dfl": cmd_dfl}
