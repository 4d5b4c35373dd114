"""A mouth opened wider, made from the same face's own mouth: the lower teeth and lip dropped.

A warp that opens a mouth which shows its teeth stretches the teeth: the whole opening between the
inner lips is one set of triangles, so the teeth grow taller instead of parting. A real jaw
opening leaves the upper teeth with the skull and drops the lower teeth and lip with the jaw,
and the mouth's dark inside shows between them. :func:`open_mouth` does that in the image:
across the mouth, column by column in the mouth's own frame (x from inner corner to inner corner,
y toward the chin), it finds where the upper teeth (or the upper lip of a closed mouth) end, the
strongest fall of brightness between the inner lips, shifts everything below that line down to
the lower lip's edge and a little beyond by the drop, fills the gap with the mouth's own darkest
colour, and takes the shift back over a band below the lip. The inner corners do not move.

It makes a reference still of a wider-open mouth when a clip has none (``plugin.texture_stage``):
the landmarker re-reads the result, and only a still it reads as opened is used.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from compositing import strips
from compositing.strips import LUMA, axes, box_grid, local, profile, resample_along, sample_local

#: Columns across the mouth where the split line is looked for, and rows per column.
SPLIT_COLUMNS, SPLIT_ROWS = 48, 16
#: The split line lies under this share of the teeth's edges found along it.
SPLIT_BELOW = 0.8
#: The split is looked for between these fractions of the opening below the upper inner lip (the
#: shadow under the upper lip, above the teeth, is left out).
SPLIT_FROM, SPLIT_TO = 0.15, 0.95
#: The shifted band reaches this many lip thicknesses below the lower inner lip (the lower lip and
#: the skin just under it), and the shift is taken back over a band this many times the drop.
LIP_BELOW, RETURN_BAND = 1.5, 2.0
#: The drop across the mouth is ``sin(pi x / width) ** DROP_SHAPE``: full in the middle, 0 at the
#: inner corners.
DROP_SHAPE = 0.6
#: The inside of the mouth: the darkest share of the samples between the inner lips gives its
#: colour, and its middle is this much darker than its edges ...
CAVITY_SHARE, CAVITY_SHADE = 0.3, 0.3
#: ... and it is at most this bright, relative to the lower quartile of brightness between the
#: inner lips (lips, or the inside itself where it shows).
CAVITY_MAX_LUMA = 0.45


@dataclass(frozen=True)
class _Mouth:
    """One mouth in its own frame (x from inner corner to inner corner, y toward the chin)."""

    c0: NDArray[np.float64]
    ex: NDArray[np.float64]
    ey: NDArray[np.float64]
    up: NDArray[np.float64]  # (K, 2) local upper inner contour
    low: NDArray[np.float64]  # (K, 2) local lower inner contour
    low_out: NDArray[np.float64]  # (K', 2) local lower outer contour
    width: float
    drop: float
    split: tuple[NDArray[np.float64], NDArray[np.float64]]  # local split line (xs, ys)
    cavity_rgb: NDArray[np.float64]

    def columns(self, lx: NDArray[np.float64]) -> dict[str, NDArray[np.float64]]:
        """Per local x: the split line ``s``, the drop ``d``, the band's lower end ``b`` (before the
        drop) and the return band's height ``m``."""
        u = np.clip(lx / self.width, 0.0, 1.0)
        inside = (lx > 0.0) & (lx < self.width)
        d = np.where(inside, self.drop * np.sin(np.pi * u) ** DROP_SHAPE, 0.0)
        lo, out = profile(self.low, lx), profile(self.low_out, lx)
        b = lo + LIP_BELOW * np.maximum(out - lo, 1.0)
        return {"s": np.interp(lx, *self.split), "d": d, "b": b, "m": np.full_like(d, max(RETURN_BAND * self.drop, 2.0))}


