"""Swap repair measured on synthetic bad swaps of real clips (prints one JSON object).

There is no real (plate, swap) pair in the fixtures, so bad swaps are made from real clips (the
LivePortrait fixture and the astronaut demo clip) the way swap models fail, and
``deltaface restore`` is asked to repair them. Kinds of damage (``DAMAGE``):

- ``rotate``: over a frame range the face is re-rendered with a wrong head rotation by
  deltaface's own edit engine (``run_edit`` with ``head_yaw`` / ``head_pitch`` deltas, eased in
  and out over 4 frames): a swap model that does not follow the head's turn;
- ``express``: the same with a wrong expression (brows raised and eyes narrowed; a smile turned
  down and brows raised): a swap model that invents or exaggerates an expression;
- ``freeze``: the face region keeps an earlier frame's face: that frame's pixels are moved by the
  2-D similarity (fitted on the head-rigid landmarks of the plate's raw track) that carries the
  earlier face onto the current face's position, and pasted inside the current face oval with a
  feathered edge. Expression and out-of-plane rotation are frozen; the face still follows the
  head in the image plane (a swap model that "sticks"; here it misses a blink and a smile's end);
- ``lose``: the face oval (grown 1.6 times about its centre) is filled with its mean colour, so
  that no face is found there in the swap (a profile failure that leaves a smear). The restore
  runs with ``bridge``: those frames get the nearest good swap frame's face warped to the
  plate's pose and rebuilt through UV space (``plugin.texture_stage.rebuild_face``); "before"
  figures there are against the tracker's interpolated face and mean little;
- ``garble``: the face melts: inside the face oval (feathered) the frame is resampled through a
  smooth random displacement (a fresh one per frame, amplitude ``GARBLE_IOD`` inter-ocular
  distances, varying over about half of one), the way a swap model breaks down on a pose it
  did not learn. The landmarker still finds a face there. The restore runs with ``bridge``, so
  frames it finds garbled (``RestoreConfig.garbled_drop``) are rebuilt from the nearest good
  swap frame; ``garbled_flagged`` counts them, ``detail_drop`` is the mean of how much less the
  face's texture agrees with the rest of its track than the plate's does
  (``synthesis.consistency``), before (swap) and after (output), and ``garbled_elsewhere``
  lists frames flagged outside every garble range (false alarms). ``occluders`` lists what the
  restore found covering a repaired face (looked for in the plate, ``RestoreJob.occluders``):
  nothing covers these clips' faces, so any entry is a false alarm;
- ``limit_teeth``, ``limit_gaze``: freezes that warping cannot undo (the plate shows teeth the
  frozen closed mouth has not; the plate's irises swing from one eye corner to the other).
  Reported with ``"limit": true``, not counted toward the targets;
- ``limit_turn`` (the PC-AVS clip, a face turned 23-32 degrees away): a ``rotate`` that turns the
  head 10 degrees further away. Turning it back toward the camera would bring the far cheek out
  from behind the nose, so the restore keeps the turn to what the frame shows
  (``RestoreConfig.max_hidden_share``, ``synthesis.restore.reveal_gains``) and says so
  (``rotation_clamped`` in ``restore_summary``). A limit too: the pose left is by design.

The swap is written lossless (ffv1 in .mp4), restored to ffv1, and every clip (plate, swap,
output) is tracked. Per damaged range (every frame of it, ramps excluded), before (swap) and
after (output):

- ``pose_div_deg``: largest |yaw|, |pitch|, |roll| difference from the plate (code-space
  rotations of each track's inversion), mean and max; target: after within 2 degrees;
- ``expr_div``: largest absolute blendshape score difference (51 scores), mean over the range,
  and the reduction ``1 - after / before``; target >= 0.7. ``expr_div_l1``: the mean absolute
  difference of the 51 scores;
- ``landmark_div_iod``: mean distance of the 468 tracked mesh points from the plate's, in
  inter-ocular distances (geometry; blendshapes also read texture);
- ``identity_vs_plate_iod``: identity of the swap (before) and of the output (after) against
  the plate's, all estimated by ``invert_track`` over the range's frames and compared on the
  head-rigid points after a similarity alignment, RMS in inter-ocular distances. The synthetic
  swap is the plate's person, so after a repair that keeps the swap's shape and restores the
  plate's pose and expression this is the landmarker's noise; target < 0.01. (That the swap's
  shape, not the plate's, is kept when the two differ is tested in
  tests/synthesis/test_restore.py.)
- ``identity_change_iod``: the swap's identity over the clip's frames that no damage and no
  repair touched against the output's over the range; ``identity_floor_iod`` the same for the
  plate against itself: how much the landmarker's identity reading varies with pose and
  expression alone;
- ``untouched_bit_identical``: frames outside every planned edit and bridge that decode
  bit-identical to the swap (of how many);
- ``expr_div_floor``: the same expression divergence between the plate and the plate itself
  moved by a quarter pixel (bilinear resampling, ``FLOOR_SHIFT_PX``), re-tracked: what the
  landmarker reads for a change no eye sees. A repair resamples the face at least once, so an
  ``expr_div_after`` at or below this floor is as close to the plate as the reading can tell,
  and a ``expr_div_before`` near it holds no expression for a repair to restore;
- ``expr_diverged``: whether ``expr_div_before`` exceeds the restore's own expression threshold
  (``RestoreConfig.expression_threshold``): only such ranges count toward the 70 % target, since
  below it the range was flagged (and fixed) for its pose alone.

``targets`` (per clip) checks the issue's figures over the counted ranges (``limit`` ranges and
``lose`` and ``garble``, whose faces are rebuilt rather than warped, are left out; ranges left out of a
target are listed with the reason): pose after within 2 degrees (max), expression reduction at
least 0.7 where ``expr_diverged``, identity against the plate under 0.01 IOD, untouched frames
bit-identical.

``reference`` (LivePortrait only): the ``freeze`` range again, restored with ``--reference`` (a
still of the swapped identity with closed eyes: the synthetic swap IS the plate's person, so its
frame 66 stands in for what a DeepFaceLab user has in ``data_src/aligned``). The swap's own frames
never close the right eye (its blink is inside the frozen range), so without a reference that
blink borrows lids made from one of the swap's own open-eyed frames (``TextureConfig.closed_lids``,
``compositing/lids.py``); the texture events name them.

Stats of the restore's closed loop (``plugin.restore_loop.refine_plan``: shortfall of the change the
re-detected face shows against the planned change, before and after the loop) per clip under
``closed_loop``; where region textures were borrowed or an edit clamped under ``texture``.

Stills (plate | swap | restored) of one frame per range go to bench/results/restore_*.png.

    python bench/restore.py [--clip liveportrait|astronaut|pcavs|all] [--work DIR]
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

from compositing.mask import face_oval  # noqa: E402
from plugin.analyze import run_analysis  # noqa: E402
from plugin.demo import MotionSettings, write_demo_clip  # noqa: E402
from plugin.edit_job import EditJob, run_edit  # noqa: E402
from plugin.editlist import schedule_from_specs  # noqa: E402
from plugin.pipeline import RenderJob  # noqa: E402
from plugin.restore import RestoreJob, detail_agreements, run_restore
from plugin.video import VideoReader, probe  # noqa: E402
from plugin.writer import OutputConfig, VideoWriter  # noqa: E402
from synthesis.codespace import invert_track  # noqa: E402
from synthesis.regions import inter_ocular, rigid_weights  # noqa: E402
from synthesis.restore import RestoreConfig, divergence  # noqa: E402
from tracking.pose import similarity_fit  # noqa: E402

FIXTURES = Path(__file__).resolve().parents[1] / ".." / "shared" / "fixtures"
RESULTS = Path(__file__).resolve().parent / "results"
#: The damage per clip: (kind, first, last, argument): the source frame for ``freeze``, the
#: rotation specs for ``rotate``.
DAMAGE: dict[str, list[tuple[str, int, int, Any]]] = {
    "liveportrait": [("express", 2, 10, ("brow_raise=1", "squint=0.8")),
                     ("rotate", 44, 54, ("head_yaw=9", "head_pitch=-6")),
                     ("freeze", 62, 70, 60),
                     ("limit_teeth", 19, 27, 14), ("limit_gaze", 31, 39, 24)],
    "astronaut": [("rotate", 10, 22, ("head_pitch=-8",)), ("express", 30, 36, ("smile=-0.5", "brow_raise=0.8")),
                  ("lose", 40, 41, None), ("rotate", 48, 60, ("head_yaw=-10",))],
    # the same plates melted on one range only (the clips above have no room left for it)
    "liveportrait_garble": [("garble", 40, 46, 1)],
    "astronaut_garble": [("garble", 30, 36, 2)],
    "pcavs": [("limit_turn", 60, 80, ("head_yaw=-10",))],
}
#: The reference check: (clip, damage kind, frame of the plate given as a still of the swapped identity).
REFERENCE = ("liveportrait", "freeze", 66)
#: Damage that warping cannot undo (reported, not counted toward the targets): teeth that the
#: swap's closed mouth does not have, an iris swung from one eye corner to the other.
LIMITS = ("limit_teeth", "limit_gaze", "limit_turn")
#: Damage made by freezing an earlier frame's face, and by re-rendering with deltas.
FREEZES, RENDERED = ("freeze", "limit_teeth", "limit_gaze"), ("rotate", "express", "limit_turn")
FEATHER = 0.04
#: The garble's displacement: amplitude and the spacing of its random nodes (inter-ocular distances).
GARBLE_IOD, GARBLE_NODE_IOD = 0.15, 0.5
#: The resampling floor's shift (pixels, x and y; see the module doc).
FLOOR_SHIFT_PX = 0.25
#: The issue's targets (#6): pose after (degrees, max), expression reduction, identity (IOD).
POSE_TARGET_DEG, EXPR_TARGET, IDENTITY_TARGET_IOD = 2.0, 0.7, 0.01


def _oval_alpha(shape: tuple[int, int], landmarks: np.ndarray) -> np.ndarray:
    oval = face_oval(landmarks).astype(np.float32)
    mask = np.zeros(shape, np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(oval).astype(np.int32), 255)
    sigma = max(FEATHER * float(np.ptp(oval, axis=0).max()), 1.0)
    return cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (0, 0), sigma)[..., None]


def freeze_face(frames: list[np.ndarray], landmarks: np.ndarray, frame_rows: dict[int, int], src: int,
                first: int, last: int) -> None:
    """Paste frame ``src``'s face, moved by a rigid-point similarity, onto frames first..last (in place).

    Args:
        frames: ``(H, W, 3)`` uint8 RGB frames of the whole clip.
        landmarks: ``(N, 478, 3)`` the plate track's raw landmarks; ``frame_rows`` maps frames to rows.
    """
    rigid = np.flatnonzero(rigid_weights() > 0)
    source = frames[src].copy()
    ls = landmarks[frame_rows[src]]
    for f in range(first, last + 1):
        lf = landmarks[frame_rows[f]]
        m, _ = cv2.estimateAffinePartial2D(ls[rigid, :2].astype(np.float32), lf[rigid, :2].astype(np.float32))
        h, w = source.shape[:2]
        moved = cv2.warpAffine(source, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT101)
        a = _oval_alpha((h, w), lf)
        frames[f] = np.clip(np.round(frames[f] * (1 - a) + moved * a), 0, 255).astype(np.uint8)


def lose_face(frames: list[np.ndarray], landmarks: np.ndarray, frame_rows: dict[int, int], first: int, last: int) -> None:
    """Fill the face oval (grown) with its mean colour on frames first..last (in place)."""
    for f in range(first, last + 1):
        lf = landmarks[frame_rows[f]].copy()
        c = lf[:, :2].mean(axis=0)
        lf[:, :2] = c + 1.6 * (lf[:, :2] - c)
        a = _oval_alpha(frames[f].shape[:2], lf)
        mean = (frames[f] * a).sum(axis=(0, 1)) / a.sum()
        frames[f] = np.clip(np.round(frames[f] * (1 - a) + mean * a), 0, 255).astype(np.uint8)


def garble_face(frames: list[np.ndarray], landmarks: np.ndarray, frame_rows: dict[int, int], first: int, last: int,
                seed: int) -> None:
    """Melt the face on frames first..last (in place; see the module doc)."""
    rng = np.random.default_rng(seed)
    for f in range(first, last + 1):
        lf = landmarks[frame_rows[f]]
        h, w = frames[f].shape[:2]
        iod = inter_ocular(lf)
        step = max(int(GARBLE_NODE_IOD * iod), 4)
        nodes = rng.normal(size=(h // step + 2, w // step + 2, 2)).astype(np.float32)
        field = cv2.resize(nodes, (w, h), interpolation=cv2.INTER_CUBIC) * np.float32(GARBLE_IOD * iod)
        gx, gy = np.meshgrid(np.arange(w, dtype=np.float32), np.arange(h, dtype=np.float32))
        moved = cv2.remap(frames[f], gx + field[..., 0], gy + field[..., 1], cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT101)
        a = _oval_alpha((h, w), lf)
        frames[f] = np.clip(np.round(frames[f] * (1 - a) + moved * a), 0, 255).astype(np.uint8)


def make_bad_swap(plate: Path, out: Path, damage: list[tuple[str, int, int, Any]], work: Path,
                  cache: Path) -> None:
    """Write ``out`` (ffv1 .mp4): ``plate`` damaged as ``damage`` says (see module doc)."""
    source = plate
    specs = [f"{s}@{a}-{b}" for kind, a, b, arg in damage if kind in RENDERED for s in arg]
    n = probe(plate).num_frames
    if specs:
        rotated = work / "rotated.mp4"
        job = EditJob(render=RenderJob(plate, rotated, OutputConfig(codec="ffv1", overwrite=True)),
                      schedule=schedule_from_specs(specs, 0, n), cache_dir=cache)
        run_edit(job)
        source = rotated
    track = run_analysis(plate, cache_dir=cache).analysis.tracks[0]
    rows = {int(f): i for i, f in enumerate(track.frame_indices)}
    with VideoReader(source) as reader:
        frames = [fr.image.copy() for fr in reader]
        with VideoWriter(out, reader.info, OutputConfig(codec="ffv1", overwrite=True), {}) as writer:
            for kind, a, b, arg in damage:
                if kind in FREEZES:
                    freeze_face(frames, track.raw_landmarks, rows, int(arg), a, b)
                elif kind == "lose":
                    lose_face(frames, track.raw_landmarks, rows, a, b)
                elif kind == "garble":
                    garble_face(frames, track.raw_landmarks, rows, a, b, int(arg))
            for fr, img in zip(reader, frames):
                writer.write(type(fr)(fr.index, fr.pts, fr.time_base, img))


def shifted_plate(plate: Path, out: Path, shift: float = FLOOR_SHIFT_PX) -> Path:
    """Write ``out`` (ffv1 .mp4): every frame of ``plate`` moved by ``shift`` pixels right and down
    (bilinear, reflected border)."""
    m = np.float32([[1, 0, shift], [0, 1, shift]])
    with VideoReader(plate) as reader:
        with VideoWriter(out, reader.info, OutputConfig(codec="ffv1", overwrite=True), {}) as writer:
            for fr in reader:
                img = cv2.warpAffine(fr.image, m, fr.image.shape[1::-1], flags=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REFLECT101)
                writer.write(type(fr)(fr.index, fr.pts, fr.time_base, img))
    return out


def targets(ranges: list[dict[str, Any]], untouched: list[int]) -> dict[str, Any]:
    """The issue's targets over the counted ranges (see the module doc)."""
    counted = [r for r in ranges if not r["limit"] and r["kind"] not in ("lose", "garble")]
    if not counted:
        return {"untouched_bit_identical": {"met": untouched[0] == untouched[1]}}
    name = [f"{r['kind']} {r['frames'][0]}-{r['frames'][1]}" for r in counted]
    pose = [r["pose_div_deg_after"]["max"] for r in counted]
    expr = [(n, r["expr_div_reduction"]) for n, r in zip(name, counted) if r["expr_diverged"]]
    ident = [r["identity_vs_plate_iod_after"] for r in counted]
    return {
        "pose_after_max_deg": {"worst": max(pose), "met": max(pose) <= POSE_TARGET_DEG, "ranges": name},
        "expr_reduction": {"worst": min(v for _, v in expr), "met": all(v >= EXPR_TARGET for _, v in expr),
                           "ranges": [n for n, _ in expr],
                           "left_out": {n: f"expression divergence before {r['expr_div_before']} is under the "
                                           f"restore's threshold (floor {r['expr_div_floor']})"
                                        for n, r in zip(name, counted) if not r["expr_diverged"]}} if expr else None,
        "identity_vs_plate_iod": {"worst": max(ident), "met": max(ident) < IDENTITY_TARGET_IOD},
        "untouched_bit_identical": {"met": untouched[0] == untouched[1]},
    }


