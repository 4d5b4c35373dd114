"""Backward warp fields: identity where nothing moves, accuracy at the points, no folds, eye closing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from kornia.geometry.transform import remap
from scipy.spatial import Delaunay

from synthesis.warpfield import (
    METHODS,
    WarpConfig,
    build_field,
    field_at,
    identity_grid,
    jacobian_det,
)
from tracking.errors import ConfigError

SIZE = 256
#: A dot drawn at a source point must be found this close to its destination after the warp.
DOT_TOL_PX = 0.5
#: The TPS is regularized and solved on a point subset: it misses points by up to about a pixel.
TPS_DOT_TOL_PX = 1.5
#: Where the field is exact at the points (pa, hybrid), its value there, read back bilinearly.
FIELD_TOL_PX = 0.1
#: Fraction of the open eye's dark area left after asking to close it to 95%.
CLOSED_EYE_MAX = 0.25
#: A TPS cannot close an eye: at least this fraction of the eye stays open (FACTS.md).
TPS_EYE_MIN = 0.5


def face_points(size: int = SIZE) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A face-like point set in crop pixels: rings, one eye (upper, lower lid), mouth corners."""
    c = np.array([size * 0.5, size * 0.53])
    r = np.array([size * 0.29, size * 0.37])
    rings = []
    for f, n in [(1.0, 36), (0.8, 28), (0.6, 20), (0.4, 14)]:
        t = np.linspace(0, 2 * np.pi, n, endpoint=False) + f
        rings.append(c + np.stack([np.cos(t) * r[0] * f, np.sin(t) * r[1] * f], 1))
    ring = np.concatenate(rings)
    ex, ey, ew, eh = c[0] + 0.12 * size, c[1] - 0.08 * size, 0.07 * size, 0.03 * size
    x = np.linspace(-1, 1, 9)
    upper = np.stack([ex + x * ew, ey - eh * (1 - x**2)], 1)  # corners included
    lower = np.stack([ex + x[1:-1] * ew, ey + eh * (1 - x[1:-1] ** 2)], 1)
    mouth = np.array([[c[0] - 0.1 * size, c[1] + 0.17 * size], [c[0] + 0.1 * size, c[1] + 0.17 * size]])
    feats = np.concatenate([upper, lower, mouth])
    far = np.linalg.norm(ring[:, None] - feats[None], axis=2).min(1) > 0.05 * size
    pts = np.concatenate([feats, ring[far]])
    idx = {"upper": np.arange(1, 8), "lower": np.arange(9, 16), "corner": np.array([0, 8]), "mouth": np.array([16, 17])}
    return pts, idx


def smooth_mouth_edit(pts: np.ndarray, idx: dict[str, np.ndarray], shift: float = 5.0) -> np.ndarray:
    """Mouth corners outward by ``shift`` px, dragging nearby points with a Gaussian falloff."""
    dst = pts.copy()
    for k, sign in zip(idx["mouth"], (-1.0, 1.0)):
        w = np.exp(-np.sum((pts - pts[k]) ** 2, axis=1) / (2 * (0.05 * SIZE) ** 2))
        w[w < 1e-3] = 0.0
        dst[:, 0] += sign * shift * w
    return dst


def warp(img: np.ndarray, sample_xy: torch.Tensor) -> np.ndarray:
    t = torch.from_numpy(img.astype(np.float32))[None, None]
    out = remap(t, sample_xy[None, ..., 0], sample_xy[None, ..., 1], align_corners=True, padding_mode="border")
    return out[0, 0].numpy()


def dots(points: np.ndarray, size: int = SIZE, sigma: float = 1.2) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    img = np.zeros((size, size), np.float32)
    for x, y in points:
        img += np.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * sigma**2))
    return img


def centroid(img: np.ndarray, p: np.ndarray, r: int = 4) -> np.ndarray:
    x0, y0 = int(round(p[0])), int(round(p[1]))
    w = img[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1]
    yy, xx = np.mgrid[y0 - r : y0 + r + 1, x0 - r : x0 + r + 1]
    return np.array([(w * xx).sum() / w.sum(), (w * yy).sum() / w.sum()])


@pytest.mark.parametrize("method", METHODS)
def test_zero_edit_is_exactly_the_identity(method: str) -> None:
    pts, _ = face_points()
    field = build_field(pts, pts.copy(), SIZE, WarpConfig(method=method))
    assert field.is_identity
    assert torch.equal(field.sample_xy, identity_grid(SIZE))


