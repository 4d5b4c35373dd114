"""plugin.exemplar_frames: lending frames read forward once, kept as face crops until their last use."""

from __future__ import annotations

import numpy as np
import pytest

from plugin.exemplar_frames import IN_FLIGHT_FRAMES, ExemplarFrames, face_box
from plugin.video import VideoReader
from tests.plugin.media import write_clip

W, H = 96, 64


def _landmarks(x: float, y: float) -> np.ndarray:
    """A 'face' of 478 points filling a 20 x 16 box at (x, y)."""
    rng = np.random.default_rng(int(x * 7 + y))
    pts = np.column_stack([x + rng.uniform(0, 20, 478), y + rng.uniform(0, 16, 478), rng.uniform(-5, 5, 478)])
    pts[0, :2], pts[1, :2] = (x, y), (x + 20, y + 16)
    return pts.astype(np.float32)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory):
    folder = tmp_path_factory.mktemp("lending")
    # One keyframe for the whole clip: every step back would decode from frame 0.
    return write_clip(folder / "onegop.mp4", num_frames=40, width=W, height=H,
                      codec_options={"g": "250", "bf": "2", "crf": "18"})


def _frames(clip) -> dict[int, np.ndarray]:
    with VideoReader(clip) as reader:
        return {f.index: f.image for f in reader}


def test_reads_forward_keeps_crops_and_matches_the_frames(clip) -> None:
    truth = _frames(clip)
    lm = {(0, 30): _landmarks(10, 8), (0, 12): _landmarks(50, 30), (1, 30): _landmarks(60, 4),
          (0, 35): _landmarks(30, 20)}
    # the render asks for 30 first (frame 0 borrows from it), then 12 (frame 5), then 35 (frame 20)
    uses = {(0, 30): 3, (1, 30): 2, (0, 12): 8, (0, 35): 25}
    frames = ExemplarFrames(clip, uses, lm, budget_bytes=1 << 20)
    order = [((0, 30), 0), ((1, 30), 0), ((0, 12), 5), ((0, 30), 5), ((0, 35), 20)]
    for (tid, f), now in order:
        crop, moved = frames.get(tid, f, now)
        x0, y0, x1, y1 = face_box(lm[(tid, f)], (H, W))
        np.testing.assert_array_equal(crop, truth[f][y0:y1, x0:x1])
        np.testing.assert_allclose(moved[:, 0], lm[(tid, f)][:, 0] - x0)
        np.testing.assert_allclose(moved[:, 1], lm[(tid, f)][:, 1] - y0)
        np.testing.assert_array_equal(moved[:, 2], lm[(tid, f)][:, 2])
    # 12 and both faces of 30 came from the one pass to 30; 35 from going on: nothing was read twice
    assert frames.decoded == 3 and frames.reread == 0
    with pytest.raises(KeyError):
        frames.get(0, 13, 5)
    # past the last uses (and the frames still in flight), the crops are let go
    frames.get(0, 35, 25 + IN_FLIGHT_FRAMES)
    assert set(frames._crops) == {(0, 35)}
    frames.close()
    assert frames.kept_bytes == 0


def test_over_the_budget_a_frame_is_read_again_with_the_same_pixels(clip) -> None:
    truth = _frames(clip)
    lm = {(0, 10): _landmarks(10, 8), (0, 20): _landmarks(40, 20)}
    # no room for any crop passed on the way (the one asked for is kept all the same)
    frames = ExemplarFrames(clip, {(0, 10): 30, (0, 20): 30}, lm, budget_bytes=1)
    frames.get(0, 20, 0)  # 10 is passed on the way, but there is no room to keep it
    assert set(frames._crops) == {(0, 20)}
    crop, _ = frames.get(0, 10, 1)
    x0, y0, x1, y1 = face_box(lm[(0, 10)], (H, W))
    np.testing.assert_array_equal(crop, truth[10][y0:y1, x0:x1])
    assert frames.reread == 1 and frames.decoded == 3
    frames.get(0, 10, 2)
    assert frames.reread == 1 and set(frames._crops) == {(0, 10), (0, 20)}
    frames.close()
