"""Swap repair of a face that slides fast and half out of the picture (issue #6).

Real frames of the LivePortrait fixture are moved across a 512x512 canvas as
bench/robustness.py's ``border_in_out`` case moves them (the face's centre swings from 0.15 face
widths outside the left border to a face width inside, turning back at frame 12 of 24), and the
landmarker reads them in IMAGE mode. The plate track is what it reads; the swap track has the
same landmarks (a swap that sits its face exactly where the plate's is) and an expression score
that diverges on chosen frames, so that the restore plans those frames and the ramps around them.

- A swap placed where the plate is must get no motion from the plan, however fast the face
  slides (a Gaussian smoothing of the plate's position made it lag by 4-13 px, and the restore
  moved the swap's face by as much);
- a divergence read on a face mostly outside the picture is not flagged (MediaPipe makes up
  the part outside), one on a face partly outside is corrected less, and those frames are
  reported;
- the closed loop leaves the points outside the picture, or where the warp fades at its edge,
  alone (:func:`plugin.restore_loop.reachable_points`).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from compositing.crop import crop_for_landmarks
from plugin.editing import RenderConfig
from plugin.restore import _track_code
from plugin.restore_loop import reachable_points
from plugin.video import VideoReader
from synthesis.regions import inter_ocular
from synthesis.restore import RestoreConfig, inside_fraction, match_tracks, restore_pair
from synthesis.restore_loop import loop_correction
from tracking.analysis import SOURCE_CODES, Track
from tracking.landmarker import Landmarker, LandmarkerConfig
from tracking.observation import Source

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
#: Frames of the swing used (the landmarker, with its crop recovery, finds the face on all of them;
#: on 3 and 21 about half of it is outside).
FRAMES = range(3, 22)
PERIOD = 24
JAW = 25  # jawOpen
#: The swap's jawOpen exceeds the plate's by this on the diverging frames (threshold 0.25).
JAW_DIVERGENCE = 0.5
#: A swap placed exactly where the plate is: the plan may move no mesh point by more than this
#: on average, in inter-ocular distances (the inversion's and the smoother's own error; a
#: Gaussian-smoothed plate position moved it by 0.05-0.2 here).
STILL_SWAP_MAX_IOD = 0.015
SIZE = (512, 512)


def _canvas(image: np.ndarray, dx: int) -> np.ndarray:
    out = np.full_like(image, 40)
    w = image.shape[1]
    if dx >= 0:
        out[:, dx:] = image[:, :w - dx]
    else:
        out[:, :w + dx] = image[:, -dx:]
    return out


@pytest.fixture(scope="module")
def swing() -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """(frames, (N, 478, 3) landmarks, (N, 52) blendshapes) of the face swinging in and out."""
    src = FIXTURES / "liveportrait_d0.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found (the shared fixtures are needed for a real face)")
    with VideoReader(src) as reader:
        images = [f.image for f, _ in zip(reader, range(max(FRAMES) + 1), strict=False)]
    frames, lms, bss = [], [], []
    with Landmarker(LandmarkerConfig(running_mode="image", recover_missing=True)) as lm:
        ref = lm.detect_image(images[0])[0].landmarks[:468, 0]
        fw, cx = float(np.ptp(ref)), float(ref.min() + ref.max()) / 2
        for i in FRAMES:
            centre = -0.15 * fw + (0.5 - 0.5 * np.cos(2 * np.pi * i / PERIOD)) * 1.2 * fw
            img = _canvas(images[i], int(round(centre - cx)))
            faces = lm.detect_image(img)
            assert len(faces) == 1, f"frame {i}: {len(faces)} faces"
            frames.append(img)
            lms.append(faces[0].landmarks)
            bss.append(faces[0].blendshapes)
    return frames, np.stack(lms).astype(np.float32), np.stack(bss).astype(np.float32)


def _track(landmarks: np.ndarray, blendshapes: np.ndarray) -> Track:
    n = len(landmarks)
    fi = np.asarray(list(FRAMES), np.int64)
    boxes = np.concatenate([landmarks[:, :, :2].min(axis=1), landmarks[:, :, :2].max(axis=1)], axis=1)
    eye = np.tile(np.eye(4, dtype=np.float32), (n, 1, 1))
    zeros = np.zeros((n, 3), np.float32)
    return Track(0, fi, fi / 25.0, np.zeros(n, np.int32), landmarks, blendshapes, eye, zeros, landmarks.copy(),
                 blendshapes.copy(), eye.copy(), zeros.copy(), np.ones(n, np.float32), boxes.astype(np.float32),
                 np.full(n, SOURCE_CODES[Source.LANDMARKER], np.uint8))


def _restore(lms: np.ndarray, bss: np.ndarray, diverging: list[int], frame_size: tuple[int, int] | None = SIZE):
    plate = _track(lms, bss)
    sb = bss.copy()
    rows = [list(FRAMES).index(f) for f in diverging]
    sb[rows, JAW] = np.clip(sb[rows, JAW] + JAW_DIVERGENCE, 0, 1)
    swap = _track(lms.copy(), sb)
    pair = match_tracks([plate], [swap])[0]
    kw = {} if frame_size is None else {"frame_size": frame_size}
    return restore_pair(pair, plate, swap, RestoreConfig(), _track_code(plate), _track_code(swap), **kw)


def test_a_swap_placed_where_the_plate_is_gets_no_motion_while_the_face_slides(swing):
    _, lms, bss = swing
    inside = inside_fraction(lms, SIZE)
    # the diverging frames, where the face turns back, are whole; the ramps reach the fast slide
    r = _restore(lms, bss, [11, 12, 13], frame_size=None)
    plan = r.plan
    assert plan.frame_indices.size >= 9 and inside[list(FRAMES).index(12)] == 1.0
    moved = np.linalg.norm(plan.after[:, :468, :2] - plan.before[:, :468, :2], axis=2).mean(axis=1)
    iod = np.array([inter_ocular(b) for b in plan.before])
    assert (moved / iod).max() < STILL_SWAP_MAX_IOD, dict(zip(plan.frame_indices.tolist(), (moved / iod).round(3)))


def test_a_divergence_on_a_face_cut_by_the_border_is_trusted_less_and_reported(swing):
    _, lms, bss = swing
    inside = inside_fraction(lms, SIZE)
    cfg = RestoreConfig()
    cut = [f for f, v in zip(FRAMES, inside, strict=True) if v <= cfg.border_min_inside]
    partial = [f for f, v in zip(FRAMES, inside, strict=True) if cfg.border_min_inside + 0.1 < v < cfg.border_full_inside]
    assert cut and partial, inside.round(2)
    # a divergence only where the face is mostly outside: nothing is flagged or planned
    r = _restore(lms, bss, cut[:1])
    assert r.ranges == [] and r.plan.frame_indices.size == 0
    # without the frame size, the same made-up divergence is flagged (what the border check stops)
    assert _restore(lms, bss, cut[:1], frame_size=None).ranges
    # a divergence on a face partly outside: corrected, less than fully, and reported
    f = partial[0]
    r = _restore(lms, bss, [f])
    row = list(FRAMES).index(f)
    assert r.ranges and 0 < r.weights[row] < 1
    assert f in r.border_limited.tolist()
    whole = [g for g, v in zip(FRAMES, inside, strict=True) if v == 1.0]
    assert not set(whole) & set(r.border_limited.tolist())


def test_the_loop_leaves_points_the_warp_cannot_move_alone(swing):
    frames, lms, _ = swing
    inside = inside_fraction(lms, SIZE)
    row = int(np.argmin(inside))
    before = lms[row].astype(np.float64)
    assert inside[row] < 0.9
    after = before.copy()
    after[:, 0] += 2.0  # a small planned change everywhere
    crop = crop_for_landmarks(np.concatenate([before[:, :2], after[:, :2]]), SIZE, out_size=None)
    valid = reachable_points(before, after, crop, RenderConfig(device="cpu"))
    outside = (before[:, 0] < 0) | (after[:, 0] < 0)
    assert outside.any() and not valid[outside].any()
    # points near the left edge (inside the warp's fade) are unreachable too; the far side is reachable
    face = float(np.ptp(before[:468, 0]))
    near = (before[:, 0] >= 0) & (before[:, 0] < 0.5 * RenderConfig().picture_taper * face)
    assert not valid[near].any()
    far = before[:, 0] > before[:468, 0].max() - 0.25 * face
    assert valid[far].mean() > 0.9
    # the loop's correction grows only on reachable points
    iod = inter_ocular(before)
    c = loop_correction(after - before, np.zeros_like(before), np.zeros_like(before), iod, 1.0, 0.05, 3, valid)
    assert np.abs(c[~valid]).max() == 0.0
    assert np.abs(c[valid, :2]).max() > 0.0
