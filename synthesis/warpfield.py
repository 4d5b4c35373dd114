"""Dense backward warp fields on a face crop, from landmarks before and after an edit.

A field is the map ``sample_xy`` with ``output(p) = input(sample_xy[p])``: for every OUTPUT pixel
``p`` of the crop, where to SAMPLE the input crop. It is built from ``src`` (the landmarks before
the edit) and ``dst`` (after), both ``(K, 2)`` crop pixels (x right, y down, origin at the top-left
pixel centre), so that ``sample_xy[dst_k] = src_k``. Three interpolants (``WarpConfig.method``):

- ``"tps"``: thin-plate spline with regularization lambda, solved here (Kornia's TPS has none) on
  a point subset, evaluated on a coarse grid and upsampled. Smooth and tolerant of noise, misses
  points by up to about a pixel, and cannot close an eye (it only narrows it).
- ``"pa"``: piecewise-affine over a triangulation (Delaunay of the points plus border anchors, or
  given triangles with Delaunay filling the rest), rasterized per pixel. Exact at every point,
  closes eyes; kinks at triangle edges, visible where triangles are large (outside the face).
- ``"hybrid"`` (default): the TPS, plus the piecewise-affine interpolation of what it missed at each
  point. Exact and eye-closing like ``"pa"``, as smooth as ``"tps"`` outside the face, and about as
  fast as ``"pa"`` (bench/warp.py and tests/synthesis/test_warpfield.py have the measurements).

The displacement is multiplied by a taper that is exactly 0 on the crop's outermost pixels and by
an optional ``support`` weight, so the field is exactly the identity on the crop border and
outside the support. A fold guard keeps the Jacobian determinant of ``sample_xy`` positive,
except inside openings (a closed mouth or eye being opened, see :func:`opening_triangles`),
where it is 0 by construction and left alone.
"""

from __future__ import annotations

import functools
import threading
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import NDArray

from synthesis.piecewise import (
    border_anchors,
    flipped_triangles,
    opening_pixels,
    opening_triangles,
    pa_interpolate,
    triangulate,
)
from synthesis.piecewise import pixel_centres as _identity
from tracking.errors import ConfigError

METHODS = ("tps", "pa", "hybrid")
#: Point residuals (pixels) below this are treated as exactly zero by the piecewise-affine pass.
RESIDUAL_EPS_PX = 0.05
#: Each fold-guard repair keeps this fraction of the offending displacement.
REPAIR_FACTOR = 0.75


@dataclass(frozen=True)
class WarpConfig:
    """How a warp field is built.

    Attributes:
        method: ``"tps"``, ``"pa"`` or ``"hybrid"`` (see the module docstring).
        tps_lambda: TPS regularization, in coordinates normalized so the crop spans [0, 1] (> 0).
        tps_points: most control points the TPS is solved with (>= 3; farthest-point subset of
            the landmarks, the most displaced first; the border anchors come on top). ``"hybrid"``
            stays exact at every point whatever the subset: its piecewise-affine pass adds what
            the TPS missed.
        grid: TPS evaluation grid nodes per side (>= 2); upsampled bilinearly to the crop.
        anchors_per_side: zero-displacement anchor points per crop side (>= 1).
        border: width of the taper to zero at the crop border, as a fraction of the crop (0, 0.5).
        min_jacobian: the fold guard acts while the field's minimum Jacobian determinant is at or
            below this (>= 0); 0 means "no folds".
        max_repairs: how many times the fold guard may act before giving up.
    """

    method: str = "hybrid"
    tps_lambda: float = 1e-3
    tps_points: int = 160
    grid: int = 64
    anchors_per_side: int = 8
    border: float = 0.04
    min_jacobian: float = 0.0
    max_repairs: int = 8

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ConfigError(f"WarpConfig.method must be one of {METHODS}, got {self.method!r}")
        if not self.tps_lambda > 0:
            raise ConfigError(f"WarpConfig.tps_lambda must be > 0, got {self.tps_lambda}")
        if self.tps_points < 3:
            raise ConfigError(f"WarpConfig.tps_points must be >= 3, got {self.tps_points}")
        if self.grid < 2:
            raise ConfigError(f"WarpConfig.grid must be >= 2, got {self.grid}")
        if self.anchors_per_side < 1:
            raise ConfigError(f"WarpConfig.anchors_per_side must be >= 1, got {self.anchors_per_side}")
        if not 0 < self.border < 0.5:
            raise ConfigError(f"WarpConfig.border must be in (0, 0.5), got {self.border}")
        if not 0 <= self.min_jacobian < 1:
            raise ConfigError(f"WarpConfig.min_jacobian must be in [0, 1), got {self.min_jacobian}")
        if self.max_repairs < 0:
            raise ConfigError(f"WarpConfig.max_repairs must be >= 0, got {self.max_repairs}")


