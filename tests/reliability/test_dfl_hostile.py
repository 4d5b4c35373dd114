"""Hostile and damaged DeepFaceLab aligned files: refused with one clear error, nothing run.

Every case writes a JPEG whose APP15 segment holds the payload (as DFL's aligned faces do) and
reads it with ``plugin.dfl.read_aligned_metadata``. Code-running pickles try to create a marker
file; the marker must never appear.
"""

from __future__ import annotations

import builtins
import os
import pickle
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from plugin.dfl import read_aligned, read_aligned_metadata
from tracking.errors import HostFormatError


def _jpeg(payload: bytes | None, length: int | None = None) -> bytes:
    ok, enc = cv2.imencode(".jpg", np.full((16, 16, 3), 128, np.uint8))
    assert ok
    data = enc.tobytes()
    if payload is None:
        return data
    n = len(payload) + 2 if length is None else length
    return data[:2] + b"\xff\xef" + n.to_bytes(2, "big") + payload + data[2:]


class _Call:
    """Pickles as ``func(*args)``."""

    def __init__(self, func, *args) -> None:
        self.func, self.args = func, args

    def __reduce__(self):
        return (self.func, self.args)


def _cases(marker: Path) -> dict[str, bytes]:
    cmd = f"touch {marker}"
    return {
        "os.system": pickle.dumps({"landmarks": _Call(os.system, cmd)}),
        "os.system protocol 0": pickle.dumps(_Call(os.system, cmd), protocol=0),
        "builtins.eval": pickle.dumps(_Call(builtins.eval, f"open({str(marker)!r}, 'w')")),
        "builtins.exec": pickle.dumps(_Call(builtins.exec, f"open({str(marker)!r}, 'w')")),
        "subprocess.call": pickle.dumps(_Call(subprocess.call, ["touch", str(marker)])),
        "object array": pickle.dumps({"x": np.array([_Call(os.system, cmd)], dtype=object)}),
        # hand-written: getattr(__import__("os"), "system")("touch MARKER")
        "getattr chain": (b"cbuiltins\ngetattr\n(cbuiltins\n__import__\n(S'os'\ntRS'system'\ntR(S'"
                          + cmd.encode() + b"'\ntR."),
    }


@pytest.mark.parametrize("name", ["os.system", "os.system protocol 0", "builtins.eval", "builtins.exec",
                                  "subprocess.call", "object array", "getattr chain"])
def test_code_running_pickles_are_refused(tmp_path, name):
    marker = tmp_path / "PWNED"
    path = tmp_path / "00001_0.jpg"
    path.write_bytes(_jpeg(_cases(marker)[name]))
    with pytest.raises(HostFormatError) as info:
        read_aligned_metadata(path)
    message = str(info.value)
    assert str(path) in message and "refused" in message and "\n" not in message
    assert not marker.exists()


@pytest.mark.parametrize("payload, length, match", [
    (pickle.dumps({"a": 1})[:-3], None, "not a readable pickle"),
    (pickle.dumps([1, 2]), None, "not a dict"),
    (b"\x80\x04garbage", None, "not a readable pickle"),
    (pickle.dumps({"a": 1}), 60000, "runs past the end"),
    (pickle.dumps({"a": 1}), 1, "runs past the end"),
])
def test_damaged_segments_are_refused(tmp_path, payload, length, match):
    path = tmp_path / "f_0.jpg"
    path.write_bytes(_jpeg(payload, length))
    with pytest.raises(HostFormatError, match=match):
        read_aligned_metadata(path)


def test_not_a_jpeg_and_bad_landmarks(tmp_path):
    png = tmp_path / "f_0.jpg"
    ok, enc = cv2.imencode(".png", np.zeros((8, 8, 3), np.uint8))
    png.write_bytes(enc.tobytes())
    with pytest.raises(HostFormatError, match="not a JPEG"):
        read_aligned_metadata(png)
    folder = tmp_path / "aligned"
    folder.mkdir()
    (folder / "00001_0.jpg").write_bytes(_jpeg(pickle.dumps({"source_landmarks": np.zeros((68, 3))})))
    with pytest.raises(HostFormatError, match="source_landmarks"):
        read_aligned(folder)
    (folder / "00001_0.jpg").write_bytes(_jpeg(pickle.dumps({"source_landmarks": "many"})))
    with pytest.raises(HostFormatError, match="source_landmarks"):
        read_aligned(folder)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_pickles_give_a_dict_or_one_clear_error(tmp_path, data):
    meta = {"face_type": "whole_face", "source_filename": "00001.png",
            "source_landmarks": np.arange(136, dtype=np.float32).reshape(68, 2), "xseg_mask": b"\x89PNG"}
    payload = bytearray(pickle.dumps(meta, protocol=data.draw(st.sampled_from([2, 3, 4]))))
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(payload) - 1))
        payload[i] = data.draw(st.integers(0, 255))
    path = tmp_path / "m_0.jpg"
    path.write_bytes(_jpeg(bytes(payload)))
    try:
        got = read_aligned_metadata(path)
    except HostFormatError as exc:
        assert "\n" not in str(exc)
    else:
        assert isinstance(got, dict)
