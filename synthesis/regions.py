"""Landmark regions of the face and smooth falloff weights over the canonical mesh.

Index sets are derived at import from MediaPipe's own connection lists
(``mediapipe.tasks.python.vision.FaceLandmarksConnections``), so they follow the landmark
topology MediaPipe ships rather than hand-copied numbers; a few sets (the rigid set, the jaw)
are built from those plus canonical-space geometry.

Left and right are the **subject's** left and right throughout, as in MediaPipe's names:
``FACE_LANDMARKS_LEFT_EYE`` (landmarks 263, 362, ...) is the subject's left eye, which is on the
image *right* of a frontal face and at canonical ``x > 0`` (checked on the astronaut still: 263
lies at x = 255 px, 33 at x = 195 px). "Upper" and "lower" are canonical ``y`` (up).

Canonical space is that of :mod:`tracking.geometry`: centimetres, x toward the subject's left, y up,
z toward the viewer. The canonical mesh has no iris vertices; :func:`canonical_points` adds the ten
iris points (468-477) at the centre of each eye contour, with the ring radius of a typical iris.

The last section holds the eye geometry every edit obeys (:mod:`synthesis.deltas` applies it):
the lid map that closes or opens an eye in the target's own geometry (:func:`lid_offsets`),
iris points kept inside the eye opening (:func:`keep_iris_inside`), and upper lids never below
the lower lid line (:func:`clamp_lids`).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import numpy as np
from mediapipe.tasks.python.vision import FaceLandmarksConnections as _MP
from numpy.typing import NDArray
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra

from tracking.geometry import canonical_mesh
from tracking.observation import NUM_LANDMARKS, NUM_MESH_LANDMARKS

IndexSet = tuple[int, ...]

#: Iris ring radius as a fraction of inter-ocular distance (the astronaut: 4.3 px at 51 px).
IRIS_RADIUS_IOD = 0.085
#: Iris landmark order relative to each centre: +x (subject's left), +y (up), -x, -y.
_IRIS_RING_DIRECTIONS = ((1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0))


def _edges(connections: object) -> list[tuple[int, int]]:
    return [(int(c.start), int(c.end)) for c in connections]  # type: ignore[attr-defined]


def _points(connections: object) -> IndexSet:
    return tuple(sorted({i for edge in _edges(connections) for i in edge}))


def _walk(adjacency: dict[int, list[int]], start: int, first: int, stop: int) -> list[int]:
    """Follow a simple chain from ``start`` through ``first`` until ``stop`` (inclusive)."""
    path = [start, first]
    while path[-1] != stop:
        nxt = [n for n in adjacency[path[-1]] if n != path[-2]]
        if len(nxt) != 1:
            raise RuntimeError(f"connection set is not a simple chain at landmark {path[-1]}")
        path.append(nxt[0])
    return path


def _split_loop(edges: list[tuple[int, int]], vertices: NDArray[np.float32]) -> tuple[IndexSet, IndexSet]:
    """Split a closed contour at its extreme-x points into (upper, lower) chains, each ordered
    from the corner at lower canonical x to the one at higher x, corners included."""
    adjacency: dict[int, list[int]] = {}
    for a, b in edges:
        adjacency.setdefault(a, []).append(b)
        adjacency.setdefault(b, []).append(a)
    ids = list(adjacency)
    lo = min(ids, key=lambda i: vertices[i, 0])
    hi = max(ids, key=lambda i: vertices[i, 0])
    chains = [_walk(adjacency, lo, n, hi) for n in adjacency[lo]]
    if len(chains) != 2:
        raise RuntimeError("contour corner does not have two neighbours")
    chains.sort(key=lambda c: -float(np.mean(vertices[c, 1])))
    return tuple(chains[0]), tuple(chains[1])


def _components(edges: list[tuple[int, int]]) -> list[list[tuple[int, int]]]:
    """Group edges into connected components."""
    groups: list[tuple[set[int], list[tuple[int, int]]]] = []
    for a, b in edges:
        hit = [g for g in groups if a in g[0] or b in g[0]]
        merged_nodes, merged_edges = {a, b}, [(a, b)]
        for g in hit:
            merged_nodes |= g[0]
            merged_edges += g[1]
            groups.remove(g)
        groups.append((merged_nodes, merged_edges))
    return [g[1] for g in groups]


_V = canonical_mesh().vertices

LEFT_EYE_UPPER, LEFT_EYE_LOWER = _split_loop(_edges(_MP.FACE_LANDMARKS_LEFT_EYE), _V)
RIGHT_EYE_UPPER, RIGHT_EYE_LOWER = _split_loop(_edges(_MP.FACE_LANDMARKS_RIGHT_EYE), _V)
#: Subject's left eye contour (MediaPipe LEFT_EYE; image right of a frontal face), 16 points.
LEFT_EYE: IndexSet = _points(_MP.FACE_LANDMARKS_LEFT_EYE)
RIGHT_EYE: IndexSet = _points(_MP.FACE_LANDMARKS_RIGHT_EYE)
#: Iris rings (4 points each) and centres; the centre is not in MediaPipe's connections and
#: precedes its ring (468 right, 473 left).
LEFT_IRIS_RING: IndexSet = _points(_MP.FACE_LANDMARKS_LEFT_IRIS)
RIGHT_IRIS_RING: IndexSet = _points(_MP.FACE_LANDMARKS_RIGHT_IRIS)
LEFT_IRIS: IndexSet = (min(LEFT_IRIS_RING) - 1, *LEFT_IRIS_RING)
RIGHT_IRIS: IndexSet = (min(RIGHT_IRIS_RING) - 1, *RIGHT_IRIS_RING)

LEFT_BROW_UPPER, LEFT_BROW_LOWER = sorted(
    (tuple(sorted({i for e in c for i in e})) for c in _components(_edges(_MP.FACE_LANDMARKS_LEFT_EYEBROW))),
    key=lambda c: -float(np.mean(_V[list(c), 1])),
)
RIGHT_BROW_UPPER, RIGHT_BROW_LOWER = sorted(
    (tuple(sorted({i for e in c for i in e})) for c in _components(_edges(_MP.FACE_LANDMARKS_RIGHT_EYEBROW))),
    key=lambda c: -float(np.mean(_V[list(c), 1])),
)
LEFT_BROW: IndexSet = _points(_MP.FACE_LANDMARKS_LEFT_EYEBROW)
RIGHT_BROW: IndexSet = _points(_MP.FACE_LANDMARKS_RIGHT_EYEBROW)

_lip_loops = _components(_edges(_MP.FACE_LANDMARKS_LIPS))
_lip_loops.sort(key=lambda c: -np.ptp(_V[[i for e in c for i in e], 0]))  # outer (wider) first
LIPS_OUTER_UPPER, LIPS_OUTER_LOWER = _split_loop(_lip_loops[0], _V)
LIPS_INNER_UPPER, LIPS_INNER_LOWER = _split_loop(_lip_loops[1], _V)
LIPS: IndexSet = _points(_MP.FACE_LANDMARKS_LIPS)
#: Mouth corners as (subject's right, subject's left): outer 61/291, inner 78/308.
MOUTH_CORNERS_OUTER: tuple[int, int] = (LIPS_OUTER_UPPER[0], LIPS_OUTER_UPPER[-1])
MOUTH_CORNERS_INNER: tuple[int, int] = (LIPS_INNER_UPPER[0], LIPS_INNER_UPPER[-1])

NOSE: IndexSet = _points(_MP.FACE_LANDMARKS_NOSE)
FACE_OVAL: IndexSet = _points(_MP.FACE_LANDMARKS_FACE_OVAL)
#: Face-oval points below the mouth corners (the jaw line and chin).
JAW: IndexSet = tuple(i for i in FACE_OVAL if _V[i, 1] < _V[MOUTH_CORNERS_OUTER[0], 1])
#: Chin: jaw points no farther from the midline than the mouth corners.
CHIN: IndexSet = tuple(i for i in JAW if abs(_V[i, 0]) < abs(_V[MOUTH_CORNERS_OUTER[0], 0]))

#: Per eye (subject's side): (upper lid chain, lower lid chain, iris), chains corner to corner.
EYES: dict[str, tuple[IndexSet, IndexSet, IndexSet]] = {
    "left": (LEFT_EYE_UPPER, LEFT_EYE_LOWER, LEFT_IRIS),
    "right": (RIGHT_EYE_UPPER, RIGHT_EYE_LOWER, RIGHT_IRIS),
}

#: Eye-lid pairs (upper, lower) of interior contour points at the same place along the lids, per
#: eye (for gap measures: they face each other only roughly).
LEFT_LID_PAIRS: tuple[tuple[int, int], ...] = tuple(zip(LEFT_EYE_UPPER[1:-1], LEFT_EYE_LOWER[1:-1]))
RIGHT_LID_PAIRS: tuple[tuple[int, int], ...] = tuple(zip(RIGHT_EYE_UPPER[1:-1], RIGHT_EYE_LOWER[1:-1]))
LID_PAIRS = LEFT_LID_PAIRS + RIGHT_LID_PAIRS
EYE_PAIRS: dict[str, tuple[tuple[int, int], ...]] = {"left": LEFT_LID_PAIRS, "right": RIGHT_LID_PAIRS}

#: Head-rigid landmarks and their pose-fit weights: MediaPipe's Procrustes basis without the
#: outer eye corners (33, 263 move in blinks, FACTS.md) and with its cheek (205, 425), jaw (136,
#: 365) and mouth-adjacent points down-weighted, plus the nose bridge, the under-eye ridge,
#: forehead and temples. Points on the expressive mouth, lids and brows are excluded.
_BASIS_SCALE = {33: 0.0, 263: 0.0, 205: 0.2, 425: 0.2, 136: 0.2, 365: 0.2}
_EXTRA_RIGID = {
    # nose bridge and dorsum
    168: 0.06, 6: 0.04, 197: 0.05, 195: 0.05, 5: 0.03,
    # sides of the nose and under-eye ridge (steady across smiles and blinks on the fixtures)
    122: 0.03, 351: 0.03, 188: 0.03, 412: 0.03, 174: 0.03, 399: 0.03, 236: 0.03, 456: 0.03,
    100: 0.03, 329: 0.03, 47: 0.03, 277: 0.03,
    # forehead and temples (wide baseline for rotation; noisier, so lighter)
    151: 0.015, 9: 0.015, 108: 0.01, 337: 0.01, 109: 0.01, 338: 0.01,
    139: 0.01, 368: 0.01, 162: 0.005, 389: 0.005,
}  # fmt: skip


@functools.lru_cache(maxsize=1)
def rigid_weights() -> NDArray[np.float64]:
    """``(478,)`` float64 non-negative pose-fit weights (0 for non-rigid and iris points), sum 1."""
    mesh = canonical_mesh()
    w = np.zeros(NUM_LANDMARKS)
    for i, wt in zip(mesh.procrustes_indices.tolist(), mesh.procrustes_weights.tolist()):
        w[i] = wt * _BASIS_SCALE.get(i, 1.0)
    for i, wt in _EXTRA_RIGID.items():
        w[i] = max(w[i], wt)
    w /= w.sum()
    w.flags.writeable = False
    return w


def inter_ocular(shape: NDArray[np.floating]) -> float:
    """Distance between the eye centres (mean of each eye's two corners: 33/133 and 362/263).

    Args:
        shape: ``(478, 3)`` or ``(468, 3)`` points in any frame (canonical cm, pixels, ...).

    Returns:
        The distance in the units of ``shape`` (3-D, so it does not shrink with yaw).
    """
    s = np.asarray(shape, dtype=np.float64)
    return float(np.linalg.norm((s[33] + s[133]) / 2.0 - (s[362] + s[263]) / 2.0))


@functools.lru_cache(maxsize=1)
def canonical_points() -> NDArray[np.float64]:
    """``(478, 3)`` float64 canonical cm: the 468 mesh vertices plus synthetic iris points at the
    mean of each eye contour, ring at :data:`IRIS_RADIUS_IOD` in the canonical x-y plane."""
    v = canonical_mesh().vertices.astype(np.float64)
    out = np.zeros((NUM_LANDMARKS, 3))
    out[:NUM_MESH_LANDMARKS] = v
    radius = IRIS_RADIUS_IOD * inter_ocular(v)
    for contour, iris in ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS)):
        centre = v[list(contour)].mean(axis=0)
        out[iris[0]] = centre
        for k, (dx, dy) in zip(iris[1:], _IRIS_RING_DIRECTIONS):
            out[k] = centre + radius * np.array([dx, dy, 0.0])
    out.flags.writeable = False
    return out


def mesh_graph() -> csr_matrix:
    """``(478, 478)`` sparse symmetric edge lengths (canonical cm) of the open face mesh: MediaPipe's
    tessellation (eyes and mouth open) plus each iris point joined to its eye's contour."""
    return _graph()


@functools.lru_cache(maxsize=1)
def _graph() -> csr_matrix:
    """Edge-length graph over the 478 points: MediaPipe's tessellation (eyes and mouth open, so
    a distance from the lower lip to the upper lip goes round the mouth corner), plus each iris
    point joined to its eye's contour."""
    pts = canonical_points()
    pairs = list(_edges(_MP.FACE_LANDMARKS_TESSELATION))
    for contour, iris in ((RIGHT_EYE, RIGHT_IRIS), (LEFT_EYE, LEFT_IRIS)):
        for i in iris:
            pairs += [(i, c) for c in contour] + [(i, j) for j in iris if j != i]
    a = np.array(sorted({(min(e), max(e)) for e in pairs}))  # each undirected edge once
    length = np.linalg.norm(pts[a[:, 0]] - pts[a[:, 1]], axis=1)
    rows = np.concatenate([a[:, 0], a[:, 1]])
    cols = np.concatenate([a[:, 1], a[:, 0]])
    return coo_matrix((np.concatenate([length, length]), (rows, cols)), shape=(NUM_LANDMARKS, NUM_LANDMARKS)).tocsr()


def distance_matrix(seeds: IndexSet | list[int], metric: str = "geodesic") -> NDArray[np.float64]:
    """Distance from each seed to every point over the canonical face, in inter-ocular units.

    Args:
        seeds: ``K`` landmark ids.
        metric: ``"geodesic"`` (shortest path over the tessellation, which does not cross the eye
            or mouth openings) or ``"euclidean"`` (straight line in canonical space).

    Returns:
        ``(K, 478)`` float64 distances divided by the canonical inter-ocular distance.
    """
    ids = np.asarray(list(seeds), dtype=np.int64)
    pts = canonical_points()
    iod = inter_ocular(pts)
    if metric == "geodesic":
        d = dijkstra(_graph(), directed=False, indices=ids)
    elif metric == "euclidean":
        d = np.linalg.norm(pts[None, ids, :] - pts[:, None, :], axis=2).T
    else:
        raise ValueError(f"metric must be 'geodesic' or 'euclidean', got {metric!r}")
    return np.asarray(d, dtype=np.float64).reshape(len(ids), NUM_LANDMARKS) / iod


def distances(seeds: IndexSet | list[int], metric: str = "geodesic") -> NDArray[np.float64]:
    """``(478,)`` distance of every point to the nearest seed (see :func:`distance_matrix`)."""
    return distance_matrix(seeds, metric).min(axis=0)


def falloff(
    seeds: IndexSet | list[int], radius: float, metric: str = "geodesic", inner: float = 0.0
) -> NDArray[np.float64]:
    """Smooth weights: 1 within ``inner`` of the seeds, a raised cosine down to 0 at ``radius``.

    Args:
        seeds: landmark ids at weight 1.
        radius: distance (inter-ocular units, > ``inner``) at and beyond which the weight is 0.
        metric: see :func:`distances`.
        inner: distance (inter-ocular units) up to which the weight stays 1.

    Returns:
        ``(478,)`` float64 in [0, 1]; exactly 0 beyond ``radius``.
    """
    if not radius > inner >= 0:
        raise ValueError(f"need radius > inner >= 0, got radius={radius}, inner={inner}")
    d = distances(seeds, metric)
    u = np.clip((d - inner) / (radius - inner), 0.0, 1.0)
    return 0.5 * (1.0 + np.cos(np.pi * u))


#: Named regions (subject's left/right), for masks and reports.
REGIONS: dict[str, IndexSet] = {
    "left_eye": LEFT_EYE,
    "right_eye": RIGHT_EYE,
    "left_eye_upper_lid": LEFT_EYE_UPPER,
    "left_eye_lower_lid": LEFT_EYE_LOWER,
    "right_eye_upper_lid": RIGHT_EYE_UPPER,
    "right_eye_lower_lid": RIGHT_EYE_LOWER,
    "left_iris": LEFT_IRIS,
    "right_iris": RIGHT_IRIS,
    "left_brow": LEFT_BROW,
    "right_brow": RIGHT_BROW,
    "lips": LIPS,
    "lips_outer_upper": LIPS_OUTER_UPPER,
    "lips_outer_lower": LIPS_OUTER_LOWER,
    "lips_inner_upper": LIPS_INNER_UPPER,
    "lips_inner_lower": LIPS_INNER_LOWER,
    "mouth_corners": MOUTH_CORNERS_OUTER + MOUTH_CORNERS_INNER,
    "nose": NOSE,
    "face_oval": FACE_OVAL,
    "jaw": JAW,
    "chin": CHIN,
    "rigid": tuple(int(i) for i in np.flatnonzero(rigid_weights())),
}


# --- eye geometry: rules every edit of the eyes obeys (see synthesis.deltas) -----------------

#: How close (fraction of the eye's height) a moved iris point may come to the lid lines.
IRIS_MARGIN = 0.15


def lid_gaps(
    shape: NDArray[np.floating], pairs: NDArray[np.integer] | Sequence[tuple[int, int]]
) -> NDArray[np.float64]:
    """Canonical vertical gaps ``y[upper] - y[lower]`` of ``(P, 2)`` pairs on a ``(478, 3)`` shape."""
    p = np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    s = np.asarray(shape, dtype=np.float64)
    return s[p[:, 0], 1] - s[p[:, 1], 1]


@functools.lru_cache(maxsize=2)
def canonical_gap(side: str) -> float:
    """Mean lid gap of one eye of the canonical face (canonical y, inter-ocular units)."""
    pts = canonical_points()
    return float(np.mean(lid_gaps(pts, EYE_PAIRS[side]))) / inter_ocular(pts)


def _eye_line(shape: NDArray[np.float64], chain: tuple[int, ...], x: NDArray[np.float64]) -> NDArray[np.float64]:
    """``(K, 2)`` height and depth of a lid chain (a polyline over canonical x) at ``x``."""
    pts = shape[list(chain)]
    pts = pts[np.argsort(pts[:, 0])]
    return np.stack([np.interp(x, pts[:, 0], pts[:, 1]), np.interp(x, pts[:, 0], pts[:, 2])], axis=1)


def lid_offsets(
    shape: NDArray[np.float64], side: str, lower_up: float, upper_down: float
) -> tuple[list[int], NDArray[np.float64]]:
    """Ids of one eye's lid-interior and iris points and their ``(K, 3)`` offsets under the lid map.

    Per column x, with the lower lid line ``lo`` and the gap ``g`` to the upper one (height and
    depth) and the closure ``c = lower_up + upper_down`` (at most 1), a point ``p`` in the opening
    (or on a lid) goes to ``(1 - c) p + c lo + lower_up g``: the lower lid rises by ``lower_up``,
    the upper lid drops by ``upper_down``, points between keep their order, and at full closure
    everything lands exactly on the lower lid's polyline (in depth too, so also in the image).
    A point beyond a lid line (an iris point hidden under it) moves with that lid.
    """
    upper, lower, iris = EYES[side]
    ids = [*upper[1:-1], *lower[1:-1], *iris]
    total = lower_up + upper_down
    if total > 1.0:
        lower_up, upper_down = lower_up / total, upper_down / total
        total = 1.0
    x = shape[ids, 0]
    lo = _eye_line(shape, lower, x)
    gap = _eye_line(shape, upper, x) - lo  # (K, 2): height and depth gaps
    p = shape[ids, 1:]
    t = (p[:, 0] - lo[:, 0]) / np.where(gap[:, 0] > 0, gap[:, 0], 1.0)
    on_upper = np.isin(ids, upper)
    on_lower = np.isin(ids, lower)
    new = (1.0 - total) * p + total * lo + lower_up * gap
    above = (t > 1.0) & ~on_lower
    below = (t < 0.0) & ~on_upper
    new[above] = p[above] - upper_down * gap[above]
    new[below] = p[below] + lower_up * gap[below]
    out = np.zeros((len(ids), 3))
    out[:, 1:] = np.where((gap[:, 0] > 0)[:, None], new - p, 0.0)
    return ids, out


def distance_inside(polygon: NDArray[np.float64], points: NDArray[np.float64]) -> NDArray[np.float64]:
    """Signed distance of ``(K, 2)`` points to a closed ``(M, 2)`` polygon: > 0 inside.

    Args:
        polygon: ``(M, 2)`` vertices in order (closing edge implied).
        points: ``(K, 2)`` points in the same plane.

    Returns:
        ``(K,)`` float64 distances to the nearest edge, negative outside.
    """
    a, b = polygon, np.roll(polygon, -1, axis=0)
    ab = b - a
    rel = points[:, None, :] - a[None]
    u = np.clip((rel * ab).sum(-1) / np.maximum((ab * ab).sum(-1), 1e-18), 0.0, 1.0)
    dist = np.linalg.norm(rel - u[..., None] * ab, axis=-1).min(axis=1)
    crosses = ((a[:, 1] > points[:, None, 1]) != (b[:, 1] > points[:, None, 1])) & (
        points[:, None, 0]
        < a[:, 0] + (points[:, None, 1] - a[:, 1]) * ab[:, 0] / np.where(ab[:, 1] == 0, 1e-18, ab[:, 1])
    )
    inside = crosses.sum(axis=1) % 2 == 1
    return np.where(inside, dist, -dist)


def keep_iris_inside(shape: NDArray[np.float64], edited: NDArray[np.float64]) -> NDArray[np.float64]:
    """Shorten iris point moves so each stays inside its eye opening (canonical x-y), at least
    :data:`IRIS_MARGIN` of the lid gap from the lids, or no closer than it was; a point that
    starts outside the opening (hidden under a lid) does not move. Returns a corrected copy."""
    out = edited.copy()
    for upper, lower, iris in EYES.values():
        ids = list(iris)
        if np.array_equal(shape[ids], edited[ids]):
            continue
        poly = edited[[*upper, *lower[::-1][1:-1]], :2]
        margin = IRIS_MARGIN * max(float(np.ptp(poly[:, 1])), 1e-9)
        start = distance_inside(poly, shape[ids, :2])
        need = np.minimum(start, margin)
        lo, hi = np.zeros(len(ids)), np.ones(len(ids))
        ok = distance_inside(poly, edited[ids, :2]) >= need
        hi[ok] = lo[ok] = 1.0
        for _ in range(12):  # bisection on the fraction of the move kept
            mid = (lo + hi) / 2.0
            pts = shape[ids, :2] + mid[:, None] * (edited[ids, :2] - shape[ids, :2])
            good = distance_inside(poly, pts) >= need
            lo, hi = np.where(good, mid, lo), np.where(good, hi, mid)
        keep = np.where(start > 0, lo, 0.0)
        out[ids] = shape[ids] + keep[:, None] * (edited[ids] - shape[ids])
    return out


def lid_clearance(shape: NDArray[np.floating], side: str) -> NDArray[np.float64]:
    """Height of each upper-lid interior point of one eye above the lower lid line at its x.

    Args:
        shape: ``(478, 3)`` canonical points.
        side: ``"left"`` or ``"right"`` (the subject's).

    Returns:
        ``(7,)`` float64 canonical heights (0 for a closed eye, < 0 where the lids cross).
    """
    s = np.asarray(shape, dtype=np.float64)
    upper, lower, _ = EYES[side]
    ids = list(upper[1:-1])
    return s[ids, 1] - _eye_line(s, lower, s[ids, 0])[:, 0]


def clamp_lids(before: NDArray[np.float64], after: NDArray[np.float64]) -> NDArray[np.float64]:
    """Keep every upper lid point at or above the lower lid line (canonical y) after an edit.

    A point already below it before the edit (landmark noise) may stay as low, not lower. Only
    upper lid points move, straight up in canonical y.

    Args:
        before: ``(478, 3)`` canonical shape before the edit.
        after: ``(478, 3)`` canonical shape after it.

    Returns:
        ``(478, 3)`` float64 corrected copy of ``after``.
    """
    out = np.array(after, dtype=np.float64)
    for side, (upper, _, _) in EYES.items():
        ids = list(upper[1:-1])
        floor = np.minimum(lid_clearance(before, side), 0.0)
        clear = lid_clearance(out, side)
        low = clear < floor
        out[np.asarray(ids)[low], 1] += floor[low] - clear[low]
    return out
