"""Which frames of a track can lend a region its texture: a compact per-track index, and the
choice of exemplar per edited frame, held over runs and cross-faded where it changes.

A warp only moves pixels that exist (FACTS.md, "Editing by warping"): closing an eye smears the
lashes, opening a closed mouth stretches lip skin. When an edit changes a region's STATE, the
region's texture is taken instead from a frame of the same face where the region already is in
the target state and the head pose and expression are close.

States are measured from landmarks (so that a planned "after" shape is measured exactly like a
tracked frame), per region (:data:`REGIONS`):

- eyes (subject's left/right): closure ``1 - lid gap / open gap`` (the open gap is the track's
  90th percentile), and gaze: the iris centre relative to the eye corners, x along the corner line
  and y across it, in eye widths (weighed while the iris shows: a slit still shows it, and an
  exemplar's slit with the iris on the other side shows white where the iris should be);
- mouth: inner-lip gap and mouth-corner width, in inter-ocular distances (IOD; 2-D, outer eye
  corners 33-263);
- cheeks (subject's left/right): how far the cheek is turned from the camera, the median angle
  in degrees between its triangles' normals and the view direction. A head turn that brings a
  cheek toward the camera shows skin the frame has only foreshortened (or hidden behind the
  nose): the warp can only stretch it, so it is borrowed from a frame turned that way.

The index holds, per frame, these features, the pose angles, the blendshapes and a quality
(tracking confidence times how squarely the region faces the camera); never textures.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from synthesis import regions as rg
from synthesis.exemplar_runs import bridge_runs, crossfade, fade_runs, on_runs, smooth_in_segments, viterbi
from synthesis.texregions import REGIONS
from synthesis.uvmap import triangle_facing
from tracking.errors import ConfigError
from tracking.mediapipe_results import BLENDSHAPE_NAMES

_BS = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}


#: Most candidates weighed per region and run (the best by quality among those near the target
#: states): keeps the choice's (frames x candidates) cost table small on long clips.
MAX_CANDIDATES = 256
#: How much nearer the target pose (yaw and pitch, degrees) a candidate for a region that a turn
#: reveals (:attr:`synthesis.texregions.Region.turn`) must be than the edited frame itself.
TURN_GAIN_DEG = 2.0
#: Eye closure up to which the gaze counts fully: the lid gap still shows the iris, and where in
#: the slit it lies (a lid half over the eye, liveportrait_d0 frame 64 at 0.61, shows it plainly).
GAZE_FULL_CLOSURE = 0.6
#: Eye closure from which the gaze no longer shows (the lashes meet: frame 67 at 0.84 shows no
#: iris); the gaze's weight falls linearly between the two (see :func:`gaze_weight`).
GAZE_HIDDEN_CLOSURE = 0.85
#: Most an eye exemplar's closure may exceed that of a target slit showing its iris (one feature
#: unit on that side, in place of the closure's ``feature_scale``; see :func:`closer_tolerance`):
#: its lid opening is stretched to the target's, and a closed lid's lash line (liveportrait_d0
#: frame 67 at 0.81 on a slit at 0.57) becomes a dark band across the eye. A more closed one is
#: only faded in, laid on at its own state (:func:`bridge_runs`, :attr:`Choice.extend`).
CLOSER_CLOSURE = 0.15
#: Most a mouth exemplar's inner-lip gap may fall short of the target's (IOD; one feature unit on
#: that side, in place of the gap's ``feature_scale``): it is warped open to the target's, and a
#: warp opens a mouth by stretching what shows between the lips, the teeth taller (the astronaut's
#: jaw_open 0.4 on her own frames 0.06 less open). Past it a mouth opened on the face's own frame
#: (:func:`compositing.mouth.open_mouth`) is made instead.
LESS_OPEN_GAP = 0.02
#: The same on the frames of a mouth's opening that need texture only because the run does
#: (:func:`run_need`, the ease): the ease takes a more open exemplar (or a made one) warped to
#: its own smaller opening, as its neighbours show, rather than one of the face's frames stretched
#: open (the astronaut's own frame 17 lent on an ease-out frame took the gap away a frame early).
EASE_LESS_OPEN_GAP = 0.005
#: Fraction of the eye's open gap used as its track-wide reference (percentile).
OPEN_GAP_PERCENTILE = 90.0
#: Target-state motion between consecutive frames (feature units, :func:`state_motion`) at which a
#: change of exemplar costs nothing: while an eye closes or a mouth opens, the exemplar follows the
#: state (a half-closed lid from a half-closed frame) instead of being held from a closed frame.
FREE_SWITCH_MOTION = 0.5
#: Most a faded-in exemplar's geometry scales the edit's change (:attr:`Choice.extend`).
MAX_EXTEND = 5.0


def iod_2d(landmarks: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(...)`` 2-D distance between the outer eye corners (33, 263) in pixels."""
    lm = np.asarray(landmarks, dtype=np.float64)
    return np.linalg.norm(lm[..., 33, :2] - lm[..., 263, :2], axis=-1)


