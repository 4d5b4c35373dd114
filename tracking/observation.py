"""One face as seen in one frame: the record the tracker produces and every later stage reads.

MediaPipe's result objects are converted to these arrays at the landmarker boundary; nothing past
``tracking/landmarker.py`` sees a MediaPipe type.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import numpy as np
from numpy.typing import NDArray

#: Landmarks per face returned by the face landmarker: 468 mesh points then 10 iris points.
NUM_LANDMARKS = 478
#: Mesh landmarks (the canonical face mesh's vertices); the iris points follow them.
NUM_MESH_LANDMARKS = 468
#: Blendshape scores per face; index 0 is ``_neutral``, then the ARKit names.
NUM_BLENDSHAPES = 52


class Source(str, Enum):
    """Where an observation came from."""

    LANDMARKER = "landmarker"  # the landmarker on the full frame
    RECOVERED = "recovered"  # detector + crop + landmarker re-run on the crop
    BRIDGED = "bridged"  # interpolated across a short gap: no measurement in this frame


@dataclass(frozen=True, eq=False)
class FaceObservation:
    """One face in one frame.

    Coordinates are pixels of the frame (display orientation), x right, y down, origin at the
    centre of the top-left pixel. ``z`` is MediaPipe's relative depth scaled to the same pixel
    units (normalized z times the frame width): smaller is closer to the camera.

    Attributes:
        frame_index: index of the frame in presentation order.
        landmarks: ``(478, 3)`` float32 pixels (x, y, z).
        blendshapes: ``(52,)`` float32 scores in [0, 1], names in ``BLENDSHAPE_NAMES`` order.
        transform: ``(4, 4)`` float32 facial transformation matrix (canonical face space in cm
            to camera space), as MediaPipe returns it for full-frame observations; for recovered
            ones it is recomputed from the landmarks with MediaPipe's own geometry pipeline
            (``tracking.pose.transform_from_landmarks``), since a crop has its own camera.
        yaw, pitch, roll: head rotation in degrees, decomposed from ``transform`` as
            R = Ry(yaw)·Rx(-pitch)·Rz(-roll) (see ``tracking/pose.py``); yaw > 0 turns the face toward image right,
            pitch > 0 tilts the face up, roll > 0 rotates it clockwise in the image.
        confidence: in [0, 1]; how much to trust this observation (0 for bridged frames).
        box: ``(4,)`` float32 ``(x0, y0, x1, y1)`` pixels, the landmarks' bounding box.
        source: how the observation was obtained.
    """

    frame_index: int
    landmarks: NDArray[np.float32]
    blendshapes: NDArray[np.float32]
    transform: NDArray[np.float32]
    yaw: float
    pitch: float
    roll: float
    confidence: float
    box: NDArray[np.float32]
    source: Source = Source.LANDMARKER

    def __post_init__(self) -> None:
        if self.landmarks.shape != (NUM_LANDMARKS, 3):
            raise ValueError(f"frame {self.frame_index}: landmarks must be (478, 3), got {self.landmarks.shape}")
        if self.blendshapes.shape != (NUM_BLENDSHAPES,):
            raise ValueError(f"frame {self.frame_index}: blendshapes must be (52,), got {self.blendshapes.shape}")
        if self.transform.shape != (4, 4):
            raise ValueError(f"frame {self.frame_index}: transform must be (4, 4), got {self.transform.shape}")
        if self.box.shape != (4,):
            raise ValueError(f"frame {self.frame_index}: box must be (4,), got {self.box.shape}")

    @property
    def inter_ocular(self) -> float:
        """Distance in pixels between the eye centres (mean of each eye's corner landmarks)."""
        lm = self.landmarks
        right = (lm[33, :2] + lm[133, :2]) / 2.0
        left = (lm[362, :2] + lm[263, :2]) / 2.0
        return float(np.linalg.norm(left - right))
