"""Synthetic faces with known motion for the tracking tests (imported by the test modules).

A "person" is a fixed 3-D point set of 478 landmarks (eye corners where MediaPipe puts them, so the
inter-ocular distance is defined); a frame of that person is the set rotated by yaw/pitch/roll
(in image axes, y down: R = Ry(yaw)·Rx(-pitch)·Rz(roll), clockwise roll; the transform is the camera-space
matrix of tracking.pose), scaled, translated, with optional
blink (upper lids moved onto the lower ones) and Gaussian landmark noise.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS, FaceObservation, Source
from tracking.pose import matrix_from_euler

#: Upper and lower lid landmarks of the right and left eyes (MediaPipe indices).
UPPER_LIDS = (246, 161, 160, 159, 158, 157, 173, 466, 388, 387, 386, 385, 384, 398)
LOWER_LIDS = (7, 163, 144, 145, 153, 154, 155, 249, 390, 373, 374, 380, 381, 382)
#: eyeBlinkLeft, eyeBlinkRight blendshape indices.
BLINK_CHANNELS = (9, 10)


def person(seed: int, identity_scale: float = 0.04) -> NDArray[np.float64]:
    """``(478, 3)`` canonical face of unit inter-ocular distance, centred; ``seed`` picks the person.

    All people share a base layout (seed-independent); ``identity_scale`` sets how much a
    person's smooth shape deviation from it is, in inter-ocular units.
    """
    base_rng = np.random.default_rng(12345)
    theta = base_rng.uniform(-1.2, 1.2, NUM_LANDMARKS)
    phi = base_rng.uniform(-1.0, 1.1, NUM_LANDMARKS)
    base = np.stack([1.1 * np.sin(theta) * np.cos(phi), 1.4 * np.sin(phi), -0.9 * np.cos(theta) * np.cos(phi)], 1)
    for idx, x in ((33, -0.8), (133, -0.2), (362, 0.2), (263, 0.8)):
        base[idx] = (x, -0.2, -0.75)
    for up, lo in zip(UPPER_LIDS, LOWER_LIDS):
        x = base[lo, 0]
        base[lo] = (x, -0.12, -0.78)
        base[up] = (x, -0.28, -0.78)
    rng = np.random.default_rng(seed)
    # smooth identity deformation: a random quadratic field of the coordinates
    coef = rng.normal(0.0, identity_scale, (3, 10))
    x, y, z = base.T
    feats = np.stack([x, y, z, x * x, y * y, z * z, x * y, y * z, x * z, np.ones_like(x)])
    shape = base + (coef @ feats).T
    for idx in (33, 133, 362, 263):
        shape[idx] = base[idx]
    return shape - shape.mean(axis=0)


def rotation(yaw: float, pitch: float, roll: float) -> NDArray[np.float64]:
    """R = Ry(yaw)·Rx(-pitch)·Rz(roll), degrees."""
    y, p, r = np.radians([yaw, pitch, roll])
    ry = np.array([[np.cos(y), 0, np.sin(y)], [0, 1, 0], [-np.sin(y), 0, np.cos(y)]])
    rx = np.array([[1, 0, 0], [0, np.cos(p), np.sin(p)], [0, -np.sin(p), np.cos(p)]])
    rz = np.array([[np.cos(r), -np.sin(r), 0], [np.sin(r), np.cos(r), 0], [0, 0, 1]])
    return ry @ rx @ rz


def pose_landmarks(
    shape: NDArray[np.float64], centre: tuple[float, float], iod_px: float,
    yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0, blink: float = 0.0,
) -> NDArray[np.float64]:
    """``(478, 3)`` pixel landmarks of ``shape`` posed in the image (y down, z away)."""
    s = shape.copy()
    s[list(UPPER_LIDS), :2] += blink * (s[list(LOWER_LIDS), :2] - s[list(UPPER_LIDS), :2])
    posed = s @ rotation(yaw, pitch, roll).T  # the shape is already in image axes (y down, z away)
    return posed * iod_px + np.array([centre[0], centre[1], 0.0])


def observation(
    frame_index: int, landmarks: NDArray[np.floating], yaw: float = 0.0, pitch: float = 0.0, roll: float = 0.0,
    blendshapes: NDArray[np.floating] | None = None, confidence: float = 1.0,
    translation: tuple[float, float, float] = (0.0, 0.0, -50.0),
) -> FaceObservation:
    """A FaceObservation with a transform built from the angles and the landmarks' box."""
    lm = np.asarray(landmarks, dtype=np.float32)
    transform = np.eye(4, dtype=np.float32)
    transform[:3, :3] = matrix_from_euler(yaw, pitch, roll)  # camera space (y up): clockwise roll is Rz(-roll)
    transform[:3, 3] = translation
    bs = np.zeros(NUM_BLENDSHAPES, np.float32) if blendshapes is None else np.asarray(blendshapes, np.float32)
    return FaceObservation(
        frame_index=frame_index, landmarks=lm, blendshapes=bs, transform=transform, yaw=yaw, pitch=pitch,
        roll=roll, confidence=confidence,
        box=np.concatenate([lm[:, :2].min(axis=0), lm[:, :2].max(axis=0)]).astype(np.float32),
        source=Source.LANDMARKER,
    )
