"""A named control re-read by the real landmarker on a real still moves the scores it ships."""

from __future__ import annotations

import numpy as np
import pytest

from compositing.crop import crop_for_landmarks
from plugin.demo import astronaut_image
from plugin.editing import RenderConfig, render_face
from synthesis.codespace import invert_single, render_code
from synthesis.controls import named_controls
from synthesis.deltas import apply_deltas
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.mediapipe_results import BLENDSHAPE_NAMES

#: The intended scores must move by at least this fraction of the shipped readout.
READOUT_FRACTION = 0.5


@pytest.fixture(scope="module")
def landmarker():
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        yield lm


@pytest.mark.parametrize("strength", [1.0, -1.0])
def test_gaze_y_reads_as_looking_up_or_down(landmarker, strength: float) -> None:
    image = astronaut_image()
    delta = named_controls()["gaze_y"]
    (obs,) = landmarker.detect_image(image)
    before = obs.landmarks.astype(np.float64)
    identity, code = invert_single(before, obs.blendshapes)
    after = render_code(identity, apply_deltas(code, identity, [(delta, strength)]))
    crop = crop_for_landmarks(np.concatenate([before, after])[:, :2], image.shape[:2], out_size=256)
    edited, _ = render_face(image, before, after, crop, RenderConfig(device="cpu"))
    (found,) = landmarker.detect_image(edited)
    change = np.asarray(found.blendshapes, np.float64) - np.asarray(obs.blendshapes, np.float64)
    up = [BLENDSHAPE_NAMES.index(n) for n in ("eyeLookUpLeft", "eyeLookUpRight")]
    down = [BLENDSHAPE_NAMES.index(n) for n in ("eyeLookDownLeft", "eyeLookDownRight")]
    shipped = np.asarray(delta.blendshapes, np.float64)
    # Vertical gaze as the scores read it: up minus down (either may sit at 0 already, so
    # neither alone can move both ways).
    net = change[up].mean() - change[down].mean()
    expected = strength * (shipped[up].mean() - shipped[down].mean())
    assert np.sign(net) == np.sign(expected)
    assert abs(net) >= READOUT_FRACTION * abs(expected)
