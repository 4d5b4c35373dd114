"""The code space: landmarks inverted into identity, pose and expression, and rendered back.

Frames and conventions
----------------------
Landmarks are ``(478, 3)`` pixels as the tracker gives them (x right, y down, origin at the
top-left pixel centre; z is MediaPipe's depth times the frame width, smaller is closer).
Canonical space is MediaPipe's canonical face space (:mod:`tracking.geometry`): x toward the
subject's left, y up, z toward the viewer, in the units of the canonical mesh (cm, up to the
identity's own scale, see below).

A frame's pose maps a canonical point ``c`` to pixels as::

    landmarks = scale * FLIP @ R @ c + t,      FLIP = diag(1, -1, -1)

``R`` is the head rotation in camera space (x right, y up, z toward the viewer, the same frame
as MediaPipe's facial transformation matrix), so :func:`tracking.pose.euler_from_matrix` of ``R``
gives yaw, pitch and roll in deltaface's conventions; ``FLIP`` turns camera space into image
space (y down, z away). ``scale`` is pixels per canonical unit, ``t`` the pixel position of the
canonical origin (the origin lies inside the head, behind the nose). This is a weak-perspective
(scaled orthographic) model: pitch read from it differs from MediaPipe's perspective matrix by a
nearly constant offset (-2.6 degrees, spread 0.3, on the LivePortrait clip; yaw -0.4, roll 0.1).

A frame's canonical shape is ``identity + expression``. The identity is one shape per track,
estimated robustly (a weighted median over frames favouring neutral expressions), then brought
to a fixed gauge: aligned (similarity, rigid weights) to the canonical mesh, so its scale and
placement match MediaPipe's canonical face and only its shape is the person's. Rendering a code
back gives the tracked landmarks exactly (up to float rounding), whatever the fit quality: the
expression absorbs every residual.

Pose is fitted by weighted similarity (Umeyama) on head-rigid points
(:func:`synthesis.regions.rigid_weights`; the outer eye corners are excluded because they move
in blinks), re-weighted per track by how steady each point is, and scaled by the fit's scale,
never by a frame's own inter-ocular distance (FACTS.md: MediaPipe moves the eye corners by 7%
of it during a blink).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from synthesis.regions import canonical_points, inter_ocular, rigid_weights
from tracking.errors import InputError
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS, NUM_MESH_LANDMARKS
from tracking.pose import similarity_fit

#: Image space from camera space: y and z flip (a proper rotation, 180 degrees about x).
FLIP = np.diag([1.0, -1.0, -1.0])
#: Pose-refit iterations of :func:`invert_track` (identity -> poses -> identity ...).
TRACK_ITERATIONS = 3
#: Frames at most used to estimate the identity (evenly spaced; the median needs no more).
IDENTITY_MAX_FRAMES = 600
#: Blendshape activity (sum of scores above the track's 20th percentile) at which a frame's
#: weight in the identity estimate has fallen to 1/e.
NEUTRAL_ACTIVITY_SCALE = 0.5
#: Floor on a point's robust spread (canonical units) when weighting rigid points by steadiness.
STEADY_FLOOR = 0.05


@dataclass(frozen=True, eq=False)
class Pose:
    """Head pose in one frame: ``landmarks = scale * FLIP @ rotation @ c + translation``.

    Attributes:
        scale: pixels per canonical unit (> 0).
        rotation: ``(3, 3)`` float64 rotation, canonical -> camera space (camera y up).
        translation: ``(3,)`` float64 pixels (x, y, z).
    """

    scale: float
    rotation: NDArray[np.float64]
    translation: NDArray[np.float64]

    def __post_init__(self) -> None:
        rot = np.asarray(self.rotation, dtype=np.float64)
        t = np.asarray(self.translation, dtype=np.float64)
        if rot.shape != (3, 3) or t.shape != (3,):
            raise ValueError(f"Pose: rotation must be (3, 3), translation (3,); got {rot.shape}, {t.shape}")
        if not (self.scale > 0 and np.isfinite(rot).all() and np.isfinite(t).all()):
            raise ValueError("Pose: scale must be > 0 and every value finite")
        if abs(np.linalg.det(rot) - 1.0) > 1e-6:
            raise ValueError(f"Pose: rotation has determinant {np.linalg.det(rot):.6f}, not 1")
        rot.flags.writeable = False
        t.flags.writeable = False
        object.__setattr__(self, "rotation", rot)
        object.__setattr__(self, "translation", t)
        object.__setattr__(self, "scale", float(self.scale))

    def to_pixels(self, canonical: NDArray[np.floating]) -> NDArray[np.float64]:
        """Map ``(K, 3)`` canonical points to ``(K, 3)`` pixels."""
        return self.scale * (np.asarray(canonical, dtype=np.float64) @ (FLIP @ self.rotation).T) + self.translation

    def to_canonical(self, pixels: NDArray[np.floating]) -> NDArray[np.float64]:
        """Map ``(K, 3)`` pixels to ``(K, 3)`` canonical points (the inverse of :meth:`to_pixels`)."""
        return ((np.asarray(pixels, dtype=np.float64) - self.translation) @ (FLIP @ self.rotation)) / self.scale


@dataclass(frozen=True, eq=False)
class Identity:
    """A track's face shape: constant over the track, never changed by an edit.

    Attributes:
        shape: ``(478, 3)`` float64 canonical-space points (mesh and iris) of the neutral face.
    """

    shape: NDArray[np.float64]

    def __post_init__(self) -> None:
        s = np.array(self.shape, dtype=np.float64)
        if s.shape != (NUM_LANDMARKS, 3) or not np.isfinite(s).all():
            raise ValueError(f"Identity.shape must be finite (478, 3), got {s.shape}")
        s.flags.writeable = False
        object.__setattr__(self, "shape", s)

    @property
    def inter_ocular(self) -> float:
        """Canonical inter-ocular distance: the unit of delta displacements."""
        return inter_ocular(self.shape)


@dataclass(frozen=True, eq=False)
class FaceCode:
    """One face in one frame in code space (identity held separately, per track).

    Attributes:
        pose: the head pose.
        expression: ``(478, 3)`` float64 canonical-space residual: shape minus identity.
        blendshapes: ``(52,)`` float32 scores in [0, 1] (``BLENDSHAPE_NAMES`` order), a readout.
    """

    pose: Pose
    expression: NDArray[np.float64]
    blendshapes: NDArray[np.float32]

    def __post_init__(self) -> None:
        e = np.asarray(self.expression, dtype=np.float64)
        b = np.asarray(self.blendshapes, dtype=np.float32)
        if e.shape != (NUM_LANDMARKS, 3) or b.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"FaceCode: expression (478, 3) and blendshapes (52,) expected, got {e.shape}, {b.shape}")
        e.flags.writeable = False
        b.flags.writeable = False
        object.__setattr__(self, "expression", e)
        object.__setattr__(self, "blendshapes", b)


@dataclass(frozen=True, eq=False)
class TrackCode:
    """A whole track in code space.

    Attributes:
        identity: the track's identity.
        scales: ``(N,)`` float64 pixels per canonical unit.
        rotations: ``(N, 3, 3)`` float64 canonical -> camera rotations.
        translations: ``(N, 3)`` float64 pixels.
        expressions: ``(N, 478, 3)`` float64 canonical residuals.
        blendshapes: ``(N, 52)`` float32 scores.
        fit_rms: ``(N,)`` float64 weighted RMS of the rigid points' residual, as a fraction of
            the identity's inter-ocular distance (how well a rigid head explains the frame).
    """

    identity: Identity
    scales: NDArray[np.float64]
    rotations: NDArray[np.float64]
    translations: NDArray[np.float64]
    expressions: NDArray[np.float64]
    blendshapes: NDArray[np.float32]
    fit_rms: NDArray[np.float64]

    def __post_init__(self) -> None:
        n = len(self.scales)
        shapes = {
            "rotations": (self.rotations, (n, 3, 3)),
            "translations": (self.translations, (n, 3)),
            "expressions": (self.expressions, (n, NUM_LANDMARKS, 3)),
            "blendshapes": (self.blendshapes, (n, NUM_BLENDSHAPES)),
            "fit_rms": (self.fit_rms, (n,)),
        }
        for name, (arr, want) in shapes.items():
            if arr.shape != want:
                raise ValueError(f"TrackCode.{name} must be {want}, got {arr.shape}")

    def __len__(self) -> int:
        return len(self.scales)

    def frame(self, index: int) -> FaceCode:
        """The code of frame ``index`` (0-based within the track)."""
        pose = Pose(self.scales[index], self.rotations[index], self.translations[index])
        return FaceCode(pose, self.expressions[index], self.blendshapes[index])


def _check_landmarks(landmarks: ArrayLike, what: str) -> NDArray[np.float64]:
    arr = np.asarray(landmarks, dtype=np.float64)
    if arr.ndim < 2 or arr.shape[-2:] != (NUM_LANDMARKS, 3):
        raise InputError(f"{what}: landmarks must be (..., 478, 3) pixels, got {arr.shape}")
    if not np.isfinite(arr).all():
        raise InputError(f"{what}: landmarks contain NaN or infinity")
    return arr


def fit_pose(
    landmarks: NDArray[np.floating], reference: NDArray[np.floating], weights: NDArray[np.floating] | None = None
) -> Pose:
    """Weighted similarity fit of a canonical reference shape to one frame's landmarks.

    Args:
        landmarks: ``(478, 3)`` pixels.
        reference: ``(478, 3)`` or ``(468, 3)`` canonical points (the canonical mesh, an identity).
        weights: ``(478,)`` or ``(468,)`` non-negative weights; None: :func:`rigid_weights`.

    Returns:
        The pose with ``landmarks ≈ pose.to_pixels(reference)`` on the weighted points.
    """
    w = rigid_weights() if weights is None else np.asarray(weights, dtype=np.float64)
    k = min(len(reference), len(w), NUM_LANDMARKS)
    src = np.asarray(reference, dtype=np.float64)[:k]
    dst = np.asarray(landmarks, dtype=np.float64)[:k] @ FLIP  # camera space (y up, z toward viewer)
    scale, rot, t = similarity_fit(src, dst, w[:k])
    return Pose(scale, rot, FLIP @ t)


def _weighted_median(values: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Per-element weighted median over axis 0 of ``(N, ...)`` values with ``(N,)`` weights."""
    order = np.argsort(values, axis=0)
    sorted_vals = np.take_along_axis(values, order, axis=0)
    w = np.broadcast_to(weights.reshape((-1,) + (1,) * (values.ndim - 1)), values.shape)
    cum = np.cumsum(np.take_along_axis(w, order, axis=0), axis=0)
    idx = np.argmax(cum >= cum[-1] / 2.0, axis=0)
    return np.take_along_axis(sorted_vals, idx[None], axis=0)[0]


