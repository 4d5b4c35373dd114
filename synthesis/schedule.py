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

Smoothing and clamps live in :mod:`synthesis.clamps` (re-exported here): a clamp is a per-frame
gain smoothed without lag, so the result never leaves the limits and has no kink, and each clamp
records where it acted (:class:`ClampEvent`).

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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synthesis.clamps import (  # noqa: F401 - re-exported: the schedule's public API
    ClampEvent,
    CombinedLimit,
    Measure,
    StrengthSmoothing,
    as_frames as _as_frames,
    clamp_combined,
    clamp_strengths,
    linear_measure,
    smooth_strengths,
)
from tracking.errors import ConfigError

Ease = Literal["smooth", "linear"]
EASES: tuple[str, ...] = ("smooth", "linear")
#: Frames of easing on each side of ``strength@A-B`` when no ramp is given (the one default).
DEFAULT_RAMP_FRAMES = 4


def _ease(t: NDArray[np.float64], ease: str) -> NDArray[np.float64]:
    """Map ``t`` in [0, 1] to [0, 1]: smoothstep ``3t² - 2t³`` (zero slope at both ends) or ``t``."""
    return t * t * (3.0 - 2.0 * t) if ease == "smooth" else t


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
