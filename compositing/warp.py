"""Resampling the frame through a crop's backward warp field, with Kornia.

All resampling here is Kornia's, in the pixel convention of ``compositing/crop.py`` (pixel
centres at integer coordinates, ``align_corners=True``). Kornia's ``remap`` normalizes pixel maps
with the ``align_corners=True`` convention whatever flag it is given, so it must be called with
``align_corners=True`` or even an identity map resamples the image (kornia issue #4504).

The edit engine (``plugin/editing.py``) samples the frame ONCE per face and frame:
:func:`sample_frame_through_field` takes each frame pixel under the mask's support to the crop,
through the field and back, and samples the frame there. :func:`apply_field` and
:func:`paste_back` are the two-step form (warp an extracted crop, warp it back into the frame):
three resamplings in all with ``extract``, which halves the face's fine detail, so the render
path no longer uses them; they remain for crop-space work and ``bench/warp.py``.

Only the frame pixels under the mask's support are read or written; every other pixel keeps its
exact bytes, and a mask that is 0 everywhere returns the frame unchanged.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
import torch.nn.functional as F
from kornia.geometry.transform import remap, warp_affine
from numpy.typing import NDArray

from compositing.blend import BlendConfig, blend
from compositing.crop import FaceCrop
from compositing.mask import snap

@functools.lru_cache(maxsize=4)
def _identity(size: int) -> torch.Tensor:
    """``(S, S, 2)`` float32 pixel-centre coordinates (x, y); shared, never modified."""
    ax = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def apply_field(crop_image: torch.Tensor, sample_xy: torch.Tensor, padding: str = "border") -> torch.Tensor:
    """Warp crops by a backward field: ``output[p] = input[sample_xy[p]]`` (bilinear).

    Args:
        crop_image: ``(B, C, S, S)`` float32 (RGB in [0, 1], or any channels).
        sample_xy: ``(S, S, 2)`` or ``(B, S, S, 2)`` float32 crop pixels (x, y) to sample from.
        padding: where a sample falls outside the crop: ``"border"``, ``"zeros"``, ``"reflection"``.

    Returns:
        ``(B, C, S, S)`` float32. An exact identity field returns ``crop_image`` itself (no
        resampling).
    """
    b, _, h, w = crop_image.shape
    if sample_xy.dim() == 3:
        sample_xy = sample_xy[None]
    if sample_xy.shape[1:] != (h, w, 2) or sample_xy.shape[0] not in (1, b):
        raise ValueError(f"sample_xy must be ({h}, {w}, 2) or ({b}, {h}, {w}, 2), got {tuple(sample_xy.shape)}")
    if h == w and torch.equal(sample_xy, _identity(h).expand_as(sample_xy)):
        return crop_image
    sample_xy = sample_xy.expand(b, h, w, 2).to(crop_image.dtype)
    return remap(
        crop_image, sample_xy[..., 0], sample_xy[..., 1], mode="bilinear", padding_mode=padding, align_corners=True
    )


def support_box(crop: FaceCrop, mask: torch.Tensor) -> tuple[int, int, int, int] | None:
    """Frame box ``(x0, y0, x1, y1)`` (exclusive ends) that the mask's support can touch.

    Args:
        crop: the crop the mask lives in.
        mask: ``(1, 1, S, S)`` float32 in [0, 1].

    Returns:
        The box clipped to the frame, or ``None`` when the mask is 0 everywhere or its support
        maps entirely outside the frame.
    """
    m = mask[0, 0] > 0
    rows = torch.nonzero(m.any(dim=1)).flatten()
    cols = torch.nonzero(m.any(dim=0)).flatten()
    if rows.numel() == 0:
        return None
    u0, u1 = float(cols[0]) - 1.0, float(cols[-1]) + 1.0
    v0, v1 = float(rows[0]) - 1.0, float(rows[-1]) + 1.0
    corners = np.array([[u0, v0, 1.0], [u1, v0, 1.0], [u0, v1, 1.0], [u1, v1, 1.0]])
    xy = (crop.frame_trans_crop @ corners.T)[:2]
    h, w = crop.frame_size
    x0, x1 = max(math.floor(xy[0].min()), 0), min(math.ceil(xy[0].max()) + 1, w)
    y0, y1 = max(math.floor(xy[1].min()), 0), min(math.ceil(xy[1].max()) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    return x0, y0, x1, y1


def paste_back(
    frame: NDArray[np.uint8],
    edited_crop: torch.Tensor,
    crop: FaceCrop,
    mask: torch.Tensor,
    config: BlendConfig | None = None,
) -> NDArray[np.uint8]:
    """Warp an edited crop and its mask back into the frame and blend them in.

    Only the frame box under the mask's support is resampled (``warp_affine`` of the crop and mask
    together, 4 channels, into that box, never the whole frame); the blend leaves every pixel where
    the warped mask is 0 bit-identical.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB, of size ``crop.frame_size``; not modified.
        edited_crop: ``(1, 3, S, S)`` float32 RGB in [0, 1], crop pixels.
        crop: the crop's transform.
        mask: ``(1, 1, S, S)`` float32 in [0, 1], crop pixels; where the blend may write.
        config: blend settings; defaults to ``BlendConfig()``.

    Returns:
        ``(H, W, 3)`` uint8 RGB, a new array.
    """
    config = config or BlendConfig()
    s = crop.size
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if tuple(frame.shape[:2]) != crop.frame_size:
        raise ValueError(f"frame is {frame.shape[:2]}, the crop was made for {crop.frame_size}")
    if tuple(edited_crop.shape) != (1, 3, s, s) or tuple(mask.shape) != (1, 1, s, s):
        raise ValueError(
            f"edited_crop must be (1, 3, {s}, {s}) and mask (1, 1, {s}, {s}); "
            f"got {tuple(edited_crop.shape)} and {tuple(mask.shape)}"
        )
    out = frame.copy()
    box = support_box(crop, mask)
    if box is None:
        return out
    x0, y0, x1, y1 = box
    frame_trans_box = np.eye(3)
    frame_trans_box[:2, 2] = (x0, y0)
    box_trans_crop = np.linalg.inv(frame_trans_box) @ crop.frame_trans_crop
    m = torch.from_numpy(box_trans_crop[None, :2]).float()
    both = torch.cat([edited_crop.float(), mask.float()], dim=1)
    warped = warp_affine(both, m, (y1 - y0, x1 - x0), mode="bilinear", padding_mode="zeros", align_corners=True)
    alpha = warped[:, 3:4].clamp(0.0, 1.0)
    alpha = torch.where(alpha < config.floor, torch.zeros_like(alpha), alpha)
    if not bool((alpha > 0).any()):
        return out
    out[y0:y1, x0:x1] = blend(frame[y0:y1, x0:x1], warped[:, :3], alpha, config)
    return out


#: Kornia / ``grid_sample`` interpolation modes for :func:`sample_frame_through_field`.
SAMPLE_MODES = ("bicubic", "bilinear")
#: Extra source pixels read around the sampled positions (bicubic reads 2 on each side).
_SAMPLE_MARGIN = 3
#: When at least this fraction of the box's pixels moves, :func:`sample_frame_through_field`
#: samples the whole box as one image (the still pixels at their own positions) instead of
#: gathering the moving ones and scattering them back. Measured on a 1080p close-up (one torch
#: thread): with 82% of the box moving, whole-box sampling took 8.8 ms and gathering 9.9 ms;
#: with 59% moving, 8.0 and 7.2 ms.
DENSE_FRACTION = 0.7


def _box_grid(crop: FaceCrop, box: tuple[int, int, int, int], size: int, dev: torch.device) -> torch.Tensor:
    """``(1, h, w, 2)`` float32 ``grid_sample`` grid (``align_corners=True``): each pixel of the
    frame ``box`` at its normalized position in the ``size`` crop.

    Written row and column terms into one buffer (the map is affine): several times cheaper than
    ``affine_grid`` or stacking two full-size maps."""
    x0, y0, x1, y1 = box
    k = 2.0 / (size - 1)
    m = crop.crop_trans_frame[:2] * k
    m[:, 2] -= 1.0
    xs = torch.arange(x0, x1, dtype=torch.float64, device=dev)
    ys = torch.arange(y0, y1, dtype=torch.float64, device=dev)
    grid = torch.empty((1, y1 - y0, x1 - x0, 2), dtype=torch.float32, device=dev)
    for c in range(2):
        col = (xs * float(m[c, 0])).float()
        row = (ys * float(m[c, 1]) + float(m[c, 2])).float()
        torch.add(row[:, None], col[None, :], out=grid[0, :, :, c])
    return grid


def _field_at_box(crop: FaceCrop, field_and_mask: torch.Tensor, box: tuple[int, int, int, int]) -> torch.Tensor:
    """``(1, 3, h, w)``: the crop's displacement x, y and mask at each frame pixel of ``box``
    (bilinear; 0 outside the crop)."""
    grid = _box_grid(crop, box, field_and_mask.shape[-1], field_and_mask.device)
    return F.grid_sample(field_and_mask, grid, mode="bilinear", padding_mode="zeros", align_corners=True)


def _window(lo: tuple[float, float], hi: tuple[float, float], frame_size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Frame window ``(x0, y0, x1, y1)`` holding the positions in ``[lo, hi]`` and the kernel's margin."""
    h, w = frame_size
    sx0 = min(max(int(math.floor(lo[0])) - _SAMPLE_MARGIN, 0), w - 1)
    sy0 = min(max(int(math.floor(lo[1])) - _SAMPLE_MARGIN, 0), h - 1)
    sx1 = max(min(int(math.ceil(hi[0])) + _SAMPLE_MARGIN + 1, w), sx0 + 1)
    sy1 = max(min(int(math.ceil(hi[1])) + _SAMPLE_MARGIN + 1, h), sy0 + 1)
    return sx0, sy0, sx1, sy1


