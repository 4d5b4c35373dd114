"""Association of per-frame faces into tracks, and face identity across breaks by shape.

:class:`Associator` is a streaming stage: it receives each frame's faces and gives each a track id,
by Hungarian assignment on a cost of box overlap and landmark distance (in inter-ocular units)
against each live track's constant-velocity prediction, so that faces crossing keep their ids.
A track not matched for ``max_missed_s`` is closed. At a shot cut :meth:`Associator.reset` closes
every track: position says nothing across a cut.

Across cuts and long gaps the id comes back by shape: :func:`shape_signature` is the mean,
Procrustes-aligned 3-D shape of landmarks that expressions move little, and
:func:`assign_identities` gives a segment an earlier identity when its signature is within
``max_distance`` of it and no other identity is nearly as close.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.optimize import linear_sum_assignment

from tracking.errors import ConfigError, InputError
from tracking.observation import NUM_MESH_LANDMARKS, FaceObservation

#: Cost standing for "not allowed" in the assignment matrices.
_FORBIDDEN = 1.0e6


@dataclass(frozen=True)
class AssociationConfig:
    """Frame-to-frame association.

    Attributes:
        landmark_weight: weight of the landmark distance (inter-ocular units) against ``1 - IoU``.
        max_landmark_distance: gate: a face whose mean landmark distance from a track's
            prediction exceeds this (inter-ocular units) cannot join that track ...
        gate_growth_per_s: ... plus this much per second since the track was last seen.
        max_missed_s: a track unmatched for longer than this is closed.
        max_extrapolation_s: the constant-velocity prediction runs at most this far ahead.
        velocity_smoothing: weight of the newest velocity in the track's running velocity.
        duplicate_iou: a face no track takes that overlaps another face of its frame at least this
            much (IoU) is a second reading of that face (MediaPipe's VIDEO mode sometimes returns
            a tracked face and a fresh detection of it) and is dropped, instead of starting a
            track that takes the face over for a few frames.
    """

    landmark_weight: float = 1.0
    max_landmark_distance: float = 1.0
    gate_growth_per_s: float = 2.0
    max_missed_s: float = 1.0
    max_extrapolation_s: float = 0.3
    velocity_smoothing: float = 0.5
    duplicate_iou: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.duplicate_iou <= 1:
            raise ConfigError(f"association: duplicate_iou must be in (0, 1], got {self.duplicate_iou}")
        if min(self.landmark_weight, self.max_landmark_distance, self.gate_growth_per_s,
               self.max_missed_s, self.max_extrapolation_s) < 0:
            raise ConfigError(f"association: parameters must be >= 0, got {self}")
        if not 0 < self.velocity_smoothing <= 1:
            raise ConfigError(f"association: velocity_smoothing must be in (0, 1], got {self.velocity_smoothing}")


@dataclass(frozen=True, eq=False)
class FrameFaces:
    """The faces found in one frame (the associator's input).

    Attributes:
        frame_index: the frame's index in presentation order.
        time: the frame's presentation time in seconds.
        faces: the frame's observations, any order (empty when no face was found).
    """

    frame_index: int
    time: float
    faces: tuple[FaceObservation, ...]


@dataclass(frozen=True, eq=False)
class TrackedFace:
    """One observation with the id of the track it belongs to and its frame's time (seconds)."""

    track_id: int
    time: float
    observation: FaceObservation


@dataclass(frozen=True, eq=False)
class AssociatedFrame:
    """One frame's faces with track ids, ordered by id (the associator's output)."""

    frame_index: int
    time: float
    faces: tuple[TrackedFace, ...]


def box_iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Pairwise intersection over union of ``(A, 4)`` and ``(B, 4)`` ``(x0, y0, x1, y1)`` boxes: ``(A, B)``."""
    a = np.asarray(a, dtype=np.float64)[:, None, :]
    b = np.asarray(b, dtype=np.float64)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    area = lambda x: (x[..., 2] - x[..., 0]) * (x[..., 3] - x[..., 1])  # noqa: E731
    union = area(a) + area(b) - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1.0), 0.0)


class _LiveTrack:
    """Mutable state of one open track (private to the associator)."""

    def __init__(self, track_id: int, face: FaceObservation, time: float) -> None:
        self.track_id = track_id
        self.velocity = np.zeros(4)  # box corners, pixels per second
        self.seen = 0
        self.update(face, time)

    def update(self, face: FaceObservation, time: float, velocity_smoothing: float = 1.0) -> None:
        box = face.box.astype(np.float64)
        if self.seen:
            step = (box - self.box) / max(time - self.time, 1e-6)
            weight = 1.0 if self.seen == 1 else velocity_smoothing
            self.velocity = weight * step + (1.0 - weight) * self.velocity
        self.box = box
        self.points = face.landmarks[:NUM_MESH_LANDMARKS, :2].astype(np.float64)
        self.iod = max(face.inter_ocular, 1.0)
        self.time = time
        self.seen += 1

    def predict(self, time: float, max_extrapolation_s: float) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        """Predicted box ``(4,)`` and mesh landmarks ``(468, 2)`` at ``time``."""
        ahead = min(max(time - self.time, 0.0), max_extrapolation_s)
        box = self.box + self.velocity * ahead
        old_c = (self.box[:2] + self.box[2:]) / 2
        new_c = (box[:2] + box[2:]) / 2
        old_size = max(float(np.mean(self.box[2:] - self.box[:2])), 1e-6)
        scale = max(float(np.mean(box[2:] - box[:2])), 1e-6) / old_size
        return box, new_c + (self.points - old_c) * scale


class Associator:
    """Streaming association of faces into tracks (a :class:`tracking.stage.Stage`, latency 0).

    Track ids are never reused within one associator. ``push`` returns one
    :class:`AssociatedFrame` per :class:`FrameFaces`; ``reset`` closes every track (shot cut).
    """

    latency = 0

    def __init__(self, config: AssociationConfig | None = None) -> None:
        self.config = config or AssociationConfig()
        self._live: list[_LiveTrack] = []
        self._next_id = 0
        self._last_time = -np.inf

    def _expire(self, time: float) -> None:
        self._live = [tr for tr in self._live if time - tr.time <= self.config.max_missed_s + 1e-9]

    def cost_matrix(self, time: float, faces: Sequence[FaceObservation]) -> NDArray[np.float64]:
        """Assignment cost ``(live tracks, faces)``; gated pairs cost ``1e6``."""
        cfg = self.config
        cost = np.full((len(self._live), len(faces)), _FORBIDDEN)
        if not faces or not self._live:
            return cost
        boxes = np.stack([f.box for f in faces]).astype(np.float64)
        points = np.stack([f.landmarks[:NUM_MESH_LANDMARKS, :2] for f in faces]).astype(np.float64)
        for i, tr in enumerate(self._live):
            box, pred = tr.predict(time, cfg.max_extrapolation_s)
            iou = box_iou(box[None], boxes)[0]
            dist = np.linalg.norm(points - pred[None], axis=2).mean(axis=1) / tr.iod
            gate = cfg.max_landmark_distance + cfg.gate_growth_per_s * (time - tr.time)
            cost[i] = np.where(dist <= gate, (1.0 - iou) + cfg.landmark_weight * dist, _FORBIDDEN)
        return cost

    def push(self, item: FrameFaces) -> list[AssociatedFrame]:
        """Give each face of the frame a track id (continuing a live track or starting one); a
        duplicate of another face of the frame (see ``duplicate_iou``) is left out."""
        if item.time <= self._last_time:
            raise InputError(f"frame {item.frame_index}: time {item.time} s does not increase")
        self._last_time = item.time
        self._expire(item.time)
        cost = self.cost_matrix(item.time, item.faces)
        ids: list[int] = [-1] * len(item.faces)
        if cost.size:
            rows, cols = linear_sum_assignment(cost)
            for r, c in zip(rows, cols):
                if cost[r, c] < _FORBIDDEN:
                    tr = self._live[r]
                    tr.update(item.faces[c], item.time, self.config.velocity_smoothing)
                    ids[c] = tr.track_id
        boxes = np.stack([f.box for f in item.faces]).astype(np.float64) if item.faces else np.zeros((0, 4))
        overlap = box_iou(boxes, boxes)
        for c in sorted(range(len(item.faces)), key=lambda c: -item.faces[c].confidence):
            if ids[c] >= 0:
                continue
            if any(ids[o] >= 0 and overlap[c, o] >= self.config.duplicate_iou for o in range(len(item.faces)) if o != c):
                continue  # a second reading of a face already placed: dropped
            self._live.append(_LiveTrack(self._next_id, item.faces[c], item.time))
            ids[c] = self._next_id
            self._next_id += 1
        faces = sorted((TrackedFace(i, item.time, f) for i, f in zip(ids, item.faces) if i >= 0),
                       key=lambda f: f.track_id)
        return [AssociatedFrame(item.frame_index, item.time, tuple(faces))]

    def flush(self) -> list[AssociatedFrame]:
        """Nothing is held back."""
        return []

    def reset(self) -> None:
        """Close every track (at a shot cut); the next faces start new tracks."""
        self._live = []

    def predicted_boxes(self, time: float) -> dict[int, NDArray[np.float32]]:
        """Constant-velocity predicted ``(4,)`` float32 boxes (pixels) of the tracks open at ``time``."""
        live = [tr for tr in self._live if time - tr.time <= self.config.max_missed_s + 1e-9]
        return {tr.track_id: tr.predict(time, self.config.max_extrapolation_s)[0].astype(np.float32) for tr in live}

    def boxes_to_recover(
        self, time: float, faces: Sequence[FaceObservation], min_iou: float = 0.3
    ) -> tuple[tuple[int, ...], NDArray[np.float32]]:
        """Tracks expected at ``time`` that no face found overlaps: where to look again.

        Args:
            time: the frame's time in seconds.
            faces: what the landmarker found in the frame.
            min_iou: a face overlapping a predicted box this much counts as that track's.

        Returns:
            The track ids and their predicted boxes ``(K, 4)`` float32, ready for
            ``Landmarker.detect_in_regions(frame, boxes)``.
        """
        pred = self.predicted_boxes(time)
        ids = [i for i, b in pred.items()
               if not faces or box_iou(b[None], np.stack([f.box for f in faces]))[0].max() < min_iou]
        boxes = np.stack([pred[i] for i in ids]) if ids else np.zeros((0, 4), np.float32)
        return tuple(ids), boxes.astype(np.float32)


def associate(frames: Sequence[FrameFaces], cut_frames: Sequence[int] = (),
              config: AssociationConfig | None = None) -> list[AssociatedFrame]:
    """Run an :class:`Associator` over a whole clip, resetting it at each cut frame."""
    assoc = Associator(config)
    cuts = set(int(c) for c in cut_frames)
    out: list[AssociatedFrame] = []
    for item in frames:
        if item.frame_index in cuts:
            assoc.reset()
        out.extend(assoc.push(item))
    return out


# --- identity by shape -----------------------------------------------------------------------

#: Landmarks whose 3-D shape identifies a face while expressions move them little: nose, forehead,
#: eye corners, upper face outline and brows (mouth, lids, cheeks and jaw are left out). Chosen by
#: the same/different-person separation measured in ``bench/signatures.py``.
SIGNATURE_LANDMARKS: tuple[int, ...] = (
    1, 4, 5, 6, 168, 197, 195, 2, 98, 327, 129, 358, 19, 94, 48, 278, 115, 344, 220, 440,  # nose
    10, 151, 9, 8, 109, 67, 103, 338, 297, 332, 69, 299, 108, 337,  # forehead
    33, 133, 362, 263, 130, 359, 243, 463,  # eye corners
    54, 21, 162, 127, 234, 93, 284, 251, 389, 356, 454, 323,  # upper outline
    70, 63, 105, 66, 107, 300, 293, 334, 296, 336,  # brows
)

#: Largest signature distance still taken as the same person, measured by ``bench/signatures.py``
#: on 12-frame segments of five people (fixture clips, MediaPipe VIDEO mode): same person median
#: 0.017, p95 0.032, p99 0.038, max 0.040; different people min 0.030, p1 0.034, p5 0.039, median
#: 0.062. MediaPipe's 3-D shape tells people apart only weakly: at this threshold 2.3% of
#: same-person pairs fall above it (one person split into two ids) and 2.1% of different-person
#: pairs below it (two people merged), before the ambiguity test in :func:`assign_identities`.
SAME_FACE_MAX_DISTANCE = 0.035


def _normalize(shape: NDArray[np.float64]) -> NDArray[np.float64]:
    centred = shape - shape.mean(axis=0)
    return centred / max(float(np.sqrt((centred**2).sum(axis=1).mean())), 1e-12)


def _rotate_onto(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    """``a`` rotated (no reflection) to best fit ``b``; both centred ``(K, D)``."""
    u, _, vt = np.linalg.svd(a.T @ b)
    d = np.ones(a.shape[1])
    d[-1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    return a @ ((u * d) @ vt)


def shape_signature(landmarks: NDArray[np.floating]) -> NDArray[np.float64]:
    """Pose-free mean shape of a face over frames.

    Each frame's :data:`SIGNATURE_LANDMARKS` (x, y, z pixels) are centred and scaled to unit RMS
    radius, rotated onto a running mean (generalized Procrustes, three rounds) and averaged.

    Args:
        landmarks: ``(N, 478, 3)`` or ``(478, 3)`` pixels, z in the same units.

    Returns:
        ``(K, 3)`` float64 centred shape of unit RMS radius, K = ``len(SIGNATURE_LANDMARKS)``.
    """
    lm = np.asarray(landmarks)
    if lm.ndim == 2:
        lm = lm[None]
    if lm.ndim != 3 or lm.shape[0] == 0 or lm.shape[2] != 3:
        raise InputError(f"shape signature: landmarks must be (N, 478, 3), got {lm.shape}")
    # only the signature landmarks in float64: the whole set would be 11.5 kB a frame
    shapes = [_normalize(f) for f in np.asarray(lm[:, list(SIGNATURE_LANDMARKS)], dtype=np.float64)]
    mean = shapes[0]
    for _ in range(3):
        mean = _normalize(np.mean([_rotate_onto(s, mean) for s in shapes], axis=0))
    return mean


def signature_distance(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Procrustes distance (RMS after the best rotation) between two :func:`shape_signature` s."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    return float(np.sqrt(((_rotate_onto(a, b) - b) ** 2).sum(axis=1).mean()))


@dataclass(frozen=True, eq=False)
class SegmentSummary:
    """A track segment as identity matching sees it.

    Attributes:
        provisional_id: the associator's track id (segments the associator linked share it).
        start_frame, end_frame: first and last frame index, inclusive.
        signature: ``(K, 3)`` :func:`shape_signature` of the segment's measured frames.
        frame_count: measured frames in the segment (weights the identity's mean signature).
    """

    provisional_id: int
    start_frame: int
    end_frame: int
    signature: NDArray[np.float64]
    frame_count: int


def assign_identities(
    segments: Sequence[SegmentSummary],
    max_distance: float = SAME_FACE_MAX_DISTANCE,
    linked_discount: float = 0.5,
    ambiguity_ratio: float = 0.8,
) -> list[int]:
    """Give each segment an identity, reusing an earlier one when the shape matches.

    Segments are taken in order of their first frame; those starting on the same frame are
    matched together (Hungarian). A segment may take an identity none of whose segments overlaps
    it in time, when its signature distance to that identity's mean is at most ``max_distance``
    (multiplied by ``linked_discount`` first when the associator linked them), and when no other
    identity is within ``1 / ambiguity_ratio`` of the best distance: an ambiguous match starts a new
    identity, because merging two people is worse than splitting one.

    Args:
        segments: every segment of the clip.
        max_distance: :func:`signature_distance` threshold for "same face".
        linked_discount: factor on the distance for segments the associator linked.
        ambiguity_ratio: best / second-best distance must be below this to reuse an identity.

    Returns:
        The identity (final track id) of each segment, in input order; ids are numbered from 0 in
        order of first appearance.
    """
    order = sorted(range(len(segments)), key=lambda i: (segments[i].start_frame, segments[i].provisional_id))
    result = [-1] * len(segments)
    idents: list[dict] = []  # signature, weight, end, provisional ids
    pos = 0
    while pos < len(order):
        start = segments[order[pos]].start_frame
        batch = [i for i in order[pos:] if segments[i].start_frame == start]
        pos += len(batch)
        open_ids = [k for k, idn in enumerate(idents) if idn["end"] < start]
        dist = np.full((len(batch), len(open_ids)), np.inf)
        for r, i in enumerate(batch):
            for c, k in enumerate(open_ids):
                d = signature_distance(segments[i].signature, idents[k]["signature"])
                if segments[i].provisional_id in idents[k]["provisional"]:
                    d *= linked_discount
                dist[r, c] = d
        taken: dict[int, int] = {}
        if dist.size:
            cost = np.where(dist <= max_distance, dist, _FORBIDDEN)
            for r, c in zip(*linear_sum_assignment(cost)):
                if cost[r, c] >= _FORBIDDEN:
                    continue
                others = np.delete(dist[r], c)
                if others.size and others.min() * ambiguity_ratio <= dist[r, c]:
                    continue
                taken[r] = open_ids[c]
        for r, i in enumerate(batch):
            seg = segments[i]
            if r in taken:
                idn = idents[taken[r]]
                w0, w1 = idn["weight"], max(seg.frame_count, 1)
                aligned = _rotate_onto(seg.signature, idn["signature"])
                idn["signature"] = _normalize((w0 * idn["signature"] + w1 * aligned) / (w0 + w1))
                idn["weight"] = w0 + w1
                idn["end"] = max(idn["end"], seg.end_frame)
                idn["provisional"].add(seg.provisional_id)
                result[i] = taken[r]
            else:
                idents.append({"signature": seg.signature, "weight": max(seg.frame_count, 1),
                               "end": seg.end_frame, "provisional": {seg.provisional_id}})
                result[i] = len(idents) - 1
    return result
