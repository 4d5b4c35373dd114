"""A jaw opening the clip never shows: warp alone, clamped, and a mouth opened on the face's own
frame (prints one JSON).

liveportrait_d0.mp4 cut to its first 17 frames keeps its mouth closed (inner-lip gap 0.003-0.005
inter-ocular distances). ``jaw_open`` at ``--strength`` (1.0 by default: past the control's own
range, as a plate's open mouth in a swap repair can ask) on frames 5-11 (ramp 2) is rendered to
ffv1 three ways with ``run_edit`` and re-tracked: ``warp`` (no texture), ``clamped``
(``TextureConfig(opened_mouth=False)``: no exemplar, so the opening is clamped to what a warp
shows) and ``made`` (the default: a still of the face with its mouth opened,
``plugin.texture_stage.opened_mouth_references``). Per way, on the full-strength frames: the
re-tracked jawOpen change, the inner-lip gap planned and re-read (inter-ocular distances), and
the texture events. Crops of frame 8 (input | warp | clamped | made) go to
bench/results/mouth_opened.png.

``open_smile``: the astronaut's smile already shows her teeth; ``jaw_open`` at its range on
frames 10-29, warp alone and with texture (a still of her mouth opened where no frame of the
clip is open enough, ``synthesis.exemplars.LESS_OPEN_GAP``), measured the same way. Crops of
frame 20 (input | warp | texture) and of frames 6-11 with texture (the ramp) go to
bench/results/mouth_open_smile.png, three times enlarged.

    python bench/mouth_opening.py [--strength 1.0]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(1, str(Path(__file__).resolve().parent))

from quality import FIXTURES, RESULTS, Bench, cut_clip  # noqa: E402

from plugin.demo import MotionSettings, write_demo_clip  # noqa: E402
from plugin.editing import RenderConfig  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from synthesis.controls import control  # noqa: E402
from synthesis.exemplars import raw_features  # noqa: E402
from synthesis.regions import LIPS  # noqa: E402
from synthesis.plan import PlanConfig  # noqa: E402
from tracking.mediapipe_results import BLENDSHAPE_NAMES  # noqa: E402

CLOSED_FRAMES = 17
FULL = (5, 11)
SHOWN = 8
#: The astronaut's open smile (``plugin.demo`` clip, 40 frames): jaw_open at its range on
#: frames 10-29 (ramp 4), a crop of frame 20 and of the ramp's frames 6-11.
SMILE_FULL, SMILE_SHOWN, SMILE_RAMP = (10, 29), 20, range(6, 12)


def run_ways(clip: Path, work: Path, ways: list[tuple[str, TextureConfig | None]], strength: float,
             full: tuple[int, int], ramp: int, shown: int, plan: PlanConfig | None = None,
             strip: range | None = None) -> tuple[dict[str, object], list[np.ndarray], list[np.ndarray]]:
    """Render ``jaw_open`` at ``strength`` on ``full`` each way, re-track it and measure it on
    the full-strength frames; also crops of the mouth in frame ``shown`` (input first, then
    each way) and, for the last way, in the frames of ``strip``."""
    out: dict[str, object] = {}
    tiles: list[np.ndarray] = []
    strips: list[np.ndarray] = []
    for name, texture in ways:
        bench = Bench(clip.stem, clip, work, RenderConfig())
        bench.texture = texture
        res = bench.edit([("jaw_open", strength)], plan, frames=full, ramp=ramp)
        track = res["track"]
        a, b = bench.rows(track, range(full[0], full[1] + 1))
        change = (track.raw_blendshapes[b] - bench.track.raw_blendshapes[a]).mean(axis=0)
        planned = res["summary"].plans[0]
        at = (planned.frame_indices >= full[0]) & (planned.frame_indices <= full[1])
        out[name] = {
            "jawOpen_change": round(float(change[BLENDSHAPE_NAMES.index("jawOpen")]), 3),
            "inner_gap_iod": {"input": round(float(raw_features(bench.track.raw_landmarks[a], "mouth")[:, 0].mean()), 3),
                              "planned": round(float(raw_features(planned.after[at], "mouth")[:, 0].mean()), 3),
                              "re_read": round(float(raw_features(track.raw_landmarks[b], "mouth")[:, 0].mean()), 3)},
            "texture": [{k: e[k] for k in ("region", "action", "frames") if k in e}
                        | ({"exemplars": e["exemplars"]} if "exemplars" in e else {})
                        | ({"factor": e["factor"]} if "factor" in e else {}) for e in res["summary"].texture],
        }
        p = planned.after[int(np.searchsorted(planned.frame_indices, shown))]
        lo, hi = p[:, :2].min(axis=0), p[:, :2].max(axis=0)
        if not tiles:
            x0, y0 = (lo + [0.2, 0.5] * (hi - lo)).astype(int)
            x1, y1 = x0 + int(0.6 * (hi - lo)[0]), y0 + int(0.5 * (hi - lo)[1])
            tiles.append(bench.frames[shown][y0:y1, x0:x1])
        tiles.append(res["images"][shown][y0:y1, x0:x1])
        if strip is not None:  # the same box, moved with the input's mouth
            lips = list(LIPS)
            at_shown = bench.track.landmarks[int(np.searchsorted(bench.track.frame_indices, shown)), lips, :2].mean(axis=0)
            strips = []
            for f in strip:
                dx, dy = (bench.track.landmarks[int(np.searchsorted(bench.track.frame_indices, f)), lips, :2].mean(axis=0)
                          - at_shown).round().astype(int)
                strips.append(res["images"][f][y0 + dy:y1 + dy, x0 + dx:x1 + dx])
    return out, tiles, strips


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--strength", type=float, default=1.0)
    args = ap.parse_args()
    report: dict[str, object] = {"bench": "mouth_opening", "clip": f"liveportrait_d0.mp4, frames 0-{CLOSED_FRAMES - 1}",
                                 "edit": f"jaw_open {args.strength} on frames {FULL[0]}-{FULL[1]}"}
    with tempfile.TemporaryDirectory(prefix="deltaface-mouth-") as tmp:
        work = Path(tmp)
        clip = cut_clip(FIXTURES / "liveportrait_d0.mp4", work / "closed.mp4", CLOSED_FRAMES)
        report["ways"], tiles, _ = run_ways(
            clip, work, [("warp", None), ("clamped", TextureConfig(opened_mouth=False)), ("made", TextureConfig())],
            args.strength, FULL, 2, SHOWN, PlanConfig(clamp_to_range=False))
        smile = write_demo_clip(work / "astronaut.mp4", MotionSettings(num_frames=40))
        strength = control("jaw_open").max_strength
        report["open_smile"] = {"clip": "astronaut demo clip, 40 frames",
                                "edit": f"jaw_open {strength:g} on frames {SMILE_FULL[0]}-{SMILE_FULL[1]}"}
        report["open_smile"]["ways"], smile_tiles, ramp = run_ways(  # type: ignore[index]
            smile, work, [("warp", None), ("texture", TextureConfig())], strength, SMILE_FULL, 4, SMILE_SHOWN,
            strip=SMILE_RAMP)
    RESULTS.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(RESULTS / "mouth_opened.png"), cv2.cvtColor(np.concatenate(tiles, axis=1), cv2.COLOR_RGB2BGR))
    smile_rows = np.concatenate(smile_tiles, axis=1), np.concatenate(ramp, axis=1)
    width = max(r.shape[1] for r in smile_rows)
    sheet = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in smile_rows], axis=0)
    sheet = cv2.resize(sheet, None, fx=3, fy=3, interpolation=cv2.INTER_CUBIC)
    cv2.imwrite(str(RESULTS / "mouth_open_smile.png"), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
