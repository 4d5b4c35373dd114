"""The analysis pass (DESIGN.md): decode, find faces, follow them, save the result.

Per frame: the landmarker (with its detector-and-crop recovery) finds faces; where a live track
is expected but nothing was found, the landmarker is re-run on a crop around the track's predicted
box; the cut detector marks shot changes. The whole-frame landmarker and the cut detector run
a few frames ahead on their own thread, beside the tiled search and the crop re-runs on the
caller's (MediaPipe releases the GIL, so the pass uses both cores; the result is that of running
them in turn). At the end the per-frame observations become finished,
smoothed tracks (``tracking.analysis.build_tracks``). Only per-frame codes are kept, never frames,
so memory stays flat in clip length. The result is cached in a small file keyed by the input's
content hash and every setting that changes it, so re-renders skip this pass.
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from plugin.heap import keep_freed_memory
from plugin.overlap import Prefetch
from plugin.video import VideoReader
from tracking.analysis import (
    ClipAnalysis,
    TrackingConfig,
    build_tracks,
    content_hash,
    load_analysis,
    save_analysis,
    settings_dict,
    settings_digest,
)
from tracking.aspect import SquarePixels
from tracking.cuts import CutConfig, CutDetector, FrameFeatures, frame_features
from tracking.errors import DeltafaceError
from tracking.frame import Frame
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.observation import FaceObservation
from tracking.tracks import Associator, FrameFaces, box_iou

#: Environment variable naming the analysis cache folder.
CACHE_ENV_VAR = "DELTAFACE_CACHE"

#: Called after each analysed frame with (frames done, total frames or None).
ProgressCallback = Callable[[int, "int | None"], None]

#: A face recovered around a predicted box that overlaps a found face this much is a duplicate.
_DUPLICATE_IOU = 0.3
#: How far the whole-frame landmarker may run ahead of the search, in bytes of frames held (24
#: frames at 1080p, 6 at 4K; never fewer than 4, never more than 32). The search's work comes in
#: bursts (a run of the tiled detector over its tile sizes takes about 50 ms at 1080p, three
#: frames' worth of the landmarker's): with room for 4 frames the landmarker thread stood idle
#: through them. bench/perf.py's 1080p clip, one face, 3 interleaved runs: 43 fps with 4, 46 with
#: 8, 49 with 16, 53 with 24, using 1.43 then 1.62 of the 2 cores.
LANDMARKER_AHEAD_BYTES = 24 * 1920 * 1080 * 3
LANDMARKER_AHEAD_FRAMES = (4, 32)


#: During the pass, a frame at the time of the one before it (a repeated pts) is taken this much
#: later; :func:`spread_repeated_times` then spaces such frames properly.
REPEATED_TIME_STEP_S = 1e-3


def spread_repeated_times(times: NDArray[np.float64]) -> NDArray[np.float64]:
    """Frame times made strictly increasing: a run of frames at one time (a muxing fault: a
    screen recorder, a bad concatenation) is spread evenly from that time to the next frame's
    (over the clip's typical frame interval at its end). Frames one pts apart by a hair would
    otherwise make the smoothing's local fits singular.

    Args:
        times: ``(N,)`` non-decreasing seconds.
    """
    t = np.asarray(times, dtype=np.float64).copy()
    n = len(t)
    steps = np.diff(t)
    if n < 2 or (steps > 0).all():
        return t
    typical = float(np.median(steps[steps > 0])) if (steps > 0).any() else 1.0 / 25.0
    i = 0
    while i < n:
        j = i
        while j + 1 < n and times[j + 1] <= times[i]:
            j += 1
        if j > i:
            end = times[j + 1] if j + 1 < n else times[i] + typical
            t[i:j + 1] = times[i] + (end - times[i]) * np.arange(j - i + 1) / (j - i + 1)
        i = j + 1
    return t


def frames_ahead(frame_bytes: int) -> int:
    """Frames the whole-frame landmarker may run ahead of the search, for frames of this size."""
    lo, hi = LANDMARKER_AHEAD_FRAMES
    return int(min(max(LANDMARKER_AHEAD_BYTES // max(frame_bytes, 1), lo), hi))


def default_cache_dir() -> Path:
    """``$DELTAFACE_CACHE``, else ``$XDG_CACHE_HOME/deltaface``, else ``~/.cache/deltaface``."""
    if os.environ.get(CACHE_ENV_VAR):
        return Path(os.environ[CACHE_ENV_VAR])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "deltaface"


@dataclass(frozen=True)
class AnalysisConfig:
    """Every setting of the analysis pass (all of it is part of the cache key)."""

    landmarker: LandmarkerConfig = field(default_factory=LandmarkerConfig)
    cuts: CutConfig = field(default_factory=CutConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    #: Re-run the landmarker around the predicted box of a track it lost.
    recover_tracks: bool = True


@dataclass(frozen=True)
class AnalysisResult:
    """An analysis and where it came from."""

    analysis: ClipAnalysis
    cache_path: Path | None
    from_cache: bool
    seconds: float
    frames_recovered_by_track: int = 0

    @property
    def fps(self) -> float:
        return self.analysis.frame_count / self.seconds if self.seconds > 0 else float("nan")


def analysis_settings(config: AnalysisConfig, pixel_aspect: Fraction = Fraction(1)) -> dict[str, Any]:
    """The JSON-compatible settings stored in (and keying) an analysis file.

    The bundle's path is replaced by its content digest so that the same model found at another
    path keeps the cache valid, and another model invalidates it. A stream of non-square pixels
    (``pixel_aspect``, see ``tracking.aspect``) adds it: its faces were read on the picture
    resampled to square pixels.
    """
    settings = settings_dict(config)
    from tracking.bundle import load_bundle

    settings["landmarker"]["bundle_path"] = load_bundle(config.landmarker.bundle_path).sha256
    if pixel_aspect != 1:
        settings["pixel_aspect"] = f"{pixel_aspect.numerator}/{pixel_aspect.denominator}"
    return settings


def _dedupe(found: list[FaceObservation], extra: Iterable[FaceObservation | None]) -> list[FaceObservation]:
    out = list(found)
    for obs in extra:
        if obs is None:
            continue
        if out and box_iou(obs.box[None], np.stack([f.box for f in out]))[0].max() >= _DUPLICATE_IOU:
            continue
        out.append(obs)
    return out


class CutFeatures:
    """The cut detector's per-frame features (``tracking.cuts.frame_features``), computed on the
    thread that decodes the frames instead of the whole-frame landmarker's, which is the analysis
    pass's longest (at 1080p its landmarker takes 13.3 ms a frame and the features 2-3 ms more,
    while decoding takes about 4). The same function on the same frames: the cuts found are
    the same.

    ``read(frames)`` wraps the frames as they are decoded; ``take(index)`` hands a frame's
    features over once (None if they were not computed: the detector computes them itself).
    """

    def __init__(self, config: CutConfig) -> None:
        self.config = config
        self._ready: dict[int, FrameFeatures] = {}
        self._lock = threading.Lock()

    def read(self, frames: Iterable[Frame]) -> Iterator[Frame]:
        for frame in frames:
            feats = frame_features(frame.image, self.config)
            with self._lock:
                self._ready[frame.index] = feats
            yield frame

    def take(self, index: int) -> FrameFeatures | None:
        with self._lock:
            return self._ready.pop(index, None)


def _whole_frames(
    frames: Iterable[Frame], landmarker: Landmarker, cut_detector: CutDetector, video: bool,
    cut_features: Callable[[int], FrameFeatures | None] | None = None,
) -> Iterator[tuple[Frame, list[FaceObservation], list[int], bool]]:
    """The analysis pass's first half, run a few frames ahead on its own thread: per frame, the
    whole-frame landmarker's faces (``Landmarker.detect_whole``; every face in ``"image"``
    mode), the cuts the cut detector decided on it, and whether a new shot starts after it (the
    whole-frame landmarker's tracking is then reset here, before the next frame).

    MediaPipe releases the GIL, so this half and the other (the tiled search and crop re-runs,
    on the caller's thread) use both cores. Each half keeps its own state and sees the frames in
    order, so the result is that of running them one after the other.
    """
    cuts: list[int] = []
    for frame in frames:
        faces = landmarker.detect_whole(frame) if video else landmarker.detect(frame)
        feats = cut_features(frame.index) if cut_features is not None else None
        new_cuts = [d.frame_index for d in cut_detector.push(frame, feats) if d.is_cut]
        cuts.extend(new_cuts)
        new_shot = bool(cuts) and cuts[-1] == frame.index - 1
        if new_shot and video:  # new shot: MediaPipe's tracking starts over
            landmarker.reset_whole()
        elif new_shot:  # "image" mode runs the search here too: its state starts over as well
            landmarker.reset()
        yield frame, faces, new_cuts, new_shot


class _SquareFrames:
    """Frames resampled to square pixels as they are read (on the thread that reads them), and
    the :class:`SquarePixels` that maps faces found on them back (set by the first frame)."""

    def __init__(self, frames: Iterable[Frame], pixel_aspect: Fraction) -> None:
        self.frames, self.pixel_aspect = frames, pixel_aspect
        self.square: SquarePixels | None = None

    def __iter__(self) -> Iterator[Frame]:
        for frame in self.frames:
            if self.square is None:
                self.square = SquarePixels(frame.width, self.pixel_aspect)
            yield self.square.frame(frame)


def analyze_frames(
    frames: Iterable[Frame],
    config: AnalysisConfig,
    *,
    input_hash: str = "",
    time_base: Fraction | None = None,
    progress: ProgressCallback | None = None,
    total: int | None = None,
    pixel_aspect: Fraction = Fraction(1),
    cut_features: Callable[[int], FrameFeatures | None] | None = None,
) -> tuple[ClipAnalysis, int]:
    """Analyse frames given in presentation order.

    Args:
        frames: the clip's frames (index 0, 1, ... in order).
        config: analysis settings.
        pixel_aspect: the stream's sample aspect ratio: when it is not 1 the landmarker reads each
            frame resampled to square pixels, and the faces come back in the stored frame's
            pixels (``tracking.aspect``).
        input_hash: content hash of the input, recorded in the analysis.
        time_base: the stream's time base, recorded in the analysis.
        progress: optional callback after each frame.
        total: number of frames, for progress only.
        cut_features: the cut detector's features of a frame by index, when computed as the
            frames were read (:class:`CutFeatures`; only for square pixels: the detector sees the
            frames the landmarker reads).

    Returns:
        The analysis, and how many faces were found only by re-running around a track.
    """
    settings = analysis_settings(config, pixel_aspect)
    observations: list[list[FaceObservation]] = []
    stream_times: list[float] = []  # as the stream has them
    last_t: float | None = None  # the previous frame's time as the follower saw it (increasing)
    pts: list[int] = []
    has_pts = True
    cuts: list[int] = []
    recovered = 0
    cut_detector = CutDetector(config.cuts)
    video = config.landmarker.running_mode == "video"
    # Follows faces during the pass only to predict where a lost face should be; the finished
    # tracks are built afterwards from all observations (build_tracks).
    follower = Associator(config.tracking.association)
    frames = iter(frames)
    first = next(frames, None)
    depth = frames_ahead(first.image.nbytes) if first is not None else LANDMARKER_AHEAD_FRAMES[0]
    squared = _SquareFrames(itertools.chain([] if first is None else [first], frames), pixel_aspect)
    with Landmarker(config.landmarker) as landmarker, \
            Prefetch(_whole_frames(squared, landmarker, cut_detector, video,
                                   cut_features if pixel_aspect == 1 else None), depth=depth,
                     name="deltaface-landmarker") as ahead:
        for frame, found, new_cuts, new_shot in ahead:
            t = frame.time if frame.pts is not None else frame.index / 25.0
            stream_times.append(t)
            if last_t is not None and t <= last_t:  # a repeated pts: spread out after the pass
                t = last_t + REPEATED_TIME_STEP_S
            if video:
                found = found + landmarker.search_missed(frame, found)
            if config.recover_tracks:
                _, boxes = follower.boxes_to_recover(t, found)
                if len(boxes):
                    more = _dedupe(found, landmarker.detect_in_regions(frame, boxes))
                    recovered += len(more) - len(found)
                    found = more
            cuts.extend(new_cuts)
            if new_shot:  # the whole-frame landmarker was reset on its thread at the same point
                follower.reset()
                if video:
                    landmarker.reset_search()
            follower.push(FrameFaces(frame.index, t, tuple(found)))  # in the landmarker's pixels
            assert squared.square is not None  # set when this frame was read
            observations.append([squared.square.observation(f) for f in found])
            last_t = t
            if frame.pts is None:
                has_pts = False
            else:
                pts.append(frame.pts)
            if progress is not None:
                progress(len(observations), total)
        cuts.extend(d.frame_index for d in cut_detector.flush() if d.is_cut)
    frame_times = spread_repeated_times(np.asarray(stream_times, dtype=np.float64))
    tracks = build_tracks(observations, frame_times, cuts, config.tracking)
    analysis = ClipAnalysis(
        input_hash=input_hash,
        settings=settings,
        settings_hash=settings_digest(settings),
        frame_count=len(observations),
        frame_times=frame_times,
        frame_pts=np.asarray(pts, dtype=np.int64) if has_pts else None,
        time_base=None if time_base is None else f"{time_base.numerator}/{time_base.denominator}",
        cut_frames=np.asarray(sorted(cuts), dtype=np.int64),
        tracks=tracks,
    )
    return analysis, recovered


def run_analysis(
    input_path: Path,
    config: AnalysisConfig | None = None,
    *,
    cache_dir: Path | None = None,
    use_cache: bool = True,
    allow_truncated: bool = False,
    progress: ProgressCallback | None = None,
) -> AnalysisResult:
    """Analyse ``input_path``, or load the cached analysis made with the same file and settings.

    Args:
        input_path: the video or image-sequence folder (opened read-only).
        config: analysis settings (defaults when None).
        cache_dir: where analysis files live (default :func:`default_cache_dir`).
        use_cache: read a matching cached analysis if present (it is always written).
        allow_truncated: analyse the frames that decode from a truncated input.
        progress: optional callback after each frame.

    Raises:
        InputError: the input is missing, not a video, or truncated (without allow_truncated).
        ModelLoadError: the landmarker bundle is missing or corrupt.
    """
    started = time.perf_counter()
    config = config or AnalysisConfig()
    cache_root = cache_dir or default_cache_dir()
    with VideoReader(input_path, allow_truncated=allow_truncated) as reader:
        info = reader.info
        digest = content_hash(input_path) if not info.is_image_sequence else _folder_hash(reader)
        settings = analysis_settings(config, info.sample_aspect_ratio)
        cache_path = cache_file(cache_root, input_path, digest, settings)
        if use_cache and cache_path.exists():
            try:
                cached = load_analysis(cache_path, input_hash=digest, settings=settings)
                return AnalysisResult(cached, cache_path, True, time.perf_counter() - started)
            except DeltafaceError:
                pass  # stale or damaged cache: analyse again and replace it
        keep_freed_memory()  # per-frame buffers reused, not mapped and faulted in again (plugin/heap.py)
        square = info.sample_aspect_ratio == 1
        features = CutFeatures(config.cuts)
        # decode on a worker thread, beside the landmarker (and the cut features with it)
        with Prefetch(features.read(reader) if square else reader) as frames:
            analysis, recovered = analyze_frames(
                frames, config, input_hash=digest, time_base=info.time_base, progress=progress,
                total=info.num_frames, pixel_aspect=info.sample_aspect_ratio,
                cut_features=features.take if square else None,
            )
    cache_written: Path | None = cache_path
    try:
        cache_path.parent.mkdir(parents=True, exist_ok=True)
        save_analysis(analysis, cache_path)
    except OSError:
        cache_written = None  # an unwritable cache only costs a re-analysis next time
    return AnalysisResult(analysis, cache_written, False, time.perf_counter() - started, recovered)


def cache_file(cache_root: Path, input_path: Path, digest: str, settings: dict[str, Any]) -> Path:
    """The analysis file for an input with content ``digest`` analysed with ``settings``."""
    stem = "".join(c if c.isalnum() or c in "-_" else "_" for c in Path(input_path).name)[:40]
    return cache_root / f"{stem}.{digest[:20]}.{settings_digest(settings)[:12]}.analysis.npz"


def _folder_hash(reader: VideoReader) -> str:
    import hashlib

    h = hashlib.sha256()
    for stem in reader.stems:
        h.update(stem.encode() + b"\0")
    stems = set(reader.stems)
    for path in sorted(Path(reader.path).iterdir()):
        if path.is_file() and path.stem in stems:
            h.update(content_hash(path).encode())
    return h.hexdigest()


def _runs(indices: np.ndarray) -> list[list[int]]:
    """Inclusive ``[start, end]`` runs of consecutive integers in sorted ``indices``."""
    if indices.size == 0:
        return []
    breaks = np.flatnonzero(np.diff(indices) != 1)
    starts = np.concatenate([[indices[0]], indices[breaks + 1]])
    ends = np.concatenate([indices[breaks], [indices[-1]]])
    return [[int(a), int(b)] for a, b in zip(starts, ends, strict=True)]


def summarize(analysis: ClipAnalysis) -> dict[str, Any]:
    """Per-track figures for people and scripts: coverage, yaw range, gaps, bridged frames.

    ``gaps`` are the frame ranges inside a track's span where it has no observation (the face
    was lost for longer than the bridging limit, or the track resumed after a cut); ``bridged``
    are frames filled by interpolation.
    """
    from tracking.analysis import SOURCE_CODES
    from tracking.observation import Source

    tracks = []
    for tr in analysis.tracks:
        fi = tr.frame_indices
        span = np.arange(int(fi[0]), int(fi[-1]) + 1)
        missing = np.setdiff1d(span, fi)
        bridged = fi[tr.sources == SOURCE_CODES[Source.BRIDGED]]
        recovered = int((tr.sources == SOURCE_CODES[Source.RECOVERED]).sum())
        yaw = tr.angles[:, 0]
        tracks.append({
            "id": tr.track_id,
            "frames": int(fi.size),
            "first_frame": int(fi[0]),
            "last_frame": int(fi[-1]),
            "covered": _runs(fi),
            "gaps": _runs(missing),
            "bridged": _runs(bridged),
            "recovered_frames": recovered,
            "segments": int(np.unique(tr.segment_ids).size),
            "yaw_range_deg": [round(float(yaw.min()), 1), round(float(yaw.max()), 1)],
            "pitch_range_deg": [round(float(tr.angles[:, 1].min()), 1), round(float(tr.angles[:, 1].max()), 1)],
            "mean_confidence": round(float(tr.confidence.mean()), 3),
        })
    with_face = set()
    for tr in analysis.tracks:
        with_face.update(int(i) for i in tr.frame_indices)
    return {
        "frames": analysis.frame_count,
        "frames_with_a_track": len(with_face),
        "cuts": [int(c) for c in analysis.cut_frames],
        "tracks": tracks,
    }
