"""A blink whose only closed-eye exemplar is a reference still: the texture weight and the eye's
flicker over the ramp frames (prints one JSON).

The astronaut demo clip has no closed-eye frame of its own. A closed-eye still of her is made by
blinking the still itself with the edit engine, its closed lid borrowed from liveportrait_d0's
frame 66 (:func:`closed_reference`). ``blink_left=1`` over frames ``FULL`` eased in and out over
``RAMP`` frames is then rendered (ffv1) with that still as the only reference, and warp only for
comparison. Per frame over the edited frames:

- ``closure``: the eye's target closure after the edit (after any clamp);
- ``weight``: the borrowed texture's weight inside the eye's core (the compositor's
  ``Choice.weight``: ``min(need / full_weight_need, 1)`` times its fade, 0 without an exemplar)
  and its source;
- ``flicker``: mean absolute frame-to-frame change (0..255) inside the eye, measured on the
  frames mapped back onto the still by the demo's known homographies (so the head's motion does
  not count; the mask is the hull of the region's outer vertices on the still, grown 3 px), for
  the input, warp and texture renders; ``excess``: texture minus warp (a pop shows as a spike).

Summary: the largest frame-to-frame step of the weight, the largest excess flicker, and the
texture events. Crops of the eye (4x, on the frames mapped back onto the still) over the ramp
frames, rows input | warp | texture, go to ``OUT/ramp_in.png`` and ``OUT/ramp_out.png``.

    python bench/reference_ramp.py [--out /tmp/reframp/after]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.demo import DEMO_FPS, MotionSettings, astronaut_image, write_demo_clip  # noqa: E402
from plugin.edit_job import PreparedEdit, prepare_edit  # noqa: E402
from plugin.editing import EditStage  # noqa: E402
from plugin.pipeline import RenderJob, run_render  # noqa: E402
from plugin.texture_stage import Reference, TextureConfig, load_references, prepare_texture  # noqa: E402
from plugin.video import VideoReader  # noqa: E402
from plugin.writer import OutputConfig  # noqa: E402
from synthesis.exemplars import raw_features, state  # noqa: E402
from synthesis.plan import FacePlan  # noqa: E402
from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve  # noqa: E402
from synthesis.texregions import REGIONS  # noqa: E402
from texture_quality import frames_of, log  # noqa: E402  (bench/ is on sys.path as the script's folder)

REGION = "eye_left"
#: Full-strength frames and ramp of the blink on the demo clip.
FULL, RAMP = (12, 24), 4
CLIP_FRAMES = 36
#: Frames of the still clip the closed-eye reference is rendered from, and the one taken.
STILL_FRAMES, STILL_FRAME = 6, 3
ZOOM = 4
FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
#: liveportrait_d0's frame with both eyes closed (the tests' and texture_quality's reference).
LP_CLOSED_FRAME = 66


def still_clip(image: np.ndarray, path: Path, frames: int = STILL_FRAMES) -> Path:
    """A clip (ffv1) of ``image`` ``(H, W, 3)`` uint8 RGB standing still."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("ffv1", rate=DEMO_FPS)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "bgr0"
        for i in range(frames):
            vf = av.VideoFrame.from_ndarray(image, format="rgb24")
            vf.pts = i
            for packet in stream.encode(vf):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path


def closed_reference(work: Path) -> tuple[Reference, Path]:
    """The astronaut still with its left eye closed: the still blinked by the edit engine, its
    closed lid borrowed from liveportrait_d0's frame 66 (the tests' closed-eye still) given as a
    reference (a warp alone leaves a smeared iris).

    Returns:
        The reference, with the landmarks the edit put the face at (the lid on the lower lid:
        closure 1; the landmarker re-reads this still as half closed, since her open eye is
        narrow and a closed lid's contour keeps some gap), and the still as a PNG.
    """
    lp = work / "lp_closed.png"
    with VideoReader(FIXTURES / "liveportrait_d0.mp4") as reader:
        cv2.imwrite(str(lp), reader.frame_at(LP_CLOSED_FRAME).image[:, :, ::-1])
    clip, out = still_clip(astronaut_image(), work / "still.mkv"), work / "still_closed.mkv"
    sched = EditSchedule((EditEntry(0, "blink_left", StrengthCurve.over_range(1.0, 0, STILL_FRAMES - 1, 0)),))
    prep = prepare_edit(clip, sched, texture=TextureConfig(closed_lids=False), references=(lp,),
                        cache_dir=work / "cache_still")
    try:
        run_render(RenderJob(clip, out, OutputConfig(codec="ffv1", overwrite=True)), [prep.stage],
                   edited_ranges=[tuple(r) for r in prep.edited_ranges], edited_by_face=prep.edited_by_face)
    finally:
        prep.close()
    image = frames_of(out)[STILL_FRAME]
    png = work / "closed_left.png"
    cv2.imwrite(str(png), image[:, :, ::-1])
    track = prep.analysis.analysis.tracks[0]
    row = int(np.searchsorted(prep.plans[0].frame_indices, STILL_FRAME))
    return Reference(str(png), image, prep.plans[0].after[row].astype(np.float32), track.angles[row].astype(np.float32),
                     track.blendshapes[row].astype(np.float32)), png


