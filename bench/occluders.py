"""What covers a face, found on real clips (prints one JSON object).

Per clip and tracked face: the frames where ``synthesis.occluders`` finds something covering the
face (the whole track is the run, its reference spread over it, as ``plugin.occluder_pass`` does
around an edit), and the largest share of the face's seen texels covered.

- The fixture clips as they are (nothing covers their faces: every frame found is a false alarm).
- The LivePortrait clip with an occluder pasted over its mouth on frames 14-29 (a checkerboard
  card, a dark microphone on a stand, a skin-coloured hand from the side): the frames it covers
  are the ones to find.
- The LivePortrait clip under stage light (a hard warm spotlight edge sweeping across the face,
  a strobe every sixth frame): no occluder.
- A microphone in front of the mouth on every frame: part of the reference, so found on few
  frames or none (a limit, see ``synthesis/occluders.py``).

Per face: ``found`` counts the frames found covered themselves (``synthesis.occluders.found``;
the fades around a run are not counted).

    python bench/occluders.py [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugin.analyze import run_analysis
from plugin.provenance import merge_ranges
from plugin.video import VideoReader
from synthesis.occluders import OccluderConfig, face_luma, found, track_masks
from tests.plugin.media import write_clip

FIXTURES = ROOT / ".." / "shared" / "fixtures"
COVERED = range(14, 30)


def _board(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    return np.repeat((((yy // 16 + xx // 16) % 2) * 160 + 40).astype(np.uint8)[..., None], 3, axis=2)


def card(images: list[np.ndarray], frames) -> list[np.ndarray]:
    board = _board(*images[0].shape[:2])
    out = [i.copy() for i in images]
    for i in frames:
        out[i][300:, 150:370] = board[300:, 150:370]
    return out


def mic(images: list[np.ndarray], frames) -> list[np.ndarray]:
    h, w = images[0].shape[:2]
    m = np.zeros((h, w), np.uint8)
    cv2.ellipse(m, (260, 360), (45, 60), 0, 0, 360, 255, -1)
    cv2.rectangle(m, (245, 400), (275, h), 255, -1)
    grille = (((np.indices((h, w)).sum(0) // 4) % 2) * 40 + 30).astype(np.uint8)
    out = [i.copy() for i in images]
    for i in frames:
        out[i][m > 0] = np.stack([grille] * 3, -1)[m > 0]
    return out


def hand(images: list[np.ndarray], frames) -> list[np.ndarray]:
    h, w = images[0].shape[:2]
    m = np.zeros((h, w), np.uint8)
    for j in range(4):  # four fingers from the right, over the mouth and chin
        cv2.ellipse(m, (380, 300 + 34 * j), (150, 15), 0, 0, 360, 255, -1)
    cv2.rectangle(m, (380, 290), (w, 420), 255, -1)
    a = cv2.GaussianBlur(m.astype(np.float32) / 255, (5, 5), 0)[..., None]
    yy = np.mgrid[0:h, 0:w][0].astype(np.float32)
    skin = np.array([200, 150, 125], np.float32)[None, None] * (0.85 + 0.15 * np.sin(yy / 17.0))[..., None]
    out = [i.copy() for i in images]
    for i in frames:
        out[i] = np.clip(out[i] * (1 - a) + skin * a, 0, 255).astype(np.uint8)
    return out


def stage_light(images: list[np.ndarray]) -> list[np.ndarray]:
    h, w = images[0].shape[:2]
    out = []
    for i, f in enumerate(images):
        edge = w * (0.2 + 0.6 * i / max(len(images) - 1, 1))
        ramp = 0.35 + 1.0 / (1 + np.exp(-(np.arange(w) - edge) / (w * 0.02)))
        g = f.astype(np.float32) * (ramp[None, :, None] * np.array([1.0, 0.85, 0.6])[None, None])
        if i % 6 == 0:
            g = g * 2.0 + 60
        out.append(np.clip(g, 0, 255).astype(np.uint8))
    return out


def measure(path: Path, cache: Path, config: OccluderConfig) -> dict[str, dict]:
    tracks = run_analysis(path, cache_dir=cache).analysis.tracks
    got: dict[int, dict[int, tuple]] = {t.track_id: {} for t in tracks}
    rows = {t.track_id: {int(f): k for k, f in enumerate(t.frame_indices)} for t in tracks}
    with VideoReader(path) as reader:
        for frame in reader:
            for t in tracks:
                k = rows[t.track_id].get(frame.index)
                if k is not None:
                    got[t.track_id][frame.index] = face_luma(frame.image, t.landmarks[k])
    out = {}
    for t in tracks:
        frames = sorted(got[t.track_id])
        lumas = np.stack([got[t.track_id][f][0] for f in frames])
        seen = np.stack([got[t.track_id][f][1] for f in frames])
        pick = np.unique(np.linspace(0, len(frames) - 1, min(len(frames), config.reference_rows)).round().astype(int))
        masks = track_masks(lumas, seen, pick, config)
        own = found(masks)  # the frames found covered themselves, not the fades around them
        share = [float(((m > 0.5) & s).sum() / max(int(s.sum()), 1)) if o else 0.0 for m, s, o in zip(masks, seen, own)]
        hits = [f for f, o in zip(frames, own) if o]
        out[str(t.track_id)] = {"frames": len(frames), "found": len(hits), "found_frames": merge_ranges((f, f) for f in hits),
                                "max_share": round(max(share, default=0.0), 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", type=Path, default=None)
    args = ap.parse_args()
    config = OccluderConfig()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        cache = work / "cache"
        result: dict[str, object] = {"clean": {}, "occluded": {}, "light": {}}
        for name in ("liveportrait_d0.mp4", "retalking_face_1.mp4", "pcavs_audio_source_00015.mp4", "ghost_2person.mp4"):
            result["clean"][name] = measure(FIXTURES / name, cache, config)
        with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
            lp = [f.image.copy() for f in reader]
        made = {"card": card(lp, COVERED), "mic": mic(lp, COVERED), "hand": hand(lp, COVERED),
                "mic_every_frame": mic(lp, range(len(lp)))}
        for name, images in made.items():
            path = write_clip(work / f"{name}.mkv", codec="ffv1", pix_fmt="bgr0", images=images)
            result["occluded"][name] = {"covered": [COVERED[0], COVERED[-1]] if name != "mic_every_frame" else [0, len(lp) - 1],
                                        **measure(path, cache, config)["0"]}
        path = write_clip(work / "stage_light.mkv", codec="ffv1", pix_fmt="bgr0", images=stage_light(lp))
        result["light"]["sweep_and_strobe"] = measure(path, cache, config)["0"]
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
