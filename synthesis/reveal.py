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

import numpy as np
from numpy.typing import NDArray

from synthesis.exemplars import iod_2d
from synthesis.uvmap import triangle_map, triangles
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


def _signed_areas(points: NDArray[np.float64]) -> NDArray[np.float64]:
    p = points[:, :2][triangles()]
    return 0.5 * ((p[:, 1, 0] - p[:, 0, 0]) * (p[:, 2, 1] - p[:, 0, 1])
                  - (p[:, 2, 0] - p[:, 0, 0]) * (p[:, 1, 1] - p[:, 0, 1]))


def _shown(points: NDArray[np.float64], box: tuple[int, int, int, int]) -> NDArray[np.float64]:
    """``(898,)`` pixels of each triangle that show (nearer triangles drawn over farther ones)."""
    tri_map = triangle_map(points, np.arange(len(triangles())), box, points[:, 2])
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
    facing = np.sign(area) == np.sign(np.median(area))  # most of a face faces the camera
    full = np.where(facing, np.abs(area), 0.0)
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
        limit: the share allowed (:func:`hidden_share`); what the edit at gain 0 already
            shows is always allowed.

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
    allowed = max(limit, start)
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
