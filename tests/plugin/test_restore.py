"""The restore job on a real clip: a synthetic bad swap of the astronaut demo clip, repaired.

The plate is the demo clip (the astronaut with a known head motion, real MediaPipe tracking);
the swap is the plate with the head turned the wrong way on a frame range by deltaface's own edit
engine and the face wiped out on two frames (bench/restore.py describes these failures).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from compositing.mask import face_oval
from plugin.analyze import run_analysis
from plugin.cli import run
from plugin.demo import MotionSettings, write_demo_clip
from plugin.edit_job import EditJob, run_edit
from plugin.editlist import schedule_from_specs
from plugin.pipeline import RenderJob
from plugin.restore import RestoreJob, run_restore
from plugin.video import VideoReader
from plugin.writer import OutputConfig, VideoWriter
from tests.plugin.media import melt_face
from tracking.errors import ConfigError, InputError

#: Three analyses, an edit and two renders of the clip: about a minute on two busy cores.
SLOW = pytest.mark.slow
FRAMES = 34
#: The swap turns the head by WRONG_YAW on TURNED (eased in and out over 4 frames outside).
WRONG_YAW = -9.0
TURNED = (7, 11)
#: The swap has no face on these frames.
LOST = (21, 22)
#: The swap's face melts on these frames (found by the landmarker, garbled).
GARBLED = (29, 30)
#: Pose divergence left after the repair, re-measured on the output (issue #6: 2 degrees).
POSE_AFTER_DEG = 2.0
#: The wrong turn reads at least this much before the repair.
POSE_BEFORE_MIN_DEG = 6.0


def wipe_face(image: np.ndarray, landmarks: np.ndarray, grow: float = 1.6) -> np.ndarray:
    """The face oval (grown about its centre) filled with its mean colour: no face is left."""
    pts = landmarks[:, :2].astype(np.float64)
    c = pts.mean(axis=0)
    oval = face_oval(c + grow * (pts - c)).astype(np.float32)
    mask = np.zeros(image.shape[:2], np.uint8)
    cv2.fillConvexPoly(mask, cv2.convexHull(oval).astype(np.int32), 255)
    out = image.copy()
    out[mask > 0] = image[mask > 0].mean(axis=0).round().astype(np.uint8)
    return out


@pytest.fixture(scope="module")
def bad_swap(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    work = tmp_path_factory.mktemp("restore")
    cache = work / "cache"
    plate = write_demo_clip(work / "plate.mp4", MotionSettings(num_frames=FRAMES))
    turned = work / "turned.mp4"
    a, b = TURNED
    run_edit(EditJob(RenderJob(plate, turned, OutputConfig(codec="ffv1")),
                     schedule_from_specs([f"head_yaw={WRONG_YAW}@{a}-{b}"], 0, FRAMES), cache_dir=cache))
    track = run_analysis(plate, cache_dir=cache).analysis.tracks[0]
    swap = work / "swap.mp4"
    with VideoReader(turned) as reader, VideoWriter(swap, reader.info, OutputConfig(codec="ffv1"), {}) as writer:
        for fr in reader:
            img = fr.image
            if LOST[0] <= fr.index <= LOST[1]:
                img = wipe_face(img, track.landmarks[track.row(fr.index)])
            if GARBLED[0] <= fr.index <= GARBLED[1]:
                img = melt_face(img, track.landmarks[track.row(fr.index)], fr.index)
            writer.write(type(fr)(fr.index, fr.pts, fr.time_base, img))
    return {"plate": plate, "swap": swap, "cache": cache, "work": work}


@pytest.fixture(scope="module")
def restored(bad_swap: dict[str, Path]):
    out = bad_swap["work"] / "restored"
    job = RestoreJob(bad_swap["plate"], bad_swap["swap"], out, OutputConfig(codec="png"), bridge=True,
                     cache_dir=bad_swap["cache"])
    return run_restore(job), out


@SLOW
def test_wrong_turn_is_fixed_and_measured_on_the_output(restored):
    summary, _ = restored
    ranges = summary.ranges
    assert len(ranges) == 1
    r = ranges[0]
    a, b = r["frames"]
    assert a <= TURNED[0] and b >= TURNED[1]
    assert r["pose_divergence_deg_before"]["max"] > POSE_BEFORE_MIN_DEG
    assert summary.verified
    assert r["pose_divergence_deg_after"]["max"] < POSE_AFTER_DEG
    assert r["pose_divergence_deg_planned"]["max"] < POSE_AFTER_DEG


@SLOW
def test_lost_frames_are_reported_and_bridged(restored, bad_swap):
    summary, out = restored
    assert summary.lost == {0: [list(LOST)]}
    assert summary.garbled == {0: [list(GARBLED)]}
    assert summary.bridged == [list(LOST), list(GARBLED)]
    swap = [f.image for f in VideoReader(bad_swap["swap"])]
    output = [f.image for f in VideoReader(out)]
    for f in (*range(LOST[0], LOST[1] + 1), *range(GARBLED[0], GARBLED[1] + 1)):
        assert not np.array_equal(swap[f], output[f])
    # the bridged face is a face again: the output is tracked there from a real observation
    tracks = run_analysis(out, cache_dir=bad_swap["cache"]).analysis.tracks
    t = tracks[0]
    assert all(t.confidence[t.row(f)] > 0 for f in range(LOST[0], LOST[1] + 1))
    # and the rebuilt faces are no longer melted: their texture agrees with the face's other frames
    from plugin.restore import detail_agreements

    swap_t = run_analysis(bad_swap["swap"], cache_dir=bad_swap["cache"]).analysis.tracks[0]
    before, after = detail_agreements(bad_swap["swap"], [swap_t])[0], detail_agreements(out, [t])[t.track_id]
    for f in range(GARBLED[0], GARBLED[1] + 1):
        assert after[f] > before[f] + 0.25


@SLOW
def test_untouched_frames_are_bit_identical(restored, bad_swap):
    summary, out = restored
    touched = {int(f) for p in summary.plan.plans for f in p.frame_indices}
    touched |= set(range(LOST[0], LOST[1] + 1)) | set(range(GARBLED[0], GARBLED[1] + 1))
    swap = [f.image for f in VideoReader(bad_swap["swap"])]
    output = [f.image for f in VideoReader(out)]
    assert len(output) == len(swap) == FRAMES
    untouched = [i for i in range(FRAMES) if i not in touched]
    assert len(untouched) >= FRAMES // 3
    assert all(np.array_equal(swap[i], output[i]) for i in untouched)


@SLOW
def test_cli_json_summary_and_pass_through(bad_swap, tmp_path, capsys):
    args = ["restore", "--plate", str(bad_swap["plate"]), "--swapped", str(bad_swap["swap"]),
            "--cache-dir", str(bad_swap["cache"]), "--no-verify", "--codec", "ffv1", "--json", "--quiet"]
    assert run([*args, "-o", str(tmp_path / "a.mp4")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert [r["frames"][0] <= TURNED[0] for r in result["fixed_ranges"]] == [True]
    assert "pose_divergence_deg_after" not in result["fixed_ranges"][0]
    assert result["lost_frames_by_face"] == {"0": [list(LOST)]}
    assert result["garbled_frames_by_face"] == {"0": [list(GARBLED)]}
    assert result["bridged_frames"] == []
    # the plate against itself: nothing diverges, nothing is fixed
    same = ["restore", "--plate", str(bad_swap["plate"]), "--swapped", str(bad_swap["plate"]),
            "--cache-dir", str(bad_swap["cache"]), "--codec", "ffv1", "--json", "--quiet"]
    assert run([*same, "-o", str(tmp_path / "b.mp4")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["fixed_ranges"] == [] and result["frame_offset"] == 0
    # --offset takes whole frames or 'auto'; anything else is a one-line error, and nothing is written
    with pytest.raises(ConfigError, match="--offset '1.5': give a whole number"):
        run([*same, "-o", str(tmp_path / "c.mp4"), "--offset", "1.5"])
    assert not (tmp_path / "c.mp4").exists()


def test_reference_stills_of_the_swapped_identity_reach_the_texture_choice(bad_swap, tmp_path):
    from plugin.restore import plan_restore
    from synthesis.restore import RestoreConfig

    still = tmp_path / "swapped_identity.png"
    with VideoReader(bad_swap["swap"]) as reader:
        cv2.imwrite(str(still), reader.frame_at(0).image[:, :, ::-1])
    job = RestoreJob(bad_swap["plate"], bad_swap["swap"], tmp_path / "o.mp4", config=RestoreConfig(refine_rounds=0),
                     cache_dir=bad_swap["cache"], references=(still,))
    plan = plan_restore(job)
    try:
        assert plan.texture is not None and [r.name for r in plan.texture.references] == [str(still)]
    finally:
        plan.close()
    # A reference that cannot be read: one line naming it, exit 2, nothing written.
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not a png")
    for bad in (tmp_path / "missing.png", broken):
        proc = subprocess.run([sys.executable, "-m", "plugin", "restore", "--plate", str(bad_swap["plate"]),
                               "--swapped", str(bad_swap["swap"]), "--cache-dir", str(bad_swap["cache"]),
                               "--codec", "ffv1", "--quiet", "--reference", str(bad), "-o", str(tmp_path / "c.mp4")],
                              capture_output=True, text=True, timeout=300,
                              env=dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2])))
        lines = proc.stderr.strip().splitlines()
        assert proc.returncode == 2 and len(lines) == 1 and bad.name in lines[0], proc.stderr
        assert not (tmp_path / "c.mp4").exists()


def test_inputs_that_are_not_the_same_frames_are_refused(tmp_path):
    a = write_demo_clip(tmp_path / "a.mp4", MotionSettings(num_frames=6))
    b = write_demo_clip(tmp_path / "b.mp4", MotionSettings(num_frames=4))
    with pytest.raises(InputError, match="frames"):
        run_restore(RestoreJob(a, b, tmp_path / "o.mp4", cache_dir=tmp_path / "cache"))
    assert not (tmp_path / "o.mp4").exists()
    seq = {}
    for name, stems in (("p", ["f1", "f2"]), ("s", ["f1", "g2"])):
        folder = tmp_path / name
        folder.mkdir()
        for stem in stems:
            cv2.imwrite(str(folder / f"{stem}.png"), np.zeros((32, 32, 3), np.uint8))
        seq[name] = folder
    with pytest.raises(InputError, match="file names"):
        run_restore(RestoreJob(seq["p"], seq["s"], tmp_path / "o2", OutputConfig(codec="png")))
    assert not (tmp_path / "o2").exists()


def test_restore_cli_defaults_match_the_config():
    import argparse

    from plugin.cli import _add_restore_options
    from synthesis.restore import RestoreConfig

    d = RestoreConfig()
    p = argparse.ArgumentParser()
    _add_restore_options(p)
    helps = {a.dest: a.help for a in p._actions}
    assert f"default {d.pose_threshold_deg:g})" in helps["pose_threshold"]
    assert f"default {d.expression_threshold:g})" in helps["expression_threshold"]
    assert f"default {d.ramp_frames})" in helps["ramp"]
    assert f"default {d.refine_rounds})" in helps["loop_rounds"]
    assert f"default {d.garbled_drop:g})" in helps["garbled_drop"]


#: Frames of a short demo clip melted in the swap (a swap model breaking down).
MELTED = (9, 11)


def test_melted_swap_frames_are_found_garbled_and_no_others(tmp_path):
    from plugin.restore import _garbled, detail_agreements
    from synthesis.restore import RestoreConfig, match_tracks

    plate = write_demo_clip(tmp_path / "plate.mp4", MotionSettings(num_frames=16))
    track = run_analysis(plate, cache_dir=tmp_path / "cache").analysis.tracks[0]
    swap = tmp_path / "swap.mp4"
    with VideoReader(plate) as reader, VideoWriter(swap, reader.info, OutputConfig(codec="ffv1"), {}) as writer:
        for fr in reader:
            img = fr.image
            if MELTED[0] <= fr.index <= MELTED[1]:
                img = melt_face(img, track.landmarks[track.row(fr.index)], fr.index)
            writer.write(type(fr)(fr.index, fr.pts, fr.time_base, img))
    st = run_analysis(swap, cache_dir=tmp_path / "cache").analysis.tracks[0]
    (pair,) = match_tracks([track], [st], RestoreConfig().match_min_iou)
    plate_agree, swap_agree = detail_agreements(plate, [track]), detail_agreements(swap, [st])
    flags = _garbled(pair, plate_agree[track.track_id], swap_agree[st.track_id], 0, RestoreConfig().garbled_drop)
    assert set(pair.frame_indices[flags].tolist()) == set(range(MELTED[0], MELTED[1] + 1))


#: The report's "after" yaw on the wrongly turned frames comes this close to the plate's yaw.
REPORT_TARGET_DEG = 0.5


@SLOW
def test_qc_report_shows_the_swap_before_and_the_plates_pose_after(restored, bad_swap, tmp_path):
    from plugin.report import write_restore_report

    summary, _ = restored
    index = write_restore_report(tmp_path / "qc", summary)
    rep = json.loads((tmp_path / "qc" / "report.json").read_text())
    assert index.is_file() and "Face 0" in index.read_text()
    face = rep["faces"][0]
    plate = summary.plan.plate.analysis.tracks[0]
    mid = (TURNED[0] + TURNED[1]) // 2
    yaw = face["angles_deg"]["yaw"]
    assert abs(yaw["before"][mid] - float(plate.angles[plate.row(mid), 0])) > POSE_BEFORE_MIN_DEG
    assert abs(yaw["after"][mid] - float(plate.angles[plate.row(mid), 0])) < REPORT_TARGET_DEG
    assert rep["summary"]["fixed_ranges"][0]["frames"][0] <= TURNED[0]
    assert "restore" in face["strengths"] and rep["thumbnails"]


def test_a_swap_two_frames_late_is_warned_about(bad_swap, tmp_path, caplog):
    """The same frame count, but the swap runs two frames behind the plate: restore would
    "repair" every change of motion two frames off, so it says so (synthesis/frame_offset.py)."""
    import logging

    from plugin.restore import plan_restore
    from synthesis.restore import RestoreConfig
    from tests.plugin.media import write_clip

    with VideoReader(bad_swap["plate"]) as reader:
        images = [f.image for f in reader]
    late = write_clip(tmp_path / "late.mkv", codec="ffv1", pix_fmt="bgr0", images=images[:2] + images[:-2])
    quick = RestoreConfig(refine_rounds=0)
    for swap, lag in ((late, 2), (bad_swap["plate"], 0)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="plugin.restore"):
            plan = plan_restore(RestoreJob(bad_swap["plate"], swap, tmp_path / "o.mkv", config=quick,
                                           cache_dir=bad_swap["cache"], texture=None))
        plan.close()
        (offset,) = plan.offsets.values()
        assert offset.lag == lag and offset.suspect == (lag != 0)
        warned = [r.getMessage() for r in caplog.records if "frame by frame" in r.getMessage()]
        assert warned == ([] if lag == 0 else [warned[0]]) and (lag == 0 or "2 frames later" in warned[0])


def test_a_late_swap_is_compared_frame_for_frame_with_an_offset(bad_swap, tmp_path, caplog):
    """--offset N (or auto) compares the plate's frame F with the swap's frame F+N: a swap that is
    the plate two frames late then matches it on every frame it shows, and the restore is
    measured against the plate's renumbered tracks."""
    import logging

    from plugin.restore import plan_restore
    from synthesis.restore import RestoreConfig
    from tests.plugin.media import write_clip

    with VideoReader(bad_swap["plate"]) as reader:
        images = [f.image for f in reader]
    late = write_clip(tmp_path / "late.mkv", codec="ffv1", pix_fmt="bgr0", images=images[:2] + images[:-2])
    quick = RestoreConfig(refine_rounds=0)
    divergence = {}
    for offset, auto in ((0, False), (2, False), (0, True)):
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="plugin.restore"):
            plan = plan_restore(RestoreJob(bad_swap["plate"], late, tmp_path / "o.mkv", config=quick, texture=None,
                                           cache_dir=bad_swap["cache"], offset=offset, auto_offset=auto))
        plan.close()
        (r,) = plan.restores
        (seen,) = plan.offsets.values()
        warned = [m.getMessage() for m in caplog.records if "frame by frame" in m.getMessage()]
        if offset == 0 and not auto:
            assert plan.offset == 0 and seen.suspect and "--offset 2" in warned[0]
        else:
            assert plan.offset == 2 and not seen.suspect and not warned
            # frames 2.. of the swap show plate frames 0..: every compared frame has a plate frame
            assert r.pair.frame_indices.min() >= 2
            pt = plan.plate_tracks[r.pair.plate_id]
            assert np.array_equal(pt.frame_indices[r.pair.plate_rows], r.pair.frame_indices)
        divergence[(offset, auto)] = float(np.abs(r.angle_diff).max())
    # lined up, the swap IS the plate: what is left is the landmarker's noise on identical pixels
    assert divergence[(2, False)] < 0.2 * divergence[(0, False)]
    assert divergence[(0, True)] == divergence[(2, False)]
