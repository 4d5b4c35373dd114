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
from tracking.filters import ChannelSmoothing, Method, noise_sigma, reach, smooth_series
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
    eyes = np.asarray(np.asarray(landmarks)[:, [33, 133, 362, 263], :2], dtype=np.float64)
    right = (eyes[:, 0] + eyes[:, 1]) / 2.0
    left = (eyes[:, 2] + eyes[:, 3]) / 2.0
    return np.linalg.norm(left - right, axis=1)


def landmark_neighbours(landmarks: NDArray[np.floating], count: int = 6) -> NDArray[np.intp]:
    """``(K, count)`` indices of each landmark's nearest landmarks (itself first) in the image.

    Args:
        landmarks: ``(N, K, 2+)`` pixels; their median over frames is the reference layout.
    """
    ref = _column_median(np.asarray(landmarks), 1.0)[:, :2]
    dist = np.linalg.norm(ref[:, None, :] - ref[None, :, :], axis=2)
    return np.argsort(dist, axis=1, kind="stable")[:, : min(count, ref.shape[0])]


def _shrunk_sigma(sigma: NDArray[np.float64], n: int, prior_weight: float = 20.0) -> NDArray[np.float64]:
    """Per-element sigmas pulled toward their median; short segments lean on the median."""
    pooled = float(np.median(sigma))
    return np.sqrt((n * sigma**2 + prior_weight * pooled**2) / (n + prior_weight))


# --- memory ------------------------------------------------------------------------------------
# A segment's landmarks are (N, 478, 3); every float64 working copy of them costs 11.5 kB a frame,
# and the adaptive filter makes about eight. So nothing below holds a whole segment in float64:
# the rigid fit reads the landmarks a block of frames at a time, the residual is recomputed from
# them where it is needed, and the residual is smoothed in windows of frames and blocks of
# landmarks, each window read with enough context (filters.reach) that it comes out as the
# whole-segment smoothing does. Working memory is then a few MB whatever the segment's length.

#: Frames per block of the rigid fit.
_FIT_FRAMES = 64
#: Samples per smoothing window (plus the filter's reach on each side).
_WINDOW = 512
#: Landmarks per block of the residual's smoothing (they are smoothed independently unless
#: ``evidence_neighbours`` pools them) ...
_LANDMARK_BLOCK = 32
#: ... and of the per-landmark medians over frames.
_MEDIAN_BLOCK = 8
#: The residual's noise is estimated on up to four windows of this many samples, spread evenly.
_NOISE_WINDOW = 2048


def _scaled(landmarks: NDArray[np.floating], unit: float, rows: slice, cols: slice = slice(None)) -> NDArray[np.float64]:
    return np.asarray(landmarks[rows, cols], dtype=np.float64) / unit


def _column_median(landmarks: NDArray[np.floating], unit: float) -> NDArray[np.float64]:
    """``(K, 3)`` per-element median over frames of ``landmarks / unit``, a few landmarks at a time."""
    k = landmarks.shape[1]
    out = np.empty(landmarks.shape[1:], dtype=np.float64)
    for c in range(0, k, _MEDIAN_BLOCK):
        cols = slice(c, min(k, c + _MEDIAN_BLOCK))
        out[cols] = np.median(_scaled(landmarks, unit, slice(None), cols), axis=0)
    return out


def _frame_blocks(n: int) -> list[slice]:
    return [slice(s, min(n, s + _FIT_FRAMES)) for s in range(0, n, _FIT_FRAMES)]


def _windows(n: int, context: int | None) -> list[tuple[int, int, int, int]]:
    """``(lo, start, stop, hi)``: smooth samples ``lo:hi``, keep ``start:stop`` (which tile 0..n)."""
    if context is None or n <= _WINDOW + 2 * context:
        return [(0, 0, n, n)]
    return [(max(0, s - context), s, min(n, s + _WINDOW), min(n, s + _WINDOW + context))
            for s in range(0, n, _WINDOW)]


@dataclass(frozen=True, eq=False)
class _RigidFit:
    """Per-frame similarity of :func:`rigid_split` (its last round) and its reference shape."""

    centroid: NDArray[np.float64]  # (N, 3)
    angle: NDArray[np.float64]  # (N,) radians, unwrapped
    scale: NDArray[np.float64]  # (N,)
    reference: NDArray[np.float64]  # (K, 3)
    ref_centroid: NDArray[np.float64]  # (3,) mesh centroid of the reference the round fitted to

    def params(self) -> NDArray[np.float64]:
        c = self.centroid
        return np.stack([c[:, 0], c[:, 1], self.angle, np.log(self.scale), c[:, 2]], axis=1)

    def local(self, lm: NDArray[np.float64], rows: slice) -> NDArray[np.float64]:
        """``lm`` (frames ``rows``, any landmarks) in each frame's own similarity frame."""
        d = (lm - self.centroid[rows, None, :]) / self.scale[rows, None, None]
        cos, sin = np.cos(self.angle[rows])[:, None], np.sin(self.angle[rows])[:, None]
        return np.stack([cos * d[..., 0] + sin * d[..., 1], -sin * d[..., 0] + cos * d[..., 1], d[..., 2]], axis=-1)

    def residual(self, lm: NDArray[np.float64], rows: slice, cols: slice = slice(None)) -> NDArray[np.float64]:
        """Non-rigid residual of ``lm`` (frames ``rows``, landmarks ``cols``) in reference pixels."""
        return self.local(lm, rows) + self.ref_centroid - self.reference[cols]


