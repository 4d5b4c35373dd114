"""Footage formats that change what the tool sees or keeps (prints one JSON).

- ``anamorphic``: the first ``--frames`` frames of retalking_face_1.mp4 squeezed to 3/4 of their
  width and written with the sample aspect ratio that shows them at their own width again (as
  HDV's 1440x1080 at 4:3). Against the unsqueezed frames' analysis (x mapped into the squeezed
  pixels): mean mesh error in inter-ocular distances, mean of each frame's largest blendshape
  error, mean pitch error in degrees; ``as_displayed`` is what ``run_analysis`` reads (square
  pixels for the landmarker, ``tracking.aspect``), ``stored_pixels`` the landmarker on the
  squeezed pixels themselves.
- ``deep``: the same frames plus a ramp of three 8-bit levels across the width, as 10-bit 4:4:4
  FFV1; passed through to FFV1 and to ProRes, and to ProRes on the 8-bit path (frames written
  without their 16-bit image): the largest and mean error against the source's 16-bit RGB, in
  16-bit units (one 10-bit level is 64).
- ``fields``: the frames woven as an interlaced clip, and again with the bottom field tinted; a
  smile and an 8-degree turn rendered with one plan: top-field pixels that differ between the
  two outputs, edited field by field (``EditStage.fields``) and in woven frames.

    python bench/formats.py [--frames 12]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

FIXTURE = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "retalking_face_1.mp4"
TINT = np.array([30, -30, 0])


def _encode(path: Path, images: list[np.ndarray], codec: str, pix_fmt: str, fmt: str = "rgb24",
            sar: Fraction | None = None, field_order: int | None = None) -> Path:
    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as out:
        s = out.add_stream(codec, rate=25)
        s.width, s.height, s.pix_fmt = w, h, pix_fmt
        if sar is not None:
            s.codec_context.sample_aspect_ratio = sar
        if field_order is not None:
            s.codec_context.field_order = field_order
        if codec == "libx264":
            s.options = {"crf": "12"}
        for img in images:
            out.mux(s.encode(av.VideoFrame.from_ndarray(img, format=fmt).reformat(format=pix_fmt)))
        out.mux(s.encode())
    return path


def _iod(lm: np.ndarray) -> float:
    return float(np.linalg.norm(lm[468, :2] - lm[473, :2]))


def anamorphic(frames: list, work: Path) -> dict[str, Any]:
    from plugin.analyze import AnalysisConfig, analyze_frames, run_analysis
    from plugin.video import VideoReader

    h, w = frames[0].image.shape[:2]
    narrow = int(w * 0.75) // 2 * 2
    squeeze = narrow / w
    path = _encode(work / "squeezed.mp4", [cv2.resize(f.image, (narrow, h), interpolation=cv2.INTER_AREA)
                                           for f in frames], "libx264", "yuv420p", sar=Fraction(w, narrow))
    truth = analyze_frames(frames, AnalysisConfig())[0].tracks[0]
    fixed = run_analysis(path, cache_dir=work / "cache").analysis.tracks[0]
    with VideoReader(path) as reader:
        plain = analyze_frames(list(reader), AnalysisConfig())[0].tracks[0]

    def errors(t: Any) -> dict[str, float]:
        lm, bs, pitch = [], [], []
        for i in range(len(frames)):
            want = truth.raw_landmarks[i].astype(np.float64)
            want[:, 0] = (want[:, 0] + 0.5) * squeeze - 0.5
            lm.append(np.linalg.norm(t.raw_landmarks[i, :468, :2] - want[:468, :2], axis=1).mean()
                      / _iod(truth.raw_landmarks[i]))
            bs.append(np.abs(t.raw_blendshapes[i] - truth.raw_blendshapes[i]).max())
            pitch.append(t.raw_angles[i, 1] - truth.raw_angles[i, 1])
        return {"mesh_error_iod": round(float(np.mean(lm)), 4), "largest_blendshape_error": round(float(np.mean(bs)), 3),
                "pitch_error_deg": round(float(np.mean(pitch)), 2)}

    return {"squeeze": round(squeeze, 3), "as_displayed": errors(fixed), "stored_pixels": errors(plain)}


def deep(frames: list, work: Path) -> dict[str, Any]:
    from plugin.pipeline import RenderJob, run_render
    from plugin.video import VideoReader
    from plugin.writer import OutputConfig, VideoWriter

    w = frames[0].image.shape[1]
    ramp = np.linspace(0.0, 3.0, w)[None, :, None]
    rgb48 = [np.clip((f.image + ramp) * 257.0, 0, 65535).astype(np.uint16) for f in frames]
    src = _encode(work / "source10.mkv", rgb48, "ffv1", "yuv444p10le", fmt="rgb48le")

    def read(path: Path) -> list[np.ndarray]:
        with VideoReader(path) as reader:
            return [f.deep.astype(np.int64) for f in reader.frames(deep=True)]

    want = read(src)
    report: dict[str, Any] = {}
    for name, codec in (("ffv1.mkv", "ffv1"), ("prores.mov", "prores")):
        run_render(RenderJob(src, work / name, OutputConfig(codec=codec)))
    with VideoReader(src) as reader, VideoWriter(work / "prores_8bit.mov", reader, OutputConfig(codec="prores")) as wr:
        for frame in reader.frames():
            wr.write(frame)
    for name in ("ffv1.mkv", "prores.mov", "prores_8bit.mov"):
        err = [np.abs(a - b) for a, b in zip(want, read(work / name), strict=True)]
        report[name] = {"max_error": int(max(e.max() for e in err)), "mean_error": round(float(np.mean([e.mean() for e in err])), 1)}
    return report


def fields(frames: list, work: Path) -> dict[str, Any]:
    from plugin.edit_job import prepare_edit
    from plugin.video import VideoReader
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve

    path = _encode(work / "woven.mkv", [f.image for f in frames], "ffv1", "bgr0", field_order=2)
    with VideoReader(path) as reader:
        plain = list(reader)
    tinted = []
    for f in plain:
        image = f.image.copy()
        image[1::2] = np.clip(image[1::2].astype(np.int16) + TINT, 0, 255).astype(np.uint8)
        tinted.append(dataclasses.replace(f, image=image))
    schedule = EditSchedule((EditEntry(0, "smile", StrengthCurve.constant(0.7)),
                             EditEntry(0, "head_yaw", StrengthCurve.constant(8.0))))
    prepared = prepare_edit(path, schedule, cache_dir=work / "cache")
    report = {}
    for by_field in (True, False):
        prepared.stage.fields = by_field
        differ, edited = 0, 0
        for a, b in zip(plain, tinted, strict=True):
            out_a, out_b = prepared.stage.push(a)[0].image, prepared.stage.push(b)[0].image
            differ += int((out_a[0::2] != out_b[0::2]).any(axis=2).sum())
            edited += int((out_a[0::2] != a.image[0::2]).any(axis=2).sum())
        report["field_by_field" if by_field else "woven"] = {"top_field_px_edited": edited,
                                                             "top_field_px_from_the_bottom_field": differ}
    prepared.close()
    return report


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--frames", type=int, default=12)
    args = ap.parse_args()
    from plugin.video import VideoReader

    with VideoReader(FIXTURE) as reader:
        frames = list(reader.frames(0, args.frames))
    with tempfile.TemporaryDirectory(prefix="deltaface-formats-") as tmp:
        work = Path(tmp)
        report = {"bench": "formats", "frames": args.frames}
        for name, fn in (("anamorphic", anamorphic), ("deep", deep), ("fields", fields)):
            (work / name).mkdir()
            report[name] = fn(frames, work / name)
            print(f"[formats] {name} done", file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
