"""Project files: one TOML file holds a clip, its output, every setting and the per-face edits.

A project file (``version = 1``)::

    version = 1
    input = "plates/shot_010.mp4"      # relative to this file's folder, or an absolute path

    [output]
    path = "renders/shot_010.mp4"      # relative to this file's folder (a folder for png)
    codec = "h264"                     # h264 | prores | ffv1 | png     (OutputConfig)
    crf = 16
    preset = "medium"
    keyframe_seconds = 2.0             # h264: closed GOPs of this length (plugin.smartrender)

    [tracking]
    num_faces = 8
    align_sources = true               # optional (tracking.analysis.TrackingConfig)
    bundle = "models/face_landmarker.task"   # optional; like input: relative inside, or absolute
    [tracking.smoothing]               # optional: any field of tracking.smoothing.SmoothingConfig
    landmarks = { evidence_low = 2.0 }

    [plan]                             # optional: any field of synthesis.plan.PlanConfig
    max_yaw_deg = 12.0

    [blend]                            # optional: any field of compositing.blend.BlendConfig
    method = "laplacian"

    [[edit]]                           # the edit list's [[edit]] tables (plugin.editlist)
    face = 0
    delta = "smile"
    strength = 0.6
    frames = "00:00:01:00-00:00:02:00" # 0-based indices or HH:MM:SS:FF timecode

Every key is optional except ``version``, ``input`` and ``output.path``; a value left out keeps
its config dataclass's default (defaults live in the dataclasses only).

Paths written in a project, and what a project may reach:
    * Relative paths (input, output, bundle, ``.delta`` files) are taken from the project file's
      folder and, symlinks followed, must stay inside it: ``..`` or a symlink out is refused.
    * ``input`` and ``bundle`` may also be absolute: an editor's media and models live elsewhere,
      and deltaface only reads them.
    * ``output.path`` must be relative and stay inside the project's folder: a project file someone
      sends cannot make deltaface write elsewhere. To write elsewhere, pass ``-o`` on the command
      line (the user typed it).

Errors are :class:`~tracking.errors.ConfigError` of one line naming the file, line and key:
``project.toml:7: [output] 'crf': crf must be an integer 0-51, got 99``. Frame ranges outside the
clip are refused here, unknown face ids when the analysis is known (:func:`prepare_project`),
both before anything is rendered.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import os
import re
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from compositing.blend import BlendConfig
from plugin.analyze import AnalysisConfig, ProgressCallback
from plugin.editing import RenderConfig
from plugin.edit_job import PreparedEdit, prepare_edit
from plugin.editlist import parse_edit_tables, parse_frames
from plugin.output import check_output_path
from plugin.pipeline import RenderJob, run_render
from plugin.provenance import build_provenance, read_provenance
from plugin.sequence import check_resumable, rerender_png, resume_png
from plugin.smartrender import NotStitchable, smart_rerender
from plugin.texture_stage import TextureConfig
from synthesis.occluders import OccluderConfig
from plugin.video import VideoInfo, probe
from plugin.writer import SUFFIXES, OutputConfig
from synthesis.plan import PlanConfig
from synthesis.schedule import EditSchedule
from tracking.analysis import TrackingConfig
from tracking.errors import ConfigError, OutputError
from tracking.smoothing import SmoothingConfig

PROJECT_VERSION = 1
PROJECT_SUFFIX = ".toml"
#: Largest project file read (a project is a few kilobytes; this only bounds a hostile file).
MAX_PROJECT_BYTES = 1 << 20
_TOP_KEYS = ("version", "input", "output", "tracking", "plan", "blend", "edit")
_OUTPUT_KEYS = ("path", "codec", "crf", "preset", "keyframe_seconds")
_TRACKING_KEYS = ("num_faces", "bundle", "smoothing", "align_sources")
_VIDEO_SUFFIXES = frozenset(x for c, xs in SUFFIXES.items() if c != "png" for x in xs)
_ARRAY_HEADER = re.compile(r"^\s*\[\[")
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(?:#.*)?$")


@dataclass(frozen=True)
class Project:
    """A loaded project: everything one render needs, checked against the clip.

    Attributes:
        path: the project file (absolute).
        input: the clip (absolute).
        output: the output file or png folder (absolute).
        output_config: codec and quality (``overwrite`` False; the command line decides it).
        analysis: tracking settings (part of the analysis cache key).
        plan: edit limits.
        render_config: warp and blend settings.
        schedule: the ``[[edit]]`` entries, frames checked against the clip.
        info: the clip's :class:`~plugin.video.VideoInfo`.
    """

    path: Path
    input: Path
    output: Path
    output_config: OutputConfig
    analysis: AnalysisConfig
    plan: PlanConfig
    render_config: RenderConfig
    schedule: EditSchedule
    info: VideoInfo

    @property
    def fps(self) -> float | None:
        """The clip's mean frame rate (for timecodes), None when unknown."""
        rate = self.info.average_rate
        return float(rate) if rate else None


