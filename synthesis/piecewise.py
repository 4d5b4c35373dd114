"""Piecewise-affine interpolation over a triangulated crop, and the triangle tests around it.

The piecewise-affine half of ``synthesis.warpfield``: the crop is triangulated on the landmarks
plus anchors along its border (Delaunay, or the face mesh with Delaunay filling the rest), and a
per-vertex value (a displacement) is interpolated linearly inside each triangle, rasterized per
pixel. Also here: which triangles an edit turns over (:func:`flipped_triangles`) and which it
opens from a closed mouth or eye (:func:`opening_triangles`), which the field's fold guard needs.
"""

from __future__ import annotations

import functools
import threading

import cv2
import numpy as np
import torch
from numpy.typing import NDArray
from scipy.spatial import Delaunay

#: A triangle counts as flipped when its signed area changes sign and the turned-over area exceeds
#: this fraction of its source area (a lid closed onto the other lid, overshooting by a hair, is
#: not a fold).
FLIP_AREA_FRACTION = 0.01
#: A triangle whose source area is below this fraction of its output area (and whose output
#: area exceeds :data:`OPENING_MIN_AREA_PX`) is an opening: a closed mouth or eye being opened
#: (see :func:`opening_triangles`).
OPENING_AREA_RATIO = 0.05
OPENING_MIN_AREA_PX = 1.0
#: Triangulations remembered (a few faces' worth per frame).
_DELAUNAY_CACHE = 8


@functools.lru_cache(maxsize=8)
def pixel_centres(size: int) -> torch.Tensor:
    """``(S, S, 2)`` float32 pixel-centre coordinates (x, y) of a square crop, shared (read only:
    never modified in place; ``synthesis.warpfield.identity_grid`` gives a copy)."""
    ax = torch.arange(size, dtype=torch.float32)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    return torch.stack((xx, yy), dim=-1)


def border_anchors(size: int, per_side: int) -> NDArray[np.float64]:
    """``(4 * per_side, 2)`` points evenly spaced along the crop border (pixel centres 0 .. S-1)."""
    t = np.linspace(0.0, size - 1.0, per_side + 1)[:-1]
    z, e = np.zeros_like(t), np.full_like(t, size - 1.0)
    return np.concatenate([np.stack(p, 1) for p in ((t, z), (e, t), (e - t, e), (z, e - t))])



def signed_area(pts: NDArray[np.float64], tris: NDArray[np.int64]) -> NDArray[np.float64]:
    """``(T,)`` signed areas of triangles ``tris`` ``(T, 3)`` over ``pts`` ``(N, 2)`` (positive: counter-clockwise in x-right, y-up terms)."""
    a, b, c = pts[tris[:, 0]], pts[tris[:, 1]], pts[tris[:, 2]]
    return 0.5 * ((b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0]))


def triangulate(
    src: NDArray[np.float64], size: int, per_side: int, triangles: NDArray[np.integer] | None = None
) -> tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64] | None]:
    """Triangles covering the whole crop, on the source points plus border anchors.

    Args:
        src: ``(K, 2)`` crop pixels.
        size: crop side.
        per_side: anchors per crop side.
        triangles: optional ``(T, 3)`` indices into ``src`` (e.g. the face mesh). When given, the
            rest of the crop (outside the mesh, and its holes such as open eyes) is filled by a
            Delaunay triangulation of the mesh's boundary vertices, the points no triangle uses
            and the anchors, on layer 0, under the mesh's own triangles on layer 1.

    Returns:
        ``(K + A, 2)`` vertices (the points, then the anchors), ``(T', 3)`` int64 triangles, and
        their ``(T',)`` layers (``None`` for a plain Delaunay triangulation).
    """
    anchors = border_anchors(size, per_side)
    verts = np.concatenate([src, anchors])
    k = src.shape[0]
    if triangles is None:
        return verts, _delaunay(verts), None
    tris = np.asarray(triangles, dtype=np.int64)
    if tris.ndim != 2 or tris.shape[1] != 3 or tris.min() < 0 or tris.max() >= k:
        raise ValueError(f"triangles must be (T, 3) indices into {k} points, got shape {tris.shape}")
    edges = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    uniq, counts = np.unique(edges, axis=0, return_counts=True)
    rim = np.union1d(uniq[counts == 1], np.setdiff1d(np.arange(k), tris))  # outline, hole rims, unused
    fill_ids = np.concatenate([rim, np.arange(k, k + len(anchors))])
    fill = fill_ids[Delaunay(verts[fill_ids]).simplices]
    layer = np.concatenate([np.zeros(len(fill), np.int64), np.ones(len(tris), np.int64)])
    return verts, np.concatenate([fill, tris]), layer


