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
import time
from pathlib import Path
from typing import Any

from plugin.version import __version__
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
        help="render a clip (today: pass-through re-encode with exact timing and streams)",
        description="Decode IN, apply the edits (none yet: pass-through), encode to OUT.",
    )
    render.add_argument("input", type=Path, metavar="IN", help="input video or image-sequence folder")
    render.add_argument("-o", "--output", type=Path, required=True, metavar="OUT",
                        help="output file (a folder for --codec png)")
    render.add_argument("--frames", type=FrameRange.parse, default=None, metavar="A-B",
                        help="only frames A..B (0-based, inclusive) may be edited; others pass through")
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

    probe = sub.add_parser("probe", help="describe a video: size, frames, timing, colour, streams")
    probe.add_argument("input", type=Path, metavar="IN")
    probe.add_argument("--json", action="store_true", help="print JSON")

    demo = sub.add_parser(
        "demo",
        help="make the demo clip from the embedded astronaut portrait and process it",
    )
    demo.add_argument("--out", type=Path, default=Path("out"), help="folder for the results (default: out)")
    return parser


def _add_output_options(p: argparse.ArgumentParser) -> None:
    d = _OUTPUT_DEFAULTS
    p.add_argument("--codec", choices=CODECS, default=d.codec,
                   help=f"output codec (default {d.codec}; png writes an image-sequence folder)")
    p.add_argument("--crf", type=int, default=d.crf, help=f"h264 quality, lower is better (default {d.crf})")
    p.add_argument("--preset", default=d.preset, help=f"h264 speed preset (default {d.preset})")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")


_LANDMARKER_DEFAULTS = LandmarkerConfig()


def _add_analysis_options(p: argparse.ArgumentParser) -> None:
    d = _LANDMARKER_DEFAULTS
    p.add_argument("--num-faces", type=int, default=d.num_faces,
                   help=f"most faces per frame (default {d.num_faces})")
    p.add_argument("--landmarker-bundle", type=Path, default=None, metavar="FILE",
                   help=f"face_landmarker.task to use (default: ${BUNDLE_ENV_VAR}, else the shipped one)")
    p.add_argument("--cache-dir", type=Path, default=None, metavar="DIR",
                   help=f"analysis cache folder (default: ${CACHE_ENV_VAR} or ~/.cache/deltaface)")
    p.add_argument("--no-cache", action="store_true", help="analyse again even if a cached analysis matches")


def _analysis_config(args: argparse.Namespace) -> AnalysisConfig:
    landmarker = dataclasses.replace(
        _LANDMARKER_DEFAULTS, num_faces=args.num_faces,
        bundle_path=str(args.landmarker_bundle) if args.landmarker_bundle else None,
    )
    return AnalysisConfig(landmarker=landmarker)


def _add_reporting_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def _output_config(args: argparse.Namespace) -> OutputConfig:
    return OutputConfig(codec=args.codec, crf=args.crf, preset=args.preset, overwrite=args.overwrite)


class _Progress:
    """Plain progress lines on stderr, at most one every ``interval`` seconds."""

    def __init__(self, label: str, quiet: bool, interval: float = 2.0) -> None:
        self.label, self.quiet, self.interval = label, quiet, interval
        self.started = self.last = time.monotonic()

    def __call__(self, done: int, total: int | None) -> None:
        now = time.monotonic()
        if self.quiet or (now - self.last < self.interval and done != total):
            return
        self.last = now
        fps = done / max(now - self.started, 1e-9)
        of = f"/{total}" if total else ""
        print(f"{self.label}: {done}{of} frames, {fps:.1f} fps", file=sys.stderr)


def _emit(args: argparse.Namespace, summary: dict[str, Any], line: str) -> None:
    if getattr(args, "json", False):
        print(json.dumps(summary, indent=1, default=str))
    if not getattr(args, "quiet", False):
        print(line, file=sys.stderr)