class _Err(ConfigError):
    """A ConfigError that knows which table and key of the project it is about."""

    def __init__(self, table: tuple[str, ...], key: str | None, message: str) -> None:
        super().__init__(message)
        self.table, self.key = table, key


def _key_line(text: str, table: tuple[str, ...], key: str | None) -> int | None:
    """1-based line of ``key`` in ``[table]`` (or of the table's header); None if not found.

    A plain line scan (headers ``[a.b]`` and ``key =`` lines): dotted keys and inline tables are
    not followed, so an unusual layout gives no line rather than a wrong one.
    """
    current: tuple[str, ...] = ()
    header_line = None if table else 0
    key_re = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=") if key else None
    for i, line in enumerate(text.splitlines()):
        if _ARRAY_HEADER.match(line):  # [[edit]]: its keys belong to no table named here
            current = ("[[]]",)
            continue
        m = _HEADER.match(line)
        if m:
            current = tuple(p.strip().strip("\"'") for p in m.group(1).split("."))
            if current == table and header_line is None:
                header_line = i + 1
            continue
        if current == table and key_re is not None and key_re.match(line):
            return i + 1
    return header_line or None


def _fail(source: Path, text: str, err: _Err) -> ConfigError:
    table, key = err.table, err.key
    line = _key_line(text, table, key)
    while line is None and table:  # an inline table: the line of the key holding it
        table, key = table[:-1], table[-1]
        line = _key_line(text, table, key)
    where = f"{source}:{line}" if line else str(source)
    table = f" [{'.'.join(err.table)}]" if err.table else ""
    key = f" {err.key!r}" if err.key else ""
    return ConfigError(f"{where}:{table}{key}: {err}")


def _coerce(value: Any, default: Any, table: tuple[str, ...], key: str) -> Any:
    """``value`` from TOML as the type of the field's ``default`` (bool, int, float, str, enum, tuple)."""
    def bad(what: str) -> _Err:
        return _Err(table, key, f"{value!r} is not {what}")

    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise bad("true or false")
        return value
    if isinstance(default, enum.Enum):
        try:
            return type(default)(value)
        except (ValueError, TypeError):
            allowed = ", ".join(str(m.value) for m in type(default))
            raise bad(f"one of {allowed}") from None
    if isinstance(default, int):
        if isinstance(value, bool) or not isinstance(value, int):
            raise bad("a whole number")
        return value
    if isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise bad("a finite number")
        return float(value)
    if isinstance(default, str):
        if not isinstance(value, str):
            raise bad("a string")
        return value
    if isinstance(default, tuple) and default:
        if not isinstance(value, list) or len(value) != len(default):
            raise bad(f"a list of {len(default)} values")
        return tuple(_coerce(v, d, table, key) for v, d in zip(value, default))
    raise _Err(table, key, "cannot be set in a project file")


