"""The QC report of an edit: ``DIR/index.html`` (self-contained) and ``DIR/report.json``.

For every edited face: yaw, pitch, roll and the key blendshapes over the clip, before and after the
edit, with the edited frames shaded and clamp events marked; the per-delta strengths; the mean
landmark shift; and before/after thumbnails (face crops, PNG files in ``DIR/thumbs``) of the most
changed frames, decoded from the input and the written output.

"Before" is the analysis' (smoothed) track. "After" is the planned readout: the tracked value plus,
for every delta, its strength times the change the delta documents (``Delta.pose`` degrees,
``Delta.blendshapes`` scores; blendshapes clipped to [0, 1]). The landmark shift is measured on the
plan's edited landmarks (``FacePlan.after - FacePlan.before``). On request (``retrack``) the output
is tracked too and its values are shown as "measured": a second analysis pass, as long as tracking
the input, so it is not the default.

The page holds no script and loads nothing from the network: charts are inline SVG
(:mod:`plugin.report_svg`), thumbnails are files beside it; :mod:`plugin.report_html` lays it out.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import numpy as np
from numpy.typing import NDArray

from plugin.provenance import merge_ranges
from plugin.report_html import ANGLES, DIFF_GAIN, render_html
from synthesis.deltas import Delta
from synthesis.plan import FacePlan
from tracking.analysis import Track
from tracking.errors import ConfigError, OutputError
from tracking.mediapipe_results import BLENDSHAPE_NAMES

if TYPE_CHECKING:
    from plugin.analyze import AnalysisConfig

REPORT_VERSION = 1
#: Blendshapes shown when the edits change fewer than :attr:`ReportConfig.blendshape_charts` of them.
DEFAULT_BLENDSHAPES = ("mouthSmileLeft", "mouthSmileRight", "eyeBlinkLeft", "eyeBlinkRight", "jawOpen")
#: A planned blendshape change smaller than this is no change (scores are in [0, 1]).
BLENDSHAPE_CHANGE_MIN = 1e-3
#: Least mean box overlap (IoU) over shared frames for a track of the output to be the edited face.
MATCH_MIN_IOU = 0.5


@dataclass(frozen=True)
class ReportConfig:
    """What the report shows.

    Attributes:
        thumbnails: most-changed frames shown as before/after thumbnails.
        thumb_size: longest side of a thumbnail in pixels.
        blendshape_charts: blendshape charts per face.
        face_margin: the thumbnail crop around the face, as a fraction of its landmark box.
    """

    thumbnails: int = 4
    thumb_size: int = 240
    blendshape_charts: int = 4
    face_margin: float = 0.35

    def __post_init__(self) -> None:
        if not 0 <= self.thumbnails <= 50:
            raise ConfigError(f"report: thumbnails must be in [0, 50], got {self.thumbnails}")
        if not 32 <= self.thumb_size <= 1024:
            raise ConfigError(f"report: thumb_size must be in [32, 1024], got {self.thumb_size}")
        if not 0 <= self.blendshape_charts <= 52:
            raise ConfigError(f"report: blendshape_charts must be in [0, 52], got {self.blendshape_charts}")
        if not 0 <= self.face_margin <= 2:
            raise ConfigError(f"report: face_margin must be in [0, 2], got {self.face_margin}")


def _round(a: NDArray[np.floating], nd: int = 3) -> list[float | None]:
    return [None if not np.isfinite(v) else round(float(v), nd) for v in np.asarray(a, np.float64)]


def face_readout(track: Track, plan: FacePlan, deltas: Mapping[str, Delta], frame_count: int) -> dict[str, Any]:
    """Per-frame numbers of one edited face over the whole clip (NaN where the track is absent).

    Args:
        track: the face's track from the analysis.
        plan: its planned edit.
        deltas: every delta the plan names.
        frame_count: frames in the clip.

    Returns:
        ``angles_before``/``angles_after`` ``(F, 3)`` degrees (yaw, pitch, roll);
        ``blendshapes_before``/``blendshapes_after`` ``(F, 52)``; ``strengths`` ``{name: (F,)}``
        (0 where not edited); ``shift_px`` ``(F,)`` mean 2-D landmark shift in frame pixels;
        ``box`` ``(F, 4)`` x0, y0, x1, y1 of before and after landmarks together; all float64.
    """
    f = frame_count
    fi = np.asarray(track.frame_indices, np.int64)
    ang_b = np.full((f, 3), np.nan)
    bs_b = np.full((f, 52), np.nan)
    ang_b[fi] = track.angles
    bs_b[fi] = track.blendshapes
    pose_change = np.zeros((f, 3))
    bs_change = np.zeros((f, 52))
    strengths = {}
    pf = np.asarray(plan.frame_indices, np.int64)
    for name, s in plan.strengths.items():
        full = np.zeros(f)
        full[pf] = np.asarray(s, np.float64)
        strengths[name] = full
        d = deltas[name]
        pose_change += full[:, None] * np.asarray(d.pose, np.float64)[None, :]
        bs_change += full[:, None] * np.asarray(d.blendshapes, np.float64)[None, :]
    shift = np.zeros(f)
    box = np.full((f, 4), np.nan)
    box[fi] = track.boxes
    if pf.size:
        before, after = plan.before[:, :, :2], plan.after[:, :, :2]
        shift[pf] = np.linalg.norm(after - before, axis=2).mean(axis=1)
        both = np.concatenate([before, after], axis=1)
        box[pf] = np.concatenate([both.min(axis=1), both.max(axis=1)], axis=1)
    shift[~np.isin(np.arange(f), fi)] = np.nan
    return {
        "angles_before": ang_b, "angles_after": ang_b + pose_change,
        "blendshapes_before": bs_b, "blendshapes_after": np.clip(bs_b + bs_change, 0, 1),
        "blendshape_change": bs_change, "strengths": strengths, "shift_px": shift, "box": box,
    }


def _iou(a: NDArray[np.floating], b: NDArray[np.floating]) -> NDArray[np.float64]:
    """Row-wise IoU of ``(N, 4)`` boxes ``(x0, y0, x1, y1)``."""
    w = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    h = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = w * h
    union = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]) + (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]) - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-9), 0.0)


def match_tracks(face: Track, candidates: Sequence[Track]) -> tuple[Track | None, float]:
    """The track of ``candidates`` (the output's analysis) that follows ``face`` (the input's).

    Returns:
        The candidate with the largest mean box IoU over the frames both cover, and that IoU; None
        when no candidate reaches :data:`MATCH_MIN_IOU`. (Track ids of two analyses need not agree.)
    """
    best, best_iou = None, 0.0
    for c in candidates:
        common, ia, ib = np.intersect1d(face.frame_indices, c.frame_indices, return_indices=True)
        if common.size == 0:
            continue
        iou = float(_iou(face.boxes[ia].astype(np.float64), c.boxes[ib].astype(np.float64)).mean())
        if iou > best_iou:
            best, best_iou = c, iou
    return (best, best_iou) if best_iou >= MATCH_MIN_IOU else (None, best_iou)


def key_blendshapes(change: NDArray[np.floating], count: int) -> list[str]:
    """The ``count`` blendshapes the edits change most, topped up with :data:`DEFAULT_BLENDSHAPES`."""
    peak = np.nanmax(np.abs(change), axis=0) if change.size else np.zeros(52)
    order = [int(i) for i in np.argsort(-peak, kind="stable") if peak[i] > BLENDSHAPE_CHANGE_MIN]
    names = [BLENDSHAPE_NAMES[i] for i in order[:count]]
    for n in DEFAULT_BLENDSHAPES:
        if len(names) >= count:
            break
        if n not in names:
            names.append(n)
    return names


def most_changed_frames(shifts: Sequence[NDArray[np.floating]], count: int) -> list[tuple[int, int]]:
    """Up to ``count`` ``(frame, face position)`` of the largest landmark shift, spread over the edits.

    First the peak of each edited run (consecutive frames with a shift), largest peaks first, so
    that every edit gets a thumbnail when there are enough; then the largest remaining shifts, each
    at least ``max(3, F / (3 count))`` frames from those already taken.
    """
    if not shifts or count <= 0:
        return []
    stack = np.nan_to_num(np.stack(shifts), nan=0.0)  # (faces, F)
    best = stack.max(axis=0)
    who = stack.argmax(axis=0)
    gap = max(3, stack.shape[1] // (3 * count))
    runs = merge_ranges((int(i), int(i)) for i in np.flatnonzero(best > 0))
    peaks = sorted((_run_peak(best, a, b) for a, b in runs), key=lambda i: -best[i])
    picked: list[int] = peaks[:count]
    alive = best > 0
    for i in picked:
        alive[max(0, i - gap): i + gap + 1] = False
    while len(picked) < count and alive.any():
        i = int(np.argmax(np.where(alive, best, -1)))
        picked.append(i)
        alive[max(0, i - gap): i + gap + 1] = False
    return sorted((i, int(who[i])) for i in picked)


#: Frames of a run within this fraction of its peak shift count as the peak (a held edit).
PEAK_FRACTION = 0.98


def _run_peak(values: NDArray[np.floating], first: int, last: int) -> int:
    """The middle one of the frames in ``first..last`` within :data:`PEAK_FRACTION` of the run's peak."""
    run = values[first:last + 1]
    near = np.flatnonzero(run >= PEAK_FRACTION * run.max())
    return first + int(near[near.size // 2])


def _crop_box(box: NDArray[np.floating], shape: tuple[int, int], margin: float) -> tuple[int, int, int, int]:
    h, w = shape
    if not np.all(np.isfinite(box)):
        return 0, 0, w, h
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(box[2] - box[0], box[3] - box[1]) * (1 + 2 * margin)
    side = min(max(side, 16), max(w, h))
    x0 = int(round(min(max(cx - side / 2, 0), max(w - side, 0))))
    y0 = int(round(min(max(cy - side / 2, 0), max(h - side, 0))))
    return x0, y0, min(w, x0 + int(round(side))), min(h, y0 + int(round(side)))


def _write_png(path: Path, rgb: NDArray[np.uint8]) -> None:
    if not cv2.imwrite(str(path), np.ascontiguousarray(rgb[:, :, ::-1])):
        raise OutputError(f"{path}: cannot write the report thumbnail")


def write_thumbnails(directory: Path, input_path: Path, output_path: Path, picks: list[dict[str, Any]],
                     config: ReportConfig) -> None:
    """Decode ``input_path`` and ``output_path`` at each pick's frame; write face crops as PNG.

    Each pick (a dict with ``frame`` and ``box``) gains ``before``, ``after`` and ``diff``: file
    names relative to ``directory``.
    """
    from plugin.video import VideoReader

    thumbs = directory / "thumbs"
    thumbs.mkdir(parents=True, exist_ok=True)
    with VideoReader(input_path) as src, VideoReader(output_path) as dst:
        for p in picks:
            a = src.frame_at(p["frame"]).image
            b = dst.frame_at(p["frame"]).image
            if a.shape != b.shape:
                raise OutputError(f"{output_path}: frame {p['frame']} is {b.shape[1]}x{b.shape[0]}, "
                                  f"the input's is {a.shape[1]}x{a.shape[0]}")
            x0, y0, x1, y1 = _crop_box(np.asarray(p["box"], np.float64), a.shape[:2], config.face_margin)
            scale = config.thumb_size / max(x1 - x0, y1 - y0)
            size = (max(1, round((x1 - x0) * scale)), max(1, round((y1 - y0) * scale)))
            interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
            ca, cb = a[y0:y1, x0:x1], b[y0:y1, x0:x1]
            diff = np.clip(np.abs(ca.astype(np.int16) - cb.astype(np.int16)) * DIFF_GAIN, 0, 255).astype(np.uint8)
            for key, img in (("before", ca), ("after", cb), ("diff", diff)):
                name = f"thumbs/frame{p['frame']:06d}_face{p['face']}_{key}.png"
                _write_png(directory / name, cv2.resize(img, size, interpolation=interp))
                p[key] = name
            p["crop"] = [x0, y0, x1, y1]
            p["max_abs_pixel_change"] = int(np.abs(ca.astype(np.int16) - cb.astype(np.int16)).max()) if ca.size else 0


def build_report(tracks: Sequence[Track], plans: Sequence[FacePlan], deltas: Mapping[str, Delta], *,
                 frame_count: int, frame_times: NDArray[np.floating], input_path: Path, output_path: Path,
                 config: ReportConfig = ReportConfig(), extra: Mapping[str, Any] | None = None,
                 measured: Sequence[Track] | None = None,
                 after: Mapping[int, tuple[NDArray[np.floating], NDArray[np.floating]]] | None = None,
                 after_values: str | None = None) -> dict[str, Any]:
    """The report's numbers (what ``report.json`` holds), without thumbnails written.

    Args:
        tracks: the analysis' tracks (at least those the plans edit).
        plans: one plan per edited face.
        deltas: every delta the plans name.
        frame_count: frames in the clip.
        frame_times: ``(frame_count,)`` seconds of each frame.
        input_path, output_path: the edit's input and written output.
        config: what to show.
        extra: more top-level entries (the run's summary).
        measured: the tracks of an analysis of the output, or None: each edited face's values
            there are added as ``"measured"`` beside ``"before"`` and ``"after"``.
        after: per face id, ``(F, 3)`` angles and ``(F, 52)`` blendshapes that replace the planned
            readout (e.g. a restore's target: the plate's values where it corrects the swap).
        after_values: what "after" means, for the page's key (default: the planned readout).
    """
    by_id = {t.track_id: t for t in tracks}
    faces, shifts, readouts = [], [], []
    for plan in plans:
        if plan.track_id not in by_id:
            raise ConfigError(f"report: face {plan.track_id} has a plan but no track")
        r = face_readout(by_id[plan.track_id], plan, deltas, frame_count)
        if after is not None and plan.track_id in after:
            r["angles_after"], r["blendshapes_after"] = (np.asarray(a, np.float64) for a in after[plan.track_id])
            r["blendshape_change"] = np.nan_to_num(r["blendshapes_after"] - r["blendshapes_before"])
        readouts.append(r)
        shifts.append(r["shift_px"])
        names = key_blendshapes(r["blendshape_change"], config.blendshape_charts)
        idx = [BLENDSHAPE_NAMES.index(n) for n in names]
        match, iou = match_tracks(by_id[plan.track_id], measured) if measured is not None else (None, 0.0)
        faces.append({
            "face": plan.track_id,
            "edited_ranges": merge_ranges((int(f), int(f)) for f in plan.frame_indices),
            "clamps": [{k: v for k, v in e.as_dict().items() if k != "face"} for e in plan.events],
            "angles_deg": {a: {"before": _round(r["angles_before"][:, k]), "after": _round(r["angles_after"][:, k])}
                           for k, a in enumerate(ANGLES)},
            "blendshapes": {n: {"before": _round(r["blendshapes_before"][:, i], 4),
                                "after": _round(r["blendshapes_after"][:, i], 4)} for n, i in zip(names, idx)},
            "strengths": {n: _round(s, 4) for n, s in r["strengths"].items()},
            "max_strengths": {n: float(deltas[n].max_strength) for n in r["strengths"]},
            "landmark_shift_px": _round(r["shift_px"], 3),
            "max_landmark_shift_px": round(float(np.nanmax(r["shift_px"], initial=0.0)), 3),
        })
        if measured is not None:
            faces[-1]["measured_track"] = None if match is None else {"id": match.track_id, "mean_box_iou": round(iou, 3)}
        if match is not None:
            ang_m, bs_m = np.full((frame_count, 3), np.nan), np.full((frame_count, 52), np.nan)
            ang_m[match.frame_indices], bs_m[match.frame_indices] = match.angles, match.blendshapes
            for k, a in enumerate(ANGLES):
                faces[-1]["angles_deg"][a]["measured"] = _round(ang_m[:, k])
            for n, i in zip(names, idx):
                faces[-1]["blendshapes"][n]["measured"] = _round(bs_m[:, i], 4)
    picks = []
    for frame, pos in most_changed_frames(shifts, config.thumbnails):
        r = readouts[pos]
        picks.append({"frame": frame, "time_s": round(float(frame_times[frame]), 4), "face": plans[pos].track_id,
                      "landmark_shift_px": round(float(r["shift_px"][frame]), 3), "box": _round(r["box"][frame], 1)})
    return {
        "format": "deltaface-report", "version": REPORT_VERSION,
        "input": str(input_path), "output": str(output_path), "frame_count": frame_count,
        "after_values": after_values or ("planned readout: tracked value + sum of strength x the delta's "
                                         "documented change (pose degrees, blendshape scores)"),
        "measured_values": None if measured is None else "the written output tracked again (smoothed track)",
        "faces": faces, "thumbnails": picks, **(dict(extra) if extra else {}),
    }


def _plain(value: Any) -> Any:
    """``value`` with numpy values as Python ones, paths as text and NaN/inf as None (strict JSON)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return _plain(value.item())
    if isinstance(value, float):
        return value if np.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def check_report_dir(directory: Path, overwrite: bool = False) -> Path:
    """Check, before any work, that the report can be written to ``directory``.

    The folder may be new, empty, or (with ``overwrite``) a report folder deltaface wrote before
    (it holds ``report.json``); its parent must exist.

    Raises:
        OutputError: the parent is missing; ``directory`` is a file, another program's folder, or
            an earlier report and ``overwrite`` is False.
    """
    directory = Path(directory).absolute()
    if not directory.parent.is_dir():
        raise OutputError(f"{directory.parent}: report's parent folder does not exist; create it first")
    if directory.exists():
        if not directory.is_dir():
            raise OutputError(f"{directory}: exists and is not a folder; choose another report folder")
        entries = {p.name for p in directory.iterdir()}
        if entries and "report.json" not in entries:
            raise OutputError(f"{directory}: folder holds files that are not a deltaface report; choose another")
        if entries and not overwrite:
            raise OutputError(f"{directory}: a report exists there; pass --overwrite to replace it")
    return directory


def write_report(directory: Path, tracks: Sequence[Track], plans: Sequence[FacePlan], deltas: Mapping[str, Delta], *,
                 frame_count: int, frame_times: NDArray[np.floating], input_path: Path, output_path: Path,
                 config: ReportConfig = ReportConfig(), extra: Mapping[str, Any] | None = None,
                 measured: Sequence[Track] | None = None,
                 after: Mapping[int, tuple[NDArray[np.floating], NDArray[np.floating]]] | None = None,
                 after_values: str | None = None) -> Path:
    """Write ``directory/index.html``, ``directory/report.json`` and ``directory/thumbs/*.png``.

    Args: as for :func:`build_report`; ``output_path`` must be written already (it is decoded).

    Returns:
        The path of ``index.html``.

    Raises:
        OutputError: the folder cannot be written, or the output's frames differ in size.
        InputError: the input or output cannot be decoded at a chosen frame.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{directory}: cannot create the report folder: {exc.strerror or exc}") from None
    report = build_report(tracks, plans, deltas, frame_count=frame_count, frame_times=frame_times,
                          input_path=input_path, output_path=output_path, config=config, extra=extra,
                          measured=measured, after=after, after_values=after_values)
    for stale in (directory / "thumbs").glob("frame*_face*_*.png"):  # an earlier report's thumbnails
        stale.unlink()
    if report["thumbnails"]:
        write_thumbnails(directory, input_path, output_path, report["thumbnails"], config)
    index = directory / "index.html"
    try:
        (directory / "report.json").write_text(json.dumps(_plain(report), indent=1, allow_nan=False),
                                               encoding="utf-8")
        index.write_text(render_html(report), encoding="utf-8")
    except OSError as exc:
        raise OutputError(f"{directory}: cannot write the report: {exc.strerror or exc}") from None
    return index


def write_edit_report(directory: Path, summary: Any, config: ReportConfig = ReportConfig(), *,
                      retrack: AnalysisConfig | None = None, cache_dir: Path | None = None,
                      progress: Callable[[int, int | None], None] | None = None) -> Path:
    """:func:`write_report` for a finished :class:`plugin.edit_job.EditSummary`.

    Args:
        directory: the report folder.
        summary: the edit's summary.
        config: what to show.
        retrack: settings to track the written output with (use the edit's own), or None: its
            values are then shown as "measured" (cached like any analysis).
        cache_dir: the analysis cache folder for that.
        progress: progress of that analysis pass.
    """
    from plugin.analyze import run_analysis
    from plugin.edit_job import resolve_deltas

    analysis = summary.analysis.analysis
    names = sorted({n for p in summary.plans for n in p.strengths})
    measured = None
    extra: dict[str, Any] = {"summary": summary.as_dict()}
    if retrack is not None:
        result = run_analysis(Path(summary.render.output), retrack, cache_dir=cache_dir, progress=progress)
        measured = result.analysis.tracks
        extra["retrack_seconds"] = round(result.seconds, 2)
    return write_report(directory, analysis.tracks, summary.plans, resolve_deltas(names),
                        frame_count=analysis.frame_count, frame_times=analysis.frame_times,
                        input_path=Path(summary.render.input), output_path=Path(summary.render.output),
                        config=config, extra=extra, measured=measured)


#: The restore's per-frame weight, shown among the strengths (a weight in [0, 1], no change of its own).
RESTORE_WEIGHT = Delta(name="restore", kind="mixed", displacement=np.zeros((478, 3)),
                       description="restore: weight of the plate's pose and expression on the swap")


def write_restore_report(directory: Path, summary: Any, config: ReportConfig = ReportConfig()) -> Path:
    """:func:`write_report` for a finished :class:`plugin.restore.RestoreSummary`.

    "Before" is the swap as tracked; "after" the restore's target: the swap's values moved toward
    the plate's by the restore weight on every frame where the two faces are matched. The run's
    summary (fixed ranges with their divergence before and after) goes into ``report.json``.
    """
    from plugin.edit_job import resolve_deltas

    plan = summary.plan
    swapped = plan.swapped.analysis
    plate = plan.plate_tracks  # as compared (renumbered by the restore's frame offset)
    swaps = {t.track_id: t for t in swapped.tracks}
    f = swapped.frame_count
    targets: dict[int, tuple[NDArray[np.float64], NDArray[np.float64]]] = {}
    for r in plan.restores:
        sw, pl = swaps[r.pair.swap_id], plate[r.pair.plate_id]
        ang = np.full((f, 3), np.nan)
        bs = np.full((f, 52), np.nan)
        ang[sw.frame_indices], bs[sw.frame_indices] = sw.angles, sw.blendshapes
        w = np.asarray(r.weights, np.float64)[:, None]
        fr = r.pair.frame_indices
        ang[fr] += w * (pl.angles[r.pair.plate_rows] - sw.angles[r.pair.swap_rows])
        bs[fr] += w * (pl.blendshapes[r.pair.plate_rows] - sw.blendshapes[r.pair.swap_rows])
        targets[r.pair.swap_id] = (ang, np.clip(bs, 0.0, 1.0))
    names = sorted({n for p in plan.plans for n in p.strengths} - {RESTORE_WEIGHT.name})
    deltas = {**resolve_deltas(names), RESTORE_WEIGHT.name: RESTORE_WEIGHT}
    return write_report(directory, swapped.tracks, plan.plans, deltas, frame_count=f,
                        frame_times=swapped.frame_times, input_path=Path(summary.render.input),
                        output_path=Path(summary.render.output), config=config,
                        extra={"summary": summary.as_dict()}, after=targets,
                        after_values="the restore's target: the swap's value moved to the plate's by the restore "
                                     "weight (the plate's pose and expression where the swap is corrected)")
