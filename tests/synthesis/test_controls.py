"""The shipped named controls: each moves its region the intended way and nothing far away."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from mediapipe.tasks.python.vision import FaceLandmarksConnections

from compositing.crop import crop_for_landmarks, extract
from compositing.mask import face_region_mask, motion_weight
from compositing.warp import apply_field, paste_back
from compositing.blend import BlendConfig
from synthesis import regions as rg
from synthesis.codespace import invert_single, render_code
from synthesis.controls import control, listing, named_controls
from synthesis.deltas import apply_delta
from synthesis.warpfield import build_field
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.mediapipe_results import BLENDSHAPE_NAMES

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
PACKAGED_ASTRONAUT = Path(__file__).resolve().parents[2] / "plugin" / "data" / "astronaut.png"

NAMES = (
    "blink_left", "blink_right", "squint", "smile", "mouth_stretch", "jaw_open", "brow_raise",
    "gaze_x", "gaze_y", "head_yaw", "head_pitch", "head_roll",
)  # fmt: skip
#: Geodesic distance (inter-ocular units) beyond a control's moved points at which nothing moves.
FAR_IOD = 0.5
#: Neighbouring mesh points differ in displacement by at most this fraction of the largest
#: displacement (a control moving only a few points would jump by 1 at their edges).
SMOOTH_JUMP = 0.75
#: Expected direction of motion, canonical units (x subject's left, y up), inter-ocular units.
MIN_MOTION_IOD = 0.02
#: Mesh triangles smaller than this (pixels^2) are slivers whose orientation any sub-pixel motion
#: flips (at the mouth corners); they are left out of the fold check.
SLIVER_PX2 = 0.5


def _edges() -> np.ndarray:
    return np.array([(c.start, c.end) for c in FaceLandmarksConnections.FACE_LANDMARKS_TESSELATION])


def _triangles() -> np.ndarray:
    """The open mesh's triangles (no eye or mouth interior): MediaPipe lists each as 3 edges."""
    e = _edges()
    assert np.array_equal(e[0::3, 1], e[1::3, 0]) and np.array_equal(e[2::3, 1], e[0::3, 0])
    return np.stack([e[0::3, 0], e[1::3, 0], e[2::3, 0]], axis=1)


