"""Edit specs and TOML edit lists: the grammar, the schedules they give, and their error messages."""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.editlist import (
    DeltaSpec,
    load_edit_list,
    parse_delta_spec,
    parse_edit_tables,
    parse_frames,
    resolve_delta_ref,
    schedule_from_specs,
)
from synthesis.schedule import DEFAULT_RAMP_FRAMES, EditEntry, EditSchedule, Keyframe, StrengthCurve
from tracking.errors import ConfigError

CLIP = np.arange(200)


# --- frames -----------------------------------------------------------------------------------


def test_parse_frames_forms() -> None:
    assert parse_frames("10-40") == (10, 40)
    assert parse_frames(" 10 - 40 ") == (10, 40)
    assert parse_frames("7") == (7, 7)
    assert parse_frames("5-") == (5, None)
    assert parse_frames("5-", num_frames=100) == (5, 99)
    assert parse_frames("00:00:01:05-00:00:02:00", fps=25) == (30, 50)
    assert parse_frames("01:00:00:00", fps=24) == (3600 * 24, 3600 * 24)
    # Non-drop timecode at 29.97 counts 30 frame labels a second.
    assert parse_frames("00:00:01:00", fps=30000 / 1001) == (30, 30)
    assert parse_frames("12-00:00:01:00", fps=25) == (12, 25)


@pytest.mark.parametrize(("text", "kwargs", "match"), [
    ("", {}, "not of the form"),
    ("a-b", {}, "not of the form"),
    ("40-10", {}, "ends before it starts"),
    ("-3", {}, "not of the form"),
    ("1-2-3", {}, "not of the form"),
    ("1.5-4", {}, "not of the form"),
    ("00:00:01:00", {}, "frame rate"),
    ("00:00:01;00", {"fps": 30}, "drop-frame"),
    ("00:00:01:25", {"fps": 25}, "out of range"),
    ("00:61:00:00", {"fps": 25}, "out of range"),
    ("1:2", {"fps": 25}, "neither"),
    ("10-200", {"num_frames": 200}, "outside the clip"),
    ("200-", {"num_frames": 200}, "ends before it starts|outside the clip"),
    ("1" * 30, {}, "too large"),
    ("１２", {}, "not of the form"),  # full-width digits are not frame numbers
])
def test_bad_frames_are_config_errors(text: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_frames(text, **kwargs)


# --- specs ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("spec", "expected"), [
    ("blink_left=0.8@10-40", DeltaSpec("blink_left", 0.8, (10, 40))),
    ("head_yaw=8@0-", DeltaSpec("head_yaw", 8.0, (0, None))),
    ("head_yaw=-8@0-", DeltaSpec("head_yaw", -8.0, (0, None))),
    ("smile=0.5", DeltaSpec("smile", 0.5)),
    ("smile=.5@10-40~6", DeltaSpec("smile", 0.5, (10, 40), 6)),
    ("smile = 0.5 @ 12 ~ 0", DeltaSpec("smile", 0.5, (12, 12), 0)),
    ("looks/turn.delta=1e-1@3-4", DeltaSpec("looks/turn.delta", 0.1, (3, 4))),
])
def test_parse_delta_spec(spec: str, expected: DeltaSpec) -> None:
    assert parse_delta_spec(spec) == expected


@pytest.mark.parametrize("spec", [
    "smile", "smile=", "=0.5", "1smile=0.5", "smile=abc", "smile=nan", "smile=inf", "smile=1e999",
    "smile=0.5@", "smile=0.5@40-10", "smile=0.5~3", "smile=0.5@1-2~", "smile=0.5@1-2~-1",
    "smile=0.5@1-2~x", "smi le=0.5", "smile=0.5@1-2@3", "turn.deltas=1",
])
def test_bad_specs_quote_the_spec(spec: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_delta_spec(spec)
    message = str(info.value)
    assert repr(spec) in message and "\n" not in message


def test_spec_curve_semantics() -> None:
    s = parse_delta_spec("blink_left=0.8@10-40~6").curve().evaluate(CLIP)
    assert np.all(s[10:41] == 0.8) and s[4] == 0.0 and 0 < s[5] < 0.8 and s[46] == 0.0
    s = parse_delta_spec("head_yaw=8@150-").curve().evaluate(np.arange(1000))
    assert np.all(s[150:] == 8.0)
    assert np.all(parse_delta_spec("smile=0.5").curve().evaluate(CLIP) == 0.5)
    assert parse_delta_spec("smile=0.5@10-40").ramp == DEFAULT_RAMP_FRAMES


def test_schedule_from_specs(tmp_path: Path) -> None:
    (tmp_path / "turn.delta").write_bytes(b"x")
    sched = schedule_from_specs(["smile=0.5@10-40", "turn.delta=1@0-"], face_id=2, base_dir=tmp_path)
    assert [e.face_id for e in sched] == [2, 2]
    assert sched.delta_names() == ("smile", str((tmp_path / "turn.delta").resolve()))
    with pytest.raises(ConfigError, match="does not exist"):
        schedule_from_specs(["gone.delta=1"], face_id=2, base_dir=tmp_path)
    with pytest.raises(ConfigError, match="outside the clip"):
        schedule_from_specs(["smile=1@10-40"], face_id=2, num_frames=20)


text_settings = settings(max_examples=400, deadline=None)


@text_settings
@given(st.text())
def test_spec_parser_only_raises_config_error_on_any_text(text: str) -> None:
    try:
        parse_delta_spec(text, num_frames=500, fps=25)
    except ConfigError:
        pass


@text_settings
@given(st.text(alphabet="ab_=@~-:;.0123456789+eE /x", max_size=30))
def test_spec_parser_only_raises_config_error_on_near_misses(text: str) -> None:
    try:
        spec = parse_delta_spec(text, fps=25)
    except ConfigError:
        return
    assert np.isfinite(spec.strength) and spec.ramp >= 0


@text_settings
@given(st.text(alphabet="0123456789-: ;", max_size=24), st.sampled_from([None, 24.0, 29.97]))
def test_frame_parser_only_raises_config_error(text: str, fps: float | None) -> None:
    try:
        start, end = parse_frames(text, fps=fps)
    except ConfigError:
        return
    assert 0 <= start and (end is None or end >= start)


@settings(max_examples=200, deadline=None)
@given(name=st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True),
       strength=st.floats(-100, 100, allow_nan=False), a=st.integers(0, 10**6), n=st.integers(0, 1000),
       ramp=st.integers(0, 50), open_end=st.booleans())
