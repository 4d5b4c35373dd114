"""Blending an edited face region into the frame.

Every blend takes a frame region (the background, uint8), the edited pixels warped into the same
region (the foreground, float) and an alpha in [0, 1], and returns the region as uint8. Pixels
where alpha is exactly 0 are returned BIT-IDENTICAL, whatever the method: each method ends with
``where(alpha > 0, blended, background)``.

Methods:

- ``"lerp"``: ``background + alpha * (foreground - background)`` (``torch.lerp``), rounded.
- ``"laplacian"``: Laplacian-pyramid blending (Burt and Adelson): each frequency band is blended
  with a Gaussian-pyramid level of alpha, so low frequencies blend over a wider band than the
  mask's own feather. Where alpha is 0 the background is kept exactly; a feather wide enough that
  the coarse bands have faded there keeps that cut invisible.
- ``"poisson"``: ``cv2.seamlessClone`` (NORMAL_CLONE) of the foreground onto the background over
  ``alpha > 0``, which matches the foreground's colour to the background at the region's edge; the
  result is then blended with alpha like ``"lerp"``. Slow: 75-100 ms for a 470x515 region on one
  thread (``"lerp"`` 2.5 ms, ``"laplacian"`` 22 ms; bench/warp.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from kornia.filters import gaussian_blur2d
from numpy.typing import NDArray

from tracking.errors import ConfigError

BLEND_METHODS = ("lerp", "laplacian", "poisson")


@dataclass(frozen=True)
class BlendConfig:
    """How the edited face is masked and blended into the frame.

    Attributes:
        method: ``"lerp"``, ``"laplacian"`` or ``"poisson"``.
        dilate: distance beyond the face ovals over which the mask stays 1, as a fraction of the
            face size (>= 0).
        feather: sigma of the mask's soft edge beyond that, as a fraction of the face size (>= 0);
            the mask reaches 0 about ``dilate + 6 * feather`` face sizes out, which the crop's
            margin (``compositing.crop.DEFAULT_MARGIN``) must leave room for.
        floor: mask values below it are 0 and above ``1 - floor`` are 1 (in [0, 0.5)).
        motion_px: displacement (crop pixels) at which the motion weight reaches 1 (> 0);
            see ``compositing.mask.motion_weight``.
        levels: Laplacian pyramid levels (>= 1; ``"laplacian"`` only).
    """

    method: str = "lerp"
    dilate: float = 0.05
    feather: float = 0.03
    floor: float = 1.0 / 512.0
    motion_px: float = 0.5
    levels: int = 4

    def __post_init__(self) -> None:
        if self.method not in BLEND_METHODS:
            raise ConfigError(f"BlendConfig.method must be one of {BLEND_METHODS}, got {self.method!r}")
        if not self.dilate >= 0:
            raise ConfigError(f"BlendConfig.dilate must be >= 0, got {self.dilate}")
        if not self.feather >= 0:
            raise ConfigError(f"BlendConfig.feather must be >= 0, got {self.feather}")
        if not 0 <= self.floor < 0.5:
            raise ConfigError(f"BlendConfig.floor must be in [0, 0.5), got {self.floor}")
        if not self.motion_px > 0:
            raise ConfigError(f"BlendConfig.motion_px must be > 0, got {self.motion_px}")
        if not 1 <= self.levels <= 8:
            raise ConfigError(f"BlendConfig.levels must be in [1, 8], got {self.levels}")


def _check(background: NDArray[np.uint8], foreground: torch.Tensor, alpha: torch.Tensor) -> None:
    h, w = background.shape[:2]
    if background.ndim != 3 or background.shape[2] != 3 or background.dtype != np.uint8:
        raise ValueError(f"background must be (h, w, 3) uint8, got {background.shape} {background.dtype}")
    if tuple(foreground.shape) != (1, 3, h, w) or tuple(alpha.shape) != (1, 1, h, w):
        raise ValueError(
            f"foreground must be (1, 3, {h}, {w}) and alpha (1, 1, {h}, {w}); "
            f"got {tuple(foreground.shape)} and {tuple(alpha.shape)}"
        )


def _to_tensor(image: NDArray[np.uint8]) -> torch.Tensor:
    """``(h, w, 3)`` uint8 -> contiguous ``(1, 3, h, w)`` float32, exactly ``value / 255``."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0).contiguous()


def _finish(background: NDArray[np.uint8], blended: torch.Tensor, alpha: torch.Tensor) -> NDArray[np.uint8]:
    """Round ``(1, 3, h, w)`` [0, 1] to uint8 and keep the background wherever alpha is 0 (on
    ``blended``'s device; the result comes back to the CPU)."""
    u8 = blended.mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8)
    bg = torch.from_numpy(np.ascontiguousarray(background)).to(u8.device).permute(2, 0, 1)[None]
    return torch.where(alpha.to(u8.device) > 0, u8, bg)[0].permute(1, 2, 0).cpu().numpy()


