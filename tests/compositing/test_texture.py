"""Region texture compositing: colour match, feather, composite."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

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


def test_ring_agreement_tells_the_same_skin_from_something_in_front_of_it() -> None:
    rng = np.random.default_rng(3)
    yy, xx = np.mgrid[0:64, 0:64]
    skin = (0.5 + 0.2 * np.sin(xx / 5.0) * np.cos(yy / 7.0) + rng.normal(0, 0.01, (64, 64)))[..., None]
    skin = np.clip(skin * np.array([1.0, 0.8, 0.7]), 0, 1).astype(np.float32)
    ring = np.zeros((64, 64), bool)
    ring[8:56, 8:56] = True
    ring[16:48, 16:48] = False
    # the same skin under other light (gain and offset per channel): agrees
    lit = np.clip(skin * 0.7 + 0.1, 0, 1)
    frame = np.rint(lit * 255).astype(np.uint8)
    assert tx.ring_agreement(skin, frame, ring) > 0.95
    assert tx.uncovered_weight(tx.ring_agreement(skin, frame, ring)) == 1.0
    # a checkerboard card in front: no agreement, nothing pasted
    card = np.repeat(((((yy // 8) + (xx // 8)) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)
    agreement = tx.ring_agreement(skin, card, ring)
    assert agreement < tx.COVERED_AT and tx.uncovered_weight(agreement) == 0.0
    # between the two thresholds the weight rises smoothly; unmeasurable rings count as clear
    mid = (tx.COVERED_AT + tx.CLEAR_AT) / 2
    assert tx.uncovered_weight(mid) == pytest.approx(0.5)
    assert tx.uncovered_weight(None) == 1.0
    assert tx.ring_agreement(skin, frame, np.zeros((64, 64), bool)) is None
    flat = np.full((64, 64, 3), 128, np.uint8)
    assert tx.ring_agreement(skin, flat, ring) is None
