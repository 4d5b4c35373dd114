"""MediaPipe's face landmarker results as :class:`tracking.observation.FaceObservation` records.

Per face the landmarker gives 478 landmarks (468 mesh points and 10 iris points) in normalized
image coordinates, 52 blendshape scores and a 4x4 facial transformation matrix; this module turns
them into observations in pixels, with a confidence (:func:`observation_confidence`).

Pixel convention: MediaPipe's normalized x spans the image from its left *edge* (0) to its
right edge (1), so the pixel-centre coordinate STYLE.md uses is ``x * W - 0.5`` (likewise
``y * H - 0.5``); ``z`` becomes ``z * W`` (MediaPipe scales z like x), smaller is closer.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from tracking.bundle import LandmarkerBundle
from tracking.errors import ModelLoadError
from tracking.observation import NUM_BLENDSHAPES, NUM_LANDMARKS, NUM_MESH_LANDMARKS, FaceObservation, Source
from tracking.pose import euler_from_matrix
from tracking.recovery import inside_fraction

#: Blendshape names in the order of ``FaceObservation.blendshapes`` (MediaPipe's order).
BLENDSHAPE_NAMES: tuple[str, ...] = (
    "_neutral", "browDownLeft", "browDownRight", "browInnerUp", "browOuterUpLeft",
    "browOuterUpRight", "cheekPuff", "cheekSquintLeft", "cheekSquintRight", "eyeBlinkLeft",
    "eyeBlinkRight", "eyeLookDownLeft", "eyeLookDownRight", "eyeLookInLeft", "eyeLookInRight",
    "eyeLookOutLeft", "eyeLookOutRight", "eyeLookUpLeft", "eyeLookUpRight", "eyeSquintLeft",
    "eyeSquintRight", "eyeWideLeft", "eyeWideRight", "jawForward", "jawLeft", "jawOpen",
    "jawRight", "mouthClose", "mouthDimpleLeft", "mouthDimpleRight", "mouthFrownLeft",
    "mouthFrownRight", "mouthFunnel", "mouthLeft", "mouthLowerDownLeft", "mouthLowerDownRight",
    "mouthPressLeft", "mouthPressRight", "mouthPucker", "mouthRight", "mouthRollLower",
    "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthSmileLeft", "mouthSmileRight",
    "mouthStretchLeft", "mouthStretchRight", "mouthUpperUpLeft", "mouthUpperUpRight",
    "noseSneerLeft", "noseSneerRight",
)  # fmt: skip
_BLENDSHAPE_INDEX = {name: i for i, name in enumerate(BLENDSHAPE_NAMES)}
assert len(BLENDSHAPE_NAMES) == NUM_BLENDSHAPES

#: Inter-ocular distance (pixels) from which landmarks are trusted fully; smaller faces get a
#: proportionally lower confidence (MediaPipe's landmarks get coarse on faces this small).
RELIABLE_INTER_OCULAR_PX = 20.0
#: |yaw| (degrees) up to which landmarks are trusted fully, and from which confidence is at its
#: floor: MediaPipe's landmarks degrade past about 55-60 degrees and a true profile reads 55-60.
RELIABLE_YAW_DEG = 45.0
UNRELIABLE_YAW_DEG = 75.0
#: Lowest confidence a measured (not bridged) observation gets.
MIN_MEASURED_CONFIDENCE = 0.1


def observation_confidence(
    landmarks: NDArray[np.float32], yaw: float, width: int | None = None, height: int | None = None
) -> float:
    """How much to trust a measured observation, in [``MIN_MEASURED_CONFIDENCE``, 1].

    mediapipe's Tasks API does not expose the landmark model's face-presence score (every face it
    returns has passed ``min_presence_confidence``), so confidence is a quality estimate instead:
    the product of a size factor (inter-ocular distance over :data:`RELIABLE_INTER_OCULAR_PX`,
    at most 1), a pose factor (1 up to :data:`RELIABLE_YAW_DEG` of |yaw|, falling linearly to
    0.25 at :data:`UNRELIABLE_YAW_DEG`) and, when the frame's size is given, the fraction of the
    468 mesh landmarks inside the frame (the rest of a face cut by the border is a guess),
    floored at :data:`MIN_MEASURED_CONFIDENCE`.

    Args:
        landmarks: ``(478, 3)`` float32 frame pixels.
        yaw: degrees.
        width, height: the frame's size in pixels, or None to leave the border out.
    """
    right = (landmarks[33, :2] + landmarks[133, :2]) / 2.0
    left = (landmarks[362, :2] + landmarks[263, :2]) / 2.0
    iod = float(np.linalg.norm(left - right))
    size_factor = min(1.0, iod / RELIABLE_INTER_OCULAR_PX)
    t = (abs(yaw) - RELIABLE_YAW_DEG) / (UNRELIABLE_YAW_DEG - RELIABLE_YAW_DEG)
    pose_factor = 1.0 - 0.75 * min(1.0, max(0.0, t))
    inside = 1.0 if width is None or height is None else inside_fraction(landmarks[:NUM_MESH_LANDMARKS], height, width)
    return max(MIN_MEASURED_CONFIDENCE, size_factor * pose_factor * inside)


def observation_from_pixels(
    landmarks: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    transform: NDArray[np.floating],
    width: int,
    height: int,
    frame_index: int,
    source: Source = Source.LANDMARKER,
) -> FaceObservation:
    """An observation from landmarks in pixels of a ``width`` x ``height`` image: its angles from
    ``transform``, its box from the landmarks, its confidence (:func:`observation_confidence`).

    Args:
        landmarks: ``(478, 3)`` pixels (centre-of-pixel origin).
        blendshapes: ``(52,)`` scores in ``BLENDSHAPE_NAMES`` order (clipped to [0, 1]).
        transform: ``(4, 4)`` facial transformation matrix.
        width, height: the image's size in pixels.
        frame_index: index of the frame.
        source: how the observation was obtained.
    """
    lm = np.asarray(landmarks, dtype=np.float32)
    matrix = np.asarray(transform, dtype=np.float32).reshape(4, 4)
    yaw, pitch, roll = euler_from_matrix(matrix)
    box = np.array([lm[:, 0].min(), lm[:, 1].min(), lm[:, 0].max(), lm[:, 1].max()], dtype=np.float32)
    return FaceObservation(
        frame_index=frame_index,
        landmarks=lm,
        blendshapes=np.clip(np.asarray(blendshapes, dtype=np.float32), 0.0, 1.0),
        transform=matrix,
        yaw=yaw,
        pitch=pitch,
        roll=roll,
        confidence=observation_confidence(lm, yaw, width, height),
        box=box,
        source=source,
    )


def observation_from_arrays(
    normalized: NDArray[np.floating],
    blendshapes: NDArray[np.floating],
    transform: NDArray[np.floating],
    width: int,
    height: int,
    frame_index: int,
    source: Source = Source.LANDMARKER,
) -> FaceObservation:
    """Build an observation from MediaPipe's per-face arrays.

    Args:
        normalized: ``(478, 3)`` landmarks, x and y normalized to [0, 1] by the image's width and
            height (edge to edge), z normalized like x.
        blendshapes: ``(52,)`` scores in ``BLENDSHAPE_NAMES`` order.
        transform: ``(4, 4)`` facial transformation matrix.
        width, height: size in pixels of the image the landmarker saw.
        frame_index: index of the frame.
        source: how the observation was obtained.

    Returns:
        The observation with landmarks in pixels of that image (centre-of-pixel origin).
    """
    lm = np.empty((NUM_LANDMARKS, 3), dtype=np.float32)
    lm[:, 0] = normalized[:, 0] * width - 0.5
    lm[:, 1] = normalized[:, 1] * height - 0.5
    lm[:, 2] = normalized[:, 2] * width
    return observation_from_pixels(lm, blendshapes, transform, width, height, frame_index, source)


def observations_from_result(result: Any, width: int, height: int, frame_index: int, bundle: LandmarkerBundle) -> list[FaceObservation]:
    """MediaPipe ``FaceLandmarkerResult`` to observations (in pixels of the image it saw)."""
    faces = []
    for i, points in enumerate(result.face_landmarks):
        if len(points) != NUM_LANDMARKS:
            raise ModelLoadError(
                f"landmarker bundle {bundle.path} gives {len(points)} landmarks per face, deltaface needs "
                f"{NUM_LANDMARKS} (a bundle with iris points)"
            )
        normalized = np.array([(p.x, p.y, p.z) for p in points], dtype=np.float64)
        scores = np.zeros(NUM_BLENDSHAPES, dtype=np.float32)
        if i < len(result.face_blendshapes):
            for k, cat in enumerate(result.face_blendshapes[i]):
                idx = _BLENDSHAPE_INDEX.get(cat.category_name or "", k)
                if idx < NUM_BLENDSHAPES:
                    scores[idx] = cat.score
        if i < len(result.facial_transformation_matrixes):
            matrix = np.asarray(result.facial_transformation_matrixes[i], dtype=np.float32)
        else:
            matrix = np.eye(4, dtype=np.float32)
        faces.append(observation_from_arrays(normalized, scores, matrix, width, height, frame_index))
    return faces
