"""Region texture compositing: colour match, feather, composite."""

from __future__ import annotations

import cv2
import numpy as np

from compositing import texture as tx

#: Lab mean after matching equals the target's within this (L in 0..100).
LAB_MEAN_TOL = 0.5


def test_composite_keeps_bytes_where_alpha_is_zero_and_takes_texture_at_one() -> None:
    rng = np.random.default_rng(0)
    base = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    tex = rng.random((20, 30, 3)).astype(np.float32)
    alpha = np.zeros((20, 30), np.float32)
    alpha[5:15, 10:20] = 1.0
    out = tx.composite(base, tex, alpha)
    assert np.array_equal(out[alpha == 0], base[alpha == 0])
    assert np.abs(out[alpha == 1].astype(float) - tex[alpha == 1] * 255).max() <= 0.5


def test_colour_match_moves_lab_statistics_onto_the_ring() -> None:
    rng = np.random.default_rng(1)
    target = (rng.random((40, 40, 3)) * 0.5 + 0.25).astype(np.float32)
    tex = np.clip(target * 0.7 + 0.05, 0, 1).astype(np.float32)  # darker, lower contrast
    ring = np.zeros((40, 40), bool)
    ring[:8] = True
    out = tx.match_colour(tex, target, ring)
    lab = lambda x: cv2.cvtColor(x.astype(np.float32), cv2.COLOR_RGB2Lab)  # noqa: E731
    before = np.abs(lab(tex)[ring].mean(0) - lab(target)[ring].mean(0)).max()
    after = np.abs(lab(out)[ring].mean(0) - lab(target)[ring].mean(0)).max()
    assert before > 5 * LAB_MEAN_TOL
    assert after < LAB_MEAN_TOL
    # too small a ring: unchanged
    assert tx.match_colour(tex, target, np.zeros((40, 40), bool)) is tex


def test_feathered_alpha_is_zero_outside_and_one_deep_inside() -> None:
    region = np.zeros((50, 50), bool)
    region[10:40, 10:40] = True
    a = tx.feathered_alpha(region, 5.0)
    assert np.all(a[~region] == 0)
    assert a[25, 25] == 1.0
    row = a[25, 10:26]
    assert np.all(np.diff(row) >= 0)
    ring = tx.ring_mask(region, np.ones_like(region), 3.0)
    assert not (ring & region).any() and ring.sum() > 0
