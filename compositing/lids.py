"""A closed eye made from the same face's open eye: the upper lid drawn down over the eyeball.

A warp of the whole eye cannot close it: the lids meet only by squeezing the eyeball's pixels into
a thin band, which shows as a white sliver and broken lash lines. A real blink slides the upper
lid down over the eyeball. :func:`close_eye` does that in the image: across the eye, column by
column in the eye's own frame (x from corner to corner, y toward the lower lid), the skin above
the upper lid is stretched down so that its lash line (the darkest point just above the
landmarker's lid contour, found per column) lands on a closure line just above the lower lid,
and the lower lid's skin is moved up to meet it from below. No pixel between the two margins
(the eyeball) is sampled at all. The seam is then darkened toward the lashes' own colour, as
the lashes of a closed lid hang over it. The corners do not move.

It makes a reference still of a closed eye when a clip has none (``plugin.texture_stage``): the
landmarker re-reads the result, and only a still it reads as closed is used.
"""

from __future__ import annotations

import numpy as np
import torch
from kornia.geometry.transform import remap
from numpy.typing import NDArray
from scipy.ndimage import map_coordinates, median_filter

#: Where the lids meet: this fraction of the opening above the lower lid margin.
CLOSURE_ABOVE_LOWER = 0.15
#: The upper lid skin stretched over the eyeball: a band this many times the eye's largest
#: opening above the margin (the lid up to about the crease).
UPPER_BAND = 1.2
#: The lower lid skin moved up: a band this many times the largest opening below the margin.
LOWER_BAND = 0.6
#: The lower margin is sampled this far (fraction of the largest opening) below the landmarker's
#: contour, which runs on or just inside it: eyeball taken along shows as a pale seam.
LOWER_MARGIN_SHIFT = 0.1
#: The upper lash line is looked for this far (fraction of the largest opening) above the
#: upper lid contour, in this many columns across the eye.
LASH_SEARCH, LASH_COLUMNS = 0.35, 24
#: A lid lowered less than this (``amount``) takes its edge between its contour and its lash
#: line; the lower lid starts rising to meet the upper one at this ``amount``.
LASH_FROM, LOWER_RISE_FROM = 0.3, 0.7
#: The lash line drawn along the closed lid's seam: its half-width (sigma, fraction of the
#: largest opening, at least 0.6 px) and how far the seam is darkened toward the lashes' colour.
LASH_WIDTH, LASH_STRENGTH = 0.07, 0.7
#: Columns beyond the corners (fraction of the eye's width) kept inside the remapped box.
CORNER_MARGIN = 0.15


def _profile(points: NDArray[np.float64], xs: NDArray[np.float64]) -> NDArray[np.float64]:
    """The lid's local y at local ``xs`` (linear between contour points, flat past the ends)."""
    order = np.argsort(points[:, 0])
    return np.interp(xs, points[order, 0], points[order, 1])


