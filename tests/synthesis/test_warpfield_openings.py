"""The fold guard repairs real folds only: an opening (a closed mouth being opened) in the same
field keeps its full size."""

from __future__ import annotations

import numpy as np
import pytest

from synthesis.piecewise import opening_mask
from synthesis.warpfield import (
    WarpConfig,
    build_field,
    field_at,
    jacobian_det,
)

SIZE = 128
#: How far the lower lip of the synthetic closed mouth is pulled down (crop pixels).
OPEN_PX = 10.0
#: The closed lips overlap by this much (a tracker's closed mouth: the lower lip line a
#: fraction of a pixel above the upper one), so opening the mouth turns the slit's triangles over.
OVERLAP_PX = 0.3
#: How far one point above the mouth is pushed up through its neighbours (a real fold).
FOLD_PX = 25.0
#: The opening must keep at least this fraction of its size.
KEPT_FRACTION = 0.9
XS = np.linspace(30, 98, 9)
ROWS = [16.0, 28.0, 40.0, 52.0, 64.0, 64.0 - OVERLAP_PX, 76.0, 88.0, 100.0]
LOWER_LIP_ROW = 5
FOLD_POINT = 1 * len(XS) + 4  # row 28, middle column


def mouth_and_fold() -> tuple[np.ndarray, np.ndarray]:
    """A grid with a closed (slightly overlapping) slit between rows 4 and 5; the rows from the
    lower lip down pulled down (the jaw drops), and one point far above pushed through the row
    above it."""
    src = np.array([(x, y) for y in ROWS for x in XS])
    row = np.repeat(np.arange(len(ROWS)), len(XS))
    dst = src.copy()
    drop = {5: 1.0, 6: 0.6, 7: 0.3, 8: 0.15}
    for r, f in drop.items():
        dst[row == r, 1] += OPEN_PX * f
    dst[FOLD_POINT, 1] -= FOLD_PX
    return src, dst


def _lip_opening(field, dst: np.ndarray) -> float:
    """How far the field opens the lower lip: the smallest downward pull at its output points."""
    lip = np.arange(LOWER_LIP_ROW * len(XS), (LOWER_LIP_ROW + 1) * len(XS))
    return float(-(field_at(field, dst[lip])[:, 1] - dst[lip, 1]).max())


@pytest.mark.parametrize("method", ["hybrid", "pa"])
def test_fold_is_repaired_and_the_opening_keeps_its_size(method: str) -> None:
    src, dst = mouth_and_fold()
    field = build_field(src, dst, SIZE, WarpConfig(method=method))
    assert field.repairs > 0  # the fold above the mouth was acted on
    assert field.min_jacobian > 0  # ... and is gone
    det = jacobian_det(field.sample_xy).numpy()
    opening = opening_mask(src, dst, SIZE, WarpConfig().anchors_per_side)
    assert opening[66:72, 40:90].all() and not opening[:50].any()
    assert not (det[~opening] <= 0).any()  # what is left at or below 0 is the opening itself
    assert _lip_opening(field, dst) > KEPT_FRACTION * OPEN_PX
    # The folded point no longer lands where it was pushed (the guard pulled it back).
    assert np.abs(field_at(field, dst[FOLD_POINT:FOLD_POINT + 1])[0] - src[FOLD_POINT]).max() > 1.0


def test_an_opening_alone_is_no_fold() -> None:
    src, dst = mouth_and_fold()
    dst[FOLD_POINT] = src[FOLD_POINT]
    field = build_field(src, dst, SIZE, WarpConfig())
    assert field.repairs == 0 and field.folded_px == 0 and field.min_jacobian > 0
    assert _lip_opening(field, dst) > 0.98 * OPEN_PX
