"""Hostile files fuzzed with hypothesis: delta files, edit lists, analysis caches.

For every parser the contract is the same: a file either loads into a valid record or is refused
with one of deltaface's own errors (:class:`tracking.errors.DeltafaceError` subclasses, one-line
messages); never another exception, never code run from the file, never a file read outside the
edit list's folder. Example counts are small so the default run stays fast, with fixed seeds
(``derandomize``) so that a failure reproduces; ``DELTAFACE_FUZZ_EXAMPLES=2000`` searches longer.
"""

from __future__ import annotations

import io
import json
import math
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from plugin.editlist import load_edit_list
from synthesis.controls import control
from synthesis.deltas import Delta, delta_to_document, load_delta
from tests.tracking import synthetic_faces as sf
from tracking.analysis import (
    ClipAnalysis, TrackingConfig, build_tracks, load_analysis, save_analysis, settings_dict, settings_digest,
)
from tracking.errors import DeltafaceError

#: Examples per fuzz test: 60 by default (fixed seeds, a few seconds in all); set
#: DELTAFACE_FUZZ_EXAMPLES for a longer, randomized search.
FUZZ_EXAMPLES = int(os.environ.get("DELTAFACE_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=FUZZ_EXAMPLES, deadline=None, derandomize="DELTAFACE_FUZZ_EXAMPLES" not in os.environ,
                database=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

#: JSON values of any shape (NaN and infinities included: the writer below lets them through).
JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-2**70, 2**70) | st.floats() | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=6) | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=24,
)


def _loads_or_refuses(load: Any, *args: Any) -> Any:
    """Call the loader; a DeltafaceError with a one-line message is a refusal (returns None)."""
    try:
        return load(*args)
    except DeltafaceError as exc:
        assert "\n" not in str(exc).strip(), str(exc)
        return None


# ---------------------------------------------------------------------------------------------
# Delta files


@pytest.fixture(scope="module")
def good_delta_doc() -> dict[str, Any]:
    return delta_to_document(control("smile"))


