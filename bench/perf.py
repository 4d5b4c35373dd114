"""Performance of the whole tool on 2 cores: analysis and render fps, pass-through, memory (JSON).

For each frame height and face count it generates a clip (the moving astronaut's head on a
textured 16:9 background, bench/passthrough.py's ``make_clip``) and measures, each in a fresh
process so that its peak RSS is its own:

- ``analysis``: ``deltaface track``'s pass (decode, landmarker, tracks), no cache: fps from the
  first analysed frame to the last, and including the landmarker's start-up;
- ``passthrough``: the render pass without edits, x264 with ``--preset`` (same encoder settings);
- ``edit``: the render pass with every face smiling (strength 0.7) on every frame, analysis
  loaded from the cache the first step wrote;

and reports fps, ``edit / passthrough`` (the target is >= 0.8 at 1080p with one face), the busy
share of each part of the render pass (decode, the edit stage, encode: they overlap on threads, so
shares can sum past 1), the render pass's CPU time per frame over all its threads and how many
cores it kept busy on average (``cpu_ms_per_frame``, ``cores_busy``), and peak RSS.
``--rss-seconds 10,60`` adds 1080p clips of those lengths to show that memory is flat in clip
length (``--rss-modes`` picks which of the three to run on them; each row also gives its peak RSS
less the shortest clip's, in MB and percent).

    python bench/perf.py [--frames 150] [--sizes 720,1080] [--faces 1,2] [--preset veryfast]
                         [--rounds 1] [--rss-seconds 10,60] [--rss-modes analysis,passthrough,edit]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
FPS = 25
HEAD = (slice(0, 300), slice(78, 378))  # rows, columns of the 512x512 astronaut: her head


def _peak_rss_mb() -> float:
    """This process's peak RSS. VmHWM, not getrusage: ru_maxrss survives exec, so a child would
    report its parent's peak (the parent holds a clip's generated frames)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024.0, 1)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


