"""How the real CLI behaves on footage unlike the fixtures (prints one JSON object).

Clips are derived from the real fixtures (``../shared/fixtures``) with PyAV, each a kind of
material a user brings: stage light (coloured key, low key, strobe, hard gradient), small and very
large faces, faces cut by the frame border, hard cuts between people (and back), a cross-dissolve, several faces
(the ghost split screen, a 2x2 mosaic of four clips, a 3x2 mosaic of six people), profiles (PC-AVS, the AFLW2000 still,
a mirrored clip), vertical 9:16 and odd frame sizes, heavy noise and a low bitrate. Where each
face is, and whose it is, is known by construction: the source fixture's own track (or the
AFLW2000 ground-truth landmarks) carried through the same resize and shift as the pixels.

On each clip the CLI runs as users run it (a subprocess of ``python -m plugin``, the entry point):

- ``deltaface track --no-cache -o A.npz --json``;
- ``deltaface edit --face ID --delta head_yaw=8@.. --delta blink_left=1@.. --delta smile=0.6@..
  --codec ffv1`` on one face (the track that holds the chosen person);
- ``deltaface restore --plate CLIP --swapped EDITED --codec ffv1`` on some cases (the edit's
  output is the "bad swap": a turned head, a closed eye and a smile the plate does not have).

Per case (one row): exit codes; a traceback or an exit 1 (must never happen; exit 2 with one line
is allowed for bad input only) with the last stderr line; tracks against people present;
face-frames tracked against face-frames present (a face counts as present when at least half of
its box is inside the picture; tracked when a track's box overlaps it, IoU >= 0.3); tracks that
hold more than one person (an id that jumps across a cut); bit-identity of the edit's output
outside the edited frames and outside the edited face's region (its box grown by
``REGION_GROW`` of its size on every side); frames where pixels changed on another person's face;
the occluders the edit found on the edited face (``[frames, share]`` runs: nothing covers these
faces, so each is a false alarm); the restore's fixed ranges ([first, last, largest pose divergence before, after] in degrees),
what it found covering the repaired faces in the plate (``occluded``, ``[face, frames, share]``:
false alarms too) and its face-region error against the plate, before (the swap) and
after. One PNG per case goes to ``bench/results/robustness/``: the full frame before | after at the
edit's most changed frame, below it the face crop before | after | difference x4 there, then the
face after the edit in the middle of the blink and of the smile (``*_restore.png``: the same with
swap | restored).

    python bench/robustness.py [--quick] [--cases a,b,...] [--work DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from plugin.video import VideoReader
from tests.plugin.media import write_clip
from tracking.analysis import load_analysis

FIXTURES = ROOT / ".." / "shared" / "fixtures"
RESULTS = ROOT / "bench" / "results" / "robustness"
PYTHON = sys.executable
#: A face is present when at least this fraction of its box is inside the picture.
MIN_VISIBLE = 0.5
#: A track's box "is" a face when their IoU reaches this.
MATCH_IOU = 0.3
#: The edited face's region: its box grown by this fraction of its size on every side (head, hair
#: and the neck a pose edit moves).
REGION_GROW = 0.6
SOURCES = {"lp": "liveportrait_d0.mp4", "rt": "retalking_face_1.mp4",
           "pc": "pcavs_audio_source_00015.mp4", "gh": "ghost_2person.mp4"}

Box = np.ndarray  # (4,) float x0, y0, x1, y1


@dataclass
class Clip:
    """A derived clip: frames (RGB uint8) and, per frame, the faces in it {person: box}."""

    frames: list[np.ndarray]
    faces: list[dict[str, Box]]
    edit_person: str
    deltas: list[str]
    codec: str = "libx264"
    pix_fmt: str = "yuv420p"
    crf: int = 16
    extra: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- sources

def _decode(name: str, n: int) -> list[np.ndarray]:
    with av.open(str(FIXTURES / name)) as c:
        out = []
        for f in c.decode(video=0):
            out.append(f.to_ndarray(format="rgb24"))
            if len(out) == n:
                break
    return out


class Sources:
    """Fixture frames and the people's boxes in them (their own tracks, tracked once)."""

    def __init__(self, work: Path, n: int) -> None:
        self.frames: dict[str, list[np.ndarray]] = {}
        self.boxes: dict[str, list[dict[str, Box]]] = {}
        cache = RESULTS / "cache_sources"
        for key, name in SOURCES.items():
            self.frames[key] = _decode(name, n)
            npz = work / f"src_{key}.npz"
            r = subprocess.run([PYTHON, "-m", "plugin", "track", str(FIXTURES / name), "-o", str(npz),
                                "--cache-dir", str(cache), "--quiet", "--overwrite"], cwd=ROOT, capture_output=True, text=True, check=False)
            if r.returncode:
                raise SystemExit(f"tracking fixture {name} failed: {r.stderr.strip()[-300:]}")
            tracks = load_analysis(npz).tracks
            per = []
            for i in range(len(self.frames[key])):
                d = {}
                for t in tracks:
                    row = t.row(i)
                    if row is not None:
                        d[key if len(tracks) == 1 else f"{key}{t.track_id}"] = t.boxes[row].astype(np.float64)
                per.append(d)
            self.boxes[key] = per
        img = cv2.cvtColor(cv2.imread(str(FIXTURES / "aflw2000_image04331.jpg")), cv2.COLOR_BGR2RGB)
        import scipy.io

        pts = scipy.io.loadmat(str(FIXTURES / "aflw2000_image04331.mat"))["pt3d_68"]
        box = np.array([pts[0].min(), pts[1].min() - 0.25 * np.ptp(pts[1]), pts[0].max(), pts[1].max()])
        self.frames["af"] = [img] * n
        self.boxes["af"] = [{"af": box}] * n