def _lash_line(image: NDArray[np.uint8], c0: NDArray[np.float64], ex: NDArray[np.float64], ey: NDArray[np.float64],
               up_local: NDArray[np.float64], width: float, opening: float) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Local ``(xs, ys)`` of the upper lash line: per column across the eye, the darkest point
    between the upper lid contour and ``LASH_SEARCH`` of the opening above it (the lashes grow
    from the margin; the eyeball below the contour is not searched), median-smoothed."""
    xs = np.linspace(0.0, width, LASH_COLUMNS + 2)[1:-1]
    u = _profile(up_local, xs)
    steps = np.linspace(0.0, LASH_SEARCH * opening, 12)
    ly = u[:, None] - steps[None, :]
    px = c0[0] + xs[:, None] * ex[0] + ly * ey[0]
    py = c0[1] + xs[:, None] * ex[1] + ly * ey[1]
    luma = image.astype(np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    vals = map_coordinates(luma, [py.ravel(), px.ravel()], order=1, mode="nearest").reshape(ly.shape)
    best = vals.argmin(axis=1)
    ys = median_filter(ly[np.arange(len(xs)), best], size=5, mode="nearest")
    # The lashes' colour: the darker half of the points found, in RGB.
    pick = np.argsort(vals[np.arange(len(xs)), best])[: max(len(xs) // 2, 1)]
    rgb = np.stack([map_coordinates(image[..., c].astype(np.float32), [py[pick, best[pick]], px[pick, best[pick]]],
                                    order=1, mode="nearest") for c in range(3)], 1)
    ends = _profile(up_local, np.array([0.0, width]))  # at the corners, on the contour (no opening)
    return np.concatenate([[0.0], xs, [width]]), np.concatenate([ends[:1], ys, ends[1:]]), np.median(rgb, axis=0)


def close_eye(image: NDArray[np.uint8], upper: NDArray[np.floating], lower: NDArray[np.floating],
              amount: float = 1.0) -> NDArray[np.uint8]:
    """A copy of ``image`` with one eye closed (see the module doc), or partly closed.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        upper, lower: ``(K, 2+)`` frame pixels of the upper and lower lid contours, each from
            one corner of the eye to the other (the first and last points are the corners).
        amount: how far the upper lid comes down, 0 (not at all) to 1 (the lids meet). Below
            its edge the eyeball shows as it is; the lower lid rises only past
            ``LOWER_RISE_FROM``.

    Returns:
        The new image; pixels outside the eye's box keep their exact bytes.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    up_pts = np.asarray(upper, np.float64)[:, :2]
    low_pts = np.asarray(lower, np.float64)[:, :2]
    c0, c1 = up_pts[0], up_pts[-1]
    width = float(np.linalg.norm(c1 - c0))
    if width < 2.0:
        return image.copy()
    ex = (c1 - c0) / width
    ey = np.array([-ex[1], ex[0]])
    up_local = (up_pts - c0) @ np.stack([ex, ey], 1)
    low_local = (low_pts - c0) @ np.stack([ex, ey], 1)
    if np.median(low_local[1:-1, 1] - up_local[1:-1, 1]) < 0:  # y must point from upper to lower lid
        ey = -ey
        up_local[:, 1] *= -1
        low_local[:, 1] *= -1
    opening = float(np.max(_profile(low_local, up_local[:, 0]) - up_local[:, 1]))
    if opening < 0.5:
        return image.copy()
    top, bottom = UPPER_BAND * opening, LOWER_BAND * opening
    # The box of frame pixels that can change: the eye's local box, corners to corners.
    margin = CORNER_MARGIN * width
    corners_local = np.array([[-margin, up_local[:, 1].min() - top], [width + margin, up_local[:, 1].min() - top],
                              [-margin, low_local[:, 1].max() + bottom], [width + margin, low_local[:, 1].max() + bottom]])
    corners = c0 + corners_local[:, :1] * ex + corners_local[:, 1:] * ey
    h, w = image.shape[:2]
    x0, y0 = np.floor(corners.min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(corners.max(axis=0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return image.copy()
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float64)
    rel = np.stack([xx - c0[0], yy - c0[1]], -1)
    lx, ly = rel @ ex, rel @ ey
    u, lo = _profile(up_local, lx), _profile(low_local, lx)
    gap = np.maximum(lo - u, 0.0)
    # The lid's edge comes down this far: ``amount`` of the way to where the lids meet.
    close = u + amount * (lo - CLOSURE_ABOVE_LOWER * gap - u)
    src_y = ly.copy()
    above = (ly <= close) & (ly >= u - top)
    # [u - top, close] -> [u - top, um]: the lid skin stretched, its lash line landing on the edge
    # (a lid barely lowered keeps its own contour as the edge, so that amount 0 moves nothing)
    lash_x, lash_y, lash_rgb = _lash_line(image, c0, ex, ey, up_local, width, opening)
    um = u + min(amount / LASH_FROM, 1.0) * (np.interp(lx, lash_x, lash_y) - u)
    src_y[above] = (u - top)[above] + (ly - (u - top))[above] * ((um - u + top) / (close - u + top))[above]
    # Below the edge the eyeball shows as it is, until the lower lid rises to meet the upper:
    # [close, lo + bottom] -> [start, lo + bottom], from itself to the lower margin.
    rise = float(np.clip((amount - LOWER_RISE_FROM) / (1.0 - LOWER_RISE_FROM), 0.0, 1.0))
    lower = lo + LOWER_MARGIN_SHIFT * opening * np.clip(gap / opening * 2.0, 0.0, 1.0)
    start = close + rise * (lower - close)
    below = (ly > close) & (ly <= lo + bottom)
    src_y[below] = (lo + bottom)[below] - ((lo + bottom) - ly)[below] * ((lo + bottom - start) / (lo + bottom - close))[below]
    # Fade the move out over the corner margins (no opening there: nothing to hide).
    fade = np.clip(np.minimum(lx + margin, width + margin - lx) / max(margin, 1e-6), 0.0, 1.0)
    dy = (src_y - ly) * fade
    sx = xx + dy * ey[0]
    sy = yy + dy * ey[1]
    # Every source lies in the box too (moves run along the eye's y, inside the lid bands).
    region = torch.from_numpy(np.ascontiguousarray(image[y0:y1, x0:x1])).permute(2, 0, 1)[None].float()
    box = remap(region, torch.from_numpy(sx - x0).float()[None], torch.from_numpy(sy - y0).float()[None],
                mode="bilinear", padding_mode="border", align_corners=True)[0].permute(1, 2, 0).numpy()
    # The lash line: the lashes of a closed lid hang over the seam; darken toward their colour.
    d = ly - close
    sigma = max(LASH_WIDTH * opening, 0.6)
    weight = LASH_STRENGTH * amount * np.exp(-0.5 * (d / sigma) ** 2) * np.clip(gap / opening * 2.0, 0.0, 1.0) * fade
    box = box + (lash_rgb[None, None, :] - box) * np.minimum(weight, 1.0)[..., None]
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(np.round(box), 0, 255).astype(np.uint8)
    return out
