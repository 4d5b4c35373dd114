"""A face's texture in the canonical mesh's UV space, and mesh correspondences between faces.

MediaPipe's canonical mesh (:mod:`tracking.geometry`) gives each of its 468 vertices a texture
coordinate and closes the eye and mouth openings with triangles of their own (898 triangles, 46
more than the tessellation MediaPipe draws), so every point of a face between the face oval's
landmarks lies in exactly one mesh triangle, and through its barycentric coordinates at one UV
point. Two uses:

- :func:`unwrap`: a frame's face resampled into UV space (``(S, S, 3)``, texel ``(row, col)`` at
  ``v = (row + 0.5) / S``, ``u = (col + 0.5) / S``) with a per-texel facing weight (cosine of the
  angle between the triangle's normal and the view direction; 0 where the triangle turns away or
  the texel is outside the mesh). The exemplar index measures region sharpness there.
- :func:`correspondence_map`: for each pixel of a box in a TARGET geometry, the pixel of a
  SOURCE image at the same mesh point (the same barycentric coordinates in the same triangle):
  the composition "target -> UV -> source", evaluated without resampling twice. This is how an
  exemplar's region is taken through UV space onto the edited face.

Landmarks are ``(478, 2|3)`` (or ``(468, ...)``) float pixels, x right, y down, origin at the top-left
pixel centre; z (when given) is MediaPipe's relative depth in pixels (smaller = nearer the camera).
"""

from __future__ import annotations

import functools

import cv2
import numpy as np
from numpy.typing import NDArray

from tracking.geometry import canonical_mesh
from tracking.observation import NUM_MESH_LANDMARKS

#: Default side of the UV texture (texels).
UV_SIZE = 256
#: How far (pixels, scaled by the source-to-target size ratio) a correspondence may extrapolate a
#: triangle beyond its source box (:func:`correspondence_map`): a pixel centre the rasterizer
#: gives a triangle lies within about 0.7 pixels of it.
EXTRAPOLATE_PX = 1.0
#: Largest size ratio that scales :data:`EXTRAPOLATE_PX`.
MAX_EXTRAPOLATE_SCALE = 4.0


def triangles() -> NDArray[np.int32]:
    """``(898, 3)`` int32 canonical mesh triangles (vertex ids = landmark ids 0..467)."""
    return canonical_mesh().triangles


def uv_coords() -> NDArray[np.float32]:
    """``(468, 2)`` float32 texture coordinates (u right, v down) in [0, 1]."""
    return canonical_mesh().uv


@functools.lru_cache(maxsize=8)
def _neighbours() -> tuple[frozenset[int], ...]:
    nb: list[set[int]] = [set() for _ in range(NUM_MESH_LANDMARKS)]
    for a, b, c in triangles().tolist():
        nb[a] |= {b, c}
        nb[b] |= {a, c}
        nb[c] |= {a, b}
    return tuple(frozenset(s) for s in nb)


def grow(vertices: tuple[int, ...] | list[int], rings: int) -> tuple[int, ...]:
    """The vertex set grown by ``rings`` rings of mesh neighbours (sorted ids, iris ids dropped)."""
    out = {int(v) for v in vertices if int(v) < NUM_MESH_LANDMARKS}
    nb = _neighbours()
    for _ in range(rings):
        out |= {n for v in out for n in nb[v]}
    return tuple(sorted(out))


@functools.lru_cache(maxsize=64)
def _region_triangles(vertices: tuple[int, ...]) -> NDArray[np.intp]:
    inside = np.zeros(NUM_MESH_LANDMARKS, bool)
    inside[[v for v in vertices if v < NUM_MESH_LANDMARKS]] = True
    out = np.flatnonzero(inside[triangles()].all(axis=1))
    out.flags.writeable = False
    return out


def region_triangles(vertices: tuple[int, ...] | list[int]) -> NDArray[np.intp]:
    """Indices of the mesh triangles whose three vertices all lie in ``vertices`` (cached; read-only)."""
    return _region_triangles(tuple(int(v) for v in vertices))