def blend_lerp(background: NDArray[np.uint8], foreground: torch.Tensor, alpha: torch.Tensor) -> NDArray[np.uint8]:
    """Alpha blend, on ``foreground``'s device. Shapes as in :func:`blend`."""
    _check(background, foreground, alpha)
    fg = foreground.float().contiguous()
    out = torch.lerp(_to_tensor(background).to(fg.device), fg, alpha.to(fg.device).float().expand_as(fg))
    return _finish(background, out, alpha)


def _pyr_down(x: torch.Tensor) -> torch.Tensor:
    return F.avg_pool2d(gaussian_blur2d(x, (5, 5), (1.0, 1.0), border_type="replicate"), 2)


def _pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


def blend_laplacian(
    background: NDArray[np.uint8], foreground: torch.Tensor, alpha: torch.Tensor, levels: int
) -> NDArray[np.uint8]:
    """Laplacian-pyramid blend with ``levels`` levels. Shapes as in :func:`blend`."""
    _check(background, foreground, alpha)
    h, w = background.shape[:2]
    levels = max(1, min(levels, int(np.log2(max(min(h, w), 2)))))
    # Foreground, background and alpha go down the pyramid together: one blur per level.
    stack = torch.cat([foreground.float(), _to_tensor(background).to(foreground.device),
                       alpha.to(foreground.device).float()], dim=1)
    bands: list[torch.Tensor] = []
    for _ in range(levels - 1):
        low = _pyr_down(stack)
        band = stack[:, :6] - _pyr_up(low[:, :6], (stack.shape[-2], stack.shape[-1]))
        bands.append(torch.lerp(band[:, 3:6], band[:, 0:3], stack[:, 6:7].expand(-1, 3, -1, -1)))
        stack = low
    out = torch.lerp(stack[:, 3:6], stack[:, 0:3], stack[:, 6:7].expand(-1, 3, -1, -1))
    for band in reversed(bands):
        out = _pyr_up(out, (band.shape[-2], band.shape[-1])) + band
    return _finish(background, out.clamp(0.0, 1.0), alpha)


#: Border added around the region before ``cv2.seamlessClone`` (it misbehaves when the mask
#: touches the image edge).
_POISSON_PAD = 4


def blend_poisson(background: NDArray[np.uint8], foreground: torch.Tensor, alpha: torch.Tensor) -> NDArray[np.uint8]:
    """``cv2.seamlessClone`` over ``alpha > 0``, then alpha-blended. Shapes as in :func:`blend`."""
    _check(background, foreground, alpha)
    foreground, alpha = foreground.cpu(), alpha.cpu()  # OpenCV's solver runs on the CPU
    support = (alpha[0, 0] > 0).numpy()
    if not support.any():
        return background.copy()
    p = _POISSON_PAD
    fg8 = foreground.float()[0].permute(1, 2, 0).mul(255.0).round_().clamp_(0.0, 255.0).to(torch.uint8).numpy()
    fg = np.pad(fg8, ((p, p), (p, p), (0, 0)), mode="edge")
    bg = np.pad(background, ((p, p), (p, p), (0, 0)), mode="edge")
    mask = np.pad(support.astype(np.uint8) * 255, p)
    # seamlessClone puts the mask's bounding box centred on ``center``; with the box's own centre
    # (integer division, as OpenCV computes it) the source lands exactly where it was.
    x, y, bw, bh = cv2.boundingRect(mask)
    cloned = cv2.seamlessClone(fg, bg, mask, (x + bw // 2, y + bh // 2), cv2.NORMAL_CLONE)
    cloned = cloned[p:-p, p:-p]
    return blend_lerp(background, _to_tensor(cloned), alpha)


def blend(
    background: NDArray[np.uint8], foreground: torch.Tensor, alpha: torch.Tensor, config: BlendConfig
) -> NDArray[np.uint8]:
    """Blend ``foreground`` over ``background`` with ``alpha``, by ``config.method``.

    Args:
        background: ``(h, w, 3)`` uint8 RGB, a frame region.
        foreground: ``(1, 3, h, w)`` float32 RGB in [0, 1], the same region edited.
        alpha: ``(1, 1, h, w)`` float32 in [0, 1]; where it is exactly 0 the background is
            returned bit-identical.
        config: the method and its settings.

    Returns:
        ``(h, w, 3)`` uint8 RGB, a new array.
    """
    if config.method == "lerp":
        return blend_lerp(background, foreground, alpha)
    if config.method == "laplacian":
        return blend_laplacian(background, foreground, alpha, config.levels)
    return blend_poisson(background, foreground, alpha)