@pytest.fixture(scope="module")
def astronaut() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The astronaut still, its landmarks and blendshapes (real landmarker)."""
    path = FIXTURES / "skimage_astronaut.png"
    path = path if path.exists() else PACKAGED_ASTRONAUT
    image = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        face = lm.detect_image(image)[0]
    return image, face.landmarks.astype(np.float64), face.blendshapes


def test_the_shipped_set_is_complete_and_documented() -> None:
    controls = named_controls()
    assert tuple(controls) == NAMES
    for name, delta in controls.items():
        assert delta.name == name and delta.max_strength > 0 and len(delta.description) > 40
        assert control(name) is delta
        assert np.all((delta.region >= 0) & (delta.region <= 1))
        moved = np.linalg.norm(delta.displacement, axis=1) > 0
        assert np.all(delta.region[moved] > 0), f"{name} moves points outside its region"
    assert [n for n, _, _ in listing()] == list(NAMES)
    assert controls["head_yaw"].max_strength == 10.0 and controls["head_pitch"].max_strength == 8.0
    with pytest.raises(KeyError, match="known: blink_left"):
        control("wink")


def _mean(delta_name: str, ids: tuple[int, ...] | list[int], axis: int) -> float:
    return float(control(delta_name).displacement[list(ids), axis].mean())


def test_blinks_close_the_named_eye_only() -> None:
    for side, other in (("left", "right"), ("right", "left")):
        d = control(f"blink_{side}").displacement
        upper, lower, iris = rg.EYES[side]
        down = -d[list(upper[1:-1]), 1]
        up = d[list(lower[1:-1]), 1]
        assert np.all(down > MIN_MOTION_IOD)  # upper lid down ...
        assert np.all(up >= 0) and np.all(up < down / 3)  # ... onto a lower lid rising a little
        assert d[iris[0], 1] < 0 and d[iris[2], 1] < 0  # iris centre and top fold down with the lid
        assert not d[list(rg.EYES[other][0] + rg.EYES[other][1] + rg.EYES[other][2])].any()
        lower_up, upper_down = control(f"blink_{side}").lids[side]
        assert lower_up + upper_down == pytest.approx(1.0) and upper_down > lower_up
        readout = control(f"blink_{side}").blendshapes
        assert readout[BLENDSHAPE_NAMES.index(f"eyeBlink{side.capitalize()}")] > 0
        assert readout[BLENDSHAPE_NAMES.index(f"eyeBlink{other.capitalize()}")] == 0
    # subject's left is canonical x > 0 (image right of a frontal face)
    assert np.all(rg.canonical_points()[list(rg.LEFT_EYE), 0] > 0)


def test_expression_controls_move_the_intended_way() -> None:
    corner_r, corner_l = rg.MOUTH_CORNERS_OUTER
    assert _mean("squint", rg.LEFT_EYE_LOWER[1:-1], 1) > MIN_MOTION_IOD / 2
    assert _mean("squint", rg.RIGHT_EYE_UPPER[1:-1], 1) < 0
    smile = control("smile").displacement
    assert smile[corner_l, 0] > MIN_MOTION_IOD and smile[corner_r, 0] < -MIN_MOTION_IOD  # out
    assert smile[corner_l, 1] > MIN_MOTION_IOD and smile[corner_r, 1] > MIN_MOTION_IOD  # up
    stretch = control("mouth_stretch").displacement
    assert stretch[corner_l, 0] > MIN_MOTION_IOD and abs(stretch[corner_l, 1]) < 1e-9
    jaw = control("jaw_open").displacement
    assert jaw[152, 1] < -0.1 and jaw[17, 1] < -0.1  # chin and lower lip down
    assert abs(jaw[0, 1]) < 0.01  # upper lip stays
    assert not jaw[list(rg.NOSE + rg.LEFT_EYE + rg.RIGHT_EYE)].any()
    assert _mean("brow_raise", rg.LEFT_BROW + rg.RIGHT_BROW, 1) > MIN_MOTION_IOD
    assert not control("brow_raise").displacement[list(rg.LEFT_EYE + rg.RIGHT_EYE + rg.LIPS)].any()
    irises = list(rg.LEFT_IRIS + rg.RIGHT_IRIS)
    assert np.all(control("gaze_x").displacement[irises, 0] > 0)
    assert np.all(control("gaze_y").displacement[irises, 1] > 0)
    assert np.count_nonzero(np.linalg.norm(control("gaze_x").displacement, axis=1)) == 10
    for name in ("head_yaw", "head_pitch", "head_roll"):
        delta = control(name)
        assert delta.kind == "pose" and not delta.displacement.any()
        assert np.count_nonzero(delta.pose) == 1 and delta.pose.max() == 1.0


#: Landmarks each control must leave exactly where they are (far from what it moves).
FAR = {
    "blink_left": (*rg.RIGHT_EYE, *rg.RIGHT_IRIS, *rg.LIPS, *rg.NOSE, *rg.JAW, *rg.LEFT_BROW),
    "blink_right": (*rg.LEFT_EYE, *rg.LEFT_IRIS, *rg.LIPS, *rg.NOSE, *rg.JAW, *rg.RIGHT_BROW),
    "squint": (*rg.LIPS, *rg.JAW, *rg.LEFT_BROW, *rg.RIGHT_BROW, 10, 151),
    "smile": (*rg.LEFT_EYE, *rg.RIGHT_EYE, *rg.LEFT_BROW, *rg.RIGHT_BROW, 10, 151, 168),
    "mouth_stretch": (*rg.LEFT_EYE, *rg.RIGHT_EYE, *rg.LEFT_BROW, *rg.RIGHT_BROW, 10, 151, 168),
    "jaw_open": (*rg.LEFT_EYE, *rg.RIGHT_EYE, *rg.LEFT_BROW, *rg.RIGHT_BROW, *rg.NOSE, 10, 151),
    "brow_raise": (*rg.LIPS, *rg.JAW, 1, 4, *rg.LEFT_EYE, *rg.RIGHT_EYE),
}


@pytest.mark.parametrize("name", list(FAR))
def test_falloff_is_smooth_and_nothing_far_away_moves(name: str) -> None:
    d = control(name).displacement
    assert not d[list(FAR[name])].any()
    mag = np.linalg.norm(d, axis=1)
    assert (mag == 0).sum() > 200  # most of the face stays exactly still
    # neighbours move together: no mesh edge jumps by the full displacement ...
    e = _edges()
    jump = np.linalg.norm(d[e[:, 0]] - d[e[:, 1]], axis=1)
    assert jump.max() < SMOOTH_JUMP * mag.max()
    # ... and the motion fades out over points beyond the ones that carry it
    carried = np.count_nonzero(mag > 0.25 * mag.max())
    fading = np.count_nonzero((mag > 0) & (mag < 0.25 * mag.max()))
    assert fading > 0.3 * carried


@pytest.mark.parametrize("name", [n for n in NAMES if not n.startswith("head")])
def test_no_mesh_triangle_folds_on_a_real_face(astronaut: tuple[np.ndarray, np.ndarray, np.ndarray], name: str) -> None:
    """At its documented range, a control turns no triangle of the open mesh over in the image."""
    _, lm, _ = astronaut
    identity, code = invert_single(lm)
    delta = control(name)
    tri = _triangles()
    out = render_code(identity, apply_delta(code, identity, delta, delta.max_strength))

    def area(p: np.ndarray) -> np.ndarray:
        a, b, c = p[tri[:, 0], :2], p[tri[:, 1], :2], p[tri[:, 2], :2]
        return (b[:, 0] - a[:, 0]) * (c[:, 1] - a[:, 1]) - (b[:, 1] - a[:, 1]) * (c[:, 0] - a[:, 0])

    before, after = area(lm) / 2.0, area(out) / 2.0
    big = np.abs(before) >= SLIVER_PX2
    assert big.sum() > 0.9 * len(tri)
    assert np.all((np.sign(before) * after > -0.01 * np.abs(before))[big]), name


def _warp(image: np.ndarray, src: np.ndarray, dst: np.ndarray, keep: list[int]) -> np.ndarray:
    crop = crop_for_landmarks(src[:468], image.shape[:2], out_size=512)
    m = crop.crop_trans_frame
    s = src[keep, :2] @ m[:2, :2].T + m[:2, 2]
    d = dst[keep, :2] @ m[:2, :2].T + m[:2, 2]
    field = build_field(s, d, crop.size)
    cfg = BlendConfig()
    mask = face_region_mask(s, d, crop.size, dilate=cfg.dilate, feather=cfg.feather, floor=cfg.floor)
    mask = mask * motion_weight(field.sample_xy, cfg.motion_px)
    return paste_back(image, apply_field(extract(image, crop), field.sample_xy), crop, mask, cfg)


def test_blink_left_closes_the_image_right_eye_and_mediapipe_reads_eye_blink_left(
    astronaut: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    """Renders each blink on the astronaut (the warp leaves out the iris points, which the blink
    folds onto the lid line) and re-detects: the subject's left eye is on the image right, and
    MediaPipe's eyeBlinkLeft is that eye's score."""
    image, lm, bs = astronaut
    identity, code = invert_single(lm)
    keep = list(range(468))
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as landmarker:
        for side, other in (("left", "right"), ("right", "left")):
            dst = render_code(identity, apply_delta(code, identity, control(f"blink_{side}"), 1.0))
            upper = list(rg.EYES[side][0][1:-1])
            moved = dst[upper, 1] - lm[upper, 1]
            assert np.all(moved > 0)  # the upper lid comes down in the image
            assert (lm[upper, 0].mean() > lm[:, 0].mean()) == (side == "left")
            again = landmarker.detect_image(_warp(image, lm, dst, keep))[0]
            change = again.blendshapes - bs
            this = change[BLENDSHAPE_NAMES.index(f"eyeBlink{side.capitalize()}")]
            that = change[BLENDSHAPE_NAMES.index(f"eyeBlink{other.capitalize()}")]
            assert this > 0.1 and this > that + 0.1, (side, this, that)


def test_gaze_y_lids_follow_the_iris_hinged_at_the_corners() -> None:
    from synthesis import regions as rg

    d = control("gaze_y").displacement
    for upper, lower, iris in rg.EYES.values():
        mid_up, mid_lo = upper[len(upper) // 2], lower[len(lower) // 2]
        assert d[iris[0], 1] > d[mid_up, 1] > d[mid_lo, 1] > 0  # iris most, then upper lid, lower lid
        assert d[upper[0], 1] == 0 and d[upper[-1], 1] == 0  # the corners stay


def test_jaw_open_on_an_open_mouth_takes_a_borrowed_mouth_whole(astronaut: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    """The astronaut smiles with her teeth showing: jaw_open at its range stretches them taller
    under a warp, so where an exemplar is found it goes in at (nearly) full weight. At part weight
    its dark gap shows as a grey band over the warped teeth."""
    from plugin.texture_stage import TextureConfig
    from synthesis.exemplars import need_of, raw_features, state

    _, lm, _ = astronaut
    identity, code = invert_single(lm)
    delta = control("jaw_open")
    out = render_code(identity, apply_delta(code, identity, delta, delta.max_strength))
    before, after = (state(raw_features(p[None], "mouth"), "mouth", 1.0) for p in (lm, out))
    assert before[0, 0] > 0.05  # open: teeth show
    need = float(need_of("mouth", before, after)[0])
    assert min(need / TextureConfig().full_weight_need, 1.0) >= 0.9
