"""Association into tracks, identity by shape, and ids across gaps and cuts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.tracking import synthetic_faces as sf
from tracking.analysis import TrackingConfig, build_tracks
from tracking.errors import InputError
from tracking.tracks import (
    SAME_FACE_MAX_DISTANCE, Associator, FrameFaces, SegmentSummary, assign_identities, associate, box_iou,
    shape_signature, signature_distance,
)

FPS = 25.0
IOD_PX = 60.0
#: Landmark noise of the synthetic faces (pixels per coordinate).
NOISE_PX = 1.0
FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"


def _frames(tracks: dict[int, list[tuple[float, float] | None]], n: int, seed: int = 0,
            twins: bool = False) -> list[list]:
    """Observations per frame: ``tracks`` maps person seed -> centre per frame (None: absent).

    With ``twins`` every track is the same face in the same pose: only motion tells them apart.
    """
    rng = np.random.default_rng(seed)
    out: list[list] = [[] for _ in range(n)]
    for p, centres in tracks.items():
        shape = sf.person(0 if twins else p)
        for i, c in enumerate(centres):
            if c is not None:
                yaw = 10 * np.sin(i / 7 + (0 if twins else p))
                lm = sf.pose_landmarks(shape, c, IOD_PX, yaw=yaw) + rng.normal(0, NOISE_PX, (478, 3))
                out[i].append(sf.observation(i, lm, yaw=yaw))
    return out


def _paths(assoc_out: list) -> dict[int, list[float]]:
    """Each track id's face-centre x over its frames."""
    paths: dict[int, list[float]] = {}
    for frame in assoc_out:
        for face in frame.faces:
            paths.setdefault(face.track_id, []).append(float(face.observation.landmarks[:, 0].mean()))
    return paths


def _assert_two_straight_paths(assoc_out: list) -> None:
    """Two tracks, each moving one way only: a swap at the crossing would reverse one."""
    paths = _paths(assoc_out)
    assert len(paths) == 2
    for xs in paths.values():
        steps = np.diff(xs)
        assert np.all(steps > 0) or np.all(steps < 0)


def test_crossing_faces_keep_their_ids() -> None:
    """Identical faces in identical poses meet at frame 20: only their motion tells them apart."""
    n = 40
    left = [(150.0 + 12 * i, 200.0) for i in range(n)]  # moving right
    right = [(630.0 - 12 * i, 200.0) for i in range(n)]  # moving left; they meet at frame 20
    frames = _frames({1: left, 2: right}, n, twins=True)
    _assert_two_straight_paths(associate([FrameFaces(i, i / FPS, tuple(f)) for i, f in enumerate(frames)]))


def test_crossing_faces_keep_ids_when_one_is_hidden_at_the_crossing() -> None:
    n = 40
    left = [(150.0 + 12 * i, 200.0) for i in range(n)]
    right: list = [(630.0 - 12 * i, 205.0) for i in range(n)]
    for i in range(18, 23):  # occluded while crossing
        right[i] = None
    frames = _frames({1: left, 2: right}, n, twins=True)
    _assert_two_straight_paths(associate([FrameFaces(i, i / FPS, tuple(f)) for i, f in enumerate(frames)]))


def test_predicted_boxes_point_where_a_missed_face_should_be() -> None:
    assoc = Associator()
    centre = np.array([200.0, 150.0])
    shape = sf.person(0)
    for i in range(5):
        lm = sf.pose_landmarks(shape, tuple(centre + [10.0 * i, 0.0]), IOD_PX)
        assoc.push(FrameFaces(i, i / FPS, (sf.observation(i, lm),)))
    ids, boxes = assoc.boxes_to_recover(5 / FPS, [])
    expected = sf.observation(5, sf.pose_landmarks(shape, tuple(centre + [50.0, 0.0]), IOD_PX)).box
    assert ids == (0,)
    assert box_iou(boxes, expected[None])[0, 0] > 0.9
    # once the face is found there, nothing is left to recover
    found = sf.observation(5, sf.pose_landmarks(shape, tuple(centre + [50.0, 0.0]), IOD_PX))
    assert assoc.boxes_to_recover(5 / FPS, [found])[0] == ()


