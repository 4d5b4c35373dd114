from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from plugin.demo import (
    ASTRONAUT_FACE_CENTRE,
    MotionSettings,
    astronaut_image,
    motion_homographies,
    write_demo_clip,
)
from plugin.video import VideoReader

#: Mean absolute difference (0-255) allowed between a demo frame and the image it encodes
#: (H.264 at crf 10 after yuv420p subsampling).
ENCODE_MAD_TOL = 3.0


def test_astronaut_is_shipped_as_rgb() -> None:
    img = astronaut_image()
    assert img.shape == (512, 512, 3) and img.dtype == np.uint8
    # The suit is white and the flag's red is in the top-left quadrant: red dominates somewhere.
    assert (img[..., 0].astype(int) - img[..., 2].astype(int)).max() > 100


def test_motion_starts_at_identity_and_moves_the_face() -> None:
    homs = motion_homographies((512, 512), ASTRONAUT_FACE_CENTRE, MotionSettings(num_frames=40))
    assert np.allclose(homs[0], np.eye(3))
    centre = np.array([*ASTRONAUT_FACE_CENTRE, 1.0])
    moved = [(h @ centre)[:2] / (h @ centre)[2] for h in homs]
    travel = np.linalg.norm(np.array(moved) - centre[:2], axis=1)
    assert travel.max() > 5.0  # the face really moves
    assert travel.max() < 60.0  # and stays in the frame


def test_demo_clip_has_the_frames_and_ground_truth(tmp_path: Path) -> None:
    settings = MotionSettings(num_frames=12)
    clip = write_demo_clip(tmp_path / "demo.mp4", settings)
    truth = json.loads(clip.with_suffix(".motion.json").read_text())
    assert len(truth["frame_trans_still"]) == 12
    with VideoReader(clip) as reader:
        frames = list(reader)
    assert [f.index for f in frames] == list(range(12))
    first = frames[0].image.astype(np.float32)
    assert np.abs(first - astronaut_image().astype(np.float32)).mean() < ENCODE_MAD_TOL