def cmd_render(args: argparse.Namespace) -> int:
    from plugin.pipeline import RenderJob, run_render

    job = RenderJob(
        input=args.input,
        output=args.output,
        output_config=_output_config(args),
        frames=args.frames,
        allow_truncated=args.allow_truncated,
    )
    summary = run_render(job, progress=_Progress("render", args.quiet))
    result = dataclasses.asdict(summary) | {"fps": round(summary.fps, 2), "mode": "pass-through"}
    note = ""
    if summary.truncated_at is not None:
        note = f"; input truncated: stopped at frame {summary.truncated_at}"
    _emit(args, result,
          f"deltaface: wrote {summary.output} ({summary.frames_written} frames, pass-through: "
          f"no edits yet){note}")
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
    if args.delta:
        schedule = schedule + schedule_from_specs(args.delta, args.face, info.num_frames, fps)
    if args.edits is not None:
        schedule = schedule + load_edit_list(args.edits, info.num_frames, fps)
    render = RenderJob(input=args.input, output=args.output, output_config=_output_config(args),
                       allow_truncated=args.allow_truncated)
    job = EditJob(render=render, schedule=schedule, analysis=_analysis_config(args),
                  render_config=RenderConfig(blend=BlendConfig(method=args.blend)),
                  cache_dir=args.cache_dir, use_cache=not args.no_cache)
    summary = run_edit(job, progress=_Progress("track", args.quiet), render_progress=_Progress("render", args.quiet))
    result = summary.as_dict()
    lines = [f"deltaface: wrote {result['output']} ({result['frames']} frames, {result['render_fps']} fps)"]
    for face, ranges in result["edited_ranges_by_face"].items():
        lines.append(f"  face {face}: edited frames " + ", ".join(f"{a}-{b}" for a, b in ranges))
    for c in result["clamps"]:
        lines.append(f"  clamp: face {c['face']} {c['delta']} frames {c['frames'][0]}-{c['frames'][1]}: "
                     f"asked {c['requested']}, applied {c['applied']}")
    _emit(args, result, "\n".join(lines))
    return 0


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
                          progress=_Progress("track", args.quiet))
    if args.output is not None:
        with AtomicOutput(args.output, overwrite=args.overwrite, inputs=inputs) as tmp:
            save_analysis(result.analysis, tmp)
    if args.preview is not None:
        job = RenderJob(input=args.input, output=args.preview, output_config=_output_config(args),
                        allow_truncated=args.allow_truncated)
        run_render(job, [PreviewStage(result.analysis)], progress=_Progress("preview", args.quiet))
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
    result = run_analysis(clip, cache_dir=out / "cache", progress=_Progress("track", False))
    tracks = summarize(result.analysis)["tracks"]
    print(f"deltaface demo: tracked {len(tracks)} face(s); analysis in {result.cache_path}", file=sys.stderr)
    preview = RenderJob(input=clip, output=out / "demo_tracking_preview.mp4",
                        output_config=OutputConfig(overwrite=True))
    run_render(preview, [PreviewStage(result.analysis)], progress=_Progress("preview", False))
    print(f"deltaface demo: wrote {preview.output} (ids, landmarks, head axes)", file=sys.stderr)
    job = RenderJob(input=clip, output=out / "demo_output.mp4", output_config=OutputConfig(overwrite=True))
    summary = run_render(job, progress=_Progress("render", False))
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
    edited = run_edit(edit, render_progress=_Progress("edit", False))
    print(f"deltaface demo: wrote {edited.render.output}: face 0 edited with " + ", ".join(specs)
          + f" (frames {edited.edited_ranges_by_face.get(0)})", file=sys.stderr)
    print(f"deltaface demo: results are in {out.resolve()}", file=sys.stderr)
    return 0


COMMANDS = {"render": cmd_render, "edit": cmd_edit, "controls": cmd_controls, "learn-delta": cmd_learn_delta, "track": cmd_track, "probe": cmd_probe, "demo": cmd_demo}


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
