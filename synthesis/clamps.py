"""Strength smoothing and clamps: keeping each edit inside its documented range, without kinks.

A clamp is a per-frame gain in [0, 1] on the requested strength. The gain is smoothed without lag
(a min-filter, then a Gaussian, both symmetric, radius :attr:`StrengthSmoothing.radius`), which
keeps it below the hard clamp's gain: the result never leaves the limits, has no kink where a
clamp starts, and is untouched on frames a clamp cannot reach. Each clamp records where it acted
(:class:`ClampEvent`). :func:`smooth_strengths` is the zero-phase Gaussian for strengths that
are not eased by construction. Used by :func:`synthesis.schedule.resolve_track`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tracking.errors import ConfigError

#: A combined limit's measure, after hard scaling, may differ from the limit by this relative amount.
_MEASURE_REL_TOL = 1e-9


def as_frames(frame_indices: ArrayLike) -> NDArray[np.float64]:
    f = np.asarray(frame_indices, dtype=np.float64)
    if f.ndim != 1 or not np.all(np.isfinite(f)):
        raise ConfigError(f"frame indices must be a finite 1-D array, got shape {f.shape}")
    return f


# --- smoothing --------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrengthSmoothing:
    """Whole-clip, zero-phase smoothing of strengths and of clamp gains.

    The kernel is a Gaussian of ``sigma_frames``, cut at ``truncate`` sigmas (radius
    ``ceil(truncate * sigma_frames)`` frames), normalized over the frames that exist, so a
    constant stays constant at clip ends and across a track's missing frames. It is symmetric:
    nothing is delayed, and a step's 50% crossing stays between the same two frames.

    Attributes:
        sigma_frames: Gaussian sigma in frames, >= 0 (0: no smoothing, clamps are hard).
        truncate: kernel radius in sigmas, > 0.
        zero_below: :func:`smooth_strengths` sets values below this fraction of the largest
            requested ``|strength|`` to exactly 0; in [0, 1).
        smooth_requested: whether :func:`resolve_track` also smooths the requested strengths
            (clamp gains are always smoothed when ``sigma_frames > 0``).
    """

    sigma_frames: float = 1.0
    truncate: float = 3.0
    zero_below: float = 1e-3
    smooth_requested: bool = False

    def __post_init__(self) -> None:
        if not (math.isfinite(self.sigma_frames) and self.sigma_frames >= 0):
            raise ConfigError(f"strength smoothing: sigma_frames must be >= 0, got {self.sigma_frames}")
        if not (math.isfinite(self.truncate) and self.truncate > 0):
            raise ConfigError(f"strength smoothing: truncate must be > 0, got {self.truncate}")
        if not 0.0 <= self.zero_below < 1.0:
            raise ConfigError(f"strength smoothing: zero_below must be in [0, 1), got {self.zero_below}")

    @property
    def radius(self) -> int:
        """Kernel radius in frames (0 when smoothing is off)."""
        return math.ceil(self.truncate * self.sigma_frames) if self.sigma_frames > 0 else 0


def _grid(f: NDArray[np.float64]) -> NDArray[np.intp]:
    """Positions of strictly increasing integer frames on a dense grid starting at ``f[0]``."""
    if np.any(np.diff(f) <= 0) or np.any(f != np.round(f)):
        raise ConfigError("frame indices must be strictly increasing integers")
    return (f - f[0]).astype(np.intp) if f.size else np.zeros(0, np.intp)


def _blur(v: NDArray[np.float64], pos: NDArray[np.intp], r: int, sigma: float) -> NDArray[np.float64]:
    """Gaussian of ``v`` given at grid positions ``pos``, normalized over the positions present."""
    values = np.zeros(pos[-1] + 1 + 2 * r)
    present = np.zeros_like(values)
    values[pos + r] = v
    present[pos + r] = 1.0
    x = np.arange(-r, r + 1, dtype=np.float64)
    with np.errstate(over="ignore", under="ignore"):  # a tiny sigma: weights 1 at 0, 0 elsewhere
        w = np.exp(-0.5 * (x / sigma) ** 2)
    # np.convolve sums directly (no FFT): frames with only zeros within reach come out exactly 0.
    return np.convolve(values, w, "valid")[pos] / np.convolve(present, w, "valid")[pos]


def _smooth_gain(
    g: NDArray[np.float64], f: NDArray[np.float64], config: StrengthSmoothing | None
) -> NDArray[np.float64]:
    """A smooth gain ``<= g`` everywhere: min-filter, then blur the deficit ``1 - gain``."""
    r = 0 if config is None else config.radius
    if r == 0 or not np.any(g < 1.0):
        return g
    pos = _grid(f)
    padded = np.ones(pos[-1] + 1 + 2 * r)
    padded[pos + r] = g
    eroded = np.lib.stride_tricks.sliding_window_view(padded, 2 * r + 1).min(axis=1)[pos]
    # Blurring the deficit (not the gain) keeps the gain exactly 1 out of a clamp's reach.
    return np.minimum(g, 1.0 - _blur(1.0 - eroded, pos, r, config.sigma_frames))


def smooth_strengths(
    strengths: ArrayLike,
    frame_indices: ArrayLike,
    config: StrengthSmoothing = StrengthSmoothing(),
) -> NDArray[np.float64]:
    """Smooth one delta's strengths over the whole clip without lag (see :class:`StrengthSmoothing`).

    A result is non-zero only within the radius of a non-zero requested strength, and values
    below ``zero_below`` times the largest requested ``|strength|`` are set to exactly 0, so
    frames away from every edit are never touched.

    Args:
        strengths: ``(N,)`` per-frame strengths.
        frame_indices: ``(N,)`` strictly increasing integer frame indices; gaps (frames where the
            track is absent) are allowed and are not filled.

    Returns:
        ``(N,)`` float64 smoothed strengths.
    """
    s = np.array(strengths, dtype=np.float64)
    f = as_frames(frame_indices)
    if s.shape != f.shape:
        raise ConfigError(f"strengths have shape {s.shape}, frames {f.shape}")
    pos = _grid(f)
    r = config.radius
    if r == 0 or s.size == 0:
        return s
    out = _blur(s, pos, r, config.sigma_frames)
    out[np.abs(out) < config.zero_below * np.abs(s).max()] = 0.0
    return out


# --- clamps -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ClampEvent:
    """Where a clamp changed what was asked for (for the QC report).

    Attributes:
        face_id: the track.
        delta: the delta's name, or a combined limit's label.
        first_frame, last_frame: inclusive frame indices of a run of consecutive frames whose
            strength the clamp changed (with smoothing, a little wider than where the request
            exceeded the limit).
        requested: the run's largest requested value (signed strength of largest magnitude, or
            the combined measure).
        applied: the run's largest value after the clamp, in the same terms.
    """

    face_id: int
    delta: str
    first_frame: int
    last_frame: int
    requested: float
    applied: float

    def as_dict(self) -> dict[str, Any]:
        """As run summaries and reports give it (values rounded to 4 decimals)."""
        return {"face": self.face_id, "delta": self.delta, "frames": [self.first_frame, self.last_frame],
                "requested": round(self.requested, 4), "applied": round(self.applied, 4)}


def run_events(
    changed: NDArray[np.bool_], f: NDArray[np.float64], face_id: int, name: str,
    requested: NDArray[np.float64], applied: NDArray[np.float64],
) -> list[ClampEvent]:
    """One :class:`ClampEvent` per run of ``changed`` frames over consecutive frame indices.

    Args:
        changed: ``(N,)`` where the limit acted.
        f: ``(N,)`` frame indices.
        face_id: the track.
        name: the delta's name or the limit's label.
        requested, applied: ``(N,)`` values before and after the limit (the run's largest
            magnitude of each is recorded).
    """
    if not changed.any():
        return []
    cut = np.flatnonzero((np.diff(changed) != 0) | (np.diff(f) != 1)) + 1
    events = []
    for a, b in zip(np.concatenate(([0], cut)), np.concatenate((cut, [f.size]))):
        if changed[a]:
            req, app = requested[a:b], applied[a:b]
            events.append(ClampEvent(face_id, name, int(f[a]), int(f[b - 1]),
                                     float(req[np.argmax(np.abs(req))]), float(app[np.argmax(np.abs(app))])))
    return events


def clamp_strengths(
    strengths: Mapping[str, ArrayLike],
    limits: Mapping[str, tuple[float, float]],
    *,
    frame_indices: ArrayLike,
    face_id: int,
    smoothing: StrengthSmoothing | None = None,
) -> tuple[dict[str, NDArray[np.float64]], list[ClampEvent]]:
    """Bring each delta's strengths into its documented range.

    Args:
        strengths: ``{delta_name: (N,) float}`` per-frame strengths of one track.
        limits: ``{delta_name: (lo, hi)}``, with ``lo <= 0 <= hi`` so that "no edit" is always
            allowed. Deltas without a limit pass through unchanged.
        frame_indices: ``(N,)`` strictly increasing frames the strengths belong to.
        face_id: the track (for the events).
        smoothing: None: a hard clip. Otherwise the clip's gain is smoothed (module docstring):
            still inside the range, no kink, but frames up to two radii around a clipped run
            are lowered a little too.

    Returns:
        New float64 strengths (same keys) and the clamp events, in key then frame order.

    Raises:
        ConfigError: a limit does not contain 0, or an array's shape does not match the frames.
    """
    f = as_frames(frame_indices)
    out: dict[str, NDArray[np.float64]] = {}
    events: list[ClampEvent] = []
    for name, values in strengths.items():
        s = np.array(values, dtype=np.float64)
        if s.shape != f.shape:
            raise ConfigError(f"strengths of {name!r} have shape {s.shape}, frames {f.shape}")
        if name not in limits:
            out[name] = s
            continue
        lo, hi = (float(v) for v in limits[name])
        if not lo <= 0.0 <= hi:
            raise ConfigError(f"limit of {name!r} is ({lo}, {hi}); it must contain 0")
        gain = np.ones_like(s)
        nz = s != 0
        gain[nz] = np.clip(s[nz], lo, hi) / s[nz]
        out[name] = np.clip(s * _smooth_gain(gain, f, smoothing), lo, hi)
        events += run_events(out[name] != s, f, face_id, name, s, out[name])
    return out, events


def scale_by_gain(
    strengths: Mapping[str, NDArray[np.float64]],
    names: Sequence[str],
    gain: NDArray[np.float64],
    measure: Callable[[Mapping[str, NDArray[np.float64]]], NDArray[np.float64]],
    *,
    frame_indices: ArrayLike,
    face_id: int,
    label: str,
    smoothing: StrengthSmoothing | None = None,
) -> tuple[dict[str, NDArray[np.float64]], list[ClampEvent]]:
    """Scale some deltas together by a per-frame gain that a limit found (one not expressible as
    a :class:`CombinedLimit`), smoothed like any clamp gain (never above ``gain``).

    Args:
        strengths: ``{delta_name: (N,)}`` of one track; deltas not in ``names`` pass through.
        names: the deltas scaled.
        gain: ``(N,)`` in [0, 1].
        measure: strengths -> ``(N,)`` the value the events report (e.g. the head turn in degrees),
            asked for and kept on the frame of each run where the gain is smallest.
        frame_indices: ``(N,)`` strictly increasing frames.
        face_id: the track (for the events).
        label: names the limit in the events.
        smoothing: as in :func:`clamp_strengths`.
    """
    f = as_frames(frame_indices)
    g = _smooth_gain(np.clip(np.asarray(gain, np.float64), 0.0, 1.0), f, smoothing)
    out = {n: (np.asarray(v, np.float64) * g if n in names else np.asarray(v, np.float64)) for n, v in strengths.items()}
    asked, kept = measure(strengths), measure(out)
    events = []
    for e in run_events(np.abs(asked - kept) > 1e-9, f, face_id, label, asked, kept):
        rows = np.flatnonzero((f >= e.first_frame) & (f <= e.last_frame))
        deepest = rows[np.argmin(g[rows])]  # the run's deepest cut, not its largest values
        events.append(dataclasses.replace(e, requested=float(asked[deepest]), applied=float(kept[deepest])))
    return out, events


Measure = Callable[[Mapping[str, NDArray[np.float64]]], NDArray[np.float64]]


def linear_measure(weights: Mapping[str, float]) -> Measure:
    """The measure ``|sum_i w_i * s_i|`` (e.g. total yaw in degrees: ``w_i`` = yaw per unit)."""
    w = dict(weights)

    def measure(strengths: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        return np.abs(sum(w[n] * strengths[n] for n in w))

    return measure


@dataclass(frozen=True)
class CombinedLimit:
    """A joint limit on several deltas: ``measure(strengths) <= limit`` on every frame.

    Where the measure exceeds the limit, all the named deltas are scaled on that frame by the same
    gain ``limit / measure`` (smoothed like any clamp gain), so the mix of deltas, and hence the
    edit's direction, is kept. Exact when the measure is positively homogeneous of degree 1
    (``m(k s) = k m(s)`` for ``k >= 0``), e.g. a norm of a linear map such as
    :func:`linear_measure`; :func:`clamp_combined` checks it.

    Attributes:
        label: names the limit in :class:`ClampEvent` (e.g. ``"|yaw|"``).
        names: the deltas measured and scaled together; absent ones count as 0.
        limit: the largest allowed measure, > 0.
        measure: maps ``{name: (N,) float64}`` (all of ``names``) to ``(N,)`` values >= 0.
    """

    label: str
    names: tuple[str, ...]
    limit: float
    measure: Measure

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(self.names))
        if not self.names or not math.isfinite(self.limit) or self.limit <= 0 or not callable(self.measure):
            raise ConfigError(f"combined limit {self.label!r} needs delta names, a limit > 0 and a measure")

    @classmethod
    def linear(cls, label: str, weights: Mapping[str, float], limit: float) -> CombinedLimit:
        """``|sum_i weights[i] * strength_i| <= limit``, e.g. total yaw of several pose deltas."""
        return cls(label, tuple(weights), float(limit), linear_measure(weights))


def clamp_combined(
    strengths: Mapping[str, ArrayLike],
    constraint: CombinedLimit,
    *,
    frame_indices: ArrayLike,
    face_id: int,
    smoothing: StrengthSmoothing | None = None,
) -> tuple[dict[str, NDArray[np.float64]], list[ClampEvent]]:
    """Scale the constraint's deltas together where their joint measure exceeds the limit.

    Args:
        strengths: ``{delta_name: (N,) float}`` of one track; other deltas pass through.
        constraint: the joint limit.
        frame_indices: ``(N,)`` strictly increasing frames.
        face_id: the track (for the events).
        smoothing: None: hard scaling; otherwise the gain is smoothed as in :func:`clamp_strengths`.

    Returns:
        New strengths and the events (requested: the run's largest measure; applied: the largest
        measure after scaling).

    Raises:
        ConfigError: the measure gives a wrong shape or negative or non-finite values, or is not
            homogeneous (hard-scaled strengths do not measure exactly the limit).
    """
    f = as_frames(frame_indices)
    out = {n: np.array(v, dtype=np.float64) for n, v in strengths.items()}
    if not any(n in out for n in constraint.names):
        return out, []

    def measured(g: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        group = {n: g.get(n, np.zeros_like(f)) for n in constraint.names}
        m = np.asarray(constraint.measure(group), dtype=np.float64)
        if m.shape != f.shape or not np.all(np.isfinite(m)) or np.any(m < 0):
            raise ConfigError(f"combined limit {constraint.label!r}: measure must give {f.shape} values >= 0")
        return m

    m = measured(out)
    over = m > constraint.limit
    if not over.any():
        return out, []
    gain = np.ones_like(m)
    gain[over] = constraint.limit / m[over]
    hard = measured({n: v * gain for n, v in out.items()})
    if np.any(np.abs(hard[over] - constraint.limit) > _MEASURE_REL_TOL * constraint.limit):
        raise ConfigError(f"combined limit {constraint.label!r}: measure is not homogeneous of degree 1")
    gain = _smooth_gain(gain, f, smoothing)
    for n in constraint.names:
        if n in out:
            out[n] = out[n] * gain
    return out, run_events((gain < 1.0) & (m > 0), f, face_id, constraint.label, m, measured(out))
