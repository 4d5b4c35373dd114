"""Smoothing: invariants (constants, steps), fast motion kept, jitter removed, VFR, causal stage."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tracking.errors import InputError
from tracking.filters import (
    ChannelSmoothing, Method, adaptive_smooth, local_poly_smooth, noise_sigma, one_euro_smooth, rts_smooth,
    smooth_series,
)
from tracking.smoothing import (
    CausalSmoother, SmoothingConfig, angles_from_transforms, rigid_join, rigid_split, smooth_segment,
    transforms_to_vectors, vectors_to_transforms,
)
from tests.tracking import synthetic_faces as sf
from tracking.tracks import TrackedFace

#: A constant must come back to float64 round-off.
CONSTANT_TOL = 1e-9
#: A step's 50% crossing may move by this many frames (zero phase: it should not move at all).
STEP_DELAY_TOL_FRAMES = 0.05
#: The smoothed peak of a blink may lose this fraction.
BLINK_TOL = 0.15
#: Jitter must fall at least this much; error may grow at most this much (synthetic ground truth).
MIN_JITTER_FACTOR = 5.0
MAX_ERROR_RATIO = 1.10
#: A local fit of the signal's own degree returns it up to its (tiny) ridge regularization.
POLY_EXACT_TOL = 1e-6
FPS = 25.0
IOD_PX = 80.0

ALL_METHODS = {
    "local_poly": ChannelSmoothing(Method.LOCAL_POLY, sigma_s=0.08),
    "rts": ChannelSmoothing(Method.RTS, process_noise=1e4),
    "one_euro": ChannelSmoothing(Method.ONE_EURO, min_cutoff_hz=1.0, beta=5.0),
    "adaptive": ChannelSmoothing(Method.ADAPTIVE),
}


@pytest.mark.parametrize("name", sorted(ALL_METHODS))
def test_constant_survives_unchanged(name: str) -> None:
    t = np.arange(50) / FPS
    y = np.full((50, 7, 3), 3.25)
    out = smooth_series(t, y, ALL_METHODS[name], vector_axis=2)
    assert np.abs(out - y).max() < CONSTANT_TOL


@pytest.mark.parametrize("name", sorted(ALL_METHODS))
def test_step_is_not_delayed(name: str) -> None:
    n, k = 60, 30
    t = np.arange(n) / FPS
    y = (np.arange(n) >= k).astype(float)[:, None] * np.ones((1, 2))
    out = smooth_series(t, y, ALL_METHODS[name], sigma=np.full(2, 0.01), vector_axis=1)[:, 0]
    j = int(np.argmax(out >= 0.5))
    crossing = j - 1 + (0.5 - out[j - 1]) / (out[j] - out[j - 1])
    assert abs(crossing - (k - 0.5)) <= STEP_DELAY_TOL_FRAMES


def test_adaptive_keeps_a_noisy_step_sharp() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(80) / FPS
    y = np.where(np.arange(80) >= 40, 1.0, 0.0)[:, None] + rng.normal(0, 0.01, (80, 1))
    out = adaptive_smooth(t, y, ChannelSmoothing())[:, 0]
    assert out[39] < 0.1 and out[40] > 0.9


def test_whole_segment_constant_unchanged() -> None:
    face = sf.pose_landmarks(sf.person(0), (300.0, 200.0), IOD_PX, yaw=10.0)
    n = 30
    obs = sf.observation(0, face, yaw=10.0, pitch=-3.0, roll=2.0)
    seg = smooth_segment(np.arange(n) / FPS, np.repeat(face[None], n, 0), np.full((n, 52), 0.3),
                         np.repeat(obs.transform[None], n, 0), SmoothingConfig())
    assert np.abs(seg.landmarks - face).max() < 1e-3  # float32 output
    assert np.abs(seg.blendshapes - 0.3).max() < 1e-6
    assert np.abs(seg.angles - [10.0, -3.0, 2.0]).max() < 1e-3


def _blink_series(frames: int, n: int = 60, start: int = 20) -> np.ndarray:
    half = frames / 2
    i = np.arange(n)
    return np.clip(1 - np.abs(i - start - half) / half, 0, 1)


@pytest.mark.parametrize("frames", [2, 4, 6])
def test_blink_peak_survives(frames: int) -> None:
    rng = np.random.default_rng(frames)
    n = 60
    truth = 0.05 + 0.9 * _blink_series(frames, n)
    logit = np.log(truth / (1 - truth)) + rng.normal(0, 0.08, n)  # sigmoid-output noise
    scores = np.full((n, 52), 0.05)
    scores[:, 9] = 1 / (1 + np.exp(-logit))
    t = np.arange(n) / FPS
    out = smooth_series(t, scores, SmoothingConfig().blendshapes)
    peak = 20 + frames // 2
    assert abs((out[peak, 9] - 0.05) / (truth[peak] - 0.05) - 1) <= BLINK_TOL


def _noisy_track(times: np.ndarray, noise_px: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Ground truth and noisy landmarks of a face that sways, turns fast and blinks; and the blink."""
    rng = np.random.default_rng(seed)
    shape = sf.person(seed)
    yaw = 8 * np.sin(2 * np.pi * 0.4 * times) + 25 / (1 + np.exp(-(times - times.mean()) / 0.05))
    blink = np.clip(1 - np.abs(times - 1.0 - 0.08) / 0.08, 0, 1)  # 4 frames at 25 fps
    gt = np.stack([sf.pose_landmarks(shape, (320 + 30 * np.sin(2 * np.pi * 0.2 * s), 240.0), IOD_PX,
                                     yaw=y, roll=2 * np.sin(s), blink=b) for s, y, b in zip(times, yaw, blink)])
    shared = rng.normal(0, 0.8 * noise_px, (len(times), 1, 3))
    own = rng.normal(0, 0.5 * noise_px, gt.shape)
    return gt, gt + shared + own, blink


