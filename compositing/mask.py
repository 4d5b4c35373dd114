"""Blend masks at crop resolution: the face region before and after an edit, feathered.

A mask is a ``(1, 1, S, S)`` float32 tensor in [0, 1] over the crop (same pixel convention as
``compositing/crop.py``). Values below ``floor`` are set to exactly 0 and values above ``1 - floor``
to exactly 1, so the blend leaves every pixel outside the mask's support bit-identical and fully
replaces the inside.

The face region is the face-oval polygon of MediaPipe's 478-landmark topology
(:data:`FACE_OVAL`, the 36 vertices of ``FaceLandmarksConnections.FACE_LANDMARKS_FACE_OVAL`` in
order; a test checks them against the installed mediapipe). Sizes (dilation, feather) are given
relative to the face size so the same settings work for any face size.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

#: Landmark indices of the face oval, in polygon order (forehead top, right side of the image,
#: chin, left side), as in MediaPipe's ``FACE_LANDMARKS_FACE_OVAL``.
FACE_OVAL: tuple[int, ...] = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)  # fmt: skip


def face_oval(landmarks: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(36, 2)`` float64 face-oval polygon from ``(478, 2|3)`` (or ``(468, 2|3)``) landmarks."""
    lm = np.asarray(landmarks, dtype=np.float64)
    if lm.ndim != 2 or lm.shape[0] < 468 or lm.shape[1] < 2:
        raise ValueError(f"landmarks must be (478, 2) or (478, 3) in MediaPipe order, got {lm.shape}")
    return lm[list(FACE_OVAL), :2]


def polygon_size(polygons: Sequence[NDArray[np.floating]]) -> float:
    """Face size in pixels: the larger side of the polygons' joint bounding box."""
    pts = np.concatenate([np.asarray(p, dtype=np.float64).reshape(-1, 2) for p in polygons])
    return float(np.max(pts.max(axis=0) - pts.min(axis=0)))


