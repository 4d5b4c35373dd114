"""Landmark smoothing in bounded memory gives the whole-segment result (issue #7).

``tracking.smoothing.smooth_landmarks`` fits the rigid part a block of frames at a time and smooths
the residual in windows of frames and blocks of landmarks. Here it is compared with the
whole-segment computation written out plainly (every array over the whole segment in float64, as
the module did before), on series long enough for many windows (the block sizes are shrunk so
that a short series has many), at constant and variable frame rates, for each filter kind; and
its traced working memory is checked to stay flat when the segment doubles.
"""

from __future__ import annotations

import tracemalloc
from dataclasses import replace

import numpy as np
import pytest

from tests.tracking import synthetic_faces as sf
from tracking import smoothing
from tracking.filters import ChannelSmoothing, Method, noise_sigma, smooth_series
from tracking.observation import NUM_MESH_LANDMARKS
from tracking.smoothing import SmoothingConfig, smooth_landmarks, smooth_segment

#: Largest difference allowed between the windowed and the whole-segment smoothing (pixels, on a
#: face 90 px between the eyes). Both compute the same sums in the same order, and came out
#: bit-identical here; the tolerance only leaves room for a BLAS or numpy that orders them
#: otherwise, far below float32 storage (6e-5 px at 1000 px).
WINDOWED_TOL_PX = 1e-9
#: Working memory (traced peak less the result) may grow by at most this much when the segment
#: grows from 300 to 1200 frames (bytes): about 0.6 MB here, where the whole-segment version
#: grew by about 80 MB (90 kB a frame).
FLAT_SLACK_BYTES = 2_000_000
FPS = 25.0
IOD_PX = 90.0


