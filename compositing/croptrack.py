"""Face crops that follow a track smoothly: one crop size per track, zero-phase smoothed motion.

A crop that jumps with every landmark wobble resamples the face differently in each frame, which
shows as shimmer after warp-back. The crop's centre and log-scale are therefore smoothed over the
whole track with a Gaussian in time (zero-phase: no lag), and the crop size ``S`` is fixed per
track so that crops of neighbouring frames sample the face alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d

from compositing.crop import (
    AUTO_SIZE_MAX,
    AUTO_SIZE_MIN,
    AUTO_SIZE_STEP,
    DEFAULT_MARGIN,
    FaceCrop,
    crop_for_landmarks,
    crop_from_params,
    crop_to_params,
)


@dataclass(frozen=True)
class CropTrackConfig:
    """How crops follow a face.

    Attributes:
        margin: crop margin on each side, as a fraction of the face's extent.
        sigma_s: Gaussian sigma in seconds for smoothing crop centre and scale (0 = none).
        size: crop side in pixels, or None to choose it from the largest face in the track
            (about the frame's own resolution, clamped to [128, 1024]).
    """

    margin: float = DEFAULT_MARGIN
    sigma_s: float = 0.12
    size: int | None = None

    def __post_init__(self) -> None:
        if not self.margin >= 0:
            raise ValueError(f"crop margin must be >= 0, got {self.margin}")
        if not self.sigma_s >= 0:
            raise ValueError(f"crop sigma_s must be >= 0, got {self.sigma_s}")
        if self.size is not None and self.size < 16:
            raise ValueError(f"crop size must be >= 16, got {self.size}")


def track_crops(
    landmarks: NDArray[np.floating],
    times: NDArray[np.floating],
    frame_size: tuple[int, int],
    config: CropTrackConfig | None = None,
    segments: NDArray[np.integer] | None = None,
) -> list[FaceCrop]:
    """Smoothed, axis-aligned crops for every row of a track.

    Args:
        landmarks: ``(N, K, 2|3)`` frame pixels of the face in each of its frames (the union of
            before- and after-edit landmarks may be passed as ``K = 2 * 478`` so the crop holds both).
        times: ``(N,)`` seconds of those frames (increasing).
        frame_size: ``(height, width)``.
        config: margin, smoothing and size.
        segments: ``(N,)`` segment id of each row; smoothing never crosses a segment boundary
            (a shot cut or a long gap).

    Returns:
        N crops of one size.
    """
    config = config or CropTrackConfig()
    lm = np.asarray(landmarks, dtype=np.float64)
    n = lm.shape[0]
    if n == 0:
        return []
    raw = [crop_for_landmarks(lm[i], frame_size, out_size=AUTO_SIZE_MIN, margin=config.margin) for i in range(n)]
    params = np.stack([crop_to_params(c) for c in raw])  # (cx, cy, scale, angle) at S = 128
    side = params[:, 2] * AUTO_SIZE_MIN  # frame pixels covered by each crop
    if config.size is None:
        size = int(math.ceil(side.max() / AUTO_SIZE_STEP) * AUTO_SIZE_STEP)
        size = min(max(size, AUTO_SIZE_MIN), AUTO_SIZE_MAX)
    else:
        size = config.size
    smoothed = np.stack([params[:, 0], params[:, 1], np.log(side)], axis=1)
    seg = np.zeros(n, dtype=np.int64) if segments is None else np.asarray(segments)
    t = np.asarray(times, dtype=np.float64)
    if config.sigma_s > 0:
        for s in np.unique(seg):
            rows = np.flatnonzero(seg == s)
            if rows.size < 3:
                continue
            dt = float(np.median(np.diff(t[rows]))) if rows.size > 1 else 1.0
            sigma = config.sigma_s / max(dt, 1e-6)
            smoothed[rows] = gaussian_filter1d(smoothed[rows], sigma, axis=0, mode="nearest")
    # The smoothed crop must still hold the face: grow it where smoothing made it too small or
    # moved it off the face (fast motion), rather than cutting the face.
    out = []
    for i in range(n):
        cx, cy, log_side = smoothed[i]
        need = _needed_side(lm[i, :, :2], cx, cy, config.margin)
        sd = max(math.exp(log_side), need)
        out.append(crop_from_params((cx, cy, sd / size, 0.0), size, frame_size))
    return out


def _needed_side(points: NDArray[np.float64], cx: float, cy: float, margin: float) -> float:
    """Side of the axis-aligned square centred at (cx, cy) holding ``points`` with ``margin``."""
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent = max(float(np.max(hi - lo)), 1.0)
    half = max(abs(hi[0] - cx), abs(lo[0] - cx), abs(hi[1] - cy), abs(lo[1] - cy))
    return 2.0 * (half + margin * extent)


__all__ = ["CropTrackConfig", "track_crops", "FaceCrop"]
