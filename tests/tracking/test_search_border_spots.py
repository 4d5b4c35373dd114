"""The record of weak border spots found empty (``tracking.search``): kept through a clip, never
across unrelated still images.

The tiled detector and the crop re-runs are fakes here (what they find is set per image), so the
tests can say exactly which detections reach the landmarker; the real detector and landmarker on
real border faces are covered by test_border_faces.py.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import tracking.search as search_module
from tests.tracking.synthetic_faces import observation
from tracking.landmarker import LandmarkerConfig
from tracking.observation import FaceObservation, Source
from tracking.search import BORDER_BACKOFF_RUNS, MissedFaceSearch

HEIGHT, WIDTH = 360, 640
#: A weak detection (a face coming in, or clutter) touching the left edge: x0 = 0.
SPOT = np.array([0.0, 120.0, 60.0, 200.0], np.float32)
WEAK = 0.3  # below RecoveryConfig.min_detection_confidence


class _Detector:
    """Returns the weak border detection on every image; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0

    def detect(self, image: np.ndarray, sides: list[int] | None = None) -> np.ndarray:
        self.calls += 1
        return np.array([[*SPOT, WEAK]], np.float32)

    def close(self) -> None:
        pass


class _Crops:
    """The crop re-runs: a face at the spot on the images marked as holding one (by their first
    pixel), nothing elsewhere; records the boxes it was asked about per image."""

    def __init__(self) -> None:
        self.asked: list[int] = []

    def __call__(self, image: np.ndarray, frame_index: int, found: list[FaceObservation], boxes, margin: float
                 ) -> list[FaceObservation]:
        boxes = list(boxes)
        self.asked.append(len(boxes))
        if not boxes or image[0, 0, 0] == 0:
            return []
        centre = SPOT.reshape(2, 2).mean(axis=0)
        lm = np.zeros((478, 3), np.float32)
        lm[:, :2] = centre + np.random.default_rng(0).uniform(-25, 25, (478, 2))
        face = observation(frame_index, lm)
        return [dataclasses.replace(face, source=Source.RECOVERED)]


def _image(face: bool) -> np.ndarray:
    image = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    image[0, 0, 0] = 255 if face else 0
    return image


@pytest.fixture()
def search(monkeypatch: pytest.MonkeyPatch) -> tuple[MissedFaceSearch, _Crops]:
    monkeypatch.setattr(search_module, "TiledFaceDetector", lambda bundle, config: _Detector())
    crops = _Crops()
    return MissedFaceSearch(LandmarkerConfig(running_mode="image", num_faces=2), None, crops), crops


def test_a_still_is_searched_on_its_own_whatever_came_before(search: tuple[MissedFaceSearch, _Crops]) -> None:
    s, crops = search
    for i in range(3):  # the spot is empty on three unrelated stills
        assert s.still(_image(face=False), i, []) == []
    found = s.still(_image(face=True), 3, [])
    assert len(found) == 1 and found[0].source == Source.RECOVERED
    assert crops.asked == [1, 1, 1, 1]  # every still looked at the spot


def test_frames_of_a_sequence_skip_a_spot_found_empty_then_look_again(search: tuple[MissedFaceSearch, _Crops]) -> None:
    s, crops = search
    # Run 1 finds the spot empty and follows it; run 2 finds it empty again and sets it aside.
    assert s.still(_image(face=False), 0, [], sequence=True) == []
    assert s.still(_image(face=False), 1, [], sequence=True) == []
    assert crops.asked == [1, 1]
    # For the next BORDER_BACKOFF_RUNS runs the spot is not landmarked, even with a face there.
    for i in range(BORDER_BACKOFF_RUNS):
        assert s.still(_image(face=True), 2 + i, [], sequence=True) == []
    assert crops.asked[2:] == [0] * BORDER_BACKOFF_RUNS
    # ... and after them it is.
    found = s.still(_image(face=True), 2 + BORDER_BACKOFF_RUNS, [], sequence=True)
    assert len(found) == 1 and crops.asked[-1] == 1


def test_a_still_between_frames_of_a_sequence_changes_nothing_for_them(search: tuple[MissedFaceSearch, _Crops]) -> None:
    s, crops = search
    assert s.still(_image(face=False), 0, [], sequence=True) == []
    for i in range(5):  # unrelated stills searched meanwhile (a reference image, a re-read frame)
        assert s.still(_image(face=False), 100 + i, []) == []
    # The sequence's second empty look sets the spot aside, as without the stills in between.
    assert s.still(_image(face=False), 1, [], sequence=True) == []
    assert s.still(_image(face=True), 2, [], sequence=True) == []
    assert crops.asked[-1] == 0
