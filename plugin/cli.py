"""The ``deltaface`` command line: parses options into the stage configs and runs a job.

Defaults are never restated here: every option's default comes from its config dataclass.
Everything this module prints goes to stderr except results a script asked for (``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any

from plugin.version import __version__
from plugin.progress import Progress
from plugin.ranges import FrameRange
from plugin.writer import CODECS, OutputConfig
from plugin.analyze import CACHE_ENV_VAR, AnalysisConfig
from tracking.bundle import BUNDLE_ENV_VAR
from tracking.errors import ConfigError
from tracking.landmarker import LandmarkerConfig

_OUTPUT_DEFAULTS = OutputConfig()
#: ``--blend`` choices; ``compositing.blend.BLEND_METHODS`` is the definition (importing it here
#: would load torch for every command, even ``--help``); a test keeps the two equal.
BLEND_CHOICES = ("lerp", "laplacian", "poisson")
#: ``--device`` choices; ``plugin.editing.DEVICES`` is the definition (a test keeps them equal).
DEVICE_CHOICES = ("auto", "cpu", "cuda")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deltaface",
        description="Repair and edit faces in video after a face swap.",
    )
    parser.add_argument("--version", action="version", version=f"deltaface {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    render = sub.add_parser(
        "render",
        help="render a clip (pass-through) or a project file (its edits; re-render some frames)",
        description="Decode IN, encode to OUT (pass-through). IN may be a project file (.toml, see "
                    "README): its clip is rendered with its settings and edits to its output; with "
                    "--frames A-B only those frames are rendered again into the previous output.",
    )
    render.add_argument("input", type=Path, metavar="IN",
                        help="input video, image-sequence folder, or project file (.toml)")
    render.add_argument("-o", "--output", type=Path, default=None, metavar="OUT",
                        help="output file (a folder for --codec png); with a project: instead of its output")
    render.add_argument("--frames", default=None, metavar="A-B",
                        help="only frames A..B (0-based, inclusive) may be edited; others pass through. "
                             "With a project: render only A..B (indices or HH:MM:SS:FF) again into the "
                             "existing output, keeping every other frame (H.264: every other GOP)")
    render.add_argument("--resume", action="store_true",
                        help="continue an interrupted png render from its last complete frame")
    render.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                        help=f"with a project: analysis cache folder (default: ${CACHE_ENV_VAR} or ~/.cache/deltaface)")
    render.add_argument("--no-cache", action="store_true", help="with a project: analyse again")
    render.add_argument("--allow-truncated", action="store_true",
                        help="accept an input that ends early: keep the frames that decode")
    _add_output_options(render)
    _add_reporting_options(render)

    edit = sub.add_parser(
        "edit",
        help="edit faces: apply named controls or delta files over frame ranges",
        description="Track IN (or reuse its cached analysis), apply the deltas to the faces named, "
                    "warp and blend them back, encode OUT. Frames and faces without an edit pass "
                    "through untouched.",
    )
    edit.add_argument("input", type=Path, metavar="IN", help="input video or image-sequence folder")
    edit.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    edit.add_argument("--face", type=int, default=None, metavar="ID",
                      help="face (track id from 'deltaface track') that the --delta options edit")
    edit.add_argument("--delta", action="append", default=[], metavar="NAME=STRENGTH@A-B",
                      help="a named control or a .delta file at a strength over frames A-B "
                           "(eased over 4 frames outside the range; '~R' sets the ramp; no '@' = "
                           "whole clip); repeatable")
    edit.add_argument("--edits", type=Path, default=None, metavar="FILE",
                      help="TOML edit list (see README); combined with any --delta options")
    edit.add_argument("--allow-truncated", action="store_true",
                      help="accept an input that ends early: keep the frames that decode")
    edit.add_argument("--blend", choices=BLEND_CHOICES, default=BLEND_CHOICES[0],
                      help=f"how the edited face is blended in (default {BLEND_CHOICES[0]})")
    edit.add_argument("--device", choices=DEVICE_CHOICES, default=DEVICE_CHOICES[0],
                      help="where faces are warped and blended: auto (a CUDA GPU when torch sees one), "
                           "cpu or cuda (default auto)")
    edit.add_argument("--reference", action="append", type=Path, default=[], metavar="FILE",
                      help="image or clip of the same person lending texture (closed eyes, open mouth) "
                           "where the clip itself has none; repeatable")
    edit.add_argument("--no-texture", action="store_true",
                      help="warp only: never borrow eye or mouth texture from other frames")
    _add_timeline_options(edit)
    edit.add_argument("--report", type=Path, default=None, metavar="DIR",
                      help="also write a QC report: DIR/index.html (self-contained page: pose and "
                           "blendshape curves before/after, edited frames, clamps, before/after "
                           "thumbnails of the most-changed frames) and DIR/report.json")
    edit.add_argument("--report-retrack", action="store_true",
                      help="with --report: also track OUT and plot the measured values beside the "
                           "planned ones (one more analysis pass)")
    _add_analysis_options(edit)
    _add_output_options(edit)
    _add_reporting_options(edit)

    learn = sub.add_parser(
        "learn-delta",
        help="learn a delta from (before, after) example images of any face, CGI included",
        description="Invert each before/after pair, keep only the change (the example's identity "
                    "and head pose cancel), average over pairs and report how consistent they were.",
    )
    learn.add_argument("--before", type=Path, action="append", default=[], required=True, metavar="A.png")
    learn.add_argument("--after", type=Path, action="append", default=[], required=True, metavar="B.png")
    learn.add_argument("-o", "--output", type=Path, required=True, metavar="NAME.delta")
    learn.add_argument("--name", default=None, help="the delta's name (default: the output's stem)")
    learn.add_argument("--description", default="", help="what the change is")
    learn.add_argument("--max-strength", type=float, default=1.0,
                       help="strength up to which it is known to look right (default 1)")
    learn.add_argument("--landmarker-bundle", type=Path, default=None, metavar="FILE")
    learn.add_argument("--overwrite", action="store_true", help="replace an existing delta file")
    _add_reporting_options(learn)

    controls = sub.add_parser("controls", help="list the shipped named controls and their ranges")
    controls.add_argument("--json", action="store_true", help="print JSON")

    track = sub.add_parser(
        "track",
        help="find and follow every face; write the analysis file (and a preview)",
        description="Analyse IN: landmarks, pose and blendshapes of every face, as stable, smoothed "
                    "tracks. The analysis is cached (keyed by the input's content and the settings) "
                    "so that later renders skip this pass.",
    )
    track.add_argument("input", type=Path, metavar="IN", help="input video or image-sequence folder")
    track.add_argument("-o", "--output", type=Path, default=None, metavar="FILE",
                       help="also write the analysis file here (.npz)")
    track.add_argument("--preview", type=Path, default=None, metavar="OUT.mp4",
                       help="write a preview video: ids, landmarks, head axes, bridged (red) and "
                            "low-confidence (dashed) faces, cuts")
    track.add_argument("--allow-truncated", action="store_true",
                       help="accept an input that ends early: analyse the frames that decode")
    _add_analysis_options(track)
    _add_output_options(track)
    _add_reporting_options(track)

    timeline = sub.add_parser(
        "timeline",
        help="list the markers and clips of an editor's timeline (.otio, CMX 3600 .edl) as frames of IN",
        description="Read the markers and clip ranges of an OpenTimelineIO or CMX 3600 EDL file and "
                    "print the frames of IN each maps to; 'edit --timeline FILE --delta "
                    "NAME=S@marker:M' uses the same mapping. " + TIMELINE_MAPPING_HELP,
    )
    timeline.add_argument("file", type=Path, metavar="FILE", help="the timeline (.otio or .edl)")
    timeline.add_argument("--input", type=Path, required=True, metavar="IN",
                          help="the video the frames are counted in")
    _add_timeline_options(timeline, with_file=False)
    timeline.add_argument("--json", action="store_true", help="print JSON")

    probe = sub.add_parser("probe", help="describe a video: size, frames, timing, colour, streams")
    probe.add_argument("input", type=Path, metavar="IN")
    probe.add_argument("--json", action="store_true", help="print JSON")

    demo = sub.add_parser(
        "demo",
        help="make the demo clip from the embedded astronaut portrait and process it",
    )
    demo.add_argument("--out", type=Path, default=Path("out"), help="folder for the results (default: out)")
    _add_restore_parsers(sub)
    return parser


def _add_restore_options(p: argparse.ArgumentParser) -> None:
    # Defaults live in synthesis.restore.RestoreConfig (importing it here would load MediaPipe
    # for every command, even --help); None means "the config's default".
    p.add_argument("--pose-threshold", type=float, default=None, metavar="DEG",
                   help="fix frames whose yaw, pitch or roll differ from the plate's by more (default 3)")
    p.add_argument("--expression-threshold", type=float, default=None, metavar="X",
                   help="... or whose blendshape scores differ by more (0-1; default 0.25)")
    p.add_argument("--ramp", type=int, default=None, metavar="N",
                   help="frames the correction eases in and out over (default 4)")
    p.add_argument("--loop-rounds", type=int, default=None, metavar="N",
                   help="closed-loop rounds: render the fixed frames, re-detect the face, add what the "
                        "warp fell short of (0: open loop; default 2)")
    p.add_argument("--no-pose", action="store_true", help="leave the head pose as the swap has it")
    p.add_argument("--no-expression", action="store_true", help="leave the expression as the swap has it")
    p.add_argument("--bridge", action="store_true",
                   help="where the swap lost the face, rebuild it from the nearest good swap frame's face, "
                        "warped to the plate's pose (default: pass such frames through)")
    p.add_argument("--edits", type=Path, default=None, metavar="FILE",
                   help="TOML edit list applied as well (face ids of the swapped frames)")
    p.add_argument("--reference", type=Path, action="append", default=None, metavar="FILE",
                   help="image, clip or image folder of the SWAPPED identity (e.g. DeepFaceLab's data_src/aligned) "
                        "lending eye and mouth texture where the swap's own frames have none in the needed state; "
                        "repeatable")
    p.add_argument("--no-verify", action="store_true",
                   help="do not track the output to measure the divergence left")


def _add_restore_parsers(sub: Any) -> None:
    restore = sub.add_parser(
        "restore", help="bring a swapped face's pose and expression back to the plate's",
        description="Track the plate and the swap (the same frames twice), and where the swap's head "
                    "pose or expression diverge from the plate's, warp the swap to the plate's pose "
                    "and expression, keeping the swap's identity.")
    restore.add_argument("--plate", type=Path, required=True, metavar="ORIGINAL", help="the original frames")
    restore.add_argument("--swapped", type=Path, required=True, metavar="SWAPPED", help="the swapped frames")
    restore.add_argument("-o", "--output", type=Path, required=True, metavar="OUT")
    restore.add_argument("--report", type=Path, default=None, metavar="DIR",
                         help="write a QC report (HTML + report.json): the swap's pose and blendshapes before "
                              "and the restore's target after, fixed ranges shaded, before/after thumbnails")
    _add_restore_options(restore)
    _add_analysis_options(restore)
    _add_output_options(restore)
    _add_reporting_options(restore)

    dfl = sub.add_parser("dfl", help="DeepFaceLab workspace: repair merged frames, encode the result")
    dsub = dfl.add_subparsers(dest="dfl_command", metavar="ACTION")
    dsub.required = True
    fix = dsub.add_parser("fix", help="restore data_dst/merged against data_dst -> merged_deltaface",
                          description="Read data_dst/ (plate), data_dst/merged/ (swap), merged_mask/ and "
                                      "aligned/ metadata; write data_dst/merged_deltaface/ and "
                                      "data_dst/merged_mask_deltaface/. DeepFaceLab's folders are only read.")
    fix.add_argument("workspace", type=Path, metavar="WORKSPACE")
    _add_restore_options(fix)
    fix.add_argument("--no-src-references", action="store_true",
                     help="do not read data_src/aligned (the source faceset) as reference stills for eye and "
                          "mouth texture the merged frames never show (read by default when present)")
    _add_analysis_options(fix)
    fix.add_argument("--overwrite", action="store_true", help="replace earlier *_deltaface folders")
    _add_reporting_options(fix)
    video = dsub.add_parser("video", help="encode merged_deltaface to result_deltaface.mp4 (with data_dst's audio)")
    video.add_argument("workspace", type=Path, metavar="WORKSPACE")
    video.add_argument("--crf", type=int, default=_OUTPUT_DEFAULTS.crf,
                       help=f"h264 quality, 0 = lossless (default {_OUTPUT_DEFAULTS.crf})")
    video.add_argument("--overwrite", action="store_true", help="replace an existing result_deltaface.mp4")
    _add_reporting_options(video)


def _add_output_options(p: argparse.ArgumentParser) -> None:
    d = _OUTPUT_DEFAULTS
    p.add_argument("--codec", choices=CODECS, default=d.codec,
                   help=f"output codec (default {d.codec}; png writes an image-sequence folder)")
    p.add_argument("--crf", type=int, default=d.crf, help=f"h264 quality, lower is better (default {d.crf})")
    p.add_argument("--preset", default=d.preset, help=f"h264 speed preset (default {d.preset})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


_LANDMARKER_DEFAULTS = LandmarkerConfig()
#: How often the missed-face search's smaller tiles run with --small-faces (seconds of the clip;
#: by default every 0.8 s and 3.2 s at 1080p; a face found is followed between runs).
SMALL_FACE_INTERVAL_S = 0.6
#: The search's tiles with --large-faces-only (the whole shorter side: faces from about a fifth).
LARGE_FACE_TILES = (1.0,)


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    d = _LANDMARKER_DEFAULTS
    p.add_argument("--num-faces", type=int, default=d.num_faces,
                   help=f"most faces per frame (default {d.num_faces})")
    p.add_argument("--landmarker-bundle", type=Path, default=None, metavar="FILE",
                   help=f"face_landmarker.task to use (default: ${BUNDLE_ENV_VAR}, else the shipped one)")
    search = p.add_mutually_exclusive_group()
    search.add_argument("--small-faces", action="store_true",
                        help="find small faces (down to about a twentieth of the frame's height) that enter "
                             f"mid-shot sooner: the search's small tiles run every {SMALL_FACE_INTERVAL_S:g} s "
                             "(default: every 0.8 and 3.2 s, and on each shot's first frame); analysis is slower")
    search.add_argument("--large-faces-only", action="store_true",
                        help="look only for faces from about a fifth of the frame's height (close-ups): the "
                             "fastest analysis; smaller faces are not tracked")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help=f"analysis cache folder (default: ${CACHE_ENV_VAR} or ~/.cache/deltaface)")
    p.add_argument("--no-cache", action="store_true", help="analyse again even if a cached analysis matches")


TIMELINE_MAPPING_HELP = (
    "Record time (default) is the cut as it plays: IN's frame 0 is IN's start timecode if it has "
    "one, else the timeline's start. Source time is the clips' media time: IN is the source clip, "
    "its frame 0 is its start timecode (or 0). Times are converted at the timeline's own rate; an "
    "IN frame belongs to a range when its start time lies inside it (24 fps frames 10-19 are 30 fps "
    "frames 13-24); a zero-length marker is the one frame showing at its time."
)


def _add_timeline_options(p: argparse.ArgumentParser, with_file: bool = True) -> None:
    if with_file:
        p.add_argument("--timeline", type=Path, default=None, metavar="FILE",
                       help="an editor's timeline (.otio, or CMX 3600 .edl): --delta ranges may then "
                            "be '@marker:NAME' or '@clip:NAME' (list them with 'deltaface timeline')")
    p.add_argument("--timeline-space", choices=("record", "source"), default="record",
                   help="map timeline times as the cut plays ('record', default: IN is the cut) or as "
                        "media times of its clips ('source': IN is the source clip)")
    p.add_argument("--timeline-rate", type=float, default=None, metavar="FPS",
                   help="frame rate of an EDL's timecodes (an EDL does not say; default: IN's rate)")


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


def _add_reporting_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


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
    from plugin.edit_job import EditJob, run_edit
    from plugin.editing import RenderConfig
    from plugin.editlist import load_edit_list, schedule_from_specs
    from plugin.pipeline import RenderJob
    from plugin.video import probe
    from synthesis.schedule import EditSchedule

    if not args.delta and args.edits is None:
        raise ConfigError("nothing to do: give --face ID --delta NAME=STRENGTH@A-B, or --edits FILE")
    if args.delta and args.face is None:
        raise ConfigError("--delta needs --face ID (the track id 'deltaface track' prints)")
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
    if specs:
        schedule = schedule + schedule_from_specs(specs, args.face, info.num_frames, fps)
    if args.edits is not None:
        schedule = schedule + load_edit_list(args.edits, info.num_frames, fps)
    render = RenderJob(input=args.input, output=args.output, output_config=_output_config(args),
                       allow_truncated=args.allow_truncated)
    job = EditJob(render=render, schedule=schedule, analysis=_analysis_config(args),
                  render_config=RenderConfig(blend=BlendConfig(method=args.blend), device=args.device),
                  cache_dir=args.cache_dir, use_cache=not args.no_cache,
                  references=tuple(args.reference), **({"texture": None} if args.no_texture else {}))
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
             "ramp_frames": args.ramp, "refine_rounds": args.loop_rounds}
    config = RestoreConfig(**{k: v for k, v in given.items() if v is not None}, correct_pose=not args.no_pose,
                           correct_expression=not args.no_expression)
    schedule = None
    if args.edits is not None:
        info = probe(swapped)
        schedule = load_edit_list(args.edits, info.num_frames, float(info.average_rate) if info.average_rate else None)
    return RestoreJob(plate=plate, swapped=swapped, output=output, output_config=output_config, config=config,
                      bridge=args.bridge, schedule=schedule, verify=not args.no_verify,
                      analysis=_analysis_config(args), cache_dir=args.cache_dir, use_cache=not args.no_cache,
                      references=tuple(args.reference or ()))


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
            line += " (rotation clamped to the warp's limits)"
        lines.append(line)
    for face, ranges in result["lost_frames_by_face"].items():
        lines.append(f"  face {face}: the swap has no face on frames " + ", ".join(f"{a}-{b}" for a, b in ranges)
                     + (" (bridged: " + ", ".join(f"{a}-{b}" for a, b in result["bridged_frames"]) + ")"
                        if result["bridged_frames"] else " (passed through; --bridge fills them)"))
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


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the command. Raises DeltafaceError subclasses on bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:  # raised by a type= parser such as FrameRange.parse
        parser.error(str(exc))
    if getattr(args, "quiet", False):
        logging.getLogger().setLevel(logging.ERROR)
    return COMMANDS[args.command](args)
