"""How much of an edited face shows skin that the frame hides: the limit of a turn by warping.

A warp moves the frame's pixels; it cannot show what the frame does not. A face turned three
quarters away hides part of its far cheek behind the nose. Turned back toward the camera by a
warp, the mesh points of that cheek come out from behind the nose, but the pixels the warp takes
for them are the nose's (and a pair of glasses' rim): the far cheek is painted with a ghost of
the nose. The same happens, less, under the chin on a nod and beside the nose on a frontal turn.

:func:`hidden_share` measures it from the landmarks alone: the edited face is rasterized with
depth order (MediaPipe's z: nearer is smaller) before and after; the share of the face's visible
area after the edit whose mesh triangles were hidden before (covered by nearer triangles over
more than half their area, or turned away) is what a warp must invent.

:func:`hidden_points` finds the mesh points that a nearer part of the face covers in a frame (the
far cheek's points behind the nose). Their pixels show the nose, so the warp must not move those
pixels as the cheek moves: ``plugin.editing.warp_points`` leaves them out.

``synthesis.plan`` keeps pose edits within :data:`MAX_HIDDEN_SHARE` of it
(:func:`limited_gain`). The limit is what the documented ranges of the head controls (10 degrees
of yaw, 8 of pitch) reveal on the near-frontal faces they were judged natural on: 10 degrees of
yaw reveal 0.84 and 1.09 % on the astronaut still (left, right), 0.04-1.05 % on every third frame
of liveportrait_d0.mp4 (median 0.12), and at most 0.83 % turning retalking_face_1.mp4 (turned
10-17 degrees) back; 8 of pitch at most 0.3 % on either clip. The same 10 degrees toward the
camera reveal 1.47 % (median; up to 2.2) on the PC-AVS clip turned 23-32 degrees away, and 2.1 %
on the AFLW still turned about 40 degrees, where the far cheek visibly shows the nose and the
rim of the glasses.
"""

from __future__ import annotations

from collections.abc import Callable

import cv2
import numpy as np
from numpy.typing import NDArray

from synthesis.exemplars import iod_2d
from synthesis.regions import LIPS
from synthesis.uvmap import all_triangles, triangle_map, triangles
from tracking.observation import NUM_MESH_LANDMARKS

#: The most of the edited face's visible area that may show skin the frame hides.
MAX_HIDDEN_SHARE = 0.012
#: Inter-ocular distance (pixels) the faces are rasterized at: at 240 a face compared with
#: itself reads 0.03-0.13 % (pixels on triangle edges), well below the limit.
RASTER_IOD_PX = 240.0
#: A triangle counts as hidden when less than this share of its area shows.
SHOWN_AT = 0.5
#: Search steps of :func:`limited_gain` after the gains 0 and 1 (false position: the gain kept is
#: the largest one tried within the limit).
GAIN_STEPS = 3
#: Inter-ocular distance (pixels) at which :func:`hidden_points` draws the face.
POINTS_RASTER_IOD_PX = 120.0
#: A point is hidden when the surface drawn at its place is nearer than the point by more than
#: this (inter-ocular distances of depth; margins of 0.02-0.1 find 42-51 points on frame 90 of
#: the PC-AVS clip, where 0.05 finds 47).
HIDDEN_DEPTH_IOD = 0.05
#: A triangle that covers a point under a fold has a corner within this (inter-ocular distances)
#: of the fold: the canonical mesh's longest edge is 0.32 IOD (99 % are under 0.27), so only
#: those are drawn for the depth test.
COVER_REACH_IOD = 0.35


