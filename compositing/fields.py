"""Interlaced frames: warp each field from its own rows.

An interlaced frame weaves two fields, its even and its odd rows, shot a field period apart: on
motion the face sits in two places, a comb. Warped whole, a sample between two rows mixes the
fields, so an edited face carries lines of the other moment (and bends the comb). The edit
stage therefore warps each field on its own: a copy of the frame in which the other field's rows
are rebuilt from this field's alone (the mean of the rows above and below, :func:`field_image`),
of which only this field's rows are kept. The rows of the other field are then never read.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from compositing.crop import FaceCrop

#: Frame pixels added around a crop's box for what a sampling kernel reads past it (bicubic: 2).
_KERNEL_MARGIN = 3


def crop_box(crop: FaceCrop) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` frame box (exclusive ends) holding the crop and a kernel's margin: all
    a warp inside the crop can read."""
    s = crop.size - 0.5
    corners = np.array([[-0.5, -0.5, 1.0], [s, -0.5, 1.0], [-0.5, s, 1.0], [s, s, 1.0]])
    xy = (crop.frame_trans_crop @ corners.T)[:2]
    h, w = crop.frame_size
    x0 = min(max(math.floor(xy[0].min()) - _KERNEL_MARGIN, 0), w)
    y0 = min(max(math.floor(xy[1].min()) - _KERNEL_MARGIN, 0), h)
    x1 = max(min(math.ceil(xy[0].max()) + _KERNEL_MARGIN + 1, w), x0)
    y1 = max(min(math.ceil(xy[1].max()) + _KERNEL_MARGIN + 1, h), y0)
    return x0, y0, x1, y1


def field_image(image: NDArray[np.uint8], parity: int, box: tuple[int, int, int, int]) -> NDArray[np.uint8]:
    """A copy of ``image`` in which, inside ``box``, each row of the other field is the mean of
    this field's rows above and below it (the nearer one alone at the frame's top and bottom).

    Args:
        image: ``(H, W, 3)`` uint8 woven frame (``H`` >= 2).
        parity: the field kept: 0 for the even rows (the top field), 1 for the odd rows.
        box: ``(x0, y0, x1, y1)`` the part to rebuild (e.g. :func:`crop_box`).
    """
    if parity not in (0, 1):
        raise ValueError(f"parity must be 0 or 1, got {parity}")
    h = image.shape[0]
    if h < 2:
        raise ValueError(f"a frame of {h} row(s) has no fields")
    x0, y0, x1, y1 = box
    out = image.copy()
    first = y0 + (1 - parity - y0) % 2  # the other field's first row in the box
    rows = np.arange(first, y1, 2)
    if rows.size == 0 or x0 >= x1:
        return out
    up, down = rows - 1, rows + 1
    up = np.where(up < 0, down, up)
    down = np.where(down >= h, up, down)
    a = image[up, x0:x1].astype(np.uint16)
    out[rows, x0:x1] = ((a + image[down, x0:x1] + 1) >> 1).astype(np.uint8)
    return out