def triangle_map(
    points: NDArray[np.floating],
    tri_ids: NDArray[np.integer],
    box: tuple[int, int, int, int],
    depth: NDArray[np.floating] | None = None,
) -> NDArray[np.int32]:
    """Which triangle covers each pixel centre of ``box``.

    Triangles are filled with OpenCV (sub-pixel vertices, 1/16 pixel), far to near when ``depth``
    is given (painter's order by mean depth).

    Args:
        points: ``(468+, 2)`` vertex positions in pixels.
        tri_ids: ``(T,)`` indices into :func:`triangles` to draw.
        box: ``(x0, y0, x1, y1)`` pixel box, exclusive ends.
        depth: ``(468+,)`` per-vertex depth (smaller = nearer); where triangles overlap, the
            nearer (by mean depth) wins. None: the later triangle in ``tri_ids`` wins.

    Returns:
        ``(h, w)`` int32 triangle index (into :func:`triangles`; -1 where none).
    """
    x0, y0, x1, y1 = box
    h, w = max(y1 - y0, 0), max(x1 - x0, 0)
    tri_map = np.full((h, w), -1, np.int32)
    ids = np.asarray(tri_ids, dtype=np.intp)
    if h == 0 or w == 0 or ids.size == 0:
        return tri_map
    tris = triangles()
    p = np.asarray(points, dtype=np.float64)[:, :2]
    corners = p[tris[ids]] - np.array([x0, y0])  # (T, 3, 2) box pixels
    if depth is not None:
        order = np.argsort(-np.asarray(depth, dtype=np.float64)[tris[ids]].mean(axis=1), kind="stable")
    else:
        order = np.arange(ids.size)
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    visible = (hi[:, 0] >= -1) & (hi[:, 1] >= -1) & (lo[:, 0] <= w) & (lo[:, 1] <= h)
    fixed = np.round(corners * 16).astype(np.int32)
    for k in order[visible[order]].tolist():
        cv2.fillConvexPoly(tri_map, fixed[k], int(ids[k]), lineType=cv2.LINE_8, shift=4)
    return tri_map