def test_reset_starts_new_tracks_and_times_must_increase() -> None:
    assoc = Associator()
    lm = sf.pose_landmarks(sf.person(0), (200.0, 150.0), IOD_PX)
    first = assoc.push(FrameFaces(0, 0.0, (sf.observation(0, lm),)))[0].faces[0].track_id
    assoc.reset()
    second = assoc.push(FrameFaces(1, 0.04, (sf.observation(1, lm),)))[0].faces[0].track_id
    assert first != second
    with pytest.raises(InputError, match="frame 2"):
        assoc.push(FrameFaces(2, 0.04, ()))


def _posed_frames(person: int, count: int, rng: np.random.Generator) -> np.ndarray:
    shape = sf.person(person)
    return np.stack([
        sf.pose_landmarks(shape, (300.0, 250.0), IOD_PX, yaw=rng.uniform(-25, 25), pitch=rng.uniform(-10, 10),
                          roll=rng.uniform(-10, 10), blink=rng.uniform(0, 1))
        + rng.normal(0, NOISE_PX, (478, 3))
        for _ in range(count)
    ])


def test_signatures_separate_people_and_match_one_person_across_poses() -> None:
    rng = np.random.default_rng(7)
    same, different = [], []
    sigs = {p: [shape_signature(_posed_frames(p, 8, rng)) for _ in range(3)] for p in range(4)}
    for p in sigs:
        for q in sigs:
            for i, a in enumerate(sigs[p]):
                for j, b in enumerate(sigs[q]):
                    if p == q and i < j:
                        same.append(signature_distance(a, b))
                    elif p < q:
                        different.append(signature_distance(a, b))
    assert max(same) < min(different)
    assert max(same) < SAME_FACE_MAX_DISTANCE


def test_signature_is_pose_free() -> None:
    shape = sf.person(3)
    a = shape_signature(sf.pose_landmarks(shape, (100.0, 100.0), IOD_PX))
    b = shape_signature(sf.pose_landmarks(shape, (400.0, 300.0), 2 * IOD_PX, yaw=30.0, pitch=10.0, roll=-20.0))
    assert signature_distance(a, b) < 1e-9


def test_assign_identities_reuses_only_clear_non_overlapping_matches() -> None:
    rng = np.random.default_rng(1)
    sig = {p: shape_signature(_posed_frames(p, 6, rng)) for p in (0, 1)}
    segs = [
        SegmentSummary(0, 0, 10, sig[0], 11),
        SegmentSummary(1, 0, 10, sig[1], 11),
        SegmentSummary(2, 20, 30, shape_signature(_posed_frames(1, 6, rng)), 11),  # person 1 returns
        SegmentSummary(3, 20, 30, shape_signature(_posed_frames(0, 6, rng)), 11),  # person 0 returns
        SegmentSummary(4, 25, 35, shape_signature(_posed_frames(0, 6, rng)), 11),  # overlaps 3: new id
    ]
    ids = assign_identities(segs)
    assert ids[:2] == [0, 1]
    assert ids[2] == 1 and ids[3] == 0
    assert ids[4] not in (0, 1)


def _build(frames: list[list], times: np.ndarray, cuts: tuple[int, ...] = ()):
    return build_tracks(frames, times, cuts, TrackingConfig())


def test_face_returning_after_a_long_gap_gets_a_new_segment_and_its_old_id() -> None:
    n = 60
    centres: list = [(200.0 + i, 200.0) for i in range(n)]
    for i in range(20, 40):  # gone for 0.8 s, longer than max_gap_s
        centres[i] = None
    for i in range(40, n):
        centres[i] = (500.0, 260.0)  # comes back elsewhere
    other = [(700.0, 300.0)] * n
    frames = _frames({4: centres, 5: other}, n)
    tracks = _build(frames, np.arange(n) / FPS)
    assert len(tracks) == 2
    returning = next(t for t in tracks if t.frame_indices[0] == 0 and t.frame_indices[-1] == n - 1
                     and len(t.frame_indices) == 40)
    assert len(set(returning.segment_ids.tolist())) == 2
    assert not np.any((returning.frame_indices >= 20) & (returning.frame_indices < 40))


