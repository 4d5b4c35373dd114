"""Edits as users write them: ``--delta`` specs on the command line and TOML edit lists.

Frames (:func:`parse_frames`), one grammar everywhere::

    FRAMES := POINT | POINT "-" | POINT "-" POINT
    POINT  := frame index (0-based, digits) | timecode HH:MM:SS:FF (needs the clip's fps)

``A-B`` is inclusive, ``A`` is one frame, ``A-`` runs to the clip's last frame. A timecode counts
from the clip's first frame (00:00:00:00 is frame 0), non-drop-frame, ``FF`` below the nominal
rate ``round(fps)`` (so 29.97 fps counts 30 frames a second, as non-drop timecode does).

A delta spec (:func:`parse_delta_spec`), as given to ``--delta``::

    SPEC  := NAME "=" STRENGTH [ "@" FRAMES [ "~" RAMP ] ]

``NAME`` is a named control (letters, digits, ``_``, not starting with a digit) or a path ending
in ``.delta``; ``STRENGTH`` a decimal number (negative allowed, e.g. ``head_yaw=-8@0-``);
``RAMP`` a whole number of frames (default :data:`synthesis.schedule.DEFAULT_RAMP_FRAMES`).
Without ``@`` the strength holds over the whole clip. With ``@A-B`` it is full on every frame of
A..B and eases from and to 0 over ``RAMP`` frames outside the range (cut at the clip's ends);
``~0`` is a hard cut; ``A-`` has no ramp out. Examples: ``blink_left=0.8@10-40``,
``smile=0.5@10-40~6``, ``head_yaw=8@0-``, ``smile=0.5``.

An edit list (:func:`load_edit_list`) is TOML::

    version = 1
    [[edit]]
    face = 1                 # track id
    delta = "blink_left"     # a named control, or a .delta file relative to this file
    strength = 0.8
    frames = "10-40"         # optional: whole clip
    ramp = 4                 # optional
    ease = "smooth"          # optional: "smooth" or "linear"
    # or, instead of strength/frames/ramp: keyframes = [[10, 0.0], [20, 0.8], [40, 0.0]]

A project file embeds the same ``[[edit]]`` tables and parses them with :func:`parse_edit_tables`.
Every error is a :class:`~tracking.errors.ConfigError` of one line naming the spec, or the file,
line and key.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from synthesis.schedule import DEFAULT_RAMP_FRAMES, EASES, EditEntry, EditSchedule, Keyframe, StrengthCurve
from tracking.errors import ConfigError

EDIT_LIST_VERSION = 1
DELTA_FILE_SUFFIX = ".delta"
#: Frame numbers and ramps longer than this many digits are refused (they cannot be real frames).
_MAX_DIGITS = 9

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_DIGITS = re.compile(r"[0-9]+", re.ASCII)
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_POINT = r"\d+(?:[:;]\d+){0,3}"
_FRAMES = re.compile(rf"({_POINT})\s*(?:(-)\s*({_POINT})?)?", re.ASCII)
_TIMECODE = re.compile(r"(\d+):(\d+):(\d+):(\d+)", re.ASCII)
_EDIT_HEADER = re.compile(r"^\s*\[\[\s*edit\s*\]\]")
_TABLE_HEADER = re.compile(r"^\s*\[")
_EDIT_KEYS = frozenset({"face", "delta", "strength", "frames", "ramp", "ease", "keyframes"})


def _parse_point(text: str, fps: float | None) -> int:
    """One frame index: digits, or a timecode HH:MM:SS:FF counted from the clip's first frame."""
    if ";" in text:
        raise ConfigError(f"frame {text!r}: drop-frame timecode (';') is not supported; use HH:MM:SS:FF")
    if any(len(part) > _MAX_DIGITS for part in text.split(":")):
        raise ConfigError(f"frame {text!r} is too large")
    if _DIGITS.fullmatch(text):
        return int(text)
    m = _TIMECODE.fullmatch(text)
    if m is None:
        raise ConfigError(f"frame {text!r} is neither a frame index nor a timecode HH:MM:SS:FF")
    if fps is None:
        raise ConfigError(f"timecode {text!r} needs the clip's frame rate")
    rate = max(1, round(fps))
    h, mi, s, ff = (int(g) for g in m.groups())
    if mi > 59 or s > 59 or ff >= rate:
        raise ConfigError(f"timecode {text!r} is out of range (MM, SS < 60, FF < {rate} at {fps:g} fps)")
    return ((h * 60 + mi) * 60 + s) * rate + ff