def place(canvas: np.ndarray, img: np.ndarray, faces: dict[str, Box], scale: float, ox: float, oy: float,
          out: dict[str, Box], suffix: str = "") -> None:
    """Resize ``img`` by ``scale`` and paste its top-left at (ox, oy) (clipped); carry its face boxes."""
    h, w = img.shape[:2]
    sw, sh = max(1, round(w * scale)), max(1, round(h * scale))
    small = cv2.resize(img, (sw, sh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    ox, oy = round(ox), round(oy)
    H, W = canvas.shape[:2]
    x0, y0, x1, y1 = max(ox, 0), max(oy, 0), min(ox + sw, W), min(oy + sh, H)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = small[y0 - oy:y1 - oy, x0 - ox:x1 - ox]
    for k, b in faces.items():
        out[k + suffix] = np.array([b[0] * sw / w + ox, b[1] * sh / h + oy, b[2] * sw / w + ox, b[3] * sh / h + oy])


def backdrop(size: tuple[int, int], seed: int = 3) -> np.ndarray:
    """A wide-shot background without faces (W, H = size): a soft vertical gradient with blotches."""
    rng = np.random.default_rng(seed)
    blot = cv2.resize(rng.uniform(0, 1, (9, 16, 3)).astype(np.float32), size, interpolation=cv2.INTER_CUBIC)
    ramp = np.linspace(0.5, 1.0, size[1], dtype=np.float32)[:, None, None]
    return np.clip((40 + 120 * blot) * ramp, 0, 255).astype(np.uint8)


def _spec(n: int) -> list[str]:
    """A head turn, a blink and a smile in turn over an ``n``-frame clip (4-frame ramps between)."""
    r = [round(n * f) for f in (0.1, 0.3, 0.42, 0.58, 0.7, 0.86)]
    return [f"head_yaw=8@{r[0]}-{r[1]}", f"blink_left=1@{r[2]}-{r[3]}", f"smile=0.6@{r[4]}-{r[5]}"]


def _relit(src: Sources, key: str, n: int, fn: Callable[[np.ndarray, int], np.ndarray]) -> Clip:
    frames = [np.clip(fn(f.astype(np.float32), i), 0, 255).astype(np.uint8) for i, f in enumerate(src.frames[key][:n])]
    return Clip(frames, [dict(b) for b in src.boxes[key][:n]], key, _spec(n))


# ---------------------------------------------------------------- cases

def case_stage_magenta(s: Sources, n: int) -> Clip:
    gain = np.array([1.35, 0.55, 1.45], np.float32)
    return _relit(s, "lp", n, lambda f, i: f * gain + np.array([25, 0, 35], np.float32))


def case_stage_lowkey(s: Sources, n: int) -> Clip:
    return _relit(s, "rt", n, lambda f, i: 255 * (f / 255) ** 2.2 * 0.45)


def case_stage_strobe(s: Sources, n: int) -> Clip:
    def fn(f: np.ndarray, i: int) -> np.ndarray:
        k = i % 6
        return f * 2.2 + 70 if k == 0 else (f * 1.4 + 20 if k == 1 else f)
    return _relit(s, "lp", n, fn)


def case_stage_gradient(s: Sources, n: int) -> Clip:
    w = s.frames["rt"][0].shape[1]
    ramp = 0.25 + 1.25 / (1 + np.exp(-(np.arange(w) - w * 0.5) / (w * 0.02)))  # hard edge mid-face
    light = (ramp[None, :, None] * np.array([1.0, 0.85, 0.6])[None, None]).astype(np.float32)  # warm key
    return _relit(s, "rt", n, lambda f, i: f * light)


def case_small_face_1080p(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        img = s.frames["rt"][i]
        b = s.boxes["rt"][i]["rt"]
        scale = 50.0 / (b[2] - b[0])                       # face ~50 px wide
        canvas = backdrop((1920, 1080))
        d: dict[str, Box] = {}
        place(canvas, img, s.boxes["rt"][i], scale, 1200 + 2 * i, 520, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "rt", _spec(n))


def case_large_face_cut(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    b0 = s.boxes["lp"][0]["lp"]
    scale = 1280 * 0.95 / (b0[2] - b0[0])                   # face as wide as the 1280x720 frame
    cx, cy = (b0[0] + b0[2]) / 2, (b0[1] + b0[3]) / 2
    for i in range(n):
        canvas = np.zeros((720, 1280, 3), np.uint8)
        d: dict[str, Box] = {}
        place(canvas, s.frames["lp"][i], s.boxes["lp"][i], scale, 640 - cx * scale, 300 - cy * scale, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "lp", _spec(n))


def case_border_in_out(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        img = s.frames["lp"][i]
        b = s.boxes["lp"][i]["lp"]
        fw = b[2] - b[0]
        # the face's centre swings from 0.15 face widths outside the left border to well inside
        cx = -0.15 * fw + (0.5 - 0.5 * np.cos(2 * np.pi * i / 24)) * 1.2 * fw
        canvas = np.full_like(img, 40)
        d: dict[str, Box] = {}
        place(canvas, img, s.boxes["lp"][i], 1.0, cx - (b[0] + b[2]) / 2, 0, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "lp", _spec(n))


def _fit(canvas: np.ndarray, img: np.ndarray, faces: dict[str, Box], out: dict[str, Box], x: int = 0, y: int = 0,
         w: int | None = None, h: int | None = None) -> None:
    """Letterbox ``img`` into the (x, y, w, h) cell of ``canvas``."""
    w = canvas.shape[1] if w is None else w
    h = canvas.shape[0] if h is None else h
    scale = min(w / img.shape[1], h / img.shape[0])
    place(canvas, img, faces, scale, x + (w - img.shape[1] * scale) / 2, y + (h - img.shape[0] * scale) / 2, out)


def case_hard_cuts(s: Sources, n: int) -> Clip:
    seg = 25
    order = ["lp", "rt", "gh", "pc", "lp"]                  # ... and back to the first person
    frames, faces = [], []
    for k, key in enumerate(order):
        for j in range(seg):
            i = (k * 7 + j) % len(s.frames[key])
            canvas = np.zeros((720, 1280, 3), np.uint8)
            d: dict[str, Box] = {}
            _fit(canvas, s.frames[key][i], s.boxes[key][i], d)
            frames.append(canvas)
            faces.append(d)
    total = len(frames)
    return Clip(frames, faces, "lp", [f"head_yaw=8@3-{total - 4}", f"blink_left=1@{seg - 8}-{seg + 8}",
                                      f"smile=0.6@{4 * seg - 10}-{4 * seg + 10}"], extra={"cuts": [seg * k for k in range(1, 5)]})


def case_ghost_2person(s: Sources, n: int) -> Clip:
    return Clip([f.copy() for f in s.frames["gh"][:n]], [dict(b) for b in s.boxes["gh"][:n]],
                min(s.boxes["gh"][0]), _spec(n))


def case_dissolve(s: Sources, n: int) -> Clip:
    """Two shots joined by a 12-frame cross-dissolve (no hard cut): one person fades into another
    at about the same place, both faces half visible in the middle of it."""
    fade = 12
    half = (n - fade) // 2
    frames, faces = [], []
    for i in range(n):
        a = np.zeros((720, 1280, 3), np.uint8)
        b = np.zeros((720, 1280, 3), np.uint8)
        da: dict[str, Box] = {}
        db: dict[str, Box] = {}
        _fit(a, s.frames["lp"][i % len(s.frames["lp"])], s.boxes["lp"][i % len(s.boxes["lp"])], da)
        _fit(b, s.frames["rt"][i % len(s.frames["rt"])], s.boxes["rt"][i % len(s.boxes["rt"])], db)
        w = float(np.clip((i - half + 1) / (fade + 1), 0.0, 1.0))  # weight of the second shot
        frames.append(np.round((1.0 - w) * a + w * b).astype(np.uint8))
        faces.append(da if w < 0.5 else db)  # the face that dominates the picture
    # The smile runs through the dissolve: it must stay on the first person's face (their track).
    return Clip(frames, faces, "lp", [f"smile=0.6@3-{n - 4}", f"blink_left=1@{half - 10}-{half - 4}"])


def case_mosaic_2x2(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        canvas = np.zeros((720, 1280, 3), np.uint8)
        d: dict[str, Box] = {}
        for (x, y), key in zip([(0, 0), (640, 0), (0, 360), (640, 360)], ["lp", "rt", "pc", "gh"], strict=True):
            img, fb = s.frames[key][i], s.boxes[key][i]
            if key == "gh":                                 # the left half of the split screen: one person
                img = np.ascontiguousarray(img[:, :640])
                fb = {k: v for k, v in fb.items() if (v[0] + v[2]) / 2 < 640}
            _fit(canvas, img, fb, d, x, y, 640, 360)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "rt", _spec(n))


def case_mosaic_3x2(s: Sources, n: int) -> Clip:
    """Six people at once in 1080p (more than the four a landmarker stage once stopped at): the
    four fixture clips (both halves of the split screen as cells of their own) and the AFLW2000
    profile still."""
    frames, faces = [], []
    cells = [(0, 0), (640, 0), (1280, 0), (0, 540), (640, 540), (1280, 540)]
    for i in range(n):
        canvas = np.zeros((1080, 1920, 3), np.uint8)
        d: dict[str, Box] = {}
        for (x, y), key in zip(cells, ["lp", "rt", "pc", "gh", "gh", "af"], strict=True):
            img, fb = s.frames[key][i % len(s.frames[key])], s.boxes[key][i % len(s.boxes[key])]
            if key == "gh":                                 # one half of the split screen per cell
                left = x == 0
                img = np.ascontiguousarray(img[:, :640] if left else img[:, 640:])
                fb = {k: v - np.array([0 if left else 640, 0, 0 if left else 640, 0])
                      for k, v in fb.items() if ((v[0] + v[2]) / 2 < 640) == left}
            _fit(canvas, img, fb, d, x, y, 640, 540)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "pc", _spec(n))


def case_profile_pcavs(s: Sources, n: int) -> Clip:
    return Clip([f.copy() for f in s.frames["pc"][:n]], [dict(b) for b in s.boxes["pc"][:n]], "pc", _spec(n))


def case_profile_aflw_still(s: Sources, n: int) -> Clip:
    return Clip(list(s.frames["af"][:n]), [dict(b) for b in s.boxes["af"][:n]], "af", _spec(n))


def case_mirrored_pcavs_2x(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        img = s.frames["pc"][i][:, ::-1]
        b = s.boxes["pc"][i]["pc"]
        fb = {"pc": np.array([224 - b[2], b[1], 224 - b[0], b[3]])}
        canvas = np.zeros((448, 448, 3), np.uint8)
        d: dict[str, Box] = {}
        place(canvas, np.ascontiguousarray(img), fb, 2.0, 0, 0, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "pc", _spec(n))


def case_vertical_9x16(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        img = s.frames["rt"][i]
        crop = np.ascontiguousarray(img[:, 153:547])        # 394x700 -> 9:16
        fb = {k: v - np.array([153, 0, 153, 0]) for k, v in s.boxes["rt"][i].items()}
        canvas = np.zeros((1280, 720, 3), np.uint8)
        d: dict[str, Box] = {}
        place(canvas, crop, fb, 720 / 394, 0, 0, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "rt", _spec(n))


def case_odd_721x405(s: Sources, n: int) -> Clip:
    frames, faces = [], []
    for i in range(n):
        canvas = np.zeros((405, 721, 3), np.uint8)
        d: dict[str, Box] = {}
        place(canvas, s.frames["lp"][i], s.boxes["lp"][i], 405 / 512 * 1.3, 150, -80, d)
        frames.append(canvas)
        faces.append(d)
    return Clip(frames, faces, "lp", _spec(n), pix_fmt="yuv444p", extra={"also_h264": True})


def case_noisy_lowbitrate(s: Sources, n: int) -> Clip:
    rng = np.random.default_rng(7)
    clip = _relit(s, "rt", n, lambda f, i: f + rng.normal(0, 14, f.shape).astype(np.float32))
    clip.crf = 40
    return clip


CASES: dict[str, Callable[[Sources, int], Clip]] = {
    k[5:]: v for k, v in globals().items() if k.startswith("case_")}
QUICK = ["stage_magenta", "small_face_1080p", "border_in_out", "hard_cuts", "mosaic_2x2", "odd_721x405"]
RESTORE = {"stage_strobe", "border_in_out", "hard_cuts", "ghost_2person", "profile_pcavs", "mosaic_3x2"}
QUICK_RESTORE = {"border_in_out"}


# ---------------------------------------------------------------- measuring

def cli(args: list[str]) -> tuple[int, str, str, float]:
    t = time.perf_counter()
    r = subprocess.run([PYTHON, "-m", "plugin", *args], cwd=ROOT, capture_output=True, text=True, check=False)
    return r.returncode, r.stdout, r.stderr, time.perf_counter() - t


def outcome(rc: int, err: str, args: list[str]) -> dict[str, Any]:
    lines = [x for x in err.strip().splitlines() if x.strip() and not x.startswith(("track:", "render:", "edit:",
                                                                                   "analysis:", "refine:"))]
    d: dict[str, Any] = {"exit": rc}
    if rc != 0 or "Traceback" in err:
        d["message"] = lines[-1][:300] if lines else ""
    if rc == 1 or "Traceback" in err:
        r = subprocess.run([PYTHON, "-m", "plugin", *args], cwd=ROOT, capture_output=True, text=True, check=False,
                           env={**os.environ, "DELTAFACE_DEBUG": "1"})
        tb = r.stderr[r.stderr.find("Traceback"):] if "Traceback" in r.stderr else r.stderr[-1500:]
        d["traceback"] = tb[-1500:]
    return d


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    return inter / max((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter, 1e-9)


def visible(b: Box, w: int, h: int) -> float:
    ix = max(0.0, min(b[2], w) - max(b[0], 0))
    iy = max(0.0, min(b[3], h) - max(b[1], 0))
    return ix * iy / max((b[2] - b[0]) * (b[3] - b[1]), 1e-9)


def tracking_stats(clip: Clip, npz: Path) -> tuple[dict[str, Any], dict[int, dict[str, int]], Any]:
    analysis = load_analysis(npz)
    h, w = clip.frames[0].shape[:2]
    present = tracked = 0
    owner: dict[int, dict[str, int]] = {}
    people: set[str] = set()
    for i, faces in enumerate(clip.faces):
        here = {k: b for k, b in faces.items() if visible(b, w, h) >= MIN_VISIBLE}
        people |= set(here)
        boxes = [(t.track_id, t.boxes[t.row(i)]) for t in analysis.tracks if t.row(i) is not None]
        for b in here.values():
            present += 1
            tracked += any(iou(b, tb) >= MATCH_IOU for _, tb in boxes)
        for tid, tb in boxes:
            best = max(faces.items(), key=lambda kv: iou(kv[1], tb), default=None)
            who = best[0] if best is not None and iou(best[1], tb) >= MATCH_IOU else "nobody"
            owner.setdefault(tid, {}).setdefault(who, 0)
            owner[tid][who] += 1
    mixed = {str(t): o for t, o in owner.items() if len([k for k in o if k != "nobody"]) > 1}
    stats = {"people_present": len(people), "tracks": len(analysis.tracks),
             "face_frames_tracked": f"{tracked}/{present}",
             "tracks_on_nobody_frames": sum(o.get("nobody", 0) for o in owner.values()),
             "tracks_holding_several_people": mixed,
             "people_by_track": {str(t): o for t, o in sorted(owner.items())},
             "cuts_found": [int(c) for c in analysis.cut_frames]}
    return stats, owner, analysis


def region_mask(shape: tuple[int, int], boxes: list[Box], grow: float) -> np.ndarray:
    m = np.zeros(shape, bool)
    for b in boxes:
        gw, gh = (b[2] - b[0]) * grow, (b[3] - b[1]) * grow
        x0, y0 = max(int(b[0] - gw), 0), max(int(b[1] - gh), 0)
        x1, y1 = min(int(np.ceil(b[2] + gw)), shape[1]), min(int(np.ceil(b[3] + gh)), shape[0])
        if x1 > x0 and y1 > y0:
            m[y0:y1, x0:x1] = True
    return m


def compare(src: Path, out: Path, clip: Clip, analysis: Any, ranges: dict[str, list[list[int]]],
            person: str) -> tuple[dict[str, Any], int]:
    """Pixels changed outside the edited frames / regions; frames where another person's face changed."""
    edited: dict[int, list[int]] = {}
    for fid, rr in ranges.items():
        for a, b in rr:
            for i in range(a, b + 1):
                edited.setdefault(i, []).append(int(fid))
    outside_frames, outside_px, other_face, target_changed, target_frames = 0, 0, [], 0, 0
    best_frame, best_change = 0, -1
    h, w = clip.frames[0].shape[:2]
    with VideoReader(str(src)) as a, VideoReader(str(out)) as b:
        for fa, fb in zip(a, b, strict=True):
            i = fa.index
            diff = np.any(fa.image != fb.image, axis=-1)
            if i not in edited:
                outside_frames += bool(diff.any())
                continue
            boxes = [t.boxes[t.row(i)] for t in analysis.tracks if t.track_id in edited[i] and t.row(i) is not None]
            allowed = region_mask((h, w), boxes, REGION_GROW)
            outside_px += int((diff & ~allowed).sum())
            others = [bx for k, bx in clip.faces[i].items() if k != person and visible(bx, w, h) >= MIN_VISIBLE
                      and not any(iou(bx, ob) >= MATCH_IOU for ob in boxes)]
            if others and (diff & region_mask((h, w), others, 0.0)).any():
                other_face.append(i)
            if person in clip.faces[i] and visible(clip.faces[i][person], w, h) >= MIN_VISIBLE:
                target_frames += 1
                inside = diff & region_mask((h, w), [clip.faces[i][person]], 0.0)
                target_changed += bool(inside.any())
                if inside.sum() > best_change:
                    best_frame, best_change = i, int(inside.sum())
    return {"frames_changed_outside_edit_ranges": outside_frames,
            "pixels_changed_outside_face_region": outside_px,
            "frames_other_person_changed": _runs(other_face),
            "edited_person_frames_changed": f"{target_changed}/{target_frames}"}, best_frame


def _runs(idx: list[int]) -> list[list[int]]:
    out: list[list[int]] = []
    for i in idx:
        if out and i == out[-1][1] + 1:
            out[-1][1] = i
        else:
            out.append([i, i])
    return out


def face_error(plate: Path, other: Path, clip: Clip, person: str, frames: set[int]) -> float:
    """Mean absolute RGB difference from the plate inside the person's box over ``frames``."""
    errs = []
    h, w = clip.frames[0].shape[:2]
    with VideoReader(str(plate)) as a, VideoReader(str(other)) as b:
        for fa, fb in zip(a, b, strict=True):
            if fa.index in frames and person in clip.faces[fa.index]:
                m = region_mask((h, w), [clip.faces[fa.index][person]], 0.0)
                if m.any():
                    errs.append(float(np.abs(fa.image[m].astype(np.int16) - fb.image[m]).mean()))
    return round(float(np.mean(errs)), 2) if errs else float("nan")


def _middle(spec: str) -> int:
    a, b = spec.split("@")[1].split("~")[0].split("-")
    return (int(a) + int(b)) // 2


def still(name: str, src: Path, out: Path, frames: list[int], boxes: list[Box | None]) -> str:
    """Full frame before | after at ``frames[0]``; below, the face crop before | after | difference
    x4 at ``frames[0]``, then after at each further frame (the blink's and the smile's middles)."""
    with VideoReader(str(src)) as a, VideoReader(str(out)) as b:
        pairs = [(a.frame_at(f).image, b.frame_at(f).image) for f in frames]
    H = 360
    x, y = pairs[0]
    sc = H / x.shape[0]
    rows = [np.concatenate([cv2.resize(v, (max(1, round(v.shape[1] * sc)), H)) for v in (x, y)], axis=1)]
    crops = []
    for k, ((x, y), box) in enumerate(zip(pairs, boxes, strict=True)):
        if box is None:
            continue
        s = max(box[2] - box[0], box[3] - box[1]) * 1.5
        cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
        x0, y0 = int(max(cx - s / 2, 0)), int(max(cy - s / 2, 0))
        x1, y1 = int(min(cx + s / 2, x.shape[1])), int(min(cy + s / 2, x.shape[0]))
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        cs = 240 / (y1 - y0)
        pick = [x[y0:y1, x0:x1], y[y0:y1, x0:x1],
                np.clip(np.abs(x[y0:y1, x0:x1].astype(np.int16) - y[y0:y1, x0:x1]) * 4, 0, 255).astype(np.uint8)] \
            if k == 0 else [y[y0:y1, x0:x1]]
        crops += [cv2.resize(c, (max(1, round((x1 - x0) * cs)), 240), interpolation=cv2.INTER_NEAREST) for c in pick]
    if crops:
        rows.append(np.concatenate(crops, axis=1))
    width = max(r.shape[1] for r in rows)
    img = np.concatenate([np.pad(r, ((0, 0), (0, width - r.shape[1]), (0, 0))) for r in rows], axis=0)
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    cv2.imwrite(str(path), cv2.cvtColor(img, cv2.COLOR_RGB2BGR))
    return str(path.relative_to(ROOT))


def run_case(name: str, clip: Clip, work: Path, restore: bool) -> dict[str, Any]:
    row: dict[str, Any] = {"case": name, "size": f"{clip.frames[0].shape[1]}x{clip.frames[0].shape[0]}",
                           "frames": len(clip.frames)}
    t0 = time.perf_counter()
    src = work / f"{name}.mp4"
    write_clip(src, images=clip.frames, codec=clip.codec, pix_fmt=clip.pix_fmt,
               codec_options={"crf": str(clip.crf), "preset": "veryfast"})
    cache = work / "cache"
    npz = work / f"{name}.npz"
    args = ["track", str(src), "-o", str(npz), "--no-cache", "--cache-dir", str(cache), "--json", "--quiet", "--overwrite"]
    rc, out, err, _ = cli(args)
    row["track"] = outcome(rc, err, args)
    if rc != 0:
        return row
    stats, owner, analysis = tracking_stats(clip, npz)
    row.update(stats)
    # the face to edit: the track holding the chosen person on most frames
    cands = [(o.get(clip.edit_person, 0), tid) for tid, o in owner.items()]
    if not cands or max(cands)[0] == 0:
        row["edit"] = {"skipped": f"no track holds {clip.edit_person}"}
        return row
    face = max(cands)[1]
    row["edit_face"] = face
    edited = work / f"{name}.edit.mp4"
    args = ["edit", str(src), "-o", str(edited), "--face", str(face), "--codec", "ffv1", "--cache-dir", str(cache),
            "--json", "--quiet", "--overwrite"]
    for d in clip.deltas:
        args += ["--delta", d]
    rc, out, err, secs = cli(args)
    row["edit"] = outcome(rc, err, args)
    row["edit"]["seconds"] = round(secs, 1)
    if rc == 0:
        summary = json.loads(out)
        row["edit"]["edited_ranges_by_face"] = summary.get("edited_ranges_by_face")
        row["edit"]["clamps"] = len(summary.get("clamps", []))
        row["edit"]["texture"] = [[t.get("region"), t.get("action"), [r[2] for r in t.get("runs", [])]]
                                  for t in summary.get("texture", [])]
        # nothing covers these faces: every run found is a false alarm (its pixels stay unedited)
        row["edit"]["occluded"] = [[o["frames"], o["share"]] for o in summary.get("occluders", [])]
        cmp, frame = compare(src, edited, clip, analysis, summary.get("edited_ranges_by_face") or {}, clip.edit_person)
        row["edit"].update(cmp)
        shown = [frame] + [_middle(d) for d in clip.deltas[1:]]
        row["png"] = still(name, src, edited, shown, [clip.faces[f].get(clip.edit_person) for f in shown])
        row["png_frames"] = shown
        if clip.extra.get("also_h264"):
            args2 = [a for a in args if a not in ("ffv1",)]
            args2[args2.index("--codec")] = "--crf"
            args2.insert(args2.index("--crf") + 1, "16")
            args2[args2.index("-o") + 1] = str(work / f"{name}.edit_h264.mp4")
            rc2, _, err2, _ = cli(args2)
            row["edit_h264"] = outcome(rc2, err2, args2)
        if restore:
            fixed = work / f"{name}.restored.mp4"
            args = ["restore", "--plate", str(src), "--swapped", str(edited), "-o", str(fixed), "--codec", "ffv1",
                    "--cache-dir", str(cache), "--json", "--quiet", "--overwrite"]
            rc, out, err, secs = cli(args)
            row["restore"] = outcome(rc, err, args)
            row["restore"]["seconds"] = round(secs, 1)
            if rc == 0:
                rs = json.loads(out)
                row["restore"]["fixed_ranges"] = [
                    [*r["frames"], r["pose_divergence_deg_before"]["max"], (r.get("pose_divergence_deg_after") or {}).get("max")]
                    for r in rs.get("fixed_ranges") or []]
                row["restore"]["occluded"] = [[o["face"], o["frames"], o["share"]] for o in rs.get("occluders", [])]
                frames = {i for rr in (summary.get("edited_ranges_by_face") or {}).values() for a, b in rr
                          for i in range(a, b + 1)}
                row["restore"]["face_error_vs_plate"] = {
                    "swap": face_error(src, edited, clip, clip.edit_person, frames),
                    "restored": face_error(src, fixed, clip, clip.edit_person, frames)}
                still(name + "_restore", edited, fixed, shown, [clip.faces[f].get(clip.edit_person) for f in shown])
    row["seconds"] = round(time.perf_counter() - t0, 1)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer cases, shorter clips (~3 min)")
    ap.add_argument("--cases", help="comma-separated case names (default: all, or the quick set)")
    ap.add_argument("--work", type=Path, help="keep the clips here (default: a temporary folder)")
    args = ap.parse_args()
    n = 30 if args.quick else 48
    names = args.cases.split(",") if args.cases else (QUICK if args.quick else list(CASES))
    unknown = [c for c in names if c not in CASES]
    if unknown:
        raise SystemExit(f"unknown case(s) {unknown}; known: {sorted(CASES)}")
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        src = Sources(work, max(n, 130))
        rows = []
        for name in names:
            clip = CASES[name](src, n)
            rows.append(run_case(name, clip, work, name in (QUICK_RESTORE if args.quick else RESTORE)))
            print(f"{name}: {rows[-1].get('seconds')} s", file=sys.stderr)
    print(json.dumps({"quick": args.quick, "frames_per_clip": n, "seconds": round(time.perf_counter() - t0, 1),
                      "cases": rows}, indent=1))


if __name__ == "__main__":
    main()