def polygon_distance(polygons: Sequence[NDArray[np.floating]], size: int) -> NDArray[np.float32]:
    """``(S, S)`` float32 L2 distance (crop pixels, OpenCV's distance transform) of every pixel
    from the union of the filled ``polygons`` (each ``(N, 2)`` crop pixels; 0 inside them)."""
    outside = np.ones((size, size), np.uint8)
    for poly in polygons:
        pts = np.asarray(poly, dtype=np.float64).reshape(-1, 2)
        if len(pts) >= 3:
            cv2.fillPoly(outside, [np.round(pts * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
    return cv2.distanceTransform(outside, cv2.DIST_L2, 5)


def polygon_mask(
    polygons: Sequence[NDArray[np.floating]],
    size: int,
    *,
    dilate_px: float,
    feather_px: float,
    floor: float,
) -> torch.Tensor:
    """Union of filled polygons, grown by ``dilate_px``, with a soft edge of scale ``feather_px``.

    The value is a function of the distance ``d`` from the polygons (OpenCV's L2 distance
    transform): 1 inside and up to ``dilate_px`` out, then the profile of a Gaussian-blurred edge,
    ``Phi((dilate_px + 3 sigma - d) / sigma)`` with ``sigma = feather_px``, so it is still 0.9987
    at ``dilate_px`` (snapped to 1), 0.5 at ``dilate_px + 3 sigma`` and below ``floor`` (snapped to
    0) from about ``dilate_px + 6 sigma``. Unlike blurring a dilated mask, this does not eat into
    the polygons and is the same shape at any face size.

    Args:
        polygons: each ``(N, 2)`` crop pixels.
        size: crop side ``S``.
        dilate_px: distance in crop pixels over which the mask stays 1 (>= 0).
        feather_px: sigma of the soft edge in crop pixels (>= 0; 0 gives a hard edge).
        floor: values below it become 0, above ``1 - floor`` become 1 (in [0, 0.5)).

    Returns:
        ``(1, 1, S, S)`` float32 in [0, 1].
    """
    if dilate_px < 0 or feather_px < 0 or not 0 <= floor < 0.5:
        raise ValueError(f"need dilate_px, feather_px >= 0 and 0 <= floor < 0.5; got {dilate_px}, {feather_px}, {floor}")
    d = torch.from_numpy(polygon_distance(polygons, size))
    if feather_px > 0:
        m = 0.5 * torch.special.erfc((d - dilate_px - 3.0 * feather_px) / (feather_px * math.sqrt(2.0)))
    else:
        m = (d <= dilate_px).float()
    return snap(m[None, None], floor)


def snap(mask: torch.Tensor, floor: float) -> torch.Tensor:
    """Clamp to [0, 1], set values below ``floor`` to exactly 0 and above ``1 - floor`` to 1."""
    m = mask.clamp(0.0, 1.0)
    if floor > 0:
        m.masked_fill_(m < floor, 0.0).masked_fill_(m > 1.0 - floor, 1.0)
    return m


def face_region_mask(
    src_landmarks: NDArray[np.floating],
    dst_landmarks: NDArray[np.floating],
    size: int,
    *,
    dilate: float,
    feather: float,
    floor: float,
) -> torch.Tensor:
    """Feathered mask of the face before and after an edit, at crop resolution.

    Args:
        src_landmarks: ``(478, 2|3)`` crop pixels, the face before the edit.
        dst_landmarks: ``(478, 2|3)`` crop pixels, after the edit.
        size: crop side ``S``.
        dilate: distance beyond the ovals over which the mask stays 1, as a fraction of the face
            size (the ovals' larger extent).
        feather: sigma of the soft edge beyond that, as a fraction of the face size; the mask
            reaches 0 about ``dilate + 6 * feather`` face sizes out (see :func:`polygon_mask`).
        floor: snapping threshold (see :func:`snap`).

    Returns:
        ``(1, 1, S, S)`` float32 in [0, 1].
    """
    polys = [face_oval(src_landmarks), face_oval(dst_landmarks)]
    face = polygon_size(polys)
    return polygon_mask(polys, size, dilate_px=dilate * face, feather_px=feather * face, floor=floor)


#: Motion weights below this are 0 (:func:`motion_weight`): with ``full_at_px`` = 0.5, pixels
#: that move less than 0.02 crop pixels. Such a pixel's blended value differs from the frame's by
#: at most ``weight * |gradient| * shift``, under 0.9 levels even for a 255-level edge and a crop
#: of 4 frame pixels per crop pixel (a 4K close-up), while a face edit's spline moves about a third
#: of the face's pixels by less than that: resampling them cost a third of the frame sampling.
MOTION_WEIGHT_FLOOR = 0.04


def motion_weight(sample_xy: torch.Tensor, full_at_px: float, floor: float = MOTION_WEIGHT_FLOOR) -> torch.Tensor:
    """How much each crop pixel moves, as a blend weight: ``min(1, |displacement| / full_at_px)``.

    Multiplying the face mask by this weight keeps every pixel that the field does not move
    exactly as it was in the frame (alpha 0: no resampling blur where nothing changed), and makes a
    zero edit leave the frame bit-identical by construction. Below ``full_at_px`` the output is a mix
    of the original and the moved pixel, which acts as a sub-pixel shift; weights below ``floor``
    (a pixel moved by a few hundredths of a pixel, see :data:`MOTION_WEIGHT_FLOOR`) are 0.

    Args:
        sample_xy: ``(S, S, 2)`` float32 backward field in crop pixels (sample positions).
        full_at_px: displacement in pixels at which the weight reaches 1 (> 0).
        floor: weights below it become exactly 0 (in [0, 1)).

    Returns:
        ``(1, 1, S, S)`` float32 in [0, 1], exactly 0 where the displacement is 0.
    """
    if not full_at_px > 0:
        raise ValueError(f"full_at_px must be > 0, got {full_at_px}")
    if not 0 <= floor < 1:
        raise ValueError(f"floor must be in [0, 1), got {floor}")
    s = sample_xy.shape[0]
    ax = torch.arange(s, dtype=sample_xy.dtype)
    dx = sample_xy[..., 0] - ax[None, :]
    dy = sample_xy[..., 1] - ax[:, None]
    w = torch.sqrt(dx.mul_(dx).addcmul_(dy, dy)).div_(full_at_px).clamp_max_(1.0)
    if floor > 0:
        w.masked_fill_(w < floor, 0.0)
    return w[None, None]
