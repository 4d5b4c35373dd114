"""The swap repair's closed loop: the plan grown by the change the warp fell short of.

The warp under-achieves a planned landmark change (brows, lids and lip corners land short of the
target by a third to a half, bench/restore.py), so ``plugin.restore`` renders the planned frames,
re-detects the face in them, and adds the shortfall to the plan (:func:`loop_correction`), a few
rounds, capped, smoothed over the mesh and over time (:func:`smooth_correction`).

Pure maths: no I/O.
"""

from __future__ import annotations

import functools

import numpy as np
from numpy.typing import NDArray
from scipy import sparse
from scipy.ndimage import gaussian_filter1d

from synthesis.uvmap import triangles


def smooth_runs(x: NDArray[np.float64], frames: NDArray[np.int64], sigma: float) -> NDArray[np.float64]:
    """Gaussian over rows, separately on each run of consecutive frames."""
    if sigma <= 0 or len(x) < 2:
        return x
    out = x.copy()
    breaks = np.flatnonzero(np.diff(frames) != 1) + 1
    for seg in np.split(np.arange(len(x)), breaks):
        if len(seg) > 1:
            out[seg] = gaussian_filter1d(x[seg], sigma, axis=0, mode="nearest")
    return out


@functools.lru_cache(maxsize=1)
def _mesh_average() -> sparse.csr_matrix:
    """``(478, 478)`` row-stochastic: each mesh point's mean with its mesh neighbours; each iris
    point's mean over its iris (an iris moves as one)."""
    n = 478
    rows, cols = list(range(n)), list(range(n))
    for a, b, c in triangles().tolist():
        rows += [a, a, b, b, c, c]
        cols += [b, c, a, c, a, b]
    for iris in (range(468, 473), range(473, 478)):
        for i in iris:
            rows += list(iris)
            cols += [i] * 5
    m = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    m.data[:] = 1.0  # duplicates (an edge in two triangles) counted once
    m.sum_duplicates()
    m.data[:] = 1.0
    return sparse.csr_matrix(m.multiply(1.0 / m.sum(axis=1)))


def mesh_smooth(values: NDArray[np.floating], rounds: int) -> NDArray[np.float64]:
    """``(478, D)`` values averaged over mesh neighbours ``rounds`` times (irises over each iris)."""
    out = np.asarray(values, np.float64)
    m = _mesh_average()
    for _ in range(rounds):
        out = m @ out
    return out


def loop_correction(planned_change: NDArray[np.floating], achieved_change: NDArray[np.floating],
                    correction: NDArray[np.floating], iod: float, gain: float, max_iod: float,
                    smooth_rounds: int = 0, valid: NDArray[np.bool_] | None = None) -> NDArray[np.float64]:
    """One closed-loop round for one frame: the correction grown by the change still missing.

    The shortfall is averaged over mesh neighbours ``smooth_rounds`` times first
    (:func:`mesh_smooth`): the detector re-reads a face as a whole, so a single point's
    shortfall is mostly its noise, and pushing it alone moves texture the detector does not
    follow (on two real frames, an unsmoothed loop left the moved points' shortfall worse than
    the open-loop plan's).

    Args:
        planned_change: ``(478, 3)`` pixels: the open-loop plan's ``after - before``.
        achieved_change: ``(478, 3)`` pixels: the face detected in the rendered frame minus the
            face detected (the same way) in the input frame.
        correction: ``(478, 3)`` pixels already added to the plan's ``after`` (zeros at first).
        iod: the face's inter-ocular distance, pixels.
        gain: fraction of the shortfall added.
        max_iod: the correction's largest length per landmark, in ``iod``.
        smooth_rounds: see above.
        valid: ``(478,)`` bool: the points whose shortfall the warp can close (None: all). Elsewhere
            (a point outside the picture, or where the warp fades at its edge) the shortfall is
            unreachable and the detector's reading of it made up: it counts as 0 before the
            smoothing and the correction there does not grow (a loop that kept adding it dragged
            the visible half of a face cut by the border along).

    Returns:
        ``(478, 3)`` float64 new correction: x and y only (z stays 0: the landmarker's depth is
        not what the warp moves), each landmark's vector clamped to ``max_iod * iod``.
    """
    short = np.asarray(planned_change, np.float64) - np.asarray(achieved_change, np.float64)
    if valid is not None:
        short = short * np.asarray(valid, bool)[:, None]
    short = mesh_smooth(short, smooth_rounds)
    if valid is not None:
        short = short * np.asarray(valid, bool)[:, None]
    out = np.asarray(correction, np.float64).copy()
    out[:, :2] += gain * short[:, :2]
    out[:, 2] = 0.0
    cap = max_iod * float(iod)
    n = np.linalg.norm(out[:, :2], axis=1, keepdims=True)
    out[:, :2] *= np.minimum(1.0, cap / np.maximum(n, 1e-12))
    return out


def smooth_correction(correction: NDArray[np.floating], frames: NDArray[np.integer], weights: NDArray[np.floating],
                      sigma: float) -> NDArray[np.float64]:
    """The loop's per-frame corrections, smoothed over time and faded with the restore weight.

    Each frame's correction carries the detector's noise; a Gaussian of ``sigma`` frames over each
    run of consecutive frames removes its flicker, and the weight (0 to 1, the ramps) fades it out
    where the plan itself fades.

    Args:
        correction: ``(M, 478, 3)`` pixels per planned frame.
        frames: ``(M,)`` increasing frame indices.
        weights: ``(M,)`` the plan's restore weight.
        sigma: Gaussian sigma in frames (0: no smoothing).
    """
    c = np.asarray(correction, np.float64)
    flat = smooth_runs(c.reshape(len(c), -1), np.asarray(frames, np.int64), sigma).reshape(c.shape)
    return flat * np.asarray(weights, np.float64)[:, None, None]
