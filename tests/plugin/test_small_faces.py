"""Small faces: a face about 60 px wide in a 1080p frame (a wide shot) is found and tracked by
default, from the first frame, because the missed-face search also runs on small tiles; with
--large-faces-only (tiles of the whole shorter side) it is not."""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np
import pytest

from plugin.analyze import run_analysis
from plugin.cli import LARGE_FACE_TILES, SMALL_FACE_INTERVAL_S, _add_analysis_options
from plugin.commands import _analysis_config
from tracking.recovery import RecoveryConfig, tile_sides

from .media import write_clip

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
#: Face width in the 1080p frame (the astronaut's face spans about 150 of her 512 pixels).
FACE_PX = 60
FRAMES = 6


def _options(*argv: str) -> argparse.Namespace:
    p = argparse.ArgumentParser()
    _add_analysis_options(p)
    return p.parse_args(list(argv))


def test_the_options_set_the_search() -> None:
    default = _analysis_config(_options()).landmarker
    assert min(default.recovery.tile_scales) <= 0.25 and default.small_tile_interval_s is None
    assert _analysis_config(_options("--small-faces")).landmarker.small_tile_interval_s == SMALL_FACE_INTERVAL_S
    assert _analysis_config(_options("--large-faces-only")).landmarker.recovery.tile_scales == LARGE_FACE_TILES
    with pytest.raises(SystemExit):
        _options("--small-faces", "--large-faces-only")


def test_tile_sides_are_distinct_and_never_below_the_minimum() -> None:
    cfg = RecoveryConfig(tile_scales=(1.0, 0.5, 0.25), min_tile_px=192)
    assert tile_sides(1080, 1920, cfg) == [1080, 540, 270]
    assert tile_sides(720, 1280, cfg) == [720, 360, 192]
    assert tile_sides(224, 224, cfg) == [224, 192]  # 0.5 and 0.25 both become 192
    assert tile_sides(100, 300, cfg) == [100]  # a frame smaller than the minimum: one size


def test_a_small_face_in_a_wide_frame_is_tracked_unless_large_faces_only(tmp_path) -> None:
    still = FIXTURES / "skimage_astronaut.png"
    if not still.exists():
        pytest.skip(f"fixture missing: {still}")
    face = cv2.imread(str(still))[:, :, ::-1]
    scale = FACE_PX / 150.0
    small = cv2.resize(face, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(0)
    images = []
    for i in range(FRAMES):
        canvas = cv2.GaussianBlur(rng.integers(60, 200, (1080, 1920, 3), dtype=np.uint8), (0, 0), 6)
        y, x = 500, 1300 + 3 * i
        canvas[y:y + small.shape[0], x:x + small.shape[1]] = small
        images.append(np.ascontiguousarray(canvas))
    clip = write_clip(tmp_path / "wide.mp4", num_frames=FRAMES, width=1920, height=1080, images=images)
    large_only = run_analysis(clip, _analysis_config(_options("--large-faces-only")), cache_dir=tmp_path / "c1").analysis
    found = run_analysis(clip, _analysis_config(_options()), cache_dir=tmp_path / "c2").analysis
    assert not [t for t in large_only.tracks if len(t.frame_indices)]
    tracks = [t for t in found.tracks if len(t.frame_indices)]
    assert len(tracks) == 1 and len(tracks[0].frame_indices) == FRAMES
    box = tracks[0].landmarks[0, :, :2]
    assert 1290 < box[:, 0].mean() < 1300 + small.shape[1] and 500 < box[:, 1].mean() < 500 + small.shape[0]
