"""compositing.occlusion: a nearer face's head is put back after an edit of the face behind it."""

from __future__ import annotations

import numpy as np

from compositing.mask import FACE_OVAL
from compositing.occlusion import HEAD_GROW, head_polygon, keep_in_front, protection


def ring_face(cx: float, cy: float, r: float) -> np.ndarray:
    """(478, 3) landmarks whose face-oval points lie on a circle (the rest at its centre)."""
    lm = np.zeros((478, 3))
    lm[:, :2] = cx, cy
    angles = np.linspace(0, 2 * np.pi, len(FACE_OVAL), endpoint=False)
    lm[list(FACE_OVAL), 0] = cx + r * np.cos(angles)
    lm[list(FACE_OVAL), 1] = cy + r * np.sin(angles)
    return lm


def test_the_head_is_the_oval_grown_about_its_centre() -> None:
    poly = head_polygon(ring_face(50, 60, 20))
    assert np.allclose(np.linalg.norm(poly - (50, 60), axis=1), 20 * (1 + HEAD_GROW))


def test_protection_is_full_inside_the_head_and_fades_outside() -> None:
    poly = head_polygon(ring_face(50, 50, 20))  # radius 25
    w = protection([poly], (0, 0, 100, 100))
    assert w is not None and w.shape == (100, 100)
    assert w[50, 50] == 1 and w[50, 74] == 1  # inside
    assert 0 < w[50, 76] < 1  # the soft edge just outside
    assert w[50, 90] == 0 and w[0, 0] == 0
    # a box the head does not reach: nothing to protect
    assert protection([poly], (200, 200, 300, 300)) is None
    # a box holding part of the head: the weights of that part, in the box's own pixels
    part = protection([poly], (40, 40, 60, 60))
    assert part is not None and np.array_equal(part, w[40:60, 40:60])


def test_keep_in_front_puts_the_front_head_back_and_nothing_else() -> None:
    rng = np.random.default_rng(0)
    original = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    edited = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)
    before_edit = edited.copy()
    front = ring_face(100, 60, 20)
    out = keep_in_front(edited, original, [front], (0, 0, 160, 120))
    w = protection([head_polygon(front)], (0, 0, 160, 120))
    assert out is edited
    assert np.array_equal(out[w == 1], original[w == 1])
    assert np.array_equal(out[w == 0], before_edit[w == 0])
    soft = (w > 0) & (w < 1)
    lo = np.minimum(original, before_edit)[soft].astype(int)
    hi = np.maximum(original, before_edit)[soft].astype(int)
    assert soft.any() and np.all((out[soft] >= lo) & (out[soft] <= hi))


def test_keep_in_front_leaves_an_unedited_frame_and_no_front_face_alone() -> None:
    image = np.full((40, 40, 3), 7, np.uint8)
    assert keep_in_front(image, image, [ring_face(20, 20, 5)], (0, 0, 40, 40)) is image
    edited = np.full((40, 40, 3), 9, np.uint8)
    assert np.all(keep_in_front(edited, image, [], (0, 0, 40, 40)) == 9)
