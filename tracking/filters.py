"""Time-aware 1-D smoothing filters: the candidates ``tracking.smoothing`` chooses from.

Every filter takes the samples' presentation times in seconds, so a variable-frame-rate clip is
smoothed with the same physical bandwidth as a constant-rate one, and smooths every trailing element
of an ``(N, ...)`` array independently (the adaptive filter can score elements jointly). The whole-
clip filters are symmetric in time (zero phase): a step is not delayed and a constant is returned
unchanged.

- ``local_poly``: local polynomial regression with Gaussian time weights, the time-aware form of a
  Savitzky-Golay filter.
- ``rts``: Kalman filter with a constant-velocity model and the Rauch-Tung-Striebel backward pass.
- ``one_euro``: the One-Euro filter run forward and backward, averaged.
- ``adaptive``: heavy, light and raw levels, each finer level used only where its difference from
  the coarser one is more than white noise explains (a blink, a fast turn, speech).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import maximum_filter1d

from tracking.errors import ConfigError, InputError

#: Largest number of neighbours on each side of a sample that a local fit may use.
_MAX_HALF_WINDOW = 64
#: Gaussian weights are cut off at this many standard deviations.
_TRUNCATE = 3.0


class Method(str, Enum):
    """A smoothing filter."""

    NONE = "none"
    LOCAL_POLY = "local_poly"
    RTS = "rts"
    ONE_EURO = "one_euro"
    ADAPTIVE = "adaptive"


@dataclass(frozen=True)
class ChannelSmoothing:
    """Filter and parameters for one channel; each field is used by the methods named.

    Attributes:
        method: the filter.
        sigma_s: ``local_poly``/``adaptive``: standard deviation in seconds of the (heavy) fit's
            Gaussian time weights.
        order: ``local_poly``/``adaptive``: polynomial degree of the local fits (0 to 3).
        light_sigma_samples: ``adaptive``: the light fit's sigma in sample spacings (per-sample
            noise is a per-sample matter, whatever the frame rate); 0 leaves out the light level.
        evidence_low, evidence_high: ``adaptive``: a finer-minus-coarser level difference, in
            units of its standard deviation under white noise alone, at which the finer level
            starts to be blended in and at which it is used fully.
        process_noise: ``rts``: white-acceleration variance over measurement variance, 1/s^3.
        min_cutoff_hz, beta, d_cutoff_hz: ``one_euro``: the filter's parameters; ``beta`` is in
            seconds per channel unit (inter-ocular distances, degrees, scores).
    """

    method: Method = Method.ADAPTIVE
    sigma_s: float = 0.12
    order: int = 2
    light_sigma_samples: float = 1.0
    evidence_low: float = 2.0
    evidence_high: float = 4.0
    process_noise: float = 1.0e4
    min_cutoff_hz: float = 1.0
    beta: float = 0.5
    d_cutoff_hz: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "method", Method(self.method))
        if not self.sigma_s > 0 or self.light_sigma_samples < 0:
            raise ConfigError(f"smoothing: sigma_s must be > 0 and light_sigma_samples >= 0, got {self}")
        if not 0 <= self.order <= 3:
            raise ConfigError(f"smoothing: order must be 0..3, got {self.order}")
        if not 0 <= self.evidence_low < self.evidence_high:
            raise ConfigError("smoothing: need 0 <= evidence_low < evidence_high")
        if not (self.process_noise > 0 and self.min_cutoff_hz > 0 and self.d_cutoff_hz > 0
                and self.beta >= 0):
            raise ConfigError("smoothing: rts/one_euro parameters must be positive")


def _check_times(times: NDArray[np.float64], n: int) -> NDArray[np.float64]:
    t = np.asarray(times, dtype=np.float64)
    if t.shape != (n,):
        raise InputError(f"smoothing: {t.shape[0] if t.ndim else 0} times for {n} samples")
    if n > 1 and not np.all(np.diff(t) > 0):
        bad = int(np.argmin(np.diff(t) > 0)) + 1
        raise InputError(f"smoothing: sample times must increase strictly (sample {bad})")
    return t


def _local_poly_rows(
    t: NDArray[np.float64], sigma: float | NDArray[np.float64], order: int, half: int | None = None
) -> tuple[NDArray[np.intp], NDArray[np.float64]]:
    """Weights of a local polynomial fit evaluated at each sample.

    ``sigma`` (seconds) is one value or one per sample. Returns ``idx`` and ``w``, both
    ``(N, 2*half+1)``: sample ``i`` smoothed is ``sum_k w[i, k] * y[idx[i, k]]``. Rows sum to 1
    (constants are kept exactly).
    """
    n = t.shape[0]
    sig = np.broadcast_to(np.asarray(sigma, dtype=np.float64), (n,))
    if half is None:
        dt_min = float(np.min(np.diff(t))) if n > 1 else 1.0
        half = int(np.ceil(_TRUNCATE * float(sig.max()) / dt_min))
    half = max(0, min(half, _MAX_HALF_WINDOW, n - 1))
    off = np.arange(-half, half + 1)
    raw_idx = np.arange(n)[:, None] + off[None, :]
    valid = (raw_idx >= 0) & (raw_idx < n)
    idx = np.clip(raw_idx, 0, n - 1)
    x = (t[idx] - t[:, None]) / sig[:, None]
    g = np.exp(-0.5 * x**2) * (valid & (np.abs(x) <= _TRUNCATE))
    basis = x[..., None] ** np.arange(order + 1)  # (N, M, p+1)
    gram = np.einsum("nm,nmi,nmj->nij", g, basis, basis)
    gram += 1e-9 * np.trace(gram, axis1=1, axis2=2)[:, None, None] * np.eye(order + 1)
    e0 = np.zeros((n, order + 1, 1))
    e0[:, 0, 0] = 1.0
    coef = np.linalg.solve(gram, e0)[..., 0]
    w = g * np.einsum("nmi,ni->nm", basis, coef)
    w /= w.sum(axis=1, keepdims=True)
    return idx, w


def _apply_rows(idx: NDArray[np.intp], w: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    out = np.zeros(y.shape, dtype=np.float64)
    shape = (-1,) + (1,) * (y.ndim - 1)
    for k in range(idx.shape[1]):
        out += w[:, k].reshape(shape) * y[idx[:, k]]
    return out


def _half_window(sigma_s: float, t: NDArray[np.float64], min_spacing: float | None) -> int:
    """Half-width in samples of a fit with time sigma ``sigma_s`` (uncapped; see _local_poly_rows)."""
    dt_min = float(np.min(np.diff(t))) if min_spacing is None else float(min_spacing)
    return int(np.ceil(_TRUNCATE * float(sigma_s) / dt_min))


def reach(params: ChannelSmoothing, min_spacing: float) -> int | None:
    """How far a filter looks: the smoothed sample ``i`` depends only on samples ``i - r .. i + r``.

    Args:
        params: the filter.
        min_spacing: the smallest time step of the series (seconds), as passed to
            :func:`smooth_series`.

    Returns:
        ``r`` in samples, or None for the recursive filters (``rts``, ``one_euro``), where every
        sample depends on every other.
    """
    if params.method is Method.NONE:
        return 0
    if params.method in (Method.RTS, Method.ONE_EURO):
        return None
    half = min(int(np.ceil(_TRUNCATE * float(params.sigma_s) / float(min_spacing))), _MAX_HALF_WINDOW)
    if params.method is Method.LOCAL_POLY:
        return half
    # adaptive: the blend weights are widened by one sample, and the light fit's sigma at a
    # sample uses its neighbours' times (np.gradient): one more.
    return half + 2


def local_poly_smooth(
    times: NDArray[np.float64], values: NDArray[np.floating], sigma_s: float, order: int = 2,
    min_spacing: float | None = None,
) -> NDArray[np.float64]:
    """Local polynomial regression with Gaussian time weights (time-aware Savitzky–Golay).

    Args:
        times: ``(N,)`` strictly increasing seconds.
        values: ``(N, ...)`` samples; every trailing element is smoothed independently.
        sigma_s: standard deviation of the time weights in seconds.
        order: degree of the local polynomial.
        min_spacing: smallest time step to size the fit's window by (default: that of ``times``);
            a window of a longer series passes the series' own, so that its rows equal the
            whole series' rows.

    Returns:
        ``(N, ...)`` float64, zero phase.
    """
    y = np.asarray(values, dtype=np.float64)
    t = _check_times(times, y.shape[0])
    if y.shape[0] < 2:
        return y.copy()
    idx, w = _local_poly_rows(t, sigma_s, order, _half_window(sigma_s, t, min_spacing))
    return _apply_rows(idx, w, y)


def rts_smooth(
    times: NDArray[np.float64], values: NDArray[np.floating], process_noise: float
) -> NDArray[np.float64]:
    """Constant-velocity Kalman filter and Rauch–Tung–Striebel smoother.

    The gains depend only on the time steps and ``process_noise`` (acceleration variance over
    measurement variance, 1/s^3), so they are computed once and applied to every channel.

    Args:
        times: ``(N,)`` strictly increasing seconds.
        values: ``(N, ...)`` samples.
        process_noise: larger follows the data more closely.

    Returns:
        ``(N, ...)`` float64.
    """
    y = np.asarray(values, dtype=np.float64)
    t = _check_times(times, y.shape[0])
    n = y.shape[0]
    if n < 2:
        return y.copy()
    obs = y.reshape(n, -1)
    big = 1.0e6 * (1.0 + float(np.max(np.abs(np.diff(t)))) ** -2)
    state = np.stack([obs[0], np.zeros(obs.shape[1])])  # (2, C) position, velocity
    cov = np.diag([1.0, big])
    filt = np.empty((n, 2, obs.shape[1]))
    covs_f = np.empty((n, 2, 2))
    covs_p = np.empty((n, 2, 2))
    trans = np.empty((n, 2, 2))
    for i in range(n):
        if i:
            dt = t[i] - t[i - 1]
            f = np.array([[1.0, dt], [0.0, 1.0]])
            q = process_noise * np.array([[dt**3 / 3, dt**2 / 2], [dt**2 / 2, dt]])
            state = f @ state
            cov = f @ cov @ f.T + q
            trans[i] = f
        covs_p[i] = cov
        gain = cov[:, 0] / (cov[0, 0] + 1.0)
        state = state + gain[:, None] * (obs[i] - state[0])[None, :]
        cov = cov - np.outer(gain, cov[0])
        filt[i] = state
        covs_f[i] = cov
    smooth = filt[-1]
    out = np.empty_like(obs)
    out[-1] = smooth[0]
    for i in range(n - 2, -1, -1):
        c = covs_f[i] @ trans[i + 1].T @ np.linalg.inv(covs_p[i + 1])
        smooth = filt[i] + c @ (smooth - trans[i + 1] @ filt[i])
        out[i] = smooth[0]
    return out.reshape(y.shape)


def _one_euro_pass(t: NDArray[np.float64], y: NDArray[np.float64], p: ChannelSmoothing) -> NDArray[np.float64]:
    out = np.empty_like(y)
    x = y[0].copy()
    dx = np.zeros_like(x)
    out[0] = x
    for i in range(1, t.shape[0]):
        dt = abs(t[i] - t[i - 1])
        a_d = 1.0 / (1.0 + 1.0 / (2 * np.pi * p.d_cutoff_hz * dt))
        dx = a_d * (y[i] - x) / dt + (1 - a_d) * dx
        a = 1.0 / (1.0 + 1.0 / (2 * np.pi * (p.min_cutoff_hz + p.beta * np.abs(dx)) * dt))
        x = a * y[i] + (1 - a) * x
        out[i] = x
    return out


def one_euro_smooth(
    times: NDArray[np.float64], values: NDArray[np.floating], params: ChannelSmoothing
) -> NDArray[np.float64]:
    """One-Euro filter forward and backward, averaged (its lags cancel: zero phase for steps).

    Args:
        times: ``(N,)`` strictly increasing seconds.
        values: ``(N, ...)`` samples in the units ``params.beta`` assumes.
        params: uses ``min_cutoff_hz``, ``beta``, ``d_cutoff_hz``.

    Returns:
        ``(N, ...)`` float64.
    """
    y = np.asarray(values, dtype=np.float64)
    t = _check_times(times, y.shape[0])
    if y.shape[0] < 2:
        return y.copy()
    flat = y.reshape(y.shape[0], -1)
    fwd = _one_euro_pass(t, flat, params)
    bwd = _one_euro_pass(t[::-1], flat[::-1], params)[::-1]
    return (0.5 * (fwd + bwd)).reshape(y.shape)


def noise_sigma(times: NDArray[np.float64], values: NDArray[np.floating]) -> NDArray[np.float64]:
    """Robust per-element noise standard deviation of a sampled signal.

    The residual of a narrow local quadratic fit, divided by its standard deviation under white
    noise, has its median absolute value turned into a sigma (MAD x 1.4826); intended motion that
    a quadratic follows over three samples does not count as noise.

    Args:
        times: ``(N,)`` strictly increasing seconds, N >= 4 for a meaningful result.
        values: ``(N, ...)`` samples.

    Returns:
        ``values.shape[1:]`` float64 sigmas (zeros when N < 4).
    """
    y = np.asarray(values, dtype=np.float64)
    t = _check_times(times, y.shape[0])
    n = y.shape[0]
    if n < 4:
        return np.zeros(y.shape[1:])
    idx, w = _local_poly_rows(t, float(np.median(np.diff(t))), 2, half=3)
    centre = np.zeros_like(w)
    centre[:, idx.shape[1] // 2] = 1.0
    gain = np.sqrt(((centre - w) ** 2).sum(axis=1))
    resid = (y - _apply_rows(idx, w, y)) / gain.reshape((-1,) + (1,) * (y.ndim - 1))
    return 1.4826 * np.median(np.abs(resid), axis=0)


def _evidence(
    diff: NDArray[np.float64],
    gain: NDArray[np.float64],
    sigma: NDArray[np.float64],
    params: ChannelSmoothing,
    vector_axis: int | None,
    neighbours: NDArray[np.intp] | None,
    evidence_components: int | None,
) -> NDArray[np.float64]:
    """Blend weight in [0, 1] for a fine-minus-coarse difference (see :func:`adaptive_smooth`)."""
    z = diff / (np.maximum(sigma, 1e-12) * gain.reshape((-1,) + (1,) * (diff.ndim - 1)))
    if neighbours is not None:  # coherent sum: noise adds up as sqrt(k), shared motion as k
        z = sum(z[:, neighbours[:, m]] for m in range(neighbours.shape[1])) / np.sqrt(neighbours.shape[1])
    z = np.abs(z)
    if vector_axis is not None:
        if evidence_components is not None:
            z = np.take(z, np.arange(evidence_components), axis=vector_axis)
        z = np.sqrt(np.mean(z**2, axis=vector_axis, keepdims=True))
    blend = np.clip((z - params.evidence_low) / (params.evidence_high - params.evidence_low), 0.0, 1.0)
    return maximum_filter1d(blend, size=3, axis=0, mode="nearest")


def adaptive_smooth(
    times: NDArray[np.float64],
    values: NDArray[np.floating],
    params: ChannelSmoothing,
    sigma: NDArray[np.floating] | None = None,
    vector_axis: int | None = None,
    neighbours: NDArray[np.intp] | None = None,
    evidence_components: int | None = None,
    min_spacing: float | None = None,
) -> NDArray[np.float64]:
    """Heavy fit where the signal is explained by noise, finer levels where it is not.

    Three levels: heavy (``sigma_s`` seconds: the bandwidth of intended motion), light
    (``light_sigma_samples`` sample spacings: removes per-sample noise) and raw. Each finer-minus-
    coarser difference is scored per sample against its standard deviation under white noise
    alone (``sigma`` times the norm of the weight difference); a score ``z`` gives the weight
    ``clip((z - low) / (high - low), 0, 1)``, widened by one sample on each side so that the
    switch itself adds no jitter. ``fine = light + b_raw * (raw - light)`` and the result is
    ``heavy + max(b_light, b_raw) * (fine - heavy)``: a blink (strong evidence in the highest band)
    comes out raw, talking (evidence in the middle band) comes out light, stillness heavy.
    Symmetric in time, so zero phase.

    Args:
        times: ``(N,)`` strictly increasing seconds.
        values: ``(N, ...)`` samples.
        params: ``sigma_s``, ``light_sigma_samples``, ``order``, ``evidence_low``, ``evidence_high``.
        sigma: noise sigma broadcastable to ``values.shape[1:]``; estimated with
            :func:`noise_sigma` when omitted.
        vector_axis: axis of ``values`` whose elements form one vector (a landmark's x, y, z):
            they share one score, the RMS of their normalized differences.
        neighbours: ``(K, k)`` indices along axis 1 of ``values`` (landmarks): each element is
            scored on the sum of its neighbours' normalized differences over sqrt(k), so that
            points moving together (an eyelid) pool their evidence: noise grows as sqrt(k), a
            shared motion as k.
        evidence_components: score a vector on its first this many elements only (landmarks:
            x and y; MediaPipe's depth is noisier and a blink does not move it).
        min_spacing: as for :func:`local_poly_smooth`.

    Returns:
        ``(N, ...)`` float64.
    """
    y = np.asarray(values, dtype=np.float64)
    t = _check_times(times, y.shape[0])
    n = y.shape[0]
    if n < 3:
        return y.copy()
    sig = noise_sigma(t, y) if sigma is None else np.asarray(sigma, dtype=np.float64)
    half = _half_window(params.sigma_s, t, min_spacing)
    idx, w_heavy = _local_poly_rows(t, params.sigma_s, params.order, half)
    half = idx.shape[1] // 2
    w_raw = np.zeros_like(w_heavy)
    w_raw[:, half] = 1.0
    heavy = _apply_rows(idx, w_heavy, y)
    args = (params, vector_axis, neighbours, evidence_components)
    if params.light_sigma_samples > 0:
        spacing = np.gradient(t)
        _, w_light = _local_poly_rows(t, params.light_sigma_samples * spacing, params.order, half)
        light = _apply_rows(idx, w_light, y)
        b_light = _evidence(light - heavy, np.sqrt(((w_light - w_heavy) ** 2).sum(axis=1)), sig, *args)
        b_raw = _evidence(y - light, np.sqrt(((w_raw - w_light) ** 2).sum(axis=1)), sig, *args)
        fine = light + b_raw * (y - light)
        return heavy + np.maximum(b_light, b_raw) * (fine - heavy)
    b_raw = _evidence(y - heavy, np.sqrt(((w_raw - w_heavy) ** 2).sum(axis=1)), sig, *args)
    return heavy + b_raw * (y - heavy)


def smooth_series(
    times: NDArray[np.float64],
    values: NDArray[np.floating],
    params: ChannelSmoothing,
    sigma: NDArray[np.floating] | None = None,
    vector_axis: int | None = None,
    neighbours: NDArray[np.intp] | None = None,
    evidence_components: int | None = None,
    min_spacing: float | None = None,
) -> NDArray[np.float64]:
    """Smooth ``(N, ...)`` samples over time with the method ``params`` names (see the methods).

    ``min_spacing`` (local fits only) sizes the fits' windows as for a longer series this is a
    window of: with it, and at least :func:`reach` samples of context on each side, the window's
    inner samples come out as in the whole series.
    """
    if params.method is Method.NONE:
        return np.asarray(values, dtype=np.float64).copy()
    if params.method is Method.LOCAL_POLY:
        return local_poly_smooth(times, values, params.sigma_s, params.order, min_spacing)
    if params.method is Method.RTS:
        return rts_smooth(times, values, params.process_noise)
    if params.method is Method.ONE_EURO:
        return one_euro_smooth(times, values, params)
    return adaptive_smooth(times, values, params, sigma, vector_axis, neighbours, evidence_components, min_spacing)