def still_mask(lm: np.ndarray, grow_px: int = 3) -> np.ndarray:
    """``(512, 512)`` bool: the eye's outer hull in the still's pixels (frame 0 is the still)."""
    mask = np.zeros((512, 512), np.uint8)
    hull = cv2.convexHull(np.round(lm[list(REGIONS[REGION].outer), :2]).astype(np.int32))
    cv2.fillPoly(mask, [hull], 1)
    return cv2.dilate(mask, np.ones((2 * grow_px + 1,) * 2, np.uint8)) > 0


def to_still(images: list[np.ndarray], homs: np.ndarray) -> list[np.ndarray]:
    """Each frame mapped back onto the still by its known homography (the head motion undone)."""
    return [cv2.warpPerspective(im, np.linalg.inv(h), (im.shape[1], im.shape[0]), flags=cv2.INTER_LINEAR)
            .astype(np.float64) for im, h in zip(images, homs, strict=True)]


def render(clip: Path, work: Path, label: str, sched: EditSchedule,
           refs: tuple[Reference, ...] | None) -> tuple[list[np.ndarray], PreparedEdit, list[FacePlan], Any, list]:
    """Render the edit (``refs`` None: warp only). Returns the frames, the prepared edit, the
    plans rendered, the texture compositor (its choices) and the texture events."""
    out = work / f"{label}.mkv"
    prep = prepare_edit(clip, sched, texture=None, cache_dir=work / "cache")
    plans, comp, events = list(prep.plans), None, []
    if refs is not None:
        tracks = {t.track_id: t for t in prep.analysis.analysis.tracks}
        # the reference as the only exemplar: no lids made from the clip's own frames
        plans, comp, events = prepare_texture(plans, tracks, clip, refs, TextureConfig(closed_lids=False))
    stage = EditStage(plans, frames_of(clip)[0].shape[:2], None, texture=comp)
    try:
        run_render(RenderJob(clip, out, OutputConfig(codec="ffv1", overwrite=True)), [stage],
                   edited_ranges=[tuple(r) for r in prep.edited_ranges], edited_by_face=prep.edited_by_face)
    finally:
        if comp is not None:
            comp.close()
    return frames_of(out), prep, plans, comp, events


def texture_weight(choice: Any, full_weight_need: float) -> np.ndarray:
    """``(M,)`` the weight each row's borrowed texture is composited at (a tree before
    ``Choice.weight``: ``min(need / full_weight_need, 1)`` where an exemplar is chosen)."""
    if hasattr(choice, "weight"):
        return choice.weight(full_weight_need)
    return np.where((choice.first >= 0) & (choice.need > 0), np.minimum(choice.need / full_weight_need, 1.0), 0.0)


