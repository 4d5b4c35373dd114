"""Occluders on real frames: the LivePortrait face, tracked by the real landmarker, with a card
held over its mouth, light that changes, and a patch inside the face.

The landmarks are the clean clip's: the landmarker keeps tracking a face under a card and makes
up the features there, so the mesh stays where the face is, as here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from plugin.analyze import run_analysis
from plugin.video import VideoReader
from synthesis.occluders import OccluderConfig, face_luma, found, track_masks
from tests.plugin.media import write_clip

CLIP = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures" / "liveportrait_d0.mp4"
FRAMES = 30
COVERED = range(10, 20)


@pytest.fixture(scope="module")
def face(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[np.ndarray], np.ndarray]:
    if not CLIP.exists():
        pytest.skip(f"fixture clip missing: {CLIP}")
    with VideoReader(CLIP) as reader:
        images = [f.image.copy() for f in reader.frames(0, FRAMES)]
    path = write_clip(tmp_path_factory.mktemp("occ") / "lp.mkv", codec="ffv1", pix_fmt="bgr0", images=images)
    (track,) = run_analysis(path).analysis.tracks
    assert len(track.frame_indices) == FRAMES
    return images, track.landmarks


def _masks(images: list[np.ndarray], landmarks: np.ndarray, config: OccluderConfig | None = None) -> np.ndarray:
    got = [face_luma(im, lm) for im, lm in zip(images, landmarks, strict=True)]
    lumas, seen = np.stack([g[0] for g in got]), np.stack([g[1] for g in got])
    return track_masks(lumas, seen, np.arange(0, len(images), 2), config)


def _board(shape: tuple[int, ...], cell: int = 16) -> np.ndarray:
    yy, xx = np.mgrid[0:shape[0], 0:shape[1]]
    return np.repeat((((yy // cell + xx // cell) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)


def _card(images: list[np.ndarray], frames) -> list[np.ndarray]:
    """The frames with a checkerboard card held over the mouth on ``frames``."""
    board = _board(images[0].shape)
    held = [im.copy() for im in images]
    for i in frames:
        held[i][300:, 150:370] = board[300:, 150:370]
    return held


def _covered_frames(masks: np.ndarray) -> list[int]:
    """The frames found covered themselves (not the fades around them)."""
    return np.flatnonzero(found(masks)).tolist()


def test_a_card_over_the_mouth_is_found_on_its_frames_and_nowhere_else(face) -> None:
    images, landmarks = face
    held = _card(images, COVERED)
    assert _covered_frames(_masks(images, landmarks)) == []
    masks = _masks(held, landmarks)
    assert _covered_frames(masks) == list(COVERED)
    # most of the face's lower half, where the card is
    assert all((masks[i][80:, :] > 0.5).mean() > 0.3 for i in COVERED)


def test_light_is_no_occluder(face) -> None:
    """A strobe (burnt-out frames), a dimmer and a hard spotlight edge sweeping across the face."""
    images, landmarks = face
    h, w = images[0].shape[:2]
    lit = []
    for i, im in enumerate(images):
        f = im.astype(np.float32)
        edge = w * (0.25 + 0.5 * i / (len(images) - 1))
        ramp = 0.35 + 1.0 / (1 + np.exp(-(np.arange(w) - edge) / (w * 0.02)))
        f = f * (ramp[None, :, None] * np.array([1.0, 0.85, 0.6])[None, None])
        if i % 6 == 0:
            f = f * 2.0 + 60
        elif i % 6 == 3:
            f = f * 0.4
        lit.append(np.clip(f, 0, 255).astype(np.uint8))
    assert _covered_frames(_masks(lit, landmarks)) == []


def test_a_change_inside_the_face_that_reaches_no_edge_is_the_faces_own(face) -> None:
    """A textured patch between the brows (as a frown or a swap's artefact would change them):
    found without the outline rule, dropped with it."""
    images, landmarks = face
    board = _board(images[0].shape, cell=6)
    patched = [im.copy() for im in images]
    for i in COVERED:
        x, y = landmarks[i][168, :2].round().astype(int)  # between the eyes
        patched[i][y - 30:y + 10, x - 25:x + 25] = board[y - 30:y + 10, x - 25:x + 25]
    assert set(COVERED) <= set(_covered_frames(_masks(patched, landmarks, OccluderConfig(min_outline=0.0))))
    assert _covered_frames(_masks(patched, landmarks)) == []


def test_a_single_frame_is_voted_out(face) -> None:
    images, landmarks = face
    assert _covered_frames(_masks(_card(images, [15]), landmarks)) == []
    assert _covered_frames(_masks(_card(images, [15, 16, 17]), landmarks)) == [15, 16, 17]


def test_config_is_checked() -> None:
    from tracking.errors import ConfigError

    with pytest.raises(ConfigError):
        OccluderConfig(grow_at=0.9, seed_at=0.8)
    with pytest.raises(ConfigError):
        OccluderConfig(reference_rows=2)
    with pytest.raises(ConfigError):
        OccluderConfig(fade=-1)


def test_a_mask_fades_in_and_out_around_its_run(face) -> None:
    images, landmarks = face
    held = _card(images, COVERED)
    masks = _masks(held, landmarks, OccluderConfig(fade=2))
    peak = masks.reshape(len(masks), -1).max(axis=1)
    first, last = COVERED[0], COVERED[-1]
    assert np.allclose(peak[[first - 2, first - 1, last + 1, last + 2]], [1 / 3, 2 / 3, 2 / 3, 1 / 3], atol=0.01)
    assert peak[first - 3] == 0 and peak[last + 3] == 0
    assert _covered_frames(masks) == list(COVERED)
    none = _masks(held, landmarks).reshape(len(masks), -1).max(axis=1)  # the default: no fade
    assert none[first - 1] == 0 and none[last + 1] == 0


def test_a_face_the_landmarker_misregistered_is_no_occluder(face, monkeypatch: pytest.MonkeyPatch) -> None:
    """The mesh 14 pixels off the face on some frames (a landmarker's slip): every feature is a
    few texels from where the reference has it, which the registration slack forgives; without
    it the whole face read as covered."""
    import synthesis.occluders

    images, landmarks = face
    moved = [np.roll(im, 14, axis=1) if i in COVERED else im for i, im in enumerate(images)]
    assert _covered_frames(_masks(moved, landmarks)) == []
    monkeypatch.setattr(synthesis.occluders, "REGISTRATION_SLACK", 0)
    assert set(_covered_frames(_masks(moved, landmarks))) & set(COVERED)


def test_a_face_mostly_outside_the_picture_is_not_looked_at(face) -> None:
    """Where the frame shows little of the face (here the card's frames show only its right 40%),
    its registration is too loose to compare: the card is found on the whole face only."""
    images, landmarks = face
    held = _card(images, COVERED)
    got = [face_luma(im, lm) for im, lm in zip(held, landmarks, strict=True)]
    lumas, seen = np.stack([g[0] for g in got]), np.stack([g[1] for g in got])
    assert _covered_frames(track_masks(lumas, seen, np.arange(0, FRAMES, 2))) == list(COVERED)
    cut = seen.copy()
    cut[list(COVERED), :, :int(0.6 * seen.shape[2])] = False  # the face's left 60% outside the frame
    assert _covered_frames(track_masks(lumas, cut, np.arange(0, FRAMES, 2))) == []
