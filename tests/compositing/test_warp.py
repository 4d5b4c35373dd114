"""Applying fields and pasting back: round trips, bit-identical untouched pixels, a real face edit."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine

from compositing.blend import BLEND_METHODS, BlendConfig
from compositing.crop import FaceCrop, crop_for_landmarks, crop_from_params, extract
from compositing.mask import FACE_OVAL, face_region_mask, motion_weight
from compositing.warp import apply_field, paste_back, support_box
from synthesis.warpfield import WarpConfig, build_field, identity_grid
from tracking.observation import NUM_LANDMARKS

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
BUNDLE = Path(__file__).resolve().parents[2] / "tracking" / "models" / "face_landmarker.task"
#: Frame -> crop -> frame on a smooth image, for rotated and scaled crops (two bilinear
#: resamplings): mean and largest error in levels over the pasted region.
ROUNDTRIP_MEAN_TOL = 1.0
ROUNDTRIP_MAX_TOL = 6
#: MediaPipe re-reads at least this fraction of a requested mouth widening (it reads edits
#: partly: it re-infers the face from the image).
ACHIEVED_MIN_FRACTION = 0.4
CFG = BlendConfig()


def smooth_frame(h: int = 360, w: int = 640, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 16, w // 16, 3), dtype=np.uint8)
    return cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC)


def synthetic_face(cx: float, cy: float, r: float, seed: int = 0) -> np.ndarray:
    """``(478, 2)`` landmarks: the face oval on an ellipse, the other points scattered inside."""
    rng = np.random.default_rng(seed)
    t = np.linspace(-np.pi / 2, 3 * np.pi / 2, len(FACE_OVAL), endpoint=False)
    lm = np.empty((NUM_LANDMARKS, 2))
    rho, phi = 0.8 * np.sqrt(rng.random(NUM_LANDMARKS)), rng.random(NUM_LANDMARKS) * 2 * np.pi
    lm[:] = np.stack([cx + r * rho * np.cos(phi), cy + 1.25 * r * rho * np.sin(phi)], 1)
    lm[list(FACE_OVAL)] = np.stack([cx + r * np.cos(t), cy + 1.25 * r * np.sin(t)], 1)
    return lm


def to_crop(crop: FaceCrop, pts: np.ndarray) -> np.ndarray:
    return pts @ crop.crop_trans_frame[:2, :2].T + crop.crop_trans_frame[:2, 2]


def frame_alpha(frame: np.ndarray, crop: FaceCrop, mask: torch.Tensor) -> np.ndarray:
    """Where the mask lands in the frame (``> 0``), computed as ``paste_back`` does."""
    out = np.zeros(frame.shape[:2], bool)
    box = support_box(crop, mask)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    m = np.linalg.inv(np.array([[1, 0, x0], [0, 1, y0], [0, 0, 1.0]])) @ crop.frame_trans_crop
    a = warp_affine(mask, torch.from_numpy(m[None, :2]).float(), (y1 - y0, x1 - x0), align_corners=True)
    out[y0:y1, x0:x1] = (a[0, 0] >= CFG.floor).numpy()
    return out


def test_identity_field_returns_the_input_itself() -> None:
    img = torch.rand(2, 3, 32, 32)
    assert apply_field(img, identity_grid(32)) is img


def test_field_is_applied_in_pixel_centre_convention() -> None:
    img = torch.rand(1, 3, 32, 32)
    field = identity_grid(32)
    field[..., 0] += 3.0  # output x samples input x + 3
    out = apply_field(img, field)
    assert torch.allclose(out[..., :-3], img[..., 3:], atol=1e-5)
    batch = torch.stack([field, identity_grid(32)])
    two = apply_field(img.expand(2, -1, -1, -1), batch)
    assert torch.allclose(two[1], img[0], atol=1e-5) and torch.allclose(two[0], out[0])


@pytest.mark.parametrize("params", [(300.3, 170.7, 0.83, 0.37), (300.3, 170.7, 1.2, -0.2)])
def test_extract_then_paste_back_returns_the_frame(params: tuple[float, float, float, float]) -> None:
    frame = smooth_frame()
    s = 256
    crop = crop_from_params(params, s, frame.shape[:2])
    mask = torch.zeros(1, 1, s, s)
    mask[..., 8:-8, 8:-8] = 1.0
    image = extract(frame, crop)
    out = paste_back(frame, image, crop, mask)
    region = frame_alpha(frame, crop, mask)
    err = np.abs(out.astype(int) - frame)
    assert err[region].mean() < ROUNDTRIP_MEAN_TOL
    assert err.max() <= ROUNDTRIP_MAX_TOL
    assert np.array_equal(out[~region], frame[~region])
    # And the other way: the crop, pasted into the frame and cut out again, comes back.
    again = extract(out, crop)[..., 10:-10, 10:-10]
    crop_err = (again - image[..., 10:-10, 10:-10]).abs() * 255
    assert float(crop_err.mean()) < ROUNDTRIP_MEAN_TOL
    assert float(crop_err.max()) <= ROUNDTRIP_MAX_TOL


def test_integer_aligned_round_trip_is_exact() -> None:
    frame = smooth_frame()
    crop = crop_from_params((300.5, 180.5, 1.0, 0.0), 128, frame.shape[:2])
    out = paste_back(frame, extract(frame, crop), crop, torch.ones(1, 1, 128, 128))
    assert np.array_equal(out, frame)


@pytest.mark.parametrize("method", ["pa", "hybrid"])
def test_zero_edit_leaves_the_frame_bit_identical(method: str) -> None:
    frame = smooth_frame()
    lm = synthetic_face(300, 170, 60)
    crop = crop_for_landmarks(lm, frame.shape[:2], out_size=256)
    src = to_crop(crop, lm)
    field = build_field(src, src, crop.size, WarpConfig(method=method))
    assert field.is_identity
    image = extract(frame, crop)
    edited = apply_field(image, field.sample_xy)
    mask = face_region_mask(src, src, crop.size, dilate=CFG.dilate, feather=CFG.feather, floor=CFG.floor)
    # Even forcing the full path (a resampled crop, the face mask), the motion weight is 0.
    forced = apply_field(image, field.sample_xy + 0.0 * torch.rand(1))
    for crop_img in (edited, forced):
        out = paste_back(frame, crop_img, crop, mask * motion_weight(field.sample_xy, CFG.motion_px))
        assert np.array_equal(out, frame)


@pytest.mark.parametrize("method", BLEND_METHODS)
def test_pixels_outside_the_mask_are_untouched(method: str) -> None:
    frame = np.pad(smooth_frame(540, 960), ((0, 540), (0, 960), (0, 0)), mode="reflect")  # 1080 x 1920
    lm = synthetic_face(700, 400, 90)
    dst = lm.copy()
    dst[:, 0] += 6.0 * np.exp(-np.sum((lm - lm[0]) ** 2, axis=1) / (2 * 30.0**2))
    crop = crop_for_landmarks(lm, frame.shape[:2], out_size=256)
    src_c, dst_c = to_crop(crop, lm), to_crop(crop, dst)
    field = build_field(src_c, dst_c, crop.size)
    edited = apply_field(extract(frame, crop), field.sample_xy)
    face = face_region_mask(src_c, dst_c, crop.size, dilate=CFG.dilate, feather=CFG.feather, floor=CFG.floor)
    mask = face * motion_weight(field.sample_xy, CFG.motion_px)
    out = paste_back(frame, edited, crop, mask, BlendConfig(method=method))
    region = frame_alpha(frame, crop, mask)
    assert np.array_equal(out[~region], frame[~region])
    assert not np.array_equal(out[region], frame[region])
    x0, y0, x1, y1 = support_box(crop, mask)
    assert (x1 - x0) * (y1 - y0) < 0.05 * 1080 * 1920  # only the face's box was resampled


def test_face_cut_by_the_frame_border_pastes_back_inside_the_frame() -> None:
    frame = smooth_frame()
    lm = synthetic_face(30, 320, 60)  # the face runs off the left and bottom edges
    dst = lm + np.array([4.0, -3.0]) * np.exp(-np.sum((lm - lm.mean(0)) ** 2, axis=1) / (2 * 40.0**2))[:, None]
    crop = crop_for_landmarks(lm, frame.shape[:2], out_size=256)
    src_c, dst_c = to_crop(crop, lm), to_crop(crop, dst)
    field = build_field(src_c, dst_c, crop.size)
    edited = apply_field(extract(frame, crop), field.sample_xy)
    face = face_region_mask(src_c, dst_c, crop.size, dilate=CFG.dilate, feather=CFG.feather, floor=CFG.floor)
    mask = face * motion_weight(field.sample_xy, CFG.motion_px)
    out = paste_back(frame, edited, crop, mask)
    region = frame_alpha(frame, crop, mask)
    assert region.any() and np.array_equal(out[~region], frame[~region])
    x0, y0, x1, y1 = support_box(crop, mask)
    assert x0 == 0 and y1 == frame.shape[0]


@pytest.fixture(scope="module")
def astronaut_landmarks() -> tuple[np.ndarray, np.ndarray]:
    path = FIXTURES / "skimage_astronaut.png"
    if not path.exists() or not BUNDLE.exists():
        pytest.skip(f"needs {path} and {BUNDLE}")
    image = np.ascontiguousarray(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
    return image, detect(image)


def detect(image: np.ndarray) -> np.ndarray:
    """MediaPipe's 478 landmarks in pixels (origin at the top-left pixel centre)."""
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision

    opts = vision.FaceLandmarkerOptions(
        base_options=BaseOptions(model_asset_path=str(BUNDLE)), running_mode=vision.RunningMode.IMAGE, num_faces=1
    )
    with vision.FaceLandmarker.create_from_options(opts) as landmarker:
        res = landmarker.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    assert res.face_landmarks, "MediaPipe found no face"
    h, w = image.shape[:2]
    return np.array([[p.x * w - 0.5, p.y * h - 0.5] for p in res.face_landmarks[0]])