def child(mode: str, clip: Path, work: Path, preset: str) -> dict[str, Any]:
    """One measurement in this process (run by the parent through a subprocess)."""
    from plugin.analyze import run_analysis
    from plugin.edit_job import EditJob, run_edit
    from plugin.pipeline import RenderJob, run_render
    from plugin.writer import OutputConfig
    from synthesis.schedule import EditEntry, EditSchedule, StrengthCurve

    out_cfg = OutputConfig(codec="h264", preset=preset, overwrite=True)
    cache = work / "cache"
    if mode == "analysis":
        stamps: list[float] = []
        res = run_analysis(clip, cache_dir=cache, use_cache=False,
                           progress=lambda done, total: stamps.append(time.perf_counter()))
        # Steady state: from the first analysed frame to the last (the landmarker's start-up,
        # about a second, is a fixed cost that a short bench clip would otherwise spread thin).
        steady = (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else float("nan")
        return {"fps": round(steady, 2), "fps_incl_startup": round(res.fps, 2), "seconds": round(res.seconds, 2),
                "tracks": len(res.analysis.tracks), "frames": res.analysis.frame_count}
    if mode == "passthrough":
        summary = run_render(RenderJob(clip, work / f"{clip.stem}_pt.mp4", out_cfg))
    else:
        analysis = run_analysis(clip, cache_dir=cache).analysis
        schedule = EditSchedule(tuple(EditEntry(t.track_id, "smile", StrengthCurve.constant(0.7))
                                      for t in analysis.tracks))
        del analysis  # run_edit loads its own: a second copy here would count in the peak RSS
        t0 = time.perf_counter()
        edit = run_edit(EditJob(RenderJob(clip, work / f"{clip.stem}_edit.mp4", out_cfg), schedule,
                                cache_dir=cache))
        summary = edit.render
        planning = time.perf_counter() - t0 - summary.seconds
        # the occluder pre-pass (part of the planning), timed again on its own
        from plugin.occluder_pass import find_occluders
        t1 = time.perf_counter()
        find_occluders(clip, edit.plans, {t.track_id: t for t in edit.analysis.analysis.tracks})
        occluder_pass = time.perf_counter() - t1
    cpu = summary.cpu_seconds  # the render pass's, all threads
    result = {"fps": round(summary.fps, 2), "seconds": round(summary.seconds, 2),
              "frames": summary.frames_written,
              "cpu_ms_per_frame": round(1000.0 * cpu / max(summary.frames_written, 1), 1),
              "cores_busy": round(cpu / summary.seconds, 2),
              "busy_share": {k: round(v / summary.seconds, 3) for k, v in getattr(summary, "busy_seconds", {}).items()}}
    if mode == "edit":
        result |= {"faces_edited": len(schedule.face_ids()), "plan_seconds": round(planning, 2),
                   "occluder_pass_seconds": round(occluder_pass, 2), "fold_repairs": edit.fold_repairs}
    return result


def measure(script: Path, mode: str, clip: Path, work: Path, preset: str) -> dict[str, Any]:
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    proc = subprocess.run([sys.executable, str(script), "--child", mode, str(clip), str(work), "--preset", preset],
                          capture_output=True, text=True, env=env, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{mode} on {clip} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


MODES = ("analysis", "passthrough", "edit")


def run_case(clip: Path, work: Path, preset: str, modes: tuple[str, ...] = MODES, rounds: int = 1) -> dict[str, Any]:
    """Measure ``modes`` on ``clip`` (``edit`` needs ``analysis`` before it, for the cache).

    With ``rounds`` > 1 the pass-through and edit renders are run that many times, alternating
    (the machine's speed drifts by a third within minutes: a ratio of two runs far apart in time
    measures the drift as much as the code): each reports the median fps and ``fps_runs``, and
    ``edit_over_passthrough`` is the median of the rounds' ratios (``ratio_runs``)."""
    script = Path(__file__).resolve()
    case = {mode: measure(script, mode, clip, work, preset) for mode in modes}
    if "edit" in case and "passthrough" in case:
        ratios = [case["edit"]["fps"] / case["passthrough"]["fps"]]
        runs: dict[str, list[float]] = {m: [case[m]["fps"]] for m in ("passthrough", "edit")}
        for _ in range(rounds - 1):
            again = {m: measure(script, m, clip, work, preset) for m in ("passthrough", "edit")}
            for m in runs:
                runs[m].append(again[m]["fps"])
            ratios.append(again["edit"]["fps"] / again["passthrough"]["fps"])
        if rounds > 1:
            for m, fps in runs.items():
                case[m] |= {"fps": round(float(np.median(fps)), 2), "fps_runs": fps}
            case["ratio_runs"] = [round(r, 3) for r in ratios]
        case["edit_over_passthrough"] = round(float(np.median(ratios)), 3)
    return case


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=150)
    ap.add_argument("--sizes", default="720,1080")
    ap.add_argument("--faces", default="1,2")
    ap.add_argument("--preset", default="veryfast")
    ap.add_argument("--rss-seconds", default="", help="also 1080p one-face clips of these lengths (s)")
    ap.add_argument("--rss-modes", default=",".join(MODES), help="what to measure on the --rss-seconds clips")
    ap.add_argument("--rounds", type=int, default=1,
                    help="run pass-through and edit this many times, alternating; report medians")
    ap.add_argument("--child", nargs=3, metavar=("MODE", "CLIP", "WORK"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, clip, work = args.child
        result = child(mode, Path(clip), Path(work), args.preset)
        print(json.dumps(result | {"peak_rss_mb": _peak_rss_mb()}))
        return

    import av

    from passthrough import make_clip  # bench/ is on sys.path when run as a script

    report: dict[str, Any] = {
        "bench": "perf",
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "av": av.__version__,
                    "omp_num_threads": os.environ.get("OMP_NUM_THREADS")},
        "preset": args.preset, "frames": args.frames, "rounds": args.rounds, "cases": {}, "rss": {},
    }
    with tempfile.TemporaryDirectory(prefix="deltaface-perf-") as tmp:
        work = Path(tmp)
        for size in (int(s) for s in args.sizes.split(",") if s):
            for faces in (int(f) for f in args.faces.split(",") if f):
                clip = work / f"clip_{size}p_{faces}face.mp4"
                make_clip(clip, size, args.frames, FPS, region=HEAD, faces=faces)
                report["cases"][f"{size}p_{faces}face"] = run_case(clip, work, args.preset, rounds=args.rounds)
                print(f"[perf] {size}p {faces} face(s) done", file=sys.stderr)
        modes = tuple(m for m in MODES if m in args.rss_modes.split(","))
        if "edit" in modes and "analysis" not in modes:
            raise SystemExit("--rss-modes: edit needs analysis (it reads the analysis cache)")
        first: dict[str, float] = {}
        for seconds in sorted(int(s) for s in args.rss_seconds.split(",") if s):
            clip = work / f"clip_1080p_{seconds}s.mp4"
            make_clip(clip, 1080, seconds * FPS, FPS, region=HEAD, faces=1)
            case = run_case(clip, work, args.preset, modes)
            row: dict[str, Any] = {m: case[m]["peak_rss_mb"] for m in modes}
            first = first or dict(row)
            row["growth_mb"] = {m: round(row[m] - first[m], 1) for m in modes}
            row["growth_pct"] = {m: round(100.0 * (row[m] - first[m]) / first[m], 1) for m in modes}
            report["rss"][f"1080p_{seconds}s"] = row
            clip.unlink()  # a 1080p clip of a minute or two is large; /tmp may be shared
            print(f"[perf] rss {seconds}s done", file=sys.stderr)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
