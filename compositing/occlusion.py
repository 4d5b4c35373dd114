"""What is in front of an edited face keeps its pixels: nearer faces, and occluders.

When two faces overlap in the picture, the nearer one hides part of the other. An edit of the
farther face warps (and may borrow texture into) a region that reaches over the nearer head; its
pixels must stay as they are, since they belong to someone else. Which faces are nearer is the
caller's choice (``plugin.editing.faces_in_front``); here the nearer face's head, its oval grown
about its centre by :data:`HEAD_GROW` (hair line, ears), is put back from the frame before the
edit, with a feathered edge outside it.

The same holds for anything else held in front of the face (a hand, a microphone): where
``synthesis.occluders`` found one, its mask in the face's UV space is taken onto the frame through
the face's mesh (:func:`occluder_weight`) and those pixels are put back too.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray
from scipy import ndimage

from compositing.mask import face_oval, polygon_size
from synthesis.uvmap import all_triangles, correspondence_map, uv_points

#: The nearer face's oval grown about its centre by this fraction: its head.
HEAD_GROW = 0.25
#: Width of the protection's soft edge outside the grown oval, as a fraction of that face's size.
FEATHER = 0.03
#: Colour histogram bins per channel telling an occluder's colours from the face's.
COLOUR_BINS = 16
#: A colour counts as shown by neither when its smoothed histogram share is under this over the
#: bins' count (a tenth of an even spread's).
COLOUR_FLOOR = 0.1
#: A colour whose occluder share (occluder / (occluder + face), each histogram summing to 1) is at
#: most the first is the face's, at least the second the occluder's; smoothstep between.
COLOUR_BETWEEN = (0.3, 0.7)
#: The reach past the mesh is grown on a grid this many cells per reach (see ``_near``).
NEAR_STEPS = 16
#: Fewest occluder pixels on the mesh for a colour model (fewer: the mask stops at the mesh).
MIN_COLOUR_PIXELS = 64


def head_polygon(landmarks: NDArray[np.floating], grow: float = HEAD_GROW) -> NDArray[np.float64]:
    """``(36, 2)`` frame pixels: the face oval grown about its centroid by ``grow``."""
    oval = face_oval(landmarks)
    centre = oval.mean(axis=0)
    return centre + (1.0 + grow) * (oval - centre)


def protection(polygons: Sequence[NDArray[np.floating]], box: tuple[int, int, int, int]) -> NDArray[np.float32] | None:
    """``(h, w)`` float32 weight over the frame ``box`` (``x0, y0, x1, y1``, exclusive ends): 1
    inside the polygons, fading to 0 over :data:`FEATHER` of each one's size outside; None when
    no polygon reaches the box."""
    x0, y0, x1, y1 = box
    weight: NDArray[np.float32] | None = None
    for poly in polygons:
        p = np.asarray(poly, np.float64)
        edge = max(FEATHER * polygon_size([p]), 1.0)
        lo, hi = p.min(axis=0) - edge, p.max(axis=0) + edge
        if hi[0] < x0 or hi[1] < y0 or lo[0] >= x1 or lo[1] >= y1:
            continue
        outside = np.ones((y1 - y0, x1 - x0), np.uint8)
        cv2.fillPoly(outside, [np.round((p - (x0, y0)) * 16).astype(np.int32)], 0, lineType=cv2.LINE_8, shift=4)
        dist = cv2.distanceTransform(outside, cv2.DIST_L2, 5)
        w = np.clip(1.0 - dist / edge, 0.0, 1.0).astype(np.float32)
        weight = w if weight is None else np.maximum(weight, w)
    if weight is None or not weight.any():
        return None
    return weight


def keep_in_front(edited: NDArray[np.uint8], original: NDArray[np.uint8], front: Sequence[NDArray[np.floating]],
                  box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    """``edited`` with the heads of the ``front`` faces (``(478, 3)`` frame pixels each) inside
    ``box`` put back from ``original`` (feathered). Writes into ``edited`` when it is not
    ``original``; returns it."""
    if edited is original or not front:
        return edited
    weight = protection([head_polygon(f) for f in front], box)
    if weight is None:
        return edited
    return put_back(edited, original, weight, box)


def keep_covered(edited: NDArray[np.uint8], original: NDArray[np.uint8],
                 covered: tuple[NDArray[np.float32], NDArray[np.floating] | None] | None,
                 landmarks: NDArray[np.floating], box: tuple[int, int, int, int], reach: float) -> NDArray[np.uint8]:
    """``edited`` with what covers the face put back from ``original`` over the frame ``box``:
    ``covered`` is the face's occluder UV mask and the landmarks to take it through (None: the
    face's own ``landmarks``), as ``plugin.occluder_pass.Occluders.covering`` gives it, or None
    (nothing covers it). ``reach``: as :func:`occluder_weight`. Writes into ``edited``; returns it."""
    if covered is None:
        return edited
    mask, mesh = covered
    weight = occluder_weight(mask, landmarks if mesh is None else mesh, box, reach, original)
    return edited if weight is None else put_back(edited, original, weight, box)


def put_back(edited: NDArray[np.uint8], original: NDArray[np.uint8], weight: NDArray[np.float32],
             box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    """``edited`` with ``original`` put back by ``weight`` ``(h, w)`` in [0, 1] over the frame
    ``box`` (pixels of weight 0 keep the edit's bytes, of weight 1 the original's). Writes into
    ``edited``; returns it."""
    x0, y0, x1, y1 = box
    e = edited[y0:y1, x0:x1].astype(np.float32)
    o = original[y0:y1, x0:x1].astype(np.float32)
    edited[y0:y1, x0:x1] = np.rint(e + (o - e) * weight[..., None]).astype(np.uint8)
    return edited


def occluder_weight(mask_uv: NDArray[np.float32], landmarks: NDArray[np.floating],
                    box: tuple[int, int, int, int], reach: float,
                    image: NDArray[np.uint8]) -> NDArray[np.float32] | None:
    """``(h, w)`` float32 in [0, 1] over the frame ``box``: the occluder mask ``mask_uv``
    ``(S, S)`` (``synthesis.occluders``) taken through the face's mesh onto the frame, and past
    the mesh (what covers the chin goes on below it, where the field still bends the neck) within
    ``reach`` of the face's size of it, over the pixels whose colour is the occluder's rather than
    the face's (:func:`occluder_colour`); None when it covers no pixel of the box.

    Args:
        mask_uv: the face's occluder mask in UV space.
        landmarks: ``(478, 3)`` the face's landmarks in this frame, as tracked (before any edit:
            the occluder is where the picture shows it).
        box: ``(x0, y0, x1, y1)`` frame box (exclusive ends).
        reach: how far past the mesh, as a fraction of the face's size.
        image: ``(H, W, 3)`` uint8 RGB frame, before the edit.
    """
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0 or not mask_uv.any():
        return None
    mx, my, on_mesh = correspondence_map(landmarks, uv_points(mask_uv.shape[0]), all_triangles(), box)
    weight = cv2.remap(mask_uv.astype(np.float32), mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    weight[~on_mesh] = 0
    px = int(round(reach * polygon_size([face_oval(landmarks)])))
    if px > 0 and (weight > 0.5).sum() >= MIN_COLOUR_PIXELS:
        pixels = image[y0:y1, x0:x1]
        colour = occluder_colour(pixels, on_mesh & (weight > 0.5), on_mesh & (weight == 0))
        weight = np.where(on_mesh, weight, _near(weight, px) * cv2.GaussianBlur(colour, (0, 0), 1.0))
    weight = np.clip(weight, 0, 1).astype(np.float32)
    weight[weight < 1e-3] = 0
    return weight if weight.any() else None


def _near(weight: NDArray[np.float32], px: int) -> NDArray[np.float32]:
    """``weight`` grown by ``px`` pixels and three of its soft edge's sigmas (``px / 6``), so that
    it is whole up to ``px`` and fades beyond. Grown on a grid :data:`NEAR_STEPS` times coarser
    than ``px`` (a kernel a face's third wide, at the frame's resolution, costs seconds a frame
    on a face that fills it) and sampled back."""
    h, w = weight.shape
    step = max(px // NEAR_STEPS, 1)
    small = cv2.resize(weight, (max(w // step, 1), max(h // step, 1)), interpolation=cv2.INTER_AREA) if step > 1 else weight
    sigma = max(px / 6 / step, 0.5)
    grow = max(int(round((px + 3 * px / 6) / step)), 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1,) * 2)
    near = cv2.GaussianBlur(cv2.dilate(small, kernel), (0, 0), sigma)
    return cv2.resize(near, (w, h), interpolation=cv2.INTER_LINEAR) if step > 1 else near


def occluder_colour(pixels: NDArray[np.uint8], occluder: NDArray[np.bool_], face: NDArray[np.bool_]) -> NDArray[np.float32]:
    """``(h, w)`` float32 in [0, 1]: whether each pixel's colour is the occluder's rather than the
    face's, from their colour histograms (:data:`COLOUR_BINS` per channel, smoothed by a bin;
    :data:`COLOUR_BETWEEN`); 0 for a colour neither shows (the background beside them).

    Args:
        pixels: ``(h, w, 3)`` uint8 RGB.
        occluder, face: ``(h, w)`` bool: pixels known to be the occluder's, the face's.
    """
    b = COLOUR_BINS
    q = (pixels.astype(np.int32) * b) // 256
    idx = (q[..., 0] * b + q[..., 1]) * b + q[..., 2]
    hist = []
    for sel in (occluder, face):
        h = np.bincount(idx[sel], minlength=b ** 3).astype(np.float32).reshape(b, b, b)
        h = ndimage.gaussian_filter(h, 1.0, mode="constant")
        hist.append(h.ravel() / max(float(h.sum()), 1e-9))
    occ, skin = hist
    share = occ / np.maximum(occ + skin, 1e-12)
    share[occ + skin < COLOUR_FLOOR / b ** 3] = 0  # a colour neither shows
    lo, hi = COLOUR_BETWEEN
    t = np.clip((share - lo) / (hi - lo), 0.0, 1.0)
    return (t * t * (3 - 2 * t))[idx].astype(np.float32)