def _barycentric_affines(points: NDArray[np.floating], origin: tuple[int, int],
                         tri_ids: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
    """``(898, 3, 3)`` (or ``(T, 3, 3)`` for the triangles ``tri_ids``): per triangle, the affine
    map from (x, y, 1) (pixels relative to ``origin``) to the barycentric weights of its three
    vertices (degenerate triangles: 1/3 each)."""
    p = np.asarray(points, dtype=np.float64)[:, :2] - np.asarray(origin, np.float64)
    tris = triangles() if tri_ids is None else triangles()[np.asarray(tri_ids, np.intp)]
    a, b, c = (p[tris[:, j]] for j in range(3))
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok = np.abs(det) > 1e-9
    d = np.where(ok, det, 1.0)
    m = np.zeros((tris.shape[0], 3, 3))
    # l0 = ((b1 - c1) (x - c0) + (c0 - b0) (y - c1)) / det; l1 likewise; l2 = 1 - l0 - l1
    m[:, 0, 0], m[:, 0, 1] = (b[:, 1] - c[:, 1]) / d, (c[:, 0] - b[:, 0]) / d
    m[:, 0, 2] = -(m[:, 0, 0] * c[:, 0] + m[:, 0, 1] * c[:, 1])
    m[:, 1, 0], m[:, 1, 1] = (c[:, 1] - a[:, 1]) / d, (a[:, 0] - c[:, 0]) / d
    m[:, 1, 2] = -(m[:, 1, 0] * c[:, 0] + m[:, 1, 1] * c[:, 1])
    m[:, 2] = -m[:, 0] - m[:, 1]
    m[:, 2, 2] += 1.0
    m[~ok] = np.array([[0, 0, 1 / 3]] * 3)
    return m


def _per_pixel(coef: NDArray[np.float64], tri_map: NDArray[np.int32], fill: NDArray[np.float64],
               dtype: type = np.float32) -> NDArray[np.floating]:
    """``(h, w, R)``: ``coef[t] @ (x, y, 1)`` at each pixel (box-relative), ``fill`` where
    ``tri_map`` is -1. ``coef``: ``(898, R, 3)``; ``fill``: ``(R,)``; computed in ``dtype``."""
    h, w = tri_map.shape
    r = coef.shape[1]
    table = np.concatenate([np.zeros((1, r, 3)), coef], axis=0).astype(dtype)
    table[0, :, 2] = fill
    g = table[tri_map + 1]  # (h, w, R, 3)
    xs = np.arange(w, dtype=dtype)[None, :, None]
    ys = np.arange(h, dtype=dtype)[:, None, None]
    return g[..., 0] * xs + g[..., 1] * ys + g[..., 2]


def rasterize(
    points: NDArray[np.floating],
    tri_ids: NDArray[np.integer],
    box: tuple[int, int, int, int],
    depth: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Which triangle covers each pixel centre of ``box``, and where in it.

    See :func:`triangle_map`. A pixel on a shared edge or just outside a triangle's exact area may
    get slightly negative barycentric weights: they extrapolate that triangle's affine map, which
    is exact for any affine motion.

    Returns:
        ``(h, w)`` int32 triangle index (into :func:`triangles`; -1 where none) and ``(h, w, 3)``
        float32 barycentric weights of its three vertices (0 where none).
    """
    tri_map = triangle_map(points, tri_ids, box, depth)
    if tri_map.size == 0:
        return tri_map, np.zeros((*tri_map.shape, 3), np.float32)
    bary = _per_pixel(_barycentric_affines(points, box[:2]), tri_map, np.zeros(3), np.float64)
    return tri_map, bary.astype(np.float32)


def source_affines(target: NDArray[np.floating], source: NDArray[np.floating],
                   origin: tuple[int, int] = (0, 0), tri_ids: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
    """``(898, 2, 3)`` (or ``(T, 2, 3)`` for the triangles ``tri_ids``): per mesh triangle,
    ``source_trans_target``: the affine map from a target pixel (x, y, 1), relative to
    ``origin``, to the source pixel at the same mesh point.

    Args:
        target, source: ``(468+, 2|3)`` landmarks in pixels.
        origin: ``(x0, y0)`` subtracted from target pixels first (a box's corner).
        tri_ids: only these triangles (None: all).
    """
    s = np.asarray(source, dtype=np.float64)[:, :2]
    corners = s[triangles() if tri_ids is None else triangles()[np.asarray(tri_ids, np.intp)]]  # (T, 3, 2)
    return np.einsum("tjc,tjk->tck", corners, _barycentric_affines(target, origin, tri_ids))


def correspondence_map(
    target: NDArray[np.floating],
    source: NDArray[np.floating],
    tri_ids: NDArray[np.integer],
    box: tuple[int, int, int, int],
    tri_map: NDArray[np.int32] | None = None,
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """For each pixel of ``box`` in the target geometry, the source pixel at the same mesh point.

    Each triangle's map is affine (:func:`source_affines`), so the maps are evaluated per pixel
    from six coefficients of the pixel's triangle, without barycentric weights in between.

    Args:
        target: ``(468+, 2|3)`` landmarks where the texture goes (pixels; z, when present, breaks
            overlaps: the nearer triangle wins).
        source: ``(468+, 2|3)`` landmarks of the image the texture comes from (its pixels).
        tri_ids: triangles to map (e.g. :func:`region_triangles`).
        box: ``(x0, y0, x1, y1)`` target pixel box.
        tri_map: the target's :func:`triangle_map` of ``tri_ids`` over ``box``, when already made
            (several sources mapped onto one target).

    Returns:
        ``(h, w)`` float32 source x and y (for ``cv2.remap``; -1 where not covered) and ``(h, w)``
        bool coverage.
    """
    t = np.asarray(target, dtype=np.float64)
    if tri_map is None:
        tri_map = triangle_map(t, tri_ids, box, t[:, 2] if t.shape[1] > 2 else None)
    if tri_map.size == 0:
        empty = np.full(tri_map.shape, -1.0, np.float32)
        return empty, empty.copy(), tri_map >= 0
    # Per-triangle work only for the triangles asked for (a region's few hundred of the mesh's
    # 898), looked up through their rank in ``ids``.
    ids = np.unique(np.asarray(tri_ids, np.intp))
    rank = np.full(len(triangles()) + 1, -1, np.int32)
    rank[ids + 1] = np.arange(len(ids), dtype=np.int32)
    local = rank[tri_map + 1]
    covered = local >= 0
    xy = _per_pixel(source_affines(t, source, box[:2], ids), local, np.full(2, -1.0))
    lo, hi = _source_bounds(t, source, ids)
    k = local[covered]
    xy[covered] = np.clip(xy[covered], lo[k], hi[k])
    return np.ascontiguousarray(xy[..., 0]), np.ascontiguousarray(xy[..., 1]), covered


def _source_bounds(target: NDArray[np.float64], source: NDArray[np.floating],
                   tri_ids: NDArray[np.integer] | None = None) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """``(898, 2)`` (or ``(T, 2)`` for the triangles ``tri_ids``) low and high corners of each
    source triangle's box, grown by
    :data:`EXTRAPOLATE_PX` times the triangle's source-to-target size ratio (at least 1).

    The rasterizer gives a triangle the pixels its outline touches, whose centres may lie a
    fraction of a pixel outside it; there the triangle's affine map extrapolates. That is exact
    for a well-shaped triangle, but a nearly flat one (the lid line of a closed eye, the lips of
    a closed mouth) has a huge affine gain across itself, and half a pixel off it maps anywhere
    in the source (specks of background on a closed lid). The source point is kept near the
    source triangle instead."""
    tris = triangles() if tri_ids is None else triangles()[np.asarray(tri_ids, np.intp)]
    s = np.asarray(source, dtype=np.float64)[:, :2][tris]
    d = target[:, :2][tris]
    size_s = np.linalg.norm(s.max(axis=1) - s.min(axis=1), axis=1)
    size_t = np.linalg.norm(d.max(axis=1) - d.min(axis=1), axis=1)
    grow = EXTRAPOLATE_PX * np.maximum(size_s / np.maximum(size_t, 1e-9), 1.0)
    grow = np.minimum(grow, EXTRAPOLATE_PX * MAX_EXTRAPOLATE_SCALE)[:, None]
    return (s.min(axis=1) - grow).astype(np.float32), (s.max(axis=1) + grow).astype(np.float32)


def triangle_facing(landmarks: NDArray[np.floating]) -> NDArray[np.float64]:
    """``(898,)`` cosine between each triangle's normal and the direction to the camera.

    Args:
        landmarks: ``(468+, 3)`` pixels with MediaPipe's z (smaller = nearer).

    Returns:
        Values in [-1, 1]: 1 for a triangle facing the camera, <= 0 for one turned away.
    """
    p = np.asarray(landmarks, dtype=np.float64)[:NUM_MESH_LANDMARKS, :3]
    a, b, c = (p[triangles()[:, k]] for k in range(3))
    n = np.cross(b - a, c - a)
    norm = np.linalg.norm(n, axis=1)
    # Front-facing triangles wind counter-clockwise seen from the front in canonical space (y up);
    # in pixels y points down, which flips the 2-D winding: their normal's z is negative (toward
    # the camera, MediaPipe's nearer = smaller z).
    return np.where(norm > 0, -n[:, 2] / np.maximum(norm, 1e-12), 0.0)


def all_triangles() -> NDArray[np.intp]:
    """Every mesh triangle's index."""
    return np.arange(len(triangles()), dtype=np.intp)


@functools.lru_cache(maxsize=4)
def uv_points(size: int = UV_SIZE) -> NDArray[np.float64]:
    """``(468, 2)`` the mesh's vertices in texel coordinates of an ``S``-side UV texture (the
    points that map a face's pixels onto its texels; read-only)."""
    out = uv_coords().astype(np.float64) * size - 0.5
    out.flags.writeable = False
    return out


@functools.lru_cache(maxsize=4)
def uv_raster(size: int = UV_SIZE) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """The UV layout rasterized once: ``(S, S)`` triangle index (-1 outside) and barycentrics."""
    tri_map, bary = rasterize(uv_points(size), all_triangles(), (0, 0, size, size))
    tri_map.flags.writeable = False
    bary.flags.writeable = False
    return tri_map, bary


def triangle_texels(tri_ids: NDArray[np.integer], size: int = UV_SIZE) -> NDArray[np.bool_]:
    """``(S, S)`` bool: the texels of an ``S``-side UV texture inside the triangles ``tri_ids``."""
    return np.isin(uv_raster(size)[0], tri_ids)


def unwrap(
    image: NDArray[np.uint8], landmarks: NDArray[np.floating], size: int = UV_SIZE
) -> tuple[NDArray[np.uint8], NDArray[np.float32]]:
    """Resample a face into UV space.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        landmarks: ``(468+, 3)`` the face's landmarks in that frame (pixels, MediaPipe z).
        size: UV texture side.

    Returns:
        ``(S, S, 3)`` uint8 texture (0 outside the mesh) and ``(S, S)`` float32 facing weight in
        [0, 1] (0 outside the mesh, on triangles turned away, or sampling outside the frame).
    """
    tri_map, bary = uv_raster(size)
    covered = tri_map >= 0
    p = np.asarray(landmarks, dtype=np.float64)[:, :2]
    xy = (bary[..., None] * p[triangles()[np.maximum(tri_map, 0)]]).sum(axis=2)
    map_x = np.where(covered, xy[..., 0], -1.0).astype(np.float32)
    map_y = np.where(covered, xy[..., 1], -1.0).astype(np.float32)
    tex = cv2.remap(image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    h, w = image.shape[:2]
    in_frame = (map_x >= 0) & (map_y >= 0) & (map_x <= w - 1) & (map_y <= h - 1)
    facing = np.clip(triangle_facing(landmarks), 0.0, 1.0)[np.maximum(tri_map, 0)]
    weight = np.where(covered & in_frame, facing, 0.0).astype(np.float32)
    tex[weight == 0] = 0
    return tex, weight


def uv_box(vertices: tuple[int, ...] | list[int], size: int = UV_SIZE, margin: int = 2) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` texel box around some vertices' UV points (exclusive ends)."""
    uv = uv_coords()[[v for v in vertices if v < NUM_MESH_LANDMARKS]] * size
    x0, y0 = np.floor(uv.min(axis=0)).astype(int) - margin
    x1, y1 = np.ceil(uv.max(axis=0)).astype(int) + margin
    return max(int(x0), 0), max(int(y0), 0), min(int(x1), size), min(int(y1), size)
