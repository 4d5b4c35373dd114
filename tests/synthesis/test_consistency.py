"""A face's texture against the rest of its track: moved faces agree, melted ones do not."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from plugin.demo import astronaut_image
from synthesis.consistency import MIN_SEEN, detail_agreement, face_detail, stable_texels
from synthesis.restore import garbled_rows
from tests.plugin.media import melt_face
from tracking.landmarker import Landmarker, LandmarkerConfig

#: Clean copies agree at least this well; a melted copy at least this much less.
CLEAN_MIN, MELT_DROP = 0.9, 0.25


@pytest.fixture(scope="module")
def face():
    image = astronaut_image()
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        (f,) = lm.detect_image(image)
    return image, f.landmarks.astype(np.float64)


def _moved(image, landmarks, angle_deg, shift, gain):
    """The frame turned in plane and shifted, a little brighter or darker; landmarks moved with it."""
    h, w = image.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[:, 2] += shift
    out = cv2.warpAffine(image, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
    out = np.clip(out.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    lm = landmarks.copy()
    lm[:, :2] = landmarks[:, :2] @ m[:, :2].T + m[:, 2]
    return out, lm


def test_moved_faces_agree_and_melted_ones_do_not(face) -> None:
    image, lm = face
    frames = [_moved(image, lm, a, s, g) for a, s, g in
              ((0, (0, 0), 1.0), (4, (3.5, -2), 1.1), (-6, (-5, 4.5), 0.9), (8, (1.5, 6), 1.05),
               (-3, (7, -1.5), 0.95), (2, (-2.5, -4), 1.0))]
    frames += [(melt_face(image, lm, seed, 0.15, oval=False), lm) for seed in (1, 2)]
    got = [face_detail(img, pts) for img, pts in frames]
    agree = detail_agreement(np.stack([d for d, _ in got]), np.stack([s for _, s in got]))
    clean, melted = agree[:6], agree[6:]
    assert clean.min() >= CLEAN_MIN
    assert melted.max() <= clean.min() - MELT_DROP
    # as swap repair reads them: the plate (the clean copies) against the swap (melted on two)
    plate = np.concatenate([clean, clean[:2]])
    assert garbled_rows(plate, agree, MELT_DROP).tolist() == [False] * 6 + [True] * 2
    assert not garbled_rows(plate, agree, 0.0).any()  # 0: the check is off


def test_a_face_mostly_outside_the_frame_is_not_judged(face) -> None:
    image, lm = face
    off = lm.copy()
    off[:, 0] += image.shape[1] * 0.9  # most of the face beyond the right edge
    d, seen = face_detail(image, off)
    assert seen.sum() < MIN_SEEN * stable_texels().sum()
    details = np.stack([face_detail(image, lm)[0]] * 3 + [d])
    masks = np.stack([face_detail(image, lm)[1]] * 3 + [seen])
    agree = detail_agreement(details, masks)
    assert np.isfinite(agree[:3]).all() and np.isnan(agree[3])
    assert not garbled_rows(np.ones(4), agree, 0.25)[3]  # NaN is never garbled


def test_segments_are_compared_with_their_own_median(face) -> None:
    image, lm = face
    other = np.ascontiguousarray(image[:, ::-1])  # another "shot": the mirrored frame, landmarks unchanged
    details = np.stack([face_detail(image, lm)[0]] * 3 + [face_detail(other, lm)[0]] * 3)
    seen = np.stack([face_detail(image, lm)[1]] * 3 + [face_detail(other, lm)[1]] * 3)
    mixed = detail_agreement(details, seen)
    split = detail_agreement(details, seen, np.array([0, 0, 0, 1, 1, 1]))
    assert split.min() > 0.99
    assert mixed.min() < split.min() - 0.2