def raw_features(landmarks: NDArray[np.floating], region: str) -> NDArray[np.float64]:
    """Scale-free raw state features of one region.

    Args:
        landmarks: ``(N, 478, 2|3)`` (or ``(478, 2|3)``) pixels (cheeks need z).
        region: a key of :data:`REGIONS`.

    Returns:
        ``(N, k)`` (or ``(k,)``): eyes: lid gap across the eye / IOD, gaze x, gaze y (eye widths); mouth: inner
        gap / IOD, corner width / IOD; cheeks: facing angle (degrees).
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    single = lm.ndim == 2
    lm = lm[None] if single else lm
    iod = np.maximum(iod_2d(lm), 1e-6)
    if region.startswith("eye_"):
        side = region[4:]
        pairs = np.asarray(rg.EYE_PAIRS[side])
        upper, _, iris = rg.EYES[side]
        a, b = lm[:, upper[0], :2], lm[:, upper[-1], :2]
        axis = b - a
        width = np.maximum(np.linalg.norm(axis, axis=-1), 1e-6)
        ux = axis / width[:, None]
        uy = np.stack([-ux[:, 1], ux[:, 0]], -1)
        # the lids' distance across the eye: a pair's offset along it (a closed lid's points need
        # not meet their partners exactly) is not an opening
        gap = np.abs(((lm[:, pairs[:, 0], :2] - lm[:, pairs[:, 1], :2]) * uy[:, None]).sum(-1)).mean(axis=1) / iod
        rel = lm[:, iris[0], :2] - (a + b) / 2
        out = np.stack([gap, (rel * ux).sum(-1) / width, (rel * uy).sum(-1) / width], -1)
    elif region == "mouth":
        up, lo = np.asarray(rg.LIPS_INNER_UPPER[1:-1]), np.asarray(rg.LIPS_INNER_LOWER[1:-1])
        gap = np.linalg.norm(lm[:, up, :2] - lm[:, lo, :2], axis=-1).mean(axis=1) / iod
        c0, c1 = rg.MOUTH_CORNERS_OUTER
        width = np.linalg.norm(lm[:, c0, :2] - lm[:, c1, :2], axis=-1) / iod
        out = np.stack([gap, width], -1)
    elif region.startswith("cheek_") and region in REGIONS:
        if lm.shape[-1] < 3:
            raise ValueError("a cheek's state needs the landmarks' z")
        out = _facing_angle(_facing(lm), region)
    else:
        raise ConfigError(f"unknown texture region {region!r}; known: {', '.join(REGIONS)}")
    return out[0] if single else out


def _facing(landmarks: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(N, 898)`` :func:`synthesis.uvmap.triangle_facing` of each frame of ``(N, 478, 3)``."""
    return np.stack([triangle_facing(x) for x in landmarks]) if len(landmarks) else np.zeros((0, 898))


def _facing_angle(facing: NDArray[np.float64], region: str) -> NDArray[np.float64]:
    """``(N, 1)`` a cheek's state from the frames' triangle facing ``(N, 898)``: the angle (degrees)
    whose cosine is the median facing of the region's core triangles."""
    med = np.median(facing[:, REGIONS[region].core_triangles], axis=1)
    return np.degrees(np.arccos(np.clip(med, -1.0, 1.0)))[:, None]


def state(raw: NDArray[np.floating], region: str, open_gap: float) -> NDArray[np.float64]:
    """Region state from raw features: eyes get closure ``clip(1 - gap / open_gap, 0, 1)`` in place
    of the gap; the mouth is its raw features. Shapes as :func:`raw_features`."""
    s = np.array(raw, dtype=np.float64)
    if region.startswith("eye_"):
        s[..., 0] = np.clip(1.0 - s[..., 0] / max(open_gap, 1e-6), 0.0, 1.0)
    return s


