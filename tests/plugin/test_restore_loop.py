"""The restore's closed loop on real frames: render, re-detect with MediaPipe, add the shortfall.

Two frames of the LivePortrait fixture get a planned expression edit through the edit engine's
planner (brows raised, a smile: the kind of change a restore plans, and one a warp lands short
of); :func:`plugin.restore_loop.refine_plan` must bring the change the re-detected face shows closer
to the planned change.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from plugin.edit_job import resolve_deltas
from plugin.editing import RenderConfig
from plugin.editlist import schedule_from_specs
from plugin.restore_loop import refine_plan
from plugin.video import VideoReader
from plugin.writer import OutputConfig, VideoWriter
from synthesis.plan import FacePlan, plan_track
from synthesis.regions import inter_ocular
from synthesis.restore import RestoreConfig
from tracking.landmarker import Landmarker, LandmarkerConfig

FIXTURES = Path(__file__).resolve().parents[2] / ".." / "shared" / "fixtures"
FRAMES = 2
EDIT = ("brow_raise=0.8", "smile=0.6")
#: The loop's correction reaches at least this somewhere (pixels; the frames are 512 wide).
LOOP_MIN_ACTION_PX = 0.1
#: The loop must leave less of the shortfall than the open-loop plan (on the points the plan moves,
#: and on the mean change of brows, lids, lips and irises). On these two frames the warp already
#: shows most of this edit (the shortfall is 0.005-0.009 inter-ocular distances, near the
#: detector's noise), so no large gain is asked; bench/restore.py measures the gain on the
#: synthetic bad swaps. Without the loop's mesh smoothing the moved points' shortfall got worse
#: here (0.0088 -> 0.0099), which this test catches.
LOOP_SHORTFALL_FRACTION = 1.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray, np.ndarray]:
    src = FIXTURES / "liveportrait_d0.mp4"
    if not src.is_file():
        pytest.skip(f"{src} not found (the shared fixtures are needed for a real face)")
    out = tmp_path_factory.mktemp("loop") / "clip.mp4"
    lms, bss = [], []
    with VideoReader(src) as reader, VideoWriter(out, reader.info, OutputConfig(codec="ffv1"), {}) as writer, \
            Landmarker(LandmarkerConfig(running_mode="image", recover_missing=False)) as lm:
        for fr in reader:
            if fr.index >= FRAMES:
                break
            writer.write(fr)
            face = lm.detect_image(fr.image)[0]
            lms.append(face.landmarks)
            bss.append(face.blendshapes)
    return out, np.stack(lms).astype(np.float32), np.stack(bss).astype(np.float32)


def _plan(before: np.ndarray, blendshapes: np.ndarray) -> FacePlan:
    n = len(before)
    frames = np.arange(n, dtype=np.int64)
    schedule = schedule_from_specs([f"{e}@0-{n - 1}" for e in EDIT], 0, n)
    plan = plan_track(0, frames, frames / 25.0, np.zeros(n, np.int32), before, blendshapes, np.ones(n), schedule,
                      resolve_deltas(schedule.delta_names()))
    return dataclasses.replace(plan, strengths={"restore": np.ones(n)})


def test_closed_loop_brings_the_detected_change_closer_to_the_plan(clip):
    path, before, blendshapes = clip
    plan = _plan(before, blendshapes)
    assert plan.frame_indices.size == FRAMES
    with VideoReader(path) as r:
        size = (r.info.height, r.info.width)
    calls: list[tuple[int, int]] = []
    refined, stats = refine_plan(path, plan, RestoreConfig(refine_rounds=2), RenderConfig(device="cpu"), size,
                                 progress=lambda done, total: calls.append((done, total)))
    assert stats["frames_refined"] == FRAMES
    assert calls[-1] == (FRAMES, FRAMES) and [d for d, _ in calls] == sorted(d for d, _ in calls)
    assert stats["shortfall_iod_after"] < LOOP_SHORTFALL_FRACTION * stats["shortfall_iod_before"]
    assert stats["feature_shortfall_iod_after"] <= LOOP_SHORTFALL_FRACTION * stats["feature_shortfall_iod_before"]
    extra = refined.after - plan.after
    # the loop acted, moved no landmark beyond the cap, and left depth and the input landmarks alone
    assert np.abs(extra[..., :2]).max() > LOOP_MIN_ACTION_PX
    iod = np.array([inter_ocular(b) for b in before])
    cap = RestoreConfig().refine_max_iod * iod
    assert (np.linalg.norm(extra[..., :2], axis=2).max(axis=1) <= cap * (1 + 1e-4)).all()
    assert np.all(extra[..., 2] == 0)
    np.testing.assert_array_equal(refined.before, plan.before)

