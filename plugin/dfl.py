"""DeepFaceLab workspace adapter: repair DFL's merged frames in place of its own folders' copies.

DeepFaceLab runs on its own pinned Python; deltaface integrates by files only (FACTS.md). In a
workspace (``WORKSPACE/data_dst.*`` video, ``WORKSPACE/data_dst/`` frames):

- ``data_dst/`` frames are the plate; ``data_dst/merged/`` the swapped frames (same stems);
  ``data_dst/merged_mask/`` where DFL composited the swap (single-channel PNG, same stems);
- ``data_dst/aligned/{stem}_{i}.jpg`` carry DFL's metadata as a pickled dict in a JPEG APP15
  segment. It is read with :class:`RestrictedUnpickler`, which resolves only the globals numpy's
  array, dtype and scalar pickles name (and ``_codecs.encode``, which protocol-2 pickles use for
  bytes), each to a checked stand-in that builds plain numeric arrays from raw bytes (numpy's own
  ``__setstate__`` trusts its input: fuzzed pickles reached its internal errors); any other
  global (``os.system``, ``builtins.eval``, ...) is refused with :class:`HostFormatError` before
  anything of the pickle runs, and so is any value that is not plain data. ``source_landmarks`` (68 frame points) say which plate face DFL
  swapped in which frame; only those faces are restored;
- :func:`fix_workspace` writes ``data_dst/merged_deltaface/`` (PNG, the same stems, count and
  resolution as ``merged/``, plus ``provenance.json``) and ``data_dst/merged_mask_deltaface/``:
  per frame the union (per-pixel maximum) of DFL's mask and 255 wherever deltaface changed a
  pixel of the merged frame; frames deltaface did not touch get DFL's mask file copied byte for
  byte. DeepFaceLab's own files and folders are only ever opened for reading;
- :func:`encode_video` makes ``result_deltaface.mp4`` from ``merged_deltaface/`` as DFL's
  "merged to mp4" does: sorted frames at the frame rate of ``data_dst.*``, libx264 yuv420p (crf
  given, 0 = lossless), the audio of ``data_dst.*`` copied packet for packet.
"""

from __future__ import annotations

import dataclasses
import io
import logging
import pickle
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import cv2
import numpy as np
from numpy.typing import NDArray

from plugin.output import AtomicOutput, check_output_path
from plugin.probe import IMAGE_SUFFIXES
from plugin.provenance import apply_provenance, build_provenance, write_provenance_file
from plugin.restore import RestoreJob, RestoreSummary, run_restore
from plugin.texture_stage import Reference, load_references
from plugin.video import VideoReader, probe
from plugin.writer import OutputConfig
from tracking.errors import HostFormatError, InputError, OutputError

_log = logging.getLogger(__name__)

MERGED_OUT = "merged_deltaface"
MASK_OUT = "merged_mask_deltaface"
VIDEO_OUT = "result_deltaface.mp4"
#: Containers DFL's ``data_dst.*`` may be.
VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v")
APP15 = 0xEF
#: Most characters of a refused global's name shown in the error (it comes from the file).
MAX_NAME_SHOWN = 80
#: Deepest nesting of containers accepted in the metadata (DFL's is 3 levels deep).
MAX_NESTING = 32
#: Largest aligned JPEG read (DFL's are 256-1024 px faces, tens of kB).
MAX_ALIGNED_BYTES = 32 << 20


class _Refused(ValueError):
    """A numpy stand-in met something that is not a plain numeric array (message: what)."""


class _NdarrayTag:
    """What ``numpy.ndarray`` resolves to inside a DFL pickle: only a tag for ``_reconstruct``."""


class _DtypeStub:
    """A plain numeric dtype, built from the pickle's spec and byte-order state, never by numpy's
    own ``__setstate__`` (which trusts its input)."""

    def __init__(self, spec: Any, align: Any = False, copy: Any = False) -> None:
        if not isinstance(spec, str) or len(spec) > 4:
            raise _Refused(f"dtype spec {str(spec)[:20]!r} is not a plain numeric type")
        dtype = np.dtype(spec)
        if dtype.kind not in "biufc" or dtype.hasobject or dtype.itemsize > 16:
            raise _Refused(f"dtype {spec!r} is not a plain numeric type")
        self.dtype = dtype

    def __setstate__(self, state: Any) -> None:
        order = state[1] if isinstance(state, tuple) and len(state) > 1 else None
        if order in ("<", ">"):
            self.dtype = self.dtype.newbyteorder(order)
        elif order not in ("|", "="):
            raise _Refused(f"dtype byte order {str(order)[:8]!r}")


