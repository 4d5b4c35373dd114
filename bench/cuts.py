"""Cut-detector scores inside real shots and at joins between them (prints JSON).

Shots: the fixture clips, the two halves of the ghost split screen (two people in similar video-chat
framing, a shot/reverse-shot stand-in) and a 1.33x punch-in on liveportrait (same scene, new
framing). Joins: every ordered pair's last frame -> first frame. Reported per shot: the largest
score and the largest score over its recent median (the two tests a cut must pass); per join: the
same two numbers; and the cuts ``detect_cuts`` finds on each shot alone (should be none) and on
a chain of all shots (should be exactly the joins).

    python bench/cuts.py
"""

from __future__ import annotations

import json
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tracking.cuts import CutConfig, detect_cuts, frame_distance, frame_features  # noqa: E402
from tracking.frame import Frame  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"


def shots() -> dict[str, list[np.ndarray]]:
    import av
    import cv2

    out = {}
    for name in ("liveportrait_d0.mp4", "retalking_face_1.mp4", "pcavs_audio_source_00015.mp4", "ghost_2person.mp4"):
        with av.open(str(FIXTURES / name)) as c:
            out[name.split("_")[0]] = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    ghost = out.pop("ghost")
    out["ghost_left"] = [np.ascontiguousarray(f[:, :640]) for f in ghost]
    out["ghost_right"] = [np.ascontiguousarray(f[:, 640:]) for f in ghost]
    out["liveportrait_punch_in"] = [cv2.resize(f[64:448, 64:448], (512, 512)) for f in out["liveportrait"]]
    return out


def main() -> None:
    cfg = CutConfig()
    t0 = time.perf_counter()
    clips = shots()
    feats = {k: [frame_features(f, cfg) for f in v] for k, v in clips.items()}
    report: dict = {"config": {k: getattr(cfg, k) for k in ("mad_weight", "min_score", "ratio", "window")}, "shots": {}, "joins": {}}
    for name, fs in feats.items():
        s = np.array([frame_distance(fs[i - 1], fs[i], cfg) for i in range(1, len(fs))])
        ratio = [s[i] / max(np.median(s[max(0, i - cfg.window):i]), 1e-6) for i in range(3, len(s))]
        frames = [Frame(i, i, Fraction(1, 25), f) for i, f in enumerate(clips[name])]
        report["shots"][name] = {"frames": len(fs), "max_score": round(float(s.max()), 3),
                                 "max_ratio_to_recent_median": round(float(max(ratio)), 1),
                                 "cuts_found": detect_cuts(frames, cfg)}
    for a in feats:
        for b in feats:
            if a == b:
                continue
            tail = feats[a][-cfg.window - 1:]
            base = np.median([frame_distance(tail[i - 1], tail[i], cfg) for i in range(1, len(tail))])
            score = frame_distance(feats[a][-1], feats[b][0], cfg)
            report["joins"][f"{a} -> {b}"] = {"score": round(score, 3), "ratio": round(score / base, 1)}
    chain, joins = [], []
    for name, frames in clips.items():
        if chain:
            joins.append(len(chain))
        chain += [cv2_resize(f, (320, 320)) for f in frames[:40]]
    found = detect_cuts([Frame(i, i, Fraction(1, 25), f) for i, f in enumerate(chain)], cfg)
    report["chain"] = {"frames": len(chain), "joins": joins, "cuts_found": found}
    join_scores = [v["score"] for v in report["joins"].values()]
    join_ratios = [v["ratio"] for v in report["joins"].values()]
    report["summary"] = {
        "shots_max_score": max(v["max_score"] for v in report["shots"].values()),
        "shots_max_ratio": max(v["max_ratio_to_recent_median"] for v in report["shots"].values()),
        "joins_min_score": min(join_scores), "joins_min_ratio": min(join_ratios),
    }
    report["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(report, indent=1))


def cv2_resize(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    import cv2
    return cv2.resize(img, size, interpolation=cv2.INTER_AREA)


if __name__ == "__main__":
    main()