def _jitter(lm: np.ndarray) -> float:
    return float(np.mean(np.linalg.norm(np.diff(lm[..., :2], 2, axis=0), axis=-1)) / IOD_PX)


def _rms(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def test_jitter_falls_and_error_does_not_grow_on_a_noisy_track() -> None:
    t = np.arange(100) / FPS
    gt, raw, _ = _noisy_track(t, noise_px=1.0, seed=1)
    n = len(t)
    seg = smooth_segment(t, raw, np.full((n, 52), 0.1), np.repeat(np.eye(4)[None], n, 0), SmoothingConfig())
    assert _jitter(raw) / _jitter(seg.landmarks) >= MIN_JITTER_FACTOR
    assert _rms(seg.landmarks, gt) <= MAX_ERROR_RATIO * _rms(raw, gt)


def test_lid_closure_survives_landmark_smoothing() -> None:
    t = np.arange(100) / FPS
    gt, raw, blink = _noisy_track(t, noise_px=0.5, seed=2)
    n = len(t)
    seg = smooth_segment(t, raw, np.full((n, 52), 0.1), np.repeat(np.eye(4)[None], n, 0), SmoothingConfig())
    gap = lambda lm: (lm[:, list(sf.LOWER_LIDS), 1] - lm[:, list(sf.UPPER_LIDS), 1]).mean(axis=1)  # noqa: E731
    peak = int(np.argmax(blink))
    open_rows = blink == 0
    want = np.median(gap(gt)[open_rows]) - gap(gt)[peak]
    got = np.median(gap(seg.landmarks)[open_rows]) - gap(seg.landmarks)[peak]
    assert abs(got / want - 1) <= BLINK_TOL


def test_local_fit_follows_time_not_sample_index() -> None:
    """Irregular sampling of a quadratic motion: a time-aware order-2 fit returns it exactly."""
    rng = np.random.default_rng(0)
    t = np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 15], size=80))
    y = (3.0 + 2.0 * t - 4.0 * t**2)[:, None]
    out = local_poly_smooth(t, y, sigma_s=0.1, order=2)
    assert np.abs(out - y).max() < POLY_EXACT_TOL
    # the same fit on sample indices (what a frame-based filter does) is visibly wrong
    wrong = local_poly_smooth(np.arange(80) / 30.0, y, sigma_s=0.1, order=2)
    assert np.abs(wrong - y).max() > 1e-3


