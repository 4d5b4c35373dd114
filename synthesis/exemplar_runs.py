"""How a choice of exemplar runs over the frames of a track (``synthesis.exemplars.choose``):
the cheapest path through the per-frame costs, cross-fades where the exemplar changes, fades in
and out for regions without discrete states (skin), and bridges into frames that need texture but
have no exemplar in their in-between state.

Rows are the edited frames of one track in order; ``segments`` gives each row a segment id, and
consecutive rows with equal ids are consecutive frames (nothing carries across segments).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray


def bridge_runs(first: NDArray[np.int64], needed: NDArray[np.bool_], segments: NDArray[np.integer],
                distance: NDArray[np.float64], reach: float) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Fade a run's exemplar into the neighbouring rows that need texture but have none.

    While an eye closes, each frame takes an exemplar in its own in-between state. When the
    exemplars hold no such state (only a closed reference still), the rows before the closed
    run have none, and the closed texture would switch on at full weight in one frame. Here the
    exemplar at each end of a run extends outward over consecutive rows without one (in the
    segment, needing texture, within ``reach`` feature units of it), at the fraction of the way
    each row's target state has come from the row beyond the gap (or from ``reach`` where there
    is none) to the exemplar's: ``(d0 - d) / d0``, never rising outward; the warp's own state is
    then already near the exemplar's where the weight is high, so what shows through is little.
    A row reached from both sides keeps the larger weight.

    Args:
        first: ``(M,)`` chosen candidate per row (-1: none).
        needed: ``(M,)`` bool: the row needs texture.
        segments: ``(M,)`` consecutive rows with equal ids are consecutive frames.
        distance: ``(M, C)`` state distance (feature units) of each candidate from each row's
            target, ``inf`` where it may not be faded in (pose too far, or a state on the wrong
            side of the target: an open eye for a closing one).
        reach: the farthest distance a candidate is faded in at (> 1).

    Returns:
        ``first`` with the faded rows' exemplar, and ``(M,)`` weights (1 on rows not faded).
    """
    m = first.shape[0]
    out, fade, best = first.copy(), np.ones(m), np.zeros(m)
    for a, b in on_runs(first >= 0, segments):
        for start, step in ((a, -1), (b - 1, 1)):
            c, gap = first[start], []
            row = start + step
            while (0 <= row < m and first[row] < 0 and needed[row] and segments[row] == segments[start]
                   and distance[row, c] <= reach):
                gap.append(row)
                row += step
            if not gap:
                continue
            beyond = 0 <= row < m and segments[row] == segments[start] and np.isfinite(distance[row, c])
            d0 = float(distance[row, c]) if beyond else reach
            w = 1.0
            for r in gap:
                w = min(w, max(d0 - float(distance[r, c]), 0.0) / d0)
                if w > best[r]:
                    best[r], out[r], fade[r] = w, c, w
    return out, fade


def smooth_in_segments(values: NDArray[np.float64], segments: NDArray[np.integer], width: int) -> NDArray[np.float64]:
    """Centred moving average over ``2 * width + 1`` rows that never reaches across a segment
    (a segment's ends average over the rows they have)."""
    out = np.empty_like(values)
    for a, b in on_runs(np.ones(values.shape[0], bool), segments):
        c = np.concatenate([[0.0], np.cumsum(values[a:b])])
        i = np.arange(b - a)
        lo, hi = np.maximum(i - width, 0), np.minimum(i + width + 1, b - a)
        out[a:b] = (c[hi] - c[lo]) / (hi - lo)
    return out


def fade_runs(first: NDArray[np.int64], need: NDArray[np.float64], segments: NDArray[np.integer],
               width: int) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """For a region without discrete states (:attr:`Region.fade`): a gap of at most ``2 * width``
    rows without an exemplar between two runs with one keeps the exemplar before it, and each run
    fades in over its first ``width`` rows and out over its last (the need is scaled by the ramp),
    so the borrowed skin never switches on or off in one frame. Rows without an exemplar keep
    their need.
    """
    first, need = first.copy(), need.copy()
    m = first.shape[0]
    k = 0
    while k < m:  # fill short gaps inside a segment
        if first[k] >= 0 or k == 0 or first[k - 1] < 0 or segments[k] != segments[k - 1]:
            k += 1
            continue
        end = k
        while end < m and first[end] < 0 and segments[end] == segments[k]:
            end += 1
        if end < m and first[end] >= 0 and segments[end] == segments[k] and end - k <= 2 * width:
            first[k:end] = first[k - 1]
        k = end
    on = first >= 0
    ramp = np.ones(m)  # rows without an exemplar keep their need (the run summary reports them)
    for a, b in on_runs(on, segments):
        i = np.arange(b - a)
        ramp[a:b] = np.minimum(np.minimum(i + 1, b - a - i) / (width + 1), 1.0)
    return first, need * ramp


def on_runs(on: NDArray[np.bool_], segments: NDArray[np.integer]) -> list[tuple[int, int]]:
    """``(start, stop)`` of the runs of True in ``on`` that stay inside one segment."""
    runs, start = [], None
    for k in range(on.shape[0] + 1):
        inside = k < on.shape[0] and on[k] and (start is None or segments[k] == segments[start])
        if start is not None and not inside:
            runs.append((start, k))
            start = None
        if k < on.shape[0] and on[k] and start is None:
            start = k
    return runs


def viterbi(cost: NDArray[np.float64], segments: NDArray[np.integer], switch: NDArray[np.float64]) -> NDArray[np.int64]:
    """Cheapest path through ``cost`` ``(M, S)``, paying ``switch[i]`` ``(M,)`` for a change at row i."""
    m, s = cost.shape
    if m == 0:
        return np.zeros(0, np.int64)
    acc = cost[0].copy()
    back = np.zeros((m, s), np.int64)
    for i in range(1, m):
        best = int(np.argmin(acc))
        pen = 0.0 if segments[i] != segments[i - 1] else float(switch[i])
        stay = acc
        move = acc[best] + pen
        back[i] = np.where(stay <= move, np.arange(s), best)
        acc = np.minimum(stay, move) + cost[i]
    path = np.zeros(m, np.int64)
    path[-1] = int(np.argmin(acc))
    for i in range(m - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def crossfade(first: NDArray[np.int64], segments: NDArray[np.integer], width: int,
               usable: NDArray[np.bool_] | None = None,
               still: NDArray[np.bool_] | None = None) -> tuple[NDArray[np.int64], NDArray[np.int64], NDArray[np.float64]]:
    """Where the choice changes from one exemplar to another inside a segment, blend the two over
    ``width`` frames ending at the change (the new one's weight ramps up to 1).

    Only rows where the incoming exemplar is ``usable`` (``(M, C)`` bool: in a state near that
    row's target) are blended: two exemplars in different states (an open and a closed eye) would
    show both at once, a ghost. A change at a row that is not ``still`` (``(M,)`` bool: the target
    state moves there) is a hard cut: the content changes at that frame anyway.
    """
    m = first.shape[0]
    out1, out2, mix = first.copy(), np.full(m, -1, np.int64), np.zeros(m)
    for k in range(1, m):
        a, b = first[k - 1], first[k]
        if a == b or a < 0 or b < 0 or segments[k] != segments[k - 1]:
            continue
        if still is not None and not still[k]:
            continue
        for j in range(width):
            row = k - width + j
            if row < 0 or first[row] != a or segments[row] != segments[k]:
                continue
            if usable is not None and not usable[row, b]:
                continue
            out1[row], out2[row], mix[row] = a, b, (j + 1) / (width + 1)
    return out1, out2, mix