def test_real_face_mouth_widening_is_measured_back(astronaut_landmarks: tuple[np.ndarray, np.ndarray]) -> None:
    image, lm = astronaut_landmarks
    shift = 3.0  # frame pixels per mouth corner; the face is about 90 pixels wide
    axis = (lm[291] - lm[61]) / np.linalg.norm(lm[291] - lm[61])
    dst = lm.copy()
    sigma = np.linalg.norm(lm[291] - lm[61]) / 6
    for corner, sign in ((61, -1.0), (291, 1.0)):
        w = np.exp(-np.sum((lm - lm[corner]) ** 2, axis=1) / (2 * sigma**2))
        w[w < 1e-3] = 0.0
        dst += (sign * shift * w)[:, None] * axis
    crop = crop_for_landmarks(lm[:468], image.shape[:2], out_size=None)
    src_c, dst_c = to_crop(crop, lm[:468]), to_crop(crop, dst[:468])
    field = build_field(src_c, dst_c, crop.size)
    assert field.min_jacobian > 0 and field.repairs == 0
    edited = apply_field(extract(image, crop), field.sample_xy)
    face = face_region_mask(src_c, dst_c, crop.size, dilate=CFG.dilate, feather=CFG.feather, floor=CFG.floor)
    mask = face * motion_weight(field.sample_xy, CFG.motion_px)
    out = np.ascontiguousarray(paste_back(image, edited, crop, mask))
    region = frame_alpha(image, crop, mask)
    assert np.array_equal(out[~region], image[~region])
    again = detect(out)
    widened = np.linalg.norm(again[291] - again[61]) - np.linalg.norm(lm[291] - lm[61])
    assert widened > ACHIEVED_MIN_FRACTION * 2 * shift