def _split_line(image: NDArray[np.uint8], c0: NDArray[np.float64], ex: NDArray[np.float64], ey: NDArray[np.float64],
                up: NDArray[np.float64], low: NDArray[np.float64], width: float
                ) -> tuple[tuple[NDArray[np.float64], NDArray[np.float64]], NDArray[np.float64]]:
    """The split line (local xs, ys) and the inside's colour: per column, the strongest fall of
    brightness going down between the inner lips (the upper teeth's lower edge, the top of a dark
    opening, the line of closed lips), median-smoothed; only the searched points are sampled."""
    xs = np.linspace(0.0, width, SPLIT_COLUMNS + 2)[1:-1]
    u, lo = profile(up, xs), profile(low, xs)
    gap = np.maximum(lo - u, 0.0)
    t = np.linspace(0.0, 1.0, SPLIT_ROWS)
    ly = u[:, None] + t[None, :] * gap[:, None]
    rgb = sample_local(image, c0, ex, ey, xs, ly)
    lum = rgb @ LUMA
    fall = np.zeros_like(lum)
    fall[:, 1:-1] = lum[:, :-2] - lum[:, 2:]  # brighter above than below
    allowed = (t >= SPLIT_FROM) & (t <= SPLIT_TO)
    fall[:, ~allowed] = -np.inf
    best = np.argmax(fall, axis=1)
    found = gap >= 1.5
    ys = np.where(found, ly[np.arange(len(xs)), best], u + 0.5 * gap)
    # Teeth end one by one: a line through each tooth's edge would cut the tips of some and drop
    # them with the jaw, and shows as a zigzag gap. The line is a smooth curve across the mouth
    # (a parabola in the mouth's frame, as a row of teeth), moved down until SPLIT_BELOW of the
    # edges found lie above it, and kept between the lips.
    if found.sum() >= 3:
        coef = np.polyfit(xs[found], ys[found], 2)
        fit = np.polyval(coef, xs)
        fit += max(float(np.quantile(ys[found] - fit[found], SPLIT_BELOW)), 0.0)
        ys = np.where(found, fit, ys)
    ys = np.clip(ys, u + SPLIT_FROM * gap, lo)
    ends = 0.5 * (profile(up, np.array([0.0, width])) + profile(low, np.array([0.0, width])))
    flat = rgb.reshape(-1, 3)
    order = np.argsort(lum.ravel())
    colour = np.median(flat[order[: max(int(CAVITY_SHARE * lum.size), 1)]], axis=0).astype(np.float64)
    # a mouth that shows no dark inside (teeth and lips only) still opens onto a dark one
    most = CAVITY_MAX_LUMA * float(np.quantile(lum, 0.25))
    luma = float(colour @ LUMA)
    if luma > most:
        colour *= most / luma
    return (np.concatenate([[0.0], xs, [width]]), np.concatenate([ends[:1], ys, ends[1:]])), colour


def _mouth(image: NDArray[np.uint8], upper_inner: NDArray[np.floating], lower_inner: NDArray[np.floating],
           lower_outer: NDArray[np.floating], drop: float) -> _Mouth | None:
    up_pts = np.asarray(upper_inner, np.float64)[:, :2]
    low_pts = np.asarray(lower_inner, np.float64)[:, :2]
    out_pts = np.asarray(lower_outer, np.float64)[:, :2]
    c0 = up_pts[0]
    width, ex, ey = axes(c0, up_pts[-1])
    if width < 4.0 or drop <= 0:
        return None
    frame = np.stack([ex, ey], 1)
    up, low, low_out = (up_pts - c0) @ frame, (low_pts - c0) @ frame, (out_pts - c0) @ frame
    if np.median(low_out[:, 1]) < np.median(up[:, 1]):  # y must point from the upper lip to the chin
        ey = -ey
        for a in (up, low, low_out):
            a[:, 1] *= -1
    split, rgb = _split_line(image, c0, ex, ey, up, low, width)
    return _Mouth(c0, ex, ey, up, low, low_out, width, float(drop), split, rgb)