def test_people_swapping_places_across_a_cut_keep_their_ids() -> None:
    n = 50
    a = [(200.0, 200.0)] * 25 + [(600.0, 220.0)] * 25
    b = [(600.0, 220.0)] * 25 + [(200.0, 200.0)] * 25
    frames = _frames({6: a, 7: b}, n)
    tracks = _build(frames, np.arange(n) / FPS, cuts=(25,))
    assert len(tracks) == 2
    for tr in tracks:
        x = tr.landmarks[:, :, 0].mean(axis=1)
        before, after = x[tr.frame_indices < 25].mean(), x[tr.frame_indices >= 25].mean()
        assert abs(before - after) > 300  # the track followed its person across the frame
        assert len(set(tr.segment_ids.tolist())) == 2


def test_short_gap_is_bridged_and_marked() -> None:
    n = 30
    centres: list = [(200.0 + 2 * i, 200.0) for i in range(n)]
    for i in (10, 11, 12):
        centres[i] = None
    tracks = _build(_frames({8: centres}, n), np.arange(n) / FPS)
    assert len(tracks) == 1
    tr = tracks[0]
    assert tr.frame_indices.tolist() == list(range(n))
    bridged = tr.sources == 2
    assert np.flatnonzero(bridged).tolist() == [10, 11, 12]
    assert np.all(tr.confidence[bridged] == 0) and np.all(tr.confidence[~bridged] > 0)
    assert len(set(tr.segment_ids.tolist())) == 1


def test_gap_length_is_measured_in_seconds() -> None:
    """Ten missing frames are 0.17 s at 60 fps (bridged) but 1 s at 10 fps (a new segment)."""
    n = 40
    centres: list = [(200.0 + i, 200.0) for i in range(n)]
    for i in range(15, 25):
        centres[i] = None
    frames = _frames({9: centres}, n)
    fast = _build(frames, np.arange(n) / 60.0)[0]
    slow = _build(frames, np.arange(n) / 10.0)[0]
    assert len(set(fast.segment_ids.tolist())) == 1 and len(fast.frame_indices) == n
    assert len(set(slow.segment_ids.tolist())) == 2 and len(slow.frame_indices) == n - 10


@pytest.mark.skipif(not (FIXTURES / "ghost_2person.mp4").exists(), reason="shared fixtures not present")
def test_real_faces_same_person_closer_than_two_people() -> None:
    """Real MediaPipe landmarks on a few frames: both halves of the split screen, early vs late."""
    import av
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    model = Path(__file__).resolve().parents[2] / "tracking" / "models" / "face_landmarker.task"
    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(model)), num_faces=1)
    wanted = {0, 1, 2, 3, 200, 201, 202, 203}
    halves: dict[str, list[np.ndarray]] = {"left": [], "right": []}
    with av.open(str(FIXTURES / "ghost_2person.mp4")) as c, vision.FaceLandmarker.create_from_options(opts) as lm:
        for i, frame in enumerate(c.decode(video=0)):
            if i > max(wanted):
                break
            if i not in wanted:
                continue
            img = frame.to_ndarray(format="rgb24")
            for side, part in (("left", img[:, :640]), ("right", img[:, 640:])):
                res = lm.detect(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(part)))
                h, w = part.shape[:2]
                halves[side].append(np.array([[p.x * w, p.y * h, p.z * w] for p in res.face_landmarks[0]]))
    sig = {(side, k): shape_signature(np.stack(v[4 * k:4 * k + 4])) for side, v in halves.items() for k in (0, 1)}
    same = max(signature_distance(sig[(s, 0)], sig[(s, 1)]) for s in ("left", "right"))
    different = min(signature_distance(sig[("left", i)], sig[("right", j)]) for i in (0, 1) for j in (0, 1))
    assert same < different
    assert same < SAME_FACE_MAX_DISTANCE
