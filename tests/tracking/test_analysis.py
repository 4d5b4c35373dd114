"""The saved analysis: round trip, cache key, and refusal of wrong, tampered or hostile files."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from tests.tracking import synthetic_faces as sf
from tracking.analysis import (
    ANALYSIS_VERSION, TRACK_ARRAYS, ClipAnalysis, TrackingConfig, analysis_cache_path, build_tracks, content_hash,
    load_analysis, save_analysis, settings_digest, settings_dict,
)
from tracking.errors import ConfigError, InputError
from tracking.smoothing import SmoothingConfig

FPS = 25.0


def _analysis(frames: int = 24) -> ClipAnalysis:
    rng = np.random.default_rng(0)
    shape_a, shape_b = sf.person(1), sf.person(2)
    obs = []
    for i in range(frames):
        lm = sf.pose_landmarks(shape_a, (200.0 + 3 * i, 200.0), 60.0) + rng.normal(0, 1, (478, 3))
        faces = [sf.observation(i, lm)]
        if i % 7 != 3:  # the second face misses a frame now and then (bridged)
            faces.append(sf.observation(i, sf.pose_landmarks(shape_b, (600.0, 220.0), 50.0, yaw=15.0), yaw=15.0))
        obs.append(faces)
    times = np.arange(frames) / FPS
    config = TrackingConfig()
    tracks = build_tracks(obs, times, (), config)
    settings = settings_dict(config)
    return ClipAnalysis(
        input_hash="ab" * 32, settings=settings, settings_hash=settings_digest(settings), frame_count=frames,
        frame_times=times, frame_pts=np.arange(frames, dtype=np.int64) * 512, time_base="1/12800",
        cut_frames=np.array([], dtype=np.int64), tracks=tracks,
    )


@pytest.fixture(scope="module")
def analysis() -> ClipAnalysis:
    return _analysis()


def test_round_trip_keeps_everything(analysis: ClipAnalysis, tmp_path: Path) -> None:
    path = tmp_path / "clip.analysis.npz"
    save_analysis(analysis, path)
    back = load_analysis(path, input_hash=analysis.input_hash, settings=analysis.settings)
    assert back.settings == analysis.settings and back.settings_hash == analysis.settings_hash
    assert back.frame_count == analysis.frame_count and back.time_base == analysis.time_base
    assert np.array_equal(back.frame_times, analysis.frame_times)
    assert np.array_equal(back.frame_pts, analysis.frame_pts)
    assert len(back.tracks) == len(analysis.tracks) == 2
    for a, b in zip(analysis.tracks, back.tracks):
        assert a.track_id == b.track_id
        for name in TRACK_ARRAYS:
            assert np.array_equal(getattr(a, name), getattr(b, name)), name
    bridged = [int((t.sources == 2).sum()) for t in back.tracks]
    assert sorted(bridged) == [0, 3]


def test_track_row_and_observation(analysis: ClipAnalysis) -> None:
    track = max(analysis.tracks, key=lambda t: int((t.sources == 2).sum()))
    row = track.row(3)
    assert row is not None
    obs = track.observation(row)
    assert obs.source.value == "bridged" and obs.confidence == 0.0
    raw = track.observation(row, smoothed=False)
    assert raw.frame_index == 3 and np.array_equal(raw.landmarks, track.raw_landmarks[row])
    assert track.row(10_000) is None


def _rewrite(src: Path, dst: Path, edit) -> None:
    """Copy an analysis zip, letting ``edit(name, bytes) -> bytes | None`` change or drop members."""
    with zipfile.ZipFile(src) as zin, zipfile.ZipFile(dst, "w") as zout:
        for info in zin.infolist():
            data = edit(info.filename, zin.read(info))
            if data is not None:
                zout.writestr(info.filename, data)


def _npy(array: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=True)
    return buf.getvalue()


def _header_edit(change):
    def edit(name: str, data: bytes) -> bytes:
        if name != "header.npy":
            return data
        header = json.loads(np.load(io.BytesIO(data)).tobytes())
        change(header)
        return _npy(np.frombuffer(json.dumps(header).encode(), dtype=np.uint8))
    return edit


@pytest.fixture()
def saved(analysis: ClipAnalysis, tmp_path: Path) -> Path:
    path = tmp_path / "good.npz"
    save_analysis(analysis, path)
    return path


def test_refuses_another_version(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "v.npz"
    _rewrite(saved, bad, _header_edit(lambda h: h.update(version=ANALYSIS_VERSION + 1)))
    with pytest.raises(InputError, match="version"):
        load_analysis(bad)


def test_refuses_missing_extra_or_renamed_members(saved: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing.npz"
    _rewrite(saved, missing, lambda n, d: None if n == "track0_landmarks.npy" else d)
    with pytest.raises(InputError, match="missing or unexpected"):
        load_analysis(missing)
    extra = tmp_path / "extra.npz"
    _rewrite(saved, extra, lambda n, d: d)
    with zipfile.ZipFile(extra, "a") as z:
        z.writestr("surprise.npy", _npy(np.zeros(3)))
    with pytest.raises(InputError, match="missing or unexpected"):
        load_analysis(extra)
    keys = tmp_path / "keys.npz"
    _rewrite(saved, keys, _header_edit(lambda h: h.update(comment="hi")))
    with pytest.raises(InputError, match="header keys"):
        load_analysis(keys)


def test_refuses_other_input_or_settings(saved: Path, analysis: ClipAnalysis) -> None:
    with pytest.raises(InputError, match="another input"):
        load_analysis(saved, input_hash="cd" * 32)
    other = settings_dict(TrackingConfig(smoothing=replace(SmoothingConfig(), evidence_neighbours=3)))
    with pytest.raises(ConfigError, match="other settings"):
        load_analysis(saved, settings=other)
    assert load_analysis(saved, settings=TrackingConfig()).input_hash == analysis.input_hash


def test_refuses_settings_edited_without_their_digest(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "edited.npz"
    _rewrite(saved, bad, _header_edit(lambda h: h["settings"]["gaps"].update(max_gap_s=5.0)))
    with pytest.raises(ConfigError, match="digest"):
        load_analysis(bad)


def test_refuses_wrong_shapes_and_dtypes(saved: Path, tmp_path: Path) -> None:
    bad = tmp_path / "shape.npz"
    _rewrite(saved, bad, lambda n, d: _npy(np.zeros((2, 3), np.float32)) if n == "track0_blendshapes.npy" else d)
    with pytest.raises(InputError, match="track0_blendshapes"):
        load_analysis(bad)
    bad3 = tmp_path / "dtype3.npz"
    _rewrite(saved, bad3, lambda n, d: _npy(np.load(io.BytesIO(d)).astype(np.float64))
             if n == "track0_confidence.npy" else d)
    with pytest.raises(InputError, match="track0_confidence"):
        load_analysis(bad3)


class _Boom:
    """Unpickling this creates a file: proof that code ran."""

    marker: Path

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_refuses_object_arrays_without_running_them(saved: Path, tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    boom = _Boom()
    boom.marker = marker
    hostile = np.empty(24, dtype=object)
    hostile[:] = [boom] * 24
    bad = tmp_path / "hostile.npz"
    _rewrite(saved, bad, lambda n, d: _npy(hostile) if n == "track0_confidence.npy" else d)
    with pytest.raises(InputError, match="track0_confidence"):
        load_analysis(bad)
    # a hostile header too
    bad_header = tmp_path / "hostile_header.npz"
    _rewrite(saved, bad_header, lambda n, d: _npy(hostile) if n == "header.npy" else d)
    with pytest.raises(InputError):
        load_analysis(bad_header)
    assert not marker.exists()


def test_refuses_non_analysis_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(InputError, match="cannot open"):
        load_analysis(text)
    with pytest.raises(InputError, match="cannot open"):
        load_analysis(tmp_path / "absent.npz")
    plain = tmp_path / "plain.npz"
    np.savez(plain, header=np.frombuffer(b'{"format": "something-else"}', dtype=np.uint8))
    with pytest.raises(InputError, match="not a deltaface analysis"):
        load_analysis(plain)


def test_content_hash_and_cache_path(tmp_path: Path) -> None:
    video = tmp_path / "shot 01.mov"
    video.write_bytes(b"x" * (3 << 20) + b"tail")
    assert content_hash(video) == hashlib.sha256(video.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    p1 = analysis_cache_path(video, TrackingConfig(), cache)
    assert p1.parent == cache and p1.name.startswith("shot_01.")
    assert p1 == analysis_cache_path(video, TrackingConfig(), cache)
    p2 = analysis_cache_path(video, TrackingConfig(identity_max_distance=0.02), cache)
    video.write_bytes(b"x" * (3 << 20) + b"tale")  # same size, same head: a full hash still differs
    p3 = analysis_cache_path(video, TrackingConfig(), cache)
    assert len({p1, p2, p3}) == 3
    with pytest.raises(InputError):
        content_hash(tmp_path / "absent.mov")


def test_settings_digest_is_order_free_and_typed() -> None:
    assert settings_digest({"a": 1, "b": [1.5, "x"]}) == settings_digest({"b": [1.5, "x"], "a": 1})
    assert settings_digest({"a": 1}) != settings_digest({"a": 1.5})
    with pytest.raises(ConfigError):
        settings_digest({"a": object()})