def open_mouth(image: NDArray[np.uint8], upper_inner: NDArray[np.floating], lower_inner: NDArray[np.floating],
               lower_outer: NDArray[np.floating], drop: float, points: NDArray[np.floating] | None = None
               ) -> tuple[NDArray[np.uint8], NDArray[np.float64] | None]:
    """A copy of ``image`` with the mouth opened wider by ``drop`` pixels (see the module doc).

    Args:
        image: ``(H, W, 3)`` uint8 RGB.
        upper_inner, lower_inner: ``(K, 2+)`` frame pixels of the inner lip contours, each from
            one inner mouth corner to the other (the first and last points are the corners).
        lower_outer: ``(K', 2+)`` frame pixels of the lower lip's outer contour.
        drop: how far the lower teeth and lip go down in the middle of the mouth, in pixels.
        points: optional ``(N, 2+)`` frame pixels of features of this face (its landmarks).

    Returns:
        The new image (pixels outside the mouth's box keep their exact bytes) and, when
        ``points`` are given, where each now is (a copy; extra columns kept): points below the
        split line move with their pixels.
    """
    return strips.edit(image, _mouth(image, upper_inner, lower_inner, lower_outer, drop), points, _move_points, _render)


def _move_points(mouth: _Mouth, pts: NDArray[np.float64]) -> NDArray[np.float64]:
    """Where points of the source image are in the opened one (the inverse of the remap)."""
    lx, ly = local(mouth, pts)
    c = mouth.columns(lx)
    out = ly.copy()
    shifted = (ly >= c["s"]) & (ly < c["b"])
    out[shifted] = (ly + c["d"])[shifted]
    back = (ly >= c["b"]) & (ly < c["b"] + c["d"] + c["m"])
    out[back] = (c["b"] + c["d"] + (ly - c["b"]) * c["m"] / (c["d"] + c["m"]))[back]
    return pts + (out - ly)[:, None] * mouth.ey[None]


def _render(image: NDArray[np.uint8], mouth: _Mouth) -> NDArray[np.uint8]:
    """The remap of the module doc, on the mouth's box, and the inside filled."""
    xs = np.linspace(0.0, mouth.width, 64)
    c = mouth.columns(xs)
    top = float(np.min(mouth.split[1])) - 2.0
    bottom = float(np.max(c["b"] + c["d"] + c["m"])) + 2.0
    corners_local = np.array([[0.0, top], [mouth.width, top], [0.0, bottom], [mouth.width, bottom]])
    grid = box_grid(image.shape, mouth, corners_local)
    if grid is None:
        return image.copy()
    (x0, y0, x1, y1), xx, yy, lx, ly = grid
    c = mouth.columns(lx)
    s, d, b, m = c["s"], c["d"], c["b"], c["m"]
    src_y = ly.copy()
    cavity = (ly >= s) & (ly < s + d)
    shifted = (ly >= s + d) & (ly < b + d)
    src_y[shifted] = (ly - d)[shifted]
    back = (ly >= b + d) & (ly < b + d + m)
    src_y[back] = (b + (ly - b - d) * (d + m) / m)[back]
    src_y[cavity] = s[cavity]
    # every source lies in the box too (moves run along the mouth's y, inside the bands)
    box = resample_along(image, (x0, y0, x1, y1), xx, yy, src_y - ly, mouth.ey)
    # The inside: the mouth's darkest colour, darker toward the middle of the gap; its edges
    # blend over a pixel into the teeth and lip around it.
    depth = np.where(d > 0, (ly - s) / np.maximum(d, 1e-6), -1.0)
    shade = 1.0 - CAVITY_SHADE * np.clip(1.0 - np.abs(2.0 * depth - 1.0), 0.0, 1.0)
    edge = np.clip(np.minimum(ly - s + 0.5, s + d - ly + 0.5), 0.0, 1.0) * (d > 0.5)
    fill = mouth.cavity_rgb[None, None, :] * shade[..., None]
    box = box + (fill - box) * edge[..., None]
    out = image.copy()
    out[y0:y1, x0:x1] = np.clip(np.round(box), 0, 255).astype(np.uint8)
    return out
