"""Shape-signature distances between segments of the same person and of different people (JSON).

People: the fixture clips (liveportrait, retalking, pcavs, the two halves of the ghost split
screen: five people) and the two stills (astronaut, aflw profile). Each clip is cut into segments of
``--segment`` frames; a segment's signature is ``tracking.tracks.shape_signature`` of its MediaPipe
landmarks (VIDEO mode, one face per crop). Reported: distances between segments of one person
(same) and of two people (different), their percentiles, and how often each side falls on the
wrong side of ``SAME_FACE_MAX_DISTANCE``; also for single frames (segment 1).

    python bench/signatures.py [--segment 12]
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking.tracks import SAME_FACE_MAX_DISTANCE, shape_signature, signature_distance  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
MODEL = Path(__file__).resolve().parents[1] / "tracking" / "models" / "face_landmarker.task"
CLIPS = {  # person -> (file, crop: None, "left" or "right")
    "liveportrait": ("liveportrait_d0.mp4", None),
    "retalking": ("retalking_face_1.mp4", None),
    "pcavs": ("pcavs_audio_source_00015.mp4", None),
    "ghost_left": ("ghost_2person.mp4", "left"),
    "ghost_right": ("ghost_2person.mp4", "right"),
}
STILLS = {"astronaut": "skimage_astronaut.png", "aflw_profile": "aflw2000_image04331.jpg"}


def landmarks_of(images: list[np.ndarray], times: list[float] | None) -> np.ndarray:
    """``(N, 478, 3)`` pixel landmarks of the first face in each image (frames without one dropped)."""
    import mediapipe as mp
    from mediapipe.tasks.python import vision
    from mediapipe.tasks.python.core.base_options import BaseOptions

    mode = vision.RunningMode.VIDEO if times is not None else vision.RunningMode.IMAGE
    opts = vision.FaceLandmarkerOptions(base_options=BaseOptions(model_asset_path=str(MODEL)), running_mode=mode,
                                        num_faces=1)
    out = []
    with vision.FaceLandmarker.create_from_options(opts) as lm:
        for i, img in enumerate(images):
            image = mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(img))
            res = lm.detect_for_video(image, int(times[i] * 1000)) if times is not None else lm.detect(image)
            if res.face_landmarks:
                h, w = img.shape[:2]
                out.append([[p.x * w, p.y * h, p.z * w] for p in res.face_landmarks[0]])
    return np.array(out, dtype=np.float64)


def load_people() -> dict[str, np.ndarray]:
    import av
    import cv2

    people = {}
    for person, (name, crop) in CLIPS.items():
        with av.open(str(FIXTURES / name)) as c:
            stream = c.streams.video[0]
            frames, times = [], []
            for f in c.decode(stream):
                img = f.to_ndarray(format="rgb24")
                if crop == "left":
                    img = img[:, : img.shape[1] // 2]
                elif crop == "right":
                    img = img[:, img.shape[1] // 2:]
                frames.append(img)
                times.append(float(f.pts * stream.time_base))
        people[person] = landmarks_of(frames, times)
    for person, name in STILLS.items():
        img = cv2.cvtColor(cv2.imread(str(FIXTURES / name)), cv2.COLOR_BGR2RGB)
        people[person] = landmarks_of([img], None)
    return people


def measure(people: dict[str, np.ndarray], segment: int) -> dict:
    sigs = []
    for person, lm in people.items():
        starts = range(0, lm.shape[0] - segment + 1, segment) if lm.shape[0] > 1 else [0]
        sigs += [(person, shape_signature(lm[s:s + segment])) for s in starts]
    same, diff, pair_min = [], [], {}
    for (p, a), (q, b) in itertools.combinations(sigs, 2):
        d = signature_distance(a, b)
        if p == q:
            same.append(d)
        else:
            diff.append(d)
            key = " vs ".join(sorted((p, q)))
            pair_min[key] = min(pair_min.get(key, np.inf), d)
    same_a, diff_a = np.array(same), np.array(diff)
    pct = lambda x, q: round(float(np.percentile(x, q)), 4)  # noqa: E731
    return {
        "segment_frames": segment, "signatures": len(sigs), "same_pairs": len(same), "different_pairs": len(diff),
        "same": {"median": pct(same_a, 50), "p95": pct(same_a, 95), "p99": pct(same_a, 99), "max": round(float(same_a.max()), 4)},
        "different": {"min": round(float(diff_a.min()), 4), "p1": pct(diff_a, 1), "p5": pct(diff_a, 5), "median": pct(diff_a, 50)},
        "threshold": SAME_FACE_MAX_DISTANCE,
        "same_above_threshold": round(float(np.mean(same_a > SAME_FACE_MAX_DISTANCE)), 4),
        "different_below_threshold": round(float(np.mean(diff_a <= SAME_FACE_MAX_DISTANCE)), 4),
        "closest_pairs_of_people": {k: round(float(v), 4) for k, v in sorted(pair_min.items(), key=lambda kv: kv[1])[:6]},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--segment", type=int, default=12, help="frames per segment")
    args = ap.parse_args()
    t0 = time.perf_counter()
    people = load_people()
    report = {"people": {p: int(lm.shape[0]) for p, lm in people.items()},
              "segments": measure(people, args.segment), "single_frames": measure(people, 1)}
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
