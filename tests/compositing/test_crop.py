"""Face crops: transform conventions, parameters for smoothing, extraction, faces cut by the border."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest
import torch

from compositing.crop import (
    AUTO_SIZE_STEP,
    FaceCrop,
    crop_for_landmarks,
    crop_from_params,
    crop_to_params,
    extract,
    is_inside,
    valid_mask,
)

#: float32 sampling of exact integer positions reproduces uint8 / 255 to this.
EXACT_TOL = 1e-6
#: Kornia bilinear versus OpenCV's fixed-point bilinear (1/32-pixel weights) on a smooth image.
CV2_TOL = 2.0 / 255.0
#: Crop parameters survive a round trip through the matrices to this.
PARAM_TOL = 1e-9


def smooth_frame(h: int = 360, w: int = 640, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def face_landmarks(cx: float, cy: float, r: float, n: int = 60) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.stack([cx + r * np.cos(t), cy + 1.2 * r * np.sin(t)], 1)


@pytest.mark.parametrize("params", [(320.0, 180.0, 0.7, 0.0), (100.5, 50.25, 1.3, 0.4), (10.0, 300.0, 2.0, -2.9)])
def test_params_round_trip(params: tuple[float, float, float, float]) -> None:
    crop = crop_from_params(params, 128, (360, 640))
    assert np.allclose(crop_to_params(crop), params, atol=PARAM_TOL)
    assert np.allclose(crop.params, params, atol=PARAM_TOL)
    # The centre parameter is the frame point at the crop's centre pixel.
    h = (crop.size - 1) / 2
    centre = crop.frame_trans_crop @ np.array([h, h, 1.0])
    assert np.allclose(centre[:2], params[:2])


def test_crop_is_validated() -> None:
    crop = crop_from_params((10, 10, 1, 0), 64, (100, 100))
    with pytest.raises(ValueError):
        FaceCrop(crop.crop_trans_frame, crop.crop_trans_frame, 64, (100, 100))
    with pytest.raises(ValueError):
        crop_from_params((10, 10, 0.0, 0), 64, (100, 100))


@pytest.mark.parametrize("angle", [0.0, 0.5])
def test_crop_for_landmarks_centres_the_face_with_margin(angle: float) -> None:
    lm = face_landmarks(300, 170, 50)
    margin = 0.3
    crop = crop_for_landmarks(lm, (360, 640), out_size=256, margin=margin, angle=angle)
    inside = lm @ crop.crop_trans_frame[:2, :2].T + crop.crop_trans_frame[:2, 2]
    lo, hi = inside.min(0), inside.max(0)
    s = crop.size
    # The face's larger extent spans 1 / (1 + 2 margin) of the crop and is centred.
    assert max(hi - lo) == pytest.approx(s / (1 + 2 * margin), rel=1e-6)
    assert np.allclose((lo + hi) / 2, (s - 1) / 2, atol=0.5 + 1e-6)
    assert crop.params[3] == pytest.approx(angle)


def test_auto_size_follows_the_face() -> None:
    lm = face_landmarks(300, 170, 50)
    crop = crop_for_landmarks(lm, (360, 640), out_size=None, margin=0.3)
    side = 120 * 1.6  # larger extent (1.2 r * 2) with the margin, in frame pixels
    assert crop.size % AUTO_SIZE_STEP == 0
    assert side <= crop.size < side + AUTO_SIZE_STEP
    assert crop.params[2] <= 1.0  # never downsampled: at most one frame pixel per crop pixel


def test_extract_integer_translation_is_exact() -> None:
    frame = smooth_frame()
    s = 64
    crop = crop_from_params((200 + (s - 1) / 2, 100 + (s - 1) / 2, 1.0, 0.0), s, frame.shape[:2])
    got = extract(frame, crop)
    want = torch.from_numpy(frame[100 : 100 + s, 200 : 200 + s]).permute(2, 0, 1)[None].float() / 255
    assert got.shape == (1, 3, s, s)
    assert torch.allclose(got, want, atol=EXACT_TOL)


def test_extract_agrees_with_opencv_pixel_centre_convention() -> None:
    frame = smooth_frame()
    crop = crop_from_params((300.3, 170.7, 0.83, 0.37), 96, frame.shape[:2])
    got = extract(frame, crop)[0].permute(1, 2, 0).numpy()
    want = cv2.warpAffine(frame, crop.crop_trans_frame[:2], (96, 96), flags=cv2.INTER_LINEAR).astype(np.float32) / 255
    assert np.abs(got - want).max() < CV2_TOL


def test_face_cut_by_the_frame_border() -> None:
    frame = smooth_frame()
    lm = face_landmarks(20, 300, 60)  # face partly left of and below the frame
    crop = crop_for_landmarks(lm, frame.shape[:2], out_size=128)
    assert not is_inside(crop)
    valid = valid_mask(crop)[0, 0]
    assert 0 < float(valid.mean()) < 1
    img = extract(frame, crop, padding="border")
    zeros = extract(frame, crop, padding="zeros")
    inside = valid > 0
    # Where the crop samples the frame, padding makes no difference; outside, zeros stay zero.
    assert torch.allclose(img[0][:, inside], zeros[0][:, inside], atol=EXACT_TOL)
    # Independent check of the validity mask: a white frame sampled with zero padding is exactly
    # white where the crop is valid.
    white = extract(np.full_like(frame, 255), crop, padding="zeros")[0, 0]
    assert torch.allclose(white[inside], torch.ones_like(white[inside]), atol=EXACT_TOL)
    assert float(white[~inside].max()) < 1.0
    dead = (~inside).nonzero()
    i, j = dead[len(dead) // 2].tolist()
    assert float(zeros[0, :, i, j].abs().max()) == 0.0
    assert float(img[0, :, i, j].min()) > 0.0  # the frame's edge colour repeated


def test_frame_box_covers_only_the_crop() -> None:
    crop = crop_from_params((960, 540, 1.0, math.radians(10)), 512, (1080, 1920))
    x0, y0, x1, y1 = crop.frame_box()
    assert (x1 - x0) < 1920 / 2 and (y1 - y0) < 1080
    corners = crop.frame_trans_crop @ np.array([[0, 0, 1], [511, 0, 1], [0, 511, 1], [511, 511, 1]]).T
    assert corners[0].min() >= x0 and corners[0].max() < x1
    assert corners[1].min() >= y0 and corners[1].max() < y1


def test_extract_rejects_the_wrong_frame() -> None:
    crop = crop_from_params((50, 50, 1.0, 0.0), 32, (100, 100))
    with pytest.raises(ValueError):
        extract(np.zeros((90, 100, 3), np.uint8), crop)
    with pytest.raises(ValueError):
        extract(np.zeros((100, 100, 3), np.float32), crop)  # type: ignore[arg-type]