@dataclass(frozen=True, eq=False)
class WarpField:
    """A backward warp field on a square crop.

    Attributes:
        sample_xy: ``(S, S, 2)`` float32 crop pixels (x, y): output pixel ``[i, j]`` (at x = j,
            y = i) takes the input's value at ``sample_xy[i, j]``.
        method: the interpolant that built it.
        max_displacement: largest ``|sample_xy - p|`` in pixels (0 exactly for the identity).
        min_jacobian: smallest determinant of ``d sample_xy / d p`` (forward differences)
            outside openings (:func:`opening_pixels`); > 0 means no fold.
        repairs: how many times the fold guard acted (0 for a clean edit).
        folded_px: pixels outside openings whose determinant is at or below the config's
            ``min_jacobian`` (0 when ``min_jacobian`` is above it).
    """

    sample_xy: torch.Tensor
    method: str
    max_displacement: float
    min_jacobian: float
    repairs: int = 0
    folded_px: int = 0

    def __post_init__(self) -> None:
        shape = tuple(self.sample_xy.shape)
        if len(shape) != 3 or shape[0] != shape[1] or shape[2] != 2 or self.sample_xy.dtype != torch.float32:
            raise ValueError(f"WarpField.sample_xy must be (S, S, 2) float32, got {shape} {self.sample_xy.dtype}")

    @property
    def size(self) -> int:
        return int(self.sample_xy.shape[0])

    @property
    def is_identity(self) -> bool:
        """True when no pixel moves: applying the field can be skipped."""
        return self.max_displacement == 0.0

    def displacement(self) -> torch.Tensor:
        """``(S, S, 2)`` float32 ``sample_xy - p`` in pixels."""
        return self.sample_xy - _identity(self.size)

    def normalized_grid(self) -> torch.Tensor:
        """``(1, S, S, 2)`` grid for ``torch.nn.functional.grid_sample(..., align_corners=True)``."""
        return (self.sample_xy * (2.0 / (self.size - 1)) - 1.0)[None]


def identity_grid(size: int) -> torch.Tensor:
    """``(S, S, 2)`` float32 pixel-centre coordinates (x, y) of a square crop (a new tensor)."""
    return _identity(size).clone()


def identity_field(size: int) -> WarpField:
    """The field that moves nothing."""
    return WarpField(identity_grid(size), "identity", 0.0, 1.0, 0)


def border_taper(size: int, width_px: float) -> torch.Tensor:
    """``(S, S)`` float32 weight: 0 on the outermost pixels, smoothstep to 1 over ``width_px`` (a new tensor)."""
    return _taper(size, width_px).clone()


@functools.lru_cache(maxsize=8)
def _taper(size: int, width_px: float) -> torch.Tensor:
    """:func:`border_taper`, shared (read only)."""
    ax = torch.arange(size, dtype=torch.float32)
    d = torch.minimum(ax, (size - 1) - ax)
    t = (d / max(width_px, 1e-6)).clamp(0.0, 1.0)
    w1 = t * t * (3.0 - 2.0 * t)
    return w1[:, None] * w1[None, :]


def jacobian_det(sample_xy: torch.Tensor) -> torch.Tensor:
    """``(S-1, S-1)`` determinant of ``d sample_xy / d p`` by forward differences (1 = no change)."""
    dx = sample_xy[:-1, 1:] - sample_xy[:-1, :-1]  # d/dx
    dy = sample_xy[1:, :-1] - sample_xy[:-1, :-1]  # d/dy
    return dx[..., 0] * dy[..., 1] - dx[..., 1] * dy[..., 0]


# --- thin-plate spline ---------------------------------------------------------------------------


def _tps_kernel(r2: torch.Tensor) -> torch.Tensor:
    """U(r) = r^2 log r^2 (the 2-D biharmonic kernel up to a factor), 0 at r = 0."""
    return r2 * torch.log(r2.clamp_min(1e-30))


