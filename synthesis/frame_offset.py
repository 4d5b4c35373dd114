"""Does the swap show the plate's frames under the same numbers? (a check before restoring)

Restore compares the plate and the swap frame by frame. A swap exported a frame early or late
(a trimmed head, an extra frame from an editor's handle) with the same frame count passes every
other check, and then every fast change of expression or head motion reads as divergence and is
"restored" one frame off. The swap model changes the face, not where the head goes: the head's
path in the picture is the swap's most faithful copy of the plate. So the lag is read from the
face's motion: the frame-to-frame shift of each track's mesh centroid, compared at lags of up to
:data:`MAX_LAG` frames.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from synthesis.regions import inter_ocular

#: Largest lag (frames, either way) looked for.
MAX_LAG = 5
#: A lag is reported when its motion mismatch is at most this fraction of the mismatch at lag 0 ...
CLEARER_BY = 0.5
#: ... and the mismatch at lag 0 is at least this (inter-ocular distances per frame). The ratio
#: carries the test: landmark noise, and a swap's own, add to every lag alike, so on a still head
#: (or one moving at a steady speed, whose path is the same at every lag) no lag is clearly
#: better. On the LivePortrait clip, whose head drifts by 0.4 px a frame, a swap one frame early
#: reads 0.0025 at lag 0 and 0.0002 at its lag; two frames late, 0.0037 and 0.0005.
MIN_MISMATCH_IOD = 0.001
#: Fewest frame pairs compared at a lag.
MIN_PAIRS = 8


@dataclass(frozen=True)
class Offset:
    """The lag that best lines the swap's head motion up with the plate's.

    Attributes:
        lag: frames: the swap's frame ``f + lag`` shows the plate's frame ``f`` (0: aligned).
        mismatch: RMS difference of the two paths' frame-to-frame motion at ``lag``
            (inter-ocular distances per frame).
        mismatch_at_zero: the same at lag 0.
        suspect: the lag is not 0 and clearly better than 0 (:data:`CLEARER_BY`,
            :data:`MIN_MISMATCH_IOD`).
    """

    lag: int
    mismatch: float
    mismatch_at_zero: float
    suspect: bool


def _motion(frames: NDArray[np.integer], landmarks: NDArray[np.floating]) -> dict[int, NDArray[np.float64]]:
    """Frame ``f`` -> the mesh centroid's shift from ``f`` to ``f + 1`` (both present)."""
    centre = np.asarray(landmarks, np.float64)[:, :468, :2].mean(axis=1)
    fi = np.asarray(frames, np.int64)
    step = np.flatnonzero(np.diff(fi) == 1)
    return {int(fi[i]): centre[i + 1] - centre[i] for i in step}


def frame_offset(plate_frames: NDArray[np.integer], plate_landmarks: NDArray[np.floating],
                 swap_frames: NDArray[np.integer], swap_landmarks: NDArray[np.floating],
                 max_lag: int = MAX_LAG) -> Offset | None:
    """The lag between a plate track and the swap track paired with it (see the module doc).

    Args:
        plate_frames, swap_frames: ``(N,)`` / ``(M,)`` increasing frame indices.
        plate_landmarks, swap_landmarks: ``(N, 478, 3)`` / ``(M, 478, 3)`` pixels.
        max_lag: lags ``-max_lag .. max_lag`` are tried.

    Returns:
        The best lag, or None when no lag has :data:`MIN_PAIRS` frames to compare.
    """
    pm = _motion(plate_frames, plate_landmarks)
    sm = _motion(swap_frames, swap_landmarks)
    iod = float(np.median([inter_ocular(x) for x in np.asarray(plate_landmarks)[:: max(1, len(plate_landmarks) // 50)]]))
    if not pm or not sm or iod <= 0:
        return None
    scores: dict[int, float] = {}
    for lag in range(-max_lag, max_lag + 1):
        d = [pm[f] - sm[f + lag] for f in pm if f + lag in sm]
        if len(d) >= MIN_PAIRS:
            scores[lag] = float(np.sqrt(np.mean(np.sum(np.square(d), axis=1)))) / iod
    if 0 not in scores:
        return None
    best = min(scores, key=lambda k: (scores[k], abs(k)))
    suspect = best != 0 and scores[best] <= CLEARER_BY * scores[0] and scores[0] >= MIN_MISMATCH_IOD
    return Offset(best, scores[best], scores[0], suspect)


def agreed_lag(offsets: Iterable[Offset]) -> int | None:
    """The lag to restore with, from the paired faces' offsets: the clear (``suspect``) lag, when
    every face with a clear lag shows the same one and those faces outnumber the ones that read
    as lined up (lag 0 with a measurable mismatch); else None (the clips look lined up, or the
    faces disagree, while a swap's frames are shifted all together)."""
    offsets = list(offsets)
    clear = [o.lag for o in offsets if o.suspect]
    if not clear or len(set(clear)) > 1:
        return None
    aligned = sum(1 for o in offsets if o.lag == 0 and o.mismatch_at_zero >= MIN_MISMATCH_IOD)
    return clear[0] if len(clear) > aligned else None
