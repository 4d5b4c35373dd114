"""The landmarker bundle: checksum, resolution order, and one-line errors for bad bundles."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest

from tracking import bundle as bundle_mod
from tracking.bundle import (
    BUNDLE_ENV_VAR,
    DEFAULT_BUNDLE_SHA256,
    DEFAULT_BUNDLE_SIZE,
    FACE_DETECTOR_MEMBER,
    GEOMETRY_MEMBER,
    LANDMARKS_MEMBER,
    REQUIRED_MEMBERS,
    load_bundle,
    packaged_bundle_path,
    read_bundle_member,
)
from tracking.errors import DeltafaceError, ModelLoadError


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BUNDLE_ENV_VAR, raising=False)


def _rezip(src: Path, dst: Path, drop: str | None = None, extra: tuple[str, bytes] | None = None) -> Path:
    """Copy a bundle member by member (optionally dropping one, adding one): new bytes, same models."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w", zipfile.ZIP_STORED) as zout:
        for name in zin.namelist():
            if name != drop:
                zout.writestr(name, zin.read(name))
        if extra is not None:
            zout.writestr(*extra)
    return dst


def _one_line(exc: pytest.ExceptionInfo[BaseException]) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    return message


def test_packaged_bundle_matches_checksum() -> None:
    path = packaged_bundle_path()
    assert path.stat().st_size == DEFAULT_BUNDLE_SIZE
    b = load_bundle()
    assert b.origin == "packaged" and b.path == path
    assert b.sha256 == DEFAULT_BUNDLE_SHA256 and b.is_default
    assert set(REQUIRED_MEMBERS) <= set(b.members)
    assert load_bundle() is b  # cached


def test_read_member_returns_the_models() -> None:
    detector = read_bundle_member(FACE_DETECTOR_MEMBER)
    landmarks = read_bundle_member(LANDMARKS_MEMBER)
    # TFLite flatbuffers carry the file identifier "TFL3" at offset 4.
    assert detector[4:8] == b"TFL3" and landmarks[4:8] == b"TFL3"
    assert len(read_bundle_member(GEOMETRY_MEMBER)) > 1000
    with pytest.raises(ModelLoadError) as exc:
        load_bundle().read_member("no_such_model.tflite")
    assert "no_such_model.tflite" in _one_line(exc)


def test_corrupted_packaged_bundle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    data = bytearray(packaged_bundle_path().read_bytes())
    data[len(data) // 2] ^= 0xFF  # one flipped byte inside a model
    fake = tmp_path / "face_landmarker.task"
    fake.write_bytes(bytes(data))
    monkeypatch.setattr(bundle_mod, "packaged_bundle_path", lambda: fake)
    with pytest.raises(ModelLoadError) as exc:
        load_bundle()
    message = _one_line(exc)
    assert str(fake) in message and "sha256" in message and BUNDLE_ENV_VAR in message
    assert isinstance(exc.value, DeltafaceError) and isinstance(exc.value, RuntimeError)


def test_missing_packaged_bundle_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bundle_mod, "packaged_bundle_path", lambda: tmp_path / "gone.task")
    with pytest.raises(ModelLoadError) as exc:
        load_bundle()
    assert "gone.task" in _one_line(exc)


def test_env_var_overrides_packaged_and_argument_overrides_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    user = _rezip(packaged_bundle_path(), tmp_path / "user.task", extra=("README", b"mine"))
    monkeypatch.setenv(BUNDLE_ENV_VAR, str(user))
    b = load_bundle()
    assert b.origin == "environment" and b.path == user.resolve()
    assert not b.is_default and len(b.sha256) == 64  # digest reported, default not required
    assert b.read_member(GEOMETRY_MEMBER) == read_bundle_member(GEOMETRY_MEMBER, packaged_bundle_path())
    explicit = load_bundle(packaged_bundle_path())
    assert explicit.origin == "argument" and explicit.is_default


def test_empty_env_var_is_ignored(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUNDLE_ENV_VAR, "  ")
    assert load_bundle().origin == "packaged"


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"this is not a zip archive", "not a valid zip"),
        (None, LANDMARKS_MEMBER),  # a zip without the landmark model
    ],
)
def test_invalid_user_bundle_is_refused(tmp_path: Path, content: bytes | None, expected: str) -> None:
    path = tmp_path / "bad.task"
    if content is None:
        _rezip(packaged_bundle_path(), path, drop=LANDMARKS_MEMBER)
    else:
        path.write_bytes(content)
    with pytest.raises(ModelLoadError) as exc:
        load_bundle(path)
    message = _one_line(exc)
    assert expected in message and str(path) in message


def test_missing_user_bundle_names_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(BUNDLE_ENV_VAR, str(tmp_path / "nowhere.task"))
    with pytest.raises(ModelLoadError) as exc:
        load_bundle()
    message = _one_line(exc)
    assert "nowhere.task" in message and BUNDLE_ENV_VAR in message


def test_corrupt_member_is_refused(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for name in REQUIRED_MEMBERS:
            z.writestr(name, b"x" * 64)
    data = bytearray(buf.getvalue())
    data[data.index(b"x" * 64)] = ord("y")  # breaks the stored CRC of the first member
    path = tmp_path / "crc.task"
    path.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError) as exc:
        load_bundle(path)
    assert "corrupt member" in _one_line(exc)