class _ArrayStub:
    """An array rebuilt from the pickle's shape, dtype and raw bytes (copied, checked sizes)."""

    def __init__(self, cls: Any, shape: Any, typecode: Any) -> None:
        if cls is not _NdarrayTag:
            raise _Refused("_reconstruct of something other than numpy.ndarray")
        self.array: NDArray[Any] | None = None

    def __setstate__(self, state: Any) -> None:
        if not (isinstance(state, tuple) and len(state) == 5):
            raise _Refused("array state is not (version, shape, dtype, fortran, data)")
        _, shape, dtype, fortran, raw = state
        if not (isinstance(shape, tuple) and all(isinstance(d, int) and 0 <= d for d in shape)):
            raise _Refused(f"array shape {str(shape)[:40]!r}")
        if not isinstance(dtype, _DtypeStub):
            raise _Refused("array dtype is not a plain numeric dtype")
        if isinstance(raw, str):
            raw = raw.encode("latin1")
        count = int(np.prod(shape, dtype=np.int64))
        if not isinstance(raw, bytes) or len(raw) != count * dtype.dtype.itemsize:
            raise _Refused("array data size does not match its shape")
        flat = np.frombuffer(raw, dtype=dtype.dtype, count=count)
        self.array = flat.reshape(shape, order="F" if fortran else "C").copy()


def _scalar(dtype: Any, raw: Any) -> Any:
    if not isinstance(dtype, _DtypeStub) or not isinstance(raw, bytes) or len(raw) != dtype.dtype.itemsize:
        raise _Refused("numpy scalar with a bad dtype or size")
    return np.frombuffer(raw, dtype=dtype.dtype, count=1)[0]


def _numpy_globals() -> dict[tuple[str, str], Any]:
    """The globals numpy's pickles name (numpy 1.x and 2.x module paths), each resolved to a
    checked stand-in (numpy's own reconstruction functions trust their input)."""
    import _codecs

    allowed: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NdarrayTag, ("numpy", "dtype"): _DtypeStub,
                                           ("_codecs", "encode"): _codecs.encode}
    for mod in ("numpy.core.multiarray", "numpy._core.multiarray"):
        allowed[(mod, "_reconstruct")] = _ArrayStub
        allowed[(mod, "scalar")] = _scalar
    return allowed


