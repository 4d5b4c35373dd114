"""The TPS grid's upsampling (OpenCV, one channel at a time) is torch's align-corners bilinear."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from synthesis.warpfield import _upsample

#: Largest difference relative to the largest value (float32 rounding; OpenCV's 2-channel float
#: path, which rounds positions to 1/32 pixel, misses by about 3e-2 on this rough field).
UPSAMPLE_REL_TOL = 1e-5


@pytest.mark.parametrize(("grid", "size", "channels"), [(64, 256, 2), (48, 200, 2), (5, 37, 3)])
def test_upsample_matches_align_corners_bilinear(grid: int, size: int, channels: int) -> None:
    rng = np.random.default_rng(grid)
    coarse = (rng.normal(size=(grid, grid, channels)) * 5.0).astype(np.float32)  # rough on purpose
    ref = F.interpolate(torch.from_numpy(coarse).permute(2, 0, 1)[None], size=(size, size), mode="bilinear",
                        align_corners=True)[0].permute(1, 2, 0).numpy()
    out = _upsample(coarse, size)
    assert out.shape == (size, size, channels) and out.dtype == np.float32
    assert np.abs(out - ref).max() < UPSAMPLE_REL_TOL * np.abs(ref).max()
