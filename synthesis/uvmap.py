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


def region_triangles(vertices: tuple[int, ...] | list[int]) -> NDArray[np.intp]:
    """Indices of the mesh triangles whose three vertices all lie in ``vertices``."""
    inside = np.zeros(NUM_MESH_LANDMARKS, bool)
    inside[[v for v in vertices if v < NUM_MESH_LANDMARKS]] = True
    return np.flatnonzero(inside[triangles()].all(axis=1))


def rasterize(
    points: NDArray[np.floating],
    tri_ids: NDArray[np.integer],
    box: tuple[int, int, int, int],
    depth: NDArray[np.floating] | None = None,
) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """Which triangle covers each pixel centre of ``box``, and where in it.

    Triangles are filled with OpenCV (sub-pixel vertices, 1/16 pixel), far to near when ``depth``
    is given (painter's order by mean depth), so a pixel on a shared edge or just outside a
    triangle's exact area may get slightly negative barycentric weights: they extrapolate that
    triangle's affine map, which is exact for any affine motion.

    Args:
        points: ``(468+, 2)`` vertex positions in pixels.
        tri_ids: ``(T,)`` indices into :func:`triangles` to draw.
        box: ``(x0, y0, x1, y1)`` pixel box, exclusive ends.
        depth: ``(468+,)`` per-vertex depth (smaller = nearer); where triangles overlap, the
            nearer (by mean depth) wins. None: the later triangle in ``tri_ids`` wins.

    Returns:
        ``(h, w)`` int32 triangle index (into :func:`triangles`; -1 where none) and ``(h, w, 3)``
        float32 barycentric weights of its three vertices.
    """
    x0, y0, x1, y1 = box
    h, w = max(y1 - y0, 0), max(x1 - x0, 0)
    tri_map = np.full((h, w), -1, np.int32)
    bary = np.zeros((h, w, 3), np.float32)
    ids = np.asarray(tri_ids, dtype=np.intp)
    if h == 0 or w == 0 or ids.size == 0:
        return tri_map, bary
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
    covered = tri_map >= 0
    if not covered.any():
        return tri_map, bary
    ys, xs = np.nonzero(covered)
    a, b, c = (p[tris[tri_map[ys, xs], j]] - np.array([x0, y0]) for j in range(3))
    det = (b[:, 1] - c[:, 1]) * (a[:, 0] - c[:, 0]) + (c[:, 0] - b[:, 0]) * (a[:, 1] - c[:, 1])
    ok = np.abs(det) > 1e-9
    det = np.where(ok, det, 1.0)
    l0 = ((b[:, 1] - c[:, 1]) * (xs - c[:, 0]) + (c[:, 0] - b[:, 0]) * (ys - c[:, 1])) / det
    l1 = ((c[:, 1] - a[:, 1]) * (xs - c[:, 0]) + (a[:, 0] - c[:, 0]) * (ys - c[:, 1])) / det
    l0, l1 = np.where(ok, l0, 1.0 / 3), np.where(ok, l1, 1.0 / 3)
    bary[ys, xs] = np.stack([l0, l1, 1.0 - l0 - l1], -1)
    return tri_map, bary


def correspondence_map(
    target: NDArray[np.floating],
    source: NDArray[np.floating],
    tri_ids: NDArray[np.integer],
    box: tuple[int, int, int, int],
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """For each pixel of ``box`` in the target geometry, the source pixel at the same mesh point.

    Args:
        target: ``(468+, 2|3)`` landmarks where the texture goes (pixels; z, when present, breaks
            overlaps: the nearer triangle wins).
        source: ``(468+, 2|3)`` landmarks of the image the texture comes from (its pixels).
        tri_ids: triangles to map (e.g. :func:`region_triangles`).
        box: ``(x0, y0, x1, y1)`` target pixel box.

    Returns:
        ``(h, w)`` float32 source x and y (for ``cv2.remap``) and ``(h, w)`` bool coverage.
    """
    t = np.asarray(target, dtype=np.float64)
    depth = t[:, 2] if t.shape[1] > 2 else None
    tri_map, bary = rasterize(t, tri_ids, box, depth)
    covered = tri_map >= 0
    s = np.asarray(source, dtype=np.float64)[:, :2]
    corners = s[triangles()[np.maximum(tri_map, 0)]]  # (h, w, 3, 2)
    xy = (bary[..., None] * corners).sum(axis=2)
    map_x = np.where(covered, xy[..., 0], -1.0).astype(np.float32)
    map_y = np.where(covered, xy[..., 1], -1.0).astype(np.float32)
    return map_x, map_y, covered


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


@functools.lru_cache(maxsize=4)
def uv_raster(size: int = UV_SIZE) -> tuple[NDArray[np.int32], NDArray[np.float32]]:
    """The UV layout rasterized once: ``(S, S)`` triangle index (-1 outside) and barycentrics."""
    uv = uv_coords().astype(np.float64) * size - 0.5
    tri_map, bary = rasterize(uv, np.arange(len(triangles())), (0, 0, size, size))
    tri_map.flags.writeable = False
    bary.flags.writeable = False
    return tri_map, bary


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