def test_vfr_and_cfr_sampling_of_one_motion_agree() -> None:
    """The same motion sampled at 25 fps and at a variable rate smooths to the same curve."""
    rng = np.random.default_rng(1)
    motion = lambda s: np.sin(2 * np.pi * 0.5 * s)  # noqa: E731
    t_cfr = np.arange(75) / 25.0
    t_vfr = np.concatenate([[0.0], np.cumsum(rng.choice([1 / 60, 1 / 30, 1 / 20], size=120))])
    t_vfr = t_vfr[t_vfr < 3.0]
    params = ChannelSmoothing(Method.LOCAL_POLY, sigma_s=0.12)
    cfr = local_poly_smooth(t_cfr, motion(t_cfr)[:, None], params.sigma_s)[:, 0]
    vfr = local_poly_smooth(t_vfr, motion(t_vfr)[:, None], params.sigma_s)[:, 0]
    inside = (t_vfr > 0.5) & (t_vfr < 2.5)
    assert np.abs(np.interp(t_vfr[inside], t_cfr, cfr) - vfr[inside]).max() < 0.01


def test_times_must_increase() -> None:
    with pytest.raises(InputError, match="increase"):
        local_poly_smooth(np.array([0.0, 0.04, 0.04, 0.08]), np.zeros((4, 1)), 0.1)


def test_noise_sigma_estimates_white_noise() -> None:
    rng = np.random.default_rng(5)
    t = np.arange(400) / FPS
    y = np.sin(t)[:, None] + rng.normal(0, 0.2, (400, 3))
    assert np.allclose(noise_sigma(t, y), 0.2, rtol=0.15)


def test_rts_and_one_euro_follow_a_slow_ramp() -> None:
    t = np.arange(50) / FPS
    y = (2.0 * t)[:, None]
    assert np.abs(rts_smooth(t, y, 1e4) - y).max() < 1e-3
    assert np.abs(one_euro_smooth(t, y, ChannelSmoothing(Method.ONE_EURO))[10:-10] - y[10:-10]).max() < 0.05


def test_pose_vectors_round_trip_and_angles() -> None:
    angles = np.array([[10.0, -5.0, 3.0], [-40.0, 20.0, -15.0], [0.0, 0.0, 0.0]])
    tf = np.stack([sf.observation(0, np.zeros((478, 3)), *a).transform for a in angles])
    assert np.abs(angles_from_transforms(tf) - angles).max() < 1e-4
    back = vectors_to_transforms(transforms_to_vectors(tf))
    assert np.abs(back - tf).max() < 1e-5


def test_rigid_split_round_trip() -> None:
    t = np.arange(10) / FPS
    gt, raw, _ = _noisy_track(t, 1.0, 0)
    params, residual, reference = rigid_split(raw)
    assert np.abs(rigid_join(params, residual, reference) - raw).max() < 1e-8


def _faces(raw: np.ndarray, times: np.ndarray) -> list[TrackedFace]:
    return [TrackedFace(0, float(s), sf.observation(i, lm)) for i, (s, lm) in enumerate(zip(times, raw))]


def test_causal_smoother_latency_and_offline_agreement() -> None:
    t = np.arange(60) / FPS
    _, raw, _ = _noisy_track(t, 1.0, 4)
    latency = 9  # >= 3 sigma of the heavy fit (0.12 s at 25 fps): the window holds the whole kernel
    config = SmoothingConfig()
    stage = CausalSmoother(config, latency=latency, history=latency)
    out: list[TrackedFace] = []
    for i, face in enumerate(_faces(raw, t)):
        got = stage.push(face)
        assert len(got) == (1 if i >= latency else 0)
        out += got
    out += stage.flush()
    assert [f.observation.frame_index for f in out] == list(range(60))
    offline = smooth_segment(t, raw, np.zeros((60, 52)), np.repeat(np.eye(4)[None], 60, 0), config).landmarks
    causal = np.stack([f.observation.landmarks for f in out])
    inside = slice(2 * latency, 60 - 2 * latency)
    # the windows see the same samples in the interior; noise estimates differ a little
    assert np.abs(causal[inside] - offline[inside]).mean() < 0.1
    assert _jitter(raw) / _jitter(causal) >= MIN_JITTER_FACTOR


