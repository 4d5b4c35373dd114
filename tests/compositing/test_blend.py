"""Blending: every method keeps pixels where alpha is 0 bit-identical, and blends as it claims."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from compositing.blend import BLEND_METHODS, BlendConfig, blend
from tracking.errors import ConfigError

H, W = 120, 160
#: Rounding to uint8 after float arithmetic: at most one level.
ROUND_TOL = 1
#: Poisson cloning of a uniformly brightened copy returns the background to within this (mean
#: levels over the region); the brightening is ``OFFSET`` levels.
POISSON_TOL = 3.0
OFFSET = 20


def background(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    small = rng.integers(40, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.resize(small, (W, H), interpolation=cv2.INTER_CUBIC)


def to_tensor(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255


def disk_alpha(r_in: float = 25, r_out: float = 45) -> torch.Tensor:
    yy, xx = np.mgrid[0:H, 0:W]
    d = np.hypot(xx - W / 2, yy - H / 2)
    a = np.clip((r_out - d) / (r_out - r_in), 0, 1).astype(np.float32)
    return torch.from_numpy(a)[None, None]


@pytest.mark.parametrize("method", BLEND_METHODS)
def test_zero_alpha_keeps_the_background_bit_identical(method: str) -> None:
    bg = background()
    fg = to_tensor(background(seed=1))
    alpha = disk_alpha()
    out = blend(bg, fg, alpha, BlendConfig(method=method))
    assert out.shape == bg.shape and out.dtype == np.uint8
    outside = (alpha[0, 0] == 0).numpy()
    assert np.array_equal(out[outside], bg[outside])
    assert not np.array_equal(out[~outside], bg[~outside])
    none = blend(bg, fg, torch.zeros_like(alpha), BlendConfig(method=method))
    assert np.array_equal(none, bg)


@pytest.mark.parametrize("method", ["lerp", "laplacian"])
def test_full_alpha_gives_the_foreground(method: str) -> None:
    bg = background()
    fg_img = background(seed=2)
    out = blend(bg, to_tensor(fg_img), torch.ones(1, 1, H, W), BlendConfig(method=method))
    assert np.abs(out.astype(int) - fg_img).max() <= ROUND_TOL


def test_lerp_is_the_alpha_mix() -> None:
    bg = background()
    fg_img = background(seed=3)
    alpha = disk_alpha()
    out = blend(bg, to_tensor(fg_img), alpha, BlendConfig(method="lerp"))
    a = alpha[0, 0, ..., None].numpy()
    want = bg + a * (fg_img.astype(np.float32) - bg)
    assert np.abs(out - want).max() <= 0.5 + 1e-3


def test_poisson_matches_the_background_level_and_stays_in_place() -> None:
    # Fine texture: a clone landing one pixel off would differ by about 13 levels on average.
    noise = np.random.default_rng(5).integers(-15, 16, (H, W, 3))
    bg = np.clip(background().astype(int) + noise, 0, 255).astype(np.uint8)
    fg = to_tensor(np.clip(bg.astype(int) + OFFSET, 0, 255).astype(np.uint8))
    alpha = disk_alpha(25, 35)
    core = (alpha[0, 0] == 1).numpy()
    lerp = blend(bg, fg, alpha, BlendConfig(method="lerp"))
    poisson = blend(bg, fg, alpha, BlendConfig(method="poisson"))
    assert np.abs(lerp[core].astype(int) - bg[core]).mean() == pytest.approx(OFFSET, abs=1)
    # Gradient-domain cloning keeps the foreground's detail (the same as the background's here,
    # had it been placed at the right spot) and takes its level from the border: the background.
    assert np.abs(poisson[core].astype(int) - bg[core]).mean() < POISSON_TOL


def test_shapes_are_checked() -> None:
    with pytest.raises(ValueError):
        blend(background(), torch.zeros(1, 3, H, W + 1), torch.zeros(1, 1, H, W), BlendConfig())


@pytest.mark.parametrize(
    "kwargs",
    [{"method": "alpha"}, {"dilate": -0.1}, {"feather": -1.0}, {"floor": 0.5}, {"motion_px": 0.0}, {"levels": 0}],
)
def test_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        BlendConfig(**kwargs)
