"""The two passes of deltaface (DESIGN.md): analysis (decode, track, invert) and render.

Orchestration only: this module moves frames between the reader, a short list of stages and the
writer, and keeps frame order. It holds no maths. The render pass is the same whether the stage
list is empty (pass-through) or holds the edit stages that synthesis/ and compositing/ provide.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from plugin.deep import DeepSources
from plugin.heap import keep_freed_memory
from plugin.overlap import BackgroundSink, Prefetch, ordered_map
from plugin.provenance import build_provenance
from plugin.ranges import FrameRange
from plugin.video import VideoReader
from plugin.writer import OutputConfig, VideoWriter
from tracking.frame import Frame
from tracking.stage import Stage

#: Threads the stages run on when they allow it (the machines deltaface targets have 2 cores).
STAGE_WORKERS = 2
#: Called after each written frame with (frames written, total frames or None).
ProgressCallback = Callable[[int, "int | None"], None]


@dataclass(frozen=True)
class RenderJob:
    """What one render pass reads, writes and touches.

    Attributes:
        input: the source video (or image-sequence folder); opened read-only.
        output: the final output path (a folder for png output).
        output_config: codec and quality settings.
        frames: the frames edits may touch; frames outside are passed through untouched.
            ``None`` means the whole clip.
        allow_truncated: keep going (and succeed) when the input ends early or has corrupt data.
    """

    input: Path
    output: Path
    output_config: OutputConfig = field(default_factory=OutputConfig)
    frames: FrameRange | None = None
    allow_truncated: bool = False


@dataclass(frozen=True)
class RenderSummary:
    """What a render pass did.

    ``busy_seconds``: time spent decoding, in each stage (by class name) and encoding. Decoding
    and encoding run on their own threads, so these overlap and may sum to more than ``seconds``.
    ``cpu_seconds``: the process's CPU time over the pass, all threads (encoder threads included).
    """

    input: Path
    output: Path
    frames_read: int
    frames_written: int
    edited_ranges: list[tuple[int, int]]
    truncated_at: int | None
    seconds: float
    busy_seconds: Mapping[str, float] = field(default_factory=dict)
    cpu_seconds: float = float("nan")

    @property
    def fps(self) -> float:
        return self.frames_written / self.seconds if self.seconds > 0 else float("nan")


class StageChain:
    """Runs frames through stages in order, keeping presentation order at the end.

    The chain's latency is the sum of its stages' latencies; ``flush`` drains them in order.
    ``seconds`` accumulates each stage's busy time in :meth:`push` (summed over threads when
    frames go through on several at once).
    """

    def __init__(self, stages: Sequence[Stage[Frame, Frame]]) -> None:
        self.stages = list(stages)
        self.latency = sum(s.latency for s in self.stages)
        #: Busy seconds per stage, keyed by class name (numbered when a class repeats).
        self.keys = [type(s).__name__ if [type(t) for t in self.stages].count(type(s)) == 1
                     else f"{type(s).__name__}{i}" for i, s in enumerate(self.stages)]
        self.seconds = dict.fromkeys(self.keys, 0.0)
        #: Whether frames may go through the chain on several threads at once.
        self.parallel_safe = bool(self.stages) and all(
            getattr(s, "parallel_safe", False) and s.latency == 0 for s in self.stages)
        self._lock = threading.Lock()

    def push(self, frame: Frame) -> list[Frame]:
        ready = [frame]
        for key, stage in zip(self.keys, self.stages):
            t0 = time.perf_counter()
            nxt: list[Frame] = []
            for item in ready:
                nxt.extend(stage.push(item))
            ready = nxt
            with self._lock:
                self.seconds[key] += time.perf_counter() - t0
        return ready

    def flush(self) -> list[Frame]:
        ready: list[Frame] = []
        for stage in self.stages:
            nxt: list[Frame] = []
            for item in ready:
                nxt.extend(stage.push(item))
            nxt.extend(stage.flush())
            ready = nxt
        return ready

    def reset(self) -> None:
        for stage in self.stages:
            stage.reset()


def run_render(
    job: RenderJob,
    stages: Sequence[Stage[Frame, Frame]] = (),
    *,
    edited_ranges: Sequence[tuple[int, int]] = (),
    edited_by_face: Mapping[int, Sequence[Sequence[int]]] | None = None,
    progress: ProgressCallback | None = None,
    workers: int = STAGE_WORKERS,
) -> RenderSummary:
    """Decode ``job.input``, run every frame through ``stages``, encode to ``job.output``.

    With no stages this is the pass-through pipeline: every frame is re-encoded unchanged, with
    the input's pts and time base, its audio and other streams copied packet for packet.

    Args:
        job: input, output and settings.
        stages: render stages (``Stage[Frame, Frame]``); each must return every frame it is given,
            in order, with its ``index`` and ``pts`` unchanged, and change a frame's ``image`` only
            in a copy (a source of more than 8 bits a sample is encoded from its 16-bit image
            plus the difference the stages made, ``plugin.deep``).
        edited_ranges: inclusive frame ranges in which faces are edited, for the provenance tag.
        edited_by_face: the same per face id, for the provenance tag.
        progress: optional callback after each written frame.
        workers: threads the stages run on when every stage is ``parallel_safe`` (stateless per
            frame, latency 0): several frames are edited at once, in order.

    Returns:
        A summary of the pass.

    Raises:
        InputError: the input is missing or not a video.
        TruncatedInputError: the input ends early and ``job.allow_truncated`` is false; nothing is
            left under the output name.
        OutputError: the output exists (without overwrite) or cannot be written.
    """
    started, started_cpu = time.perf_counter(), time.process_time()
    keep_freed_memory()  # per-frame buffers reused, not mapped and faulted in again (plugin/heap.py)
    chain = StageChain(stages)
    clock = _Clock()
    written = 0
    with VideoReader(job.input, allow_truncated=job.allow_truncated) as reader:
        info = reader.info
        if job.frames is not None and info.num_frames is not None:
            job.frames.check_within(info.num_frames, str(job.input))
        provenance = build_provenance(edited_ranges, by_face=edited_by_face, source=job.input)
        with VideoWriter(job.output, info, job.output_config, provenance) as writer:
            # Decoding and encoding run on their own threads (plugin/overlap.py): the encoder
            # alone keeps only part of two cores busy.
            # A source of more than 8 bits a sample is also read as 16-bit RGB when the output
            # holds more than 8 (plugin/deep.py): each frame waits, by index, for the writer to
            # encode its 16-bit image with the stages' change added.
            sources = DeepSources()

            def read() -> Iterator[Frame]:
                decoded = clock.timed_iter(reader.frames(deep=writer.deep))
                try:
                    yield from map(sources.keep, decoded)
                finally:
                    decoded.close()  # a stop mid-clip releases the decoder on this thread

            def encode(out: Frame) -> None:
                writer.write(sources.carry(out))

            with Prefetch(read()) as frames, BackgroundSink(clock.timed_call(encode)) as sink:

                def write(ready: list[Frame]) -> None:
                    nonlocal written
                    for out in ready:
                        _check_order(out, written)
                        sink.put(out)
                        written += 1
                        if progress is not None:
                            progress(written, info.num_frames)

                if chain.parallel_safe and workers > 1:
                    with _one_torch_thread():
                        for ready in ordered_map(chain.push, frames, workers=workers):
                            write(ready)
                else:
                    for frame in frames:
                        write(chain.push(frame))
                write(chain.flush())
        frames_read = reader.frames_read
        truncated_at = reader.truncated_at
    return RenderSummary(
        input=job.input,
        output=job.output,
        frames_read=frames_read,
        frames_written=written,
        edited_ranges=[tuple(r) for r in edited_ranges],
        truncated_at=truncated_at,
        seconds=time.perf_counter() - started,
        busy_seconds={"decode": clock.seconds["decode"], **chain.seconds, "encode": clock.seconds["encode"]},
        cpu_seconds=time.process_time() - started_cpu,
    )


@contextlib.contextmanager
def _one_torch_thread() -> Iterator[None]:
    """Torch's intra-op threads set to 1 while the stages run on several worker threads, then
    restored. Two edit workers with two torch threads each oversubscribe two cores:
    ``bench/perf.py`` (1080p, one edited face) measured 0.555 of the pass-through speed with
    ``OMP_NUM_THREADS=2`` against 0.599 with 1. Torch is only touched when a stage loaded it."""
    torch = sys.modules.get("torch")
    if torch is None:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


class _Clock:
    """Busy seconds of decoding and encoding (each on its own worker thread)."""

    def __init__(self) -> None:
        self.seconds = {"decode": 0.0, "encode": 0.0}

    def timed_iter(self, source: Iterable[Frame]) -> Iterator[Frame]:
        it = iter(source)
        try:
            while True:
                t0 = time.perf_counter()
                try:
                    item = next(it)
                except StopIteration:
                    return
                finally:
                    self.seconds["decode"] += time.perf_counter() - t0
                yield item
        finally:
            close = getattr(it, "close", None)
            if callable(close):
                close()

    def timed_call(self, fn: Callable[[Frame], None]) -> Callable[[Frame], None]:
        def call(item: Frame) -> None:
            t0 = time.perf_counter()
            fn(item)
            self.seconds["encode"] += time.perf_counter() - t0
        return call


def _check_order(frame: Frame, expected: int) -> None:
    if frame.index != expected:
        raise RuntimeError(
            f"render stage returned frame {frame.index} where frame {expected} was due: "
            "stages must keep presentation order"
        )
