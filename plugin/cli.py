"""The ``deltaface`` command line: parses options into the stage configs and runs a job.

Defaults are never restated here: every option's default comes from its config dataclass.
Everything this module prints goes to stderr except results a script asked for (``--json``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

from plugin.version import __version__
from plugin.ranges import FrameRange
from plugin.writer import CODECS, OutputConfig
from tracking.errors import ConfigError

_OUTPUT_DEFAULTS = OutputConfig()


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


def cmd_demo(args: argparse.Namespace) -> int:
    from plugin.demo import write_demo_clip
    from plugin.pipeline import RenderJob, run_render

    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    clip = write_demo_clip(out / "demo_input.mp4")
    print(f"deltaface demo: wrote the input clip {clip} (astronaut portrait with known synthetic "
          f"head motion; ground truth in {clip.with_suffix('.motion.json')})", file=sys.stderr)
    job = RenderJob(input=clip, output=out / "demo_output.mp4",
                    output_config=OutputConfig(overwrite=True))
    summary = run_render(job, progress=_Progress("render", False))
    print(f"deltaface demo: wrote {summary.output} ({summary.frames_written} frames, "
          f"{summary.fps:.1f} fps). This is the pass-through pipeline: decoding, exact timing, "
          "stream copy and provenance tag; face edits are not built yet.", file=sys.stderr)
    print(f"deltaface demo: results are in {out.resolve()}", file=sys.stderr)
    return 0


COMMANDS = {"render": cmd_render, "probe": cmd_probe, "demo": cmd_demo}


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the command. Raises DeltafaceError subclasses on bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:  # raised by a type= parser such as FrameRange.parse
        parser.error(str(exc))
    return COMMANDS[args.command](args)
