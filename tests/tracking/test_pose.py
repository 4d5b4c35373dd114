"""Euler angles, their inverse, similarity fits, and MediaPipe's matrix from landmarks."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tracking.geometry import canonical_mesh
from tracking.pose import (
    euler_from_matrix,
    matrix_from_euler,
    nearest_rotation,
    rotation_angle,
    similarity_fit,
    transform_from_landmarks,
)

ANGLE_TOL_DEG = 1e-6
FIT_TOL = 1e-9
#: Pose read back from synthetic landmarks (float32 output).
SYNTH_ROT_TOL_DEG = 0.01
SYNTH_T_TOL_CM = 0.01


@pytest.mark.parametrize(
    "angles", [(0.0, 0.0, 0.0), (30.0, -10.0, 5.0), (-70.0, 40.0, -170.0), (120.0, 85.0, 33.0), (-5.5, -60.0, 90.0)]
)
def test_euler_round_trip(angles: tuple[float, float, float]) -> None:
    r = matrix_from_euler(*angles)
    assert np.allclose(r @ r.T, np.eye(3)) and math.isclose(np.linalg.det(r), 1.0)
    np.testing.assert_allclose(euler_from_matrix(r), angles, atol=ANGLE_TOL_DEG)
    m4 = np.eye(4)
    m4[:3, :3] = 1.3 * r  # a scaled 4x4 matrix reads the same
    np.testing.assert_allclose(euler_from_matrix(m4), angles, atol=ANGLE_TOL_DEG)


def test_sign_conventions_in_camera_space() -> None:
    # Camera space is x right, y up, z toward the viewer; the canonical nose points along +z.
    nose = np.array([0.0, 0.0, 1.0])
    right_of_face = np.array([1.0, 0.0, 0.0])  # the canonical +x: image right for a frontal face
    assert (matrix_from_euler(20, 0, 0) @ nose)[0] > 0.3  # yaw+: nose toward image right
    assert (matrix_from_euler(0, 20, 0) @ nose)[1] > 0.3  # pitch+: nose up
    # roll+: clockwise on screen, so the face's +x side goes down (camera y is up).
    assert (matrix_from_euler(0, 0, 20) @ right_of_face)[1] < -0.3


def test_rotation_angle_and_nearest_rotation() -> None:
    a = matrix_from_euler(10, 20, 30)
    b = a @ matrix_from_euler(0, 0, 7)
    assert math.isclose(rotation_angle(a, b), 7.0, abs_tol=1e-6)
    noisy = a * 2.0 + 1e-4
    assert rotation_angle(nearest_rotation(noisy), a) < 0.01


def test_similarity_fit_recovers_a_known_similarity() -> None:
    rng = np.random.default_rng(1)
    src = rng.normal(size=(50, 3))
    rot = matrix_from_euler(25, -15, 40)
    dst = 3.5 * src @ rot.T + np.array([10.0, -2.0, 7.0])
    dst[:5] += 100.0  # outliers, given zero weight
    w = np.ones(50)
    w[:5] = 0.0
    s, r, t = similarity_fit(src, dst, w)
    assert math.isclose(s, 3.5, rel_tol=FIT_TOL)
    np.testing.assert_allclose(r, rot, atol=FIT_TOL)
    np.testing.assert_allclose(t, [10.0, -2.0, 7.0], atol=1e-8)
    s_all, _, _ = similarity_fit(src, dst)  # the outliers pull an unweighted fit away
    assert abs(s_all - 3.5) > 0.01


def test_similarity_fit_never_reflects_and_rejects_degenerate_input() -> None:
    rng = np.random.default_rng(2)
    src = rng.normal(size=(20, 3))
    mirrored = src * np.array([-1.0, 1.0, 1.0])
    _, r, _ = similarity_fit(src, mirrored)
    assert math.isclose(np.linalg.det(r), 1.0)
    s2, r2, t2 = similarity_fit(src[:, :2], 2.0 * src[:, :2] + 1.0)
    assert math.isclose(s2, 2.0) and np.allclose(r2, np.eye(2)) and np.allclose(t2, 1.0)
    with pytest.raises(ValueError):
        similarity_fit(np.zeros((5, 3)), np.ones((5, 3)))
    with pytest.raises(ValueError):
        similarity_fit(src, src[:10])


def test_transform_from_synthetic_landmarks_recovers_the_pose() -> None:
    """Project the canonical mesh posed by a known rotation; the recomputed matrix reads it back.

    The landmarks are made the way MediaPipe's pipeline reads them (perspective x, y over a
    63-degree vertical field of view; z relative, scaled like x), so the only error left is the
    pipeline's own approximations, which this projection satisfies exactly; a wrong sign of z
    reads a pose about 70 degrees off.
    """
    mesh = canonical_mesh()
    width, height = 640, 480
    rot = matrix_from_euler(25.0, -10.0, 8.0)
    cam = mesh.vertices.astype(np.float64) @ rot.T + np.array([3.0, -2.0, -60.0])
    f = 0.5 * height / math.tan(math.radians(63.0) / 2)
    depth = -cam[:, 2]
    lm = np.empty_like(cam)
    lm[:, 0] = width / 2 + f * cam[:, 0] / depth - 0.5
    lm[:, 1] = height / 2 - f * cam[:, 1] / depth - 0.5
    lm[:, 2] = -(cam[:, 2] - cam[:, 2].mean()) * f / depth.mean()
    m = transform_from_landmarks(lm, width, height, mesh)
    assert rotation_angle(m, rot) < SYNTH_ROT_TOL_DEG
    np.testing.assert_allclose(m[:3, 3], [3.0, -2.0, -60.0], atol=SYNTH_T_TOL_CM)
