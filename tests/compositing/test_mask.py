"""Blend masks: the face oval before and after, dilated and feathered relative to face size."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from compositing.mask import FACE_OVAL, face_oval, face_region_mask, motion_weight, polygon_mask, polygon_size
from tracking.observation import NUM_LANDMARKS

FLOOR = 1.0 / 512.0
DILATE = 0.05
FEATHER = 0.03
#: Masks of the same face drawn at two scales agree to this after resizing: what is left is the
#: polygon's rasterization on a steep edge (a mask sized in pixels, not in face sizes, would
#: differ by about 0.5 there).
SCALE_TOL = 0.1


def oval_landmarks(cx: float, cy: float, rx: float, ry: float) -> np.ndarray:
    """``(478, 2)`` landmarks whose face-oval points lie on an ellipse (the rest at its centre)."""
    lm = np.tile(np.array([[cx, cy]], np.float64), (NUM_LANDMARKS, 1))
    t = np.linspace(-np.pi / 2, 3 * np.pi / 2, len(FACE_OVAL), endpoint=False)
    lm[list(FACE_OVAL)] = np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], 1)
    return lm


def test_face_oval_matches_mediapipe() -> None:
    from mediapipe.tasks.python.vision import FaceLandmarksConnections

    conns = FaceLandmarksConnections.FACE_LANDMARKS_FACE_OVAL
    assert tuple(c.start for c in conns) == FACE_OVAL
    assert all(a.end == b.start for a, b in zip(conns, conns[1:] + conns[:1]))


def test_mask_is_one_inside_zero_far_away_and_covers_before_and_after() -> None:
    size = 256
    before = oval_landmarks(120, 128, 50, 65)
    after = oval_landmarks(140, 128, 50, 65)  # the face moved right by 20 px
    m = face_region_mask(before, after, size, dilate=DILATE, feather=FEATHER, floor=FLOOR)[0, 0]
    assert m.shape == (size, size) and m.dtype == torch.float32
    assert float(m.min()) == 0.0 and float(m.max()) == 1.0
    assert float(m[128, 75]) == 1.0 and float(m[128, 185]) == 1.0  # inside before only / after only
    assert float(m[0, 0]) == 0.0 and float(m[128, 250]) == 0.0
    vals = m[(m > 0) & (m < 1)]
    assert float(vals.min()) >= FLOOR and float(vals.max()) <= 1 - FLOOR
    # Feathered: it falls off gradually outside the oval, not in one step.
    row = m[128, 190:240].numpy()
    assert np.all(np.diff(row) <= 1e-6) and (row > 0).sum() > 10


def test_mask_scales_with_the_face() -> None:
    # The same face at two scales; pixel j of the half-size crop covers pixels 2j, 2j + 1 of the
    # full-size one, so its centre is at full-size coordinate 2j + 0.5.
    kw = {"dilate": DILATE, "feather": FEATHER, "floor": FLOOR}
    small = face_region_mask(*(oval_landmarks(127.75, 127.75, 50, 64),) * 2, 256, **kw)
    large = face_region_mask(*(oval_landmarks(256, 256, 100, 128),) * 2, 512, **kw)
    down = cv2.resize(large[0, 0].numpy(), (256, 256), interpolation=cv2.INTER_AREA)
    assert np.abs(down - small[0, 0].numpy()).max() < SCALE_TOL


def test_hard_polygon_mask() -> None:
    poly = np.array([[10.0, 10.0], [50.0, 10.0], [50.0, 40.0], [10.0, 40.0]])
    m = polygon_mask([poly], 64, dilate_px=0.0, feather_px=0.0, floor=0.0)[0, 0]
    assert float(m[25, 30]) == 1.0 and float(m[5, 5]) == 0.0
    assert int(m.sum()) == 41 * 31  # pixel centres 10..50 by 10..40, edges included
    assert polygon_size([poly]) == 40.0


def test_face_oval_needs_mediapipe_landmarks() -> None:
    with pytest.raises(ValueError):
        face_oval(np.zeros((68, 2)))


def test_motion_weight() -> None:
    ax = torch.arange(32, dtype=torch.float32)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    ident = torch.stack((xx, yy), -1)
    assert float(motion_weight(ident, 0.5).abs().max()) == 0.0
    moved = ident.clone()
    moved[10:20, 10:20, 0] += 0.25
    moved[20:, :, 1] -= 2.0
    w = motion_weight(moved, 0.5)[0, 0]
    assert float(w[15, 15]) == pytest.approx(0.5)
    assert float(w[25, 5]) == 1.0 and float(w[5, 5]) == 0.0


def test_motion_weight_floor_drops_only_tiny_motion() -> None:
    from compositing.mask import MOTION_WEIGHT_FLOOR

    ax = torch.arange(16, dtype=torch.float32)
    yy, xx = torch.meshgrid(ax, ax, indexing="ij")
    moved = torch.stack((xx, yy), -1)
    tiny = 0.5 * MOTION_WEIGHT_FLOOR * 0.5  # half the floor's displacement at full_at_px 0.5
    moved[:8, :, 0] += tiny
    moved[8:, :, 0] += 0.25
    w = motion_weight(moved, 0.5)[0, 0]
    assert float(w[:8].abs().max()) == 0.0
    assert float(w[12, 3]) == pytest.approx(0.5)
    assert float(motion_weight(moved, 0.5, floor=0.0)[0, 0, 3, 3]) == pytest.approx(tiny / 0.5)
    with pytest.raises(ValueError):
        motion_weight(moved, 0.5, floor=1.0)