def test_causal_smoother_reset_returns_held_faces() -> None:
    t = np.arange(10) / FPS
    _, raw, _ = _noisy_track(t, 1.0, 5)
    stage = CausalSmoother(latency=3)
    faces = _faces(raw, t)
    out = [f for face in faces[:5] for f in stage.push(face)]
    stage.reset()  # a cut after frame 4: frames 2, 3, 4 are still held
    out += stage.push(faces[5])
    out += stage.flush()
    assert [f.observation.frame_index for f in out] == list(range(6))


FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


@pytest.mark.slow
@pytest.mark.skipif(not (FIXTURES / "liveportrait_d0.mp4").exists(), reason="shared fixtures not present")
def test_real_clip_blink_survives_and_jitter_does_not_grow() -> None:
    """MediaPipe on a whole real clip with a blink: the blink is kept, residual jitter falls."""
    import av
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    model = Path(__file__).resolve().parents[2] / "tracking" / "models" / "face_landmarker.task"
    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(model)), num_faces=2,
                                        running_mode=vision.RunningMode.VIDEO, output_face_blendshapes=True,
                                        output_facial_transformation_matrixes=True)
    times, lms, bss, tfs = [], [], [], []
    with av.open(str(FIXTURES / "liveportrait_d0.mp4")) as c, vision.FaceLandmarker.create_from_options(opts) as lm:
        stream = c.streams.video[0]
        for frame in c.decode(stream):
            img = frame.to_ndarray(format="rgb24")
            t = float(frame.pts * stream.time_base)
            res = lm.detect_for_video(mp.Image(image_format=mp.ImageFormat.SRGB, data=img), int(t * 1000))
            h, w = img.shape[:2]
            times.append(t)
            lms.append([[p.x * w, p.y * h, p.z * w] for p in res.face_landmarks[0]])
            bss.append([s.score for s in res.face_blendshapes[0]])
            tfs.append(res.facial_transformation_matrixes[0])
    raw = np.array(lms)
    seg = smooth_segment(np.array(times), raw, np.array(bss), np.array(tfs), SmoothingConfig())
    blink = int(np.argmax(np.array(bss)[:, 9]))
    gap = lambda x: (x[:, list(sf.LOWER_LIDS), 1] - x[:, list(sf.UPPER_LIDS), 1]).mean(axis=1)  # noqa: E731
    open_gap = np.median(gap(raw))
    kept = (open_gap - gap(seg.landmarks)[blink]) / (open_gap - gap(raw)[blink])
    assert abs(kept - 1) <= BLINK_TOL
    assert abs(seg.blendshapes[blink, 9] / np.array(bss)[blink, 9] - 1) <= BLINK_TOL

    def residual_jitter(x: np.ndarray) -> float:  # after removing each frame's 2-D similarity
        params, residual, _ = rigid_split(x)
        return float(np.mean(np.linalg.norm(np.diff(residual[..., :2], 2, axis=0), axis=-1)))
    assert residual_jitter(seg.landmarks.astype(np.float64)) < residual_jitter(raw)


def test_track_angles_use_the_same_convention_as_observations() -> None:
    from tracking.pose import euler_from_matrix, matrix_from_euler
    from tracking.smoothing import angles_from_transforms

    rng = np.random.default_rng(3)
    for yaw, pitch, roll in rng.uniform(-40, 40, (20, 3)):
        m = np.eye(4)
        m[:3, :3] = 1.7 * matrix_from_euler(yaw, pitch, roll)  # any uniform scale
        got = angles_from_transforms(m[None])[0]
        assert np.allclose(got, euler_from_matrix(m), atol=1e-6)
        assert np.allclose(got, (yaw, pitch, roll), atol=1e-6)