def zoom_row(images: list[np.ndarray], frames: list[int], box: tuple[int, int, int, int], label: str) -> np.ndarray:
    x0, y0, x1, y1 = box
    tiles = []
    for f in frames:
        t = cv2.resize(images[f][y0:y1, x0:x1], None, fx=ZOOM, fy=ZOOM, interpolation=cv2.INTER_NEAREST)
        cv2.putText(t, f"{label} {f}", (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 0), 1, cv2.LINE_AA)
        tiles.append(t)
    return np.concatenate(tiles, axis=1)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("/tmp/reframp/current"), help="folder for the PNG crops")
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        ref, png = closed_reference(work)
        ref_copy = args.out / "reference.png"
        cv2.imwrite(str(ref_copy), cv2.imread(str(png)))
        clip = write_demo_clip(work / "astronaut.mp4", MotionSettings(num_frames=CLIP_FRAMES))
        clip_json = args.out / "astronaut.motion.json"
        clip_json.write_text(clip.with_suffix(".motion.json").read_text())
        sched = EditSchedule((EditEntry(0, "blink_left", StrengthCurve.over_range(1.0, FULL[0], FULL[1], RAMP)),))
        frames_in = frames_of(clip)
        warp = render(clip, work, "warp", sched, None)[0]
        tex, prep, plans, comp, events = render(clip, work, "texture", sched, (ref,))
    plan = plans[0]
    jobs = [j for j in comp.jobs.get(plan.track_id, []) if j.region.name == REGION] if comp else []
    track = prep.analysis.analysis.tracks[0]
    gap = float(np.percentile(raw_features(track.landmarks, REGION)[:, 0], 90))
    retracked = load_references([ref_copy])[0].landmarks
    ref_closure = [float(state(raw_features(x, REGION), REGION, gap)[0]) for x in (ref.landmarks, retracked)]
    homs = np.asarray(json.loads(clip_json.read_text())["frame_trans_still"])
    stills = {n: to_still(im, homs) for n, im in (("input", frames_in), ("warp", warp), ("texture", tex))}
    mask = still_mask(track.landmarks[0])
    closure = state(raw_features(plan.after, REGION), REGION, gap)[:, 0]
    weight = texture_weight(jobs[0].choice, comp.config.full_weight_need) if jobs else np.zeros(len(plan.frame_indices))
    per_frame = []
    for row, f in enumerate(plan.frame_indices.tolist()):
        rec: dict[str, Any] = {"frame": f, "closure": round(float(closure[row]), 3), "weight": 0.0, "source": None}
        if jobs:
            ch = jobs[0].choice
            if weight[row] > 0:
                rec["weight"] = round(float(weight[row]), 3)
                rec["source"] = [int(x) for x in ch.candidates[ch.first[row]]]
                if ch.second[row] >= 0:
                    rec["second"] = [int(x) for x in ch.candidates[ch.second[row]]]
                    rec["mix"] = round(float(ch.mix[row]), 3)
        if f >= 1:
            for name, images in stills.items():
                rec[f"flicker_{name}"] = round(float(np.abs(images[f][mask] - images[f - 1][mask]).mean()), 2)
            rec["excess"] = round(rec["flicker_texture"] - rec["flicker_warp"], 2)
        per_frame.append(rec)
    edited = [r for r in per_frame if FULL[0] - RAMP <= r["frame"] <= FULL[1] + RAMP + 1 and "excess" in r]
    weights = np.array([r["weight"] for r in edited])
    report = {
        "clip": f"astronaut demo, {CLIP_FRAMES} frames", "edit": f"blink_left=1@{FULL[0]}-{FULL[1]}~{RAMP}",
        "reference_closure": {"planned": round(ref_closure[0], 3), "retracked": round(ref_closure[1], 3)},
        "max_weight_step": round(float(np.abs(np.diff(weights)).max()), 3),
        "max_excess_flicker": max(r["excess"] for r in edited),
        "mean_flicker": {n: round(float(np.mean([r[f"flicker_{n}"] for r in edited])), 3)
                         for n in ("input", "warp", "texture")},
        "texture_events": events,
        "frames": edited,
    }
    print(json.dumps(report))
    lm = track.landmarks[0][list(REGIONS[REGION].outer), :2]  # on the still (frame 0 is the still)
    pad = 8
    x0, y0 = np.floor(lm.min(0)).astype(int) - pad
    x1, y1 = np.ceil(lm.max(0)).astype(int) + pad
    box = (max(int(x0), 0), max(int(y0), 0), int(x1), int(y1))
    steady = {n: [np.clip(im, 0, 255).astype(np.uint8) for im in ims] for n, ims in stills.items()}
    for name, frames in (("ramp_in", list(range(FULL[0] - RAMP, FULL[0] + 2))),
                         ("ramp_out", list(range(FULL[1] - 1, FULL[1] + RAMP + 1)))):
        grid = np.concatenate([zoom_row(steady[n], frames, box, lab)
                               for lab, n in (("in", "input"), ("warp", "warp"), ("tex", "texture"))], axis=0)
        cv2.imwrite(str(args.out / f"{name}.png"), grid[:, :, ::-1])


if __name__ == "__main__":
    main()
