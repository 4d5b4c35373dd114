"""How far a face's own texture strays from the rest of its track: a garbled swap frame.

A face-swap model that breaks down (a profile, an unusual pose) can leave a face the landmarker
still finds, and fits a plausible mesh to, while its pixels melt: features smeared, doubled or
moved across the skin. Landmarks barely show it (the landmarker's mesh is regularized, and its
smoother follows a fast change), but the face's texture does. Each frame's face is unwrapped into
the canonical mesh's UV space (:func:`synthesis.uvmap.unwrap`), so the same skin lands on the
same texels whatever the pose and expression; its luminance is high-passed (light and colour
drift cancel) and compared, by normalized cross-correlation over the texels outside the eyes and
the mouth (which change with expression), with the median texture of its track's segment.

On the fixtures' clips a face reads 0.95-0.99 (median), 0.87-0.98 on its worst 5% of frames and
0.57 on its single worst (ghost_2person's second face), so no fixed level separates clean from
garbled. Swap repair compares the swap's reading with the plate's on the same frame
(``synthesis.restore.garbled_rows``), so what both share (a turn, a hand, the light) cancels:
there, a face turned 8-9 degrees the wrong way reads 0.08-0.13 below the plate's, a face melted
by a smooth random displacement of 0.1-0.15 inter-ocular distances 0.35-0.9 below.
"""

from __future__ import annotations

import functools
import warnings

import cv2
import numpy as np
from numpy.typing import NDArray

from synthesis.texregions import REGIONS
from synthesis.uvmap import triangle_texels, unwrap, uv_raster

#: UV texture side for the comparison (texels).
DETAIL_SIZE = 64
#: The high-pass: luminance minus its Gaussian blur of this sigma (texels).
HIGHPASS_SIGMA = 3.0
#: Texels of triangles facing the camera less than this are left out.
MIN_FACING = 0.3
#: A frame is compared only where at least this share of the stable texels is seen.
MIN_SEEN = 0.25
#: The median texture is taken over at most this many rows of a segment, evenly spread.
MEDIAN_ROWS = 300
#: Stored details are int8: high-passed luminance times this.
DETAIL_SCALE = 2.0


@functools.lru_cache(maxsize=4)
def stable_texels(size: int = DETAIL_SIZE) -> NDArray[np.bool_]:
    """``(S, S)`` the mesh's texels outside the eyes' and the mouth's cores (read-only)."""
    moving = np.concatenate([REGIONS[r].core_triangles for r in ("eye_left", "eye_right", "mouth")])
    out = (uv_raster(size)[0] >= 0) & ~triangle_texels(moving, size)
    out.flags.writeable = False
    return out


def face_detail(image: NDArray[np.uint8], landmarks: NDArray[np.floating],
                size: int = DETAIL_SIZE) -> tuple[NDArray[np.int8], NDArray[np.bool_]]:
    """One face's high-passed luminance in UV space.

    Args:
        image: ``(H, W, 3)`` uint8 RGB frame.
        landmarks: ``(468+, 3)`` the face's landmarks in it (pixels).
        size: UV side.

    Returns:
        ``(S, S)`` int8 detail (luminance minus its blur, times ``DETAIL_SCALE``) and ``(S, S)``
        bool: the stable texels seen here (facing at least ``MIN_FACING``, inside the frame).
    """
    tex, weight = unwrap(image, landmarks, size)
    luma = cv2.cvtColor(tex, cv2.COLOR_RGB2GRAY).astype(np.float32)
    seen = stable_texels(size) & (weight >= MIN_FACING)
    # blur only what was seen, normalized, so the mesh's edge and unseen texels do not leak in
    w = seen.astype(np.float32)
    blur = cv2.GaussianBlur(luma * w, (0, 0), HIGHPASS_SIGMA) / np.maximum(cv2.GaussianBlur(w, (0, 0), HIGHPASS_SIGMA), 1e-3)
    detail = np.clip(np.round((luma - blur) * DETAIL_SCALE), -127, 127).astype(np.int8)
    detail[~seen] = 0
    return detail, seen


def _ncc(a: NDArray[np.float32], b: NDArray[np.float32]) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum()) / den if den > 0 else float("nan")


def detail_agreement(details: NDArray[np.int8], seen: NDArray[np.bool_],
                     segments: NDArray[np.integer] | None = None) -> NDArray[np.float64]:
    """Each row's agreement with its segment's median detail (normalized cross-correlation over
    the texels both show).

    Args:
        details: ``(N, S, S)`` from :func:`face_detail`.
        seen: ``(N, S, S)`` its masks.
        segments: ``(N,)`` segment of each row (shots; None: one).

    Returns:
        ``(N,)`` in [-1, 1]; NaN where the row shows under ``MIN_SEEN`` of the stable texels.
    """
    n = details.shape[0]
    out = np.full(n, np.nan)
    if n == 0:
        return out
    segments = np.zeros(n, np.int64) if segments is None else np.asarray(segments)
    need = MIN_SEEN * stable_texels(details.shape[1]).sum()
    for seg in np.unique(segments):
        rows = np.flatnonzero(segments == seg)
        pick = rows[np.unique(np.linspace(0, len(rows) - 1, min(len(rows), MEDIAN_ROWS)).round().astype(int))]
        stack = details[pick].astype(np.float32)
        stack[~seen[pick]] = np.nan
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # texels no row shows: NaN
            median = np.nanmedian(stack, axis=0)
        for r in rows:
            m = seen[r] & np.isfinite(median)
            if m.sum() >= need:
                out[r] = _ncc(details[r][m].astype(np.float32), median[m])
    return out
