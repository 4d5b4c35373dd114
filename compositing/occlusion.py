"""Faces in front of an edited face keep their pixels.

When two faces overlap in the picture, the nearer one hides part of the other. An edit of the
farther face warps (and may borrow texture into) a region that reaches over the nearer head; its
pixels must stay as they are, since they belong to someone else. Which faces are nearer is the
caller's choice (``plugin.editing.faces_in_front``); here the nearer face's head, its oval grown
about its centre by :data:`HEAD_GROW` (hair line, ears), is put back from the frame before the
edit, with a feathered edge outside it.
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np
from numpy.typing import NDArray

from compositing.mask import face_oval, polygon_size

#: The nearer face's oval grown about its centre by this fraction: its head.
HEAD_GROW = 0.25
#: Width of the protection's soft edge outside the grown oval, as a fraction of that face's size.
FEATHER = 0.03


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
    x0, y0, x1, y1 = box
    e = edited[y0:y1, x0:x1].astype(np.float32)
    o = original[y0:y1, x0:x1].astype(np.float32)
    edited[y0:y1, x0:x1] = np.rint(e + (o - e) * weight[..., None]).astype(np.uint8)
    return edited