@FUZZ
@given(data=st.binary(max_size=2048))
@example(data=b"[" * 200_000)  # nesting deeper than the JSON parser's recursion
@example(data=b'{"format": "deltaface-delta", "version": 1, "pose": {"yaw": NaN}}')
@example(data=b"\xff\xfe{}")
def test_delta_loader_on_arbitrary_bytes(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzz.delta"
    path.write_bytes(data)
    result = _loads_or_refuses(load_delta, path)
    assert result is None or isinstance(result, Delta)


@FUZZ
@given(key=st.sampled_from(["format", "version", "name", "kind", "displacement", "pose", "region",
                            "blendshapes", "max_strength", "description", "provenance", "lids", "extra"]),
       value=JSON, drop=st.booleans())
@example(key="displacement", value=[[1e308, 1e308, 1e308]] * 478, drop=False)
@example(key="version", value=2**70, drop=False)
@example(key="blendshapes", value={"mouthSmileLeft": 1e400}, drop=False)
def test_delta_loader_on_mutated_documents(tmp_path: Path, good_delta_doc: dict[str, Any], key: str,
                                           value: Any, drop: bool) -> None:
    doc = dict(good_delta_doc)
    if drop:
        doc.pop(key, None)
    else:
        doc[key] = value
    path = tmp_path / "mutated.delta"
    path.write_text(json.dumps(doc), encoding="utf-8")
    result = _loads_or_refuses(load_delta, path)
    if result is not None:  # whatever loads is a valid, finite delta
        assert isinstance(result, Delta)
        assert np.isfinite(result.displacement).all() and np.isfinite(result.pose).all()


# ---------------------------------------------------------------------------------------------
# Edit lists


def _toml_value(value: Any) -> str:
    """A TOML literal for a value built by :data:`TOML_VALUES` (strings as JSON-escaped)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf") if math.isinf(value) else repr(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    return "[" + ", ".join(_toml_value(v) for v in value) + "]"


#: Delta references a hostile edit list may hold: traversal, absolute paths, a symlink out.
DELTA_REFS = st.sampled_from([
    "smile", "blink_left", "looks/turn.delta", "looks/../looks/turn.delta", "../outside.delta",
    "looks/../../outside.delta", "link.delta", "/etc/passwd", "~/x.delta", "looks/turn.delta\x00x",
    "....//outside.delta", "looks\\..\\..\\outside.delta", "OUTSIDE_ABS", "INSIDE_ABS",
]) | st.text(max_size=20)

TOML_VALUES = st.recursive(
    st.booleans() | st.integers(-2**63, 2**63 - 1) | st.floats() | st.text(max_size=10)
    | st.sampled_from(["10-40", "0-", "00:00:01:00", "5", "40-10", "01:00:00;00"]),
    lambda inner: st.lists(inner, max_size=4), max_leaves=10,
)
EDIT_KEYS = st.sampled_from(["face", "delta", "strength", "frames", "ramp", "keyframes", "ease", "bogus"])


@st.composite
def edit_lists(draw: st.DrawFn) -> str:
    version = draw(st.sampled_from(["1", "1", "2", '"1"']))
    lines = [f"version = {version}"]
    for _ in range(draw(st.integers(0, 3))):
        lines.append("[[edit]]")
        table = {"face": draw(st.integers(-2, 3)), "delta": draw(DELTA_REFS),
                 "strength": draw(st.floats(-2, 2))}
        for key in draw(st.lists(EDIT_KEYS, max_size=3, unique=True)):
            table[key] = draw(DELTA_REFS if key == "delta" else TOML_VALUES)
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


@pytest.fixture()
def edit_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    (folder / "looks").mkdir(parents=True)
    (folder / "looks" / "turn.delta").write_bytes(b"x")
    (tmp_path / "outside.delta").write_bytes(b"x")
    (folder / "link.delta").symlink_to(tmp_path / "outside.delta")
    return folder


def _check_edit_list(folder: Path, text: str) -> None:
    outside = folder.parent / "outside.delta"
    text = text.replace("OUTSIDE_ABS", str(outside)).replace("INSIDE_ABS", str(folder / "looks" / "turn.delta"))
    path = folder / "edits.toml"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    schedule = _loads_or_refuses(load_edit_list, path, 50, 25.0)
    if schedule is None:
        return
    base = folder.resolve()
    for entry in schedule.entries:
        if os.sep in entry.delta_name or entry.delta_name.endswith(".delta"):
            # only files inside the edit list's folder, symlinks followed
            assert Path(entry.delta_name).resolve().is_relative_to(base), entry.delta_name


@FUZZ
@given(text=edit_lists())
@example(text='version = 1\n[[edit]]\nface = 0\ndelta = "../outside.delta"\nstrength = 1.0\n')
@example(text='version = 1\n[[edit]]\nface = 0\ndelta = "link.delta"\nstrength = 1.0\n')
@example(text='version = 1\n[[edit]]\nface = 0\ndelta = "OUTSIDE_ABS"\nstrength = 1.0\n')
@example(text='version = 1\n[[edit]]\nface = 0\ndelta = "smile"\nkeyframes = [[1e400, 1]]\n')
def test_edit_list_loader_on_generated_lists(edit_folder: Path, text: str) -> None:
    _check_edit_list(edit_folder, text)


@FUZZ
@given(text=st.text(max_size=300))
@example(text="version = 1\nedit = 5\n")
@example(text="version = 1\nedit = [1, 2]\n")
@example(text="version = 1\n[[edit]]\n" + "x = [" * 5000)
def test_edit_list_loader_on_arbitrary_text(edit_folder: Path, text: str) -> None:
    _check_edit_list(edit_folder, text)


def test_edit_list_traversal_is_refused_naming_the_key(edit_folder: Path) -> None:
    for ref in ("../outside.delta", "link.delta", str(edit_folder.parent / "outside.delta")):
        path = edit_folder / "edits.toml"
        path.write_text(f'version = 1\n[[edit]]\nface = 0\ndelta = {json.dumps(ref)}\nstrength = 1.0\n')
        with pytest.raises(DeltafaceError, match=r"edits.toml:4: .*'delta'.*outside the edit list's folder"):
            load_edit_list(path)


# ---------------------------------------------------------------------------------------------
# Analysis caches


@pytest.fixture(scope="module")
def good_analysis(tmp_path_factory: pytest.TempPathFactory) -> Path:
    frames = 6
    shape = sf.person(1)
    obs = [[sf.observation(i, sf.pose_landmarks(shape, (200.0 + 2 * i, 200.0), 60.0))] for i in range(frames)]
    times = np.arange(frames) / 25.0
    config = TrackingConfig()
    settings_doc = settings_dict(config)
    analysis = ClipAnalysis(
        input_hash="ab" * 32, settings=settings_doc, settings_hash=settings_digest(settings_doc),
        frame_count=frames, frame_times=times, frame_pts=np.arange(frames, dtype=np.int64),
        time_base="1/25", cut_frames=np.array([], dtype=np.int64),
        tracks=build_tracks(obs, times, (), config),
    )
    path = tmp_path_factory.mktemp("analysis") / "good.npz"
    save_analysis(analysis, path)
    return path


def _members(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n: z.read(n) for n in z.namelist()}


def _zip(members: dict[str, bytes], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buf.getvalue()


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, array, allow_pickle=True)
    return buf.getvalue()


class _Payload:
    """Unpickling this creates the file ``marker``: proof that code from the file ran."""

    marker = ""

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (Path(self.marker),))


def _load_cache(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "cache.analysis.npz"
    path.write_bytes(data)
    result = _loads_or_refuses(load_analysis, path)
    assert result is None or isinstance(result, ClipAnalysis)


def test_the_untouched_cache_loads(good_analysis: Path) -> None:
    assert load_analysis(good_analysis).frame_count == 6


@FUZZ
@given(flips=st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(0, 255)), min_size=1, max_size=8))
def test_analysis_loader_on_corrupted_bytes(tmp_path: Path, good_analysis: Path,
                                            flips: list[tuple[float, int]]) -> None:
    data = bytearray(good_analysis.read_bytes())
    for where, value in flips:
        data[int(where * len(data))] = value
    _load_cache(tmp_path, bytes(data))


@FUZZ
@given(member=st.sampled_from(["header.npy", "frame_times.npy", "cut_frames.npy", "track0_landmarks.npy",
                               "track0_confidence.npy", "frame_pts.npy"]),
       flips=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), min_size=1, max_size=6),
       stored=st.booleans())
def test_analysis_loader_on_corrupted_members(tmp_path: Path, good_analysis: Path, member: str,
                                              flips: list[tuple[int, int]], stored: bool) -> None:
    # Damage inside a member's .npy bytes (a valid zip around it): headers, shapes, dtypes, data.
    members = _members(good_analysis)
    data = bytearray(members[member])
    for where, value in flips:
        data[where % len(data)] = value
    members[member] = bytes(data)
    _load_cache(tmp_path, _zip(members, zipfile.ZIP_STORED if stored else zipfile.ZIP_DEFLATED))


@FUZZ
@given(member=st.sampled_from(["header.npy", "frame_times.npy", "cut_frames.npy", "track0_landmarks.npy",
                               "track0_sources.npy", "frame_pts.npy"]),
       kind=st.sampled_from(["pickle_object_array", "raw_pickle", "json_header", "wrong_dtype", "huge_shape"]),
       value=JSON)
def test_analysis_loader_runs_nothing_from_the_file(tmp_path: Path, good_analysis: Path, member: str,
                                                    kind: str, value: Any) -> None:
    marker = tmp_path / "pwned"
    marker.unlink(missing_ok=True)
    payload = _Payload()
    payload.marker = str(marker)
    members = _members(good_analysis)
    if kind == "pickle_object_array":
        arr = np.empty(6, dtype=object)
        arr[:] = [payload] * 6
        members[member] = _npy(arr)
    elif kind == "raw_pickle":
        members[member] = pickle.dumps(payload)
    elif kind == "json_header":  # any JSON in the header
        members["header.npy"] = _npy(np.frombuffer(json.dumps(value, allow_nan=True).encode(), dtype=np.uint8))
    elif kind == "wrong_dtype":
        members[member] = _npy(np.zeros(6, dtype=np.complex128))
    else:  # an .npy header promising a vast array, with no data behind it
        buf = io.BytesIO()
        np.lib.format.write_array_header_1_0(buf, {"descr": "<f8", "fortran_order": False, "shape": (2**62,)})
        members[member] = buf.getvalue()
    _load_cache(tmp_path, _zip(members))
    assert not marker.exists(), "code from the cache file ran"