def _normalizer(window: tuple[int, int, int, int]) -> tuple[float, float, float, float]:
    """``(kx, cx, ky, cy)``: a frame pixel ``x`` is ``kx x + cx`` in the window's normalized
    coordinates (``align_corners=True``; a one-pixel side maps everything to its centre)."""
    sx0, sy0, sx1, sy1 = window
    kx = 2.0 / (sx1 - sx0 - 1) if sx1 - sx0 > 1 else 0.0
    ky = 2.0 / (sy1 - sy0 - 1) if sy1 - sy0 > 1 else 0.0
    return kx, -1.0 - kx * sx0 if kx else 0.0, ky, -1.0 - ky * sy0 if ky else 0.0


def _read_window(frame: NDArray[np.uint8], window: tuple[int, int, int, int], dev: torch.device) -> torch.Tensor:
    """``(1, 3, h, w)`` float32 0..255 (channels-last strides, which grid_sample reads faster)."""
    sx0, sy0, sx1, sy1 = window
    return torch.from_numpy(np.ascontiguousarray(frame[sy0:sy1, sx0:sx1])).to(dev).permute(2, 0, 1)[None].float()


def sample_frame_through_field(
    frame: NDArray[np.uint8],
    crop: FaceCrop,
    field_and_mask: torch.Tensor,
    box: tuple[int, int, int, int],
    mode: str = "bicubic",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample the frame ONCE through a crop's warp field, over one frame box, with Kornia.

    Each frame pixel ``p`` of ``box`` goes to the crop (``q = crop_trans_frame p``), picks up the
    field's displacement ``d`` and mask there (bilinear), and samples the frame at
    ``p + A d``, where ``A`` is the linear part of ``frame_trans_crop``: the same position as
    ``frame_trans_crop (q + d)``, without a second pass through the crop. Pixels whose mask is 0
    keep the frame's values (to float rounding of their own position when the box is sampled
    whole: a lerp blend never reads them, a Laplacian blend's bands see that rounding only).
    When most of the box moves (:data:`DENSE_FRACTION`) the box is sampled as one image
    (``kornia.geometry.transform.remap``), with the displacement of the still pixels set to 0;
    otherwise only the moving pixels are gathered, sampled and scattered back, so the cost
    follows the moving area, not the box.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB of size ``crop.frame_size`` (not modified).
        crop: the crop the field lives in.
        field_and_mask: ``(1, 3, S, S)`` float32: displacement x, y (crop pixels) and mask, on
            the device the work should run on.
        box: ``(x0, y0, x1, y1)`` frame box (exclusive ends), e.g. :func:`support_box`.
        mode: ``"bicubic"`` (Keys, a = -0.75, as OpenCV's cubic) or ``"bilinear"``.

    Returns:
        ``(1, 3, h, w)`` float32 RGB in [0, 1] (bicubic may overshoot slightly; the blend clamps)
        and the ``(1, 1, h, w)`` mask, both on ``field_and_mask``'s device.
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode must be one of {SAMPLE_MODES}, got {mode!r}")
    dev = field_and_mask.device
    x0, y0, x1, y1 = box
    bw, bh = x1 - x0, y1 - y0
    a = crop.frame_trans_crop[:2, :2]
    at = _field_at_box(crop, field_and_mask, box)
    alpha = at[:, 2:3]
    moving = alpha[0, 0] > 0
    count = int(torch.count_nonzero(moving))
    if count == 0:
        return _read_window(frame, (x0, y0, x1, y1), dev).div_(255.0), alpha
    if count >= DENSE_FRACTION * bw * bh:
        d = at[0, :2].masked_fill_(~moving, 0.0)  # (2, bh, bw); still pixels sample themselves
        d0, d1 = d[0], d[1]
        # Bound of |A d| per axis, for the window the samples can reach.
        m0, m1 = float(d0.abs().max()), float(d1.abs().max())
        rx, ry = abs(a[0, 0]) * m0 + abs(a[0, 1]) * m1, abs(a[1, 0]) * m0 + abs(a[1, 1]) * m1
        window = _window((x0 - rx, y0 - ry), (x1 - 1 + rx, y1 - 1 + ry), crop.frame_size)
        kx, cx, ky, cy = _normalizer(window)
        xs = torch.arange(x0, x1, dtype=torch.float32, device=dev).mul_(kx).add_(cx)
        ys = torch.arange(y0, y1, dtype=torch.float32, device=dev).mul_(ky).add_(cy)
        map_x = (d0 * float(kx * a[0, 0])).add_(d1, alpha=float(kx * a[0, 1])).add_(xs[None, :])
        map_y = (d0 * float(ky * a[1, 0])).add_(d1, alpha=float(ky * a[1, 1])).add_(ys[:, None])
        src = _read_window(frame, window, dev)
        fg = remap(src, map_x[None], map_y[None], mode=mode, padding_mode="border", align_corners=True,
                   normalized_coordinates=True)
        return fg.div_(255.0), alpha
    fg = _read_window(frame, (x0, y0, x1, y1), dev).div_(255.0)
    sel = torch.nonzero(moving.reshape(-1)).squeeze(1)
    fg.view(3, -1).index_copy_(1, sel, _sample_at(frame, crop, at, sel, box, mode).div_(255.0))
    return fg, alpha


def _sample_at(frame: NDArray[np.uint8], crop: FaceCrop, at: torch.Tensor, sel: torch.Tensor,
               box: tuple[int, int, int, int], mode: str) -> torch.Tensor:
    """``(3, N)`` float32 0..255: the frame sampled (``remap``, ``mode``) for the box pixels
    ``sel`` (flat indices into the box, row-major), each at its own position plus ``A d``, where
    ``d`` is the crop displacement ``at[0, :2]`` ``(2, bh, bw)`` holds there (see
    :func:`sample_frame_through_field`). Only the frame window the samples reach is read."""
    x0, y0, x1, _ = box
    bw = x1 - x0
    a = crop.frame_trans_crop[:2, :2]
    d = at[0, :2].reshape(2, -1).index_select(1, sel)
    col, row = (sel % bw).float() + x0, torch.div(sel, bw, rounding_mode="floor").float() + y0
    px = col + float(a[0, 0]) * d[0] + float(a[0, 1]) * d[1]
    py = row + float(a[1, 0]) * d[0] + float(a[1, 1]) * d[1]
    window = _window((float(px.min()), float(py.min())), (float(px.max()), float(py.max())), crop.frame_size)
    kx, cx, ky, cy = _normalizer(window)
    src = _read_window(frame, window, at.device)
    sampled = remap(src, px.mul_(kx).add_(cx)[None, None], py.mul_(ky).add_(cy)[None, None], mode=mode,
                    padding_mode="border", align_corners=True, normalized_coordinates=True)  # (1, 3, 1, N)
    return sampled[0, :, 0]


def warp_blend_lerp(
    frame: NDArray[np.uint8],
    crop: FaceCrop,
    field_and_mask: torch.Tensor,
    box: tuple[int, int, int, int],
    mode: str = "bicubic",
    floor: float = 0.0,
) -> NDArray[np.uint8] | None:
    """The frame box sampled once through the field and alpha-blended over itself, computed only
    at the pixels the mask lets through: what :func:`sample_frame_through_field`, ``snap`` and
    ``compositing.blend.blend_lerp`` give (to one grey level: the frame window read around the
    samples, and so the float rounding of their positions, may differ; pixels the mask leaves
    out are the frame's own bytes either way), without building the whole box in floats
    (a face edit moves about half of its box: measured on a smile at 1080p, 58 %).

    Args:
        frame, crop, field_and_mask, box, mode: as for :func:`sample_frame_through_field`.
        floor: mask values below it count as 0 and above ``1 - floor`` as 1
            (``compositing.mask.snap``).

    Returns:
        The ``(h, w, 3)`` uint8 box (a new array), or None when the mask lets nothing through.
    """
    if mode not in SAMPLE_MODES:
        raise ValueError(f"mode must be one of {SAMPLE_MODES}, got {mode!r}")
    x0, y0, x1, y1 = box
    at = _field_at_box(crop, field_and_mask, box)
    a = at[0, 2].reshape(-1)
    # snap() leaves exactly the values at or above the floor (above 0 without one) non-zero:
    # select those first, then snap only them
    sel = torch.nonzero(a >= floor if floor > 0 else a > 0).squeeze(1)
    if sel.numel() == 0:
        return None
    alpha = snap(a.index_select(0, sel), floor)
    fg = _sample_at(frame, crop, at, sel, box, mode).div_(255.0)
    out = np.array(frame[y0:y1, x0:x1])
    flat = out.reshape(-1, 3)
    idx = sel.cpu().numpy()
    bg = torch.from_numpy(np.take(flat, idx, axis=0).T.copy()).to(fg.device).float().div_(255.0)
    mixed = torch.lerp(bg, fg, alpha[None].expand_as(fg))
    u8 = mixed.mul_(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).T.cpu()
    torch.from_numpy(flat).index_copy_(0, torch.from_numpy(idx), u8)
    return out