def hidden_points(landmarks: NDArray[np.floating]) -> NDArray[np.bool_]:
    """``(468,)`` which mesh points a nearer part of the face covers (MediaPipe z, nearer smaller).

    The lips' points never count: the lips fold over the lip line (in MediaPipe's canonical mesh
    the upper lip covers the inner lip points 191 and 415 of a frontal face), and the lip line
    must keep steering a mouth edit. Every fifth frame: the PC-AVS clip (turned 23-32 degrees)
    25-70 points hidden (median 48), the AFLW still (about 40) 66; LivePortrait 0-4 and
    retalking_face_1 5-12, on the outline beside an ear.

    Args:
        landmarks: ``(468+, 3)`` pixels.
    """
    p = np.asarray(landmarks, np.float64)[:NUM_MESH_LANDMARKS, :3].copy()
    hidden = np.zeros(NUM_MESH_LANDMARKS, bool)
    iod = float(iod_2d(p))
    if not iod > 0 or not np.isfinite(p).all():
        return hidden
    p *= POINTS_RASTER_IOD_PX / iod
    p[:, :2] -= p[:, :2].min(axis=0) - 2.0
    tris = triangles()
    away = np.flatnonzero(_turned_away(_signed_areas(p, tris)))
    if away.size == 0:
        return hidden
    # The mesh is a disk: it covers itself only where it folds, so a hidden point lies under a
    # triangle turned away (the nose's far side over the far cheek). Only points there are tested.
    w, h = int(p[:, 0].max()) + 3, int(p[:, 1].max()) + 3
    xi_all = np.clip(np.round(p[:, 0]).astype(int), 0, w - 1)
    yi_all = np.clip(np.round(p[:, 1]).astype(int), 0, h - 1)
    folds = triangle_map(p, away, (0, 0, w, h)) >= 0
    folds = cv2.dilate(folds.astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    candidates = np.flatnonzero(folds[yi_all, xi_all])
    if candidates.size == 0:
        return hidden
    # what can cover them: the triangles with a corner within reach of a fold
    reach = int(np.ceil(COVER_REACH_IOD * POINTS_RASTER_IOD_PX))
    zone = cv2.dilate(folds.astype(np.uint8), np.ones((2 * reach + 1, 2 * reach + 1), np.uint8)) > 0
    cover = np.flatnonzero(zone[yi_all, xi_all][tris].any(axis=1))
    x0, y0 = np.floor(p[candidates, :2].min(axis=0)).astype(int) - 1
    x1, y1 = np.ceil(p[candidates, :2].max(axis=0)).astype(int) + 2
    tri_map = triangle_map(p, cover, (int(x0), int(y0), int(x1), int(y1)), p[:, 2])
    xi = np.clip(np.round(p[candidates, 0]).astype(int) - x0, 0, x1 - x0 - 1)
    yi = np.clip(np.round(p[candidates, 1]).astype(int) - y0, 0, y1 - y0 - 1)
    drawn = np.full(NUM_MESH_LANDMARKS, -1)
    drawn[candidates] = tri_map[yi, xi]
    rows = np.flatnonzero(drawn >= 0)
    a, b, c = (p[tris[drawn[rows]][:, k]] for k in range(3))
    e1, e2, q = b - a, c - a, p[rows] - a
    det = e1[:, 0] * e2[:, 1] - e1[:, 1] * e2[:, 0]
    ok = np.abs(det) > 1e-9
    d = np.where(ok, det, 1.0)
    u = (q[:, 0] * e2[:, 1] - q[:, 1] * e2[:, 0]) / d
    v = (e1[:, 0] * q[:, 1] - e1[:, 1] * q[:, 0]) / d
    surface = a[:, 2] + u * e1[:, 2] + v * e2[:, 2]
    hidden[rows] = ok & (surface < p[rows, 2] - HIDDEN_DEPTH_IOD * POINTS_RASTER_IOD_PX)
    hidden[list(LIPS)] = False
    return hidden


def _signed_areas(points: NDArray[np.float64], tris: NDArray[np.int32] | None = None) -> NDArray[np.float64]:
    p = points[:, :2][triangles() if tris is None else tris]
    return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))


