"""Where a face's warp may act: the head moves, the neck bends, the body and the picture's edge stay.

A 2-D warp field built from face landmarks alone extrapolates the face's motion over everything
around it: a head roll rotated the collar and shoulders with the face, and a pitch dragged the
frame's bottom edge (or a letterbox bar) into the neck. Three weights on the crop fix where the
motion may go (crop pixels, same conventions as ``compositing/crop.py``):

- :func:`below_jaw_support`: 1 over the face and everything above and beside it down to the
  level of the face's widest points (temples, ears, hair), fading to 0 at ``fade_px`` below the
  jaw line (the lower half of the face oval, before and after the edit). The neck stretches or
  bends over that distance; the body below it does not move.
- :func:`picture_support`: 1 inside the frame's picture area, fading to 0 at its edge, so that no
  pixel is pulled from beyond the frame (padding) or from a letterbox bar (:func:`picture_area`).
- :func:`head_polygons`: the blend mask's polygons. Besides the two face ovals, when the oval
  itself moves (a head turn, a jaw drop) the mask also covers the rest of the head (the ovals
  grown about their centre: ears, hair line) and the neck band the field bends, so that the mask
  does not cut through an ear or a collar that the field moves.

"Down" is the face's own direction from the forehead (landmark 10) to the chin (152), so a
tilted head gets a tilted jaw line.
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from numpy.typing import NDArray

from compositing.crop import FaceCrop
from compositing.mask import polygon_distance

#: Face-oval landmark ids of the forehead top and the chin (MediaPipe topology).
FOREHEAD, CHIN = 10, 152
#: A frame row (column) at the picture's edge belongs to a letterbox (pillarbox) bar when all its
#: pixels are at most this dark ...
BAR_LEVEL = 40
#: ... and vary by at most this much (8-bit levels; codec noise in a black bar stays well under).
BAR_RANGE = 16
#: Bars are looked for in at most this fraction of the frame's height (width) on each side.
BAR_MAX_FRACTION = 0.25
#: Lines looked at per step when scanning for bars.
_BAR_BLOCK = 16
#: Far enough to stand for infinity in crop pixels (times the crop size).
_FAR = 4.0


def _bar_lines(image: NDArray[np.uint8], axis: int, from_end: bool, limit: int) -> int:
    """How many whole rows (``axis`` 0) or columns (1) at one edge of ``image`` are bar lines,
    looked at in small blocks from the edge inward (no copy of the frame)."""
    size = image.shape[axis]
    count, n = 0, 1  # the edge line alone first: the usual answer is 0
    while count < limit:
        n = min(n, limit - count)
        lo_i, hi_i = (size - count - n, size - count) if from_end else (count, count + n)
        if axis == 0:
            block = image[lo_i:hi_i].reshape(n, -1)
            hi, lo = block.max(axis=1), block.min(axis=1)
        else:
            block = image[:, lo_i:hi_i]
            hi, lo = block.max(axis=0).max(axis=-1), block.min(axis=0).min(axis=-1)
        bar = (hi <= BAR_LEVEL) & (hi.astype(np.int16) - lo <= BAR_RANGE)
        if from_end:
            bar = bar[::-1]
        if not bar.all():
            return count + int(np.argmin(bar))
        count += n
        n = _BAR_BLOCK
    return limit


def picture_area(image: NDArray[np.uint8]) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (exclusive ends) of the frame without letterbox or pillarbox bars.

    A bar is a run of whole rows (columns) at the frame's edge that are dark and flat
    (:data:`BAR_LEVEL`, :data:`BAR_RANGE`), up to :data:`BAR_MAX_FRACTION` of the frame.

    Args:
        image: ``(H, W, 3)`` uint8 frame.
    """
    h, w = image.shape[:2]
    ny, nx = int(h * BAR_MAX_FRACTION), int(w * BAR_MAX_FRACTION)
    top, bottom = _bar_lines(image, 0, False, ny), _bar_lines(image, 0, True, ny)
    left, right = _bar_lines(image, 1, False, nx), _bar_lines(image, 1, True, nx)
    return left, top, w - right, h - bottom


def _smooth_fade(d: NDArray[np.float32], width: float) -> torch.Tensor:
    """1 at distance 0, smoothstep to 0 at ``width`` (> 0)."""
    t = np.clip(1.0 - d / max(width, 1e-6), 0.0, 1.0)
    return torch.from_numpy((t * t * (3.0 - 2.0 * t)).astype(np.float32))


