"""Shot-cut detection from frame content.

The score between two frames is the L1 distance of their HSV colour histograms (half the sum of
absolute differences of the normalized histograms, in [0, 1]) plus ``mad_weight`` times the mean
absolute difference of their 48x48 grey thumbnails (in [0, 1]). Frame ``t`` starts a new shot when
its score against frame ``t-1``

- is at least ``min_score`` (an absolute floor), and
- is at least ``ratio`` times the median score of the shot's recent frames (adaptive: a lively
  shot with fast motion has a high median, a static one a low median), and
- is not a flash: frame ``t+1`` must still differ from ``t-1``, and frame ``t`` from ``t-2``, by at
  least ``flash_ratio`` of the score (a flash or a one-frame glitch, and the frame after it, return
  to the old picture), and
- the shot before it is at least ``min_shot_frames`` long, and
- the picture's structure changed, not only its light: the mean absolute difference of the two
  grey thumbnails (of the picture inside any letterbox or pillarbox bars), each normalized to zero
  mean and unit standard deviation, is at least
  ``min_structure``. A flash that decays over several frames, a strobe, or a light cue (the key
  light turning magenta, the stage going dark) changes every level but leaves this near 0.

On the fixture clips (``bench/cuts.py``), scores inside shots stayed at or below 0.27 and at most
14x their recent median, while hard cuts between them (a 1.33x punch-in on the same shot and the
two halves of a split screen included) scored 0.64 to 2.4 and 25x or more; the defaults (0.35, 4x)
sit between. The floor keeps low-contrast flicker (a 14x spike of 0.16) out; the ratio keeps fast
motion out: a synthetic pan of 2% of the width a frame scores 0.17 a frame, and a cut out of it 6x.
The structure distance measured 0.78-1.1 at those joins (the punch-in lowest) and at most 0.10
inside shots, against 0.02-0.25 for light changes of a LivePortrait frame (x0.3 dark, a magenta
key, a x2.2 + 70 flash with clipped highlights: the highest); 0.45 sits between
(``tests/tracking/test_robustness_cuts.py``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.errors import ConfigError
from tracking.frame import Frame

#: Width the frame is reduced to before its histogram is taken (pixels).
_WORK_WIDTH = 160
#: A thumbnail whose standard deviation is below this (8-bit levels) is flat: no structure.
_FLAT_STD = 1.0
#: Bars (:func:`_inside_bars`): lines at most this dark and varying by at most this much (8-bit
#: levels), up to this fraction of the frame on each side (as ``compositing.support`` finds them).
_BAR_LEVEL, _BAR_RANGE, _BAR_MAX_FRACTION = 40, 16, 0.25


@dataclass(frozen=True)
class CutConfig:
    """Cut detection.

    Attributes:
        hist_bins: HSV histogram bins (hue, saturation, value).
        thumb_size: side of the grey thumbnail (pixels).
        mad_weight: weight of the thumbnail difference against the histogram distance.
        min_score: absolute floor of a cut's score.
        ratio: a cut's score over the median score of the shot's recent frames, at least.
        window: how many recent frames the median is taken over.
        flash_ratio: the distances from frame ``t-1`` to ``t+1`` and from ``t-2`` to ``t`` must be
            at least this fraction of the score, or the change is taken for a flash.
        min_shot_frames: no cut within this many frames after the previous one.
        min_structure: a cut's normalized-thumbnail distance (:func:`structure_distance`), at
            least; below it the change is taken for a change of light.
    """

    hist_bins: tuple[int, int, int] = (16, 4, 4)
    thumb_size: int = 48
    mad_weight: float = 4.0
    min_score: float = 0.35
    ratio: float = 4.0
    window: int = 24
    flash_ratio: float = 0.5
    min_shot_frames: int = 6
    min_structure: float = 0.45

    def __post_init__(self) -> None:
        if len(self.hist_bins) != 3 or min(self.hist_bins) < 1 or self.thumb_size < 4:
            raise ConfigError(f"cuts: bad histogram bins or thumbnail size: {self}")
        if min(self.mad_weight, self.min_score, self.ratio, self.flash_ratio, self.min_structure) < 0 or self.window < 1:
            raise ConfigError(f"cuts: thresholds must be >= 0 and window >= 1: {self}")
        if self.min_shot_frames < 1:
            raise ConfigError(f"cuts: min_shot_frames must be >= 1, got {self.min_shot_frames}")


@dataclass(frozen=True, eq=False)
class FrameFeatures:
    """What cut detection keeps of a frame.

    Attributes:
        hist: ``(H*S*V,)`` float32 normalized HSV histogram (sums to 1).
        thumb: ``(S, S)`` float32 grey thumbnail in [0, 1].
        grey: ``(h, w)`` uint8 the frame reduced to at most 160 pixels wide, grey.
        inner: ``(y0, y1, x0, x1)`` of ``grey`` inside any letterbox or pillarbox bars.
    """

    hist: NDArray[np.float32]
    thumb: NDArray[np.float32]
    grey: NDArray[np.uint8]
    inner: tuple[int, int, int, int]


def frame_features(image: NDArray[np.uint8], config: CutConfig | None = None) -> FrameFeatures:
    """Histogram and thumbnail of an ``(H, W, 3)`` uint8 RGB image."""
    cfg = config or CutConfig()
    h, w = image.shape[:2]
    width = min(_WORK_WIDTH, w)
    small = cv2.resize(image, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
    hist = cv2.calcHist([hsv], [0, 1, 2], None, list(cfg.hist_bins), [0, 180, 0, 256, 0, 256]).ravel()
    hist /= max(float(hist.sum()), 1.0)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
    thumb = cv2.resize(grey, (cfg.thumb_size, cfg.thumb_size), interpolation=cv2.INTER_AREA).astype(np.float32) / 255.0
    return FrameFeatures(hist.astype(np.float32), thumb, grey, _inside_bars(grey))


def _inside_bars(grey: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """``(y0, y1, x0, x1)`` of ``grey`` without letterbox or pillarbox bars: whole dark, flat rows
    (columns) at its edges, up to :data:`_BAR_MAX_FRACTION` of it on each side. Two letterboxed
    shots share their bars; the structure test must look at the pictures."""
    def lines(a: NDArray[np.uint8]) -> int:  # bar lines at the start of axis 0
        limit = int(a.shape[0] * _BAR_MAX_FRACTION)
        hi, lo = a[:limit].max(axis=1).astype(np.int16), a[:limit].min(axis=1)
        bar = (hi <= _BAR_LEVEL) & (hi - lo <= _BAR_RANGE)
        return limit if bar.all() else int(np.argmin(bar))

    h, w = grey.shape
    return lines(grey), h - lines(grey[::-1]), lines(grey.T), w - lines(grey.T[::-1])


def frame_distance(a: FrameFeatures, b: FrameFeatures, config: CutConfig | None = None) -> float:
    """Content change between two frames: histogram L1 / 2 + ``mad_weight`` x thumbnail MAD."""
    cfg = config or CutConfig()
    hist = 0.5 * float(np.abs(a.hist - b.hist).sum())
    mad = float(np.abs(a.thumb - b.thumb).mean())
    return hist + cfg.mad_weight * mad


def _pattern(grey: NDArray[np.uint8], box: tuple[int, int, int, int], size: int) -> NDArray[np.float32]:
    y0, y1, x0, x1 = box
    t = cv2.resize(grey[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA).astype(np.float32)
    std = float(t.std())
    return (t - t.mean()) / std if std > _FLAT_STD else np.zeros_like(t)


def structure_distance(a: FrameFeatures, b: FrameFeatures) -> float:
    """Change of the picture's structure, blind to its light's gain and offset: the mean absolute
    difference of the two frames' thumbnails normalized to zero mean and unit standard deviation,
    taken inside the bars of both (0 for the same picture under another light, about 1 for
    unrelated pictures; a flat frame against a textured one about 0.8)."""
    if a.grey.shape != b.grey.shape:
        return float("inf")
    box = (max(a.inner[0], b.inner[0]), min(a.inner[1], b.inner[1]),
           max(a.inner[2], b.inner[2]), min(a.inner[3], b.inner[3]))
    if box[1] - box[0] < 2 or box[3] - box[2] < 2:
        box = (0, a.grey.shape[0], 0, a.grey.shape[1])
    size = a.thumb.shape[0]
    return float(np.abs(_pattern(a.grey, box, size) - _pattern(b.grey, box, size)).mean())


@dataclass(frozen=True)
class CutDecision:
    """Whether a frame starts a new shot.

    Attributes:
        frame_index: the frame.
        is_cut: True when the frame is the first of a new shot (never for the clip's first frame).
        score: :func:`frame_distance` from the previous frame (0 for the first).
        baseline: median score of the shot's recent frames when the frame was judged.
    """

    frame_index: int
    is_cut: bool
    score: float
    baseline: float


class CutDetector:
    """Streaming cut detector (a :class:`tracking.stage.Stage` of Frame to CutDecision, latency 1).

    The decision for a frame needs the next frame (the flash test), so each push returns the
    decision for the previous frame; ``flush`` returns the last one.
    """

    latency = 1

    def __init__(self, config: CutConfig | None = None) -> None:
        self.config = config or CutConfig()
        self._scores: deque[float] = deque(maxlen=self.config.window)
        self._prev3: FrameFeatures | None = None  # frame t-2 (for frame t's flash test)
        self._prev2: FrameFeatures | None = None  # frame t-1
        # frame t awaiting decision: index, features, score and structure distance from t-1, score from t-2
        self._prev: tuple[int, FrameFeatures, float, float, float | None] | None = None
        self._since_cut = 0

    def _decide(self, index: int, score: float, before: float | None, after: float | None,
                structure: float) -> CutDecision:
        cfg = self.config
        baseline = float(np.median(self._scores)) if self._scores else 0.0
        cut = (
            self._prev2 is not None
            and score >= cfg.min_score
            and score >= cfg.ratio * baseline
            and self._since_cut >= cfg.min_shot_frames
            and (after is None or after >= cfg.flash_ratio * score)
            and (before is None or before >= cfg.flash_ratio * score)
            and structure >= cfg.min_structure
        )
        if cut:
            self._scores.clear()
            self._since_cut = 0
        elif self._prev2 is not None:
            self._scores.append(score)
        self._since_cut += 1
        return CutDecision(index, bool(cut), score, baseline)

    def push(self, item: Frame, features: FrameFeatures | None = None) -> list[CutDecision]:
        """Take the next frame; return the decision for the previous one (none for the first).

        ``features``: ``frame_features(item.image, config)`` when already computed (on another
        thread); computed here otherwise."""
        feats = frame_features(item.image, self.config) if features is None else features
        out: list[CutDecision] = []
        if self._prev is not None:
            index, prev_feats, score, structure, before = self._prev
            after = frame_distance(self._prev2, feats, self.config) if self._prev2 is not None else None
            out.append(self._decide(index, score, before, after, structure))
            self._prev3, self._prev2 = self._prev2, prev_feats
        score = frame_distance(self._prev2, feats, self.config) if self._prev2 is not None else 0.0
        structure = structure_distance(self._prev2, feats) if self._prev2 is not None else 0.0
        before = frame_distance(self._prev3, feats, self.config) if self._prev3 is not None else None
        self._prev = (item.index, feats, score, structure, before)
        return out

    def flush(self) -> list[CutDecision]:
        """Return the decision for the last frame pushed."""
        if self._prev is None:
            return []
        index, _, score, structure, before = self._prev
        out = [self._decide(index, score, before, None, structure)]
        self._prev = self._prev2 = self._prev3 = None
        return out

    def reset(self) -> None:
        """Forget the recent-score baseline (the held frame is still decided)."""
        self._scores.clear()


def detect_cuts(frames: Iterable[Frame], config: CutConfig | None = None) -> list[int]:
    """Indices of the frames that start a new shot (the clip's first frame excluded)."""
    det = CutDetector(config)
    decisions: list[CutDecision] = []
    for frame in frames:
        decisions.extend(det.push(frame))
    decisions.extend(det.flush())
    return [d.frame_index for d in decisions if d.is_cut]
