"""Swap repair: put the plate's head pose and expression back onto a swapped face, identity-free.

A face swap keeps the plate's timing and framing but often fails where the plate turns or makes an
unusual expression: the swapped face stays frontal, or keeps an earlier expression. Given the
tracks of the same frames twice (the plate and the swap), this module

1. matches faces between the two per frame (:func:`match_tracks`): Hungarian assignment on
   ``1 - IoU`` of the landmark boxes plus the mean landmark distance in units of the plate box's
   diagonal; a pair needs an IoU of at least ``RestoreConfig.match_min_iou``. A plate track is
   paired with the swap track it is matched to in most frames;
2. inverts both tracks into code space (``synthesis.codespace``) and measures, per frame, the
   pose divergence (largest absolute yaw, pitch or roll difference of the code rotations, degrees)
   and the expression divergence (largest absolute difference of the 51 blendshape scores,
   ``_neutral`` left out, in score units);
3. flags the frames beyond either threshold, joins flagged runs closer than
   ``gap_fill_frames``, and builds a weight that is 1 on the flagged ranges and eases to 0 over
   ``ramp_frames`` on each side (smoothstep);
4. corrects each weighted frame in code space: the target rotation is the swap's rotation moved
   toward the plate's by the weight (Euler differences clamped to the warp's limits, and the turn
   lowered where it would bring skin the frame hides into view: :func:`reveal_gains`), the target
   expression the swap's residual moved toward the plate's residual (rescaled by the ratio of
   the two identities' inter-ocular distances) plus the swap's own residual offset, and the
   head's scale and position moved toward the plate's, kept at the swap's own offset from the
   plate. The offsets (position, scale ratio, and per landmark expression residual) are the
   medians over the frames where the two agree: a swap may sit its face slightly differently,
   and the two identities are estimated from different frames, so their residuals differ by a
   constant that is not expression (without the residual offset, the correction moved the
   undamaged lips of a swap of the same person by 0.009 inter-ocular distances, four times
   their divergence before). The identity stays the swap's, so the swap's face shape is never
   changed. The plate's angles, positions and scales are smoothed over time first (the tracker
   has smoothed them already; this only removes what the inversion adds) by a local quadratic
   fit with Gaussian weights of ``smooth_sigma_frames`` (:func:`smooth_motion`), which keeps
   motion up to a constant acceleration as it is: a plain Gaussian made a face sliding 30 px a
   frame across the picture (bench/robustness.py ``border_in_out``) lag by 4 px where it turned
   and 13 px at the first frame of its run, and the restore moved the swap's well-placed face
   there by as much (the face-region error grew from 1.4 to 7.7 grey levels on frames the swap
   only smiled on). The plate's expression residuals are smoothed with
   ``expression_sigma_frames`` (0 by default: a blink lasts a few frames, and a sigma of one
   frame halved the plate's lid closure error reduction on a frozen blink);
5. returns the change as a :class:`synthesis.plan.FacePlan` (tracked swap landmarks before, those
   plus the rendered change after, as :func:`synthesis.plan.plan_track` does), which the edit
   stage renders like any edit;
6. closes the loop (the plugin renders the planned frames, re-detects the face in them and
   calls ``synthesis.restore_loop.loop_correction``): the warp under-achieves a planned landmark change (brows,
   lids and lip corners land short of the target by a third to a half, bench/restore.py), so the
   change the re-detected face shows is compared with the planned change, and the shortfall is
   added to the plan, a few rounds, capped and smoothed over time.

A face cut by the picture's border (given the frame size): MediaPipe makes up the landmarks and
blendshapes of the part outside, differently in the plate and in the swap, so their divergence
there is partly noise (on a face 40-50% outside, a mouthStretch score differed by 0.3-0.5 where
neither clip changed), and the warp fades to nothing at the edge anyway. Per frame, the fraction
of the mesh points inside the picture (the smaller of plate and swap) gives a factor
(:func:`border_factor`: 1 from ``border_full_inside``, easing to 0 at ``border_min_inside``); the
divergence is weighed by it before the thresholds, and the correction weight is multiplied by it.
Frames where it limited the correction are listed (:attr:`PairRestore.border_limited`).

Frames where the swap track exists only by the tracker's bridging (no face was found there in the
swapped frame) but the plate has a face are listed as ``lost`` and never corrected: the plugin
passes them through, or bridges them from the nearest good swapped frame
(:func:`bridge_target`). So are frames where the swap's face is found but ``garbled``: its
texture strays from the rest of its track far more than the plate's face does on the same frame
(:func:`garbled_rows`, on :mod:`synthesis.consistency`'s readings, which the plugin takes from
the pixels). Warping a melted face only moves the melt.

Pure maths: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import gaussian_filter1d, minimum_filter1d
from scipy.optimize import linear_sum_assignment

from synthesis.codespace import Pose, TrackCode, invert_track, render_landmarks
from synthesis.plan import FacePlan
from synthesis.reveal import MAX_HIDDEN_SHARE, limited_gain
from synthesis.restore_loop import smooth_runs
from tracking.analysis import SOURCE_CODES, Track
from tracking.errors import ConfigError
from tracking.observation import Source
from tracking.pose import euler_from_rotations, matrix_from_euler
from tracking.tracks import box_iou

#: Frames at least on which swap and plate agree for the swap's placement offset to be read there
#: (fewer: it is read on every frame of the pair).
MIN_AGREEING_FRAMES = 3
#: Weight of the landmark distance (in plate box diagonals) against ``1 - IoU`` when matching.
MATCH_LANDMARK_WEIGHT = 0.5


@dataclass(frozen=True)
class RestoreConfig:
    """When and how far a swapped face is brought back to the plate.

    Attributes:
        pose_threshold_deg: a frame diverges when yaw, pitch or roll differ by more (degrees).
        expression_threshold: ... or when a blendshape score differs by more (score units, 0-1).
        correct_pose, correct_expression: which parts of the code are corrected.
        gap_fill_frames: flagged runs separated by at most this many frames become one range.
        min_range_frames: shorter flagged ranges (after joining) are ignored as noise.
        ramp_frames: frames over which the correction eases in before and out after a range.
        smooth_sigma_frames: Gaussian sigma (frames) applied to the plate's angles and positions
            (and to the closed loop's corrections).
        expression_sigma_frames: ... and to the plate's expression residuals.
        max_yaw_deg, max_pitch_deg, max_roll_deg: the most rotation a correction may add (the
            edit engine's limits: warping cannot show the far cheek); beyond, it is clamped and
            the range reports it.
        match_min_iou: least box overlap for a plate face and a swap face to be the same face.
        bridge_max_frames: a lost frame is bridged only from a good swap frame this close.
        refine_rounds: closed-loop rounds (module doc, 6): render, re-detect, add the shortfall;
            0 renders the open-loop plan.
        refine_gain: fraction of the measured shortfall added per round.
        refine_max_iod: the most the loop may move a landmark beyond the open-loop plan, in
            inter-ocular distances (a mis-detection must not throw the face about).
        refine_smooth_rounds: rounds of averaging the loop's shortfall over mesh neighbours
            (:func:`loop_correction`).
        border_full_inside: a face with at least this fraction of its mesh points inside the
            picture is corrected fully (module doc: a face cut by the border).
        border_min_inside: ... with at most this fraction, not at all (and never flagged).
        garbled_drop: a swap frame is garbled where its face's texture agrees with the rest of
            its track this much less than the plate's face does on the same frame
            (:mod:`synthesis.consistency`; clean faces turned 8-9 degrees away from the plate
            drop 0.08-0.13, faces melted by a displacement of 0.1 inter-ocular distances
            0.35-0.67). Garbled frames are not warped: like lost ones they are listed, and
            bridged when asked. 0 turns the check off.
        max_hidden_share: the most of the corrected face's visible area that the rotation
            correction may turn into view from behind the nose or the jaw, as for a pose edit
            (``synthesis.plan.PlanConfig.max_hidden_share``); the turn is lowered per frame to keep
            within it (:func:`reveal_gains`), and those frames count as clamped. 0: no limit.
    """

    pose_threshold_deg: float = 3.0
    expression_threshold: float = 0.25
    correct_pose: bool = True
    correct_expression: bool = True
    gap_fill_frames: int = 2
    min_range_frames: int = 1
    ramp_frames: int = 4
    smooth_sigma_frames: float = 1.0
    expression_sigma_frames: float = 0.0
    max_yaw_deg: float = 15.0
    max_pitch_deg: float = 10.0
    max_roll_deg: float = 15.0
    match_min_iou: float = 0.3
    bridge_max_frames: int = 12
    refine_rounds: int = 2
    refine_gain: float = 1.0
    refine_max_iod: float = 0.05
    refine_smooth_rounds: int = 3
    border_full_inside: float = 0.95
    border_min_inside: float = 0.6
    garbled_drop: float = 0.25
    max_hidden_share: float = MAX_HIDDEN_SHARE

    def __post_init__(self) -> None:
        if not 0 <= self.max_hidden_share < 1:
            raise ConfigError(f"RestoreConfig.max_hidden_share must be in [0, 1) (0: no limit), got {self.max_hidden_share}")
        if not 0 <= self.border_min_inside < self.border_full_inside <= 1:
            raise ConfigError(f"RestoreConfig: need 0 <= border_min_inside < border_full_inside <= 1, got "
                              f"{self.border_min_inside}, {self.border_full_inside}")
        for name in ("pose_threshold_deg", "expression_threshold", "max_yaw_deg", "max_pitch_deg", "max_roll_deg"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"RestoreConfig.{name} must be > 0, got {getattr(self, name)}")
        for name in ("gap_fill_frames", "ramp_frames", "bridge_max_frames", "refine_rounds", "refine_smooth_rounds"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RestoreConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.min_range_frames < 1:
            raise ConfigError(f"RestoreConfig.min_range_frames must be >= 1, got {self.min_range_frames}")
        for name in ("smooth_sigma_frames", "expression_sigma_frames"):
            if getattr(self, name) < 0:
                raise ConfigError(f"RestoreConfig.{name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.match_min_iou <= 1:
            raise ConfigError(f"RestoreConfig.match_min_iou must be in (0, 1], got {self.match_min_iou}")
        if not 0 < self.refine_gain <= 2:
            raise ConfigError(f"RestoreConfig.refine_gain must be in (0, 2], got {self.refine_gain}")
        if not self.refine_max_iod > 0:
            raise ConfigError(f"RestoreConfig.refine_max_iod must be > 0, got {self.refine_max_iod}")
        if not 0 <= self.garbled_drop <= 2:
            raise ConfigError(f"RestoreConfig.garbled_drop must be in [0, 2] (0: off), got {self.garbled_drop}")
        if not (self.correct_pose or self.correct_expression):
            raise ConfigError("RestoreConfig: correct_pose and correct_expression are both off: nothing to do")


@dataclass(frozen=True, eq=False)
class FacePair:
    """One plate face and the swap face matched to it, on the frames where both are tracked.

    Attributes:
        plate_id, swap_id: track ids in the plate's and the swap's analysis.
        frame_indices: ``(M,)`` int64 increasing frames where both tracks have a row and the pair
            was matched.
        plate_rows, swap_rows: ``(M,)`` int64 rows of those frames in each track.
        swap_lost: ``(M,)`` bool: the swap's row there is bridged (no face found in the swap).
        plate_only: ``(L,)`` int64 frames where the plate track has a face and the swap track no
            row at all.
    """

    plate_id: int
    swap_id: int
    frame_indices: NDArray[np.int64]
    plate_rows: NDArray[np.int64]
    swap_rows: NDArray[np.int64]
    swap_lost: NDArray[np.bool_]
    plate_only: NDArray[np.int64]


def _landmark_distance(a: NDArray[np.floating], b: NDArray[np.floating], box: NDArray[np.floating]) -> float:
    diag = float(np.hypot(box[2] - box[0], box[3] - box[1])) or 1.0
    return float(np.linalg.norm(a[:468, :2] - b[:468, :2], axis=1).mean()) / diag


def match_tracks(plate: Sequence[Track], swap: Sequence[Track], min_iou: float = 0.3) -> list[FacePair]:
    """Pair every plate track with the swap track that shows the same face (see module doc, 1).

    Args:
        plate, swap: the finished tracks of the two analyses (same frame numbering).
        min_iou: least box overlap of a matched pair in a frame.

    Returns:
        One :class:`FacePair` per plate track that is matched in at least one frame, by plate id.
    """
    votes: dict[tuple[int, int], list[tuple[int, int, int]]] = {}
    frames = sorted({int(f) for t in plate for f in t.frame_indices})
    for f in frames:
        prow = [(p, r) for p in plate if (r := p.row(f)) is not None]
        srow = [(s, r) for s in swap if (r := s.row(f)) is not None]
        if not prow or not srow:
            continue
        pbox = np.stack([p.boxes[r] for p, r in prow])
        sbox = np.stack([s.boxes[r] for s, r in srow])
        iou = box_iou(pbox, sbox)
        cost = 1.0 - iou
        for i, (p, pr) in enumerate(prow):
            for j, (s, sr) in enumerate(srow):
                cost[i, j] += MATCH_LANDMARK_WEIGHT * min(
                    _landmark_distance(p.landmarks[pr], s.landmarks[sr], p.boxes[pr]), 1.0)
        for i, j in zip(*linear_sum_assignment(cost)):
            if iou[i, j] >= min_iou:
                votes.setdefault((prow[i][0].track_id, srow[j][0].track_id), []).append((f, prow[i][1], srow[j][1]))
    by_swap = {s.track_id: s for s in swap}
    by_plate = {p.track_id: p for p in plate}
    pairs = []
    for pid in sorted(by_plate):
        cands = [(len(v), sid) for (p, sid), v in votes.items() if p == pid]
        if not cands:
            continue
        sid = max(cands)[1]
        rows = np.asarray(votes[(pid, sid)], dtype=np.int64)
        st = by_swap[sid]
        lost = st.sources[rows[:, 2]] == SOURCE_CODES[Source.BRIDGED]
        only = np.setdiff1d(by_plate[pid].frame_indices, st.frame_indices).astype(np.int64)
        pairs.append(FacePair(pid, sid, rows[:, 0], rows[:, 1], rows[:, 2], lost, only))
    return pairs


def divergence(plate_rotations: NDArray[np.floating], swap_rotations: NDArray[np.floating],
               plate_blendshapes: NDArray[np.floating], swap_blendshapes: NDArray[np.floating]
               ) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Per-frame divergence of a swap from its plate.

    Args:
        plate_rotations, swap_rotations: ``(M, 3, 3)`` code-space head rotations.
        plate_blendshapes, swap_blendshapes: ``(M, 52)`` scores.

    Returns:
        ``(M, 3)`` float64 swap minus plate (yaw, pitch, roll) in degrees, wrapped to (-180, 180];
        ``(M,)`` largest absolute angle difference; ``(M,)`` largest absolute blendshape
        difference (``_neutral``, index 0, left out).
    """
    d = euler_from_rotations(swap_rotations) - euler_from_rotations(plate_rotations)
    d = (d + 180.0) % 360.0 - 180.0
    b = np.abs(np.asarray(swap_blendshapes, np.float64)[:, 1:] - np.asarray(plate_blendshapes, np.float64)[:, 1:])
    return d, np.abs(d).max(axis=1), b.max(axis=1)


def flag_ranges(flags: NDArray[np.bool_], frames: NDArray[np.integer], gap_fill: int,
                min_frames: int) -> list[list[int]]:
    """Inclusive ``[first, last]`` frame ranges of flagged frames.

    Args:
        flags: ``(M,)`` bool per row.
        frames: ``(M,)`` increasing frame indices of the rows.
        gap_fill: flagged runs at most this many frames apart are joined (when the rows between
            exist).
        min_frames: ranges shorter than this are dropped.
    """
    out: list[list[int]] = []
    for f in np.asarray(frames)[np.asarray(flags, bool)]:
        f = int(f)
        if out and f - out[-1][1] <= gap_fill + 1:
            out[-1][1] = f
        else:
            out.append([f, f])
    return [r for r in out if r[1] - r[0] + 1 >= min_frames]


def range_weights(frames: NDArray[np.integer], ranges: Sequence[Sequence[int]], ramp: int) -> NDArray[np.float64]:
    """``(M,)`` weight: 1 inside ``ranges``, easing to 0 over ``ramp`` frames outside (smoothstep)."""
    fr = np.asarray(frames, dtype=np.float64)
    w = np.zeros(fr.shape[0])
    for a, b in ranges:
        dist = np.maximum(np.maximum(a - fr, fr - b), 0.0)
        x = np.clip(1.0 - dist / (ramp + 1.0), 0.0, 1.0)
        w = np.maximum(w, x * x * (3.0 - 2.0 * x))
    return w


def inside_fraction(landmarks: NDArray[np.floating], frame_size: tuple[int, int]) -> NDArray[np.float64]:
    """``(M,)`` fraction of each face's 468 mesh points inside the picture.

    Args:
        landmarks: ``(M, 478, 2|3)`` pixels.
        frame_size: ``(height, width)``.
    """
    h, w = frame_size
    p = np.asarray(landmarks, np.float64)[:, :468, :2]
    inside = (p[..., 0] >= 0) & (p[..., 0] <= w - 1) & (p[..., 1] >= 0) & (p[..., 1] <= h - 1)
    return inside.mean(axis=1)


def border_factor(inside: NDArray[np.floating], min_inside: float, full_inside: float) -> NDArray[np.float64]:
    """``(M,)`` how far a frame's divergence is trusted and corrected: 1 at ``inside >=
    full_inside``, 0 at ``inside <= min_inside``, smoothstep between."""
    x = np.clip((np.asarray(inside, np.float64) - min_inside) / (full_inside - min_inside), 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


@dataclass(frozen=True, eq=False)
class PairRestore:
    """The restore of one face pair.

    Attributes:
        pair: the matched faces.
        angle_diff: ``(M, 3)`` swap minus plate (yaw, pitch, roll) degrees, before.
        pose_div, expr_div: ``(M,)`` divergence before (degrees; blendshape score units).
        planned_pose_div: ``(M,)`` pose divergence the correction leaves (code space).
        weights: ``(M,)`` correction weight (0 where the frame is not touched).
        ranges: fixed ``[first, last]`` frame ranges (the flagged frames, before ramps).
        clamped: ``(M,)`` bool: the rotation correction was clamped there (to the warp's angle
            limits, or to the skin the frame shows: :func:`reveal_gains`).
        plan: the edit of the swap face (only frames with a non-zero weight).
        lost: frames where the swap has no face found but the plate has one.
        garbled: frames where the swap's face is found but garbled (:func:`garbled_rows`).
        offset: ``(3,)`` pixels: where the swap puts its face's canonical origin against the
            plate's (median over the frames where the two agree).
        scale_ratio: the swap's face scale over the plate's (median over the same frames).
        expression_offset: ``(478, 3)`` the swap's expression residual minus the plate's
            (rescaled), median over the same frames.
        border: ``(M,)`` the border factor (:func:`border_factor`; 1 without a frame size).
        border_limited: frames where the face is cut by the picture's border and its
            correction was lowered or left out for it (weight before the factor > 0, factor < 1).
    """

    pair: FacePair
    angle_diff: NDArray[np.float64]
    pose_div: NDArray[np.float64]
    expr_div: NDArray[np.float64]
    planned_pose_div: NDArray[np.float64]
    weights: NDArray[np.float64]
    ranges: list[list[int]]
    clamped: NDArray[np.bool_]
    plan: FacePlan
    lost: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    garbled: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    offset: NDArray[np.float64] = field(default_factory=lambda: np.zeros(3))
    scale_ratio: float = 1.0
    expression_offset: NDArray[np.float64] = field(default_factory=lambda: np.zeros((478, 3)))
    border: NDArray[np.float64] | None = None
    border_limited: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    @property
    def faceless(self) -> NDArray[np.int64]:
        """Frames where the swap shows no usable face, lost or garbled (sorted): what a bridge
        rebuilds."""
        return np.union1d(self.lost, self.garbled).astype(np.int64)


def smooth_motion(x: NDArray[np.floating], frames: NDArray[np.integer], sigma: float,
                  trust: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
    """A trajectory smoothed without lag: per row, a quadratic fitted with Gaussian weights of
    ``sigma`` frames (out to 3 sigma) over its run of consecutive frames, read at that row.

    Motion up to a constant acceleration passes unchanged, at a run's ends too (a plain Gaussian
    pulls a moving face back toward where it was and will be: module doc, 4); where fewer than
    three rows of the window are trusted, a line or the row itself.

    Args:
        x: ``(M, D)`` values per row.
        frames: ``(M,)`` increasing frame indices.
        sigma: Gaussian sigma in frames (0: unchanged).
        trust: ``(M,)`` in [0, 1], each row's weight in its neighbours' fits (None: all 1): rows
            of a face cut by the picture's border are made up in part, and must not move the rows
            around them.

    Returns:
        ``(M, D)`` float64.
    """
    x = np.asarray(x, np.float64)
    if sigma <= 0 or len(x) < 2:
        return x.copy()
    trust = np.ones(len(x)) if trust is None else np.clip(np.asarray(trust, np.float64), 0.0, 1.0)
    out = x.copy()
    half = max(int(np.ceil(3.0 * sigma)), 1)
    breaks = np.flatnonzero(np.diff(np.asarray(frames)) != 1) + 1
    for seg in np.split(np.arange(len(x)), breaks):
        n = len(seg)
        for i in range(n):
            lo, hi = max(0, i - half), min(n, i + half + 1)
            t = np.arange(lo, hi, dtype=np.float64) - i
            tw = trust[seg[lo:hi]].copy()
            tw[i - lo] = max(tw[i - lo], 1e-3)  # a row is always part of its own fit
            deg = min(2, int((tw > 0).sum()) - 1)
            if deg < 1:
                continue
            sw = np.sqrt(tw) * np.exp(-0.25 * (t / sigma) ** 2)  # square roots of the weights
            a = np.vander(t, deg + 1, increasing=True) * sw[:, None]
            coef, *_ = np.linalg.lstsq(a, x[seg[lo:hi]] * sw[:, None], rcond=None)
            out[seg[i]] = coef[0]
    return out


def garbled_rows(plate_agreement: NDArray[np.floating], swap_agreement: NDArray[np.floating],
                 drop: float) -> NDArray[np.bool_]:
    """``(M,)`` bool: the swap's face texture agrees with its track at least ``drop`` less than the
    plate's on the same frame (``synthesis.consistency.detail_agreement``, one value per pair row;
    NaN, a face too little seen, is never garbled; ``drop`` 0: none is)."""
    p, s = np.asarray(plate_agreement, np.float64), np.asarray(swap_agreement, np.float64)
    if drop <= 0:
        return np.zeros(p.shape, bool)
    return (p - s) >= drop  # NaN compares False


def restore_pair(pair: FacePair, plate: Track, swap: Track, config: RestoreConfig,
                 plate_code: TrackCode | None = None, swap_code: TrackCode | None = None,
                 frame_size: tuple[int, int] | None = None,
                 garbled: NDArray[np.bool_] | None = None) -> PairRestore:
    """Measure one pair's divergence and plan the correction (module doc, steps 2-5).

    Args:
        pair: from :func:`match_tracks`.
        plate, swap: the two tracks (``pair.plate_id``, ``pair.swap_id``).
        config: thresholds and limits.
        plate_code, swap_code: the tracks' inversions, if already computed.
        frame_size: ``(height, width)`` of the frames: faces cut by the picture's border are
            corrected less (module doc); None: every face counts as inside.
        garbled: ``(M,)`` bool per pair row, the swap's face garbled there (:func:`garbled_rows`):
            such frames are neither corrected nor used to measure where the two faces agree,
            and are listed in ``PairRestore.garbled``.

    Returns:
        The measurements and the plan (track id: the swap's).
    """
    pc = plate_code or invert_track(plate.landmarks, plate.blendshapes, _conf(plate))
    sc = swap_code or invert_track(swap.landmarks, swap.blendshapes, _conf(swap))
    pr, sr, fr = pair.plate_rows, pair.swap_rows, pair.frame_indices
    diff, pose_div, expr_div = divergence(pc.rotations[pr], sc.rotations[sr], plate.blendshapes[pr],
                                          swap.blendshapes[sr])
    bad = np.zeros(len(fr), bool) if garbled is None else np.asarray(garbled, bool) & ~pair.swap_lost
    ok = ~pair.swap_lost & ~bad
    border = np.ones(len(fr))
    if frame_size is not None and len(fr):
        inside = np.minimum(inside_fraction(plate.landmarks[pr], frame_size),
                            inside_fraction(swap.landmarks[sr], frame_size))
        border = border_factor(inside, config.border_min_inside, config.border_full_inside)
    flags = np.zeros(len(fr), bool)
    if config.correct_pose:
        flags |= border * pose_div > config.pose_threshold_deg
    if config.correct_expression:
        flags |= border * expr_div > config.expression_threshold
    flags &= ok
    ranges = flag_ranges(flags, fr, config.gap_fill_frames, config.min_range_frames)
    unlimited = range_weights(fr, ranges, config.ramp_frames) * ok
    weights = unlimited * border
    border_limited = fr[(unlimited > 0) & (border < 1)].astype(np.int64)

    plate_angles = smooth_motion(np.unwrap(euler_from_rotations(pc.rotations[pr]), period=360.0, axis=0), fr,
                                 config.smooth_sigma_frames, border)
    swap_angles = euler_from_rotations(sc.rotations[sr])
    limits = np.array([config.max_yaw_deg, config.max_pitch_deg, config.max_roll_deg])
    want = (plate_angles - swap_angles + 180.0) % 360.0 - 180.0
    corr = np.clip(want, -limits, limits)
    clamped = (np.abs(want) > limits).any(axis=1) & (weights > 0)
    ratio = sc.identity.inter_ocular / pc.identity.inter_ocular
    # where the swap puts its face against the plate's, read on the frames that agree
    # (faces cut by the border left out: their made-up half moves the fit)
    whole = ok & (border >= 1) if (ok & (border >= 1)).any() else ok
    agree = whole & ~flags if (whole & ~flags).sum() >= MIN_AGREEING_FRAMES else whole
    t_off = np.median(sc.translations[sr[agree]] - pc.translations[pr[agree]], axis=0) if agree.any() else np.zeros(3)
    s_ratio = float(np.median(sc.scales[sr[agree]] / pc.scales[pr[agree]])) if agree.any() else 1.0
    plate_t = smooth_motion(pc.translations[pr], fr, config.smooth_sigma_frames, border) + t_off
    plate_s = smooth_motion(pc.scales[pr, None], fr, config.smooth_sigma_frames, border)[:, 0] * s_ratio
    e_off = (np.median(sc.expressions[sr[agree]] - pc.expressions[pr[agree]] * ratio, axis=0) if agree.any()
             else np.zeros((478, 3)))
    plate_expr = smooth_runs(pc.expressions[pr].reshape(len(pr), -1), fr, config.expression_sigma_frames).reshape(-1, 478, 3)

    rows = np.flatnonzero(weights > 0)
    before = swap.landmarks[sr[rows]].astype(np.float32)
    after = np.empty_like(before)
    planned = pose_div.copy()

    def corrected(r: int, turn: float) -> NDArray[np.float32]:
        """Row ``r``'s landmarks corrected, with ``turn`` of its rotation correction."""
        w, s = weights[r], int(sr[r])
        pose = Pose(sc.scales[s], sc.rotations[s], sc.translations[s])
        expr = sc.expressions[s]
        new_rot, new_expr, new_s, new_t = pose.rotation, expr, pose.scale, pose.translation
        if config.correct_pose:
            new_rot = matrix_from_euler(*(swap_angles[r] + turn * w * corr[r]))
            new_s = pose.scale + w * (plate_s[r] - pose.scale)
            new_t = pose.translation + w * (plate_t[r] - pose.translation)
        if config.correct_expression:
            new_expr = expr + w * (plate_expr[r] * ratio + e_off - expr)
        target = render_landmarks(sc.identity, Pose(new_s, new_rot, new_t), new_expr)
        change = target - render_landmarks(sc.identity, pose, expr)
        return swap.landmarks[s] + change.astype(np.float32)

    turn = reveal_gains(rows, fr, config.max_hidden_share if config.correct_pose else 0.0, corrected,
                        lambda r: swap.landmarks[int(sr[r])], config.smooth_sigma_frames)
    for k, r in enumerate(rows):
        after[k] = corrected(int(r), float(turn[k]))
        if config.correct_pose:
            planned[r] = float(np.abs((want[r] - turn[k] * weights[r] * corr[r] + 180.0) % 360.0 - 180.0).max())
    clamped[rows[turn < 1.0]] = True
    sel = sr[rows]
    plan = FacePlan(
        track_id=pair.swap_id, frame_indices=fr[rows].astype(np.int64), times=swap.times[sel].astype(np.float64),
        segments=swap.segment_ids[sel].astype(np.int32), before=before, after=after,
        strengths={"restore": weights[rows]},
    )
    lost = np.union1d(fr[pair.swap_lost], pair.plate_only).astype(np.int64)
    return PairRestore(pair, diff, pose_div, expr_div, planned, weights, ranges, clamped, plan, lost,
                       fr[bad].astype(np.int64), t_off, s_ratio, e_off, border, border_limited)


def reveal_gains(rows: NDArray[np.intp], frames: NDArray[np.integer], limit: float,
                 corrected: Callable[[int, float], NDArray[np.floating]],
                 landmarks: Callable[[int], NDArray[np.floating]], sigma: float = 1.0) -> NDArray[np.float64]:
    """``(len(rows),)`` the share of each row's rotation correction kept so that the turn adds at
    most ``limit`` to the skin its frame hides that the corrected face shows
    (``synthesis.reveal.limited_gain``; 0: no limit).

    The same limit as a pose edit's (``synthesis.plan.limit_reveal``): a swap left three quarters
    turned where the plate faces the camera more would be turned back with its far cheek painted
    by the nose. Every row is measured (about 8 ms, a few times that where the turn is lowered):
    the correction can step from nothing to a full turn between two frames, where a gain
    interpolated between sampled frames let a turn through that showed 2.4 times the limit.

    Args:
        rows: pair rows corrected, increasing.
        frames: ``(M,)`` the pair's frames.
        limit: the share of the visible area the turn may add.
        corrected: ``(row, gain)`` -> the row's corrected landmarks with that share of its turn.
        landmarks: ``row`` -> its landmarks before.
        sigma: the gains are smoothed over runs of consecutive frames by a Gaussian of this many
            frames, never above a frame's own gain.
    """
    if not limit > 0:
        return np.ones(len(rows))
    gain = np.array([limited_gain(landmarks(int(r)), lambda g, r=int(r): corrected(r, g), limit) for r in rows])
    if sigma <= 0 or np.all(gain >= 1.0):
        return gain
    # smoothed without rising above any frame's own gain: each run's minimum over the Gaussian's
    # reach first, then the Gaussian (landmark noise moves the measured share frame to frame)
    half = max(int(np.ceil(3.0 * sigma)), 1)
    out = gain.copy()
    for seg in np.split(np.arange(len(rows)), np.flatnonzero(np.diff(np.asarray(frames)[rows]) != 1) + 1):
        low = minimum_filter1d(gain[seg], 2 * half + 1, mode="nearest")
        out[seg] = gaussian_filter1d(low, sigma, mode="nearest", truncate=half / sigma)
    return np.minimum(out, gain)


def _conf(track: Track) -> NDArray[np.float64]:
    c = np.asarray(track.confidence, np.float64)
    return c if c.sum() > 0 else np.ones_like(c)


def bridge_target(plate_code: TrackCode, plate_row: int, swap_code: TrackCode, offset: NDArray[np.floating],
                  scale_ratio: float, expression_offset: NDArray[np.floating] | None = None) -> NDArray[np.float64]:
    """Where the swap's face should be in a frame where the swap lost it: ``(478, 3)`` pixels.

    The swap's identity, posed with the plate's rotation and expression of that frame, placed
    where the plate's face is there at the swap's usual offset and scale ratio
    (:attr:`PairRestore.offset`, :attr:`PairRestore.scale_ratio`).

    Args:
        plate_code: the plate track's inversion.
        plate_row: plate row of the lost frame.
        swap_code: the swap track's inversion (its identity is used).
        offset: ``(3,)`` pixels, swap minus plate canonical origin.
        scale_ratio: swap over plate scale.
        expression_offset: ``(478, 3)`` :attr:`PairRestore.expression_offset` (None: zeros).
    """
    pose = Pose(plate_code.scales[plate_row] * scale_ratio, plate_code.rotations[plate_row],
                plate_code.translations[plate_row] + np.asarray(offset, np.float64))
    iod = swap_code.identity.inter_ocular / plate_code.identity.inter_ocular
    e_off = 0.0 if expression_offset is None else np.asarray(expression_offset, np.float64)
    return render_landmarks(swap_code.identity, pose, plate_code.expressions[plate_row] * iod + e_off)


def combine_plans(plans: Sequence[FacePlan]) -> list[FacePlan]:
    """Merge plans of the same track into one (changes add up; ``before`` must agree).

    Two plans of one face in one frame cannot both be rendered from the same ``before``
    landmarks one after the other; their changes are summed into one plan instead.

    Args:
        plans: plans of any tracks (a restore plan and edit-list plans, say).

    Returns:
        One plan per track id, by id.
    """
    by_id: dict[int, list[FacePlan]] = {}
    for p in plans:
        if p.frame_indices.size:
            by_id.setdefault(p.track_id, []).append(p)
    out = []
    for tid, group in sorted(by_id.items()):
        if len(group) == 1:
            out.append(group[0])
            continue
        frames = np.unique(np.concatenate([p.frame_indices for p in group]))
        before = np.zeros((len(frames), 478, 3), np.float32)
        change = np.zeros_like(before)
        times = np.zeros(len(frames))
        segs = np.zeros(len(frames), np.int32)
        strengths: dict[str, NDArray[np.float64]] = {}
        for p in group:
            idx = np.searchsorted(frames, p.frame_indices)
            before[idx] = p.before
            change[idx] += p.after - p.before
            times[idx], segs[idx] = p.times, p.segments
            for name, v in p.strengths.items():
                strengths.setdefault(name, np.zeros(len(frames)))[idx] = v
        events = tuple(e for p in group for e in p.events)
        out.append(FacePlan(tid, frames.astype(np.int64), times, segs, before, before + change, strengths, events))
    return out
