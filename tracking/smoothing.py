"""Zero-phase smoothing of a track segment's signals, and a causal fixed-lag variant.

Three channels, each with its own filter and parameters (see ``tracking.filters`` for the filters
and ``bench/smoothing.py`` for the measurements that chose the defaults):

- landmarks, split into a per-frame 2-D similarity (centroid, rotation, scale; z offset) and the
  non-rigid residual in the face's own frame. MediaPipe's frame-to-frame landmark noise is nearly
  all shared by the whole mesh (neighbouring landmarks' high-frequency residuals correlate 0.96 to
  0.99 on the fixture clips), so it lives in the few similarity parameters, while expressions
  (blinks, speech) live in the residual; each part is smoothed on its own evidence;
- pose: the facial transformation matrix as quaternion, translation and log-scale; the angles are
  decomposed from the smoothed rotation;
- blendshapes, each score on its own.

The whole-segment smoothing is zero phase; :class:`CausalSmoother` runs it on a sliding window for
streaming use with a declared latency.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from scipy.spatial.transform import Rotation

from tracking.errors import ConfigError, InputError
from tracking.filters import ChannelSmoothing, Method, noise_sigma, smooth_series
from tracking.observation import NUM_MESH_LANDMARKS
from tracking.pose import euler_from_rotations
from tracking.tracks import TrackedFace


@dataclass(frozen=True)
class SmoothingConfig:
    """Per-channel smoothing of a track segment.

    Defaults were chosen by two benchmarks together. ``bench/smoothing.py`` (synthetic tracks with
    2-6 frame blinks) alone favoured evidence thresholds of 1.5/3.0 (landmarks) and 2/4 (rigid):
    blinks kept at 0.90 or more, but on real faces moved by known motion (``bench/track_quality.py``)
    that cut the jitter of the landmark error only 2.9-5.2x (1 of 5 clips at the 5x target). With
    2.25/4.5 and 4/8 the real-face clips reach 8.6-11.9x on 4 of 5 (the fifth, at three times the
    normal head speed, 2.8x), error 0.82-0.95 of raw, while synthetic blinks keep 0.91 of their
    depth on average and 0.78 at worst (one noisy 25 fps draw). Landmark noise makes the warp
    shimmer in every edited frame; a blink 10% shallower in the tracked data is hardly visible.

    Attributes:
        landmarks: filter of the landmarks' non-rigid residual (inter-ocular units).
        rigid: filter of the landmarks' per-frame similarity (centroid, angle, log-scale, z).
        pose: filter of the facial transformation matrices.
        blendshapes: filter of the blendshape scores.
        evidence_neighbours: ``adaptive`` landmarks: how many nearest landmarks (itself included)
            pool their evidence (1: each landmark on its own).
    """

    landmarks: ChannelSmoothing = field(
        default_factory=lambda: ChannelSmoothing(evidence_low=2.25, evidence_high=4.5)
    )
    rigid: ChannelSmoothing = field(default_factory=lambda: ChannelSmoothing(evidence_low=4.0, evidence_high=8.0))
    pose: ChannelSmoothing = field(default_factory=lambda: ChannelSmoothing(sigma_s=0.16))
    blendshapes: ChannelSmoothing = field(default_factory=lambda: ChannelSmoothing(sigma_s=0.16))
    evidence_neighbours: int = 1

    def __post_init__(self) -> None:
        for name in ("landmarks", "rigid", "pose", "blendshapes"):
            if not isinstance(getattr(self, name), ChannelSmoothing):
                raise ConfigError(f"smoothing: {name} must be a ChannelSmoothing")
        if self.evidence_neighbours < 1:
            raise ConfigError(f"smoothing: evidence_neighbours must be >= 1, got {self.evidence_neighbours}")


# --- pose as a vector -------------------------------------------------------------------------

#: Quaternion components are multiplied by this so that one unit is about one degree.
_QUAT_TO_DEG = 360.0 / np.pi


def transforms_to_vectors(transforms: NDArray[np.floating]) -> NDArray[np.float64]:
    """Facial transformation matrices as smoothable vectors.

    Args:
        transforms: ``(N, 4, 4)`` canonical face space (cm) to camera space, ``[s R | t]``.

    Returns:
        ``(N, 8)`` float64: quaternion (x, y, z, w) times 360/pi (about degrees for small
        rotations), sign-continuous from sample to sample; translation (3, cm); log scale.
    """
    m = np.asarray(transforms, dtype=np.float64)
    lin = m[:, :3, :3]
    scale = np.cbrt(np.abs(np.linalg.det(lin)))
    quat = Rotation.from_matrix(lin / scale[:, None, None]).as_quat()
    for i in range(1, quat.shape[0]):
        if np.dot(quat[i], quat[i - 1]) < 0:
            quat[i] = -quat[i]
    return np.concatenate([quat * _QUAT_TO_DEG, m[:, :3, 3], np.log(scale)[:, None]], axis=1)


def vectors_to_transforms(vectors: NDArray[np.floating]) -> NDArray[np.float32]:
    """Inverse of :func:`transforms_to_vectors` (the quaternion is renormalized): ``(N, 4, 4)``."""
    v = np.asarray(vectors, dtype=np.float64)
    rot = Rotation.from_quat(v[:, :4] / _QUAT_TO_DEG).as_matrix()
    out = np.zeros((v.shape[0], 4, 4))
    out[:, :3, :3] = rot * np.exp(v[:, 7])[:, None, None]
    out[:, :3, 3] = v[:, 4:7]
    out[:, 3, 3] = 1.0
    return out.astype(np.float32)


def angles_from_transforms(transforms: NDArray[np.floating]) -> NDArray[np.float64]:
    """Yaw, pitch, roll in degrees of whole tracks (``tracking.pose.euler_from_rotations`` after
    removing each matrix's uniform scale; roll clockwise-positive, see FaceObservation).

    Args:
        transforms: ``(N, 4, 4)``; any uniform scale of the rotation block is removed.

    Returns:
        ``(N, 3)`` float64 degrees (yaw, pitch, roll).
    """
    lin = np.asarray(transforms, dtype=np.float64)[:, :3, :3]
    return euler_from_rotations(lin / np.cbrt(np.abs(np.linalg.det(lin)))[:, None, None])


@dataclass(frozen=True, eq=False)
class SmoothedSegment:
    """A segment's smoothed signals, one row per sample.

    Attributes:
        landmarks: ``(N, 478, 3)`` float32 pixels.
        blendshapes: ``(N, 52)`` float32 in [0, 1].
        transforms: ``(N, 4, 4)`` float32.
        angles: ``(N, 3)`` float32 degrees (yaw, pitch, roll) of ``transforms``.
    """

    landmarks: NDArray[np.float32]
    blendshapes: NDArray[np.float32]
    transforms: NDArray[np.float32]
    angles: NDArray[np.float32]


def inter_ocular(landmarks: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(N,)`` distance between the eye centres of ``(N, 478, 2+)`` landmarks (pixels)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    right = (lm[:, 33, :2] + lm[:, 133, :2]) / 2.0
    left = (lm[:, 362, :2] + lm[:, 263, :2]) / 2.0
    return np.linalg.norm(left - right, axis=1)


def landmark_neighbours(landmarks: NDArray[np.floating], count: int = 6) -> NDArray[np.intp]:
    """``(K, count)`` indices of each landmark's nearest landmarks (itself first) in the image.

    Args:
        landmarks: ``(N, K, 2+)`` pixels; their median over frames is the reference layout.
    """
    ref = np.median(np.asarray(landmarks, dtype=np.float64)[..., :2], axis=0)
    dist = np.linalg.norm(ref[:, None, :] - ref[None, :, :], axis=2)
    return np.argsort(dist, axis=1, kind="stable")[:, : min(count, ref.shape[0])]


def _shrunk_sigma(sigma: NDArray[np.float64], n: int, prior_weight: float = 20.0) -> NDArray[np.float64]:
    """Per-element sigmas pulled toward their median; short segments lean on the median."""
    pooled = float(np.median(sigma))
    return np.sqrt((n * sigma**2 + prior_weight * pooled**2) / (n + prior_weight))


def rigid_split(
    landmarks: NDArray[np.floating],
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Split landmarks into a per-frame 2-D similarity and a non-rigid residual.

    Frame ``i`` is ``xy = c_i + s_i R(a_i) (ref + res_i - c_ref)_xy`` and
    ``z = z_i + s_i (ref + res_i - c_ref)_z``, fitted (least squares, Umeyama) over the mesh
    landmarks to a reference: the mean of all frames aligned to their per-coordinate median.

    Args:
        landmarks: ``(N, 478, 3)`` pixels.

    Returns:
        ``params`` ``(N, 5)``: centroid x, y (pixels), angle (radians, unwrapped), log-scale,
        centroid z; ``residual`` ``(N, 478, 3)`` in reference pixels; ``reference`` ``(478, 3)``.
    """
    lm = np.asarray(landmarks, dtype=np.float64)
    mesh = slice(0, min(NUM_MESH_LANDMARKS, lm.shape[1]))
    ref = np.median(lm, axis=0)
    for _ in range(2):
        cen = lm[:, mesh].mean(axis=1)  # (N, 3)
        ref_c = ref[mesh].mean(axis=0)
        a = ref[mesh, :2] - ref_c[:2]
        b = lm[:, mesh, :2] - cen[:, None, :2]
        sxx = np.einsum("kj,nkj->n", a, b)
        sxy = np.einsum("k,nk->n", a[:, 0], b[..., 1]) - np.einsum("k,nk->n", a[:, 1], b[..., 0])
        angle = np.unwrap(np.arctan2(sxy, sxx))
        scale = np.maximum(np.hypot(sxx, sxy) / max(float((a**2).sum()), 1e-12), 1e-9)
        cos, sin = np.cos(angle), np.sin(angle)
        d = (lm - cen[:, None, :]) / scale[:, None, None]
        local = np.stack([cos[:, None] * d[..., 0] + sin[:, None] * d[..., 1],
                          -sin[:, None] * d[..., 0] + cos[:, None] * d[..., 1], d[..., 2]], axis=-1)
        ref = local.mean(axis=0) + ref_c
    params = np.stack([cen[:, 0], cen[:, 1], angle, np.log(scale), cen[:, 2]], axis=1)
    return params, local + ref_c - ref, ref


def rigid_join(
    params: NDArray[np.floating], residual: NDArray[np.floating], reference: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Inverse of :func:`rigid_split`: ``(N, 478, 3)`` pixels."""
    p = np.asarray(params, dtype=np.float64)
    mesh = slice(0, min(NUM_MESH_LANDMARKS, reference.shape[0]))
    local = np.asarray(residual, dtype=np.float64) + reference - reference[mesh].mean(axis=0)
    scale = np.exp(p[:, 3])[:, None]
    cos, sin = np.cos(p[:, 2])[:, None], np.sin(p[:, 2])[:, None]
    x = p[:, 0, None] + scale * (cos * local[..., 0] - sin * local[..., 1])
    y = p[:, 1, None] + scale * (sin * local[..., 0] + cos * local[..., 1])
    z = p[:, 4, None] + scale * local[..., 2]
    return np.stack([x, y, z], axis=-1)


#: Long segments are smoothed in windows of this many samples (memory stays flat in length) ...
_CHUNK = 2048
#: ... overlapping by this many on each side: more than a local filter's reach (its half-window,
#: the light level's and the one-sample widening of the blend weights).
_CHUNK_MARGIN = 160


def _chunked_residual(
    times: NDArray[np.float64], residual: NDArray[np.float64], params: ChannelSmoothing,
    sigma: NDArray[np.float64], neighbours: NDArray[np.intp] | None,
) -> NDArray[np.float64]:
    n = residual.shape[0]
    if n <= _CHUNK + 2 * _CHUNK_MARGIN or params.method in (Method.RTS, Method.ONE_EURO):
        return smooth_series(times, residual, params, sigma, 2, neighbours, 2)
    out = np.empty_like(residual)
    for start in range(0, n, _CHUNK):
        lo, hi = max(0, start - _CHUNK_MARGIN), min(n, start + _CHUNK + _CHUNK_MARGIN)
        part = smooth_series(times[lo:hi], residual[lo:hi], params, sigma, 2, neighbours, 2)
        out[start:min(n, start + _CHUNK)] = part[start - lo:start - lo + min(_CHUNK, n - start)]
    return out


def smooth_landmarks(
    times: NDArray[np.float64], landmarks: NDArray[np.floating], config: SmoothingConfig
) -> NDArray[np.float64]:
    """Smooth ``(N, 478, 3)`` pixel landmarks: similarity and residual apart (see the module)."""
    lm = np.asarray(landmarks, dtype=np.float64)
    t = np.asarray(times, dtype=np.float64)
    n = lm.shape[0]
    if n < 3:
        return lm.copy()
    unit = max(float(np.median(inter_ocular(lm))), 1e-6)
    params, residual, reference = rigid_split(lm / unit)
    params_s = smooth_series(t, params, config.rigid, vector_axis=1)
    nbrs = landmark_neighbours(lm, config.evidence_neighbours) if config.evidence_neighbours > 1 else None
    # the residual's noise from (at most) evenly spread windows of the segment
    starts = np.linspace(0, max(n - _CHUNK, 0), num=max(1, min(4, n // _CHUNK))).astype(int)
    sigma = np.median([noise_sigma(t[s:s + _CHUNK], residual[s:s + _CHUNK]) for s in starts], axis=0)
    sigma = _shrunk_sigma(sigma, min(n, _CHUNK))
    residual_s = _chunked_residual(t, residual, config.landmarks, sigma, nbrs)
    return rigid_join(params_s, residual_s, reference) * unit


def smooth_segment(
    times: NDArray[np.float64],
    landmarks: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    transforms: NDArray[np.floating],
    config: SmoothingConfig,
) -> SmoothedSegment:
    """Smooth one track segment (no cut and no long gap inside) over its whole length.

    Args:
        times: ``(N,)`` strictly increasing seconds.
        landmarks: ``(N, 478, 3)`` pixels.
        blendshapes: ``(N, 52)`` scores.
        transforms: ``(N, 4, 4)`` facial transformation matrices.
        config: per-channel parameters.

    Returns:
        The smoothed segment. Landmarks are smoothed in units of the segment's median
        inter-ocular distance, so parameters do not depend on the face's size in pixels.
    """
    n = np.asarray(landmarks).shape[0]
    lm_s = smooth_landmarks(times, landmarks, config)
    bs_sigma = _shrunk_sigma(noise_sigma(times, blendshapes), n)
    bs_s = np.clip(smooth_series(times, blendshapes, config.blendshapes, bs_sigma), 0.0, 1.0)
    vec_s = smooth_series(times, transforms_to_vectors(transforms), config.pose, vector_axis=1)
    tf_s = vectors_to_transforms(vec_s)
    return SmoothedSegment(
        landmarks=lm_s.astype(np.float32),
        blendshapes=bs_s.astype(np.float32),
        transforms=tf_s,
        angles=angles_from_transforms(tf_s).astype(np.float32),
    )


def _with_smoothed(face: TrackedFace, seg: SmoothedSegment, row: int) -> TrackedFace:
    lm = seg.landmarks[row]
    yaw, pitch, roll = (float(a) for a in seg.angles[row])
    box = np.concatenate([lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)]).astype(np.float32)
    obs = replace(
        face.observation, landmarks=lm, blendshapes=seg.blendshapes[row], transform=seg.transforms[row],
        yaw=yaw, pitch=pitch, roll=roll, box=box,
    )
    return replace(face, observation=obs)


class CausalSmoother:
    """Fixed-lag smoothing of one track for streaming use (a :class:`tracking.stage.Stage`).

    Each face pushed is returned ``latency`` pushes later, smoothed by :func:`smooth_segment`
    over a window of up to ``history`` earlier and ``latency`` later samples of the same track. With
    ``latency`` and ``history`` at least the heavy fit's reach (3 sigma: 9 frames at 25 fps) every
    sample sees the same neighbours as in the whole-segment smoothing, which it then matches up to
    the window's own noise estimate and reference shape; a shorter latency trades some
    zero-phase accuracy for delay (``bench/smoothing.py`` reports 2, 4 and 8 frames). ``reset`` (at
    a cut) closes the window: faces held are smoothed with what came before the cut and returned by
    the next ``push`` or ``flush``.

    Args:
        config: the smoothing parameters.
        latency: look-ahead in samples (the stage's ``latency``).
        history: how many past samples the window keeps.
    """

    def __init__(self, config: SmoothingConfig | None = None, latency: int = 4, history: int = 24) -> None:
        if latency < 0 or history < 0:
            raise ConfigError(f"causal smoother: latency and history must be >= 0, got {latency}, {history}")
        self.config = config or SmoothingConfig()
        self.latency = latency
        self.history = history
        self._window: deque[TrackedFace] = deque(maxlen=history + latency + 1)
        self._held = 0  # newest samples in the window not yet returned
        self._ready: list[TrackedFace] = []

    def _smooth_window(self) -> SmoothedSegment:
        faces = list(self._window)
        return smooth_segment(
            np.array([f.time for f in faces]),
            np.stack([f.observation.landmarks for f in faces]),
            np.stack([f.observation.blendshapes for f in faces]),
            np.stack([f.observation.transform for f in faces]),
            self.config,
        )

    def push(self, item: TrackedFace) -> list[TrackedFace]:
        """Take the track's next face; return the face ``latency`` samples back, smoothed."""
        if self._window and item.track_id != self._window[-1].track_id:
            raise InputError(
                f"frame {item.observation.frame_index}: causal smoother got track {item.track_id} "
                f"after track {self._window[-1].track_id}; use one smoother per track"
            )
        self._window.append(item)
        self._held += 1
        out, self._ready = self._ready, []
        if self._held > self.latency:
            seg = self._smooth_window()
            row = len(self._window) - 1 - self.latency
            out.append(_with_smoothed(self._window[row], seg, row))
            self._held -= 1
        return out

    def _drain(self) -> list[TrackedFace]:
        if not self._held:
            return []
        seg = self._smooth_window()
        first = len(self._window) - self._held
        out = [_with_smoothed(self._window[r], seg, r) for r in range(first, len(self._window))]
        self._held = 0
        return out

    def flush(self) -> list[TrackedFace]:
        """Return every face still held, smoothed with the samples there are."""
        out = self._ready + self._drain()
        self._ready = []
        self._window.clear()
        return out

    def reset(self) -> None:
        """Forget the window at a cut; held faces come back, smoothed, from the next call."""
        self._ready.extend(self._drain())
        self._window.clear()
