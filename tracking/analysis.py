"""The saved analysis of a clip: finished tracks, cuts and frame times, and its cache file.

:func:`build_tracks` turns per-frame observations into finished tracks: associate (reset at
cuts) -> split at cuts and long gaps, bridge short gaps -> shape signatures -> identities across
breaks -> smooth each segment. The maths lives in ``tracks``, ``gaps`` and ``smoothing``.

File format (version :data:`ANALYSIS_VERSION`): one ``.npz`` (a zip of ``.npy`` arrays, never
pickled). Member ``header`` is a uint8 array holding UTF-8 JSON: format name, version, input hash,
settings and their digest, frame count, time base, and each track's id and length. The other
members are named in the header and checked for exact names, dtypes and shapes before use.
Tracks keep both raw (measured; bridged frames interpolated) and smoothed signals: the raw ones
are what the "no new jitter" check and a re-smoothing with other settings need, at twice the
size (11.5 kB a face-frame before compression, 5 kB after on a synthetic clip).
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.metadata
import json
import os
import tokenize
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracking.atomicfile import write_atomically
from tracking.errors import ConfigError, InputError, OutputError
from tracking.gaps import GapConfig, split_and_bridge
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS, FaceObservation, Source
from tracking.smoothing import SmoothingConfig, angles_from_transforms, smooth_segment
from tracking.tracks import (
    SAME_FACE_MAX_DISTANCE, AssociationConfig, FrameFaces, SegmentSummary, TrackedFace, assign_identities,
    associate, shape_signature,
)

ANALYSIS_FORMAT = "deltaface-analysis"
#: Bumped whenever the file layout or the meaning of a field changes; older files are refused.
ANALYSIS_VERSION = 1
#: ``Track.sources`` codes.
SOURCE_CODES: dict[Source, int] = {Source.LANDMARKER: 0, Source.RECOVERED: 1, Source.BRIDGED: 2}
#: Largest header accepted (bytes).
_MAX_HEADER = 1 << 20
#: What reading a damaged zip member can raise: a bad CRC, a broken deflate stream (zlib.error),
#: an unknown compression method (NotImplementedError), a cut-short or malformed ``.npy`` (numpy
#: tokenizes its header: an unbalanced one raises tokenize.TokenError).
_DAMAGED = (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError,
            tokenize.TokenError)
#: Slack allowed over an array's data size for its ``.npy`` header (bytes).
_NPY_SLACK = 1 << 16
_HASH_CHUNK = 1 << 20


def _deltaface_version() -> str:
    # tracking never imports plugin (where the version is defined): ask the installed metadata.
    try:
        return importlib.metadata.version("deltaface")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"

#: Per-frame arrays of a track: name -> (trailing shape, dtype).
TRACK_ARRAYS: dict[str, tuple[tuple[int, ...], str]] = {
    "frame_indices": ((), "<i8"),
    "times": ((), "<f8"),
    "segment_ids": ((), "<i4"),
    "landmarks": ((NUM_LANDMARKS, 3), "<f4"),
    "blendshapes": ((NUM_BLENDSHAPES,), "<f4"),
    "transforms": ((4, 4), "<f4"),
    "angles": ((3,), "<f4"),
    "raw_landmarks": ((NUM_LANDMARKS, 3), "<f4"),
    "raw_blendshapes": ((NUM_BLENDSHAPES,), "<f4"),
    "raw_transforms": ((4, 4), "<f4"),
    "raw_angles": ((3,), "<f4"),
    "confidence": ((), "<f4"),
    "boxes": ((4,), "<f4"),
    "sources": ((), "|u1"),
}
_HEADER_KEYS = {"format", "version", "deltaface_version", "input_hash", "settings", "settings_hash",
                "frame_count", "time_base", "has_pts", "cut_count", "tracks"}


@dataclass(frozen=True)
class TrackingConfig:
    """Everything that turns observations into tracks (part of the analysis cache key).

    ``align_sources``: within a segment where the full-frame landmarker and the recovery pass
    (detector, crop, landmarker on the crop) take turns, bring the fewer frames' landmarks to the
    others' scale and place (:func:`align_sources`).
    """

    association: AssociationConfig = field(default_factory=AssociationConfig)
    gaps: GapConfig = field(default_factory=GapConfig)
    smoothing: SmoothingConfig = field(default_factory=SmoothingConfig)
    identity_max_distance: float = SAME_FACE_MAX_DISTANCE
    align_sources: bool = True

    def __post_init__(self) -> None:
        if not self.identity_max_distance >= 0:
            raise ConfigError(f"tracking: identity_max_distance must be >= 0, got {self.identity_max_distance}")


@dataclass(frozen=True, eq=False)
class Track:
    """One face over the clip: every frame of every segment, in frame order.

    Smoothed signals are what later stages use; ``raw_*`` are the measurements (bridged frames
    interpolated) they came from. All arrays have N rows.

    Attributes:
        track_id: stable id within the clip (kept across cuts when the face's shape matches).
        frame_indices: ``(N,)`` int64 strictly increasing frame indices.
        times: ``(N,)`` float64 seconds.
        segment_ids: ``(N,)`` int32 clip-wide id of the segment (run without a cut or long gap).
        landmarks, raw_landmarks: ``(N, 478, 3)`` float32 pixels (see FaceObservation).
        blendshapes, raw_blendshapes: ``(N, 52)`` float32 scores in [0, 1].
        transforms, raw_transforms: ``(N, 4, 4)`` float32 facial transformation matrices.
        angles, raw_angles: ``(N, 3)`` float32 degrees (yaw, pitch, roll) of the transforms.
        confidence: ``(N,)`` float32 in [0, 1], 0 for bridged frames.
        boxes: ``(N, 4)`` float32 ``(x0, y0, x1, y1)`` of the smoothed landmarks.
        sources: ``(N,)`` uint8 :data:`SOURCE_CODES`.
    """

    track_id: int
    frame_indices: NDArray[np.int64]
    times: NDArray[np.float64]
    segment_ids: NDArray[np.int32]
    landmarks: NDArray[np.float32]
    blendshapes: NDArray[np.float32]
    transforms: NDArray[np.float32]
    angles: NDArray[np.float32]
    raw_landmarks: NDArray[np.float32]
    raw_blendshapes: NDArray[np.float32]
    raw_transforms: NDArray[np.float32]
    raw_angles: NDArray[np.float32]
    confidence: NDArray[np.float32]
    boxes: NDArray[np.float32]
    sources: NDArray[np.uint8]

    def __post_init__(self) -> None:
        n = np.asarray(self.frame_indices).shape[0] if np.ndim(self.frame_indices) == 1 else -1
        for name, (tail, dtype) in TRACK_ARRAYS.items():
            arr = getattr(self, name)
            if not isinstance(arr, np.ndarray) or arr.shape != (n, *tail) or arr.dtype != np.dtype(dtype):
                got = (arr.shape, str(arr.dtype)) if isinstance(arr, np.ndarray) else type(arr).__name__
                raise InputError(f"track {self.track_id}: {name} must be {(n, *tail)} {dtype}, got {got}")
        if n and not np.all(np.diff(self.frame_indices) > 0):
            raise InputError(f"track {self.track_id}: frame indices must increase strictly")
        if n and int(self.sources.max()) > max(SOURCE_CODES.values()):
            raise InputError(f"track {self.track_id}: unknown source code {int(self.sources.max())}")

    def row(self, frame_index: int) -> int | None:
        """Row of ``frame_index`` in the arrays, or None when the track is absent there."""
        i = int(np.searchsorted(self.frame_indices, frame_index))
        return i if i < self.frame_indices.shape[0] and self.frame_indices[i] == frame_index else None

    def observation(self, row: int, smoothed: bool = True) -> FaceObservation:
        """The track at ``row`` as a FaceObservation (smoothed or raw signals)."""
        pre = "" if smoothed else "raw_"
        lm = getattr(self, pre + "landmarks")[row]
        yaw, pitch, roll = (float(a) for a in getattr(self, pre + "angles")[row])
        code = int(self.sources[row])
        return FaceObservation(
            frame_index=int(self.frame_indices[row]), landmarks=lm, blendshapes=getattr(self, pre + "blendshapes")[row],
            transform=getattr(self, pre + "transforms")[row], yaw=yaw, pitch=pitch, roll=roll,
            confidence=float(self.confidence[row]),
            box=np.concatenate([lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)]).astype(np.float32),
            source=next(s for s, c in SOURCE_CODES.items() if c == code),
        )


@dataclass(frozen=True, eq=False)
class ClipAnalysis:
    """The result of the analysis pass over one clip.

    Attributes:
        input_hash: :func:`content_hash` of the input file.
        settings: JSON-compatible settings the analysis was made with.
        settings_hash: :func:`settings_digest` of ``settings`` (checked).
        frame_count: frames in the clip.
        frame_times: ``(F,)`` float64 seconds of every frame.
        frame_pts: ``(F,)`` int64 presentation timestamps, or None when the input has none.
        time_base: the video stream's time base as ``"num/den"``, or None.
        cut_frames: ``(K,)`` int64 frames that start a new shot.
        tracks: the finished tracks, by increasing id.
        version: file format version.
        deltaface_version: version of deltaface that made it.
    """

    input_hash: str
    settings: Mapping[str, Any]
    settings_hash: str
    frame_count: int
    frame_times: NDArray[np.float64]
    frame_pts: NDArray[np.int64] | None
    time_base: str | None
    cut_frames: NDArray[np.int64]
    tracks: tuple[Track, ...]
    version: int = ANALYSIS_VERSION
    deltaface_version: str = field(default_factory=_deltaface_version)

    def __post_init__(self) -> None:
        if self.frame_times.shape != (self.frame_count,) or self.frame_times.dtype != np.float64:
            raise InputError(f"analysis: frame_times must be ({self.frame_count},) float64")
        pts = self.frame_pts
        if pts is not None and (pts.shape != (self.frame_count,) or pts.dtype != np.int64):
            raise InputError(f"analysis: frame_pts must be ({self.frame_count},) int64")
        if self.cut_frames.ndim != 1 or self.cut_frames.dtype != np.int64:
            raise InputError("analysis: cut_frames must be (K,) int64")
        if settings_digest(self.settings) != self.settings_hash:
            raise ConfigError("analysis: settings do not match their digest (edited file?)")
        for tr in self.tracks:
            if tr.frame_indices.size and (tr.frame_indices[0] < 0 or tr.frame_indices[-1] >= self.frame_count):
                raise InputError(f"analysis: track {tr.track_id} has frames outside the clip's {self.frame_count}")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.integer, np.floating, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"settings: {type(value).__name__} value {value!r} cannot be stored")


def settings_dict(settings: Any) -> dict[str, Any]:
    """Settings (a config dataclass or a mapping of them) as a JSON-compatible dict."""
    out = _jsonable(settings)
    if not isinstance(out, dict):
        raise ConfigError(f"settings must be a dataclass or a mapping, got {type(settings).__name__}")
    return out


def settings_digest(settings: Any) -> str:
    """sha256 hex of the settings' canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(settings_dict(settings), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def content_hash(path: str | os.PathLike[str]) -> str:
    """sha256 hex of a whole file, read in 1 MiB chunks.

    The whole file is hashed, not its size and ends: a re-render of a shot can keep the size and
    the container's head and tail (fixed-size codecs such as ProRes or v210 at equal length) and
    change only frames in the middle. Hashing ran at 1.4 GB/s here, far faster than decoding.

    Raises:
        InputError: the file is missing or unreadable.
    """
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as fh:
            while chunk := fh.read(_HASH_CHUNK):
                digest.update(chunk)
    except OSError as exc:
        raise InputError(f"{path}: cannot read for hashing ({exc.strerror or exc})") from exc
    return digest.hexdigest()


def analysis_cache_path(video_path: str | os.PathLike[str], settings: Any, cache_dir: str | os.PathLike[str]) -> Path:
    """Where the analysis of ``video_path`` with ``settings`` is cached: named by both hashes."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(video_path).stem)[:40]
    name = f"{stem}.{content_hash(video_path)[:20]}.{settings_digest(settings)[:12]}.analysis.npz"
    return Path(cache_dir) / name


def _track_name(i: int, name: str) -> str:
    return f"track{i}_{name}"


def save_analysis(analysis: ClipAnalysis, path: str | os.PathLike[str]) -> None:
    """Write ``analysis`` to ``path`` (replaced atomically; parent folders created).

    Raises:
        OutputError: the file cannot be written.
    """
    header = {
        "format": ANALYSIS_FORMAT, "version": analysis.version, "deltaface_version": analysis.deltaface_version,
        "input_hash": analysis.input_hash, "settings": settings_dict(analysis.settings),
        "settings_hash": analysis.settings_hash, "frame_count": analysis.frame_count,
        "time_base": analysis.time_base, "has_pts": analysis.frame_pts is not None,
        "cut_count": int(analysis.cut_frames.shape[0]),
        "tracks": [{"track_id": t.track_id, "frames": int(t.frame_indices.shape[0])} for t in analysis.tracks],
    }
    arrays: dict[str, NDArray[Any]] = {
        "header": np.frombuffer(json.dumps(header, allow_nan=False).encode("utf-8"), dtype=np.uint8),
        "frame_times": analysis.frame_times, "cut_frames": analysis.cut_frames,
    }
    if analysis.frame_pts is not None:
        arrays["frame_pts"] = analysis.frame_pts
    for i, tr in enumerate(analysis.tracks):
        for name in TRACK_ARRAYS:
            arrays[_track_name(i, name)] = getattr(tr, name)
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{target}: cannot write the analysis ({exc.strerror or exc})") from exc
    write_atomically(target, lambda fh: np.savez_compressed(fh, **arrays), "the analysis")


def _read_member(zf: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: str, where: str) -> NDArray[Any]:
    info = zf.getinfo(name + ".npy")
    need = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if info.file_size > need + _NPY_SLACK:
        raise InputError(f"{where}: member {name} is {info.file_size} bytes, expected about {need}")
    try:
        with zf.open(info) as fh:
            arr = np.lib.format.read_array(fh, allow_pickle=False)
    except _DAMAGED as exc:
        raise InputError(f"{where}: member {name} is not a plain array ({exc})") from exc
    if arr.shape != shape or arr.dtype != np.dtype(dtype):
        raise InputError(f"{where}: member {name} is {arr.shape} {arr.dtype}, expected {shape} {dtype}")
    return arr


def load_analysis(
    path: str | os.PathLike[str], input_hash: str | None = None, settings: Any | None = None
) -> ClipAnalysis:
    """Read an analysis file written by :func:`save_analysis`; nothing in it is executed.

    Args:
        path: the ``.npz`` file.
        input_hash: when given, the file must be for an input with this :func:`content_hash`.
        settings: when given, the file must have been made with these settings.

    Raises:
        InputError: the file is missing, not an analysis, of another version, has missing, extra,
            object or mis-shaped arrays, or is for another input.
        ConfigError: it was made with other settings.
    """
    where = f"analysis file {path}"
    try:
        zf = zipfile.ZipFile(path)
    except _DAMAGED as exc:
        raise InputError(f"{where}: cannot open as an analysis ({exc})") from exc
    with zf:
        names = {n[:-4] if n.endswith(".npy") else n for n in zf.namelist()}
        if "header" not in names or zf.getinfo("header.npy").file_size > _MAX_HEADER:
            raise InputError(f"{where}: no header; not a deltaface analysis")
        try:
            with zf.open("header.npy") as fh:
                raw = np.lib.format.read_array(fh, allow_pickle=False)
            header = json.loads(raw.tobytes().decode("utf-8")) if raw.dtype == np.uint8 and raw.ndim == 1 else None
        except _DAMAGED as exc:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
            raise InputError(f"{where}: unreadable header ({exc})") from exc
        if not isinstance(header, dict) or header.get("format") != ANALYSIS_FORMAT:
            raise InputError(f"{where}: not a deltaface analysis")
        if header.get("version") != ANALYSIS_VERSION:
            raise InputError(f"{where}: format version {header.get('version')!r}, this deltaface reads "
                             f"{ANALYSIS_VERSION}; delete it and analyse again")
        if set(header) != _HEADER_KEYS:
            raise InputError(f"{where}: header keys {sorted(set(header) ^ _HEADER_KEYS)} missing or unexpected")
        try:
            frame_count = int(header["frame_count"])
            cut_count = int(header["cut_count"])
            track_rows = [(int(t["track_id"]), int(t["frames"])) for t in header["tracks"]]
            has_pts = bool(header["has_pts"])
        except (TypeError, ValueError, KeyError) as exc:
            raise InputError(f"{where}: malformed header ({exc})") from exc
        if min([frame_count, cut_count] + [n for _, n in track_rows], default=0) < 0:
            raise InputError(f"{where}: negative sizes in header")
        if input_hash is not None and header["input_hash"] != input_hash:
            raise InputError(f"{where}: made for another input (hash {str(header['input_hash'])[:12]}...)")
        if settings is not None and header["settings_hash"] != settings_digest(settings):
            raise ConfigError(f"{where}: made with other settings; analyse again")
        expected = {"header", "frame_times", "cut_frames"} | ({"frame_pts"} if has_pts else set())
        expected |= {_track_name(i, n) for i in range(len(track_rows)) for n in TRACK_ARRAYS}
        if names != expected:
            raise InputError(f"{where}: members {sorted(names ^ expected)[:4]} missing or unexpected")
        frame_times = _read_member(zf, "frame_times", (frame_count,), "<f8", where)
        pts = _read_member(zf, "frame_pts", (frame_count,), "<i8", where) if has_pts else None
        cuts = _read_member(zf, "cut_frames", (cut_count,), "<i8", where)
        tracks = []
        for i, (track_id, n) in enumerate(track_rows):
            arrays = {name: _read_member(zf, _track_name(i, name), (n, *tail), dtype, where)
                      for name, (tail, dtype) in TRACK_ARRAYS.items()}
            tracks.append(Track(track_id=track_id, **arrays))
    time_base = header["time_base"]
    if time_base is not None and not isinstance(time_base, str):
        raise InputError(f"{where}: time_base must be a string")
    return ClipAnalysis(
        input_hash=str(header["input_hash"]), settings=header["settings"], settings_hash=str(header["settings_hash"]),
        frame_count=frame_count, frame_times=frame_times, frame_pts=pts, time_base=time_base, cut_frames=cuts,
        tracks=tuple(tracks), version=ANALYSIS_VERSION, deltaface_version=str(header["deltaface_version"]),
    )


#: :func:`align_sources` corrects a run of the rarer source where it stands off the other
#: source's path by at least this in scale (log ratio) or in place (fraction of the face's size)
#: at one of its ends; one source's own frame-to-frame change on the fixtures is about
#: 0.002-0.004 in scale (median).
SOURCE_BIAS_MIN = 0.01


def _similarity_stats(landmarks: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``(N, 2)`` mesh centroids and ``(N,)`` sizes (RMS radius about the centroid), 2-D."""
    pts = np.asarray(landmarks, np.float64)[:, :468, :2]
    centre = pts.mean(axis=1)
    return centre, np.sqrt(((pts - centre[:, None]) ** 2).sum(axis=2).mean(axis=1))


def align_sources(landmarks: NDArray[np.float32], sources: NDArray[np.integer],
                  frames: NDArray[np.integer]) -> int:
    """Bring one segment's runs of its rarer source onto the other source's path, in place;
    returns how many frames were moved.

    The full-frame landmarker and the recovery pass (detector, crop, landmarker on the crop) read
    the same face from different crops, and on some faces they disagree in scale and place: on
    ghost_2person.mp4's right-hand face the two take turns 12 times, and each switch jumped the
    face's size by 6 % (median; up to 12 %) where one source moves it by 0.4 % a frame. The
    smoothing keeps such steps (it does not lag a real move), so every edit jumped with them,
    and borrowed teeth were misplaced enough to be held back as "covered". The disagreement
    drifts along the clip, so it is measured at each end of each run of the rarer source: the
    run's first (last) frame against where the other source's path, continued by its last step,
    puts the face there; the similarity between them (size ratio, centroid offset in face sizes)
    is removed from the run, blended linearly from one end's to the other's. Bridged frames and
    runs with the other source on neither side are left as they are.

    Args:
        landmarks: ``(N, 478, 3)`` one segment's raw landmarks (modified in place).
        sources: ``(N,)`` :data:`SOURCE_CODES`.
        frames: ``(N,)`` frame indices.
    """
    a, b = SOURCE_CODES[Source.LANDMARKER], SOURCE_CODES[Source.RECOVERED]
    src = np.asarray(sources)
    n_a, n_b = int(np.count_nonzero(src == a)), int(np.count_nonzero(src == b))
    if not n_a or not n_b:
        return 0
    move, keep = (b, a) if n_b <= n_a else (a, b)
    fr = np.asarray(frames, np.int64)
    centre, size = _similarity_stats(landmarks)
    n = len(src)

    def predicted(at: int, step: int) -> tuple[NDArray[np.float64], float] | None:
        """The kept source's centroid and size continued to row ``at`` from ``at - step``
        (and ``at - 2 step`` for its velocity), or None."""
        j = at - step
        if not (0 <= j < n and src[j] == keep and abs(fr[at] - fr[j]) == 1):
            return None
        k = j - step
        if 0 <= k < n and src[k] == keep and abs(fr[j] - fr[k]) == 1:
            return 2 * centre[j] - centre[k], float(size[j] * size[j] / size[k])
        return centre[j], float(size[j])

    moved = 0
    rows = np.flatnonzero(src == move)
    runs = np.split(rows, np.flatnonzero((np.diff(rows) != 1) | (np.diff(fr[rows]) != 1)) + 1)
    for run in runs:
        ends = []
        for at, step in ((int(run[0]), 1), (int(run[-1]), -1)):
            pred = predicted(at, step)
            if pred is not None:  # the run's end against the kept path: log size ratio, offset
                ends.append((np.log(pred[1] / size[at]), (pred[0] - centre[at]) / size[at]))
        if not ends:
            continue
        if all(abs(ls) < SOURCE_BIAS_MIN and float(np.linalg.norm(off)) < SOURCE_BIAS_MIN for ls, off in ends):
            continue
        (ls0, off0), (ls1, off1) = ends[0], ends[-1]
        t = np.linspace(0.0, 1.0, run.size) if run.size > 1 else np.zeros(1)
        k = np.exp(ls0 + (ls1 - ls0) * t)
        off = off0[None] + (off1 - off0)[None] * t[:, None]
        c = centre[run]
        lm = landmarks[run].astype(np.float64)
        lm[..., :2] = (c + off * size[run, None])[:, None] + (lm[..., :2] - c[:, None]) * k[:, None, None]
        lm[..., 2] *= k[:, None]
        landmarks[run] = lm.astype(landmarks.dtype)
        moved += run.size
    return moved


def _fill_segment(seg: list[TrackedFace], config: SmoothingConfig, out: dict[str, NDArray[Any]],
                  align: bool = True) -> None:
    """Write one segment's rows of every :data:`TRACK_ARRAYS` array but ``segment_ids`` into ``out``
    (views of the track's arrays), with no whole-segment copy beyond what the track keeps."""
    obs = [f.observation for f in seg]
    times = out["times"]
    times[:] = [f.time for f in seg]
    out["frame_indices"][:] = [o.frame_index for o in obs]
    out["sources"][:] = [SOURCE_CODES[Source(o.source)] for o in obs]
    raw_lm = np.stack([o.landmarks for o in obs], out=out["raw_landmarks"])
    if align:
        align_sources(raw_lm, out["sources"], out["frame_indices"])
    raw_bs = np.stack([o.blendshapes for o in obs], out=out["raw_blendshapes"])
    raw_tf = np.stack([o.transform for o in obs], out=out["raw_transforms"])
    sm = smooth_segment(times, raw_lm, raw_bs, raw_tf, config, out_landmarks=out["landmarks"])
    out["blendshapes"][:] = sm.blendshapes
    out["transforms"][:] = sm.transforms
    out["angles"][:] = sm.angles
    out["raw_angles"][:] = angles_from_transforms(raw_tf)
    out["confidence"][:] = [o.confidence for o in obs]
    out["boxes"][:, :2] = sm.landmarks[..., :2].min(axis=1)
    out["boxes"][:, 2:] = sm.landmarks[..., :2].max(axis=1)


def build_tracks(
    observations: Sequence[Sequence[FaceObservation]],
    frame_times: NDArray[np.floating],
    cut_frames: Sequence[int] = (),
    config: TrackingConfig | None = None,
) -> tuple[Track, ...]:
    """Finished tracks from every frame's observations.

    Args:
        observations: one sequence per frame of the clip, in frame order (index = frame index).
        frame_times: ``(F,)`` strictly increasing seconds of every frame.
        cut_frames: frames that start a new shot.
        config: association, gap, smoothing and identity settings.

    Returns:
        Tracks ordered by id; ids count from 0 in order of first appearance.
    """
    cfg = config or TrackingConfig()
    times = np.asarray(frame_times, dtype=np.float64)
    if times.shape != (len(observations),):
        raise InputError(f"build_tracks: {times.shape} frame times for {len(observations)} frames")
    frames = [FrameFaces(i, float(times[i]), tuple(obs)) for i, obs in enumerate(observations)]
    by_track: dict[int, list[TrackedFace]] = {}
    for frame in associate(frames, cut_frames, cfg.association):
        for face in frame.faces:
            by_track.setdefault(face.track_id, []).append(face)
    segments = [seg for _, faces in sorted(by_track.items())
                for seg in split_and_bridge(faces, times, cut_frames, cfg.gaps)]
    summaries = []
    for seg in segments:
        measured = [f.observation.landmarks for f in seg if f.observation.source is not Source.BRIDGED]
        summaries.append(SegmentSummary(seg[0].track_id, seg[0].observation.frame_index,
                                        seg[-1].observation.frame_index, shape_signature(np.stack(measured)),
                                        len(measured)))
    identities = assign_identities(summaries, cfg.identity_max_distance)
    order = sorted(range(len(segments)), key=lambda i: (summaries[i].start_frame, summaries[i].provisional_id))
    members: dict[int, list[int]] = {}
    for i in order:
        members.setdefault(identities[i], []).append(i)
    seg_ids = {i: seg_id for seg_id, i in enumerate(order)}
    tracks = []
    for track_id in sorted(members):
        # each track's arrays are allocated once and its segments smoothed straight into them
        parts = sorted(members[track_id], key=lambda i: summaries[i].start_frame)
        arrays = {name: np.empty((sum(len(segments[i]) for i in parts), *tail), dtype=dtype)
                  for name, (tail, dtype) in TRACK_ARRAYS.items()}
        row = 0
        for i in parts:
            rows = slice(row, row + len(segments[i]))
            _fill_segment(segments[i], cfg.smoothing, {name: a[rows] for name, a in arrays.items()}, cfg.align_sources)
            arrays["segment_ids"][rows] = seg_ids[i]
            row = rows.stop
        tracks.append(Track(track_id=track_id, **arrays))
    return tuple(tracks)