@pytest.mark.parametrize("method", METHODS)
def test_border_and_outside_support_do_not_move(method: str) -> None:
    pts, idx = face_points()
    dst = smooth_mouth_edit(pts, idx)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE]
    support = ((xx - SIZE / 2) ** 2 + (yy - SIZE * 0.6) ** 2 < (0.3 * SIZE) ** 2).astype(np.float32)
    support = torch.from_numpy(support)
    for sup in (None, support):
        field = build_field(pts, dst, SIZE, WarpConfig(method=method), support=sup)
        disp = field.displacement()
        assert field.max_displacement > 1.0
        for edge in (disp[0], disp[-1], disp[:, 0], disp[:, -1]):
            assert torch.count_nonzero(edge) == 0
        if sup is not None:
            assert torch.count_nonzero(disp[sup == 0]) == 0


@pytest.mark.parametrize("method", METHODS)
def test_dots_at_source_points_land_at_destination(method: str) -> None:
    pts, idx = face_points()
    dst = smooth_mouth_edit(pts, idx, shift=5.0)
    field = build_field(pts, dst, SIZE, WarpConfig(method=method))
    moved = np.flatnonzero(np.linalg.norm(dst - pts, axis=1) > 1.0)
    assert len(moved) >= 2
    out = warp(dots(pts[moved]), field.sample_xy)
    err = np.array([np.linalg.norm(centroid(out, dst[k]) - dst[k]) for k in moved])
    tol = TPS_DOT_TOL_PX if method == "tps" else DOT_TOL_PX
    assert err.max() < tol, f"{method}: dot errors {np.round(err, 2)}"
    if method != "tps":
        assert np.abs(field_at(field, dst) - pts).max() < FIELD_TOL_PX
    assert field.min_jacobian > 0


def test_piecewise_affine_closes_an_eye_and_tps_only_narrows_it() -> None:
    pts, idx = face_points()
    up, lo = idx["upper"], idx["lower"]
    dst = pts.copy()
    dst[up] = pts[up] + 0.95 * (pts[lo] - pts[up])
    # The open eye: dark between the lids.
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float64)
    poly = np.concatenate([pts[0:9], pts[lo][::-1]])
    eye = Delaunay(poly).find_simplex(np.stack([xx.ravel(), yy.ravel()], 1)).reshape(SIZE, SIZE) >= 0
    eye = eye.astype(np.float32)
    left = {}
    for method in METHODS:
        field = build_field(pts, dst, SIZE, WarpConfig(method=method))
        assert field.min_jacobian > 0
        left[method] = warp(eye, field.sample_xy).sum() / eye.sum()
    assert left["pa"] < CLOSED_EYE_MAX
    assert left["hybrid"] < CLOSED_EYE_MAX
    assert left["tps"] > TPS_EYE_MIN


@pytest.mark.parametrize("method", METHODS)
def test_noisy_points_never_fold(method: str) -> None:
    pts, _ = face_points()
    rng = np.random.default_rng(1)
    dst = pts + rng.normal(0.0, 3.0, pts.shape)
    field = build_field(pts, dst, SIZE, WarpConfig(method=method))
    det = jacobian_det(field.sample_xy)
    assert float(det.min()) == pytest.approx(field.min_jacobian)
    assert field.min_jacobian > 0


def test_given_triangles_are_used_and_stay_exact() -> None:
    pts, idx = face_points()
    dst = smooth_mouth_edit(pts, idx)
    # A "mesh" over the inner points only: the rest of the crop is filled automatically.
    inner = np.linalg.norm(pts - pts.mean(0), axis=1) < 0.3 * SIZE
    tri = Delaunay(pts[inner]).simplices
    tris = np.flatnonzero(inner)[tri]
    for method in ("pa", "hybrid"):
        field = build_field(pts, dst, SIZE, WarpConfig(method=method), triangles=tris)
        assert field.min_jacobian > 0
        assert np.abs(field_at(field, dst) - pts).max() < FIELD_TOL_PX
        assert torch.count_nonzero(field.displacement()[0]) == 0


def test_fold_guard_repairs_a_crossing_lid() -> None:
    pts, idx = face_points()
    up, lo = idx["upper"], idx["lower"]
    dst = pts.copy()
    dst[up] = pts[lo] + np.array([0.0, 6.0])  # the upper lid pushed through the lower one
    field = build_field(pts, dst, SIZE, WarpConfig(method="pa"))
    assert field.repairs > 0
    assert field.min_jacobian > 0


def test_jacobian_of_a_known_affine_field() -> None:
    ident = identity_grid(32)
    a = torch.tensor([[1.2, 0.3], [-0.1, 0.8]])
    det = jacobian_det(ident @ a.T + 5.0)
    assert torch.allclose(det, torch.full_like(det, float(torch.det(a))), atol=1e-4)


