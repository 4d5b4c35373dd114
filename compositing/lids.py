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

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.ndimage import median_filter

from compositing import strips
from compositing.strips import LUMA, axes, box_grid, local, profile, resample_along, sample_local

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


def _lash_line(image: NDArray[np.uint8], c0: NDArray[np.float64], ex: NDArray[np.float64], ey: NDArray[np.float64],
               up_local: NDArray[np.float64], width: float, opening: float) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Local ``(xs, ys)`` of the upper lash line: per column across the eye, the darkest point
    between the upper lid contour and ``LASH_SEARCH`` of the opening above it (the lashes grow
    from the margin; the eyeball below the contour is not searched), median-smoothed."""
    xs = np.linspace(0.0, width, LASH_COLUMNS + 2)[1:-1]
    u = profile(up_local, xs)
    steps = np.linspace(0.0, LASH_SEARCH * opening, 12)
    ly = u[:, None] - steps[None, :]
    rgb = sample_local(image, c0, ex, ey, xs, ly)
    vals = rgb @ LUMA
    cols = np.arange(len(xs))
    best = vals.argmin(axis=1)
    ys = median_filter(ly[cols, best], size=5, mode="nearest")
    # The lashes' colour: the darker half of the points found.
    pick = np.argsort(vals[cols, best])[: max(len(xs) // 2, 1)]
    ends = profile(up_local, np.array([0.0, width]))  # at the corners, on the contour (no opening)
    return np.concatenate([[0.0], xs, [width]]), np.concatenate([ends[:1], ys, ends[1:]]), np.median(rgb[cols, best][pick], axis=0)


@dataclass(frozen=True)
class _Lids:
    """One eye's lid geometry in its own frame (x from corner to corner, y toward the lower lid)."""

    c0: NDArray[np.float64]
    ex: NDArray[np.float64]
    ey: NDArray[np.float64]
    up: NDArray[np.float64]  # (K, 2) local upper contour
    low: NDArray[np.float64]  # (K, 2) local lower contour
    width: float
    opening: float
    amount: float
    lash: tuple[NDArray[np.float64], NDArray[np.float64]]  # local lash line (xs, ys)
    lash_rgb: NDArray[np.float64]  # the lashes' colour

    def columns(self, lx: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Per local x: the lid bands' ends (``top`` of the upper band, the lash line ``um``, the
        lid's new edge ``close``, where the lower lid's source starts ``start``, the band's
        ``bottom``) and the ``fade`` over the corner margins."""
        u, lo = profile(self.up, lx), profile(self.low, lx)
        gap = np.maximum(lo - u, 0.0)
        a = self.amount
        close = u + a * (lo - CLOSURE_ABOVE_LOWER * gap - u)  # the lid's edge: amount of the way down
        # a lid barely lowered keeps its own contour as the edge, so that amount 0 moves nothing
        um = u + min(a / LASH_FROM, 1.0) * (np.interp(lx, *self.lash) - u)
        rise = float(np.clip((a - LOWER_RISE_FROM) / (1.0 - LOWER_RISE_FROM), 0.0, 1.0))
        lower = lo + LOWER_MARGIN_SHIFT * self.opening * np.clip(gap / self.opening * 2.0, 0.0, 1.0)
        margin = CORNER_MARGIN * self.width
        fade = np.clip(np.minimum(lx + margin, self.width + margin - lx) / max(margin, 1e-6), 0.0, 1.0)
        return {"top": u - UPPER_BAND * self.opening, "um": um, "close": close, "start": close + rise * (lower - close),
                "bottom": lo + LOWER_BAND * self.opening, "gap": gap, "fade": fade}


def _lids(image: NDArray[np.uint8], upper: NDArray[np.floating], lower: NDArray[np.floating],
          amount: float) -> _Lids | None:
    up_pts = np.asarray(upper, np.float64)[:, :2]
    low_pts = np.asarray(lower, np.float64)[:, :2]
    c0 = up_pts[0]
    width, ex, ey = axes(c0, up_pts[-1])
    if width < 2.0:
        return None
    up_local = (up_pts - c0) @ np.stack([ex, ey], 1)
    low_local = (low_pts - c0) @ np.stack([ex, ey], 1)
    if np.median(low_local[1:-1, 1] - up_local[1:-1, 1]) < 0:  # y must point from upper to lower lid
        ey = -ey
        up_local[:, 1] *= -1
        low_local[:, 1] *= -1
    opening = float(np.max(profile(low_local, up_local[:, 0]) - up_local[:, 1]))
    if opening < 0.5:
        return None
    xs, ys, rgb = _lash_line(image, c0, ex, ey, up_local, width, opening)
    return _Lids(c0, ex, ey, up_local, low_local, width, opening, amount, (xs, ys), rgb)


def close_eye(image: NDArray[np.uint8], upper: NDArray[np.floating], lower: NDArray[np.floating],
              amount: float = 1.0, points: NDArray[np.floating] | None = None
              ) -> tuple[NDArray[np.uint8], NDArray[np.float64] | None]:
    """A copy of ``image`` with one eye closed (see the module doc), or partly closed.

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        upper, lower: ``(K, 2+)`` frame pixels of the upper and lower lid contours, each from
            one corner of the eye to the other (the first and last points are the corners).
        amount: how far the upper lid comes down, 0 (not at all) to 1 (the lids meet). Below
            its edge the eyeball shows as it is; the lower lid rises only past
            ``LOWER_RISE_FROM``.
        points: optional ``(N, 2+)`` frame pixels of features of this face (its landmarks).

    Returns:
        The new image (pixels outside the eye's box keep their exact bytes) and, when
        ``points`` are given, where each now is (a copy; extra columns kept): skin in the lid
        bands moves with its pixels, and a point the lid now covers (on the eyeball, or the lid
        margin itself) lands on the lid's edge.
    """
    if not 0.0 <= amount <= 1.0:
        raise ValueError(f"amount must be in [0, 1], got {amount}")
    return strips.edit(image, _lids(image, upper, lower, amount), points, _move_points, _render)


def _move_points(lids: _Lids, pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Where points of the source image are in the closed one (the inverse of the remap)."""
    lx, ly = local(lids, pts)
    c = lids.columns(lx)
    out = ly.copy()
    upper_band = (ly >= c["top"]) & (ly <= c["um"])
    out[upper_band] = (c["top"] + (ly - c["top"]) * (c["close"] - c["top"]) / np.maximum(c["um"] - c["top"], 1e-9))[upper_band]
    lower_band = (ly >= c["start"]) & (ly <= c["bottom"])
    out[lower_band] = (c["bottom"] - (c["bottom"] - ly) * (c["bottom"] - c["close"])
                       / np.maximum(c["bottom"] - c["start"], 1e-9))[lower_band]
    hidden = (ly > c["um"]) & (ly < c["start"])  # between the lash line and the lower lid's source: covered
    out[hidden] = c["close"][hidden]
    inside = (lx >= -CORNER_MARGIN * lids.width) & (lx <= lids.width * (1 + CORNER_MARGIN))
    dy = np.where(inside, (out - ly) * c["fade"], 0.0)
    return pts + dy[:, None] * lids.ey[None]


def _render(image: NDArray[np.uint8], lids: _Lids) -> NDArray[np.uint8]:
    """The remap of the module doc, on the eye's box."""
    width, opening = lids.width, lids.opening
    margin = CORNER_MARGIN * width
    top, bottom = UPPER_BAND * opening, LOWER_BAND * opening
    corners_local = np.array([[-margin, lids.up[:, 1].min() - top], [width + margin, lids.up[:, 1].min() - top],
                              [-margin, lids.low[:, 1].max() + bottom], [width + margin, lids.low[:, 1].max() + bottom]])
    grid = box_grid(image.shape, lids, corners_local)
    if grid is None:
        return image.copy()
    (x0, y0, x1, y1), xx, yy, lx, ly = grid
    c = lids.columns(lx)
    src_y = ly.copy()
    # [top, close] -> [top, um]: the lid skin stretched, its lash line landing on the edge
    above = (ly <= c["close"]) & (ly >= c["top"])
    src_y[above] = (c["top"] + (ly - c["top"]) * (c["um"] - c["top"]) / (c["close"] - c["top"]))[above]
    # below the edge the eyeball shows as it is until the lower lid rises to meet the upper:
    # [close, bottom] -> [start, bottom]
    below = (ly > c["close"]) & (ly <= c["bottom"])
    src_y[below] = (c["bottom"] - (c["bottom"] - ly) * (c["bottom"] - c["start"]) / (c["bottom"] - c["close"]))[below]
    # Every source lies in the box too (moves run along the eye's y, inside the lid bands).
    box = resample_along(image, (x0, y0, x1, y1), xx, yy, (src_y - ly) * c["fade"], lids.ey)
    # The lash line: the lashes of a closed lid hang over the seam; darken toward their colour.
    d = ly - c["close"]
    sigma = max(LASH_WIDTH * opening, 0.6)
    weight = (LASH_STRENGTH * lids.amount * np.exp(-0.5 * (d / sigma) ** 2)
              * np.clip(c["gap"] / opening * 2.0, 0.0, 1.0) * c["fade"])
    box = box + (lids.lash_rgb[None, None, :] - box) * np.minimum(weight, 1.0)[..., None]
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(np.round(box), 0, 255).astype(np.uint8)
    return out
