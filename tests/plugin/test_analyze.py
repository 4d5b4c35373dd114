"""The analysis pass on real frames with the real landmarker, and its cache."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from plugin.analyze import AnalysisConfig, analyze_frames, run_analysis, summarize
from plugin.demo import MotionSettings, write_demo_clip
from tracking.frame import Frame
from tracking.landmarker import LandmarkerConfig

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_demo_clip(tmp_path_factory.mktemp("clip") / "demo.mp4", MotionSettings(num_frames=12))


def test_one_face_followed_through_every_frame(clip: Path, tmp_path: Path) -> None:
    result = run_analysis(clip, cache_dir=tmp_path)
    a = result.analysis
    assert not result.from_cache and result.cache_path is not None and result.cache_path.exists()
    assert a.frame_count == 12 and len(a.tracks) == 1
    track = a.tracks[0]
    assert track.frame_indices.tolist() == list(range(12))
    # The face sits where the still put it: the nose tip near the motion's pivot.
    nose = track.landmarks[:, 1, :2]
    assert np.all(np.linalg.norm(nose - np.array([228.0, 130.0]), axis=1) < 60)
    summary = summarize(a)
    assert summary["frames_with_a_track"] == 12 and summary["tracks"][0]["gaps"] == []


def test_cache_is_reused_and_keyed_by_settings(clip: Path, tmp_path: Path) -> None:
    first = run_analysis(clip, cache_dir=tmp_path)
    again = run_analysis(clip, cache_dir=tmp_path)
    assert again.from_cache and again.cache_path == first.cache_path
    assert np.array_equal(again.analysis.tracks[0].landmarks, first.analysis.tracks[0].landmarks)
    other = AnalysisConfig(landmarker=dataclasses.replace(LandmarkerConfig(), num_faces=1))
    third = run_analysis(clip, other, cache_dir=tmp_path)
    assert not third.from_cache and third.cache_path != first.cache_path


def test_frames_without_a_face_give_no_track() -> None:
    rng = np.random.default_rng(1)
    frames = [Frame(i, i, Fraction(1, 25), rng.integers(0, 255, (96, 128, 3), dtype=np.uint8)) for i in range(4)]
    analysis, _ = analyze_frames(frames, AnalysisConfig())
    assert analysis.frame_count == 4 and analysis.tracks == ()


@pytest.mark.skipif(not (FIXTURES / "ghost_2person.mp4").exists(), reason="shared fixtures not present")
def test_two_people_get_two_stable_ids_on_real_footage() -> None:
    from plugin.video import VideoReader

    with VideoReader(FIXTURES / "ghost_2person.mp4") as reader:
        frames = list(reader.frames(0, 16))
    analysis, _ = analyze_frames(frames, AnalysisConfig())
    assert len(analysis.tracks) == 2
    width = frames[0].width
    sides = []
    for track in analysis.tracks:
        assert track.frame_indices.size >= 14  # both people in (nearly) every frame
        centre_x = track.landmarks[:, :, 0].mean(axis=1)
        # a track never jumps from one half of the split screen to the other
        assert np.all(centre_x < width / 2) or np.all(centre_x > width / 2)
        sides.append(bool(centre_x[0] > width / 2))
    assert sorted(sides) == [False, True]


@pytest.mark.skipif(not (FIXTURES / "ghost_2person.mp4").exists(), reason="shared fixtures not present")
@pytest.mark.parametrize("mode", ["video", "image"])
def test_the_pass_on_two_threads_gives_what_detect_gives_in_order(mode: str) -> None:
    """The whole-frame landmarker runs a few frames ahead of the tiled search on its own thread
    (``plugin.analyze._whole_frames``); both keep their state, so the faces are those of
    ``Landmarker.detect`` frame by frame, reset one frame after each cut (the cut detector's
    latency). Two shots: the split screen, then the LivePortrait face on black; a small
    astronaut, which only the tiled search finds, in both. In "image" mode the whole of
    ``detect`` (search included) runs on that thread, and is reset there."""
    import cv2

    from plugin.video import VideoReader
    from tracking.landmarker import Landmarker
    from tracking.observation import Source

    small = cv2.resize(cv2.cvtColor(cv2.imread(str(FIXTURES / "skimage_astronaut.png")), cv2.COLOR_BGR2RGB), (150, 150))
    images = []
    with VideoReader(FIXTURES / "ghost_2person.mp4") as reader:
        for frame in reader.frames(0, 8):
            images.append(frame.image.copy())
    with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
        for frame in reader.frames(0, 6):
            canvas = np.zeros((720, 1280, 3), np.uint8)
            canvas[104:616, 384:896] = frame.image
            images.append(canvas)
    for k, image in enumerate(images):
        image[560:710, 1100 - 4 * k:1250 - 4 * k] = small
    frames = [Frame(i, i, Fraction(1, 25), image) for i, image in enumerate(images)]
    config = AnalysisConfig(landmarker=LandmarkerConfig(running_mode=mode), recover_tracks=False)
    analysis, _ = analyze_frames(frames, config)
    assert analysis.cut_frames.tolist() == [8]

    with Landmarker(config.landmarker) as lm:
        expected = []
        for frame in frames:
            expected.append(lm.detect(frame))
            if frame.index - 1 in analysis.cut_frames:
                lm.reset()
    assert any(f.source is Source.RECOVERED for faces in expected for f in faces)
    assert [len(faces) for faces in expected] == [3] * 8 + [2] * 6
    for frame, faces in zip(frames, expected, strict=True):
        got = [t.raw_landmarks[np.searchsorted(t.frame_indices, frame.index)]
               for t in analysis.tracks if frame.index in t.frame_indices]
        assert len(got) == len(faces)
        for face in faces:
            assert any(np.array_equal(face.landmarks, g) for g in got)


def test_repeated_times_are_spread_to_the_next_frame() -> None:
    from plugin.analyze import spread_repeated_times

    t = np.array([0.0, 0.04, 0.08, 0.08, 0.16, 0.2, 0.2, 0.2, 0.32])
    np.testing.assert_allclose(spread_repeated_times(t), [0.0, 0.04, 0.08, 0.12, 0.16, 0.2, 0.24, 0.28, 0.32])
    np.testing.assert_allclose(spread_repeated_times(np.array([0.0, 0.04, 0.04])), [0.0, 0.04, 0.06])  # at the end
    same = np.array([0.0, 0.1, 0.3])
    assert np.array_equal(spread_repeated_times(same), same)


def test_a_clip_that_repeats_pts_is_tracked_and_edited(clip: Path, tmp_path: Path) -> None:
    """A muxing fault (screen recorders, bad concatenations) gives frames the pts of the frame
    before them; the smoothing's local fits went singular on them (an internal error)."""
    import av

    from plugin.edit_job import EditJob, run_edit
    from plugin.pipeline import RenderJob
    from plugin.video import VideoReader
    from plugin.writer import OutputConfig
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve
    from tests.plugin.media import write_clip

    with VideoReader(clip) as reader:
        images = [f.image for f in reader.frames(0, 10)]
    src = write_clip(tmp_path / "repeats.mkv", codec="ffv1", pix_fmt="bgr0", images=images,
                     pts=[0, 40, 80, 80, 160, 200, 200, 200, 320, 360], time_base=Fraction(1, 1000))
    analysis = run_analysis(src, cache_dir=tmp_path / "cache").analysis
    assert np.all(np.diff(analysis.frame_times) > 0.03)  # spread over the gaps the repeats leave
    (track,) = analysis.tracks
    assert len(track.frame_indices) == 10 and np.isfinite(track.landmarks).all()
    schedule = EditSchedule((EditEntry(track.track_id, "smile", StrengthCurve.constant(0.6)),))
    out = tmp_path / "out.mp4"
    run_edit(EditJob(RenderJob(src, out, OutputConfig(preset="ultrafast")), schedule, cache_dir=tmp_path / "cache"))
    with av.open(str(out)) as c:
        assert [f.pts for f in c.decode(video=0)] == [0, 40, 80, 81, 160, 200, 201, 202, 320, 360]