def _identity_change(a_lm: np.ndarray, b_lm: np.ndarray) -> float:
    """RMS distance (IOD) of two identities estimated from (M, 478, 3) landmarks, on rigid points."""
    ia, ib = invert_track(a_lm).identity.shape, invert_track(b_lm).identity.shape
    w = rigid_weights()
    keep = w > 0
    s, r, t = similarity_fit(ib[keep], ia[keep], w[keep])
    d = np.linalg.norm(s * ib[keep] @ r.T + t - ia[keep], axis=1) / inter_ocular(ia)
    return float(np.sqrt(np.mean(d**2)))


def _rows(track: Any, frames: np.ndarray) -> np.ndarray:
    return track.landmarks[[track.row(int(f)) for f in frames]]


def _landmark_div(plate_t: Any, other_t: Any, frames: np.ndarray) -> np.ndarray:
    """Per frame: mean distance of the 468 mesh points (pixels, x and y) in plate IODs."""
    a, b = _rows(plate_t, frames), _rows(other_t, frames)
    iod = np.array([inter_ocular(x) for x in a])
    return np.linalg.norm(a[:, :468, :2] - b[:, :468, :2], axis=2).mean(axis=1) / iod


def _bs_l1(plate_t: Any, other_t: Any, frames: np.ndarray) -> np.ndarray:
    """Per frame: mean absolute difference of the 51 blendshape scores."""
    a, b = plate_t.blendshapes[[plate_t.row(int(f)) for f in frames]], other_t.blendshapes[[other_t.row(int(f)) for f in frames]]
    return np.abs(a[:, 1:] - b[:, 1:]).mean(axis=1)


