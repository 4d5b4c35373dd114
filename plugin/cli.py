"""The ``deltaface`` command line: its options, and :func:`run`, which parses them and runs the
command (``plugin/commands.py`` turns the parsed options into the stage configs and runs a job).

Defaults are never restated here: every option's default comes from its config dataclass.
Everything this module prints goes to stderr except results a script asked for (``--json``).
"""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from plugin.version import __version__
from plugin.writer import CODECS, OutputConfig
from plugin.analyze import CACHE_ENV_VAR
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
                      help="face (track id from 'deltaface track') that the --delta options edit "
                           "(default: the clip's only face)")
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
    edit.add_argument("--no-occluders", action="store_true",
                      help="do not look for what covers an edited face (a hand, a microphone): by "
                           "default such pixels keep the frame's bytes instead of bending with the face")
    edit.add_argument("--edit-unseen", action="store_true",
                      help="also edit frames where the face was not seen (the tracker bridged them: "
                           "something in front of the face, a turn too far); by default they pass "
                           "through and the edit eases out around them")
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
                   help="where the swap lost the face, or its face is garbled, rebuild it from the nearest good "
                        "swap frame's face, warped to the plate's pose (default: pass such frames through)")
    p.add_argument("--garbled-drop", type=float, default=None, metavar="X",
                   help="a swap face is garbled where its texture agrees with the rest of its frames this much "
                        "less than the plate's face does (0-2; 0: never; default 0.25)")
    p.add_argument("--edits", type=Path, default=None, metavar="FILE",
                   help="TOML edit list applied as well (face ids of the swapped frames)")
    p.add_argument("--reference", type=Path, action="append", default=None, metavar="FILE",
                   help="image, clip or image folder of the SWAPPED identity (e.g. DeepFaceLab's data_src/aligned) "
                        "lending eye and mouth texture where the swap's own frames have none in the needed state; "
                        "repeatable")
    p.add_argument("--no-occluders", action="store_true",
                   help="do not look for what covers a repaired face (a hand, a microphone; looked for in the "
                        "plate): by default such pixels keep the swap's bytes instead of bending with the face")
    p.add_argument("--no-verify", action="store_true",
                   help="do not track the output to measure the divergence left")
    p.add_argument("--offset", default="0", metavar="N|auto",
                   help="the swap's frames run N frames after the plate's (negative: before): compare the "
                        "plate's frame F with the swap's frame F+N; 'auto': the lag the head motion shows, "
                        "where it is clear (default 0: the same numbers)")


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


def _add_reporting_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")
    p.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run(argv: list[str]) -> int:
    """Parse ``argv`` and run the command. Raises DeltafaceError subclasses on bad input."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except ConfigError as exc:  # raised by a type= parser such as FrameRange.parse
        parser.error(str(exc))
    if getattr(args, "quiet", False):
        logging.getLogger().setLevel(logging.ERROR)
    from plugin.commands import COMMANDS

    return COMMANDS[args.command](args)
