"""Cheek texture on head turns: borrowed from frames turned that way vs warp only (prints one JSON).

A head turn that brings a cheek toward the camera shows skin the frame holds only foreshortened
(or hidden behind the nose); the warp can only stretch it. ``synthesis.texregions`` has a cheek
region per side whose state is its facing angle; the edit stage borrows it from a frame of the
same track turned that way. This bench renders ``head_yaw`` at ``+-STRENGTH`` degrees over a
frame range of a clip whose head turns by itself (retalking_face_1: yaw +10 to +17; pcavs:
three-quarter view), twice to ffv1 (lossless): ``warp`` (``texture=None``) and ``texture`` (the
default regions plus the two cheeks), and reports, over the edited frames, for the cheek the turn brings toward the
camera:

- ``detail``: mean gradient magnitude (0..255 per pixel, Sobel on luma) inside the cheek's core
  triangles at their edited place; a stretched cheek loses detail, borrowed skin keeps it;
- ``flicker`` / ``jitter`` over the cheek's box (``bench/texture_quality.py``'s measures): the
  input's figures are the yardstick (the clip moves by itself);
- ``yaw_change``: re-tracked yaw, output minus input, on the full-strength frames (texture must
  not undo the turn);
- the run summary's cheek events (which frames lent texture, where none was in reach).

Stills (input | warp | texture | x4 difference texture - warp) at three full-strength frames go to
``bench/results/cheek_<clip>_<sign>.png``.

    python bench/cheek_texture.py [--quick] [--strength 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from plugin.analyze import run_analysis  # noqa: E402
from plugin.edit_job import EditJob, run_edit  # noqa: E402
from plugin.pipeline import RenderJob  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from plugin.writer import OutputConfig  # noqa: E402
from synthesis.exemplars import raw_features  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from synthesis.texregions import REGIONS  # noqa: E402
from synthesis.uvmap import triangle_map  # noqa: E402
from texture_quality import flicker, frames_of, jitter, region_box  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
RESULTS = Path(__file__).resolve().parent / "results"
RAMP = 4
#: The texture variant's regions: the default ones and the cheeks (not on by default).
TEXTURE_REGIONS = (*TextureConfig().regions, "cheek_left", "cheek_right")
#: Clips and their full-strength frame ranges.
CLIPS = {"retalking": ("retalking_face_1.mp4", (24, 116)), "pcavs": ("pcavs_audio_source_00015.mp4", (24, 150))}


def detail(image: np.ndarray, landmarks: np.ndarray, region: str) -> float:
    """Mean Sobel gradient magnitude of the luma inside the region's core triangles."""
    r = REGIONS[region]
    h, w = image.shape[:2]
    tri = triangle_map(landmarks.astype(np.float64), r.core_triangles, (0, 0, w, h), landmarks[:, 2].astype(np.float64))
    inside = tri >= 0
    if inside.sum() < 20:
        return float("nan")
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    g = np.hypot(cv2.Sobel(y, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(y, cv2.CV_32F, 0, 1, ksize=3))
    return float(g[inside].mean())


def run_clip(name: str, work: Path, strength: float) -> dict[str, Any]:
    file, full = CLIPS[name]
    clip = FIXTURES / file
    cache = work / f"cache_{name}"
    track = max(run_analysis(clip, cache_dir=cache).analysis.tracks, key=lambda t: len(t.frame_indices))
    frames_in = frames_of(clip)
    full = (full[0], min(full[1], len(frames_in) - RAMP - 1))
    edited = range(full[0] - RAMP, full[1] + RAMP + 1)
    report: dict[str, Any] = {"clip": file, "frames_full": list(full), "strength_deg": strength}
    for sign in (-1, 1):
        sched = EditSchedule((EditEntry(track.track_id, "head_yaw",
                                        StrengthCurve.over_range(sign * strength, full[0], full[1], RAMP)),))
        outs: dict[str, dict[str, Any]] = {}
        images: dict[str, list[np.ndarray]] = {"input": frames_in}
        for variant in ("warp", "texture"):
            out = work / f"{name}_{sign}_{variant}.mkv"
            kw: dict[str, Any] = {"texture": None if variant == "warp" else TextureConfig(regions=TEXTURE_REGIONS)}
            summary = run_edit(EditJob(RenderJob(clip, out, OutputConfig(codec="ffv1", overwrite=True)), sched,
                                       cache_dir=cache, **kw))
            re = run_analysis(out, cache_dir=work / "cache_out", use_cache=False).analysis
            t = max(re.tracks, key=lambda t: len(t.frame_indices))
            common = sorted(set(range(full[0], full[1] + 1)) & set(t.frame_indices.tolist()))
            a, b = np.searchsorted(track.frame_indices, common), np.searchsorted(t.frame_indices, common)
            images[variant] = frames_of(out)
            out.unlink()
            outs[variant] = {"yaw_change": round(float((t.angles[b, 0] - track.angles[a, 0]).mean()), 2),
                             "events": [e for e in summary.texture if e["region"].startswith("cheek_")],
                             "retracked": t}
        # The cheek brought toward the camera: the one whose facing angle falls in the output.
        rows = np.searchsorted(track.frame_indices, np.arange(full[0], full[1] + 1))
        tex_track = outs["texture"].pop("retracked")
        outs["warp"].pop("retracked")
        rr = np.searchsorted(tex_track.frame_indices, np.arange(full[0], full[1] + 1))
        region = min(("cheek_left", "cheek_right"),
                     key=lambda n: float((raw_features(tex_track.landmarks[rr], n)
                                          - raw_features(track.landmarks[rows], n)).mean()))
        box = region_box(track.landmarks[rows], region)
        res: dict[str, Any] = {"region": region}
        for variant, imgs in images.items():
            lm_out = track.landmarks if variant == "input" else tex_track.landmarks
            idx = track.frame_indices if variant == "input" else tex_track.frame_indices
            det = [detail(imgs[f], lm_out[int(np.searchsorted(idx, f))], region) for f in range(full[0], full[1] + 1)
                   if f in set(idx.tolist())]
            res[variant] = {"detail": round(float(np.nanmean(det)), 3), "flicker": flicker(imgs, edited, box),
                            "jitter": jitter(imgs, range(edited.start, min(edited.stop, len(imgs) - 1)), box)}
            if variant in outs:
                res[variant] |= outs[variant]
        report["yaw_minus" if sign < 0 else "yaw_plus"] = res
        save_stills(images, [full[0] + 8, (full[0] + full[1]) // 2, full[1] - 8], box,
                    RESULTS / f"cheek_{name}_{'minus' if sign < 0 else 'plus'}.png")
        print(f"[{name}] sign {sign}: {json.dumps(res)}", file=sys.stderr, flush=True)
    return report


def save_stills(images: dict[str, list[np.ndarray]], frames: list[int], box: tuple[int, int, int, int],
                path: Path) -> None:
    x0, y0, x1, y1 = box
    lines = []
    for f in frames:
        tiles = [images[k][f][y0:y1, x0:x1] for k in ("input", "warp", "texture")]
        diff = np.abs(tiles[2].astype(int) - tiles[1].astype(int)).sum(axis=2)
        tiles.append(np.repeat(np.clip(diff * 4, 0, 255).astype(np.uint8)[:, :, None], 3, axis=2))
        line = np.concatenate(tiles, axis=1)
        scale = max(1.0, 200.0 / line.shape[0])
        line = cv2.resize(line, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
        cv2.putText(line, f"frame {f}: input | warp | texture | x4 diff", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(line)
    width = max(line.shape[1] for line in lines)
    lines = [np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0))) for line in lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(lines, axis=0)[:, :, ::-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="retalking_face_1 only")
    ap.add_argument("--strength", type=float, default=8.0, help="head_yaw degrees (default 8)")
    args = ap.parse_args()
    report: dict[str, Any] = {"bench": "cheek_texture"}
    with tempfile.TemporaryDirectory() as tmp:
        for name in (["retalking"] if args.quick else list(CLIPS)):
            report[name] = run_clip(name, Path(tmp), args.strength)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