def _gauge(shape: NDArray[np.float64], weights: NDArray[np.float64]) -> NDArray[np.float64]:
    """Bring a canonical shape to the gauge of the canonical mesh (similarity on rigid points)."""
    mesh = canonical_points()
    scale, rot, t = similarity_fit(shape[:NUM_MESH_LANDMARKS], mesh[:NUM_MESH_LANDMARKS], weights[:NUM_MESH_LANDMARKS])
    return scale * shape @ rot.T + t


def neutral_weights(blendshapes: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(N,)`` weights in (0, 1] favouring frames whose expression is closest to the track's rest.

    A frame's activity is the sum over blendshapes (``_neutral`` excluded) of how far its score
    exceeds that blendshape's 20th percentile over the track; the weight is
    ``exp(-activity / NEUTRAL_ACTIVITY_SCALE)``. A track that smiles throughout thus gets a
    smiling identity: without a neutral frame there is nothing better to measure.
    """
    b = np.asarray(blendshapes, dtype=np.float64)[:, 1:]
    activity = np.clip(b - np.percentile(b, 20, axis=0), 0.0, None).sum(axis=1)
    return np.exp(-activity / NEUTRAL_ACTIVITY_SCALE)


def invert_track(
    landmarks: ArrayLike,
    blendshapes: ArrayLike | None = None,
    confidence: ArrayLike | None = None,
) -> TrackCode:
    """Invert a track's landmarks into one identity and per-frame poses and expressions.

    Steps: fit every frame to the canonical mesh on the rigid points; canonicalize; take the
    identity as a weighted median over frames (weights: ``confidence`` times
    :func:`neutral_weights`); then :data:`TRACK_ITERATIONS` times: re-weight the rigid points by
    their steadiness over the track (prior weight over squared robust spread), re-fit every pose
    to the identity, re-estimate and re-gauge the identity. Finally expression = canonical shape
    minus identity, which makes :func:`render_landmarks` reproduce the input exactly.

    Args:
        landmarks: ``(N, 478, 3)`` pixels (N >= 1).
        blendshapes: ``(N, 52)`` scores, or None (zeros; every frame counts as neutral).
        confidence: ``(N,)`` non-negative per-frame trust (0 for bridged frames), or None (ones).

    Returns:
        The track's code.

    Raises:
        InputError: shapes disagree, values are not finite, or every confidence is 0.
    """
    lm = _check_landmarks(landmarks, "invert_track")
    if lm.ndim != 3:
        raise InputError(f"invert_track: landmarks must be (N, 478, 3), got {lm.shape}")
    n = len(lm)
    bs = np.zeros((n, NUM_BLENDSHAPES), np.float32) if blendshapes is None else np.asarray(blendshapes, np.float32)
    conf = np.ones(n) if confidence is None else np.asarray(confidence, dtype=np.float64).reshape(-1)
    if bs.shape != (n, NUM_BLENDSHAPES) or conf.shape != (n,):
        raise InputError(f"invert_track: blendshapes {bs.shape} / confidence {conf.shape} do not match {n} frames")
    if not (np.isfinite(conf).all() and (conf >= 0).all() and conf.sum() > 0):
        raise InputError("invert_track: confidence must be finite, non-negative and not all 0")

    prior = rigid_weights()
    frame_w = conf * neutral_weights(bs)
    if frame_w.sum() <= 0:
        frame_w = conf
    sample = np.unique(np.linspace(0, n - 1, min(n, IDENTITY_MAX_FRAMES)).round().astype(int))
    sample = sample[frame_w[sample] > 0]

    weights = prior
    reference = canonical_points()
    for _ in range(TRACK_ITERATIONS + 1):
        poses = [fit_pose(lm[i], reference, weights) for i in range(n)]
        canon = np.stack([p.to_canonical(x) for p, x in zip(poses, lm)])
        identity = _gauge(_weighted_median(canon[sample], frame_w[sample]), prior)
        reference = identity
        if n > 1:
            spread = np.median(np.linalg.norm(canon[sample] - identity, axis=2), axis=0)
            weights = prior / (spread**2 + STEADY_FLOOR**2) * STEADY_FLOOR**2
    # final poses against the final identity
    poses = [fit_pose(lm[i], identity, weights) for i in range(n)]
    canon = np.stack([p.to_canonical(x) for p, x in zip(poses, lm)])
    ident = Identity(identity)
    resid = np.linalg.norm(canon - identity, axis=2)
    wn = weights / weights.sum()
    fit_rms = np.sqrt((resid**2 * wn).sum(axis=1)) / ident.inter_ocular
    return TrackCode(
        identity=ident,
        scales=np.array([p.scale for p in poses]),
        rotations=np.stack([p.rotation for p in poses]),
        translations=np.stack([p.translation for p in poses]),
        expressions=canon - identity,
        blendshapes=bs,
        fit_rms=fit_rms,
    )


def invert_single(landmarks: ArrayLike, blendshapes: ArrayLike | None = None) -> tuple[Identity, FaceCode]:
    """Invert one still: its identity is its own shape, its expression zero.

    Args:
        landmarks: ``(478, 3)`` pixels.
        blendshapes: ``(52,)`` scores or None (zeros).

    Returns:
        ``(identity, code)``; ``render_code(identity, code)`` gives ``landmarks`` back.
    """
    lm = _check_landmarks(landmarks, "invert_single")
    if lm.shape != (NUM_LANDMARKS, 3):
        raise InputError(f"invert_single: landmarks must be (478, 3), got {lm.shape}")
    bs = np.zeros(NUM_BLENDSHAPES, np.float32) if blendshapes is None else np.asarray(blendshapes, np.float32)
    prior = rigid_weights()
    pose0 = fit_pose(lm, canonical_points(), prior)
    shape = _gauge(pose0.to_canonical(lm), prior)
    pose = fit_pose(lm, shape, prior)
    shape = pose.to_canonical(lm)  # exact: the identity is this frame's shape in this pose
    return Identity(shape), FaceCode(pose, np.zeros((NUM_LANDMARKS, 3)), bs)


def canonical_shape(identity: Identity, expression: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(478, 3)`` canonical shape of a frame: identity plus ``(478, 3)`` expression."""
    return identity.shape + np.asarray(expression, dtype=np.float64)


def render_landmarks(identity: Identity, pose: Pose, expression: NDArray[np.floating]) -> NDArray[np.float64]:
    """Render to ``(478, 3)`` float64 pixels: ``pose.to_pixels(identity.shape + expression)``.

    Args:
        identity: the track's identity.
        pose: the frame's pose.
        expression: ``(478, 3)`` canonical residual.
    """
    return pose.to_pixels(canonical_shape(identity, expression))


def render_code(identity: Identity, code: FaceCode) -> NDArray[np.float64]:
    """Render a frame's code to ``(478, 3)`` float64 pixels (see :func:`render_landmarks`)."""
    return render_landmarks(identity, code.pose, code.expression)