def _fit_rigid(landmarks: NDArray[np.floating], unit: float) -> _RigidFit:
    """The similarity fit of :func:`rigid_split` to ``landmarks / unit``, a block of frames at a time."""
    n, k = landmarks.shape[:2]
    mesh = slice(0, min(NUM_MESH_LANDMARKS, k))
    blocks = _frame_blocks(n)
    ref = _column_median(landmarks, unit)
    cen = np.empty((n, 3))
    for rows in blocks:
        cen[rows] = _scaled(landmarks, unit, rows)[:, mesh].mean(axis=1)
    sxx, sxy = np.empty(n), np.empty(n)
    for _ in range(2):
        ref_c = ref[mesh].mean(axis=0)
        a = ref[mesh, :2] - ref_c[:2]
        for rows in blocks:
            b = _scaled(landmarks, unit, rows, mesh)[..., :2] - cen[rows, None, :2]
            sxx[rows] = np.einsum("kj,nkj->n", a, b)
            sxy[rows] = np.einsum("k,nk->n", a[:, 0], b[..., 1]) - np.einsum("k,nk->n", a[:, 1], b[..., 0])
        angle = np.unwrap(np.arctan2(sxy, sxx))
        scale = np.maximum(np.hypot(sxx, sxy) / max(float((a**2).sum()), 1e-12), 1e-9)
        fit = _RigidFit(cen, angle, scale, ref, ref_c)
        total = np.zeros((k, 3))
        for rows in blocks:
            for frame in fit.local(_scaled(landmarks, unit, rows), rows):
                total += frame  # frame by frame, as numpy sums a whole (N, K, 3) array over axis 0
        ref = total / n + ref_c
    return _RigidFit(cen, angle, scale, ref, ref_c)


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
    lm = np.asarray(landmarks)
    fit = _fit_rigid(lm, 1.0)
    all_rows = slice(0, lm.shape[0])
    return fit.params(), fit.residual(_scaled(lm, 1.0, all_rows), all_rows), fit.reference


def _join(
    params: NDArray[np.float64], residual: NDArray[np.float64], reference: NDArray[np.float64],
    mesh_centroid: NDArray[np.float64],
) -> NDArray[np.float64]:
    local = residual + reference - mesh_centroid
    scale = np.exp(params[:, 3])[:, None]
    cos, sin = np.cos(params[:, 2])[:, None], np.sin(params[:, 2])[:, None]
    x = params[:, 0, None] + scale * (cos * local[..., 0] - sin * local[..., 1])
    y = params[:, 1, None] + scale * (sin * local[..., 0] + cos * local[..., 1])
    z = params[:, 4, None] + scale * local[..., 2]
    return np.stack([x, y, z], axis=-1)


def rigid_join(
    params: NDArray[np.floating], residual: NDArray[np.floating], reference: NDArray[np.floating]
) -> NDArray[np.float64]:
    """Inverse of :func:`rigid_split`: ``(N, 478, 3)`` pixels."""
    mesh = slice(0, min(NUM_MESH_LANDMARKS, reference.shape[0]))
    return _join(np.asarray(params, dtype=np.float64), np.asarray(residual, dtype=np.float64), reference,
                 reference[mesh].mean(axis=0))


def _smooth_in_windows(
    times: NDArray[np.float64], values: NDArray[np.floating], params: ChannelSmoothing,
    sigma: NDArray[np.floating] | None = None, vector_axis: int | None = None,
) -> NDArray[np.float64]:
    """:func:`smooth_series` of a small ``(N, C)`` channel, run window by window (same result)."""
    t = np.asarray(times, dtype=np.float64)
    y = np.asarray(values)
    n = y.shape[0]
    if n < 3:
        return smooth_series(t, y, params, sigma, vector_axis)
    if params.method is Method.ADAPTIVE and sigma is None:
        sigma = noise_sigma(t, y)  # what adaptive_smooth estimates from the whole series
    spacing = float(np.min(np.diff(t)))
    out = np.empty(y.shape, dtype=np.float64)
    for lo, start, stop, hi in _windows(n, reach(params, spacing)):
        part = smooth_series(t[lo:hi], y[lo:hi], params, sigma, vector_axis, min_spacing=spacing)
        out[start:stop] = part[start - lo:stop - lo]
    return out


