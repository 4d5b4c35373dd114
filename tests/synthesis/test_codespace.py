"""Inversion into identity, pose and expression: exact re-rendering, known poses, real footage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from synthesis.codespace import (
    FLIP,
    FaceCode,
    Identity,
    Pose,
    fit_pose,
    invert_single,
    invert_track,
    render_code,
    render_landmarks,
)
from synthesis.regions import LIPS, canonical_points, inter_ocular, rigid_weights
from tracking.errors import InputError
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.mediapipe_results import BLENDSHAPE_NAMES
from tracking.pose import euler_from_matrix, matrix_from_euler, rotation_angle

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"

#: Re-rendering an unedited code must give the input landmarks back to float rounding.
RERENDER_TOL_PX = 1e-6
#: A fit to noiseless synthetic landmarks must find the pose to this.
SYNTH_ROT_TOL_DEG = 1e-6
#: With landmark noise and a mouth expression, a track's poses within this of the truth.
NOISY_ROT_TOL_DEG = 0.5
#: Our weak-perspective fit against MediaPipe's perspective matrix: yaw and roll agree within
#: this; pitch differs by a constant offset (about 3.5 degrees on the LivePortrait clip) within the second.
MP_YAW_ROLL_TOL_DEG = 2.0
MP_PITCH_TOL_DEG = 6.0
#: The fit scale varies less over a blink than the per-frame inter-ocular distance does.
BLINK_FRAMES = slice(60, 72)


def _fixture(name: str) -> Path:
    path = FIXTURES / name
    if not path.exists():
        pytest.skip(f"shared fixture {path} not present")
    return path


@pytest.fixture(scope="module")
def d0_track() -> dict[str, np.ndarray]:
    """Every frame of the LivePortrait clip through the real landmarker (IMAGE mode)."""
    import av

    path = _fixture("liveportrait_d0.mp4")
    lms, bss, angles = [], [], []
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm, av.open(str(path)) as c:
        for i, frame in enumerate(c.decode(video=0)):
            faces = lm.detect_image(frame.to_ndarray(format="rgb24"), i)
            assert len(faces) == 1, f"frame {i}"
            lms.append(faces[0].landmarks)
            bss.append(faces[0].blendshapes)
            angles.append((faces[0].yaw, faces[0].pitch, faces[0].roll))
    return {"landmarks": np.stack(lms), "blendshapes": np.stack(bss), "angles": np.array(angles)}


def _synthetic(shape: np.ndarray, yaw: float, pitch: float, roll: float, scale: float = 20.0) -> np.ndarray:
    rot = matrix_from_euler(yaw, pitch, roll)
    return scale * shape @ (FLIP @ rot).T + np.array([256.0, 240.0, 10.0])


def test_fit_pose_recovers_a_known_pose() -> None:
    shape = canonical_points()
    px = _synthetic(shape, 12.0, -7.0, 5.0, scale=23.0)
    pose = fit_pose(px, shape)
    assert rotation_angle(pose.rotation, matrix_from_euler(12.0, -7.0, 5.0)) < SYNTH_ROT_TOL_DEG
    assert pose.scale == pytest.approx(23.0, rel=1e-9)
    yaw, pitch, roll = euler_from_matrix(pose.rotation)
    assert (yaw, pitch, roll) == pytest.approx((12.0, -7.0, 5.0), abs=1e-6)
    assert np.abs(pose.to_pixels(shape) - px).max() < RERENDER_TOL_PX


def test_pose_convention_nose_turns_toward_image_right_for_positive_yaw() -> None:
    shape = canonical_points()
    front, turned = _synthetic(shape, 0.0, 0.0, 0.0), _synthetic(shape, 10.0, 0.0, 0.0)
    assert turned[4, 0] > front[4, 0]  # nose tip moves right
    assert front[263, 0] > front[33, 0]  # the subject's left eye corner is on the image right
    assert front[10, 1] < front[152, 1]  # forehead above chin (y down)


def test_rigid_weights_leave_out_blinking_corners_lips_and_irises() -> None:
    w = rigid_weights()
    assert w[33] == 0.0 and w[263] == 0.0
    assert np.all(w[468:] == 0.0)
    assert np.all(w[list(LIPS)] == 0.0)
    assert w[168] > 0 and w[6] > 0  # nose bridge
    assert w.sum() == pytest.approx(1.0)


def test_invert_single_renders_back_exactly() -> None:
    shape = canonical_points() * 1.05 + np.random.default_rng(0).normal(0.0, 0.05, (478, 3))
    px = _synthetic(shape, -8.0, 4.0, -3.0)
    identity, code = invert_single(px)
    assert np.abs(render_code(identity, code) - px).max() < RERENDER_TOL_PX
    assert not code.expression.any()
    # the identity is brought to the canonical mesh's gauge: the 5% size difference goes to the scale
    assert identity.inter_ocular == pytest.approx(inter_ocular(canonical_points()), rel=0.03)
    assert code.pose.scale == pytest.approx(20.0 * 1.05, rel=0.03)


def test_invert_track_recovers_synthetic_poses_under_noise_and_expression() -> None:
    rng = np.random.default_rng(1)
    neutral = canonical_points()
    angles = [(a, -0.5 * a, 0.3 * a) for a in np.linspace(-15.0, 15.0, 12)]
    frames = []
    for k, (y, p, r) in enumerate(angles):
        shape = neutral.copy()
        if k % 3 == 0:  # a smile in some frames: mouth corners up and out
            shape[[61, 291], 1] += 0.4
            shape[61, 0] -= 0.3
            shape[291, 0] += 0.3
        frames.append(_synthetic(shape, y, p, r) + rng.normal(0.0, 0.3, (478, 3)))
    code = invert_track(np.stack(frames))
    for k, angle in enumerate(angles):
        assert rotation_angle(code.rotations[k], matrix_from_euler(*angle)) < NOISY_ROT_TOL_DEG
    # the identity is the neutral shape (up to its gauge): the smile is in the expressions only
    smile_frames = code.expressions[::3]
    assert np.all(smile_frames[:, 291, 1] > 0.2)
    assert np.abs(code.expressions[1::3, 291]).max() < 0.1


def test_invert_track_reproduces_real_landmarks_exactly(d0_track: dict[str, np.ndarray]) -> None:
    lm = d0_track["landmarks"]
    code = invert_track(lm, d0_track["blendshapes"])
    assert len(code) == len(lm)
    err = max(np.abs(render_code(code.identity, code.frame(i)) - lm[i]).max() for i in range(len(lm)))
    assert err < RERENDER_TOL_PX
    frame = code.frame(10)
    rendered = render_landmarks(code.identity, frame.pose, frame.expression)
    assert np.array_equal(rendered, render_code(code.identity, frame))


def test_identity_favours_neutral_frames(d0_track: dict[str, np.ndarray]) -> None:
    """Most of the clip smiles (frames 18-66), yet the identity's mouth is the neutral one."""
    bs = d0_track["blendshapes"]
    smile = bs[:, BLENDSHAPE_NAMES.index("mouthSmileLeft")]
    assert (smile > 0.5).mean() > 0.5
    code = invert_track(d0_track["landmarks"], bs)
    iod = code.identity.inter_ocular
    mouth = list(LIPS)
    neutral = np.flatnonzero(smile < 0.05)
    smiling = np.flatnonzero(smile > 0.8)
    off_neutral = np.linalg.norm(code.expressions[neutral][:, mouth], axis=2).mean() / iod
    off_smile = np.linalg.norm(code.expressions[smiling][:, mouth], axis=2).mean() / iod
    assert off_neutral < 0.03 < off_smile
    plain = invert_track(d0_track["landmarks"])  # no blendshapes: a plain median, which smiles
    assert np.linalg.norm(plain.expressions[neutral][:, mouth], axis=2).mean() / iod > off_neutral


