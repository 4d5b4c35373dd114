"""Opening what is closed (a mouth, an eye) is not a fold: the fold guard leaves it whole."""

from __future__ import annotations

import numpy as np

from plugin.editing import _field, opening_mask
from synthesis.warpfield import WarpConfig
from tests.synthesis import test_warpfield_openings as mixed

SIZE = 128
#: How far the lower lip of the synthetic closed mouth is pulled down (crop pixels).
OPEN_PX = 10.0


def closed_mouth() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A grid of points with a collapsed slit (two rows at the same height), the slit's lower
    row, and the same points with that row and everything below it pulled down."""
    xs = np.linspace(30, 98, 9)
    rows = [40.0, 52.0, 64.0, 64.4, 76.0, 88.0]  # rows 2 and 3: the closed lips, 0.4 px apart
    src = np.array([(x, y) for y in rows for x in xs])
    lower = np.repeat(np.arange(len(rows)) >= 3, len(xs))
    dst = src.copy()
    dst[lower, 1] += OPEN_PX * np.repeat(np.array([1.0, 0.6, 0.3]), len(xs))
    return src, dst, lower


def test_opening_a_closed_slit_keeps_the_whole_move() -> None:
    src, dst, _ = closed_mouth()
    mask = opening_mask(src, dst, SIZE, WarpConfig())
    assert mask[64:73, 40:90].all() and not mask[:50].any()  # the opened gap, and only there
    fld = _field(src, dst, SIZE, WarpConfig())
    assert fld.repairs == 0
    assert fld.max_displacement > 0.95 * OPEN_PX


def test_a_real_fold_is_still_repaired() -> None:
    src, dst, _ = closed_mouth()
    dst = src.copy()
    centre = 4 * 9 + 4  # a point pushed through two rows of its neighbours
    dst[centre, 1] -= 30.0
    assert not opening_mask(src, dst, SIZE, WarpConfig())[40:80, 50:80].all()
    assert _field(src, dst, SIZE, WarpConfig()).repairs > 0


def test_a_real_fold_beside_an_opening_leaves_the_opening_whole() -> None:
    """The mixed case: a real fold triggers the guard, which must not shrink the opening."""
    src, dst = mixed.mouth_and_fold()
    fld = _field(src, dst, SIZE, WarpConfig())
    assert fld.repairs > 0 and fld.min_jacobian > 0
    assert mixed._lip_opening(fld, dst) > mixed.KEPT_FRACTION * mixed.OPEN_PX
