"""Where a face's warp may act: picture area, the fade below the jaw, the head's mask polygons."""

from __future__ import annotations

import numpy as np
import pytest

from compositing.crop import crop_from_params
from compositing.mask import FACE_OVAL, face_oval
from compositing.support import (
    BAR_MAX_FRACTION,
    below_jaw_support,
    head_polygons,
    picture_area,
    picture_support,
)

#: Support values this close to 0 or 1 count as 0 or 1 (float32 smoothstep).
EPS = 1e-6


def ellipse_face(cx: float, cy: float, rx: float, ry: float, angle_deg: float = 0.0) -> np.ndarray:
    """``(478, 2)`` landmarks whose face oval is an ellipse (forehead top at landmark 10, going
    clockwise on screen as MediaPipe's oval does); the other landmarks sit at the centre."""
    lm = np.tile([cx, cy], (478, 1)).astype(np.float64)
    t = np.linspace(0.0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    x, y = rx * np.sin(t), -ry * np.cos(t)
    a = np.deg2rad(angle_deg)
    lm[list(FACE_OVAL), 0] = cx + np.cos(a) * x - np.sin(a) * y
    lm[list(FACE_OVAL), 1] = cy + np.sin(a) * x + np.cos(a) * y
    return lm


def test_picture_area_finds_dark_bars_at_each_edge() -> None:
    rng = np.random.default_rng(0)
    image = rng.integers(30, 255, (100, 160, 3), dtype=np.uint8)
    image[:12] = rng.integers(0, 9, (12, 160, 3), dtype=np.uint8)
    image[88:] = rng.integers(0, 9, (12, 160, 3), dtype=np.uint8)
    image[:, 150:] = 3
    assert picture_area(image) == (0, 12, 150, 88)


def test_picture_area_keeps_flat_bright_rows_and_dark_rows_with_content() -> None:
    image = np.zeros((90, 120, 3), np.uint8)
    image[:] = (60, 160, 90)  # a green screen: flat, but not a bar
    assert picture_area(image) == (0, 0, 120, 90)
    image[:] = 5
    image[:, 60] = 200  # dark rows crossed by a bright line: content, not bars
    assert picture_area(image)[1] == 0 and picture_area(image)[3] == 90


def test_picture_area_stops_at_the_limit_on_a_black_frame() -> None:
    image = np.zeros((100, 200, 3), np.uint8)
    x0, y0, x1, y1 = picture_area(image)
    assert y0 == int(100 * BAR_MAX_FRACTION) and x0 == int(200 * BAR_MAX_FRACTION)
    assert x0 < x1 and y0 < y1


def test_below_jaw_support_is_one_over_the_head_and_zero_below_the_fade() -> None:
    lm = ellipse_face(100, 90, 40, 55)
    oval = face_oval(lm)
    fade = 30.0
    w = below_jaw_support(lm, lm, (oval, oval), 220, fade).numpy()
    chin_y = 90 + 55
    assert w[90, 100] == 1.0 and w[10, 100] == 1.0  # the face, the hair above it
    assert w[80, 200] == 1.0  # beside the face, above its widest point (the ears' level)
    assert w[int(chin_y + fade) + 2, 100] < EPS  # the body under the neck does not move
    column = w[chin_y:int(chin_y + fade), 100]
    assert np.all(np.diff(column) <= EPS) and column[0] > 0.9  # fades down the neck


def test_below_jaw_support_follows_a_tilted_head() -> None:
    lm = ellipse_face(110, 100, 40, 55, angle_deg=30.0)
    oval = face_oval(lm)
    w = below_jaw_support(lm, lm, (oval, oval), 220, 25.0).numpy()
    down = lm[152] - lm[10]
    down /= np.linalg.norm(down)
    x, y = np.round(lm[152] + 35 * down).astype(int)  # below the chin along the face's own "down"
    assert w[y, x] < EPS
    centre = face_oval(lm).mean(axis=0)
    x, y = np.round(centre + 60 * np.array([-down[1], down[0]]) - 5 * down).astype(int)  # beside the temple
    assert w[y, x] == 1.0


def test_below_jaw_support_covers_the_chin_after_the_edit() -> None:
    before = ellipse_face(100, 90, 40, 55)
    after = before.copy()
    after[:, 1] += 20.0  # the face moves down (a nod): the new chin must still move fully
    w = below_jaw_support(before, after, (face_oval(before), face_oval(after)), 220, 30.0).numpy()
    assert w[int(90 + 55 + 18), 100] == pytest.approx(1.0, abs=EPS)


def test_picture_support_is_one_inside_and_zero_beyond_the_frame() -> None:
    inside = crop_from_params(np.array([200.0, 150.0, 0.5, 0.0]), 128, (300, 400))
    assert float(picture_support(inside, (0, 0, 400, 300), 6.0).min()) == 1.0
    # A crop hanging over the bottom edge: rows past the edge get 0, rows well inside 1.
    edge = crop_from_params(np.array([200.0, 280.0, 0.5, 0.0]), 128, (300, 400))
    w = picture_support(edge, (0, 0, 400, 300), 6.0).numpy()
    row_of = lambda y: int(round((y - 280.0) / 0.5 + 63.5))  # frame row -> crop row (scale 0.5)
    assert w[row_of(299) + 2:, :].max() == 0.0
    assert w[: row_of(299) - 13, :].min() == pytest.approx(1.0, abs=EPS)


def test_picture_support_skips_its_transform_only_where_the_transform_gives_all_ones(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The shortcut for a crop well inside the picture returns what the distance transform
    returns there (all ones), and is not taken for crops near enough for the fade to show."""
    import compositing.support as support

    rng = np.random.default_rng(3)
    taken = faded = 0
    for _ in range(60):
        cx, cy = rng.uniform(60, 340), rng.uniform(60, 240)
        crop = crop_from_params(np.array([cx, cy, rng.uniform(0.8, 3.0), rng.uniform(-0.6, 0.6)]), 96, (300, 400))
        width = float(rng.uniform(3, 20))
        fast = picture_support(crop, (0, 0, 400, 300), width)
        with monkeypatch.context() as m:
            m.setattr(support, "_inside_by", lambda *a: False)
            slow = picture_support(crop, (0, 0, 400, 300), width)
        taken += int(support._inside_by(*_crop_poly(crop, (0, 0, 400, 300)), support.INSIDE_MARGIN * width + 2.0))
        assert np.array_equal(fast.numpy(), slow.numpy())  # all ones wherever the shortcut is taken
        faded += int(float(slow.min()) < 1.0)
    assert taken > 5 and faded > 5  # both ways were exercised


def _crop_poly(crop, area):
    x0, y0, x1, y1 = area
    corners = np.array([[x0, y0], [x1 - 1, y0], [x1 - 1, y1 - 1], [x0, y1 - 1]], np.float64)
    m = crop.crop_trans_frame
    return corners @ m[:2, :2].T + m[:2, 2], crop.size


def test_picture_support_stops_at_a_letterbox_bar() -> None:
    crop = crop_from_params(np.array([200.0, 200.0, 1.0, 0.0]), 128, (300, 400))
    w = picture_support(crop, (0, 0, 400, 240), 6.0).numpy()
    bar_row = int(240 - 200 + 63.5) + 1  # first crop row wholly on the bar (scale 1)
    assert w[bar_row:, :].max() == 0.0 and w[: bar_row - 8].min() == pytest.approx(1.0, abs=EPS)


def test_head_polygons_grow_only_when_asked() -> None:
    lm = ellipse_face(100, 90, 40, 55)
    oval = face_oval(lm)
    assert len(head_polygons((oval, oval), lm, 0.0, 30.0)) == 2
    polys = head_polygons((oval, oval), lm, 0.25, 30.0)
    assert len(polys) == 6
    grown = polys[2]
    assert np.ptp(grown[:, 0]) == pytest.approx(1.25 * np.ptp(oval[:, 0]))
    neck = polys[3]
    assert neck[:, 1].max() == pytest.approx(oval[:, 1].max() + 30.0)
