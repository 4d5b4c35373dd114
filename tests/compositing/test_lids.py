"""A closed eye made from the face's own open eye, read back by the real landmarker."""

from __future__ import annotations

import numpy as np
import pytest

from compositing.lids import close_eye
from plugin.demo import astronaut_image
from synthesis.exemplars import raw_features
from synthesis.regions import EYES
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.mediapipe_results import BLENDSHAPE_NAMES


@pytest.fixture(scope="module")
def read():
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        def detect(image):
            (face,) = lm.detect_image(image)
            return face
        yield detect


def _blink(face, side: str) -> float:
    return float(face.blendshapes[BLENDSHAPE_NAMES.index("eyeBlink" + side.capitalize())])


def _contours(landmarks, side):
    upper, lower, iris = EYES[side]
    return landmarks[list(upper)], landmarks[list(lower)], landmarks[list(iris)]


def test_one_eye_closes_and_nothing_else_moves(read) -> None:
    image = astronaut_image()
    face = read(image)
    upper, lower, iris = _contours(face.landmarks, "left")
    out, moved = close_eye(image, upper, lower, points=face.landmarks)
    assert out is not image and out.shape == image.shape
    after = read(out)
    # The landmarker reads the left eye's lids together (its blendshapes couple the two eyes, so
    # the score moves less than for a real wink).
    gap = [raw_features(f.landmarks, "eye_left")[0] for f in (face, after)]
    assert gap[1] < 0.4 * gap[0]
    assert _blink(after, "left") > _blink(face, "left") + 0.2
    # The iris is gone: its centre now shows the lid's skin, far brighter.
    cx, cy = np.round(iris[0, :2]).astype(int)
    luma = lambda img: img[cy - 1:cy + 2, cx - 1:cx + 2].astype(float).mean()  # noqa: E731
    assert luma(out) > luma(image) + 40
    # Only pixels near the eye change: within a quarter of its width of the contours' box
    # sideways, two openings up and one down; the other eye keeps every byte.
    changed = np.argwhere(np.any(out != image, axis=2))[:, ::-1]
    lo, hi = np.minimum(upper.min(0), lower.min(0))[:2], np.maximum(upper.max(0), lower.max(0))[:2]
    width, opening = hi[0] - lo[0], hi[1] - lo[1]
    assert changed.size
    assert (changed[:, 0] >= lo[0] - width / 4).all() and (changed[:, 0] <= hi[0] + width / 4).all()
    assert (changed[:, 1] >= lo[1] - 2 * opening).all() and (changed[:, 1] <= hi[1] + opening).all()
    other = np.concatenate(_contours(face.landmarks, "right")[:2])[:, :2]
    x0, y0 = np.floor(other.min(0)).astype(int) - 2
    x1, y1 = np.ceil(other.max(0)).astype(int) + 3
    assert np.array_equal(out[y0:y1, x0:x1], image[y0:y1, x0:x1])
    # The points moved with the pixels: the lids drawn shut (every upper lid point within a tenth
    # of the opening of the lower lid), nearer where the landmarker reads the new lids than the
    # old points are, and points away from the eye exactly where they were.
    up_ids, low_ids = list(EYES["left"][0]), list(EYES["left"][1])
    assert _to_polyline(moved[up_ids[1:-1], :2], moved[low_ids, :2]).max() < 0.1 * opening
    lids = list(EYES["left"][0]) + list(EYES["left"][1])
    err = [np.linalg.norm(p[lids, :2] - after.landmarks[lids, :2], axis=1).mean() for p in (face.landmarks, moved)]
    assert err[1] < err[0]  # (the landmarker reads one shut eye only partly closed: it couples the two)
    far = np.linalg.norm(face.landmarks[:, :2] - upper[:, :2].mean(0), axis=1) > 1.5 * width
    assert far.sum() > 300 and np.array_equal(moved[far], face.landmarks[far])


def _to_polyline(points, line):
    """Each point's distance to the polyline ``line`` (pixels)."""
    a, b = line[:-1], line[1:]
    ab = b - a
    t = np.clip(((points[:, None] - a[None]) * ab[None]).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-12)[None], 0, 1)
    nearest = a[None] + t[..., None] * ab[None]
    return np.linalg.norm(points[:, None] - nearest, axis=-1).min(axis=1)


def test_amount_zero_changes_nothing() -> None:
    image = astronaut_image()
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        (face,) = lm.detect_image(image)
    upper, lower, _ = _contours(face.landmarks, "right")
    out, moved = close_eye(image, upper, lower, 0.0, face.landmarks)
    assert np.array_equal(out, image) and np.allclose(moved, face.landmarks, atol=1e-9)
    with pytest.raises(ValueError):
        close_eye(image, upper, lower, 1.5)


def test_an_eye_too_small_or_shut_is_left_alone() -> None:
    image = np.full((40, 40, 3), 128, np.uint8)
    line = np.array([[10.0, 20.0], [15.0, 20.0], [20.0, 20.0]])
    assert np.array_equal(close_eye(image, line, line)[0], image)  # no opening
    dot = np.array([[10.0, 20.0], [10.5, 19.0], [11.0, 20.0]])
    assert np.array_equal(close_eye(image, dot, dot[::-1] * [1, 1])[0], image)  # under 2 px wide