@pytest.mark.skipif(not (FIXTURES / "ghost_2person.mp4").exists(), reason="shared fixtures not present")
def test_cut_features_read_beside_the_decoder_find_the_same_cuts_and_faces() -> None:
    """``CutFeatures`` moves the cut detector's features to the decoding thread: a clip with a
    hard cut (two real clips joined) gives the same cut and the same tracks either way."""
    from plugin.analyze import CutFeatures
    from plugin.video import VideoReader

    with VideoReader(FIXTURES / "ghost_2person.mp4") as reader:
        frames = list(reader.frames(0, 10))
    with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
        other = [f.image for f in reader.frames(0, 10)]
    h, w = frames[0].image.shape[:2]
    import cv2

    frames += [Frame(10 + i, 10 + i, frames[0].time_base, cv2.resize(img, (w, h))) for i, img in enumerate(other)]
    plain, _ = analyze_frames(frames, AnalysisConfig())
    features = CutFeatures(AnalysisConfig().cuts)
    read = analyze_frames(features.read(frames), AnalysisConfig(), cut_features=features.take)[0]
    assert plain.cut_frames.tolist() == [10] == read.cut_frames.tolist()
    assert len(plain.tracks) == len(read.tracks) >= 2
    for a, b in zip(plain.tracks, read.tracks, strict=True):
        assert np.array_equal(a.frame_indices, b.frame_indices) and np.array_equal(a.landmarks, b.landmarks)
    assert features.take(3) is None  # handed over once