def config_from_table(cls: type, table: Any, where: tuple[str, ...]) -> Any:
    """A frozen config dataclass from a TOML table, every other field at its default.

    Keys must be field names; a field holding a dataclass takes a sub-table. The dataclass's own
    ``__post_init__`` validates the values.

    Args:
        cls: the config dataclass (every field has a default).
        table: the parsed TOML table.
        where: the table's path in the file, for messages (``("tracking", "smoothing")``).

    Raises:
        ConfigError: (a subclass naming the table and key) unknown key, wrong type, or refused
            by the dataclass.
    """
    if not isinstance(table, dict):
        raise _Err(where[:-1], where[-1], "must be a table")
    defaults = cls()
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names:
            raise _Err(where, key, f"unknown key (allowed: {', '.join(names)})")
        current = getattr(defaults, key)
        if dataclasses.is_dataclass(current):
            kwargs[key] = config_from_table(type(current), value, (*where, key))
        else:
            kwargs[key] = _coerce(value, current, where, key)
    try:
        return dataclasses.replace(defaults, **kwargs)
    except _Err:
        raise
    except (ConfigError, TypeError, ValueError, OverflowError) as e:
        key = next((k for k in kwargs if k in str(e)), None)
        raise _Err(where, key, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _replace(config: Any, table: tuple[str, ...], key: str, **changes: Any) -> Any:
    """``dataclasses.replace`` whose refusal names the project's table and key."""
    try:
        return dataclasses.replace(config, **changes)
    except (ConfigError, TypeError, ValueError, OverflowError) as e:
        raise _Err(table, key, str(e).splitlines()[0] if str(e) else type(e).__name__) from None


def _inside(base: Path, ref: str, table: tuple[str, ...], key: str, *, allow_absolute: bool) -> Path:
    """``ref`` resolved against ``base``; relative paths (symlinks followed) must stay inside it."""
    if not isinstance(ref, str) or not ref or "\x00" in ref:
        raise _Err(table, key, f"{ref!r} is not a path")
    raw = Path(ref).expanduser() if ref.startswith("~") else Path(ref)
    if raw.is_absolute():
        if not allow_absolute:
            raise _Err(table, key, f"{ref!r} is absolute; write a path inside the project's folder "
                                   f"{base} (or pass -o on the command line)")
        try:
            return raw.resolve()
        except (OSError, RuntimeError, ValueError) as e:
            raise _Err(table, key, f"{ref!r} cannot be resolved: {e}") from None
    try:
        path = (base / raw).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise _Err(table, key, f"{ref!r} cannot be resolved: {e}") from None
    if not path.is_relative_to(base):
        raise _Err(table, key, f"{ref!r} is outside the project's folder {base}")
    return path


def _read(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_PROJECT_BYTES + 1)
    except OSError as e:
        raise ConfigError(f"project {path} cannot be read: {e.strerror or e}") from None
    if len(raw) > MAX_PROJECT_BYTES:
        raise ConfigError(f"{path}: project file is larger than {MAX_PROJECT_BYTES} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: project file is not UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        data = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, RecursionError, ValueError) as e:
        m = re.search(r"line (\d+)", str(e))
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ConfigError(f"{path}{':' + m.group(1) if m else ''}: invalid TOML: {first}") from None
    return text, data


def _table(data: Mapping[str, Any], name: str, allowed: tuple[str, ...]) -> dict[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise _Err((), name, "must be a table")
    unknown = sorted(set(value) - set(allowed))
    if unknown:
        raise _Err((name,), unknown[0], f"unknown key (allowed: {', '.join(allowed)})")
    return value


def load_project(path: str | os.PathLike[str]) -> Project:
    """Read and check a project file (module docstring); probes the input clip.

    Args:
        path: the ``.toml`` project file.

    Returns:
        The project, with every path absolute and every frame range inside the clip.

    Raises:
        ConfigError: unreadable, invalid TOML, wrong version, unknown key, bad value, a path
            escaping the project's folder, or a frame range outside the clip (one line naming
            the file, line and key).
        InputError: the input clip is missing or not a video.
    """
    source = Path(path).absolute()
    text, data = _read(source)
    base = source.parent.resolve()
    try:
        unknown = sorted(set(data) - set(_TOP_KEYS))
        if unknown:
            raise _Err((), unknown[0], f"unknown top-level key (allowed: {', '.join(_TOP_KEYS)})")
        version = data.get("version")
        if isinstance(version, bool) or version != PROJECT_VERSION:
            raise _Err((), "version", f"must be {PROJECT_VERSION}, got {version!r}")
        if "input" not in data:
            raise _Err((), None, "missing key 'input' (the clip to render)")
        clip = _inside(base, data["input"], (), "input", allow_absolute=True)
        out = _table(data, "output", _OUTPUT_KEYS)
        if "path" not in out:
            raise _Err(("output",), None, "missing key 'path' (the output file or png folder)")
        output = _inside(base, out["path"], ("output",), "path", allow_absolute=False)
        output_config = config_from_table(OutputConfig, {k: v for k, v in out.items() if k != "path"}, ("output",))
        suffix, codec = output.suffix.lower(), output_config.codec
        if codec == "png" and suffix in _VIDEO_SUFFIXES or codec != "png" and suffix not in SUFFIXES[codec]:
            allowed = "a folder" if codec == "png" else " or ".join(SUFFIXES[codec])
            raise _Err(("output",), "path", f"codec {codec} is written to {allowed}")
        trk = _table(data, "tracking", _TRACKING_KEYS)
        landmarker = AnalysisConfig().landmarker
        if "num_faces" in trk:
            num = _coerce(trk["num_faces"], landmarker.num_faces, ("tracking",), "num_faces")
            landmarker = _replace(landmarker, ("tracking",), "num_faces", num_faces=num)
        if "bundle" in trk:
            bundle = _inside(base, trk["bundle"], ("tracking",), "bundle", allow_absolute=True)
            landmarker = _replace(landmarker, ("tracking",), "bundle", bundle_path=str(bundle))
        tracking = TrackingConfig()
        if "align_sources" in trk:
            tracking = dataclasses.replace(tracking, align_sources=_coerce(
                trk["align_sources"], tracking.align_sources, ("tracking",), "align_sources"))
        if "smoothing" in trk:
            tracking = dataclasses.replace(tracking, smoothing=config_from_table(
                SmoothingConfig, trk["smoothing"], ("tracking", "smoothing")))
        analysis = AnalysisConfig(landmarker=landmarker, tracking=tracking)
        plan = config_from_table(PlanConfig, data.get("plan", {}), ("plan",))
        blend = config_from_table(BlendConfig, data.get("blend", {}), ("blend",))
    except _Err as e:
        raise _fail(source, text, e) from None
    except ConfigError as e:  # a nested dataclass's own check, without a key
        raise ConfigError(f"{source}: {e}") from None
    if clip == output or output.is_relative_to(clip) and clip.is_dir():
        raise _fail(source, text, _Err(("output",), "path", "is the input; choose another output"))
    if not clip.exists():
        raise _fail(source, text, _Err((), "input", f"{clip} does not exist"))
    info = probe(clip)
    fps = float(info.average_rate) if info.average_rate else None
    schedule = parse_edit_tables(data.get("edit", []), base, source=str(source), text=text,
                                 num_frames=info.num_frames, fps=fps)
    return Project(source, clip, output, output_config, analysis, plan,
                   RenderConfig(blend=blend), schedule, info)


def is_project_file(path: str | os.PathLike[str]) -> bool:
    """Whether a command-line input names a project file (a ``.toml`` file) rather than a clip."""
    p = Path(path)
    return p.suffix.lower() == PROJECT_SUFFIX and not p.is_dir()


def prepare_project(
    project: Project,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    allow_truncated: bool = False,
    progress: ProgressCallback | None = None,
) -> PreparedEdit | None:
    """Analyse (or load the cached analysis), check face ids, plan every edited face: the steps of
    :func:`plugin.edit_job.run_edit` before its render pass. A project without edits is not
    analysed at all (None: its render is a pass-through). Close the result after rendering.

    Raises:
        ConfigError: an unknown face id or delta.
        InputError, ModelLoadError: as for :func:`plugin.analyze.run_analysis`.
    """
    if not len(project.schedule):
        return None
    return prepare_edit(project.input, project.schedule, analysis=project.analysis, plan=project.plan,
                        render_config=project.render_config, texture=TextureConfig(),
                        occluders=OccluderConfig(), cache_dir=cache_dir,
                        use_cache=use_cache, allow_truncated=allow_truncated, progress=progress,
                        where=f"{project.path} ({project.input.name})")


@dataclass(frozen=True)
class ProjectRenderSummary:
    """What one render of a project did.

    Attributes:
        project, output: the project file and the output written.
        mode: ``"full"`` (every frame rendered), ``"frames"`` (only the frames asked for, or for
            H.264 the GOPs holding them; the rest kept from the previous output) or ``"resume"``.
        frames_rendered: inclusive ranges rendered by this run.
        note: one line when a partial render or a resume fell back to a full render, and why.
        details: the numbers of the mode (files or packets written and copied, GOPs, fps).
        analysis_from_cache: whether the analysis was reused (None: no edits, no analysis).
        edited_ranges_by_face: frames edited per face by the project.
        clamps: where a clamp acted (as ``deltaface edit`` reports them).
        seconds: wall time of the whole run.
    """

    project: Path
    output: Path
    mode: str
    frames_rendered: list[list[int]]
    note: str
    details: Mapping[str, Any]
    analysis_from_cache: bool | None
    edited_ranges_by_face: Mapping[int, list[list[int]]]
    clamps: list[dict[str, Any]]
    seconds: float

    def as_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out.update(project=str(self.project), output=str(self.output), seconds=round(self.seconds, 3),
                   edited_ranges_by_face={str(k): v for k, v in self.edited_ranges_by_face.items()})
        return out


def render_project(
    project: Project,
    *,
    frames: str | None = None,
    resume: bool = False,
    output: Path | None = None,
    overwrite: bool = False,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    allow_truncated: bool = False,
    progress: ProgressCallback | None = None,
    render_progress: ProgressCallback | None = None,
) -> ProjectRenderSummary:
    """Render a project: the whole clip, only some frames into the previous output, or a resume.

    Args:
        project: from :func:`load_project`.
        frames: ``"A-B"`` (indices or timecode): render only these frames again into the existing
            output (PNG: exactly these files; H.264 and other video: the GOPs holding them, every
            other packet copied). Without a previous output, or where the stream does not allow
            it, the whole clip is rendered and ``note`` says why.
        resume: continue an interrupted PNG render (:func:`plugin.sequence.resume_png`).
        output: write here instead of the project's output (the user typed it: not confined).
        overwrite: replace an existing output in a full render. A partial render updates the
            previous output in place without it, if deltaface wrote that output.

    Raises:
        ConfigError: bad frames, ``frames`` with ``resume``, resume of a video codec, unknown
            face ids (all before anything is written).
        OutputError: the output exists (full render without ``overwrite``), or a partial render's
            previous output was not written by deltaface.
    """
    started = time.perf_counter()
    out = Path(output).absolute() if output is not None else project.output
    info, config = project.info, dataclasses.replace(project.output_config, overwrite=overwrite)
    png = config.codec == "png"
    config.check_path(out)
    span: tuple[int, int] | None = None
    if frames is not None:
        if resume:
            raise ConfigError("--frames and --resume cannot be combined")
        a, b = parse_frames(frames, info.num_frames, project.fps)
        span = (a, info.num_frames - 1 if b is None else b)
    if resume:
        check_resumable(config.codec)
    partial = span is not None and (out.exists() or out.is_symlink())
    if partial:
        check_output_path(out, overwrite=True, inputs=[project.input], is_folder=png)
        if read_provenance(out) is None:
            raise OutputError(f"{out}: not written by deltaface (no provenance tag), so it is not re-rendered "
                              "in part; pass --overwrite without --frames to replace it")
    elif not resume:
        check_output_path(out, overwrite=overwrite, inputs=[project.input], is_folder=png)
    prepared = prepare_project(project, cache_dir=cache_dir, use_cache=use_cache,
                               allow_truncated=allow_truncated, progress=progress)
    stages = [] if prepared is None else [prepared.stage]
    edited_ranges = [] if prepared is None else prepared.edited_ranges
    by_face = {} if prepared is None else prepared.edited_by_face
    try:
        tag = build_provenance(edited_ranges, by_face=by_face, source=project.input)
        note, mode, details, rendered = "", "full", {}, [[0, info.num_frames - 1]]
        if span is not None and not partial:
            note = "no previous output: rendered the whole clip"
        if partial and span is not None:
            if png:
                r = rerender_png(out, info, stages, span[0], span[1], tag, pix_fmt=config.output_pix_fmt,
                                 progress=render_progress)
                mode, rendered = "frames", [list(span)]
                details = {"files_written": r.files_written, "files_kept": r.frames_kept}
            else:
                try:
                    s = smart_rerender(out, info, config, stages, span[0], span[1], tag)
                    mode, rendered = "frames", s.frames_rendered
                    details = {"gops_reencoded": s.gops_reencoded, "gops_total": s.gops_total,
                               "packets_reencoded": s.packets_reencoded, "packets_copied": s.packets_copied,
                               "other_packets_copied": s.other_packets_copied}
                except NotStitchable as e:
                    note = f"re-encoded the whole clip: {e}"
                    config = dataclasses.replace(config, overwrite=True)
        if resume:
            r = resume_png(out, info, stages, edited_ranges=edited_ranges,
                           edited_by_face=by_face, overwrite=overwrite, pix_fmt=config.output_pix_fmt,
                           progress=render_progress)
            if r is None:
                note = f"no interrupted render of {out.name} to resume: rendered the whole clip"
                check_output_path(out, overwrite=overwrite, inputs=[project.input], is_folder=png)
            else:
                mode, rendered = "resume", [[r.first_frame, info.num_frames - 1]] if r.files_written else []
                details = {"files_written": r.files_written, "files_kept": r.frames_kept,
                           "resumed_from": str(r.resumed_from)}
        if mode == "full":
            job = RenderJob(input=project.input, output=out, output_config=config, allow_truncated=allow_truncated)
            summary = run_render(job, stages, edited_ranges=[tuple(r) for r in edited_ranges],
                                 edited_by_face=by_face, progress=render_progress)
            details = {"frames_written": summary.frames_written, "fps": round(summary.fps, 2)}
        clamps = [] if prepared is None else prepared.clamps()
    finally:
        if prepared is not None:
            prepared.close()
    return ProjectRenderSummary(project.path, out, mode, rendered, note, details,
                                None if prepared is None else prepared.analysis.from_cache,
                                dict(by_face), clamps, time.perf_counter() - started)
