"""A mouth opened wider on the face's own frame (compositing/mouth.py), on a drawn mouth whose
geometry is known: upper teeth under the upper lip, the lower lip under them."""

from __future__ import annotations

import numpy as np
import pytest

from compositing.mouth import open_mouth

SKIN, LIP, TEETH = (200, 160, 140), (170, 90, 90), (245, 245, 240)
#: The drawn mouth: inner corners at x 60 and 140 (y 100); upper inner lip up to y 92 in the
#: middle, the teeth's lower edge at y 100, lower inner lip down to y 104, lower outer lip 116.
X0, X1, MID_Y = 60.0, 140.0, 100.0


def _arc(depth: float, xs: np.ndarray) -> np.ndarray:
    """y of a contour through both corners, ``depth`` below (positive) or above them in the middle."""
    u = (xs - X0) / (X1 - X0)
    return MID_Y + depth * 4.0 * u * (1.0 - u)


def _mouth() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    img = np.empty((200, 200, 3), np.uint8)
    img[:] = SKIN
    ys, xs = np.mgrid[0:200, 0:200].astype(float)
    within = (xs > X0) & (xs < X1)
    img[within & (ys >= _arc(-16, xs)) & (ys < _arc(-8, xs))] = LIP  # upper lip
    img[within & (ys >= _arc(-8, xs)) & (ys < MID_Y)] = TEETH  # upper teeth, their edge flat at y 100
    img[within & (ys >= MID_Y) & (ys < _arc(16, xs))] = LIP  # lower lip
    cx = np.linspace(X0, X1, 9)
    upper = np.stack([cx, _arc(-8, cx)], 1)
    lower = np.stack([cx, _arc(4, cx)], 1)
    outer = np.stack([cx, _arc(16, cx)], 1)
    return img, upper, lower, outer


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb.astype(float) @ np.array([0.299, 0.587, 0.114])


def test_the_lower_lip_drops_and_the_inside_shows_between_teeth_and_lip() -> None:
    img, upper, lower, outer = _mouth()
    drop = 10.0
    points = np.array([[100.0, 95.0], [100.0, 108.0], [X0, MID_Y], [X1, MID_Y], [100.0, 170.0]])
    out, moved = open_mouth(img, upper, lower, outer, drop, points)
    # the upper teeth stay where they were
    assert np.array_equal(out[93:99, 96:105], img[93:99, 96:105])
    # under them, the inside of the mouth: darker than teeth, lip and skin
    assert _luma(out[101:109, 98:103].reshape(-1, 3)).max() < 0.5 * _luma(np.array([LIP]))[0]
    # the lower lip, dropped by the drop in the middle of the mouth
    assert np.abs(out[118:125, 99:102].astype(int) - np.array(LIP)).max() <= 2
    assert np.abs(img[118:125, 99:102].astype(int) - np.array(SKIN)).max() == 0  # was skin
    # points: a tooth stays, a lower-lip point moves with its pixels, corners and the chin stay
    assert np.allclose(moved[0], points[0]) and moved[1, 1] == pytest.approx(118.0, abs=0.5)
    assert np.allclose(moved[2:], points[2:])
    # nothing outside the mouth's box changes
    assert np.array_equal(out[:70], img[:70]) and np.array_equal(out[165:], img[165:])


def test_the_split_follows_the_teeth_not_the_darkest_line() -> None:
    """A dark shadow line under the upper lip, above the teeth, is not where the jaw parts."""
    img, upper, lower, outer = _mouth()
    ys, xs = np.mgrid[0:200, 0:200].astype(float)
    shadow = (xs > X0 + 8) & (xs < X1 - 8) & (ys >= _arc(-8, xs)) & (ys < _arc(-8, xs) + 1.5)
    img[shadow] = (40, 30, 30)
    out, _ = open_mouth(img, upper, lower, outer, 10.0)
    assert np.array_equal(out[93:99, 96:105], img[93:99, 96:105])  # the teeth stay up


def test_no_drop_changes_nothing() -> None:
    img, upper, lower, outer = _mouth()
    points = np.array([[100.0, 108.0]])
    out, moved = open_mouth(img, upper, lower, outer, 0.0, points)
    assert np.array_equal(out, img) and np.array_equal(moved, points)
