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


def _frontal_face(cx: float = 100.0, cy: float = 100.0, scale: float = 6.0) -> np.ndarray:
    """(478, 3) pixels: the canonical mesh seen from the front (y down, nearer = smaller z)."""
    from tracking.geometry import canonical_mesh

    v = canonical_mesh().vertices[:468].astype(np.float64)
    lm = np.zeros((478, 3))
    lm[:468] = np.c_[cx + scale * v[:, 0], cy - scale * v[:, 1], -scale * v[:, 2]]
    lm[468:] = lm[468]
    return lm


def test_an_occluder_is_put_back_on_the_face_and_past_it_only_where_its_colours_are() -> None:
    """A grey card over the lower face going on below the chin, beside a green background: the
    lower face and the card below it are covered; the background beside it and the upper face
    are not."""
    from compositing.mask import face_oval
    from compositing.occlusion import occluder_weight
    from synthesis.occluders import UV_SIDE

    lm = _frontal_face()
    image = np.zeros((200, 200, 3), np.uint8)
    image[:] = (40, 160, 60)  # green background
    oval = face_oval(lm)
    import cv2

    cv2.fillPoly(image, [np.round(oval).astype(np.int32)], (220, 170, 150))  # skin
    chin_y = int(lm[152, 1])
    card_x = slice(80, 120)
    image[int(lm[13, 1]):, card_x] = (128, 128, 128)  # the card from the mouth down past the chin
    mask_uv = np.zeros((UV_SIDE, UV_SIDE), np.float32)
    mask_uv[int(0.7 * UV_SIDE):, int(0.4 * UV_SIDE):int(0.6 * UV_SIDE)] = 1.0
    w = occluder_weight(mask_uv, lm, (0, 0, 200, 200), reach=0.3, image=image)
    assert w is not None
    assert w[chin_y - 3, 100] > 0.9  # on the face, in the mask
    assert w[chin_y + 8, 100] > 0.9  # the card below the chin
    assert w[chin_y + 8, 60] == 0 and w[chin_y + 8, 140] == 0  # green beside it
    assert w[int(lm[1, 1]) - 20, 100] == 0  # the upper face
    assert occluder_weight(np.zeros_like(mask_uv), lm, (0, 0, 200, 200), 0.3, image) is None