def parse_frames(text: str, num_frames: int | None = None, fps: float | None = None) -> tuple[int, int | None]:
    """Parse a frame spec ``A``, ``A-B`` or ``A-`` (module docstring) into inclusive frame indices.

    Args:
        text: the spec.
        num_frames: the clip's frame count, when known: the range must lie inside the clip, and
            an open end becomes ``num_frames - 1``.
        fps: the clip's frame rate, needed for timecodes.

    Returns:
        ``(start, end)``; ``end`` is None for ``A-`` when ``num_frames`` is not given.

    Raises:
        ConfigError: malformed, reversed, timecode without fps, or outside the clip.
    """
    if not isinstance(text, str):
        raise ConfigError(f"frames must be a string like '10-40', got {text!r}")
    if fps is not None and not (math.isfinite(fps) and fps > 0):
        raise ConfigError(f"frame rate must be > 0, got {fps!r}")
    m = _FRAMES.fullmatch(text.strip())
    if m is None:
        raise ConfigError(f"frames {text!r} are not of the form A, A-B or A- (frame indices or HH:MM:SS:FF)")
    start = _parse_point(m.group(1), fps)
    end: int | None = start if m.group(2) is None else None
    if m.group(3) is not None:
        end = _parse_point(m.group(3), fps)
    if end is not None and end < start:
        raise ConfigError(f"frames {text!r}: the range ends before it starts")
    if num_frames is not None:
        if isinstance(num_frames, bool) or not isinstance(num_frames, int) or num_frames < 1:
            raise ConfigError(f"frames {text!r}: the clip's frame count must be >= 1, got {num_frames!r}")
        last = num_frames - 1
        if end is None:
            end = max(last, start)
        if end > last:
            raise ConfigError(f"frames {text!r} are outside the clip, which has {num_frames} frames (0-{last})")
    return start, end


@dataclass(frozen=True)
class DeltaSpec:
    """A parsed ``--delta`` spec.

    Attributes:
        name: the control name or ``.delta`` path, as written.
        strength: the full strength (finite).
        frames: inclusive ``(start, end)``, end None for "to the last frame"; None: whole clip.
        ramp: easing frames outside the range (ignored for the whole clip).
    """

    name: str
    strength: float
    frames: tuple[int, int | None] | None = None
    ramp: int = DEFAULT_RAMP_FRAMES

    def __post_init__(self) -> None:
        _check_delta_name(self.name)
        if not math.isfinite(self.strength):
            raise ConfigError(f"delta {self.name!r}: strength {self.strength} is not finite")
        if self.ramp < 0:
            raise ConfigError(f"delta {self.name!r}: ramp {self.ramp} is negative")

    def curve(self) -> StrengthCurve:
        """The strength curve this spec asks for (module docstring)."""
        if self.frames is None:
            return StrengthCurve.constant(self.strength)
        return StrengthCurve.over_range(self.strength, self.frames[0], self.frames[1], self.ramp)


def _check_delta_name(name: str) -> None:
    if not (_NAME.fullmatch(name) or (name.endswith(DELTA_FILE_SUFFIX) and len(name) > len(DELTA_FILE_SUFFIX))):
        raise ConfigError(
            f"delta {name!r} is neither a control name (letters, digits, _) nor a {DELTA_FILE_SUFFIX} file"
        )


def _parse_number(text: str, what: str) -> float:
    if not _NUMBER.fullmatch(text) or not math.isfinite(value := float(text)):
        raise ConfigError(f"{what} {text!r} is not a finite decimal number")
    return value


def parse_delta_spec(spec: str, num_frames: int | None = None, fps: float | None = None) -> DeltaSpec:
    """Parse ``NAME=STRENGTH[@FRAMES[~RAMP]]`` (module docstring).

    Args:
        spec: the text given to ``--delta``.
        num_frames, fps: as for :func:`parse_frames`.

    Raises:
        ConfigError: one line quoting the spec and saying what is wrong.
    """
    try:
        if not isinstance(spec, str):
            raise ConfigError(f"expected text, got {type(spec).__name__}")
        name, eq, rest = spec.rpartition("=")
        if not eq:
            raise ConfigError("missing '=' (write NAME=STRENGTH[@A-B[~RAMP]])")
        name = name.strip()
        _check_delta_name(name)
        strength_text, at, frames_text = rest.partition("@")
        if not at and "~" in strength_text:
            raise ConfigError("a ramp needs a frame range (NAME=STRENGTH@A-B~RAMP)")
        strength = _parse_number(strength_text.strip(), "strength")
        if not at:
            return DeltaSpec(name, strength)
        frames_text, tilde, ramp_text = frames_text.partition("~")
        ramp = DEFAULT_RAMP_FRAMES
        if tilde:
            ramp_text = ramp_text.strip()
            if not _DIGITS.fullmatch(ramp_text) or len(ramp_text) > _MAX_DIGITS:
                raise ConfigError(f"ramp {ramp_text!r} is not a whole number of frames")
            ramp = int(ramp_text)
        return DeltaSpec(name, strength, parse_frames(frames_text, num_frames, fps), ramp)
    except ConfigError as e:
        raise ConfigError(f"--delta {spec!r}: {e}") from None


