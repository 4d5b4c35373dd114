"""Pose edits on a real face move the head, bend the neck, and leave the body and the picture's edge alone."""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import numpy as np

from compositing.mask import face_oval, polygon_size
from plugin.editing import EditStage, RenderConfig, face_field
from tracking.frame import Frame

from .test_editing import plan

#: Roll applied about the face's centre (degrees): a clear head tilt.
ROLL_DEG = 8.0
#: A nod as a pure upward shift of every landmark (frame pixels).
LIFT_PX = 16.0
#: The band of rows above the bar keeps at least this fraction of its brightness (it samples the
#: bright neck above it, which the nod lifts; noise and resampling only) ...
BAND_KEPT = 0.95
#: ... where without the fade at the picture's edge it samples the black bar: below this fraction.
BAND_DARKENED = 0.75


def rolled(lm: np.ndarray, deg: float) -> np.ndarray:
    c = face_oval(lm).mean(axis=0)
    a = np.deg2rad(deg)
    r = np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]])
    out = lm.copy()
    out[:, :2] = (lm[:, :2] - c) @ r.T + c
    return out


def render(image: np.ndarray, before: np.ndarray, after: np.ndarray, config: RenderConfig) -> np.ndarray:
    stage = EditStage([plan(before, after)], image.shape[:2], config)
    (out,) = stage.push(Frame(0, 0, Fraction(1, 25), image))
    return out.image


def test_a_head_roll_leaves_the_body_under_the_neck_untouched(astronaut_face) -> None:
    image, lm = astronaut_face
    config = RenderConfig(device="cpu")
    face = polygon_size([face_oval(lm)])
    below = int(lm[152, 1] + config.neck_fade * face) + 1  # rows past the neck's fade
    after = rolled(lm, ROLL_DEG)
    out = render(image, lm, after, config)
    assert np.any(out[: int(lm[152, 1])] != image[: int(lm[152, 1])])  # the head did turn
    assert np.array_equal(out[below:], image[below:])
    # The field itself is still there: without the fade it reaches down to the crop's border.
    crop = EditStage([plan(lm, after)], image.shape[:2], config).face_crop(0, 0)
    ax = np.arange(crop.size)
    f = crop.frame_trans_crop
    frame_y = f[1, 0] * ax[None, :] + f[1, 1] * ax[:, None] + f[1, 2]  # (S, S) frame row of each crop pixel
    under = frame_y > below + 1
    assert under.any()

    def moved_under(cfg: RenderConfig) -> float:
        disp = face_field(lm, after, crop, cfg).displacement().norm(dim=-1).numpy()
        return float(disp[under].max())

    assert moved_under(config) == 0.0
    assert moved_under(dataclasses.replace(config, neck_fade=0.0)) > 0.1


def test_a_nod_never_pulls_a_letterbox_bar_into_the_picture(astronaut_face) -> None:
    image, lm = astronaut_face
    chin = int(lm[152, 1])
    bar = chin + 24  # a black bar 40 rows high just under the chin, a bright neck above it
    image = image[: bar + 40].copy()
    image[chin + 4:bar] = np.random.default_rng(1).integers(110, 150, image[chin + 4:bar].shape)
    image[bar:] = 0
    config = RenderConfig(device="cpu", neck_fade=0.0)  # the picture's edge alone must hold
    after = lm.copy()
    after[:, 1] -= LIFT_PX
    x0, x1 = int(lm[:, 0].min()), int(lm[:, 0].max())
    band = (slice(bar - int(LIFT_PX), bar), slice(x0, x1))  # rows that would sample the bar
    out = render(image, lm, after, config)
    assert np.array_equal(out[bar:], image[bar:])
    assert out[band].mean() > BAND_KEPT * image[band].mean()
    loose = render(image, lm, after, dataclasses.replace(config, picture_taper=0.0))
    assert loose[band].mean() < BAND_DARKENED * image[band].mean()  # the bar, pulled up into the neck


def test_a_collapsed_face_gets_a_mask_without_an_error() -> None:
    from plugin.editing import blend_mask

    lm = np.full((478, 3), 50.0)  # every landmark on one pixel: no oval to fit a motion to
    mask = blend_mask(lm, lm + [3.0, 0.0, 0.0], 128, RenderConfig())
    assert mask.shape == (1, 1, 128, 128) and float(mask.max()) <= 1.0