@dataclass(frozen=True, eq=False)
class ExemplarIndex:
    """Per-frame region states and qualities of one face's frames (a track, or reference stills).

    Attributes:
        keys: ``(N,)`` int64 frame indices (for reference stills: their position in the list).
        source: ``"clip"`` or ``"reference"``.
        features: ``{region: (N, k)}`` raw features (:func:`raw_features`).
        quality: ``{region: (N,)}`` in [0, 1]: confidence x mean facing of the region's triangles.
        angles: ``(N, 3)`` yaw, pitch, roll degrees.
        blendshapes: ``(N, 52)`` scores.
        open_gap: ``{eye region: open lid gap / IOD}`` of this face.
    """

    keys: NDArray[np.int64]
    source: str
    features: Mapping[str, NDArray[np.float64]]
    quality: Mapping[str, NDArray[np.float64]]
    angles: NDArray[np.float64]
    blendshapes: NDArray[np.float64]
    open_gap: Mapping[str, float] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.keys.shape[0])


def build_index(
    keys: NDArray[np.integer],
    landmarks: NDArray[np.floating],
    angles: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    confidence: NDArray[np.floating] | None = None,
    source: str = "clip",
    open_gap: Mapping[str, float] | None = None,
    frame_size: NDArray[np.integer] | tuple[int, int] | None = None,
) -> ExemplarIndex:
    """Index a face's frames.

    Args:
        keys: ``(N,)`` frame indices (or reference positions).
        landmarks: ``(N, 478, 3)`` pixels (MediaPipe z).
        angles: ``(N, 3)`` degrees.
        blendshapes: ``(N, 52)``.
        confidence: ``(N,)`` trust in [0, 1] (0 for bridged frames); None: all 1.
        source: ``"clip"`` or ``"reference"``.
        open_gap: eye open gaps to use (e.g. the clip's, for reference stills); None: measured
            here (:data:`OPEN_GAP_PERCENTILE`).
        frame_size: ``(height, width)`` of the frames, or ``(N, 2)`` one per frame: a region
            any of whose points lies outside its frame (a face cut by the border) gets quality 0,
            since its texture there would be the border's pixels smeared. None: not checked.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    n = lm.shape[0]
    conf = np.ones(n) if confidence is None else np.clip(np.asarray(confidence, dtype=np.float64), 0, 1)
    feats, quality, gaps = {}, {}, dict(open_gap or {})
    facing = _facing(lm)
    for name, region in REGIONS.items():
        if not n:
            f = np.zeros((0, len(region.feature_scale)))
        elif name.startswith("cheek_"):  # from the facing already at hand, not worked out again
            f = _facing_angle(facing, name)
        else:
            f = raw_features(lm, name)
        feats[name] = f
        tris = region.outer_triangles
        # The eye and mouth openings turn over when they close: rate the region by its skin.
        quality[name] = conf * np.clip(np.median(facing[:, tris], axis=1), 0, 1) if n else np.zeros(0)
        if frame_size is not None and n:
            hw = np.broadcast_to(np.asarray(frame_size, np.float64).reshape(-1, 2), (n, 2))
            pts = lm[:, list(region.outer), :2]
            inside = ((pts >= 0) & (pts <= hw[:, None, ::-1] - 1)).all(axis=(1, 2))
            quality[name] = np.where(inside, quality[name], 0.0)
        if name.startswith("eye_") and name not in gaps:
            gaps[name] = float(np.percentile(f[:, 0], OPEN_GAP_PERCENTILE)) if n else 1.0
    return ExemplarIndex(np.asarray(keys, dtype=np.int64), source, feats, quality,
                         np.asarray(angles, dtype=np.float64), np.asarray(blendshapes, dtype=np.float64), gaps)


@dataclass(frozen=True)
class ChoiceConfig:
    """How exemplars are chosen.

    Attributes:
        pose_scale_deg: pose difference (each of yaw, pitch, roll) that costs as much as one state unit.
        blendshape_scale: L2 difference of the region's nearby blendshapes costing one unit.
        quality_weight: cost of quality 0 (vs 1).
        switch_cost: cost of changing exemplar between consecutive frames (holds the choice); it falls
            to 0 as the target state moves (:data:`FREE_SWITCH_MOTION`).
        crossfade: frames over which a change of exemplar is cross-faded (>= 1).
        max_pose_deg: candidates farther than this in any angle are never used.
        min_quality: candidates below this quality are never used.
        bridge_reach: where a run of an exemplar begins or ends beside frames that need texture
            but have no exemplar in their (in-between) state, the exemplar is faded into those
            frames whose target state is within this many feature units of its own (and on the
            way to it from the frame's state before the edit): full weight at 1 unit (where it
            is a candidate anyway), none at ``bridge_reach`` (:func:`bridge_runs`). 1: off.
    """

    pose_scale_deg: float = 6.0
    blendshape_scale: float = 0.6
    quality_weight: float = 0.5
    switch_cost: float = 2.0
    crossfade: int = 4
    max_pose_deg: float = 20.0
    min_quality: float = 0.2
    bridge_reach: float = 3.0

    def __post_init__(self) -> None:
        if self.crossfade < 1 or self.pose_scale_deg <= 0 or self.blendshape_scale <= 0 or self.switch_cost < 0:
            raise ConfigError("ChoiceConfig: crossfade >= 1, scales > 0 and switch_cost >= 0 are required")
        if self.bridge_reach < 1:
            raise ConfigError(f"ChoiceConfig.bridge_reach must be >= 1 (feature units), got {self.bridge_reach}")


@dataclass(frozen=True, eq=False)
class Choice:
    """Exemplars chosen for one region over a run of target frames.

    Attributes:
        need: ``(M,)`` in [0, 1]: how much new texture each frame needs (0: keep its own pixels).
        first, second: ``(M,)`` int64 rows of the candidate list (``-1``: none).
        mix: ``(M,)`` weight of ``second`` (cross-fade; 0 where ``second`` is -1).
        unsupported: ``(M,)`` bool: texture needed but no candidate in the target state.
        candidates: ``(C, 2)`` int64 (source id, row in that index) of each candidate.
        fade: ``(M,)`` in [0, 1]: scale of the texture's weight (below 1 where an exemplar is
            faded into frames no exemplar's state bridges, :func:`bridge_runs`); None: all 1.
        extend: ``(M,)`` >= 1: on those faded rows, the scale of the edit's change around the
            region at which the exemplar is laid on (its own state, further along than the
            row's: a closed lid laid on a half-closed geometry would stretch its lash line into
            a dark band); None: all 1.
    """

    need: NDArray[np.float64]
    first: NDArray[np.int64]
    second: NDArray[np.int64]
    mix: NDArray[np.float64]
    unsupported: NDArray[np.bool_]
    candidates: NDArray[np.int64]
    fade: NDArray[np.float64] | None = None
    extend: NDArray[np.float64] | None = None

    def weight(self, full_weight_need: float) -> NDArray[np.float64]:
        """``(M,)`` in [0, 1]: the weight the borrowed texture is composited at: ``need /
        full_weight_need`` up to 1, times :attr:`fade`; 0 where no exemplar is chosen.

        Args:
            full_weight_need: the need from which a matched exemplar goes in at full weight
                (``plugin.texture_stage.TextureConfig.full_weight_need``), in (0, 1].
        """
        w = np.minimum(self.need / full_weight_need, 1.0)
        if self.fade is not None:
            w = w * self.fade
        return np.where((self.first >= 0) & (self.need > 0), w, 0.0)


def gaze_weight(closure: NDArray[np.floating]) -> NDArray[np.float64]:
    """How much gaze counts for an eye of this closure: 1 while the lid gap shows the iris (up to
    :data:`GAZE_FULL_CLOSURE`, a slit included), falling linearly to 0 at
    :data:`GAZE_HIDDEN_CLOSURE` (the lashes meet and hide it).

    Between a target and an exemplar it is taken at the larger of their closures: the borrowed
    eye shows as much iris as the narrower of its own opening and the target's.
    """
    c = np.asarray(closure, np.float64)
    return np.clip((GAZE_HIDDEN_CLOSURE - c) / (GAZE_HIDDEN_CLOSURE - GAZE_FULL_CLOSURE), 0.0, 1.0)


def closer_tolerance(region: str, closure: NDArray[np.floating], moving: NDArray[np.floating]) -> NDArray[np.float64]:
    """How much more closed than a target eye an exemplar may be (one unit): :data:`CLOSER_CLOSURE`
    on an in-between target (``moving``: 1 where its state moves by :data:`FREE_SWITCH_MOTION` or
    more from or to a neighbouring row, a blink's ramp, whose rows the exemplars beside them are
    faded into) whose slit shows the iris, rising to the closure's ``feature_scale`` as the lashes
    meet (:func:`gaze_weight`) and on held targets (the edit's end state: nothing to fade from)."""
    w = gaze_weight(closure) * np.asarray(moving, np.float64)
    return CLOSER_CLOSURE * w + REGIONS[region].feature_scale[0] * (1.0 - w)


def need_of(region: str, before: NDArray[np.floating], after: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(M,)`` in [0, 1]: how much the change from ``before`` to ``after`` state needs texture.

    Args:
        region: a key of :data:`REGIONS`.
        before, after: ``(M, k)`` states (:func:`state`).
    """
    r = REGIONS[region]
    signed = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    change = np.abs(signed)
    if r.need_direction:
        way = np.asarray(r.need_direction)
        change = np.where(way == 0, change, np.maximum(signed * way, 0.0))
    if region.startswith("eye_"):  # gaze does not show on a (mostly) closed eye
        change[:, 1:] *= gaze_weight(np.maximum(before[:, :1], after[:, :1]))
    lo = np.array([a for a, _ in r.need_range])
    hi = np.array([b for _, b in r.need_range])
    return np.clip((change - lo) / (hi - lo), 0.0, 1.0).max(axis=1)


def run_need(region: str, before: NDArray[np.floating], after: NDArray[np.floating], need: NDArray[np.floating],
             segments: NDArray[np.integer]) -> NDArray[np.float64]:
    """``(M,)`` in [0, 1]: the need of each row from the run it belongs to (:attr:`Region.run_need`).

    A run is consecutive rows of one segment whose first feature the edit changes the same way
    (an opening mouth, eased in and out). Where any row of a run needs texture (``need > 0``,
    :func:`need_of`), each of its rows needs it by ``|change| / run_need``, up to 1; elsewhere 0.
    So a mouth that borrows its opened inside at the edit's peak borrows it on the ease too, at
    the ease's own smaller opening, instead of stretching the lips or teeth until the need starts
    and then switching the gap in at once.

    Args:
        region: a key of :data:`REGIONS`.
        before, after: ``(M, k)`` target states before and after the edit (:func:`state`).
        need: ``(M,)`` the rows' own need (:func:`need_of`).
        segments: ``(M,)`` consecutive rows with equal ids are consecutive frames.
    """
    scale = REGIONS[region].run_need
    change = np.asarray(after, np.float64)[:, 0] - np.asarray(before, np.float64)[:, 0]
    out = np.zeros(change.shape[0])
    if scale <= 0:
        return out
    seg, asked = np.asarray(segments), np.asarray(need) > 0
    for sign in (1.0, -1.0):
        for a, b in on_runs(sign * change > 0, seg):
            if asked[a:b].any():
                out[a:b] = np.clip(np.abs(change[a:b]) / scale, 0.0, 1.0)
    return out


def choose(
    region: str,
    before: NDArray[np.floating],
    after: NDArray[np.floating],
    angles: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    segments: NDArray[np.integer],
    indexes: list[ExemplarIndex],
    open_gap: float,
    exclude: list[NDArray[np.bool_]] | None = None,
    config: ChoiceConfig | None = None,
    angles_before: NDArray[np.floating] | None = None,
) -> Choice:
    """Choose an exemplar per target frame (a Viterbi path: cost of state, pose, expression and
    quality differences, plus :attr:`ChoiceConfig.switch_cost` per change, reset between segments).

    Args:
        region: a key of :data:`REGIONS`.
        before, after: ``(M, k)`` target states before and after the edit (:func:`state`).
        angles: ``(M, 3)`` the target frames' pose (degrees).
        blendshapes: ``(M, 52)`` the target frames' scores.
        segments: ``(M,)`` consecutive rows with equal ids are consecutive frames.
        indexes: candidate sources (the track first, then references).
        open_gap: the target face's open eye gap (for eye closure of every source).
        exclude: per index, ``(N_i,)`` rows never to use (e.g. frames being edited).
        config: choice settings.
        angles_before: ``(M, 3)`` the target frames' pose before the edit (default: ``angles``).
            For a region that a turn reveals (:attr:`Region.turn`) a candidate must be turned
            nearer the target pose than the frame itself, by :data:`TURN_GAIN_DEG` in yaw and
            pitch: a frame turned no nearer holds no more of the revealed skin than the frame.
    """
    config = config or ChoiceConfig()
    r = REGIONS[region]
    before, after = np.asarray(before, np.float64), np.asarray(after, np.float64)
    m = before.shape[0]
    need = need_of(region, before, after)
    asked = need > 0  # texture the row's own change asks for; a run's ease only takes what exists
    if r.run_need > 0:
        need = np.maximum(need, run_need(region, before, after, need, segments))
    motion = state_motion(region, after)
    if r.fade:  # skin has no state to switch at: its need moves smoothly (no on-off at a threshold)
        need = smooth_in_segments(need, np.asarray(segments), config.crossfade)
    cand_ids, cand_state, cand_angles, cand_bs, cand_q = [], [], [], [], []
    for sid, idx in enumerate(indexes):
        keep = idx.quality[region] >= config.min_quality
        if exclude is not None and exclude[sid] is not None:
            keep &= ~exclude[sid]
        rows = np.flatnonzero(keep)
        cand_ids.append(np.stack([np.full(rows.size, sid), rows], -1))
        cand_state.append(state(idx.features[region][rows], region, open_gap))
        cand_angles.append(idx.angles[rows])
        cand_bs.append(idx.blendshapes[rows])
        cand_q.append(idx.quality[region][rows])
    cands = np.concatenate(cand_ids).astype(np.int64) if cand_ids else np.zeros((0, 2), np.int64)
    scale = np.asarray(r.feature_scale)
    if cands.shape[0]:  # only candidates near some target state; at most MAX_CANDIDATES of them
        cs_all = np.concatenate(cand_state)
        targets = after[need > 0] if (need > 0).any() else after[:1]
        lo, hi = targets.min(axis=0) - scale, targets.max(axis=0) + scale
        if region.startswith("eye_"):  # gaze does not matter where the target or candidate hides the iris
            w = float(gaze_weight(hi[0]))
            centre = (lo[1:] + hi[1:]) / 2
            half = (hi[1:] - lo[1:]) / 2 + scale[1:] * (1.0 / max(w, 1e-6) - 1.0)
            lo[1:], hi[1:] = centre - half, centre + half
        near = np.flatnonzero(((cs_all >= lo) & (cs_all <= hi)).all(axis=1))
        if near.size > MAX_CANDIDATES:
            q = np.concatenate(cand_q)[near]
            near = np.sort(near[np.argsort(-q, kind="stable")[:MAX_CANDIDATES]])
        cands = cands[near]
        cand_state, cand_angles = [cs_all[near]], [np.concatenate(cand_angles)[near]]
        cand_bs, cand_q = [np.concatenate(cand_bs)[near]], [np.concatenate(cand_q)[near]]
    c = cands.shape[0]
    bsi = [_BS[n] for n in r.blendshapes]
    big = 1e9
    cost = np.full((m, c + 1), big)  # last column: no exemplar
    bridge = np.full((m, c), np.inf)  # state distances a candidate may be faded in at (bridge_runs)
    if c:
        cs, ca = np.concatenate(cand_state), np.concatenate(cand_angles)
        cb, cq = np.concatenate(cand_bs)[:, bsi], np.concatenate(cand_q)
        d = np.abs(after[:, None, :] - cs[None]) / scale  # (M, C, k)
        fit = d  # distance as laid on the target's geometry (the bridge fades in at its own state)
        if region.startswith("eye_"):  # the gaze counts as far as the iris shows in both
            d[..., 1:] *= gaze_weight(np.maximum(after[:, None, :1], cs[None, :, :1]))
            moving = np.clip(np.maximum(motion, np.append(motion[1:], 0.0)) / FREE_SWITCH_MOTION, 0.0, 1.0)
            fit = d.copy()  # a more closed lid's lash line is stretched over the wider opening
            fit[..., 0] *= np.where(cs[None, :, 0] > after[:, None, 0],
                                    scale[0] / closer_tolerance(region, after[:, None, 0], moving[:, None]), 1.0)
        if region == "mouth":  # a less open mouth is stretched open: the teeth grow, the lips thin
            fit = d.copy()
            # on a run's ease (texture only for the run's sake) hardly at all: beside frames that
            # show the opening's inside, a frame of the ease showing none flickers it off and on
            short = np.where(asked, LESS_OPEN_GAP, EASE_LESS_OPEN_GAP)[:, None]
            fit[..., 0] *= np.where(cs[None, :, 0] < after[:, None, 0], scale[0] / short, 1.0)
        dpose = np.abs(np.asarray(angles, np.float64)[:, None, :] - ca[None])
        pose_ok = dpose.max(axis=2) <= config.max_pose_deg
        feasible = (fit.max(axis=2) <= 1.0) & pose_ok
        # beyond one unit a candidate only counts in a feature where it lies past the target, on
        # the way from the state before the edit (a closed lid for a closing eye, never an open one)
        onward = (d <= 1.0) | ((cs[None] - after[:, None, :]) * (after - before)[:, None, :] > 0)
        bridge = np.where(pose_ok & onward.all(axis=2), d.max(axis=2), np.inf)
        if r.turn:
            ang = np.asarray(angles, np.float64)
            own = np.linalg.norm(ang[:, :2] - np.asarray(angles if angles_before is None else angles_before,
                                                           np.float64)[:, :2], axis=1)
            feasible &= np.linalg.norm(dpose[..., :2], axis=2) <= (own - TURN_GAIN_DEG)[:, None]
        dbs = np.linalg.norm(np.asarray(blendshapes, np.float64)[:, bsi][:, None, :] - cb[None], axis=2)
        total = ((fit ** 2).sum(2) + ((dpose / config.pose_scale_deg) ** 2).sum(2)
                 + (dbs / config.blendshape_scale) ** 2 + config.quality_weight * (1.0 - cq)[None])
        cost[:, :c] = np.where(feasible, total, big)
    has = (cost[:, :c] < big).any(axis=1) if c else np.zeros(m, bool)
    needed = need > 0
    cost[:, c] = np.where(needed & has, big, 0.0)
    cost[~needed, :c] = np.minimum(cost[~needed, :c] + 1.0, big)
    switch = config.switch_cost * np.clip(1.0 - motion / FREE_SWITCH_MOTION, 0.0, 1.0)
    path = viterbi(cost, np.asarray(segments), switch)
    first = np.where(path == c, -1, path).astype(np.int64)
    first[~needed] = -1
    usable = cost[:, :c] < big
    first, second, mix = crossfade(first, np.asarray(segments), config.crossfade, usable, motion < FREE_SWITCH_MOTION)
    unsupported = asked & ~has
    fade = None
    extend = None
    if r.fade:
        first, need = fade_runs(first, need, np.asarray(segments), config.crossfade)
        unsupported &= first < 0
    elif c and config.bridge_reach > 1:
        first, fade = bridge_runs(first, needed, np.asarray(segments), bridge, config.bridge_reach)
        unsupported &= first < 0
        rows = np.flatnonzero(fade < 1)
        if rows.size:  # a faded-in exemplar is laid on at its own state, not stretched to the row's
            extend = np.ones(m)
            k = np.argmax(d[rows, first[rows]], axis=1)
            change = (after - before)[rows, k]
            toward = cs[first[rows], k] - before[rows, k]
            moved = np.abs(change) > 1e-9
            extend[rows] = np.clip(np.where(moved, toward / np.where(moved, change, 1.0), 1.0), 1.0, MAX_EXTEND)
    return Choice(need, first, second, mix, unsupported, cands, fade, extend)


def state_motion(region: str, after: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(M,)``: how far the target state moves from the previous row to each row, in feature units
    (largest over the region's features; gaze weighed by :func:`gaze_weight`; row 0: 0).

    Args:
        region: a key of :data:`REGIONS`.
        after: ``(M, k)`` target states (:func:`state`).
    """
    a = np.asarray(after, np.float64)
    out = np.zeros(a.shape[0])
    if a.shape[0] < 2:
        return out
    d = np.abs(np.diff(a, axis=0)) / np.asarray(REGIONS[region].feature_scale)
    if region.startswith("eye_"):
        d[:, 1:] *= gaze_weight(np.maximum(a[1:, :1], a[:-1, :1]))
    out[1:] = d.max(axis=1)
    return out


def clamp_factor(region: str, before: NDArray[np.floating], after: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(M,)`` in (0, 1]: the scale of the edit's state change that keeps it within the region's
    :attr:`Region.warp_limit` (1 where it already is)."""
    r = REGIONS[region]
    change = np.abs(np.asarray(after, np.float64) - np.asarray(before, np.float64))
    limit = np.asarray(r.warp_limit)
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(change > limit, limit / np.maximum(change, 1e-12), 1.0)
    return np.clip(f.min(axis=1), 0.0, 1.0)