def test_normalized_grid_matches_grid_sample_convention() -> None:
    pts, idx = face_points()
    field = build_field(pts, smooth_mouth_edit(pts, idx), SIZE)
    img = torch.rand(1, 1, SIZE, SIZE)
    a = torch.nn.functional.grid_sample(img, field.normalized_grid(), mode="bilinear", align_corners=True)
    b = remap(img, field.sample_xy[None, ..., 0], field.sample_xy[None, ..., 1], align_corners=True)
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"method": "spline"},
        {"tps_lambda": 0.0},
        {"grid": 1},
        {"border": 0.6},
        {"min_jacobian": -1.0},
        {"tps_points": 2},
    ],
)
def test_config_is_validated(kwargs: dict) -> None:
    with pytest.raises(ConfigError):
        WarpConfig(**kwargs)


def test_bad_points_are_rejected() -> None:
    pts, _ = face_points()
    with pytest.raises(ValueError):
        build_field(pts, pts[:-1], SIZE)
    bad = pts.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError):
        build_field(pts, bad, SIZE)


#: The spline's coarse grid is evaluated in float32: against a float64 evaluation of the same
#: solve, the upsampled field may differ by at most this (pixels; the float32 ``cdist`` form it
#: replaced was off by about 0.005 px on this case).
TPS_FLOAT32_TOL_PX = 0.003


def test_tps_grid_evaluation_matches_float64() -> None:
    from synthesis.piecewise import border_anchors
    from synthesis.warpfield import tps_displacement

    pts, idx = face_points()
    dst = smooth_mouth_edit(pts, idx)
    anchors = border_anchors(SIZE, 8)
    points = np.concatenate([dst, anchors])
    values = np.concatenate([pts - dst, np.zeros_like(anchors)])
    lam, grid = 1e-3, 64
    dense, at_points = tps_displacement(points, values, SIZE, lam, grid)
    # The same spline in float64, evaluated directly at the coarse nodes and upsampled alike.
    c = torch.from_numpy(points / (SIZE - 1))
    n = len(c)
    r2 = (c[:, None] - c[None]).pow(2).sum(-1)
    k = r2 * torch.log(r2.clamp_min(1e-300))
    a = torch.zeros(n + 3, n + 3, dtype=torch.float64)
    a[:n, :n] = k + lam * torch.eye(n, dtype=torch.float64)
    a[:n, n:] = torch.cat([torch.ones(n, 1, dtype=torch.float64), c], 1)
    a[n:, :n] = a[:n, n:].T
    coef = torch.linalg.solve(a, torch.cat([torch.from_numpy(values), torch.zeros(3, 2, dtype=torch.float64)]))
    ax = torch.linspace(0.0, 1.0, grid, dtype=torch.float64)
    gy, gx = torch.meshgrid(ax, ax, indexing="ij")
    nodes = torch.stack((gx, gy), -1).reshape(-1, 2)
    d2 = (nodes[:, None] - c[None]).pow(2).sum(-1)
    coarse = d2 * torch.log(d2.clamp_min(1e-300)) @ coef[:n] + coef[n] + nodes @ coef[n + 1 :]
    coarse = coarse.reshape(1, grid, grid, 2).permute(0, 3, 1, 2)
    ref = torch.nn.functional.interpolate(coarse, size=(SIZE, SIZE), mode="bilinear", align_corners=True)
    assert float(values[:, 0].std()) > 0.5  # the case moves something
    assert float((dense.double() - ref[0].permute(1, 2, 0)).abs().max()) < TPS_FLOAT32_TOL_PX
    at_ref = torch.from_numpy(field_at_grid(coarse, points))
    assert float((at_points.double() - at_ref).abs().max()) < TPS_FLOAT32_TOL_PX


def field_at_grid(coarse: torch.Tensor, points: np.ndarray) -> np.ndarray:
    """``(K, 2)`` bilinear values of a ``(1, 2, G, G)`` grid spanning the crop at crop pixels ``points``."""
    g = torch.from_numpy(points * (2.0 / (SIZE - 1)) - 1.0)[None, None]
    return torch.nn.functional.grid_sample(coarse, g, mode="bilinear", align_corners=True)[0, :, 0].T.numpy()


def test_cached_delaunay_neighbours_match_the_edge_matching() -> None:
    """The neighbours qhull reports with a cached triangulation are the ones the edge matching
    finds (the piecewise-affine pass takes qhull's when it can)."""
    from synthesis.piecewise import _NEIGHBOURS, _edge_neighbours, triangulate

    pts, _ = face_points()
    _, tris, layer = triangulate(pts, SIZE, 8)
    assert layer is None and id(tris) in _NEIGHBOURS
    qhull = _edge_neighbours(tris, None)
    matched = _edge_neighbours(np.array(tris), None)  # a copy: not in the cache
    assert qhull.shape == (len(tris), 3) and (qhull >= 0).any() and (qhull == -1).any()
    np.testing.assert_array_equal(qhull, matched)