def smooth_landmarks(
    times: NDArray[np.float64], landmarks: NDArray[np.floating], config: SmoothingConfig,
    out: NDArray[np.floating] | None = None,
) -> NDArray[np.floating]:
    """Smooth ``(N, 478, 3)`` pixel landmarks: similarity and residual apart (see the module).

    Working memory does not grow with N (see "memory" above); the result is the whole-segment
    smoothing's.

    Args:
        times: ``(N,)`` strictly increasing seconds.
        landmarks: ``(N, 478, 3)`` pixels (float32 is read as is, never copied whole).
        config: the smoothing parameters.
        out: ``(N, 478, 3)`` array to write the result to (float32 halves its size); None: a
            new float64 array.

    Returns:
        ``out``, or the new array.
    """
    lm = np.asarray(landmarks)
    t = np.asarray(times, dtype=np.float64)
    n, k = lm.shape[:2]
    if out is None:
        out = np.empty(lm.shape, dtype=np.float64)
    elif out.shape != lm.shape:
        raise InputError(f"smoothing: out is {out.shape}, landmarks are {lm.shape}")
    if n < 3:
        out[...] = lm
        return out
    unit = max(float(np.median(inter_ocular(lm))), 1e-6)
    fit = _fit_rigid(lm, unit)
    params_s = _smooth_in_windows(t, fit.params(), config.rigid, vector_axis=1)
    nbrs = landmark_neighbours(lm, config.evidence_neighbours) if config.evidence_neighbours > 1 else None
    block = k if nbrs is not None else _LANDMARK_BLOCK
    col_blocks = [slice(c, min(k, c + block)) for c in range(0, k, block)]
    # the residual's noise from (at most) evenly spread windows of the segment
    starts = np.linspace(0, max(n - _NOISE_WINDOW, 0), num=max(1, min(4, n // _NOISE_WINDOW))).astype(int)
    sigmas = np.empty((len(starts), k, 3))
    for j, s in enumerate(starts):
        rows = slice(int(s), int(s) + _NOISE_WINDOW)
        for cols in col_blocks:
            sigmas[j, cols] = noise_sigma(t[rows], fit.residual(_scaled(lm, unit, rows, cols), rows, cols))
    sigma = _shrunk_sigma(np.median(sigmas, axis=0), min(n, _NOISE_WINDOW))
    spacing = float(np.min(np.diff(t)))
    mesh_centroid = fit.reference[slice(0, min(NUM_MESH_LANDMARKS, k))].mean(axis=0)
    for lo, start, stop, hi in _windows(n, reach(config.landmarks, spacing)):
        rows, keep = slice(lo, hi), slice(start - lo, stop - lo)
        for cols in col_blocks:
            res = fit.residual(_scaled(lm, unit, rows, cols), rows, cols)
            res_s = smooth_series(t[rows], res, config.landmarks, sigma[cols], 2, nbrs, 2, min_spacing=spacing)
            out[start:stop, cols] = _join(params_s[start:stop], res_s[keep], fit.reference[cols], mesh_centroid) * unit
    return out


def smooth_segment(
    times: NDArray[np.float64],
    landmarks: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    transforms: NDArray[np.floating],
    config: SmoothingConfig,
    out_landmarks: NDArray[np.float32] | None = None,
) -> SmoothedSegment:
    """Smooth one track segment (no cut and no long gap inside) over its whole length.

    Args:
        times: ``(N,)`` strictly increasing seconds.
        landmarks: ``(N, 478, 3)`` pixels.
        blendshapes: ``(N, 52)`` scores.
        transforms: ``(N, 4, 4)`` facial transformation matrices.
        config: per-channel parameters.
        out_landmarks: ``(N, 478, 3)`` float32 array to write the smoothed landmarks to (a
            slice of a track's, say); None: a new one.

    Returns:
        The smoothed segment (its ``landmarks`` are ``out_landmarks`` when given). Landmarks
        are smoothed in units of the segment's median inter-ocular distance, so parameters do
        not depend on the face's size in pixels.
    """
    n = np.asarray(landmarks).shape[0]
    if out_landmarks is None:
        out_landmarks = np.empty((n, *np.shape(landmarks)[1:]), dtype=np.float32)
    elif out_landmarks.dtype != np.float32:
        raise InputError(f"smoothing: out_landmarks must be float32, got {out_landmarks.dtype}")
    lm_s = smooth_landmarks(times, landmarks, config, out=out_landmarks)
    bs_sigma = _shrunk_sigma(noise_sigma(times, blendshapes), n)
    bs_s = np.clip(_smooth_in_windows(times, blendshapes, config.blendshapes, bs_sigma), 0.0, 1.0)
    vec_s = _smooth_in_windows(times, transforms_to_vectors(transforms), config.pose, vector_axis=1)
    tf_s = vectors_to_transforms(vec_s)
    return SmoothedSegment(
        landmarks=lm_s,
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
