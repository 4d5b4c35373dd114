"""Strength schedules: how strongly each delta acts on each face, frame by frame.

An edit is a named delta, a face (track id) and a :class:`StrengthCurve` over frame indices. One
face may carry several edits; entries of the same delta add up, different deltas stay side by side
(:meth:`EditSchedule.per_frame`). :func:`resolve_track` then turns one track's requested strengths
into final ones:

1. optionally :func:`smooth_strengths`, a zero-phase Gaussian over the whole clip
   (``StrengthSmoothing.smooth_requested``; off by default, see below);
2. :func:`clamp_strengths`: each delta into its documented range ``(lo, hi)``;
3. :func:`clamp_combined`: joint limits on a per-frame measure of several deltas (for example
   total ``|Δyaw| <= 15°`` over all pose deltas), met by scaling them together.

A clamp is a per-frame gain in [0, 1] on the requested strength. The gain is smoothed without lag
(a min-filter, then a Gaussian, both symmetric, radius :attr:`StrengthSmoothing.radius`), which
keeps it below the hard clamp's gain: the result never leaves the limits, has no kink where a
clamp starts, and is untouched on frames a clamp cannot reach. Each clamp records where it acted
(:class:`ClampEvent`).

Why the requested curves are not Gaussian-smoothed by default: they are eased by construction,
users expect full strength on the frames they named, and ``ramp = 0`` asks for a hard cut. A
Gaussian would lower the first and last named frames (to about 93% with the default 4-frame ramp
and sigma 1) and blur the cut. Strengths that are not eased by construction (per-frame data)
should turn ``smooth_requested`` on.

Frames are 0-based frame indices in presentation order (integers). Strengths are float64 in the
delta's own units (a fraction for named controls, degrees for pose deltas); 0 means "no edit".
Nothing here reads files: a delta is only a name (a control name, or a resolved file path).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tracking.errors import ConfigError

Ease = Literal["smooth", "linear"]
EASES: tuple[str, ...] = ("smooth", "linear")
#: Frames of easing on each side of ``strength@A-B`` when no ramp is given (the one default).
DEFAULT_RAMP_FRAMES = 4

#: A combined limit's measure, after hard scaling, may differ from the limit by this relative amount.
_MEASURE_REL_TOL = 1e-9


def _ease(t: NDArray[np.float64], ease: str) -> NDArray[np.float64]:
    """Map ``t`` in [0, 1] to [0, 1]: smoothstep ``3t² - 2t³`` (zero slope at both ends) or ``t``."""
    return t * t * (3.0 - 2.0 * t) if ease == "smooth" else t


def _as_frames(frame_indices: ArrayLike) -> NDArray[np.float64]:
    f = np.asarray(frame_indices, dtype=np.float64)
    if f.ndim != 1 or not np.all(np.isfinite(f)):
        raise ConfigError(f"frame indices must be a finite 1-D array, got shape {f.shape}")
    return f


@dataclass(frozen=True)
class Keyframe:
    """One point of a strength curve.

    Attributes:
        frame: 0-based frame index. May be negative only for a ramp that starts before the clip
            (:meth:`StrengthCurve.over_range` makes those); such frames are never evaluated.
        strength: the delta's strength at that frame, finite, in the delta's own units.
    """

    frame: int
    strength: float

    def __post_init__(self) -> None:
        if isinstance(self.frame, bool) or not isinstance(self.frame, (int, np.integer)):
            raise ConfigError(f"keyframe frame must be an integer, got {self.frame!r}")
        if isinstance(self.strength, bool) or not isinstance(self.strength, (int, float, np.number)):
            raise ConfigError(f"keyframe strength must be a number, got {self.strength!r}")
        if not math.isfinite(float(self.strength)):
            raise ConfigError(f"keyframe strength at frame {self.frame} is not finite")
        object.__setattr__(self, "frame", int(self.frame))
        object.__setattr__(self, "strength", float(self.strength))


@dataclass(frozen=True)
class StrengthCurve:
    """A delta's strength over frames: keyframes joined by eased segments.

    Between two neighbouring keyframes the strength moves from one value to the next along the
    ease (``"smooth"``: smoothstep, zero slope at every keyframe; ``"linear"``). Segments never
    overshoot, so every value lies between the smallest and largest keyframe strength. Before the
    first keyframe the strength is 0, and after the last one too unless ``hold_after`` (then the
    last strength holds to the end of the clip, whatever its length). A curve that should fade in
    and out starts and ends with keyframes of strength 0; one that does not starts or stops with
    a hard cut.

    Attributes:
        keyframes: at least one, frames strictly increasing (sorted on construction; duplicates
            are an error).
        ease: ``"smooth"`` or ``"linear"``.
        hold_after: keep the last keyframe's strength after it (an open-ended range ``A-``).
    """

    keyframes: tuple[Keyframe, ...]
    ease: Ease = "smooth"
    hold_after: bool = False

    def __post_init__(self) -> None:
        kfs = tuple(self.keyframes)
        if not kfs or not all(isinstance(k, Keyframe) for k in kfs):
            raise ConfigError("a strength curve needs at least one Keyframe")
        kfs = tuple(sorted(kfs, key=lambda k: k.frame))
        for a, b in zip(kfs, kfs[1:]):
            if a.frame == b.frame:
                raise ConfigError(f"strength curve has two keyframes at frame {a.frame}")
        if self.ease not in EASES:
            raise ConfigError(f"ease must be one of {', '.join(EASES)}, got {self.ease!r}")
        object.__setattr__(self, "keyframes", kfs)
        object.__setattr__(self, "hold_after", bool(self.hold_after))

    @classmethod
    def constant(cls, strength: float) -> StrengthCurve:
        """``strength`` on every frame of the clip (a spec without ``@``)."""
        return cls((Keyframe(0, strength),), hold_after=True)

    @classmethod
    def over_range(
        cls,
        strength: float,
        start: int,
        end: int | None = None,
        ramp: int = DEFAULT_RAMP_FRAMES,
        ease: Ease = "smooth",
    ) -> StrengthCurve:
        """Full ``strength`` on every frame of ``start..end`` (inclusive), eased OUTSIDE the range.

        The strength rises from 0 at ``start - ramp`` to full at ``start`` and falls from full at
        ``end`` to 0 at ``end + ramp``, so the frames a user named are all at full strength and
        ``2 * (ramp - 1)`` frames outside them are partly edited. Ramps reaching past either end
        of the clip are simply cut there. ``ramp = 0`` is a hard cut. ``end = None`` holds the
        strength to the last frame of the clip (no ramp out).

        Raises:
            ConfigError: ``start`` < 0, ``end`` < ``start`` or ``ramp`` < 0.
        """
        if start < 0 or (end is not None and end < start):
            raise ConfigError(f"frame range {start}-{'' if end is None else end} is empty or negative")
        if isinstance(ramp, bool) or not isinstance(ramp, (int, np.integer)) or ramp < 0:
            raise ConfigError(f"ramp must be a whole number of frames >= 0, got {ramp!r}")
        ramp = int(ramp)
        kfs = [Keyframe(start - ramp, 0.0)] if ramp else []
        kfs.append(Keyframe(start, strength))
        if end is not None and end > start:
            kfs.append(Keyframe(end, strength))
        if end is not None and ramp:
            kfs.append(Keyframe(end + ramp, 0.0))
        return cls(tuple(kfs), ease=ease, hold_after=end is None)

    @property
    def support(self) -> tuple[int, int | None]:
        """First and last frame that can be non-zero (last is None when held to the end)."""
        return self.keyframes[0].frame, None if self.hold_after else self.keyframes[-1].frame

    def evaluate(self, frame_indices: ArrayLike) -> NDArray[np.float64]:
        """Strength at each frame.

        Args:
            frame_indices: ``(N,)`` frame indices (integers; any real value is accepted).

        Returns:
            ``(N,)`` float64 strengths.
        """
        f = _as_frames(frame_indices)
        kf = np.array([k.frame for k in self.keyframes], dtype=np.float64)
        ks = np.array([k.strength for k in self.keyframes], dtype=np.float64)
        out = np.zeros_like(f)
        i = np.searchsorted(kf, f, side="right") - 1  # kf[i] <= f < kf[i + 1]
        inside = (i >= 0) & (i < len(kf) - 1)
        j = i[inside]
        t = (f[inside] - kf[j]) / (kf[j + 1] - kf[j])
        out[inside] = ks[j] + (ks[j + 1] - ks[j]) * _ease(t, self.ease)
        out[(f >= kf[-1]) if self.hold_after else (f == kf[-1])] = ks[-1]
        return out


@dataclass(frozen=True)
class EditEntry:
    """One delta on one face over time.

    Attributes:
        face_id: the track id the edit applies to (>= 0).
        delta_name: a named control (``blink_left``) or a delta file's resolved path; it is only a
            key here, and the key of :meth:`EditSchedule.per_frame`'s result.
        curve: the strength over frames.
    """

    face_id: int
    delta_name: str
    curve: StrengthCurve

    def __post_init__(self) -> None:
        if isinstance(self.face_id, bool) or not isinstance(self.face_id, (int, np.integer)) or self.face_id < 0:
            raise ConfigError(f"face id must be an integer >= 0, got {self.face_id!r}")
        if not isinstance(self.delta_name, str) or not self.delta_name.strip():
            raise ConfigError(f"delta name must be a non-empty string, got {self.delta_name!r}")
        if not isinstance(self.curve, StrengthCurve):
            raise ConfigError(f"edit of {self.delta_name!r} needs a StrengthCurve")
        object.__setattr__(self, "face_id", int(self.face_id))


@dataclass(frozen=True)
class EditSchedule:
    """All edits of a clip, in the order given (the order does not change the result)."""

    entries: tuple[EditEntry, ...] = ()

    def __post_init__(self) -> None:
        entries = tuple(self.entries)
        if not all(isinstance(e, EditEntry) for e in entries):
            raise ConfigError("an edit schedule holds EditEntry items only")
        object.__setattr__(self, "entries", entries)

    def __iter__(self) -> Iterator[EditEntry]:
        return iter(self.entries)

    def __len__(self) -> int:
        return len(self.entries)

    def __add__(self, other: EditSchedule) -> EditSchedule:
        return EditSchedule(self.entries + other.entries)

    def face_ids(self) -> tuple[int, ...]:
        """Track ids with at least one edit, ascending."""
        return tuple(sorted({e.face_id for e in self.entries}))

    def delta_names(self) -> tuple[str, ...]:
        """Every delta named by some entry, in order of first use."""
        return tuple(dict.fromkeys(e.delta_name for e in self.entries))

    def per_frame(self, track_id: int, frame_indices: ArrayLike) -> dict[str, NDArray[np.float64]]:
        """Raw (unclamped, unsmoothed) strength of each delta on one track.

        Args:
            track_id: the face whose edits to evaluate.
            frame_indices: ``(N,)`` frame indices.

        Returns:
            ``{delta_name: (N,) float64}``, the sum over that delta's entries for this face; an
            empty dict when the face has no edits.
        """
        f = _as_frames(frame_indices)
        out: dict[str, NDArray[np.float64]] = {}
        for e in self.entries:
            if e.face_id == track_id:
                s = e.curve.evaluate(f)
                out[e.delta_name] = out[e.delta_name] + s if e.delta_name in out else s
        return out


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
    f = _as_frames(frame_indices)
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


def _events(
    changed: NDArray[np.bool_], f: NDArray[np.float64], face_id: int, name: str,
    requested: NDArray[np.float64], applied: NDArray[np.float64],
) -> list[ClampEvent]:
    """One event per run of changed frames over consecutive frame indices."""
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
    f = _as_frames(frame_indices)
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
        events += _events(out[name] != s, f, face_id, name, s, out[name])
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
    f = _as_frames(frame_indices)
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
    return out, _events((gain < 1.0) & (m > 0), f, face_id, constraint.label, m, measured(out))


# --- one track, start to end ------------------------------------------------------------------


@dataclass(frozen=True)
class TrackStrengths:
    """The final strengths of one track's deltas.

    Attributes:
        track_id: the track.
        frame_indices: ``(N,)`` int64 frames.
        strengths: ``{delta_name: (N,) float64}`` (read-only arrays).
        events: where clamps acted: per-delta clamps first, then combined limits in order.
    """

    track_id: int
    frame_indices: NDArray[np.int64]
    strengths: Mapping[str, NDArray[np.float64]]
    events: tuple[ClampEvent, ...] = ()


def resolve_track(
    schedule: EditSchedule,
    track_id: int,
    frame_indices: ArrayLike,
    *,
    limits: Mapping[str, tuple[float, float]] | None = None,
    combined: Sequence[CombinedLimit] = (),
    smoothing: StrengthSmoothing = StrengthSmoothing(),
) -> TrackStrengths:
    """Final strengths of one track's deltas: summed, (smoothed,) clamped, jointly limited.

    Args:
        schedule: the clip's edits.
        track_id: the track.
        frame_indices: ``(N,)`` strictly increasing frames the track is present on.
        limits: per-delta ranges for :func:`clamp_strengths` (none: unclamped).
        combined: joint limits, applied in order (:func:`clamp_combined`).
        smoothing: the whole-clip smoother (module docstring).

    Returns:
        The final strengths and the clamp events.
    """
    f = _as_frames(frame_indices)
    s = schedule.per_frame(track_id, f)
    if smoothing.smooth_requested:
        s = {n: smooth_strengths(v, f, smoothing) for n, v in s.items()}
    s, events = clamp_strengths(s, limits or {}, frame_indices=f, face_id=track_id, smoothing=smoothing)
    for c in combined:
        s, more = clamp_combined(s, c, frame_indices=f, face_id=track_id, smoothing=smoothing)
        events += more
    for v in s.values():
        v.setflags(write=False)
    return TrackStrengths(track_id, f.astype(np.int64), s, tuple(events))