def _turned_away(area: NDArray[np.float64]) -> NDArray[np.bool_]:
    """``(898,)`` which triangles wind against most of the face (seen from behind): most of a face
    faces the camera, so the median signed area's sign is the front's. Flat ones count as neither."""
    return np.sign(area) == -np.sign(np.median(area))


def _shown(points: NDArray[np.float64], box: tuple[int, int, int, int]) -> NDArray[np.float64]:
    """``(898,)`` pixels of each triangle that show (nearer triangles drawn over farther ones)."""
    tri_map = triangle_map(points, all_triangles(), box, points[:, 2])
    return np.bincount(tri_map[tri_map >= 0], minlength=len(triangles())).astype(np.float64)


def hidden_share(before: NDArray[np.floating], after: NDArray[np.floating]) -> float:
    """Share of the face's visible area in ``after`` whose triangles were hidden in ``before``.

    Args:
        before: ``(468+, 3)`` the frame's landmarks (pixels, MediaPipe z).
        after: ``(468+, 3)`` the edited landmarks.

    Returns:
        A fraction in [0, 1] (0 when ``after`` shows nothing).
    """
    b = np.asarray(before, np.float64)[:NUM_MESH_LANDMARKS, :3].copy()
    a = np.asarray(after, np.float64)[:NUM_MESH_LANDMARKS, :3].copy()
    iod = float(iod_2d(b))
    if not iod > 0:
        return 0.0
    scale = RASTER_IOD_PX / iod
    b *= scale
    a *= scale
    low = np.minimum(b[:, :2].min(axis=0), a[:, :2].min(axis=0)) - 2.0
    b[:, :2] -= low
    a[:, :2] -= low
    box = (0, 0, int(max(b[:, 0].max(), a[:, 0].max())) + 3, int(max(b[:, 1].max(), a[:, 1].max())) + 3)
    shown_after = _shown(a, box)
    total = float(shown_after.sum())
    if total <= 0:
        return 0.0
    area = _signed_areas(b)
    full = np.where(_turned_away(area), 0.0, np.abs(area))
    shown = np.where(full > 0, _shown(b, box) / np.maximum(full, 1e-9), 0.0)
    return float(shown_after[shown < SHOWN_AT].sum()) / total


def limited_gain(
    before: NDArray[np.floating],
    edited: Callable[[float], NDArray[np.floating]],
    limit: float = MAX_HIDDEN_SHARE,
) -> float:
    """The largest gain in [0, 1] on an edit whose result shows at most ``limit`` hidden skin.

    Args:
        before: ``(468+, 3)`` the frame's landmarks.
        edited: gain -> ``(468+, 3)`` the landmarks with the edit scaled by that gain.
        limit: the share the scaled part may add (:func:`hidden_share`) to what the edit at
            gain 0 already shows (an expression or a move kept whole alongside a turn: the
            expression fixes of ``bench/restore.py``'s LivePortrait teeth and gaze damage show
            1.3-2.3 % alone; while the share allowed was the larger of the two, the turns of
            about 1 degree beside them were mostly cut: 0.97 of the teeth range's 1.17 degrees
            of divergence were left).

    Returns:
        1 when the whole edit is within the limit, else the largest gain tried that is (the
        share grows with the turn).
    """
    if not limit > 0:
        return 1.0
    full = hidden_share(before, edited(1.0))
    if full <= limit:
        return 1.0
    start = hidden_share(before, edited(0.0))
    allowed = start + limit
    if full <= allowed:
        return 1.0
    lo, hi, at_lo, at_hi = 0.0, 1.0, start, full
    for _ in range(GAIN_STEPS):  # false position (the share grows about linearly with the turn)
        g = lo + (hi - lo) * (allowed - at_lo) / max(at_hi - at_lo, 1e-12)
        g = min(max(g, lo + 0.05 * (hi - lo)), hi - 0.05 * (hi - lo))
        share = hidden_share(before, edited(g))
        if share <= allowed:
            lo, at_lo = g, share
        else:
            hi, at_hi = g, share
    return lo
