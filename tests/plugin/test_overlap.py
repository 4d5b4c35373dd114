"""Worker threads of the render pass: order, bounded look-ahead, errors and early stops."""

from __future__ import annotations

import threading
import time

import pytest

from plugin.overlap import BackgroundSink, Prefetch
from tracking.errors import ConfigError, InputError

#: Seconds a test waits for a worker to reach a state before failing.
WAIT_S = 5.0


class _Stage:
    """A render stage that passes each frame on (:meth:`work` sees it first)."""

    latency = 0
    parallel_safe = False

    def work(self, frame) -> None:
        pass

    def push(self, frame):
        self.work(frame)
        return [frame]

    def flush(self):
        return []

    def reset(self) -> None:
        pass


def _wait_for(predicate, timeout: float = WAIT_S) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.005)
    return predicate()


def test_prefetch_keeps_order_and_ends():
    assert list(Prefetch(iter(range(100)), depth=3)) == list(range(100))


def test_prefetch_reads_at_most_depth_ahead():
    produced = []

    def source():
        for i in range(50):
            produced.append(i)
            yield i

    with Prefetch(source(), depth=3) as it:
        assert next(it) == 0
        # 1..3 queued, one more held by the blocked worker: never the whole clip.
        assert _wait_for(lambda: len(produced) >= 4)
        time.sleep(0.1)
        assert len(produced) <= 1 + 3 + 1


def test_prefetch_raises_the_source_error_at_its_position():
    def source():
        yield 0
        yield 1
        raise InputError("clip.mp4: corrupt at frame 2")

    got = []
    with pytest.raises(InputError, match="frame 2"):
        for item in Prefetch(source()):
            got.append(item)
    assert got == [0, 1]


def test_prefetch_close_stops_the_worker_and_closes_the_source():
    closed = threading.Event()

    def source():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = Prefetch(source(), depth=2)
    assert next(it) == 0
    it.close()
    assert closed.is_set()
    assert list(it) == []


def test_sink_consumes_everything_in_order():
    seen: list[int] = []
    with BackgroundSink(seen.append, depth=2) as sink:
        for i in range(200):
            sink.put(i)
    assert seen == list(range(200))


def test_sink_error_reaches_the_producer():
    def consume(item: int) -> None:
        if item == 3:
            raise OSError("disk full")

    sink = BackgroundSink(consume, depth=1)
    with pytest.raises(OSError, match="disk full"):
        for i in range(1000):
            sink.put(i)
        sink.finish()
    sink.close()


def test_sink_close_on_error_drops_the_rest():
    seen: list[int] = []
    gate = threading.Event()

    def consume(item: int) -> None:
        gate.wait(WAIT_S)
        seen.append(item)

    threading.Timer(0.2, gate.set).start()  # lets the item in hand finish after close() began
    with pytest.raises(KeyboardInterrupt):
        with BackgroundSink(consume, depth=4) as sink:
            for i in range(4):
                sink.put(i)
            raise KeyboardInterrupt
    assert len(seen) <= 1  # the worker stopped instead of draining the queue


@pytest.mark.parametrize("cls", [Prefetch, BackgroundSink])
def test_depth_must_be_positive(cls):
    with pytest.raises(ConfigError):
        cls(iter(()) if cls is Prefetch else (lambda x: None), depth=0)


def test_ordered_map_keeps_order_under_uneven_work():
    from plugin.overlap import ordered_map

    def slow_for_even(i: int) -> int:
        if i % 2 == 0:
            time.sleep(0.002)
        return i * i

    assert list(ordered_map(slow_for_even, range(60), workers=2, depth=4)) == [i * i for i in range(60)]


def test_ordered_map_raises_at_the_failing_item():
    from plugin.overlap import ordered_map

    def fail_at_5(i: int) -> int:
        if i == 5:
            raise ValueError("frame 5")
        return i

    got = []
    with pytest.raises(ValueError, match="frame 5"):
        for x in ordered_map(fail_at_5, range(20), workers=2, depth=3):
            got.append(x)
    assert got == [0, 1, 2, 3, 4]


