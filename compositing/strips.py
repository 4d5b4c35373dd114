"""Edits of a face feature made column by column in the feature's own frame (lids, a mouth).

The frame: x along the feature from one corner to the other, y across it. An edit moves pixels
along y only, by a per-pixel source offset; these helpers give the feature's frame, samples at
local points, the frame box its bands cover, the resampling of that box, and the edit's image and
moved points together (``compositing.lids``, ``compositing.mouth``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, TypeVar

import numpy as np
import torch
from kornia.geometry.transform import remap
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates

F = TypeVar("F")
#: Luminance weights of RGB (BT.601).
LUMA = np.array([0.299, 0.587, 0.114], np.float32)


def profile(points: NDArray[np.float64], xs: NDArray[np.float64]) -> NDArray[np.float64]:
    """A contour's local y at local ``xs`` (linear between its points, flat past the ends)."""
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def axes(c0: NDArray[np.float64], c1: NDArray[np.float64]) -> tuple[float, NDArray[np.float64], NDArray[np.float64]]:
    """The feature's width and unit axes: ``ex`` from corner ``c0`` to ``c1``, ``ey`` across."""
    width = float(np.linalg.norm(c1 - c0))
    ex = (c1 - c0) / max(width, 1e-12)
    return width, ex, np.array([-ex[1], ex[0]])


def sample_local(image: NDArray[np.uint8], c0: NDArray[np.float64], ex: NDArray[np.float64], ey: NDArray[np.float64],
                 xs: NDArray[np.float64], ly: NDArray[np.float64]) -> NDArray[np.float32]:
    """``(C, R, 3)`` float32 RGB of ``image`` (bilinear) at local points: column ``xs[i]``, row
    ``ly[i, j]``. Only these points are sampled, not the whole frame converted."""
    px = c0[0] + xs[:, None] * ex[0] + ly * ey[0]
    py = c0[1] + xs[:, None] * ex[1] + ly * ey[1]
    coords = [py.ravel(), px.ravel()]
    return np.stack([map_coordinates(image[..., c], coords, order=1, mode="nearest", output=np.float32)
                     for c in range(3)], -1).reshape(*ly.shape, 3)


class Feature(Protocol):
    """A feature in its own frame: corner ``c0``, unit axes ``ex`` (along) and ``ey`` (across)."""

    c0: NDArray[np.float64]
    ex: NDArray[np.float64]
    ey: NDArray[np.float64]


def local(feature: Feature, pts: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Local x and y (along and across the feature) of frame points ``(..., 2)``."""
    rel = pts - feature.c0
    return rel @ feature.ex, rel @ feature.ey


def box_grid(shape: tuple[int, ...], feature: Feature, corners: NDArray[np.float64]
             ) -> tuple[tuple[int, int, int, int], NDArray[np.float64], NDArray[np.float64], NDArray[np.float64],
                        NDArray[np.float64]] | None:
    """The frame box ``(x0, y0, x1, y1)`` (a pixel of margin, clipped to the image ``shape``)
    holding the feature's local ``corners`` ``(K, 2)``; its pixels' frame ``x``, ``y`` and local
    ``x``, ``y`` grids (None when the box is empty)."""
    c0, ex, ey = feature.c0, feature.ex, feature.ey
    pts = c0 + corners[:, :1] * ex + corners[:, 1:] * ey
    h, w = shape[:2]
    x0, y0 = np.floor(pts.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(pts.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    return (int(x0), int(y0), int(x1), int(y1)), xx, yy, *local(feature, np.stack([xx, yy], -1))


def resample_along(image: NDArray[np.uint8], box: tuple[int, int, int, int], xx: NDArray[np.float64],
                   yy: NDArray[np.float64], dy: NDArray[np.float64], ey: NDArray[np.float64]) -> NDArray[np.float32]:
    """``(h, w, 3)`` float: each pixel of ``box`` (at ``xx``, ``yy``) sampled ``dy`` along ``ey``
    from itself (bilinear, Kornia; sources must lie in the box, edges replicated)."""
    x0, y0, x1, y1 = box
    region = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    sx = torch.from_numpy(xx + dy * ey[0] - x0).float()[None]
    sy = torch.from_numpy(yy + dy * ey[1] - y0).float()[None]
    return remap(region, sx, sy, mode="bilinear", padding_mode="border", align_corners=True)[0].permute(1, 2, 0).numpy()


def edit(image: NDArray[np.uint8], feature: F | None, points: NDArray[np.floating] | None,
         move: Callable[[F, NDArray[np.float64]], NDArray[np.float64]],
         render: Callable[[NDArray[np.uint8], F], NDArray[np.uint8]]) -> tuple[NDArray[np.uint8], NDArray[np.float64] | None]:
    """The edited copy of ``image`` and where ``points`` (a copy, extra columns kept) now are:
    ``render`` and ``move`` of ``feature``; the image unchanged (a copy) when there is no feature."""
    moved = None if points is None else np.array(points, np.float64)
    if feature is None:
        return image.copy(), moved
    if moved is not None:
        moved[:, :2] = move(feature, moved[:, :2])
    return render(image, feature), moved