def schedule_from_specs(
    specs: Sequence[str], face_id: int, num_frames: int | None = None, fps: float | None = None,
    base_dir: Path | None = None,
) -> EditSchedule:
    """The schedule of ``--face ID --delta SPEC [--delta SPEC ...]``.

    A ``.delta`` path is resolved against ``base_dir`` (default: the working directory) and must
    exist; it is not confined there, since the user typed it.

    Raises:
        ConfigError: a bad spec or face id, or a missing delta file.
    """
    entries = []
    for text in specs:
        spec = parse_delta_spec(text, num_frames, fps)
        name = spec.name
        if not _NAME.fullmatch(name):
            try:
                path = ((base_dir or Path.cwd()) / name).resolve()
            except (OSError, RuntimeError, ValueError) as e:
                raise ConfigError(f"--delta {text!r}: delta file cannot be resolved: {e}") from None
            if not path.is_file():
                raise ConfigError(f"--delta {text!r}: delta file {path} does not exist")
            name = str(path)
        entries.append(EditEntry(face_id, name, spec.curve()))
    return EditSchedule(tuple(entries))


def resolve_delta_ref(ref: str, base_dir: Path) -> str:
    """A control name as is, or a ``.delta`` path resolved inside ``base_dir``.

    Relative paths are taken from ``base_dir``; the resolved file (symlinks followed) must lie
    inside ``base_dir`` and exist. Absolute paths are accepted only when they resolve inside it.

    Returns:
        The name, or the resolved absolute path as a string.

    Raises:
        ConfigError: not a name nor a ``.delta`` path, escaping ``base_dir``, or missing.
    """
    _check_delta_name(ref)
    if _NAME.fullmatch(ref):
        return ref
    base = base_dir.resolve()
    try:
        path = (base / ref).resolve()
    except (OSError, RuntimeError, ValueError) as e:
        raise ConfigError(f"delta file {ref!r} cannot be resolved: {e}") from None
    if not path.is_relative_to(base):
        raise ConfigError(f"delta file {ref!r} is outside the edit list's folder {base}")
    if not path.is_file():
        raise ConfigError(f"delta file {ref!r} does not exist ({path})")
    return str(path)


class _KeyError(ConfigError):
    """A ConfigError that knows which key of an [[edit]] table it is about."""

    def __init__(self, key: str | None, message: str) -> None:
        super().__init__(message)
        self.key = key


@contextmanager
def _about(key: str) -> Iterator[None]:
    """Turn a ConfigError raised inside into a _KeyError about ``key``."""
    try:
        yield
    except _KeyError:
        raise
    except ConfigError as e:
        raise _KeyError(key, str(e)) from None


def _edit_line(text: str | None, index: int, count: int, key: str | None) -> int | None:
    """1-based line of the ``index``-th of ``count`` ``[[edit]]`` tables (or of ``key`` in it).

    None when the text does not show exactly ``count`` ``[[edit]]`` headers (inline tables, or a
    header inside a multi-line string): better no line than a wrong one.
    """
    if text is None:
        return None
    lines = text.splitlines()
    headers = [i for i, line in enumerate(lines) if _EDIT_HEADER.match(line)]
    if len(headers) != count:
        return None
    start = headers[index]
    if key is not None:
        key_line = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
        for i in range(start + 1, len(lines)):
            if _TABLE_HEADER.match(lines[i]):
                break
            if key_line.match(lines[i]):
                return i + 1
    return start + 1


def _keyframes(value: Any, fps: float | None) -> tuple[Keyframe, ...]:
    if not isinstance(value, list) or not value:
        raise ConfigError("must be a non-empty list of [frame, strength] pairs")
    out = []
    for pair in value:
        if not (isinstance(pair, list) and len(pair) == 2):
            raise ConfigError(f"{pair!r} is not a [frame, strength] pair")
        frame, strength = pair
        if isinstance(frame, str):
            frame = _parse_point(frame.strip(), fps)
        if isinstance(frame, bool) or not isinstance(frame, int) or frame < 0:
            raise ConfigError(f"frame {frame!r} is not a frame index >= 0")
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
            raise ConfigError(f"strength {strength!r} is not a finite number")
        out.append(Keyframe(frame, float(strength)))
    return tuple(out)


