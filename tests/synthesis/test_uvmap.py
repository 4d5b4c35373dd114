"""The canonical mesh's UV space: rasterization, mesh correspondences, unwrapping."""

from __future__ import annotations

import numpy as np

from synthesis import regions as rg
from synthesis import uvmap

#: Positions reproduced by a piecewise-affine map of an affine transform (float32 maps).
MAP_TOL_PX = 1e-2
#: Barycentric weights sum to 1 within this.
BARY_TOL = 1e-5


def _layout(size: float = 400.0) -> np.ndarray:
    """The UV layout as a frontal face: (468, 3) pixels, z = 0."""
    return np.concatenate([uvmap.uv_coords().astype(np.float64) * size, np.zeros((468, 1))], axis=1)


def test_uv_raster_covers_the_face_and_barycentrics_sum_to_one() -> None:
    tri_map, bary = uvmap.uv_raster(128)
    covered = tri_map >= 0
    assert 0.5 < covered.mean() < 0.8  # the face oval inside the unit square
    assert np.allclose(bary[covered].sum(axis=1), 1.0, atol=BARY_TOL)
    # most texels lie inside their triangle; edge texels extrapolate it, and every texel's
    # barycentric point is the texel centre itself
    assert (bary[covered] >= -1e-5).all(axis=1).mean() > 0.7
    uv = uvmap.uv_coords().astype(np.float64) * 128 - 0.5
    rr, cc = np.nonzero(covered)
    at = (bary[rr, cc][..., None] * uv[uvmap.triangles()[tri_map[rr, cc]]]).sum(axis=1)
    assert np.abs(at - np.stack([cc, rr], -1)).max() < MAP_TOL_PX
    # every triangle bigger than a texel shows up
    assert np.unique(tri_map[covered]).size > 0.6 * len(uvmap.triangles())


def test_mesh_closes_the_eye_and_mouth_openings() -> None:
    # the canonical mesh holds triangles across the openings (the tessellation does not)
    assert uvmap.region_triangles(rg.LEFT_EYE).size > 0
    assert uvmap.region_triangles(rg.LIPS_INNER_UPPER + rg.LIPS_INNER_LOWER).size > 0
    grown = uvmap.grow(rg.LEFT_EYE, 2)
    assert set(rg.LEFT_EYE) < set(grown)
    assert uvmap.region_triangles(grown).size > uvmap.region_triangles(rg.LEFT_EYE).size


def test_correspondence_of_an_affine_copy_is_that_affine() -> None:
    target = _layout()
    a = np.array([[0.9, 0.2], [-0.15, 1.1]])
    t = np.array([13.0, -7.5])
    source = target.copy()
    source[:, :2] = target[:, :2] @ a.T + t
    box = (100, 100, 300, 300)
    mx, my, covered = uvmap.correspondence_map(target, source, np.arange(len(uvmap.triangles())), box)
    ys, xs = np.mgrid[100:300, 100:300].astype(np.float64)
    ex = a[0, 0] * xs + a[0, 1] * ys + t[0]
    ey = a[1, 0] * xs + a[1, 1] * ys + t[1]
    assert covered.mean() > 0.9
    assert np.abs(mx[covered] - ex[covered]).max() < MAP_TOL_PX
    assert np.abs(my[covered] - ey[covered]).max() < MAP_TOL_PX


def test_unwrap_reads_the_pixel_each_texel_maps_to() -> None:
    size = 128
    lm = _layout(400.0) + np.array([50.0, 40.0, 0.0])
    ys, xs = np.mgrid[0:512, 0:512]
    image = np.stack([xs % 256, ys % 256, (xs // 256) * 100 + (ys // 256) * 50], -1).astype(np.uint8)
    tex, weight = uvmap.unwrap(image, lm, size)
    inside = weight > 0
    assert inside.mean() > 0.5
    # texel (r, c) sits at uv ((c + .5) / S, (r + .5) / S), i.e. at pixel uv * 400 + offset
    rr, cc = np.nonzero(inside)
    px = (cc + 0.5) / size * 400.0 + 50.0
    py = (rr + 0.5) / size * 400.0 + 40.0
    err_x = np.abs(tex[rr, cc, 0].astype(float) - np.round(px) % 256)
    assert np.median(np.minimum(err_x, 256 - err_x)) <= 2.0
    assert np.median(np.abs(tex[rr, cc, 1].astype(float) - np.round(py) % 256)) <= 2.0


def test_facing_is_one_for_a_flat_frontal_face_and_drops_when_turned() -> None:
    lm = _layout()
    facing = uvmap.triangle_facing(lm)
    assert np.median(facing) > 0.99
    # turn about the vertical axis by 60 degrees (x shrinks, z grows): facing falls to ~cos 60
    c, s = np.cos(np.radians(60)), np.sin(np.radians(60))
    turned = lm.copy()
    turned[:, 0], turned[:, 2] = c * lm[:, 0], s * lm[:, 0]
    assert abs(np.median(uvmap.triangle_facing(turned)) - c) < 0.05


def test_a_given_triangle_map_gives_the_same_correspondence() -> None:
    target = _layout()
    source = target * 1.1 + np.array([5.0, -3.0, 0.0])
    tris = uvmap.region_triangles(uvmap.grow(rg.LIPS, 3))
    box = (120, 200, 300, 330)
    tri_map = uvmap.triangle_map(target, tris, box, target[:, 2])
    a = uvmap.correspondence_map(target, source, tris, box)
    b = uvmap.correspondence_map(target, source, tris, box, tri_map=tri_map)
    assert a[2].any()
    for x, y in zip(a, b, strict=True):
        assert np.array_equal(x, y)
    # outside the triangles the maps point nowhere (-1), as cv2.remap's border expects
    assert np.all(a[0][~a[2]] == -1) and np.all(a[1][~a[2]] == -1)


def test_a_nearly_flat_triangle_does_not_map_pixels_far_into_the_source() -> None:
    # A closed eye: the upper lid laid onto the lower lid, a hair's breadth above it. The lid
    # line's triangles are nearly flat, and the pixels the rasterizer gives them lie up to half
    # a pixel off them: their affine maps must not throw those pixels across the source.
    target = _layout()
    for up, low in rg.LEFT_LID_PAIRS:
        target[up, :2] = target[low, :2] + np.array([0.0, -0.02])
    source = _layout()
    tris = uvmap.region_triangles(uvmap.grow(rg.LEFT_EYE, 1))
    pts = target[list(rg.LEFT_EYE), :2]
    box = (int(pts[:, 0].min()) - 10, int(pts[:, 1].min()) - 10, int(pts[:, 0].max()) + 10, int(pts[:, 1].max()) + 10)
    mx, my, covered = uvmap.correspondence_map(target, source, tris, box)
    tri_map = uvmap.triangle_map(target, tris, box, target[:, 2])
    corners = source[:, :2][uvmap.triangles()[tri_map[covered]]]
    lo, hi = corners.min(axis=1), corners.max(axis=1)
    xy = np.stack([mx[covered], my[covered]], -1)
    beyond = np.maximum(lo - xy, xy - hi).max(axis=1)
    assert covered.sum() > 100
    assert beyond.max() <= 4.0 + 1e-3  # EXTRAPOLATE_PX times MAX_EXTRAPOLATE_SCALE
    # on well-shaped triangles nothing changes: the affine copy test above stays exact