@functools.lru_cache(maxsize=_DELAUNAY_CACHE)
def _delaunay_cached(key: bytes, n: int) -> NDArray[np.int64]:
    tri = Delaunay(np.frombuffer(key, dtype=np.float64).reshape(n, 2))
    tris = tri.simplices.astype(np.int64)
    tris.flags.writeable = False
    _remember_neighbours(tris, tri.neighbors.astype(np.int64))
    return tris


#: Triangle neighbours qhull computed along with a cached triangulation, by the identity of its
#: (read-only, cached) triangle array: ``id -> (triangles, neighbours)``. The entry holds the
#: array itself, so the id cannot be reused while it is here.
_NEIGHBOURS: dict[int, tuple[NDArray[np.int64], NDArray[np.int64]]] = {}


_NEIGHBOURS_LOCK = threading.Lock()  # the edit stage builds fields on several threads


def _remember_neighbours(tris: NDArray[np.int64], neighbours: NDArray[np.int64]) -> None:
    neighbours.flags.writeable = False
    with _NEIGHBOURS_LOCK:
        _NEIGHBOURS[id(tris)] = (tris, neighbours)
        while len(_NEIGHBOURS) > 2 * _DELAUNAY_CACHE:
            del _NEIGHBOURS[next(iter(_NEIGHBOURS))]


def _delaunay(verts: NDArray[np.float64]) -> NDArray[np.int64]:
    """Delaunay triangles of ``verts`` ``(N, 2)``, read-only. The edit stage triangulates the same
    points twice per face and frame (choosing the points that do not fold, then building the
    field from them): the second time comes from a small cache keyed by the exact coordinates."""
    v = np.ascontiguousarray(verts, dtype=np.float64)
    return _delaunay_cached(v.tobytes(), len(v))


def _affine_table(verts: NDArray[np.float64], values: NDArray[np.float64], tris: NDArray[np.int64]) -> torch.Tensor:
    """``(12, T + 1)`` float32, a column per triangle (column 0 a dummy, value 0).

    In coordinates local to the first vertex ``a`` (``dx = x - ax``, ``dy = y - ay``, which keeps
    float32 exact even for thin triangles): rows ``ax, ay``; barycentric ``l1 = c2 dx + c3 dy``
    and ``l2 = c4 dx + c5 dy``; values ``vx = c6 + c7 dx + c8 dy`` and ``vy = c9 + c10 dx + c11 dy``.
    A degenerate triangle takes its first vertex's value. Stored transposed so that gathering
    columns with ``index_select`` gives contiguous rows (several times faster on CPU than rows).
    """
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    e1, e2 = b - a, c - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-9
    inv = np.where(ok, 1.0 / np.where(ok, det, 1.0), 0.0)
    t = np.zeros((len(tris) + 1, 12), np.float64)
    t[1:, 0:2] = a
    t[1:, 2], t[1:, 3] = e2[:, 1] * inv, -e2[:, 0] * inv
    t[1:, 4], t[1:, 5] = -e1[:, 1] * inv, e1[:, 0] * inv
    v0, v1, v2 = values[tris[:, 0]], values[tris[:, 1]], values[tris[:, 2]]
    for ch, col in ((0, 6), (1, 9)):
        d1, d2 = v1[:, ch] - v0[:, ch], v2[:, ch] - v0[:, ch]
        t[1:, col] = v0[:, ch]
        t[1:, col + 1] = d1 * t[1:, 2] + d2 * t[1:, 4]
        t[1:, col + 2] = d1 * t[1:, 3] + d2 * t[1:, 5]
    return torch.from_numpy(np.ascontiguousarray(t.T, dtype=np.float32))