def _edit_entry(table: Mapping[str, Any], base_dir: Path, num_frames: int | None, fps: float | None) -> EditEntry:
    """One ``[[edit]]`` table. Raises _KeyError, naming the offending key where there is one."""
    unknown = sorted(set(table) - _EDIT_KEYS)
    if unknown:
        raise _KeyError(unknown[0], f"unknown key (allowed: {', '.join(sorted(_EDIT_KEYS))})")
    for key in ("face", "delta"):
        if key not in table:
            raise _KeyError(None, f"missing key {key!r}")
    face = table["face"]
    if isinstance(face, bool) or not isinstance(face, int) or face < 0:
        raise _KeyError("face", f"{face!r} is not a track id >= 0")
    if not isinstance(table["delta"], str):
        raise _KeyError("delta", f"{table['delta']!r} is not a string")
    ease = table.get("ease", "smooth")
    if ease not in EASES:
        raise _KeyError("ease", f"{ease!r} is not one of {', '.join(EASES)}")
    with _about("delta"):
        name = resolve_delta_ref(table["delta"], base_dir)
    if "keyframes" in table:
        clash = sorted({"strength", "frames", "ramp"} & set(table))
        if clash:
            raise _KeyError(clash[0], "cannot be combined with 'keyframes'")
        with _about("keyframes"):
            kfs = _keyframes(table["keyframes"], fps)
            if num_frames is not None and max(k.frame for k in kfs) >= num_frames:
                raise ConfigError(f"a keyframe is outside the clip, which has {num_frames} frames")
            curve = StrengthCurve(kfs, ease=ease)
        return EditEntry(face, name, curve)
    if "strength" not in table:
        raise _KeyError(None, "needs 'strength' (with optional 'frames', 'ramp') or 'keyframes'")
    strength = table["strength"]
    if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength):
        raise _KeyError("strength", f"{strength!r} is not a finite number")
    ramp = table.get("ramp", DEFAULT_RAMP_FRAMES)
    if isinstance(ramp, bool) or not isinstance(ramp, int) or ramp < 0:
        raise _KeyError("ramp", f"{ramp!r} is not a whole number of frames >= 0")
    if "frames" not in table:
        if "ramp" in table:
            raise _KeyError("ramp", "needs 'frames' (the whole clip has no edges to ease)")
        return EditEntry(face, name, StrengthCurve.constant(float(strength)))
    frames = table["frames"]
    if isinstance(frames, int) and not isinstance(frames, bool):
        frames = str(frames)
    with _about("frames"):
        start, end = parse_frames(frames, num_frames, fps)
    return EditEntry(face, name, StrengthCurve.over_range(float(strength), start, end, ramp, ease))


def parse_edit_tables(
    tables: Any, base_dir: Path, *, source: str, text: str | None = None,
    num_frames: int | None = None, fps: float | None = None,
) -> EditSchedule:
    """Edit entries from parsed ``[[edit]]`` tables (of an edit list or a project file).

    Args:
        tables: the value of the ``edit`` key: a list of tables.
        base_dir: the folder ``.delta`` paths are relative to and must stay inside.
        source: the file, for messages.
        text: the file's text, to find the line of an offending table (optional).
        num_frames, fps: as for :func:`parse_frames`.

    Raises:
        ConfigError: ``"<source>:<line>: [[edit]] #<n> '<key>': <what>"``.
    """
    if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
        raise ConfigError(f"{source}: 'edit' must be a list of [[edit]] tables")
    entries = []
    for i, table in enumerate(tables):
        try:
            entry = _edit_entry(table, base_dir, num_frames, fps)
        except _KeyError as e:
            line = _edit_line(text, i, len(tables), e.key)
            where = f"{source}:{line}" if line is not None else source
            key = f" {e.key!r}" if e.key else ""
            raise ConfigError(f"{where}: [[edit]] #{i + 1}{key}: {e}") from None
        entries.append(entry)
    return EditSchedule(tuple(entries))


def load_edit_list(path: Path | str, num_frames: int | None = None, fps: float | None = None) -> EditSchedule:
    """Read a TOML edit list (module docstring).

    Args:
        path: the ``.toml`` file; ``.delta`` paths in it are relative to its folder and must stay
            inside that folder.
        num_frames, fps: as for :func:`parse_frames` (frame ranges are checked against the clip
            when ``num_frames`` is given).

    Returns:
        The schedule, entries in file order.

    Raises:
        ConfigError: unreadable file, TOML syntax error (with its line and column), wrong version,
            or a bad entry (with the file, line and key).
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"edit list {path} cannot be read: {e}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise ConfigError(f"{path}{':' + m.group(1) if m else ''}: invalid TOML: {e}") from None
    version = data.get("version")
    if version != EDIT_LIST_VERSION:
        raise ConfigError(f"{path}: 'version' must be {EDIT_LIST_VERSION}, got {version!r}")
    unknown = sorted(set(data) - {"version", "edit"})
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {unknown[0]!r} (allowed: version, edit)")
    return parse_edit_tables(data.get("edit", []), path.parent, source=str(path), text=text,
                             num_frames=num_frames, fps=fps)
