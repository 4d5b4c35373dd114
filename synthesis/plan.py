"""From a track, a schedule and deltas to planned landmarks: the edit in code space.

For one track: invert it (``synthesis.codespace``), resolve the schedule into final per-frame
strengths with clamps (``synthesis.schedule``), apply the deltas to each edited frame's code
(``synthesis.deltas``) and render before and after. The planned "after" landmarks are the tracked
landmarks plus the change the edit makes to the rendered code, so that the small re-render error
of the inversion never shows up as motion: an edit of strength 0 moves nothing, exactly. Where
the code's own geometry limits an edit (an iris kept inside its eye opening) the plan records it
beside the strength clamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from synthesis.clamps import StrengthSmoothing, run_events, scale_by_gain
from synthesis.codespace import FaceCode, TrackCode, invert_track, render_code
from synthesis.deltas import Delta, apply_deltas, iris_move_kept
from synthesis.reveal import MAX_HIDDEN_SHARE, limited_gain
from synthesis.schedule import ClampEvent, CombinedLimit, EditSchedule, TrackStrengths, resolve_track
from tracking.errors import ConfigError

#: An iris move cut short by the eye's opening (``synthesis.deltas``: a gaze past the eye corner,
#: or on an eye already looking that way) is recorded as a clamp event under this label when
#: less than :data:`IRIS_KEPT_EVENT` of it could be made; the event's requested and applied
#: values are the iris move asked for and made, in inter-ocular distances.
IRIS_LIMIT_LABEL = "iris inside the eye opening"
IRIS_KEPT_EVENT = 0.9
#: A delta eased out where the face was not seen is recorded as a clamp event under its name
#: followed by this label (see :func:`fade_unseen`).
UNSEEN_LABEL = "face not seen"
#: Pose deltas scaled down so that the turn shows no more skin the frame hides than
#: ``PlanConfig.max_hidden_share`` (``synthesis.reveal``) are recorded under this label (requested
#: and applied: the head turn in degrees).
REVEAL_LABEL = "turn limited to what the frame shows"
#: The reveal limit's gain is found on every this-many-th frame of a pose edit (interpolated
#: between; the clamp smoothing follows).
REVEAL_SAMPLE_EVERY = 3


@dataclass(frozen=True)
class PlanConfig:
    """Limits on what an edit may do, beyond each delta's own documented range.

    Attributes:
        max_yaw_deg, max_pitch_deg, max_roll_deg: the most head rotation all pose deltas of a
            face may add together in one frame. Warping cannot show the far cheek or what is behind
            the ears: FACTS.md measured 10° of yaw and ±8° of pitch looking natural, 15° of yaw
            acceptable with regularization, 25° failing.
        clamp_to_range: clamp every delta to ``±max_strength`` (its documented range).
        edit_unseen: also edit the frames where the face was not seen (bridged frames: the
            tracker bridged a short gap by interpolation, so the landmarks there are a guess).
            Off by default: what is there instead of a tracked face (a hand or an object in
            front of it, a head turned past what the landmarker follows, motion blur) would be
            warped, and given borrowed eyes or a mouth, as if it were the face.
        unseen_ramp: frames over which an edit eases out before an unseen run and back in after
            it (:func:`fade_unseen`; the frames next to an occlusion usually show the face
            partly covered, where the landmarks are already unsure).
        max_hidden_share: the most of the edited face's visible area that a pose edit may turn
            into view from behind the nose or the jaw (``synthesis.reveal``: a warp paints it
            with what hides it); the pose deltas are scaled down per frame to keep within it
            (0: no such limit).
    """

    max_yaw_deg: float = 15.0
    max_pitch_deg: float = 10.0
    max_roll_deg: float = 15.0
    clamp_to_range: bool = True
    edit_unseen: bool = False
    unseen_ramp: int = 4
    max_hidden_share: float = MAX_HIDDEN_SHARE

    def __post_init__(self) -> None:
        for name in ("max_yaw_deg", "max_pitch_deg", "max_roll_deg"):
            v = getattr(self, name)
            if not 0 < v <= 45:
                raise ConfigError(f"PlanConfig.{name} must be in (0, 45], got {v}")
        if not 0 <= self.unseen_ramp <= 100:
            raise ConfigError(f"PlanConfig.unseen_ramp must be in [0, 100], got {self.unseen_ramp}")
        if not 0 <= self.max_hidden_share <= 1:
            raise ConfigError(f"PlanConfig.max_hidden_share must be in [0, 1], got {self.max_hidden_share}")


@dataclass(frozen=True, eq=False)
class FacePlan:
    """The planned edit of one track: landmarks before and after, on the frames it is edited.

    Attributes:
        track_id: the face's id.
        frame_indices: ``(M,)`` int64 increasing frames in which the face is edited.
        times: ``(M,)`` float64 seconds of those frames.
        segments: ``(M,)`` int32 segment ids (crop smoothing does not cross them).
        before: ``(M, 478, 3)`` float32 frame pixels, the tracked (smoothed) landmarks (from
            :func:`plan_track`, where the edited frames are one run: a read-only view of the
            track's landmarks).
        after: ``(M, 478, 3)`` float32 frame pixels, the edited landmarks.
        strengths: final per-delta strengths on those frames, ``{name: (M,)}``.
        events: where clamps acted.
    """

    track_id: int
    frame_indices: NDArray[np.int64]
    times: NDArray[np.float64]
    segments: NDArray[np.int32]
    before: NDArray[np.float32]
    after: NDArray[np.float32]
    strengths: Mapping[str, NDArray[np.float64]] = field(default_factory=dict)
    events: tuple[ClampEvent, ...] = ()

    def __post_init__(self) -> None:
        m = self.frame_indices.shape[0]
        for name in ("times", "segments"):
            if getattr(self, name).shape != (m,):
                raise ValueError(f"face {self.track_id}: {name} must be ({m},)")
        for name in ("before", "after"):
            if getattr(self, name).shape != (m, 478, 3):
                raise ValueError(f"face {self.track_id}: {name} must be ({m}, 478, 3)")


def strength_limits(deltas: Mapping[str, Delta], config: PlanConfig) -> tuple[dict[str, tuple[float, float]], list[CombinedLimit]]:
    """Per-delta ranges and the joint head-rotation limits for :func:`resolve_track`."""
    limits = {n: (-d.max_strength, d.max_strength) for n, d in deltas.items()} if config.clamp_to_range else {}
    combined = []
    for axis, label, limit in ((0, "head yaw", config.max_yaw_deg), (1, "head pitch", config.max_pitch_deg),
                               (2, "head roll", config.max_roll_deg)):
        weights = {n: float(d.pose[axis]) for n, d in deltas.items() if d.pose[axis] != 0}
        if weights:
            combined.append(CombinedLimit.linear(label, weights, limit))
    return limits, combined


def seen_weight(frame_indices: NDArray[np.integer], unseen: NDArray[np.bool_], ramp: int) -> NDArray[np.float64]:
    """``(N,)`` weight in [0, 1] on a track's edit strengths: 0 on its unseen frames, easing
    (smoothstep) back to 1 over ``ramp`` frames on each side, by frame index.

    Args:
        frame_indices: ``(N,)`` increasing frames of the track.
        unseen: ``(N,)`` frames where the face was not seen.
        ramp: frames of easing (0: a hard cut at the unseen run's edge).
    """
    f = np.asarray(frame_indices, dtype=np.float64)
    if not unseen.any():
        return np.ones(f.shape)
    hidden = f[unseen]
    at = np.searchsorted(hidden, f)
    after, before = hidden[np.minimum(at, len(hidden) - 1)], hidden[np.maximum(at - 1, 0)]
    dist = np.minimum(np.abs(f - after), np.abs(f - before))
    t = np.clip(dist / (ramp + 1), 0.0, 1.0)
    return t * t * (3.0 - 2.0 * t)


def fade_unseen(resolved: TrackStrengths, unseen: NDArray[np.bool_], ramp: int) -> TrackStrengths:
    """``resolved`` with every strength times :func:`seen_weight`, and a clamp event (labelled
    ``"<delta> (face not seen)"``) for each run of frames whose strength that changed."""
    weight = seen_weight(resolved.frame_indices, unseen, ramp)
    strengths, events = {}, list(resolved.events)
    f = resolved.frame_indices.astype(np.float64)
    for name, v in resolved.strengths.items():
        faded = v * weight
        faded.setflags(write=False)
        strengths[name] = faded
        events += run_events(unseen & (v != 0), f, resolved.track_id, f"{name} ({UNSEEN_LABEL})", v, faded)
    return TrackStrengths(resolved.track_id, resolved.frame_indices, strengths, tuple(events))


def _rows_of(landmarks: NDArray[np.float32], rows: NDArray[np.intp]) -> NDArray[np.float32]:
    """``landmarks[rows]``: a read-only view when the rows are one run (an edit over a whole shot:
    no second copy of the track's landmarks, 5.7 kB a frame), else a copy."""
    if rows[-1] - rows[0] + 1 != rows.size:
        return landmarks[rows]
    view = landmarks[rows[0]:rows[-1] + 1]
    view.flags.writeable = False
    return view


def limit_reveal(
    track_id: int,
    frame_indices: NDArray[np.int64],
    landmarks: NDArray[np.float32],
    code: TrackCode,
    rows: NDArray[np.intp],
    strengths: Mapping[str, NDArray[np.float64]],
    deltas: Mapping[str, Delta],
    limit: float,
) -> tuple[Mapping[str, NDArray[np.float64]], list[ClampEvent]]:
    """Scale the pose deltas down where they would turn hidden skin into view
    (``synthesis.reveal``), keeping the expression deltas.

    The gain is found on every :data:`REVEAL_SAMPLE_EVERY`-th frame with a pose edit (and the
    last), interpolated between them and smoothed like any clamp gain; the events report the
    head turn (degrees, the pose deltas' rotations summed) asked for and kept.
    """
    turning = [n for n in strengths if np.any(np.asarray(deltas[n].pose) != 0)]
    if not turning or rows.size == 0:
        return strengths, []
    active = rows[np.any([np.asarray(strengths[n])[rows] != 0 for n in turning], axis=0)]
    if active.size == 0:
        return strengths, []
    sample = np.unique(np.append(active[::REVEAL_SAMPLE_EVERY], active[-1]))
    gains = np.empty(sample.size)
    for k, r in enumerate(sample.tolist()):
        frame_code = code.frame(r)
        base = render_code(code.identity, frame_code)

        def edited(g: float, r: int = r, frame_code: FaceCode = frame_code, base: NDArray[np.float64] = base) -> NDArray[np.float64]:
            pairs = [(deltas[n], float(v[r]) * (g if n in turning else 1.0)) for n, v in strengths.items()]
            return landmarks[r] + (render_code(code.identity, apply_deltas(frame_code, code.identity, pairs)) - base)

        gains[k] = limited_gain(landmarks[r], edited, limit)
    gain = np.ones(frame_indices.shape[0])
    gain[active] = np.interp(frame_indices[active], frame_indices[sample], gains)

    def turn_deg(s: Mapping[str, NDArray[np.float64]]) -> NDArray[np.float64]:
        return np.linalg.norm(sum(np.asarray(s[n], np.float64)[:, None] * np.asarray(deltas[n].pose, np.float64)[None]
                                  for n in turning), axis=1)

    out, events = scale_by_gain(strengths, turning, gain, turn_deg, frame_indices=frame_indices, face_id=track_id,
                                label=REVEAL_LABEL, smoothing=StrengthSmoothing())
    return out, events


def plan_track(
    track_id: int,
    frame_indices: NDArray[np.integer],
    times: NDArray[np.floating],
    segments: NDArray[np.integer],
    landmarks: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    confidence: NDArray[np.floating],
    schedule: EditSchedule,
    deltas: Mapping[str, Delta],
    config: PlanConfig | None = None,
    code: TrackCode | None = None,
) -> FacePlan:
    """Plan the edits of one track.

    Args:
        track_id: the track's id (as the schedule names it).
        frame_indices: ``(N,)`` increasing frames of the track.
        times: ``(N,)`` seconds.
        segments: ``(N,)`` segment ids.
        landmarks: ``(N, 478, 3)`` tracked (smoothed) landmarks in frame pixels.
        blendshapes: ``(N, 52)`` scores.
        confidence: ``(N,)`` per-frame trust (0 for bridged frames: unless
            ``config.edit_unseen``, no edit reaches them, see :func:`fade_unseen`).
        schedule: the clip's edits (entries for other faces are ignored).
        deltas: every delta the schedule names, by name.
        config: limits.
        code: the track's inversion, if already computed.

    Returns:
        The plan, holding only the frames where some delta has a non-zero strength.

    Raises:
        ConfigError: the schedule names a delta that ``deltas`` lacks.
    """
    config = config or PlanConfig()
    fi = np.asarray(frame_indices, dtype=np.int64)
    missing = [n for n in schedule.delta_names() if n not in deltas]
    if missing:
        raise ConfigError(f"unknown delta(s): {', '.join(missing)}")
    limits, combined = strength_limits(deltas, config)
    resolved: TrackStrengths = resolve_track(schedule, track_id, fi, limits=limits, combined=combined)
    unseen = np.asarray(confidence, dtype=np.float64) <= 0
    if not config.edit_unseen and unseen.any():
        resolved = fade_unseen(resolved, unseen, config.unseen_ramp)
    active = np.zeros(fi.shape[0], dtype=bool)
    for v in resolved.strengths.values():
        active |= v != 0
    rows = np.flatnonzero(active)
    lm = np.asarray(landmarks, dtype=np.float32)
    if rows.size == 0:
        empty = np.zeros((0, 478, 3), np.float32)
        return FacePlan(track_id, fi[rows], np.asarray(times, np.float64)[rows],
                        np.asarray(segments, np.int32)[rows], empty, empty, {}, resolved.events)
    if code is None:
        conf = np.asarray(confidence, dtype=np.float64)
        if not conf.sum() > 0:
            conf = np.ones_like(conf)
        code = invert_track(lm, blendshapes, conf)
    strengths: Mapping[str, NDArray[np.float64]] = resolved.strengths
    clamp_events = resolved.events
    if config.max_hidden_share > 0:
        strengths, more = limit_reveal(track_id, fi, lm, code, rows, strengths, deltas, config.max_hidden_share)
        clamp_events += tuple(more)
    after = np.empty((rows.size, 478, 3), np.float32)
    iris = np.zeros((rows.size, 2))  # (asked, kept) iris move, inter-ocular distances
    for k, r in enumerate(rows):
        frame_code = code.frame(int(r))
        pairs = [(deltas[n], float(v[r])) for n, v in strengths.items()]
        edited = apply_deltas(frame_code, code.identity, pairs)
        iris[k] = iris_move_kept(frame_code, edited, code.identity, pairs)
        change = render_code(code.identity, edited) - render_code(code.identity, frame_code)
        after[k] = lm[r] + change.astype(np.float32)
    short = iris[:, 1] < IRIS_KEPT_EVENT * iris[:, 0]
    events = clamp_events + tuple(run_events(short, fi[rows].astype(np.float64), track_id, IRIS_LIMIT_LABEL,
                                             iris[:, 0], iris[:, 1]))
    return FacePlan(
        track_id=track_id,
        frame_indices=fi[rows],
        times=np.asarray(times, np.float64)[rows],
        segments=np.asarray(segments, np.int32)[rows],
        before=_rows_of(lm, rows),
        after=after,
        strengths={n: np.asarray(v)[rows] for n, v in strengths.items()},
        events=events,
    )