def _barycentric(
    cols: torch.Tensor, x: torch.Tensor, y: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Barycentric ``(l0, l1, l2)``, each ``(P,)``, of points ``(x, y)`` in gathered table ``cols`` ``(12, P)``."""
    dx, dy = x - cols[0], y - cols[1]
    l1 = cols[2] * dx + cols[3] * dy
    l2 = cols[4] * dx + cols[5] * dy
    return 1.0 - l1 - l2, l1, l2


def _edge_neighbours(tris: NDArray[np.int64], layer: NDArray[np.integer] | None) -> NDArray[np.int64]:
    """``(T, 3)`` the same-layer triangle across the edge opposite each vertex, -1 if none (qhull's
    own answer for a cached Delaunay triangulation, as ``scipy``'s ``neighbors`` means the same)."""
    known = _NEIGHBOURS.get(id(tris)) if layer is None else None
    if known is not None and known[0] is tris:
        return known[1]
    out = np.full((len(tris), 3), -1, np.int64)
    lay = np.zeros(len(tris), np.int64) if layer is None else np.asarray(layer, np.int64)
    for value in np.unique(lay):
        ids = np.flatnonzero(lay == value)
        t, n = tris[ids], int(tris.max()) + 1
        u, v = np.concatenate([t[:, 1], t[:, 2], t[:, 0]]), np.concatenate([t[:, 2], t[:, 0], t[:, 1]])
        key = np.minimum(u, v) * n + np.maximum(u, v)
        owner = np.tile(ids, 3)
        order = np.argsort(key, kind="stable")
        ks, os_ = key[order], owner[order]
        pick = np.full(len(key), -1, np.int64)
        same = ks[:-1] == ks[1:]
        pick[:-1][same] = os_[1:][same]  # the next owner of the same edge, or ...
        pick[1:][same] = os_[:-1][same]  # ... the previous one
        found = np.empty(len(key), np.int64)
        found[order] = pick
        out[ids] = found.reshape(3, len(ids)).T
    return out


def pa_interpolate(
    verts: NDArray[np.float64],
    values: NDArray[np.float64],
    tris: NDArray[np.int64],
    size: int,
    layer: NDArray[np.integer] | None = None,
) -> torch.Tensor:
    """Piecewise-linear interpolation of per-vertex ``values`` over triangles placed at ``verts``.

    Triangles are filled into a triangle-index map with OpenCV at 1/16-pixel precision, by
    ``layer`` (higher layers win where triangles overlap) and within a layer in order of
    increasing area (so a collapsed triangle loses its shared pixels to its neighbours). Each
    pixel then gets its triangle's barycentric coordinates, clamped to the triangle so that a pixel
    the rasterizer assigned across an edge takes the edge's value (the result stays continuous).
    Pixels covered by no triangle, or by a triangle whose three values are 0, get exactly 0; with
    a single layer only the triangles with a non-zero value are drawn at all.

    Args:
        verts: ``(N, 2)`` crop pixels, where the triangles are drawn (the OUTPUT positions).
        values: ``(N, 2)`` per-vertex values.
        tris: ``(T, 3)`` vertex indices.
        size: crop side ``S``.
        layer: optional ``(T,)`` integer layer of each triangle (default: all 0).

    Returns:
        ``(S, S, 2)`` float32 tensor.
    """
    out = torch.zeros((size, size, 2), dtype=torch.float32)
    moving = np.any(values != 0.0, axis=1)
    active = moving[tris].any(axis=1)
    if not active.any():
        return out
    if layer is None or np.all(layer == layer[0]):
        drawn = np.flatnonzero(active)
        key = np.zeros(len(drawn))
    else:
        drawn = np.arange(len(tris))
        key = np.asarray(layer, dtype=np.float64)
    area = np.abs(signed_area(verts, tris[drawn]))
    sort = np.lexsort((area, key))
    order, key = drawn[sort], key[sort]
    index = np.full((size, size), -1, np.int32)
    corners = np.round(verts * 16.0).astype(np.int32)[tris[order]]  # (T', 3, 2) in 1/16 pixels
    under = None  # the bottom layer alone, for pixels a top-layer triangle holds only by slop
    changes = np.flatnonzero(key[1:] != key[:-1]) if layer is not None else np.empty(0, np.int64)
    split = int(changes[0]) + 1 if changes.size else len(order)  # where the first layer above the bottom starts
    ids = order.tolist()
    for t, poly in zip(ids[:split], corners[:split], strict=True):
        cv2.fillConvexPoly(index, poly, t, lineType=cv2.LINE_8, shift=4)
    if split < len(order):
        under = index.copy()
        for t, poly in zip(ids[split:], corners[split:], strict=True):
            cv2.fillConvexPoly(index, poly, t, lineType=cv2.LINE_8, shift=4)
    hit = np.concatenate([[False], active])[index + 1]  # drawn (index >= 0) by an active triangle
    count = int(np.count_nonzero(hit))
    if count == 0:
        return out
    table = _affine_table(verts, values, tris)
    if count > size * size // 4:  # dense: every pixel of the hit box, a dummy row for the still ones
        rows, cols = np.flatnonzero(hit.any(axis=1)), np.flatnonzero(hit.any(axis=0))
        dense_box = (slice(int(rows[0]), int(rows[-1]) + 1), slice(int(cols[0]), int(cols[-1]) + 1))
        tid = torch.from_numpy(np.where(hit[dense_box], index[dense_box] + 1, 0).reshape(-1)).long()
        grid = pixel_centres(size)[dense_box].reshape(-1, 2)
        x, y, flat = grid[:, 0], grid[:, 1], None
    else:
        r, c = np.nonzero(hit)
        flat = torch.from_numpy(r * size + c)
        tid = torch.from_numpy(index.reshape(-1)[r * size + c] + 1).long()
        x, y = torch.from_numpy(c.astype(np.float32)), torch.from_numpy(r.astype(np.float32))
    cols = torch.index_select(table, 1, tid)
    l0, l1, l2 = _barycentric(cols, x, y)
    dx, dy = x - cols[0], y - cols[1]
    vx = torch.addcmul(torch.addcmul(cols[6], cols[7], dx), cols[8], dy)
    vy = torch.addcmul(torch.addcmul(cols[9], cols[10], dx), cols[11], dy)
    res = torch.stack([vx, vy], 1)
    # The rasterizer gives edge pixels to either side. A pixel outside its triangle tries the
    # neighbour across the edge it is outside of, keeps whichever contains it better, and takes
    # that triangle's clamped barycentric value (so the result stays continuous).
    low = torch.minimum(torch.minimum(l0, l1), l2)
    bad = torch.nonzero(low < -1e-4).squeeze(1)
    if bad.numel():
        lam = torch.stack([l0[bad], l1[bad], l2[bad]], 1)
        tri = tid[bad] - 1
        nbr = torch.from_numpy(_edge_neighbours(tris, layer)[tri.numpy(), lam.argmin(1).numpy()])
        has = torch.nonzero(nbr >= 0).squeeze(1)
        m = torch.stack(_barycentric(torch.index_select(table, 1, nbr[has] + 1), x[bad[has]], y[bad[has]]), 1)
        gain = m.min(1).values > lam[has].min(1).values
        lam[has[gain]], tri[has[gain]] = m[gain], nbr[has[gain]]
        if under is not None:
            # Past the edge of the top layer (its outline, or a hole such as an eye) the pixel
            # belongs to the layer below.
            edge = torch.nonzero(nbr < 0).squeeze(1)
            below = torch.from_numpy(under.reshape(-1)[(y[bad[edge]] * size + x[bad[edge]]).long().numpy()]).long()
            edge, below = edge[below >= 0], below[below >= 0]
            m = torch.stack(_barycentric(torch.index_select(table, 1, below + 1), x[bad[edge]], y[bad[edge]]), 1)
            gain = m.min(1).values > lam[edge].min(1).values
            lam[edge[gain]], tri[edge[gain]] = m[gain], below[gain]
        lam = lam.clamp_min(0.0)
        lam = lam / lam.sum(1, keepdim=True)
        vv = torch.from_numpy(values[tris].astype(np.float32))[tri]  # (P, 3, 2)
        res[bad] = (lam[..., None] * vv).sum(1)
    if flat is None:
        out[dense_box] = res.reshape(out[dense_box].shape)
        return out
    out.view(-1, 2)[flat] = res
    return out


def flipped_triangles(
    src_verts: NDArray[np.float64], dst_verts: NDArray[np.float64], tris: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """``(T,)`` which triangles turn over between the source and the edited positions."""
    a_src = signed_area(src_verts, tris)
    a_dst = signed_area(dst_verts, tris)
    return (np.sign(a_src) * a_dst) < -FLIP_AREA_FRACTION * np.abs(a_src)


def opening_triangles(
    src_verts: NDArray[np.float64], dst_verts: NDArray[np.float64], tris: NDArray[np.int64]
) -> NDArray[np.bool_]:
    """``(T,)`` which triangles are openings: a closed mouth or eye being opened.

    A closed mouth or eye is a collapsed strip of triangles between the lips or lids; opening it
    maps each output triangle there onto (nearly) a line, so the field's Jacobian is about 0
    inside it by construction (the texture stage or the stretched lip line fills it). That is
    not a fold: counted as one, the fold guard shrank a jaw opening to a quarter (the chin did
    not drop). These are the triangles whose source area is below :data:`OPENING_AREA_RATIO`
    of their output area, and whose output area exceeds :data:`OPENING_MIN_AREA_PX`.
    """
    a_src = np.abs(signed_area(src_verts, tris))
    a_dst = np.abs(signed_area(dst_verts, tris))
    return (a_src < OPENING_AREA_RATIO * a_dst) & (a_dst > OPENING_MIN_AREA_PX)


def opening_pixels(dst_verts: NDArray[np.float64], tris: NDArray[np.int64], size: int) -> NDArray[np.bool_]:
    """``(S-1, S-1)`` the pixels of :func:`jacobian_det` inside the output triangles ``tris``
    (the openings, drawn at ``dst_verts``), grown by a pixel (the Jacobian uses forward
    differences)."""
    mask = np.zeros((size, size), np.uint8)
    for tri in tris:
        cv2.fillConvexPoly(mask, np.round(dst_verts[tri] * 16).astype(np.int32), 1, lineType=cv2.LINE_8, shift=4)
    if len(tris):
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
    return mask[:-1, :-1].astype(bool)


def opening_mask(src: NDArray[np.floating], dst: NDArray[np.floating], size: int, per_side: int) -> NDArray[np.bool_]:
    """``(S-1, S-1)`` crop pixels where an edit from ``src`` to ``dst`` (``(K, 2)`` crop pixels)
    opens something that was closed: :func:`opening_pixels` of the :func:`opening_triangles` of
    the Delaunay triangulation :func:`build_field` uses (``per_side`` border anchors)."""
    verts, tris, _ = triangulate(np.asarray(src, dtype=np.float64), size, per_side)
    out = np.concatenate([np.asarray(dst, dtype=np.float64), verts[len(src):]])
    return opening_pixels(out, tris[opening_triangles(verts, out, tris)], size)