def _reference_landmarks(times: np.ndarray, landmarks: np.ndarray, config: SmoothingConfig) -> np.ndarray:
    """The whole-segment smoothing, every step on the whole ``(N, 478, 3)`` float64 array."""
    lm = np.asarray(landmarks, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    n = lm.shape[0]
    right = (lm[:, 33, :2] + lm[:, 133, :2]) / 2.0
    left = (lm[:, 362, :2] + lm[:, 263, :2]) / 2.0
    unit = max(float(np.median(np.linalg.norm(left - right, axis=1))), 1e-6)
    x = lm / unit
    mesh = slice(0, NUM_MESH_LANDMARKS)
    ref = np.median(x, axis=0)
    for _ in range(2):
        cen = x[:, mesh].mean(axis=1)
        ref_c = ref[mesh].mean(axis=0)
        a = ref[mesh, :2] - ref_c[:2]
        b = x[:, mesh, :2] - cen[:, None, :2]
        sxx = np.einsum("kj,nkj->n", a, b)
        sxy = np.einsum("k,nk->n", a[:, 0], b[..., 1]) - np.einsum("k,nk->n", a[:, 1], b[..., 0])
        angle = np.unwrap(np.arctan2(sxy, sxx))
        scale = np.maximum(np.hypot(sxx, sxy) / max(float((a**2).sum()), 1e-12), 1e-9)
        cos, sin = np.cos(angle), np.sin(angle)
        d = (x - cen[:, None, :]) / scale[:, None, None]
        local = np.stack([cos[:, None] * d[..., 0] + sin[:, None] * d[..., 1],
                          -sin[:, None] * d[..., 0] + cos[:, None] * d[..., 1], d[..., 2]], axis=-1)
        ref = local.mean(axis=0) + ref_c
    params = np.stack([cen[:, 0], cen[:, 1], angle, np.log(scale), cen[:, 2]], axis=1)
    residual = local + ref_c - ref
    params_s = smooth_series(t, params, config.rigid, vector_axis=1)
    nbrs = None
    if config.evidence_neighbours > 1:
        layout = np.median(lm, axis=0)[:, :2]
        dist = np.linalg.norm(layout[:, None] - layout[None], axis=2)
        nbrs = np.argsort(dist, axis=1, kind="stable")[:, :config.evidence_neighbours]
    win = smoothing._NOISE_WINDOW
    starts = np.linspace(0, max(n - win, 0), num=max(1, min(4, n // win))).astype(int)
    sigma = np.median([noise_sigma(t[s:s + win], residual[s:s + win]) for s in starts], axis=0)
    sigma = smoothing._shrunk_sigma(sigma, min(n, win))
    residual_s = smooth_series(t, residual, config.landmarks, sigma, 2, nbrs, 2)
    local_s = residual_s + ref - ref[mesh].mean(axis=0)
    s = np.exp(params_s[:, 3])[:, None]
    cos, sin = np.cos(params_s[:, 2])[:, None], np.sin(params_s[:, 2])[:, None]
    out = np.stack([params_s[:, 0, None] + s * (cos * local_s[..., 0] - sin * local_s[..., 1]),
                    params_s[:, 1, None] + s * (sin * local_s[..., 0] + cos * local_s[..., 1]),
                    params_s[:, 4, None] + s * local_s[..., 2]], axis=-1)
    return out * unit


def _track(times: np.ndarray, seed: int) -> np.ndarray:
    """``(N, 478, 3)`` float32 landmarks of a face that sways, turns, blinks every 4 s, with noise."""
    rng = np.random.default_rng(seed)
    shape = sf.person(seed)
    lm = np.stack([sf.pose_landmarks(shape, (640 + 60 * np.sin(0.7 * s), 360 + 20 * np.sin(0.3 * s)), IOD_PX,
                                     yaw=12 * np.sin(1.3 * s), roll=4 * np.sin(0.5 * s),
                                     blink=float((s % 4.0) < 0.12)) for s in times])
    lm += rng.normal(0, 0.8, (len(times), 1, 3)) + rng.normal(0, 0.4, lm.shape)
    return lm.astype(np.float32)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks and windows a few times smaller than the defaults, so 240 frames make many."""
    for name, value in (("_WINDOW", 40), ("_FIT_FRAMES", 37), ("_LANDMARK_BLOCK", 41), ("_MEDIAN_BLOCK", 7),
                        ("_NOISE_WINDOW", 150)):
        monkeypatch.setattr(smoothing, name, value)


def _times(n: int, vfr: bool) -> np.ndarray:
    if not vfr:
        return np.arange(n) / FPS
    steps = np.random.default_rng(7).choice([1 / 30, 1 / 25, 1 / 24, 2 / 25], size=n)  # dropped frames too
    return np.concatenate([[0.0], np.cumsum(steps[1:])])


CONFIGS = {
    "default": SmoothingConfig(),
    "pooled_evidence": SmoothingConfig(evidence_neighbours=4),
    "local_poly": SmoothingConfig(landmarks=ChannelSmoothing(method=Method.LOCAL_POLY, sigma_s=0.5),
                                  rigid=ChannelSmoothing(method=Method.LOCAL_POLY, sigma_s=0.08)),
    "rts": replace(SmoothingConfig(), landmarks=ChannelSmoothing(method=Method.RTS)),
}


@pytest.mark.usefixtures("small_blocks")
@pytest.mark.parametrize(("name", "vfr"), [("default", False), ("default", True), ("pooled_evidence", False),
                                           ("local_poly", True), ("rts", False)])
def test_windowed_smoothing_equals_whole_segment(name: str, vfr: bool) -> None:
    times = _times(240, vfr)
    raw = _track(times, seed=3)
    config = CONFIGS[name]
    assert len(smoothing._windows(240, 20)) >= 4  # the windowed path is really taken
    got = smooth_landmarks(times, raw, config)
    want = _reference_landmarks(times, raw, config)
    assert np.abs(got - want).max() <= WINDOWED_TOL_PX
    # and it smooths: the result is not the input
    assert np.abs(got - raw).max() > 0.1


@pytest.mark.slow
def test_default_blocks_equal_whole_segment_on_a_long_segment() -> None:
    times = _times(1300, vfr=False)  # three windows of the default size
    raw = _track(times, seed=5)
    got = smooth_landmarks(times, raw, SmoothingConfig())
    assert np.abs(got - _reference_landmarks(times, raw, SmoothingConfig())).max() <= WINDOWED_TOL_PX


def test_float32_output_is_the_rounded_float64_one() -> None:
    times = _times(200, vfr=False)
    raw = _track(times, seed=9)
    out = np.zeros(raw.shape, np.float32)
    got = smooth_landmarks(times, raw, SmoothingConfig(), out=out)
    assert got is out
    assert np.array_equal(out, smooth_landmarks(times, raw, SmoothingConfig()).astype(np.float32))


@pytest.mark.parametrize("n", [0, 1, 5, 700, 1301])
def test_windows_tile_the_segment(n: int) -> None:
    for context in (None, 0, 11, 66):
        windows = smoothing._windows(n, context)
        kept = np.concatenate([np.arange(start, stop) for _, start, stop, _ in windows])
        assert np.array_equal(kept, np.arange(n))
        for lo, start, stop, hi in windows:
            assert 0 <= lo <= start <= stop <= hi <= n
            assert context is None or ((start - lo >= context or lo == 0) and (hi - stop >= context or hi == n))


def _working_bytes(n: int) -> int:
    times = _times(n, vfr=False)
    raw = _track(times, seed=1)
    bs = np.full((n, 52), 0.2, np.float32)
    tf = np.repeat(np.eye(4, dtype=np.float32)[None], n, 0)
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        seg = smooth_segment(times, raw, bs, tf, SmoothingConfig())
        peak = tracemalloc.get_traced_memory()[1] - base
    finally:
        tracemalloc.stop()
    kept = seg.landmarks.nbytes + seg.blendshapes.nbytes + seg.transforms.nbytes + seg.angles.nbytes
    return peak - kept


def test_working_memory_is_flat_in_segment_length() -> None:
    short, long = _working_bytes(300), _working_bytes(1200)
    assert long - short <= FLAT_SLACK_BYTES, (short, long)
