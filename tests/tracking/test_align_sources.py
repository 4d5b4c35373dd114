"""tracking.analysis.align_sources: the two landmark sources of one face kept on one path."""

from __future__ import annotations

import numpy as np

from tracking.analysis import SOURCE_CODES, align_sources
from tracking.geometry import canonical_mesh
from tracking.observation import Source

L, R, B = (SOURCE_CODES[s] for s in (Source.LANDMARKER, Source.RECOVERED, Source.BRIDGED))


def _path(n: int) -> np.ndarray:
    """(n, 478, 3) a face drifting right and growing slowly (one source's true path)."""
    v = canonical_mesh().vertices[:468].astype(np.float64)
    face = np.concatenate([v, np.repeat(v[[1]], 10, axis=0)])
    out = np.empty((n, 478, 3))
    for i in range(n):
        s = 10.0 * (1.0 + 0.002 * i)
        out[i, :, 0] = 300 + 0.8 * i + s * face[:, 0]
        out[i, :, 1] = 250 - s * face[:, 1]
        out[i, :, 2] = -s * face[:, 2]
    return out


def _biased(lm: np.ndarray, rows: np.ndarray, scale: float, shift: np.ndarray) -> np.ndarray:
    out = lm.copy()
    c = lm[rows, :468, :2].mean(axis=1, keepdims=True)
    out[rows, :, :2] = c + shift + (lm[rows, :, :2] - c) * scale
    out[rows, :, 2] *= scale
    return out


def _size_steps(lm: np.ndarray) -> np.ndarray:
    p = lm[:, :468, :2]
    size = np.sqrt(((p - p.mean(axis=1, keepdims=True)) ** 2).sum(axis=2).mean(axis=1))
    return np.abs(np.diff(np.log(size)))


def test_runs_of_the_rarer_source_are_brought_onto_the_other_path() -> None:
    n = 40
    truth = _path(n)
    src = np.full(n, L)
    runs = [np.arange(8, 12), np.arange(20, 23), np.arange(30, 31)]
    for r in runs:
        src[r] = R
    # the recovery reads this face 8 % larger and 2 px lower, drifting to 5 % by the end
    lm = truth.copy()
    for r in runs:
        lm = _biased(lm, r, 1.08 - 0.03 * r[0] / n, np.array([0.0, 2.0]))
    before = _size_steps(lm).max()
    work = lm.astype(np.float32)
    moved = align_sources(work, src, np.arange(n))
    assert moved == sum(r.size for r in runs)
    assert before > 0.05
    assert _size_steps(work).max() < 0.01  # the path's own growth is 0.002 a frame
    assert np.abs(work - truth).max() < 0.5  # pixels, on a face about 150 px wide
    assert np.array_equal(work[src == L], lm[src == L].astype(np.float32))  # the other source is untouched


def test_agreeing_sources_single_sources_and_bridged_frames_are_left_alone() -> None:
    n = 30
    lm = _path(n).astype(np.float32)
    src = np.full(n, L)
    src[10:14] = R
    work = lm.copy()
    assert align_sources(work, src, np.arange(n)) == 0 and np.array_equal(work, lm)
    assert align_sources(work, np.full(n, R), np.arange(n)) == 0
    src[20:23] = B
    biased = _biased(lm, np.arange(20, 23), 1.1, np.zeros(2)).astype(np.float32)
    work = biased.copy()
    align_sources(work, src, np.arange(n))
    assert np.array_equal(work[20:23], biased[20:23])  # bridged frames are not a source