#: The frame sampled through a field against a float64 evaluation of the same chain (frame pixel
#: to crop, field bilinear, position back in the frame, bicubic): largest difference in levels.
SAMPLE_TOL_LEVELS = 0.05
#: ... and of the mask brought to the frame.
SAMPLE_ALPHA_TOL = 1e-4


def _sampling_case(params: tuple[float, float, float, float]) -> tuple[np.ndarray, FaceCrop, torch.Tensor]:
    """A textured frame, a rotated crop and a smooth field (up to ~6 crop px) under a soft disk."""
    rng = np.random.default_rng(3)
    frame = cv2.resize(rng.integers(0, 256, (45, 80, 3), dtype=np.uint8), (640, 360), interpolation=cv2.INTER_CUBIC)
    s = 128
    crop = crop_from_params(params, s, frame.shape[:2])
    yy, xx = torch.meshgrid(torch.arange(s, dtype=torch.float32), torch.arange(s, dtype=torch.float32), indexing="ij")
    r = torch.sqrt((xx - 60) ** 2 + (yy - 66) ** 2)
    mask = (1.0 - (r - 30).clamp(0, 20) / 20).clamp(0, 1)  # 1 inside r 30, 0 past r 50
    dx = 6.0 * torch.sin(xx / 17.0) * torch.cos(yy / 23.0)
    dy = 4.0 * torch.cos(xx / 13.0 + 0.5)
    return frame, crop, torch.stack([dx * mask, dy * mask, mask])[None]


