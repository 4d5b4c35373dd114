"""Head pose: Euler angles of MediaPipe's facial transformation matrix, the matrix recomputed
from landmarks, and similarity (Procrustes) fits.

Frames and conventions
----------------------
MediaPipe's facial transformation matrix ``camera_trans_canonical`` (4x4) maps canonical face
space (centimetres; x toward image right for a frontal face, y up, z out of the face toward
the viewer, see :mod:`tracking.geometry`) to camera space (x right, y up, z toward the viewer,
the camera looking down -z; OpenGL style, so y is *up* while image rows go down).

The rotation part is decomposed as ``R = Ry(yaw) · Rx(-pitch) · Rz(-roll)`` with the right-handed
elementary rotations ``Rx``, ``Ry``, ``Rz`` about camera x, y, z, which gives

* ``yaw   = atan2(R[0, 2], R[2, 2])``  > 0: the face turns toward image right (nose moves right);
* ``pitch = asin(R[1, 2])``            > 0: the face tilts up (nose moves up in the image);
* ``roll  = atan2(-R[1, 0], R[1, 1])`` > 0: the face rotates clockwise as seen in the image.

Roll carries a minus sign relative to the right-handed ``Rz`` because camera y points up while
image rows go down: a positive ``Rz`` angle turns the face counter-clockwise on screen. (FACTS.md
states ``roll = atan2(R10, R11)``, i.e. counter-clockwise positive; deltaface's records define
roll > 0 as clockwise, hence the sign.) These signs were checked on images (the tests in
``tests/tracking/test_landmarker.py`` repeat the checks): the astronaut still rotated clockwise
by 10 and 20 degrees reads roll +10.5 and +20.9 higher, counter-clockwise by 10 reads 10.3
lower; a mirrored face
flips yaw and roll; the AFLW2000 three-quarter still (face turned toward image left, chin up)
reads yaw -37, pitch +10 (ground truth 45.5 and 12.3 in AFLW's convention, whose yaw sign is
the opposite of ours).

All angles are degrees. Matrices are float64 ``(3, 3)`` unless stated.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import ArrayLike, NDArray

from tracking.geometry import CanonicalMesh, canonical_mesh
from tracking.observation import NUM_MESH_LANDMARKS


def _rx(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])


def _ry(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def _rz(a: float) -> NDArray[np.float64]:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])


def nearest_rotation(matrix: ArrayLike) -> NDArray[np.float64]:
    """Return the rotation closest (Frobenius) to a 3x3 matrix, removing scale and shear.

    Args:
        matrix: ``(3, 3)`` or ``(4, 4)`` (its upper-left block is used).

    Returns:
        ``(3, 3)`` float64 proper rotation (determinant +1).
    """
    m = np.asarray(matrix, dtype=np.float64)
    if m.shape == (4, 4):
        m = m[:3, :3]
    if m.shape != (3, 3):
        raise ValueError(f"expected a (3, 3) or (4, 4) matrix, got {m.shape}")
    u, _, vt = np.linalg.svd(m)
    d = np.sign(np.linalg.det(u @ vt)) or 1.0
    return u @ np.diag([1.0, 1.0, d]) @ vt


def euler_from_matrix(matrix: ArrayLike) -> tuple[float, float, float]:
    """Decompose a head rotation into ``(yaw, pitch, roll)`` degrees (conventions: module doc).

    Args:
        matrix: ``(4, 4)`` facial transformation matrix ``camera_trans_canonical`` as MediaPipe
            returns it, or its ``(3, 3)`` rotation block. Any scale is removed first.

    Returns:
        ``(yaw, pitch, roll)`` in degrees; yaw and roll in (-180, 180], pitch in [-90, 90].
    """
    yaw, pitch, roll = euler_from_rotations(nearest_rotation(matrix)[None])[0]
    return float(yaw), float(pitch), float(roll)


def euler_from_rotations(rotations: ArrayLike) -> NDArray[np.float64]:
    """``(N, 3)`` degrees ``(yaw, pitch, roll)`` of ``(N, 3, 3)`` rotations (conventions: module doc).

    The one place the decomposition ``R = Ry(yaw) · Rx(-pitch) · Rz(-roll)`` is inverted:
    yaw = atan2(R02, R22), pitch = asin(R12), roll = atan2(-R10, R11).
    """
    r = np.asarray(rotations, dtype=np.float64)
    yaw = np.arctan2(r[:, 0, 2], r[:, 2, 2])
    pitch = np.arcsin(np.clip(r[:, 1, 2], -1.0, 1.0))
    roll = np.arctan2(-r[:, 1, 0], r[:, 1, 1])
    return np.degrees(np.stack([yaw, pitch, roll], axis=1))


def matrix_from_euler(yaw: float, pitch: float, roll: float) -> NDArray[np.float64]:
    """Build ``R = Ry(yaw) · Rx(-pitch) · Rz(-roll)``, the inverse of :func:`euler_from_matrix`.

    Args:
        yaw, pitch, roll: degrees, signs as in the module doc.

    Returns:
        ``(3, 3)`` float64 rotation acting on canonical-space column vectors (camera y up).
    """
    return _ry(math.radians(yaw)) @ _rx(-math.radians(pitch)) @ _rz(-math.radians(roll))


def rotation_angle(a: ArrayLike, b: ArrayLike) -> float:
    """Geodesic distance between two rotations in degrees (angle of ``a^T b``).

    Args:
        a, b: ``(3, 3)`` (or ``(4, 4)``) rotations; scale is removed first.
    """
    ra, rb = nearest_rotation(a), nearest_rotation(b)
    cos = (np.trace(ra.T @ rb) - 1.0) / 2.0
    return math.degrees(math.acos(max(-1.0, min(1.0, float(cos)))))


def similarity_fit(
    src: ArrayLike, dst: ArrayLike, weights: ArrayLike | None = None
) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """Weighted least-squares similarity (Umeyama): ``dst ≈ scale · R @ src + t``.

    Minimizes ``sum_k w_k |dst_k - (scale R src_k + t)|^2`` over a proper rotation (no
    reflection), a positive scale and a translation.

    Args:
        src: ``(K, D)`` points, D = 2 or 3, in any frame (e.g. canonical cm).
        dst: ``(K, D)`` corresponding points (e.g. landmarks in pixels, ``z`` scaled like x).
            Mind the handedness: image coordinates have y down, canonical space y up; flip one
            of them first if a proper rotation between them is wanted.
        weights: ``(K,)`` non-negative weights (None: all 1). At least D non-collinear points
            need positive weight.

    Returns:
        ``(scale, R, t)``: float, ``(D, D)`` float64 rotation, ``(D,)`` float64 translation.

    Raises:
        ValueError: shapes disagree, or the weighted source points are degenerate.
    """
    s = np.asarray(src, dtype=np.float64)
    d = np.asarray(dst, dtype=np.float64)
    if s.ndim != 2 or s.shape != d.shape or s.shape[1] not in (2, 3):
        raise ValueError(f"similarity_fit: src {s.shape} and dst {d.shape} must both be (K, 2) or (K, 3)")
    w = np.ones(len(s)) if weights is None else np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.shape != (len(s),) or np.any(w < 0) or w.sum() <= 0:
        raise ValueError(f"similarity_fit: weights must be ({len(s)},) non-negative with a positive sum")
    w = w / w.sum()
    mu_s = w @ s
    mu_d = w @ d
    sc = s - mu_s
    dc = d - mu_d
    var_s = float(w @ np.sum(sc * sc, axis=1))
    if var_s <= 1e-12:
        raise ValueError("similarity_fit: source points are degenerate (all at one place)")
    cov = (dc * w[:, None]).T @ sc  # (D, D): sum w dst src^T
    u, sig, vt = np.linalg.svd(cov)
    corr = np.ones(s.shape[1])
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        corr[-1] = -1.0
    rot = u @ np.diag(corr) @ vt
    scale = float((sig * corr).sum() / var_s)
    t = mu_d - scale * rot @ mu_s
    return scale, rot, t


#: Vertical field of view (degrees) of the virtual pinhole camera MediaPipe's face geometry
#: pipeline assumes over the whole input image (principal point at the centre), and its near plane.
MEDIAPIPE_VERTICAL_FOV_DEG = 63.0
_NEAR_CM = 1.0


def transform_from_landmarks(
    landmarks: ArrayLike,
    width: int,
    height: int,
    mesh: CanonicalMesh | None = None,
    vertical_fov_deg: float = MEDIAPIPE_VERTICAL_FOV_DEG,
) -> NDArray[np.float32]:
    """Recompute MediaPipe's facial transformation matrix from landmarks in an image's pixels.

    Follows the steps of MediaPipe's face geometry pipeline (screen-to-metric conversion of the
    landmarks for a pinhole camera with ``vertical_fov_deg`` over the image, two scale
    estimates, then a weighted similarity fit of the canonical mesh with its Procrustes basis
    weights), so for landmarks MediaPipe found on this image it reproduces MediaPipe's matrix.
    Its use: landmarks found on a crop and mapped back to the frame get the matrix the frame's
    camera would have given, not the crop's, whose rotation differs by several degrees when
    the face is off the crop's centre line.

    Args:
        landmarks: ``(478, 3)`` or ``(468, 3)`` pixels of the image (x right, y down, origin at
            the top-left pixel centre; z scaled like x), only the 468 mesh points are used.
        width, height: image size in pixels.
        mesh: canonical mesh (None: the default bundle's, see :func:`tracking.geometry.canonical_mesh`).
        vertical_fov_deg: the virtual camera's vertical field of view.

    Returns:
        ``(4, 4)`` float32 ``camera_trans_canonical`` (cm; camera x right, y up, z toward the
        viewer); its 3x3 block is a rotation times a scale close to 1.
    """
    if mesh is None:
        mesh = canonical_mesh()
    pts = np.asarray(landmarks, dtype=np.float64)[:NUM_MESH_LANDMARKS]
    if pts.shape != (NUM_MESH_LANDMARKS, 3):
        raise ValueError(f"transform_from_landmarks: expected (478, 3) or (468, 3) landmarks, got {pts.shape}")
    weights = np.zeros(NUM_MESH_LANDMARKS)
    weights[mesh.procrustes_indices] = mesh.procrustes_weights
    canon = mesh.vertices.astype(np.float64)

    h_near = 2.0 * _NEAR_CM * math.tan(math.radians(vertical_fov_deg) / 2.0)
    w_near = width * h_near / height
    screen = np.empty_like(pts)
    screen[:, 0] = (pts[:, 0] + 0.5) / width * w_near - 0.5 * w_near
    screen[:, 1] = (1.0 - (pts[:, 1] + 0.5) / height) * h_near - 0.5 * h_near
    screen[:, 2] = pts[:, 2] / width * w_near
    depth_offset = float(screen[:, 2].mean())

    def unproject(scale: float) -> NDArray[np.float64]:
        out = screen.copy()
        out[:, 2] = (out[:, 2] - depth_offset + _NEAR_CM) / scale
        out[:, 0] *= out[:, 2] / _NEAR_CM
        out[:, 1] *= out[:, 2] / _NEAR_CM
        out[:, 2] *= -1.0
        return out

    flipped = screen * np.array([1.0, 1.0, -1.0])
    scale1, _, _ = similarity_fit(canon, flipped, weights)
    scale2, _, _ = similarity_fit(canon, unproject(scale1), weights)
    scale, rot, t = similarity_fit(canon, unproject(scale1 * scale2), weights)
    out = np.eye(4)
    out[:3, :3] = scale * rot
    out[:3, 3] = t
    return out.astype(np.float32)


def turned_angles(before: ArrayLike, after: ArrayLike, angles: ArrayLike, weights: ArrayLike) -> NDArray[np.float64]:
    """``(M, 3)`` yaw, pitch, roll (degrees) of edited frames: ``angles`` turned by the head
    rotation that takes each frame's ``before`` landmarks to its ``after`` ones (a weighted
    similarity fit over the head-rigid points). An expression edit leaves the angles as they are
    (to the fit's rounding); a pose edit moves them by the edit.

    Args:
        before, after: ``(M, K, 3)`` pixels (x right, y down, MediaPipe z scaled like x).
        angles: ``(M, 3)`` the frames' tracked angles.
        weights: ``(K,)`` fit weights (e.g. ``synthesis.regions.rigid_weights()``).
    """
    b, a = np.asarray(before, np.float64), np.asarray(after, np.float64)
    out = np.array(angles, dtype=np.float64)
    flip = np.diag([1.0, -1.0, -1.0])  # pixels (y down, z away) <-> camera (y up, z toward the viewer)
    for i in range(out.shape[0]):
        if np.array_equal(b[i], a[i]):
            continue
        _, rot, _ = similarity_fit(b[i], a[i], weights)
        out[i] = euler_from_rotations((flip @ rot @ flip @ matrix_from_euler(*out[i]))[None])[0]
    return out