def _face_frame(oval: NDArray[np.float64], landmarks: NDArray[np.float64]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """The oval's centre and the face's unit "down" vector (forehead to chin)."""
    down = landmarks[CHIN, :2] - landmarks[FOREHEAD, :2]
    n = float(np.linalg.norm(down))
    return oval.mean(axis=0), (down / n if n > 0 else np.array([0.0, 1.0]))


def _lower_chain(oval: NDArray[np.float64], centre: NDArray[np.float64], down: NDArray[np.float64]) -> NDArray[np.float64]:
    """The oval's points from its widest point on one side, round the chin, to the other side."""
    across = np.array([-down[1], down[0]])
    u = (oval - centre) @ across
    i0, i1 = int(np.argmin(u)), int(np.argmax(u))
    n = len(oval)
    fwd = [(i0 + k) % n for k in range((i1 - i0) % n + 1)]
    back = [(i0 - k) % n for k in range((i0 - i1) % n + 1)]
    v = (oval - centre) @ down
    chain = fwd if v[fwd].mean() > v[back].mean() else back
    return oval[chain]


def _jaw_region(oval: NDArray[np.float64], landmarks: NDArray[np.float64], size: int) -> NDArray[np.float64]:
    """Polygon of the face and everything above and beside it down to its widest points."""
    centre, down = _face_frame(oval, landmarks)
    across = np.array([-down[1], down[0]])
    chain = _lower_chain(oval, centre, down)
    far = _FAR * size
    a, b = chain[0], chain[-1]
    side_a = -across if (a - centre) @ across < 0 else across
    up = -down
    return np.concatenate([chain, [b - side_a * far, b - side_a * far + up * far,
                                   a + side_a * far + up * far, a + side_a * far]])


def below_jaw_support(before: NDArray[np.floating], after: NDArray[np.floating], ovals: tuple[NDArray[np.floating], NDArray[np.floating]],
                      size: int, fade_px: float) -> torch.Tensor:
    """``(S, S)`` float32 weight: 1 above the jaw line (before and after), smoothstep to 0 at ``fade_px`` below.

    Args:
        before, after: ``(478, 2|3)`` crop pixels, the landmarks before and after the edit.
        ovals: the face-oval polygons ``(36, 2)`` of ``before`` and ``after`` (crop pixels).
        size: crop side ``S``.
        fade_px: distance below the jaw line at which the weight reaches 0 (> 0).
    """
    polys = [_jaw_region(np.asarray(o, np.float64), np.asarray(lm, np.float64), size)
             for o, lm in zip(ovals, (before, after))]
    return _smooth_fade(polygon_distance(polys, size), fade_px)


def picture_support(crop: FaceCrop, area: tuple[int, int, int, int], width_px: float) -> torch.Tensor:
    """``(S, S)`` float32 weight: 0 outside the picture ``area`` (frame pixels, exclusive ends),
    smoothstep to 1 at ``width_px`` crop pixels inside its edge (1 everywhere when the crop lies
    well inside)."""
    x0, y0, x1, y1 = area
    # The outermost picture pixels' centres, in crop pixels: the edge the samples must not cross.
    corners = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.float64)
    m = crop.crop_trans_frame
    poly = corners @ m[:2, :2].T + m[:2, 2]
    size = crop.size
    if _inside_by(poly, size, INSIDE_MARGIN * width_px + 2.0):
        return torch.ones((size, size), dtype=torch.float32)
    # Distances from the picture's edge, also where it lies just outside the crop: fill it on a
    # canvas padded by the fade width.
    pad = int(np.ceil(width_px)) + 2
    inside = np.zeros((size + 2 * pad, size + 2 * pad), np.uint8)
    cv2.fillPoly(inside, [np.round((poly + pad) * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)
    d = cv2.distanceTransform(inside, cv2.DIST_L2, 5)[pad:-pad, pad:-pad]
    return 1.0 - _smooth_fade(d, width_px)


#: :func:`picture_support` skips its distance transform when every crop pixel lies farther than
#: this many fade widths inside the picture (the transform's 5x5 mask errs by well under 1 %).
INSIDE_MARGIN = 1.05


def _inside_by(poly: NDArray[np.float64], size: int, distance: float) -> bool:
    """Every pixel centre of the ``size`` crop lies inside the convex polygon ``poly`` (crop
    pixels, either winding) at least ``distance`` from each of its edge lines. A convex set
    inside another is nearest the outer one's edges at one of its own corners: the crop's four."""
    corners = np.array([[0.0, 0.0], [size - 1.0, 0.0], [size - 1.0, size - 1.0], [0.0, size - 1.0]])
    area2 = float(np.sum(poly[:, 0] * np.roll(poly[:, 1], -1) - np.roll(poly[:, 0], -1) * poly[:, 1]))
    if area2 == 0.0:
        return False
    for a, b in zip(poly, np.roll(poly, -1, axis=0), strict=True):
        edge = b - a
        n = float(np.hypot(edge[0], edge[1]))
        if n == 0.0:
            return False
        # signed distance to the edge's line, positive on the polygon's inner side
        inward = np.sign(area2) * (edge[0] * (corners[:, 1] - a[1]) - edge[1] * (corners[:, 0] - a[0])) / n
        if inward.min() < distance:
            return False
    return True


def head_polygons(ovals: tuple[NDArray[np.floating], NDArray[np.floating]], before: NDArray[np.floating],
                  grow: float, neck_px: float) -> list[NDArray[np.float64]]:
    """The blend mask's polygons: both face ovals, and (``grow`` > 0) the head and neck around them.

    Args:
        ovals: the face-oval polygons ``(36, 2)`` before and after the edit (crop pixels).
        before: ``(478, 2|3)`` crop pixels before the edit (gives the face's "down").
        grow: how far to grow the ovals about their centre for the rest of the head, as a
            fraction (0: only the ovals).
        neck_px: depth of the neck band under the jaw line covered with the head (crop pixels).
    """
    polys = [np.asarray(o, np.float64) for o in ovals]
    if grow <= 0:
        return polys
    out = list(polys)
    for oval in polys:
        centre, down = _face_frame(oval, np.asarray(before, np.float64))
        out.append(centre + (1.0 + grow) * (oval - centre))
        if neck_px > 0:
            chain = _lower_chain(oval, centre, down)
            out.append(np.concatenate([chain, chain[::-1] + down * neck_px]))
    return out