def _div(plate_t: Any, other_t: Any, frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pc = invert_track(plate_t.landmarks, plate_t.blendshapes)
    oc = invert_track(other_t.landmarks, other_t.blendshapes)
    pr = np.array([plate_t.row(int(f)) for f in frames])
    orow = np.array([other_t.row(int(f)) for f in frames])
    _, pose, expr = divergence(pc.rotations[pr], oc.rotations[orow], plate_t.blendshapes[pr], other_t.blendshapes[orow])
    return pose, expr


def bench_clip(name: str, plate: Path, work: Path) -> dict[str, Any]:
    cache = work / "cache"
    damage = DAMAGE[name]
    swap = work / f"{name}_swap.mp4"
    out = work / f"{name}_restored.mp4"
    make_bad_swap(plate, swap, damage, work, cache)
    job = RestoreJob(plate, swap, out, OutputConfig(codec="ffv1", overwrite=True), cache_dir=cache, bridge=True)
    summary = run_restore(job)
    pt = run_analysis(plate, cache_dir=cache).analysis.tracks[0]
    st = run_analysis(swap, cache_dir=cache).analysis.tracks[0]
    ot = run_analysis(out, cache_dir=cache).analysis.tracks[0]
    ft = run_analysis(shifted_plate(plate, work / f"{name}_plate_shifted.mp4"), cache_dir=cache).analysis.tracks[0]
    threshold = RestoreConfig().expression_threshold
    flagged = {f for ranges in summary.garbled.values() for a, b in ranges for f in range(a, b + 1)}
    detail = {key: detail_agreements(path, [track]).get(track.track_id, {})
              for key, path, track in (("plate", plate, pt), ("swap", swap, st), ("out", out, ot))}
    edited = {int(f) for p in summary.plan.plans for f in p.frame_indices}
    edited |= {f for a, b in summary.bridged for f in range(a, b + 1)}
    same = total = 0
    with VideoReader(swap) as rs, VideoReader(out) as ro:
        imgs_s = [f.image for f in rs]
        imgs_o = [f.image for f in ro]
    imgs_p = [f.image for f in VideoReader(plate)]
    for i, (a, b) in enumerate(zip(imgs_s, imgs_o)):
        if i not in edited:
            total += 1
            same += int(np.array_equal(a, b))
    ranges = []
    RESULTS.mkdir(exist_ok=True)
    damaged = {f for _, a, b, _ in damage for f in range(a - 4, b + 5)}
    clean = np.array([f for f in range(len(imgs_s)) if f not in edited and f not in damaged])
    for kind, a, b, _ in damage:
        frames = np.arange(a, b + 1)
        pb, eb = _div(pt, st, frames)
        pa, ea = _div(pt, ot, frames)
        _, ef = _div(pt, ft, frames)
        mid = (a + b) // 2
        still = np.concatenate([imgs_p[mid], imgs_s[mid], imgs_o[mid]], axis=1)
        png = RESULTS / f"restore_{name}_{kind}_{mid}.png"
        cv2.imwrite(str(png), still[:, :, ::-1])
        ranges.append({
            "kind": kind, "limit": kind in LIMITS, "frames": [a, b], "fixed": bool(all(int(f) in edited for f in frames)),
            "pose_div_deg_before": {"mean": round(float(pb.mean()), 2), "max": round(float(pb.max()), 2)},
            "pose_div_deg_after": {"mean": round(float(pa.mean()), 2), "max": round(float(pa.max()), 2)},
            "expr_div_before": round(float(eb.mean()), 3), "expr_div_after": round(float(ea.mean()), 3),
            "expr_div_reduction": round(1.0 - float(ea.mean()) / float(eb.mean()), 3) if eb.mean() > 0 else None,
            "expr_div_floor": round(float(ef.mean()), 3), "expr_diverged": bool(eb.mean() > threshold),
            "expr_div_l1_before": round(float(_bs_l1(pt, st, frames).mean()), 4),
            "expr_div_l1_after": round(float(_bs_l1(pt, ot, frames).mean()), 4),
            "landmark_div_iod_before": round(float(_landmark_div(pt, st, frames).mean()), 4),
            "landmark_div_iod_after": round(float(_landmark_div(pt, ot, frames).mean()), 4),
            "identity_vs_plate_iod_before": round(_identity_change(_rows(pt, frames), _rows(st, frames)), 4),
            "identity_vs_plate_iod_after": round(_identity_change(_rows(pt, frames), _rows(ot, frames)), 4),
            "identity_change_iod": round(_identity_change(_rows(st, clean), _rows(ot, frames)), 4),
            "identity_floor_iod": round(_identity_change(_rows(pt, clean), _rows(pt, frames)), 4),
            "still": str(png.relative_to(RESULTS.parent.parent)),
        })
        if kind == "garble":
            ranges[-1]["garbled_flagged"] = [len(flagged & set(range(a, b + 1))), b - a + 1]
            ranges[-1]["detail_drop"] = {
                k: round(float(np.nanmean([detail["plate"].get(int(f), np.nan) - detail[k].get(int(f), np.nan)
                                           for f in frames])), 3) for k in ("swap", "out")}
    report = {"clip": name, "frames": len(imgs_s), "damage": ranges, "bridged": summary.bridged,
            "lost": {str(k): v for k, v in summary.lost.items()},
            "garbled": {str(k): v for k, v in summary.garbled.items()},
            "garbled_elsewhere": sorted(flagged - {f for kind, a, b, _ in damage if kind == "garble"
                                                   for f in range(a, b + 1)}),
            "untouched_bit_identical": [same, total], "edited_frames": len(edited),
            "targets": targets(ranges, [same, total]),
            "restore_summary": summary.as_dict()["fixed_ranges"],
            "closed_loop": summary.as_dict()["closed_loop"], "texture": summary.as_dict()["texture"],
            "occluders": summary.occluders}
    if name == REFERENCE[0]:
        report["reference"] = reference_check(plate, swap, work, pt, st, imgs_p[REFERENCE[2]], damage)
    return report


def reference_check(plate: Path, swap: Path, work: Path, pt: Any, st: Any, still: np.ndarray,
                    damage: list[tuple[str, int, int, Any]]) -> dict[str, Any]:
    """The :data:`REFERENCE` range restored with a reference still (see the module doc)."""
    _, kind, frame = REFERENCE
    ref = work / "reference.png"
    cv2.imwrite(str(ref), still[:, :, ::-1])
    out = work / "restored_reference.mp4"
    job = RestoreJob(plate, swap, out, OutputConfig(codec="ffv1", overwrite=True), cache_dir=work / "cache",
                     bridge=True, references=(ref,))
    summary = run_restore(job)
    ot = run_analysis(out, cache_dir=work / "cache").analysis.tracks[0]
    a, b = next((a, b) for k, a, b, _ in damage if k == kind)
    frames = np.arange(a, b + 1)
    _, eb = _div(pt, st, frames)
    pa, ea = _div(pt, ot, frames)
    used = [e for e in summary.as_dict()["texture"] if e["action"] == "texture"
            and any(x.startswith("reference:") for x in e["exemplars"]) and e["frames"][0] <= b and e["frames"][1] >= a]
    return {"kind": kind, "frames": [a, b], "reference": f"plate frame {frame}",
            "pose_div_deg_after": {"mean": round(float(pa.mean()), 2), "max": round(float(pa.max()), 2)},
            "expr_div_before": round(float(eb.mean()), 3), "expr_div_after": round(float(ea.mean()), 3),
            "expr_div_reduction": round(1.0 - float(ea.mean()) / float(eb.mean()), 3) if eb.mean() > 0 else None,
            "identity_vs_plate_iod_after": round(_identity_change(_rows(pt, frames), _rows(ot, frames)), 4),
            "reference_used": used}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clip", choices=["liveportrait", "astronaut", "pcavs", "all"], default="all")
    ap.add_argument("--work", type=Path, default=None, help="keep the clips in this folder")
    args = ap.parse_args()
    out: dict[str, Any] = {"clips": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        clips = {}
        if args.clip in ("liveportrait", "all"):
            clips["liveportrait"] = clips["liveportrait_garble"] = FIXTURES / "liveportrait_d0.mp4"
        if args.clip in ("astronaut", "all"):
            clips["astronaut"] = clips["astronaut_garble"] = write_demo_clip(work / "astronaut.mp4", MotionSettings())
        if args.clip in ("pcavs", "all"):
            clips["pcavs"] = FIXTURES / "pcavs_audio_source_00015.mp4"
        for name, path in clips.items():
            print(f"bench/restore.py: {name}", file=sys.stderr, flush=True)
            out["clips"].append(bench_clip(name, path, work))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