def _sampled_reference(frame: np.ndarray, crop: FaceCrop, fm: torch.Tensor,
                       box: tuple[int, int, int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    x0, y0, x1, y1 = box
    s = fm.shape[-1]
    yy, xx = torch.meshgrid(torch.arange(y0, y1, dtype=torch.float64), torch.arange(x0, x1, dtype=torch.float64),
                            indexing="ij")
    m = torch.from_numpy(crop.crop_trans_frame)
    q = torch.stack([m[0, 0] * xx + m[0, 1] * yy + m[0, 2], m[1, 0] * xx + m[1, 1] * yy + m[1, 2]], -1)
    at = F.grid_sample(fm.double(), (q * (2.0 / (s - 1)) - 1.0)[None], mode="bilinear", align_corners=True)[0]
    a = torch.from_numpy(crop.frame_trans_crop[:2, :2])
    px = xx + a[0, 0] * at[0] + a[0, 1] * at[1]
    py = yy + a[1, 0] * at[0] + a[1, 1] * at[1]
    h, w = frame.shape[:2]
    grid = torch.stack([px * (2.0 / (w - 1)) - 1.0, py * (2.0 / (h - 1)) - 1.0], -1)[None]
    img = torch.from_numpy(frame).permute(2, 0, 1)[None].double()
    fg = F.grid_sample(img, grid, mode="bicubic", padding_mode="border", align_corners=True) / 255.0
    return fg, at[2:3][None]


@pytest.mark.parametrize("dense", [True, False])
@pytest.mark.parametrize("params", [(300.3, 170.7, 1.7, 0.37), (40.0, 60.0, 1.3, -0.2)])  # the second: cut by the frame
def test_frame_sampled_through_a_field_matches_float64(params: tuple[float, float, float, float], dense: bool,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """Both ways of sampling (the whole box, or only its moving pixels) give the frame at
    ``p + A d`` under the mask and the frame itself elsewhere."""
    import compositing.warp as warp

    monkeypatch.setattr(warp, "DENSE_FRACTION", 0.0 if dense else 2.0)
    frame, crop, fm = _sampling_case(params)
    box = support_box(crop, fm[:, 2:3])
    assert box is not None
    fg, alpha = warp.sample_frame_through_field(frame, crop, fm, box, "bicubic")
    ref_fg, ref_alpha = _sampled_reference(frame, crop, fm, box)
    x0, y0, x1, y1 = box
    assert fg.shape == (1, 3, y1 - y0, x1 - x0) and alpha.shape == (1, 1, y1 - y0, x1 - x0)
    assert float((alpha.double() - ref_alpha).abs().max()) < SAMPLE_ALPHA_TOL
    moving = (alpha[0, 0] > 0).numpy()
    assert moving.mean() > 0.3 and not moving.all()
    err = (fg.double() - ref_fg).abs()[0].amax(0).numpy() * 255.0
    assert err[moving].max() < SAMPLE_TOL_LEVELS
    still = np.abs(fg[0].permute(1, 2, 0).double().numpy() * 255.0 - frame[y0:y1, x0:x1]).max(axis=2)
    assert still[~moving].max() < SAMPLE_TOL_LEVELS
    moved = np.abs(ref_fg[0].permute(1, 2, 0).numpy() * 255.0 - frame[y0:y1, x0:x1]).max(axis=2)
    assert moved[moving].max() > 10.0  # the field really moves texture (the check above can fail)


@pytest.mark.parametrize("params", [(300.3, 170.7, 1.7, 0.37), (40.0, 60.0, 1.3, -0.2)])
def test_warp_and_lerp_in_one_matches_sampling_then_blending(params: tuple[float, float, float, float]) -> None:
    """``warp_blend_lerp`` (only the pixels the mask lets through) gives what sampling the box,
    snapping the mask and ``blend_lerp`` give, to a grey level, and the other pixels bit for bit."""
    from compositing.blend import blend_lerp
    from compositing.mask import snap
    from compositing.warp import sample_frame_through_field, warp_blend_lerp

    frame, crop, fm = _sampling_case(params)
    box = support_box(crop, fm[:, 2:3])
    assert box is not None
    x0, y0, x1, y1 = box
    floor = 0.05
    fg, alpha = sample_frame_through_field(frame, crop, fm, box, "bicubic")
    alpha = snap(alpha, floor)
    want = blend_lerp(frame[y0:y1, x0:x1], fg, alpha)
    got = warp_blend_lerp(frame, crop, fm, box, "bicubic", floor)
    assert got is not None and got.shape == want.shape and got.dtype == np.uint8
    diff = np.abs(got.astype(int) - want.astype(int)).max(axis=2)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    through = (alpha[0, 0] > 0).numpy()
    assert 0.2 < through.mean() < 1.0
    np.testing.assert_array_equal(got[~through], frame[y0:y1, x0:x1][~through])
    assert np.abs(got[through].astype(int) - frame[y0:y1, x0:x1][through]).max() > 10  # it really moved
    assert warp_blend_lerp(frame, crop, fm * torch.tensor([1.0, 1.0, 0.0])[None, :, None, None], box) is None