def test_spec_round_trip(name: str, strength: float, a: int, n: int, ramp: int, open_end: bool) -> None:
    end = None if open_end else a + n
    text = f"{name}={strength!r}@{a}-{'' if end is None else end}~{ramp}"
    assert parse_delta_spec(text) == DeltaSpec(name, strength, (a, end), ramp)


# --- edit lists -------------------------------------------------------------------------------

EDITS = """\
version = 1

[[edit]]
face = 1
delta = "blink_left"      # a named control
strength = 0.8
frames = "10-40"
ramp = 6

[[edit]]
face = 1
delta = "looks/turn.delta"
keyframes = [[10, 0.0], [20, 0.8], [40, 0.0]]
ease = "linear"

[[edit]]
face = 3
delta = "smile"
strength = -0.25
"""


def write(folder: Path, text: str, name: str = "edits.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def edit_dir(tmp_path: Path) -> Path:
    (tmp_path / "looks").mkdir()
    (tmp_path / "looks" / "turn.delta").write_bytes(b"x")
    return tmp_path


def test_load_edit_list(edit_dir: Path) -> None:
    sched = load_edit_list(write(edit_dir, EDITS))
    turn = str((edit_dir / "looks" / "turn.delta").resolve())
    assert sched == EditSchedule((
        EditEntry(1, "blink_left", StrengthCurve.over_range(0.8, 10, 40, ramp=6)),
        EditEntry(1, turn, StrengthCurve((Keyframe(10, 0.0), Keyframe(20, 0.8), Keyframe(40, 0.0)), ease="linear")),
        EditEntry(3, "smile", StrengthCurve.constant(-0.25)),
    ))
    # The same edit from the command line gives the same entry.
    assert schedule_from_specs(["blink_left=0.8@10-40~6"], face_id=1).entries[0] == sched.entries[0]
    got = sched.per_frame(1, CLIP)
    assert got[turn][20] == 0.8 and got[turn][15] == pytest.approx(0.4) and got["blink_left"][25] == 0.8


def test_edit_list_timecodes_and_clip_length(edit_dir: Path) -> None:
    text = 'version = 1\n[[edit]]\nface = 0\ndelta = "smile"\nstrength = 1\nframes = "00:00:01:00-"\n'
    sched = load_edit_list(write(edit_dir, text), num_frames=100, fps=25)
    assert sched.entries[0].curve.keyframes[1] == Keyframe(25, 1.0)
    with pytest.raises(ConfigError, match="frame rate"):
        load_edit_list(write(edit_dir, text))
    with pytest.raises(ConfigError, match="outside the clip"):
        load_edit_list(write(edit_dir, text), num_frames=10, fps=25)


def test_toml_syntax_error_names_file_and_line(edit_dir: Path) -> None:
    path = write(edit_dir, "version = 1\n[[edit]]\nface = 1\ndelta = \n")
    with pytest.raises(ConfigError, match=rf"^{path}:4: invalid TOML: .*line 4"):
        load_edit_list(path)


@pytest.mark.parametrize(("line", "replacement", "key", "match"), [
    (7, 'frames = "40-10"', "frames", "ends before it starts"),
    (7, 'frames = "ten"', "frames", "not of the form"),
    (6, "strength = true", "strength", "not a finite number"),
    (4, "face = -1", "face", "track id"),
    (8, "ramp = 1.5", "ramp", "whole number"),
    (5, 'delta = "bad name"', "delta", "neither a control name"),
    (8, "colour = 4", "colour", "unknown key"),
    (14, 'ease = "cubic"', "ease", "not one of"),
    (13, "keyframes = [[10, 0.0], [10, 0.8]]", "keyframes", "two keyframes at frame 10"),
    (13, "keyframes = [[-1, 0.0]]", "keyframes", "frame index >= 0"),
    (13, "keyframes = []", "keyframes", "non-empty"),
    (13, 'strength = 1\nkeyframes = [[1, 1.0]]', "strength", "cannot be combined"),
])
def test_semantic_errors_name_file_line_and_key(
    edit_dir: Path, line: int, replacement: str, key: str, match: str
) -> None:
    lines = EDITS.splitlines()
    lines[line - 1] = replacement
    path = write(edit_dir, "\n".join(lines) + "\n")
    with pytest.raises(ConfigError) as info:
        load_edit_list(path)
    message = str(info.value)
    assert message.startswith(f"{path}:{line}: [[edit]] #"), message
    assert repr(key) in message and "\n" not in message
    assert re.search(match, message), message


def test_missing_keys_and_top_level_errors(edit_dir: Path) -> None:
    path = write(edit_dir, 'version = 1\n\n[[edit]]\nface = 1\ndelta = "smile"\nstrength = 1\n\n[[edit]]\nface = 2\n')
    with pytest.raises(ConfigError, match=rf"^{path}:8: \[\[edit\]\] #2: missing key 'delta'"):
        load_edit_list(path)
    for text, match in [
        ('[[edit]]\nface = 1\ndelta = "smile"\nstrength = 1\n', "'version' must be 1"),
        ("version = 2\n", "'version' must be 1"),
        ("version = 1\nedits = []\n", "unknown top-level key 'edits'"),
        ("version = 1\nedit = 3\n", "list of"),
    ]:
        with pytest.raises(ConfigError, match=f"^{path}: .*{match}"):
            load_edit_list(write(edit_dir, text))
    # Inline tables: no line to point at, but the file and the key are named.
    inline = 'version = 1\nedit = [{face = 1, delta = "smile", strength = "x"}]\n'
    with pytest.raises(ConfigError, match=rf"^{path}: \[\[edit\]\] #1 'strength'"):
        load_edit_list(write(edit_dir, inline))
    with pytest.raises(ConfigError, match="cannot be read"):
        load_edit_list(edit_dir / "absent.toml")
    (edit_dir / "latin1.toml").write_bytes(b"version = 1 # \xe9\n")
    with pytest.raises(ConfigError, match="latin1.toml"):
        load_edit_list(edit_dir / "latin1.toml")
    assert load_edit_list(write(edit_dir, "version = 1\n")) == EditSchedule()


def test_delta_files_must_stay_in_the_edit_lists_folder(
    edit_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    outside = tmp_path_factory.mktemp("elsewhere") / "evil.delta"
    outside.write_bytes(b"x")
    inside = (edit_dir / "looks" / "turn.delta").resolve()
    assert resolve_delta_ref("looks/turn.delta", edit_dir) == str(inside)
    assert resolve_delta_ref("looks/../looks/turn.delta", edit_dir) == str(inside)
    assert resolve_delta_ref(str(inside), edit_dir) == str(inside)
    assert resolve_delta_ref("smile", edit_dir) == "smile"
    escape = os.path.relpath(outside, edit_dir)
    assert escape.startswith("..")
    for ref in (escape, str(outside), "../x.delta"):
        with pytest.raises(ConfigError, match="outside the edit list's folder"):
            resolve_delta_ref(ref, edit_dir)
    (edit_dir / "link.delta").symlink_to(outside)
    with pytest.raises(ConfigError, match="outside the edit list's folder"):
        resolve_delta_ref("link.delta", edit_dir)
    with pytest.raises(ConfigError, match="does not exist"):
        resolve_delta_ref("missing.delta", edit_dir)
    text = EDITS.replace('"looks/turn.delta"', repr(escape).replace("'", '"'))
    path = write(edit_dir, text)
    with pytest.raises(ConfigError, match=rf"^{path}:12: \[\[edit\]\] #2 'delta': .*outside"):
        load_edit_list(path)


def test_parse_edit_tables_for_project_files(edit_dir: Path) -> None:
    tables = [{"face": 0, "delta": "smile", "strength": 0.3, "frames": 12, "ramp": 0}]
    sched = parse_edit_tables(tables, edit_dir, source="project.toml")
    assert sched.entries[0].curve == StrengthCurve.over_range(0.3, 12, 12, ramp=0)
    with pytest.raises(ConfigError, match=r"^project.toml: \[\[edit\]\] #1 'ramp'"):
        parse_edit_tables([{"face": 0, "delta": "smile", "strength": 0.3, "ramp": 2}], edit_dir, source="project.toml")