@functools.lru_cache(maxsize=4)
def _grid_nodes(grid: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The coarse TPS nodes on [0, 1], row-major: ``(N, 1)`` x, ``(N, 1)`` y and ``(N, 2)`` x, y
    float32, ``N = grid ** 2`` (shared; never modified)."""
    ax = torch.linspace(0.0, 1.0, grid)
    gy, gx = torch.meshgrid(ax, ax, indexing="ij")
    nodes = torch.stack((gx, gy), -1).reshape(-1, 2)
    return nodes[:, 0:1].contiguous(), nodes[:, 1:2].contiguous(), nodes


_SCRATCH = threading.local()


def _scratch(rows: int, cols: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Two ``(rows, cols)`` float32 work buffers of this thread, kept between calls (the kernel
    matrix is a few MB; fresh buffers of that size cost more to fault in than to fill)."""
    have = getattr(_SCRATCH, "pair", None)
    # Buffers made under torch.inference_mode cannot be written outside it: one set per mode.
    if have is None or have[0].shape != (rows, cols) or have[0].is_inference() != torch.is_inference_mode_enabled():
        have = (torch.empty(rows, cols), torch.empty(rows, cols))
        _SCRATCH.pair = have
    return have


def tps_displacement(
    points: NDArray[np.floating],
    values: NDArray[np.floating],
    size: int,
    lam: float,
    grid: int,
    query: NDArray[np.floating] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Regularized thin-plate spline through ``values`` at ``points``, on a coarse grid, upsampled.

    Solves ``[[K + lam I, P], [P^T, 0]] [w; a] = [v; 0]`` in coordinates normalized by ``S - 1``.

    Args:
        points: ``(N, 2)`` crop pixels (where the values hold; include zero-valued anchors).
        values: ``(N, 2)`` displacements in pixels.
        size: crop side ``S``.
        lam: regularization (> 0); larger is smoother and misses the points more.
        grid: coarse nodes per side; they sit exactly on pixel centres 0 .. S-1.
        query: ``(Q, 2)`` crop pixels where to report the field (default: ``points``).

    Returns:
        ``(S, S, 2)`` float32 displacement field, and ``(Q, 2)`` float32 field values at ``query``
        (bilinear in the coarse grid, i.e. what the upsampled field holds there).
    """
    scale = float(size - 1)
    c = torch.from_numpy(np.asarray(points, dtype=np.float64) / scale)
    v = torch.from_numpy(np.asarray(values, dtype=np.float64))
    n = c.shape[0]
    k = _tps_kernel(torch.cdist(c, c).square())
    p = torch.cat([torch.ones(n, 1, dtype=torch.float64), c], dim=1)
    a = torch.zeros(n + 3, n + 3, dtype=torch.float64)
    a[:n, :n] = k + lam * torch.eye(n, dtype=torch.float64)
    a[:n, n:] = p
    a[n:, :n] = p.T
    rhs = torch.cat([v, torch.zeros(3, 2, dtype=torch.float64)])
    coef = torch.linalg.solve(a, rhs).float()
    cf = c.float()
    nx, ny, nodes = _grid_nodes(grid)
    # U(|node - c|^2) for every coarse node and centre, in two buffers (``cdist`` and the
    # kernel's temporaries cost several times more on the 64 x 64 grid: fresh large buffers are
    # slow to fault in).
    r2, dy = _scratch(nx.shape[0], n)
    torch.sub(nx, cf[:, 0], out=r2).mul_(r2)
    torch.sub(ny, cf[:, 1], out=dy)
    r2.addcmul_(dy, dy)
    kg = torch.clamp(r2, min=1e-30, out=dy).log_().mul_(r2)
    coarse = torch.addmm(coef[n], kg, coef[:n]).addmm_(nodes, coef[n + 1 :])
    dense = _upsample(coarse.reshape(grid, grid, 2).numpy(), size)
    coarse = coarse.reshape(1, grid, grid, 2).permute(0, 3, 1, 2)
    q = c.float() if query is None else torch.from_numpy(np.asarray(query, dtype=np.float32) / scale)
    at_points = F.grid_sample(coarse, (q * 2 - 1)[None, None], mode="bilinear", align_corners=True)
    return torch.from_numpy(dense), at_points[0, :, 0].T.contiguous()


def _upsample(coarse: NDArray[np.float32], size: int) -> NDArray[np.float32]:
    """``(G, G, C)`` nodes on pixel centres ``0 .. S-1`` to ``(S, S, C)`` pixels, bilinearly (as
    ``F.interpolate(..., align_corners=True)`` to float rounding; OpenCV, one channel at a time:
    a tenth of the CPU time, and OpenCV's 2-channel float path rounds positions to 1/32 pixel)."""
    k = (coarse.shape[0] - 1) / (size - 1)
    m = np.array([[k, 0.0, 0.0], [0.0, k, 0.0]])
    out = np.empty((size, size, coarse.shape[2]), np.float32)
    for ch in range(coarse.shape[2]):
        out[..., ch] = cv2.warpAffine(np.ascontiguousarray(coarse[..., ch]), m, (size, size),
                                      flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_REPLICATE)
    return out


# --- the field -----------------------------------------------------------------------------------


def farthest_point_subset(points: NDArray[np.float64], k: int, first: int) -> NDArray[np.int64]:
    """Indices of ``k`` points spread over ``points`` ``(N, 2)`` by farthest-point sampling from ``first``."""
    n = len(points)
    if k >= n:
        return np.arange(n)
    x, y = points[:, 0], points[:, 1]
    chosen = np.empty(k, np.int64)
    chosen[0] = first
    dx, dy = x - x[first], y - y[first]
    dist = dx * dx + dy * dy
    for i in range(1, k):  # per coordinate, not np.sum over an axis: 4x faster for 478 points
        c = int(dist.argmax())
        chosen[i] = c
        dx, dy = x - x[c], y - y[c]
        np.minimum(dist, dx * dx + dy * dy, out=dist)
    return np.sort(chosen)


def _displacement(
    src: NDArray[np.float64],
    dst: NDArray[np.float64],
    size: int,
    config: WarpConfig,
    lam: float,
    mesh: tuple[NDArray[np.float64], NDArray[np.int64], NDArray[np.int64] | None] | None,
) -> torch.Tensor:
    """Raw ``(S, S, 2)`` displacement (before taper and support) for one method.

    ``mesh`` is ``triangulate(src, ...)`` (needed by ``"pa"`` and ``"hybrid"``).
    """
    anchors = border_anchors(size, config.anchors_per_side)
    points = np.concatenate([dst, anchors])  # output positions of the control points
    values = np.concatenate([src - dst, np.zeros_like(anchors)])  # output at dst samples src
    if config.method == "pa":
        assert mesh is not None
        return pa_interpolate(points, values, mesh[1], size, mesh[2])
    k = len(dst)
    first = int(np.argmax(np.sum((src - dst) ** 2, axis=1)))
    sub = farthest_point_subset(dst, config.tps_points, first)
    ctrl = np.concatenate([sub, np.arange(k, len(points))])
    dense, at_points = tps_displacement(points[ctrl], values[ctrl], size, lam, config.grid, query=points)
    if config.method == "tps":
        return dense
    assert mesh is not None
    residual = values - at_points.double().numpy()
    residual[np.linalg.norm(residual, axis=1) < RESIDUAL_EPS_PX] = 0.0
    residual[k:] = 0.0
    return dense.add_(pa_interpolate(points, residual, mesh[1], size, mesh[2]))


def build_field(
    src: NDArray[np.floating],
    dst: NDArray[np.floating],
    size: int,
    config: WarpConfig | None = None,
    *,
    triangles: NDArray[np.integer] | None = None,
    support: torch.Tensor | NDArray[np.floating] | None = None,
) -> WarpField:
    """Backward warp field taking the crop's ``src`` points to ``dst``.

    Args:
        src: ``(K, 2)`` crop pixels, the landmarks before the edit.
        dst: ``(K, 2)`` crop pixels, the same landmarks after the edit.
        size: crop side ``S``.
        config: method and regularization; defaults to ``WarpConfig()``.
        triangles: optional ``(T, 3)`` int indices into the K points (e.g. the face mesh) for the
            piecewise-affine part; Delaunay of ``src`` when omitted.
        support: optional ``(S, S)`` weight in [0, 1]; the displacement is multiplied by it, so the
            field is exactly the identity where it is 0. It should be 1 around every moved point.

    Returns:
        The field; exactly the identity when ``src == dst``. The fold guard: for ``"pa"`` and
        ``"hybrid"``, while triangles flip, the edit at their vertices is scaled by
        ``REPAIR_FACTOR``; then, while ``min_jacobian <= config.min_jacobian``, ``"tps"`` and
        ``"hybrid"`` multiply lambda by 10 (three times at most), and after that (or for ``"pa"``)
        the whole edit is scaled by ``REPAIR_FACTOR``. ``repairs`` counts the actions (at most
        ``config.max_repairs``); a field still folded after them reports ``min_jacobian <= 0``.
        Openings (:func:`opening_triangles` of the triangulation, given or Delaunay) are not
        folds: their triangles never count as flipped, and their pixels are left out of
        ``min_jacobian`` and ``folded_px``, so the guard repairs only real folds and an opened
        jaw keeps its full size.
    """
    config = config or WarpConfig()
    s, d = np.array(src, dtype=np.float64), np.array(dst, dtype=np.float64)  # copies: d is repaired
    if s.ndim != 2 or s.shape[1] != 2 or s.shape != d.shape or len(s) < 1 or int(size) < 4:
        raise ValueError(f"need src, dst (K, 2) and size >= 4; got {s.shape}, {d.shape}, {size}")
    if not (np.isfinite(s).all() and np.isfinite(d).all()):
        raise ValueError("src and dst must be finite")
    size = int(size)
    ident = _identity(size)
    if np.array_equal(s, d):
        return WarpField(ident.clone(), config.method, 0.0, 1.0, 0)
    weight = _taper(size, config.border * size)
    if support is not None:
        sup = torch.as_tensor(support, dtype=torch.float32).reshape(size, size).clamp(0.0, 1.0)
        weight = weight * sup
    lam = config.tps_lambda
    anchors = border_anchors(size, config.anchors_per_side)
    mesh = None if config.method == "tps" else triangulate(s, size, config.anchors_per_side, triangles)
    # Openings are found on the field's own triangles ("tps" has none: the Delaunay of ``src``).
    verts, tris = mesh[:2] if mesh is not None else triangulate(s, size, config.anchors_per_side, triangles)[:2]
    repairs = 0
    while True:
        out_verts = np.concatenate([d, anchors])
        if mesh is not None and repairs < config.max_repairs:
            flips = flipped_triangles(verts, out_verts, tris)
            if flips.any():
                flips &= ~opening_triangles(verts, out_verts, tris)
            if flips.any():
                bad = np.unique(tris[flips])
                bad = bad[bad < len(s)]
                d[bad] = s[bad] + REPAIR_FACTOR * (d[bad] - s[bad])
                repairs += 1
                continue
        disp = _displacement(s, d, size, config, lam, mesh).mul_(weight[..., None])
        sample = ident + disp
        min_det, folded_px = _folds(jacobian_det(sample), config.min_jacobian, verts, out_verts, tris, size)
        if min_det > config.min_jacobian or repairs >= config.max_repairs:
            break
        repairs += 1
        if config.method != "pa" and lam < 1000.0 * config.tps_lambda:
            lam *= 10.0  # with no flipped triangle, a fold comes from the spline
        else:
            d = s + REPAIR_FACTOR * (d - s)
    max_disp = float(torch.addcmul(disp[..., 0] * disp[..., 0], disp[..., 1], disp[..., 1]).max().sqrt())
    return WarpField(sample, config.method, max_disp, min_det, repairs, folded_px)


def _folds(det: torch.Tensor, threshold: float, src_verts: NDArray[np.float64], dst_verts: NDArray[np.float64],
           tris: NDArray[np.int64], size: int) -> tuple[float, int]:
    """Smallest Jacobian determinant ``det`` ``(S-1, S-1)`` outside the openings (1.0 if
    everything is an opening), and how many pixels there are at or below ``threshold``."""
    min_det = float(det.min())
    if min_det > threshold:
        return min_det, 0
    opening = opening_triangles(src_verts, dst_verts, tris)
    if not opening.any():
        return min_det, int(torch.count_nonzero(det <= threshold))
    inside = torch.from_numpy(opening_pixels(dst_verts, tris[opening], size))
    rest = det.masked_fill(inside, float("inf"))
    min_det = float(rest.min())
    return (1.0 if min_det == float("inf") else min_det), int(torch.count_nonzero(rest <= threshold))


def field_at(field: WarpField, points: NDArray[np.floating]) -> NDArray[np.float64]:
    """Sample positions ``(K, 2)`` the field assigns to output ``points`` ``(K, 2)`` (bilinear)."""
    pts = torch.from_numpy(np.asarray(points, dtype=np.float32))
    grid = (pts * (2.0 / (field.size - 1)) - 1.0)[None, None]
    img = field.sample_xy.permute(2, 0, 1)[None]
    out = F.grid_sample(img, grid, mode="bilinear", align_corners=True)
    return out[0, :, 0].T.double().numpy()