def test_track_pose_agrees_with_mediapipe(d0_track: dict[str, np.ndarray]) -> None:
    code = invert_track(d0_track["landmarks"], d0_track["blendshapes"])
    ours = np.array([euler_from_matrix(r) for r in code.rotations])
    theirs = d0_track["angles"]
    assert np.abs(ours[:, 0] - theirs[:, 0]).max() < MP_YAW_ROLL_TOL_DEG
    assert np.abs(ours[:, 2] - theirs[:, 2]).max() < MP_YAW_ROLL_TOL_DEG
    assert np.abs(ours[:, 1] - theirs[:, 1]).max() < MP_PITCH_TOL_DEG


def test_scale_comes_from_the_fit_not_the_eye_corners(d0_track: dict[str, np.ndarray]) -> None:
    """Through the blink, the per-frame inter-ocular distance wobbles more than the fit scale."""
    lm = d0_track["landmarks"]
    code = invert_track(lm, d0_track["blendshapes"])
    iod = np.array([inter_ocular(x) for x in lm[BLINK_FRAMES]])
    scale = code.scales[BLINK_FRAMES]
    assert np.ptp(scale) / scale.mean() < np.ptp(iod) / iod.mean()


def test_records_are_validated_and_frozen() -> None:
    with pytest.raises(ValueError):
        Pose(1.0, np.eye(3) * 2.0, np.zeros(3))
    with pytest.raises(ValueError):
        Identity(np.zeros((468, 3)))
    with pytest.raises(ValueError):
        FaceCode(Pose(1.0, np.eye(3), np.zeros(3)), np.zeros((478, 2)), np.zeros(52))
    identity, code = invert_single(_synthetic(canonical_points(), 0.0, 0.0, 0.0))
    with pytest.raises(ValueError):
        identity.shape[0, 0] = 1.0
    with pytest.raises(ValueError):
        code.expression[0, 0] = 1.0


def test_bad_input_is_refused() -> None:
    good = _synthetic(canonical_points(), 0.0, 0.0, 0.0)
    bad = good.copy()
    bad[5, 0] = np.nan
    with pytest.raises(InputError):
        invert_single(bad)
    with pytest.raises(InputError):
        invert_track(good[None, :468])
    with pytest.raises(InputError):
        invert_track(np.stack([good, good]), confidence=np.zeros(2))
    with pytest.raises(InputError):
        invert_track(np.stack([good, good]), blendshapes=np.zeros((3, 52)))
