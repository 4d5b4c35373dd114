"""Aligned square face crops: the similarity transform between a frame and its face crop.

Conventions (STYLE.md): pixel coordinates are x right, y down, origin at the centre of the
top-left pixel, so pixel ``(i, j)`` of an image has its centre at ``x = j, y = i``. Transforms are
named by frames: ``crop_trans_frame`` maps frame pixels to crop pixels, ``frame_trans_crop`` maps
crop pixels back. Every Kornia warp here is called with ``align_corners=True``, which is the
convention in which a pixel-space matrix means exactly the pixel-centre coordinates above (with
``align_corners=False`` Kornia would sample half a pixel off for a pure translation; a test
checks that an integer translation reproduces the frame's pixels exactly).

A crop is described by four numbers that a caller can smooth over time (:func:`crop_to_params`,
:func:`crop_from_params`):

- ``cx, cy``: the frame point (pixels) at the crop's centre ``((S - 1) / 2, (S - 1) / 2)``;
- ``scale``: frame pixels per crop pixel (> 0; smooth its logarithm);
- ``angle``: radians, the direction of the crop's x axis in the frame, measured from the frame's
  x axis toward its y axis (clockwise on screen, since y points down); unwrap before smoothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from kornia.geometry.transform import warp_affine
from numpy.typing import NDArray

#: Default crop margin on each side, as a fraction of the face's extent. The blend mask reaches
#: about ``dilate + 6 * feather`` (0.05 + 0.18 with the default ``BlendConfig``) of the face size
#: beyond the face oval, and an edit may move the outline outward (jaw open); 0.35 leaves room.
DEFAULT_MARGIN = 0.35
#: Bounds on an automatically chosen crop size (pixels) and its rounding step.
AUTO_SIZE_MIN = 128
AUTO_SIZE_MAX = 1024
AUTO_SIZE_STEP = 32

_PADDING_MODES = ("border", "zeros", "reflection")


@dataclass(frozen=True, eq=False)
class FaceCrop:
    """A square crop of a frame, related to it by a similarity transform.

    Attributes:
        crop_trans_frame: ``(3, 3)`` float64, frame pixels -> crop pixels (homogeneous).
        frame_trans_crop: ``(3, 3)`` float64, its inverse (crop pixels -> frame pixels).
        size: side ``S`` of the crop in pixels.
        frame_size: ``(height, width)`` of the frame the crop was made for.
    """

    crop_trans_frame: NDArray[np.float64]
    frame_trans_crop: NDArray[np.float64]
    size: int
    frame_size: tuple[int, int]

    def __post_init__(self) -> None:
        for name in ("crop_trans_frame", "frame_trans_crop"):
            m = getattr(self, name)
            if m.shape != (3, 3) or not np.all(np.isfinite(m)):
                raise ValueError(f"FaceCrop: {name} must be a finite (3, 3) matrix, got shape {m.shape}")
        if not np.allclose(self.crop_trans_frame @ self.frame_trans_crop, np.eye(3), atol=1e-6):
            raise ValueError("FaceCrop: frame_trans_crop is not the inverse of crop_trans_frame")
        if int(self.size) != self.size or self.size < 2:
            raise ValueError(f"FaceCrop: size must be an integer >= 2, got {self.size}")
        h, w = self.frame_size
        if h < 1 or w < 1:
            raise ValueError(f"FaceCrop: frame_size must be positive (height, width), got {self.frame_size}")

    @property
    def params(self) -> NDArray[np.float64]:
        """``(4,)`` float64 ``(cx, cy, scale, angle)``; see the module docstring."""
        return crop_to_params(self)

    def frame_box(self) -> tuple[int, int, int, int]:
        """Integer box ``(x0, y0, x1, y1)`` (exclusive ends) of frame pixels the crop can sample.

        Clipped to the frame and never empty; includes one pixel of bilinear support.
        """
        return _frame_box_of_crop_rect(self, 0.0, 0.0, float(self.size - 1), float(self.size - 1))


def _similarity(cx: float, cy: float, scale: float, angle: float, size: int) -> NDArray[np.float64]:
    """``frame_trans_crop`` for the given parameters: p_frame = c + scale * R(angle) (p_crop - h)."""
    c, s = math.cos(angle), math.sin(angle)
    h = (size - 1) / 2.0
    a = np.array([[scale * c, -scale * s], [scale * s, scale * c]])
    m = np.eye(3)
    m[:2, :2] = a
    m[:2, 2] = np.array([cx, cy]) - a @ np.array([h, h])
    return m


def crop_from_params(
    params: NDArray[np.floating] | tuple[float, float, float, float],
    size: int,
    frame_size: tuple[int, int],
) -> FaceCrop:
    """Build a crop from ``(cx, cy, scale, angle)``.

    Args:
        params: ``(4,)`` ``(cx, cy, scale, angle)``: centre in frame pixels, frame pixels per crop
            pixel (> 0), angle in radians (crop x axis from frame x toward frame y).
        size: crop side ``S`` in pixels.
        frame_size: ``(height, width)`` of the frame.

    Returns:
        The crop.
    """
    cx, cy, scale, angle = (float(v) for v in np.asarray(params, dtype=np.float64).reshape(4))
    if not scale > 0 or not all(math.isfinite(v) for v in (cx, cy, scale, angle)):
        raise ValueError(f"crop parameters must be finite with scale > 0, got {(cx, cy, scale, angle)}")
    frame_trans_crop = _similarity(cx, cy, scale, angle, size)
    return FaceCrop(
        crop_trans_frame=np.linalg.inv(frame_trans_crop),
        frame_trans_crop=frame_trans_crop,
        size=int(size),
        frame_size=(int(frame_size[0]), int(frame_size[1])),
    )


def crop_to_params(crop: FaceCrop) -> NDArray[np.float64]:
    """Return ``(4,)`` float64 ``(cx, cy, scale, angle)`` of a crop (inverse of :func:`crop_from_params`)."""
    m = crop.frame_trans_crop
    h = (crop.size - 1) / 2.0
    centre = m[:2, :2] @ np.array([h, h]) + m[:2, 2]
    scale = math.hypot(m[0, 0], m[1, 0])
    angle = math.atan2(m[1, 0], m[0, 0])
    return np.array([centre[0], centre[1], scale, angle], dtype=np.float64)


def crop_for_landmarks(
    landmarks: NDArray[np.floating],
    frame_size: tuple[int, int],
    out_size: int | None = 512,
    margin: float = DEFAULT_MARGIN,
    angle: float = 0.0,
) -> FaceCrop:
    """Square crop around a face, axis-aligned or rotated by ``angle``.

    The landmarks are rotated by ``-angle``; the square's side is the larger extent of their
    bounding box times ``1 + 2 * margin`` and its centre is the box's centre.

    Args:
        landmarks: ``(K, 2)`` or ``(K, 3)`` frame pixels (only x, y are used).
        frame_size: ``(height, width)`` of the frame.
        out_size: crop side ``S`` in pixels; ``None`` chooses it from the face: the square's side in
            frame pixels rounded up to a multiple of 32 and clamped to [128, 1024], so the crop is
            sampled at about the frame's own resolution (no detail lost, no aliasing) unless the
            face is larger than 1024 pixels.
        margin: added on each side, as a fraction of the face's extent (>= 0).
        angle: radians, the crop's x axis in the frame (e.g. the eye line's angle, or 0).

    Returns:
        The crop.
    """
    pts = np.asarray(landmarks, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[0] < 2 or pts.shape[1] not in (2, 3):
        raise ValueError(f"landmarks must be (K, 2) or (K, 3) with K >= 2, got {pts.shape}")
    pts = pts[:, :2]
    if not np.all(np.isfinite(pts)):
        raise ValueError("landmarks must be finite")
    if not margin >= 0:
        raise ValueError(f"margin must be >= 0, got {margin}")
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, s], [-s, c]])  # R(-angle)
    local = pts @ rot.T
    lo, hi = local.min(axis=0), local.max(axis=0)
    extent = max(float(np.max(hi - lo)), 1.0)
    side = extent * (1.0 + 2.0 * margin)
    centre = rot.T @ ((lo + hi) / 2.0)
    if out_size is None:
        size = int(math.ceil(side / AUTO_SIZE_STEP) * AUTO_SIZE_STEP)
        size = min(max(size, AUTO_SIZE_MIN), AUTO_SIZE_MAX)
    else:
        size = int(out_size)
        if size < 2:
            raise ValueError(f"out_size must be >= 2, got {out_size}")
    return crop_from_params((centre[0], centre[1], side / size, angle), size, frame_size)


def _frame_box_of_crop_rect(
    crop: FaceCrop, u0: float, v0: float, u1: float, v1: float
) -> tuple[int, int, int, int]:
    """Frame box ``(x0, y0, x1, y1)`` covering crop rectangle ``[u0, u1] x [v0, v1]``, plus one pixel."""
    corners = np.array([[u0, v0, 1.0], [u1, v0, 1.0], [u0, v1, 1.0], [u1, v1, 1.0]])
    xy = (crop.frame_trans_crop @ corners.T)[:2]
    h, w = crop.frame_size
    x0 = int(np.clip(math.floor(xy[0].min()) - 1, 0, w - 1))
    y0 = int(np.clip(math.floor(xy[1].min()) - 1, 0, h - 1))
    x1 = int(np.clip(math.ceil(xy[0].max()) + 2, x0 + 1, w))
    y1 = int(np.clip(math.ceil(xy[1].max()) + 2, y0 + 1, h))
    return x0, y0, x1, y1


def image_to_tensor(image: NDArray[np.uint8]) -> torch.Tensor:
    """``(H, W, 3)`` uint8 RGB -> ``(1, 3, H, W)`` float32 in [0, 1] (exactly ``value / 255``)."""
    return torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float().div_(255.0)


def extract(frame: NDArray[np.uint8], crop: FaceCrop, padding: str = "border") -> torch.Tensor:
    """Resample the crop from a frame with ``kornia.geometry.transform.warp_affine``.

    Only the frame pixels the crop can reach are converted (never the whole frame). Crop pixels
    that fall outside the frame are filled by ``padding``; :func:`valid_mask` says which ones.

    Args:
        frame: ``(H, W, 3)`` uint8 RGB, of size ``crop.frame_size``.
        crop: the crop.
        padding: ``"border"`` (repeat the frame's edge; the default, so a warp that pulls from
            outside the frame gets plausible colour), ``"zeros"`` or ``"reflection"``.

    Returns:
        ``(1, 3, S, S)`` float32 RGB in [0, 1].
    """
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(f"frame must be (H, W, 3) uint8, got {frame.shape} {frame.dtype}")
    if tuple(frame.shape[:2]) != crop.frame_size:
        raise ValueError(f"frame is {frame.shape[:2]}, the crop was made for {crop.frame_size}")
    if padding not in _PADDING_MODES:
        raise ValueError(f"padding must be one of {_PADDING_MODES}, got {padding!r}")
    x0, y0, x1, y1 = crop.frame_box()
    region = image_to_tensor(frame[y0:y1, x0:x1])
    frame_trans_region = np.eye(3)
    frame_trans_region[:2, 2] = (x0, y0)
    crop_trans_region = crop.crop_trans_frame @ frame_trans_region
    m = torch.from_numpy(crop_trans_region[None, :2]).float()
    return warp_affine(region, m, (crop.size, crop.size), mode="bilinear", padding_mode=padding, align_corners=True)


def valid_mask(crop: FaceCrop) -> torch.Tensor:
    """Which crop pixels sample inside the frame.

    A crop pixel is valid when its centre maps inside the frame's pixel-centre rectangle
    ``[0, W - 1] x [0, H - 1]`` (where bilinear sampling needs no padding).

    Returns:
        ``(1, 1, S, S)`` float32, 1 valid, 0 filled by padding.
    """
    s = crop.size
    ax = np.arange(s, dtype=np.float64)
    u, v = np.meshgrid(ax, ax)
    m = crop.frame_trans_crop
    x = m[0, 0] * u + m[0, 1] * v + m[0, 2]
    y = m[1, 0] * u + m[1, 1] * v + m[1, 2]
    h, w = crop.frame_size
    eps = 1e-6
    ok = (x >= -eps) & (x <= w - 1 + eps) & (y >= -eps) & (y <= h - 1 + eps)
    return torch.from_numpy(ok.astype(np.float32))[None, None]


def is_inside(crop: FaceCrop) -> bool:
    """True when every crop pixel samples inside the frame (no padding used)."""
    s = crop.size - 1
    corners = np.array([[0, 0, 1], [s, 0, 1], [0, s, 1], [s, s, 1]], dtype=np.float64)
    xy = (crop.frame_trans_crop @ corners.T)[:2]
    h, w = crop.frame_size
    eps = 1e-6
    inside_x = xy[0].min() >= -eps and xy[0].max() <= w - 1 + eps
    return bool(inside_x and xy[1].min() >= -eps and xy[1].max() <= h - 1 + eps)