def test_edits_on_two_threads_equal_edits_on_one(tmp_path):
    """The render pass edits two frames at once when its stages allow it; the output must be
    bit-identical (FFV1) to editing one frame at a time."""
    import numpy as np

    from plugin.demo import astronaut_image
    from plugin.editing import EditStage
    from plugin.pipeline import RenderJob, run_render
    from plugin.video import VideoReader
    from plugin.writer import OutputConfig
    from synthesis.plan import FacePlan
    from tests.plugin.media import write_clip
    from tracking.landmarker import Landmarker, LandmarkerConfig

    still = astronaut_image()
    with Landmarker(LandmarkerConfig(running_mode="image")) as lm:
        (face,) = lm.detect_image(still)
    n = 8
    clip = write_clip(tmp_path / "clip.mkv", images=[np.roll(still, 2 * i, axis=1) for i in range(n)],
                      width=still.shape[1], height=still.shape[0], codec="ffv1", pix_fmt="bgr0")
    before = np.stack([face.landmarks + [2.0 * i, 0.0, 0.0] for i in range(n)]).astype(np.float32)
    after = before.copy()
    after[:, [61, 291], 0] += np.array([-6.0, 6.0])  # widen the mouth on every frame
    plan = FacePlan(track_id=0, frame_indices=np.arange(n), times=np.arange(n) / 25.0,
                    segments=np.zeros(n, np.int32), before=before, after=after)
    outs = {}
    for workers in (1, 2):
        out = tmp_path / f"out{workers}.mkv"
        run_render(RenderJob(clip, out, OutputConfig(codec="ffv1")), [EditStage([plan], still.shape[:2])],
                   workers=workers)
        with VideoReader(out) as r:
            outs[workers] = [f.image for f in r]
    assert len(outs[1]) == n and not np.array_equal(outs[1][0], np.roll(still, 0, axis=1))
    assert all(np.array_equal(a, b) for a, b in zip(outs[1], outs[2], strict=True))


def test_stages_on_worker_threads_run_torch_on_one_thread(tmp_path):
    """Two edit workers with torch's default intra-op threads would oversubscribe the cores:
    while the stages run on several workers torch uses one thread, and gets its setting back."""
    import numpy as np
    import torch

    from plugin.pipeline import RenderJob, run_render
    from plugin.writer import OutputConfig
    from tests.plugin.media import write_clip

    class Probe(_Stage):
        parallel_safe = True

        def __init__(self) -> None:
            self.seen: set[int] = set()

        def work(self, frame) -> None:
            self.seen.add(torch.get_num_threads())

    clip = write_clip(tmp_path / "clip.mkv", images=[np.zeros((32, 32, 3), np.uint8)] * 4, width=32, height=32,
                      codec="ffv1", pix_fmt="bgr0")
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        for workers, expect in ((2, {1}), (1, {2})):
            probe = Probe()
            run_render(RenderJob(clip, tmp_path / f"o{workers}.mkv", OutputConfig(codec="ffv1")), [probe],
                       workers=workers)
            assert probe.seen == expect
            assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_render_summary_counts_the_pass_cpu_time(tmp_path):
    """``RenderSummary.cpu_seconds`` holds the CPU the stages spent (bench/perf.py reads the
    render pass's cores from it): a stage that burns 40 ms of CPU a frame on 4 frames shows."""
    import numpy as np

    from plugin.pipeline import RenderJob, run_render
    from plugin.writer import OutputConfig
    from tests.plugin.media import write_clip

    class Burn(_Stage):
        def work(self, frame) -> None:
            end = time.process_time() + 0.04
            while time.process_time() < end:
                pass

    clip = write_clip(tmp_path / "clip.mkv", images=[np.zeros((32, 32, 3), np.uint8)] * 4, width=32, height=32,
                      codec="ffv1", pix_fmt="bgr0")
    summary = run_render(RenderJob(clip, tmp_path / "o.mkv", OutputConfig(codec="ffv1")), [Burn()])
    assert summary.frames_written == 4
    assert 0.16 <= summary.cpu_seconds < 0.16 + 2 * summary.seconds + 1.0
