"""Fixtures shared by the plugin tests."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.demo import astronaut_image
from tracking.landmarker import Landmarker, LandmarkerConfig


@pytest.fixture(scope="session")
def astronaut_face() -> tuple[np.ndarray, np.ndarray]:
    """The packaged astronaut still (``(H, W, 3)`` uint8 RGB; tests copy it before changing it)
    and its one face's ``(478, 3)`` float64 landmarks, found by the real landmarker."""
    image = astronaut_image()
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        (face,) = lm.detect_image(image)
    image.flags.writeable = False
    return image, face.landmarks.astype(np.float64)
