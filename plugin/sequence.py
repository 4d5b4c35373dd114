"""PNG-sequence outputs updated in place: re-render some frames, or resume an interrupted render.

A PNG output is a folder of one file per frame plus ``provenance.json`` (:mod:`plugin.writer`).
Both operations here write each file under a temporary name in the same folder and rename it into
place, so a file is always either its old or its new complete version:

* :func:`rerender_png` renders frames ``A..B`` again into an existing output folder; every other
  file keeps its bytes and its modification time, and ``provenance.json`` is spliced
  (:func:`plugin.smartrender.splice_provenance`).
* :func:`resume_png` picks up a render that was killed before it finished. Such a render leaves
  its hidden temporary folder beside the output (``.NAME.deltaface-tmp-XXXXXXXX``; Ctrl-C and
  SIGTERM remove it, a kill or a power cut cannot). The frames written form a prefix; the last
  :data:`RESUME_VERIFY_FILES` of them are decoded, a damaged one (the file being written when the
  process died) and everything after it is written again, and the render continues from there.
  Files already verified are not rewritten.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import av

from plugin.output import TEMP_MARKER, AtomicOutput, check_output_path, temp_path_for, temp_paths
from plugin.pipeline import ProgressCallback, StageChain
from plugin.provenance import PROVENANCE_FILE, build_provenance, read_provenance, write_provenance_file
from plugin.smartrender import splice_provenance
from plugin.video import VideoInfo, VideoReader
from plugin.writer import PngFrameEncoder
from tracking.errors import ConfigError, OutputError
from tracking.frame import Frame
from tracking.stage import Stage

#: How many of the last files of an interrupted render are decoded before resuming after them.
#: The writer writes one file at a time, in frame order, so only the last can be incomplete; two
#: also cover a file system that flushed them out of order.
RESUME_VERIFY_FILES = 2
#: A complete PNG file ends with its IEND chunk (length 0, type, CRC); FFmpeg decodes some
#: truncated files without an error, so the end is checked too.
_PNG_END = b"\x00\x00\x00\x00IEND\xaeB`\x82"


@dataclass(frozen=True)
class SequenceResult:
    """What an in-place update of a PNG folder did.

    Attributes:
        output: the folder.
        files_written: PNG files written (renamed into place).
        frames_kept: frames whose files were left as they were.
        first_frame: first frame rendered.
        seconds: wall time.
        resumed_from: for a resume, the temporary folder continued.
    """

    output: Path
    files_written: int
    frames_kept: int
    first_frame: int
    seconds: float
    resumed_from: Path | None = None


def _write_atomic(folder: Path, name: str, data: bytes) -> None:
    tmp = temp_path_for(folder / name)
    try:
        with open(tmp, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / name)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{folder / name}: cannot write ({e.strerror or e})") from e


def _render_into(folder: Path, info: VideoInfo, stages: Sequence[Stage[Frame, Frame]], start: int, stop: int,
                 pix_fmt: str, progress: ProgressCallback | None = None) -> int:
    """Render frames ``start..stop-1`` and write their PNG files into ``folder``; returns the count."""
    encoder = PngFrameEncoder(info, pix_fmt)
    chain = StageChain(stages)
    written = 0

    def put(frames: list[Frame]) -> None:
        nonlocal written
        for f in frames:
            _write_atomic(folder, encoder.file_name(f.index), encoder.encode(f))
            written += 1
            if progress is not None:
                progress(written, stop - start)

    with VideoReader(info.path) as reader:
        for frame in reader.frames(start, stop):
            put(chain.push(frame))
        put(chain.flush())
    if written != stop - start:
        raise OutputError(f"{folder}: wrote {written} frames for frames {start}-{stop - 1}")
    return written


def rerender_png(
    folder: Path,
    info: VideoInfo,
    stages: Sequence[Stage[Frame, Frame]],
    start: int,
    end: int,
    tag: Mapping[str, Any],
    *,
    pix_fmt: str = "rgb24",
    progress: ProgressCallback | None = None,
) -> SequenceResult:
    """Render frames ``start..end`` (inclusive) again into an existing PNG output folder.

    Args:
        folder: the previous output (written by deltaface: it holds ``provenance.json`` and one
            file per frame of ``info``).
        info: the input clip.
        stages: render stages (stateless per frame, or at least not depending on earlier frames).
        start, end: the frames to render again.
        tag: provenance of the new render as a whole (spliced with the folder's over the range).
        pix_fmt: the PNG pixel format of the output.

    Raises:
        OutputError: the folder is not a complete deltaface PNG output of this clip, or a file
            cannot be written (files already replaced stay replaced; each is complete).
    """
    started = time.perf_counter()
    if not (folder / PROVENANCE_FILE).is_file():
        raise OutputError(f"{folder}: not a PNG output written by deltaface (no {PROVENANCE_FILE})")
    names = PngFrameEncoder(info, pix_fmt)
    missing = [i for i in range(info.num_frames) if not (folder / names.file_name(i)).is_file()]
    if missing:
        raise OutputError(f"{folder}: frame {missing[0]} ({names.file_name(missing[0])}) is missing; "
                          "render the whole clip again")
    old = read_provenance(folder)
    written = _render_into(folder, info, stages, start, end + 1, pix_fmt, progress)
    text_tag = splice_provenance(old, tag, [[start, end]])
    tmp = temp_path_for(folder / PROVENANCE_FILE)
    tmp.mkdir()
    try:
        write_provenance_file(tmp, text_tag)
        os.replace(tmp / PROVENANCE_FILE, folder / PROVENANCE_FILE)
    finally:
        for p in tmp.iterdir():
            p.unlink()
        tmp.rmdir()
    return SequenceResult(folder, written, info.num_frames - written, start, time.perf_counter() - started)


def find_interrupted(output: Path) -> list[Path]:
    """Temporary folders an interrupted PNG render to ``output`` left beside it, newest first."""
    found = [p for p in temp_paths(output.absolute()) if p.is_dir()]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def _decodes(path: Path, info: VideoInfo) -> bool:
    """Whether ``path`` is a complete PNG of the clip's size."""
    try:
        with av.open(str(path), mode="r") as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    except (av.error.FFmpegError, OSError, ValueError):
        return False
    return (len(frames) == 1 and frames[0].shape == (info.height, info.width, 3)
            and path.read_bytes().endswith(_PNG_END))


def verified_prefix(temp: Path, info: VideoInfo, pix_fmt: str = "rgb24") -> int:
    """How many frames of an interrupted render in ``temp`` are complete (see the module docstring).

    Raises:
        OutputError: the folder holds files that are not frames of this clip.
    """
    names = PngFrameEncoder(info, pix_fmt)
    expected = {names.file_name(i): i for i in range(info.num_frames)}
    present = set()
    for p in temp.iterdir():
        if TEMP_MARKER in p.name:  # a half-written file of an atomic write: not a frame
            continue
        if p.name == PROVENANCE_FILE:
            continue
        if p.name not in expected or not p.is_file() or p.is_symlink():
            raise OutputError(f"{temp}: holds {p.name!r}, which is no frame of {info.path.name}; "
                              "it is not an interrupted render of this clip")
        present.add(expected[p.name])
    n = 0
    while n in present:
        n += 1
    verified = n
    for i in range(n - 1, max(n - 1 - RESUME_VERIFY_FILES, -1), -1):
        if not _decodes(temp / names.file_name(i), info):
            verified = i
    return verified


def resume_png(
    output: Path,
    info: VideoInfo,
    stages: Sequence[Stage[Frame, Frame]],
    *,
    edited_ranges: Sequence[Sequence[int]] = (),
    edited_by_face: Mapping[int, Sequence[Sequence[int]]] | None = None,
    overwrite: bool = False,
    pix_fmt: str = "rgb24",
    progress: ProgressCallback | None = None,
) -> SequenceResult | None:
    """Continue an interrupted PNG render of ``info`` to ``output`` (module docstring).

    Args:
        output: the final output folder of the interrupted render.
        info: the input clip.
        stages: the same render stages the interrupted render ran.
        edited_ranges, edited_by_face: for the provenance tag (as :func:`plugin.pipeline.run_render`).
        overwrite: replace an existing output folder at the end.

    Returns:
        What was written, or None when there is no interrupted render to resume.

    Raises:
        OutputError: the output exists (without ``overwrite``), or the temporary folder holds
            files that are not this clip's frames.
    """
    started = time.perf_counter()
    check_output_path(output, overwrite=overwrite, inputs=[info.path], is_folder=True)
    found = find_interrupted(output)
    if not found:
        return None
    temp = found[0]
    done = verified_prefix(temp, info, pix_fmt)
    for i in range(done, info.num_frames):  # a damaged file, or files past a gap: written again
        (temp / PngFrameEncoder(info, pix_fmt).file_name(i)).unlink(missing_ok=True)
    written = _render_into(temp, info, stages, done, info.num_frames, pix_fmt, progress) \
        if done < info.num_frames else 0
    tag = build_provenance(edited_ranges, by_face=edited_by_face, source=info.path)
    write_provenance_file(temp, tag)
    atomic = AtomicOutput(output, overwrite=overwrite, inputs=[info.path], is_folder=True)
    atomic.temp.rmdir()
    atomic.temp = temp
    atomic.commit()
    return SequenceResult(output.absolute(), written, done, done, time.perf_counter() - started, temp)


def check_resumable(codec: str) -> None:
    """Raise ConfigError unless renders of this codec can be resumed (only PNG sequences can)."""
    if codec != "png":
        raise ConfigError(f"--resume continues PNG (image-sequence) renders only, not {codec}: a video "
                          "file cut off mid-way cannot be continued; render it again")