def _resolve(value: Any, where: str, depth: int = 0) -> Any:
    """Replace the stand-ins in an unpickled value by arrays and dtypes; refuse anything else."""
    if depth > MAX_NESTING:
        raise HostFormatError(f"{where}: DFL metadata is nested deeper than {MAX_NESTING} levels")
    if isinstance(value, _ArrayStub):
        if value.array is None:
            raise HostFormatError(f"{where}: DFL metadata holds an array without data")
        return value.array
    if isinstance(value, _DtypeStub):
        return value.dtype
    if isinstance(value, dict):
        return {_resolve(k, where, depth + 1): _resolve(v, where, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return type(value)(_resolve(v, where, depth + 1) for v in value)
    if value is None or isinstance(value, (str, bytes, bytearray, bool, int, float, complex, np.generic)):
        return value
    raise HostFormatError(f"{where}: DFL metadata holds a {type(value).__name__}, not plain data")


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickles plain data and numpy arrays only; every other global is refused.

    Args:
        data: the pickle's bytes.
        where: the file it came from (named in errors).
    """

    _ALLOWED = _numpy_globals()

    def __init__(self, data: bytes, where: str) -> None:
        super().__init__(io.BytesIO(data))
        self.where = where

    def find_class(self, module: str, name: str) -> Any:
        found = self._ALLOWED.get((module, name))
        if found is None:
            what = f"{module}.{name}".encode("unicode_escape").decode("ascii")[:MAX_NAME_SHOWN]
            raise HostFormatError(f"{self.where}: DFL metadata pickle asks for {what}, which is not "
                                  "plain data; refused (nothing in it was run)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise HostFormatError(f"{self.where}: DFL metadata pickle uses persistent ids; refused")


def app15_payload(jpeg: bytes, where: str) -> bytes | None:
    """The first APP15 segment's payload of a JPEG, or None when it has none.

    Raises:
        HostFormatError: not a JPEG, or a segment runs past the end of the file.
    """
    if jpeg[:2] != b"\xff\xd8":
        raise HostFormatError(f"{where}: not a JPEG file")
    i = 2
    while i + 4 <= len(jpeg):
        if jpeg[i] != 0xFF:
            raise HostFormatError(f"{where}: JPEG segment marker expected at byte {i}")
        marker = jpeg[i + 1]
        if marker == 0xFF:
            i += 1
            continue
        if marker in (0xD9, 0xDA):  # end of image, start of scan: no metadata after
            return None
        length = int.from_bytes(jpeg[i + 2:i + 4], "big")
        if length < 2 or i + 2 + length > len(jpeg):
            raise HostFormatError(f"{where}: JPEG segment at byte {i} runs past the end of the file")
        if marker == APP15:
            return jpeg[i + 4:i + 2 + length]
        i += 2 + length
    return None


def read_aligned_metadata(path: Path) -> dict[str, Any] | None:
    """DFL's metadata dict of one aligned face JPEG (None: the file carries none).

    Raises:
        HostFormatError: the file is not a JPEG, or its pickle is not plain data, or not a dict.
    """
    try:
        if path.stat().st_size > MAX_ALIGNED_BYTES:
            raise HostFormatError(f"{path}: larger than {MAX_ALIGNED_BYTES >> 20} MiB; not a DFL aligned face")
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    payload = app15_payload(data, str(path))
    if payload is None:
        return None
    try:
        meta = _resolve(RestrictedUnpickler(payload, str(path)).load(), str(path))
    except HostFormatError:
        raise
    except _Refused as exc:
        raise HostFormatError(f"{path}: DFL metadata holds {exc}; refused (nothing in it was run)") from exc
    except Exception as exc:  # a damaged pickle can raise almost anything from the unpickler
        raise HostFormatError(f"{path}: DFL metadata is not a readable pickle ({type(exc).__name__})") from exc
    if not isinstance(meta, dict):
        raise HostFormatError(f"{path}: DFL metadata is a {type(meta).__name__}, not a dict")
    return meta


@dataclass(frozen=True)
class AlignedFace:
    """One face DFL extracted: the frame it came from and its 68 landmarks there.

    Attributes:
        stem: the frame's file stem (from ``source_filename``, else the aligned file's name).
        landmarks: ``(68, 2)`` float64 frame pixels, or None when the metadata has none.
    """

    stem: str
    landmarks: NDArray[np.float64] | None


def read_aligned(folder: Path) -> list[AlignedFace]:
    """Every aligned face of ``folder`` (files ``{stem}_{i}.jpg``), sorted by name.

    Raises:
        HostFormatError: a file's metadata is refused (see :class:`RestrictedUnpickler`).
    """
    out = []
    for p in sorted(folder.iterdir()):
        if not p.is_file() or p.suffix.lower() not in (".jpg", ".jpeg"):
            continue
        meta = read_aligned_metadata(p) or {}
        src = meta.get("source_filename")
        stem = Path(src).stem if isinstance(src, str) and src else p.stem.rsplit("_", 1)[0]
        lm = meta.get("source_landmarks")
        pts = None
        if lm is not None:
            arr = np.asarray(lm, dtype=np.float64) if isinstance(lm, (list, tuple, np.ndarray)) else None
            if arr is None or arr.ndim != 2 or arr.shape[1] != 2 or not np.isfinite(arr).all():
                raise HostFormatError(f"{p}: source_landmarks must be (K, 2) numbers")
            pts = arr
        out.append(AlignedFace(stem, pts))
    return out


@dataclass(frozen=True)
class Workspace:
    """The DFL paths one fix reads and writes."""

    root: Path
    frames: Path
    merged: Path
    merged_mask: Path
    aligned: Path | None
    merged_out: Path
    mask_out: Path
    src_aligned: Path | None = None

    @classmethod
    def open(cls, root: Path) -> Workspace:
        """Find the folders of a workspace (``root`` or ``root/workspace``).

        Raises:
            InputError: ``data_dst/``, ``merged/`` or ``merged_mask/`` is missing.
        """
        root = Path(root)
        if not (root / "data_dst").is_dir() and (root / "workspace" / "data_dst").is_dir():
            root = root / "workspace"
        dst = root / "data_dst"
        for need in (dst, dst / "merged", dst / "merged_mask"):
            if not need.is_dir():
                raise InputError(f"{need}: missing; is {root} a DeepFaceLab workspace after 'merge'?")
        aligned = dst / "aligned"
        src = root / "data_src" / "aligned"
        return cls(root, dst, dst / "merged", dst / "merged_mask", aligned if aligned.is_dir() else None,
                   dst / MERGED_OUT, dst / MASK_OUT, src if src.is_dir() and _images(src) else None)

    def dst_video(self) -> Path | None:
        """``data_dst.*`` (the video the frames were extracted from), if present."""
        for p in sorted(self.root.glob("data_dst.*")):
            if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES:
                return p
        return None


def _images(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}


def _plate_faces(aligned: list[AlignedFace], summary_tracks: Any, stems: tuple[str, ...]) -> tuple[int, ...] | None:
    """Plate track ids whose box holds the centre of some aligned face's landmarks in its frame."""
    index = {s: i for i, s in enumerate(stems)}
    ids: set[int] = set()
    for face in aligned:
        f = index.get(face.stem)
        if face.landmarks is None or f is None:
            continue
        cx, cy = face.landmarks.mean(axis=0)
        for t in summary_tracks:
            row = t.row(f)
            if row is not None:
                x0, y0, x1, y1 = t.boxes[row]
                if x0 <= cx <= x1 and y0 <= cy <= y1:
                    ids.add(t.track_id)
    return tuple(sorted(ids)) if ids else None


@dataclass(frozen=True)
class DflFixResult:
    """What :func:`fix_workspace` did."""

    workspace: Workspace
    restore: RestoreSummary
    aligned_faces: int
    masks_changed: int
    frames: int
    src_references: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {"workspace": str(self.workspace.root), "merged_out": str(self.workspace.merged_out),
                "mask_out": str(self.workspace.mask_out), "frames": self.frames,
                "aligned_faces_read": self.aligned_faces, "masks_changed": self.masks_changed,
                "src_reference_stills": self.src_references,
                "restore": self.restore.as_dict()}


@dataclass(frozen=True)
class DflFixJob:
    """Options of :func:`fix_workspace`.

    Attributes:
        settings: restore settings; its ``plate``, ``swapped``, ``output``, ``output_config``
            and ``plate_faces`` are replaced by the workspace's (build it with any paths).
        overwrite: replace existing ``*_deltaface`` folders (only ones deltaface wrote).
        src_references: read ``data_src/aligned/`` (the source faceset: the person swapped IN)
            as reference stills for eye and mouth texture the merged frames never show (up to
            ``plugin.texture_stage.MAX_REFERENCE_FRAMES`` of its images, evenly spaced). A
            faceset that cannot be read is skipped with a warning.
    """

    settings: RestoreJob = field(default_factory=lambda: RestoreJob(Path("data_dst"), Path("merged"), Path("out")))
    overwrite: bool = False
    src_references: bool = True


def fix_workspace(root: Path, job: DflFixJob | None = None, progress: Any = None) -> DflFixResult:
    """Restore DFL's merged frames against data_dst/ and write the ``*_deltaface`` folders.

    Args:
        root: the workspace folder.
        job: restore settings (its plate, swapped and output paths are replaced).
        progress: optional progress callback for the analysis passes.

    Raises:
        InputError: a folder is missing, or merged/ and data_dst/ (or merged_mask/) disagree.
        HostFormatError: an aligned file's metadata is refused.
        OutputError: an output folder exists (without overwrite) or cannot be written.
    """
    job = job or DflFixJob()
    ws = Workspace.open(root)
    frames, merged, masks = _images(ws.frames), _images(ws.merged), _images(ws.merged_mask)
    if set(frames) != set(merged):
        odd = sorted(set(frames) ^ set(merged))[:3]
        raise InputError(f"{ws.merged}: frame names differ from {ws.frames} (e.g. {', '.join(odd)})")
    missing = sorted(set(merged) - set(masks))[:3]
    if missing:
        raise InputError(f"{ws.merged_mask}: no mask for {', '.join(missing)}")
    check_output_path(ws.mask_out, overwrite=job.overwrite, is_folder=True)
    aligned = read_aligned(ws.aligned) if ws.aligned is not None else []
    info = probe(ws.merged)
    base = job.settings
    plate_faces = None
    if aligned:
        from plugin.analyze import run_analysis

        plate = run_analysis(ws.frames, base.analysis, cache_dir=base.cache_dir, use_cache=base.use_cache)
        plate_faces = _plate_faces(aligned, plate.analysis.tracks, probe(ws.frames).stems)
    stills = _src_references(ws) if job.src_references and base.texture is not None else ()
    rjob = dataclasses.replace(base, plate=ws.frames, swapped=ws.merged, output=ws.merged_out,
                               output_config=OutputConfig(codec="png", overwrite=job.overwrite),
                               plate_faces=plate_faces, reference_stills=base.reference_stills + stills)
    summary = run_restore(rjob, progress=progress)
    changed = _write_masks(ws, info.stems, masks, job.overwrite, summary)
    return DflFixResult(ws, summary, len(aligned), changed, len(info.stems), len(stills))


def _src_references(ws: Workspace) -> tuple[Reference, ...]:
    """Reference stills from the source faceset (``data_src/aligned``), or none with a warning
    when it cannot be read (it only helps; the fix does not depend on it)."""
    if ws.src_aligned is None:
        return ()
    try:
        return tuple(load_references([ws.src_aligned]))
    except InputError as exc:
        _log.warning("%s: not used as reference stills: %s", ws.src_aligned, exc)
        return ()


def _write_masks(ws: Workspace, stems: tuple[str, ...], masks: Mapping[str, Path], overwrite: bool,
                 summary: RestoreSummary) -> int:
    merged = _images(ws.merged)
    out_files = _images(ws.merged_out)
    changed = 0
    tag = build_provenance(summary.render.edited_ranges, source=ws.merged_mask)
    with AtomicOutput(ws.mask_out, overwrite=overwrite, is_folder=True) as tmp:
        for i, stem in enumerate(stems):
            src = masks[stem]
            target = tmp / (stem + ".png")
            a = cv2.imread(str(merged[stem]), cv2.IMREAD_COLOR)
            b = cv2.imread(str(out_files[stem]), cv2.IMREAD_COLOR)
            if a is None or b is None or a.shape != b.shape:
                raise OutputError(f"{out_files.get(stem)}: frame {i} cannot be compared with {merged[stem]}")
            diff = (a != b).any(axis=2)
            if not diff.any() and src.suffix.lower() == ".png":
                shutil.copyfile(src, target)
                continue
            mask = cv2.imread(str(src), cv2.IMREAD_GRAYSCALE)
            if mask is None or mask.shape != diff.shape:
                raise InputError(f"{src}: not a {diff.shape[1]}x{diff.shape[0]} mask image")
            cv2.imwrite(str(target), np.maximum(mask, diff.astype(np.uint8) * 255))
            changed += int(diff.any())
        write_provenance_file(tmp, tag)
    return changed


def encode_video(root: Path, *, crf: int = 16, overwrite: bool = False) -> dict[str, Any]:
    """Encode ``merged_deltaface/`` to ``result_deltaface.mp4`` (see the module doc).

    Args:
        root: the workspace.
        crf: libx264 quality (0: lossless, as DFL's lossless option).
        overwrite: replace an existing result.

    Returns:
        A summary: output path, frames, frame rate, whether audio was copied.

    Raises:
        InputError: ``merged_deltaface/`` or ``data_dst.*`` is missing.
        OutputError: the result exists (without overwrite) or cannot be written.
    """
    ws = Workspace.open(root)
    if not ws.merged_out.is_dir():
        raise InputError(f"{ws.merged_out}: missing; run 'deltaface dfl fix {ws.root}' first")
    src = ws.dst_video()
    if src is None:
        raise InputError(f"{ws.root}: no data_dst.* video to take the frame rate and audio from")
    out = ws.root / VIDEO_OUT
    src_info = probe(src)
    rate = Fraction(src_info.average_rate) if src_info.average_rate else None
    if not rate:
        raise InputError(f"{src}: no frame rate")
    frames = 0
    audio = False
    with VideoReader(ws.merged_out) as reader, av.open(str(src)) as inp:
        info = reader.info
        tag = build_provenance(_edited(ws), source=ws.merged_out)
        with AtomicOutput(out, overwrite=overwrite, inputs=[src]) as tmp:
            with av.open(str(tmp), "w", format="mp4") as container:
                apply_provenance(container.metadata, tag)
                v = container.add_stream("libx264", rate=rate)
                v.width, v.height, v.pix_fmt = info.width, info.height, "yuv420p"
                v.time_base = Fraction(1, 1) / rate
                v.options = {"crf": str(int(crf))}
                a_in = inp.streams.audio[0] if inp.streams.audio else None
                a_out = container.add_stream_from_template(a_in) if a_in is not None else None
                for fr in reader:
                    vf = av.VideoFrame.from_ndarray(fr.image, format="rgb24")
                    vf.pts, vf.time_base = fr.index, v.time_base
                    for packet in v.encode(vf):
                        container.mux(packet)
                    frames += 1
                for packet in v.encode(None):
                    container.mux(packet)
                if a_in is not None and a_out is not None:
                    for packet in inp.demux(a_in):
                        if packet.dts is None:
                            continue
                        packet.stream = a_out
                        container.mux(packet)
                        audio = True
    return {"output": str(out), "frames": frames, "fps": float(rate), "audio_copied": audio, "source": str(src)}


def _edited(ws: Workspace) -> list[list[int]]:
    from plugin.provenance import read_provenance

    tag = read_provenance(ws.merged_out) or {}
    ranges = tag.get("edited_ranges", [])
    return [list(r) for r in ranges if isinstance(r, list) and len(r) == 2]
