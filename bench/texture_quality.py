"""Region texture borrowed from other frames vs warp only, on the same edits (prints one JSON).

For each clip and edit, ``run_edit`` renders twice to ffv1 (lossless): ``warp`` (``texture=None``)
and ``texture`` (default ``TextureConfig``), and, for eye edits on clips without a closed eye,
a third time: ``no_lids`` (``TextureConfig(closed_lids=False)``: no lids made from the face's own
frames, so the edit is clamped where no exemplar exists). The outputs are re-tracked
(``run_analysis(use_cache=False)``). On the full-strength frames:

- blink: achieved change of the eye's ``eyeBlink*`` score (re-tracked RAW blendshapes, output minus
  input on the same frames) and the lid gap (mean distance of the facing lid points, pixels);
- jaw open: achieved ``jawOpen`` change, inner-lip gap (pixels), and the mouth interior's mean
  and standard deviation of luminance (teeth are bright and structured; stretched lip is not);
- flicker: mean absolute frame-to-frame change (0..255) of the pixels in the edited region's box
  over the edited frames (ramps included, where the edit itself changes the region), for the
  input, warp and texture outputs; ``flicker_full``: the same over the full-strength frames only
  (the target state is held, so any change beyond the input's is flicker); ``jitter``: the mean
  absolute second difference over the edited frames (change that does not continue);
- the summary's texture events (which exemplar frames lent texture, or where a clamp acted).

Stills (input | warp | texture, at a full-strength frame) go to bench/results/texture_*.png, and
the ramp frames (partly edited, where a half-weight blend would show a ghost) to
bench/results/texture_ramps_<clip>_<edit>.jpg.

    python bench/texture_quality.py [--quick]
    python bench/texture_quality.py --cpu 1080 [--rounds 6]   # CPU ms of one region composite
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

from plugin.analyze import run_analysis  # noqa: E402
from plugin.demo import MotionSettings, write_demo_clip  # noqa: E402
from plugin.edit_job import EditJob, run_edit  # noqa: E402
from plugin.pipeline import RenderJob  # noqa: E402
from plugin.texture_stage import TextureConfig  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig  # noqa: E402
from synthesis import regions as rg  # noqa: E402
from synthesis.texregions import REGIONS  # noqa: E402
from synthesis.plan import PlanConfig  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from tracking.mediapipe_results import BLENDSHAPE_NAMES  # noqa: E402

from quality import cut_clip  # noqa: E402  (bench/ is on sys.path as the script's folder)

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
RESULTS = Path(__file__).resolve().parent / "results"
BS = {n: i for i, n in enumerate(BLENDSHAPE_NAMES)}
RAMP = 3
#: Edits: (control, strength, full-strength frames, region, blendshape read back).
EDITS = {
    "blink_left": ("blink_left", 1.0, (10, 29), "eye_left", "eyeBlinkLeft"),
    "blink_right": ("blink_right", 1.0, (10, 29), "eye_right", "eyeBlinkRight"),
    "jaw_open": ("jaw_open", 1.0, (4, 14), "mouth", "jawOpen"),
}
#: jaw_open's documented range is 0.4 (a hair's gap on a closed mouth); 1.0 (10 degrees) opens
#: the mouth as far as the clip's own open-mouth frames, so its range clamp is lifted.
UNCLAMPED = {"jaw_open"}
#: The reference check: frames kept of liveportrait_d0 (its blink is at 64-68) and the still used.
REFERENCE_CUT = 40
REFERENCE_FRAME = 66


def log(*a: Any) -> None:
    print(*a, file=sys.stderr, flush=True)


def frames_of(path: Path) -> list[np.ndarray]:
    with VideoReader(path) as r:
        return [f.image for f in r]


def lid_gap(lm: np.ndarray, side: str) -> np.ndarray:
    pairs = np.asarray(rg.EYE_PAIRS[side])
    return np.linalg.norm(lm[..., pairs[:, 0], :2] - lm[..., pairs[:, 1], :2], axis=-1).mean(axis=-1)


def mouth_gap(lm: np.ndarray) -> np.ndarray:
    up, lo = np.asarray(rg.LIPS_INNER_UPPER[1:-1]), np.asarray(rg.LIPS_INNER_LOWER[1:-1])
    return np.linalg.norm(lm[..., up, :2] - lm[..., lo, :2], axis=-1).mean(axis=-1)


def interior_luma(image: np.ndarray, lm: np.ndarray) -> tuple[float, float]:
    poly = lm[list(rg.LIPS_INNER_UPPER) + list(rg.LIPS_INNER_LOWER[::-1]), :2]
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillPoly(mask, [np.round(poly).astype(np.int32)], 1)
    if mask.sum() < 5:
        return float("nan"), float("nan")
    y = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY)[mask > 0].astype(float)
    return round(float(y.mean()), 1), round(float(y.std()), 1)


#: What each edit is rendered with: the warp alone, and texture from other frames (closed lids
#: made from the face's own frames included, the default); ``no_lids`` (texture without them)
#: where the clip has no closed eye.
VARIANTS = ("warp", "texture")
VARIANT_LABELS = {"warp": "warp only", "texture": "texture", "no_lids": "texture, no made lids"}


def region_box(lm: np.ndarray, region: str, pad: int = 6) -> tuple[int, int, int, int]:
    pts = lm[:, list(REGIONS[region].outer), :2].reshape(-1, 2)
    x0, y0 = np.floor(pts.min(0)).astype(int) - pad
    x1, y1 = np.ceil(pts.max(0)).astype(int) + pad
    return max(x0, 0), max(y0, 0), x1, y1


def flicker(images: list[np.ndarray], frames: range, box: tuple[int, int, int, int]) -> float:
    x0, y0, x1, y1 = box
    d = [np.abs(images[f][y0:y1, x0:x1].astype(float) - images[f - 1][y0:y1, x0:x1].astype(float)).mean()
         for f in frames if f >= 1]
    return round(float(np.mean(d)), 3)


def jitter(images: list[np.ndarray], frames: range, box: tuple[int, int, int, int]) -> float:
    """Mean absolute second difference ``|I[f] - (I[f-1] + I[f+1]) / 2|`` (0..255) over ``frames``:
    frame-to-frame change that does not continue (flicker), where a steady motion (an eye
    closing over the ramp, the head moving) scores little."""
    x0, y0, x1, y1 = box
    c = [images[f][y0:y1, x0:x1].astype(float) for f in range(frames.start - 1, frames.stop + 1)]
    d = [np.abs(c[k] - (c[k - 1] + c[k + 1]) / 2).mean() for k in range(1, len(c) - 1)]
    return round(float(np.mean(d)), 3)


def temporal(images: list[np.ndarray], edited: range, full: tuple[int, int], box: tuple[int, int, int, int]) -> dict[str, float]:
    """Flicker over the edited frames (ramps included: the state change itself counts), over the
    full-strength frames only (the target state is held), and jitter over the edited frames."""
    return {"flicker": flicker(images, edited, box),
            "flicker_full": flicker(images, range(full[0] + 1, full[1] + 1), box),
            "jitter": jitter(images, range(max(edited.start, 1), min(edited.stop, len(images) - 1)), box)}


def ramp_frames(full: tuple[int, int]) -> list[int]:
    """The partly edited frames of a RAMP-frame ramp on either side of ``full``."""
    return [f for f in (*range(full[0] - RAMP + 1, full[0]), *range(full[1] + 1, full[1] + RAMP)) if f >= 0]


def crop(image: np.ndarray, box: tuple[int, int, int, int], height: int = 160) -> np.ndarray:
    x0, y0, x1, y1 = box
    c = image[y0:y1, x0:x1]
    return cv2.resize(c, (max(1, round(c.shape[1] * height / c.shape[0])), height), interpolation=cv2.INTER_CUBIC)


def run_one(clip: Path, work: Path, cache: Path, track, frames_in: list[np.ndarray], key: str,
            references: tuple[Path, ...] = (), ramps_name: str | None = None,
            variants: tuple[str, ...] = VARIANTS) -> tuple[dict[str, Any], list[np.ndarray]]:
    control, strength, full, region, bs_name = EDITS[key]
    sched = EditSchedule((EditEntry(track.track_id, control, StrengthCurve.over_range(strength, full[0], full[1], RAMP)),))
    rows = np.searchsorted(track.frame_indices, np.arange(full[0], full[1] + 1))
    lm_in = track.raw_landmarks[rows]
    box = region_box(track.landmarks[rows], region)
    edited = range(max(full[0] - RAMP, 1), full[1] + RAMP + 1)
    res: dict[str, Any] = {"frames_full": list(full), "region": region,
                           "input": temporal(frames_in, edited, full, box)}
    stills = [crop(frames_in[(full[0] + full[1]) // 2], box)]
    ramps = [f for f in ramp_frames(full) if f < len(frames_in)]
    ramp_rows = [("input", [crop(frames_in[f], box) for f in ramps])]
    if region.startswith("eye_"):
        res["input"]["lid_gap_px"] = round(float(lid_gap(lm_in, region[4:]).mean()), 2)
    else:
        res["input"]["inner_gap_px"] = round(float(mouth_gap(lm_in).mean()), 2)
        res["input"]["interior_luma_mean_std"] = interior_luma(frames_in[(full[0] + full[1]) // 2],
                                                              track.raw_landmarks[rows[len(rows) // 2]])
    for variant in variants:
        out = work / f"{clip.stem}_{key}_{variant}.mkv"
        kw: dict[str, Any] = {"texture": None} if variant == "warp" else {"references": tuple(references)}
        if variant == "no_lids":
            kw["texture"] = TextureConfig(closed_lids=False)
        if key in UNCLAMPED:
            kw["plan"] = PlanConfig(clamp_to_range=False)
        job = EditJob(RenderJob(clip, out, OutputConfig(codec="ffv1", overwrite=True)), sched, cache_dir=cache, **kw)
        summary = run_edit(job)
        re = run_analysis(out, cache_dir=work / "cache_out", use_cache=False).analysis
        t = max(re.tracks, key=lambda t: len(t.frame_indices))
        common = [f for f in range(full[0], full[1] + 1) if f in set(t.frame_indices.tolist())]
        a, b = np.searchsorted(track.frame_indices, common), np.searchsorted(t.frame_indices, common)
        images = frames_of(out)
        out.unlink()
        change = float((t.raw_blendshapes[b, BS[bs_name]] - track.raw_blendshapes[a, BS[bs_name]]).mean())
        r: dict[str, Any] = {f"{bs_name}_change": round(change, 3), f"{bs_name}_output": round(float(t.raw_blendshapes[b, BS[bs_name]].mean()), 3),
                             **temporal(images, edited, full, box),
                             "texture_events": summary.texture}
        mid = (full[0] + full[1]) // 2
        if region.startswith("eye_"):
            r["lid_gap_px"] = round(float(lid_gap(t.raw_landmarks[b], region[4:]).mean()), 2)
        else:
            r["inner_gap_px"] = round(float(mouth_gap(t.raw_landmarks[b]).mean()), 2)
            k = int(np.searchsorted(t.frame_indices, mid))
            r["interior_luma_mean_std"] = interior_luma(images[mid], t.raw_landmarks[k])
        res[variant] = r
        stills.append(crop(images[mid], box))
        ramp_rows.append((variant, [crop(images[f], box) for f in ramps]))
        src = [x for e in summary.texture if e["action"] == "texture"
               for a, b, x in e["runs"] if a <= mid <= b and x.startswith("clip:")]
        if variant == "texture" and src:  # the frame that lent the texture, at its own place
            k = int(src[-1].split(":")[1])
            kr = int(np.searchsorted(track.frame_indices, k))
            stills.append(crop(frames_in[k], region_box(track.landmarks[kr:kr + 1], region)))
        log(f"[{clip.stem}] {key} {variant}: {json.dumps(r)}")
    if ramps_name:
        save_ramps(ramp_rows, ramps, RESULTS / f"texture_ramps_{ramps_name}.jpg")
    return res, stills


def save_ramps(rows: list[tuple[str, list[np.ndarray]]], frames: list[int], path: Path) -> None:
    """The ramp frames (partly edited) side by side, one row per variant, labelled (JPEG, to keep
    the results folder small)."""
    lines = []
    for label, tiles in rows:
        tiles = [t.copy() for t in tiles]
        for t, f in zip(tiles, frames, strict=True):
            cv2.putText(t, f"{label} {f}", (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(np.concatenate(tiles, axis=1))
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(lines, axis=0)[:, :, ::-1])


def save_montage(rows: list[tuple[str, list[np.ndarray]]], path: Path,
                 variants: dict[str, tuple[str, ...]] | None = None) -> None:
    """One row per edit: input, then each variant (``variants[label]``, default :data:`VARIANTS`),
    then the exemplar frame when one lent the texture."""
    lines = []
    width = max(sum(s.shape[1] for s in tiles) for _, tiles in rows)
    for label, tiles in rows:
        line = np.concatenate(tiles, axis=1)
        line = np.pad(line, ((0, 0), (0, width - line.shape[1]), (0, 0)))
        names = ["input", *(VARIANT_LABELS[v] for v in (variants or {}).get(label, VARIANTS))]
        names += ["exemplar"] if len(tiles) > len(names) else []
        cv2.putText(line, f"{label}: " + " | ".join(names), (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    (255, 255, 0), 1, cv2.LINE_AA)
        lines.append(line)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), np.concatenate(lines, axis=0)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 92])


def bench_clip(name: str, clip: Path, work: Path, keys: list[str], lids: bool = False) -> dict[str, Any]:
    """``lids``: eye edits also render without closed lids made from the face's frames
    (``no_lids``: the clip and references alone lend, else the edit is clamped)."""
    cache = work / f"cache_{name}"
    analysis = run_analysis(clip, cache_dir=cache).analysis
    track = max(analysis.tracks, key=lambda t: len(t.frame_indices))
    frames_in = frames_of(clip)
    report: dict[str, Any] = {"clip": str(clip.name), "frames": len(frames_in),
                              "input_eyeBlink_max": [round(float(track.raw_blendshapes[:, BS[n]].max()), 3)
                                                     for n in ("eyeBlinkLeft", "eyeBlinkRight")],
                              "input_jawOpen_max": round(float(track.raw_blendshapes[:, BS["jawOpen"]].max()), 3)}
    rows, used = [], {}
    for key in keys:
        used[key] = (*VARIANTS, "no_lids") if lids and EDITS[key][3].startswith("eye_") else VARIANTS
        res, stills = run_one(clip, work, cache, track, frames_in, key, ramps_name=f"{name}_{key}", variants=used[key])
        report[key] = res
        rows.append((key, stills))
    save_montage(rows, RESULTS / f"texture_{name}.png", used)
    return report


def reference_check(work: Path) -> dict[str, Any]:
    """blink_left on liveportrait cut to frames 0-39 (no blink there), with and without its own
    frame 66 (eyes closed) given as a ``--reference`` still."""
    src = FIXTURES / "liveportrait_d0.mp4"
    cut = cut_clip(src, work / "lp_cut.mkv", REFERENCE_CUT)
    still = work / "closed.png"
    with VideoReader(src) as reader:
        cv2.imwrite(str(still), reader.frame_at(REFERENCE_FRAME).image[:, :, ::-1])
    cache = work / "cache_cut"
    track = max(run_analysis(cut, cache_dir=cache).analysis.tracks, key=lambda t: len(t.frame_indices))
    frames_in = frames_of(cut)
    report: dict[str, Any] = {"clip": f"liveportrait_d0 frames 0-{REFERENCE_CUT - 1}",
                              "reference": f"liveportrait_d0 frame {REFERENCE_FRAME}"}
    rows, used = [], {}
    for label, refs in (("no_reference", ()), ("reference", (still,))):
        row = f"blink_left {label.replace('_', ' ')}"
        used[row] = (*VARIANTS, "no_lids") if not refs else VARIANTS
        res, stills = run_one(cut, work, cache, track, frames_in, "blink_left", refs, variants=used[row])
        report[label] = res
        rows.append((row, stills))
    save_montage(rows, RESULTS / "texture_reference.png", used)
    return report


def cpu_ms(height: int, rounds: int) -> dict[str, Any]:
    """CPU milliseconds of one region composite (``transfer_region``, in place, as the edit stage
    calls it) at ``height``: liveportrait_d0 frames 5-9 scaled to ``height`` (a close-up: the face
    fills the height) and padded to 16:9, each given frame 66's region (open mouth, closed eyes).
    Median and least over ``rounds`` x 5 calls after one warm-up round, per region."""
    import inspect
    import time

    from plugin.texture_stage import transfer_region

    clip = FIXTURES / "liveportrait_d0.mp4"
    track = max(run_analysis(clip).analysis.tracks, key=lambda t: len(t.frame_indices))
    with VideoReader(clip) as reader:
        size = reader.frame_at(0).image.shape[0]
        scale, padx = height / size, (height * 16 // 9 - height) // 2
        frames = {i: np.pad(cv2.resize(reader.frame_at(i).image, (height, height), interpolation=cv2.INTER_LINEAR),
                            ((0, 0), (padx, padx), (0, 0))) for i in (5, 6, 7, 8, 9, 66)}

    def lm(i: int) -> np.ndarray:
        out = track.landmarks[int(np.searchsorted(track.frame_indices, i))].astype(np.float64) * scale
        out[:, 0] += padx
        return out

    # a tree without the in-place option (the version before it) copies the frame in every call
    modes = {"in_place": {"in_place": True}, "copy": {}} if "in_place" in inspect.signature(transfer_region).parameters \
        else {"copy": {}}
    report: dict[str, Any] = {"height": height, "rounds": rounds}
    for name in ("mouth", "eye_left"):
        layers = [(frames[66], lm(66), 1.0)]
        for mode, kw in modes.items():
            times = []
            for r in range(rounds + 1):
                for i in (5, 6, 7, 8, 9):
                    image, target = frames[i].copy(), lm(i)
                    t0 = time.process_time()
                    transfer_region(image, target, layers, REGIONS[name], **kw)
                    if r:
                        times.append((time.process_time() - t0) * 1000)
            report[f"{name}_{mode}"] = {"median_ms": round(float(np.median(times)), 2),
                                        "min_ms": round(float(np.min(times)), 2)}
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="liveportrait blink_left and jaw_open, astronaut blink_left")
    ap.add_argument("--cpu", type=int, metavar="HEIGHT", help="only time one region composite at this frame height")
    ap.add_argument("--rounds", type=int, default=6, help="rounds of 5 frames for --cpu")
    args = ap.parse_args()
    if args.cpu:
        print(json.dumps(cpu_ms(args.cpu, args.rounds)))
        return
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        lp = FIXTURES / "liveportrait_d0.mp4"
        keys = ["blink_left", "jaw_open"] if args.quick else list(EDITS)
        report["liveportrait"] = bench_clip("liveportrait", lp, work, keys)
        astro = work / "astronaut.mp4"
        write_demo_clip(astro, MotionSettings(num_frames=40))
        report["astronaut"] = bench_clip("astronaut", astro, work,
                                         ["blink_left"] if args.quick else ["blink_left", "blink_right"], lids=True)
        report["liveportrait_reference"] = reference_check(work)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
