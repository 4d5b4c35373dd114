"""The provenance tag: every output says that deltaface made it and which frames it edited.

The tag is a small JSON object::

    {"tool": "deltaface", "version": "0.1.0", "faces_edited": true,
     "edited_ranges": [[10, 20]], "edited_ranges_by_face": {"0": [[10, 20]]},
     "created_utc": "2026-11-24T21:18:00Z", "source": "clip.mp4"}

Frame ranges are 0-based indices in presentation order, both ends included. Containers carry it
as the metadata key ``deltaface_provenance`` (MP4 and MOV need ``movflags=use_metadata_tags``
for a custom key, which :mod:`plugin.writer` sets) beside a standard ``comment`` that says the
same in words; a PNG-sequence folder carries it as ``provenance.json``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import av

from plugin.version import __version__
from tracking.errors import InputError

#: Container metadata key of the JSON tag (Matroska stores keys upper-case; read either).
PROVENANCE_KEY = "deltaface_provenance"
#: File holding the tag inside a PNG-sequence output folder.
PROVENANCE_FILE = "provenance.json"
TOOL = "deltaface"


def merge_ranges(ranges: Iterable[Sequence[int]]) -> list[list[int]]:
    """Sort inclusive ``[start, end]`` frame ranges and merge overlapping or touching ones.

    Args:
        ranges: pairs of 0-based frame indices, ``start <= end``, both included.

    Returns:
        Disjoint, sorted ``[start, end]`` lists; ``[[1, 3], [4, 6]]`` becomes ``[[1, 6]]``.

    Raises:
        ValueError: a range has ``start > end`` or a negative index.
    """
    pairs = []
    for r in ranges:
        start, end = int(r[0]), int(r[1])
        if start < 0 or end < start:
            raise ValueError(f"invalid frame range {start}-{end}")
        pairs.append((start, end))
    merged: list[list[int]] = []
    for start, end in sorted(pairs):
        if merged and start <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    return merged


def build_provenance(
    edited_ranges: Iterable[Sequence[int]] = (),
    *,
    by_face: Mapping[int, Iterable[Sequence[int]]] | None = None,
    source: str | os.PathLike[str] | None = None,
    created: datetime | None = None,
) -> dict[str, Any]:
    """Build the provenance tag for one output.

    Args:
        edited_ranges: inclusive ``[start, end]`` frame ranges whose faces were edited.
        by_face: the same per face (track) id; their union is added to ``edited_ranges``.
        source: the input file; only its name is recorded.
        created: creation time (default: now); stored in UTC, to the second.

    Returns:
        The tag as a JSON-serialisable dict (see the module docstring).
    """
    per_face = {str(k): merge_ranges(v) for k, v in sorted((by_face or {}).items())}
    all_ranges = merge_ranges(
        [*edited_ranges, *(r for rs in per_face.values() for r in rs)]
    )
    when = (created or datetime.now(timezone.utc)).astimezone(timezone.utc)
    tag: dict[str, Any] = {
        "tool": TOOL,
        "version": __version__,
        "faces_edited": bool(all_ranges),
        "edited_ranges": all_ranges,
        "edited_ranges_by_face": per_face,
        "created_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    if source is not None:
        tag["source"] = Path(source).name
    return tag


def provenance_comment(tag: Mapping[str, Any]) -> str:
    """The tag in one human sentence, for the container's standard ``comment`` field.

    Returns:
        e.g. ``"Faces edited by deltaface 0.1.0 in frames 10-20, 40"`` or
        ``"Processed by deltaface 0.1.0; no faces edited"``.
    """
    version = tag.get("version", __version__)
    ranges = tag.get("edited_ranges") or []
    if not ranges:
        return f"Processed by deltaface {version}; no faces edited"
    parts = [f"{s}" if s == e else f"{s}-{e}" for s, e in ranges]
    noun = "frame" if len(ranges) == 1 and ranges[0][0] == ranges[0][1] else "frames"
    return f"Faces edited by deltaface {version} in {noun} {', '.join(parts)} (0-based)"


def apply_provenance(metadata: MutableMapping[str, str], tag: Mapping[str, Any]) -> None:
    """Write the tag and its sentence into container metadata (before the container closes).

    Args:
        metadata: an output container's ``metadata`` mapping.
        tag: the tag from :func:`build_provenance`.
    """
    metadata[PROVENANCE_KEY] = json.dumps(tag, sort_keys=True, separators=(",", ":"))
    metadata["comment"] = provenance_comment(tag)


def write_provenance_file(folder: Path, tag: Mapping[str, Any]) -> Path:
    """Write ``provenance.json`` into a PNG-sequence folder.

    Returns:
        The written file's path.
    """
    path = folder / PROVENANCE_FILE
    text = json.dumps(dict(tag, comment=provenance_comment(tag)), indent=2, sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


def _parse(text: str, where: Path) -> dict[str, Any]:
    try:
        tag = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: provenance tag is not valid JSON ({exc.msg})") from exc
    if not isinstance(tag, dict):
        raise InputError(f"{where}: provenance tag is not a JSON object")
    return tag


def read_provenance(path: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Read the provenance tag back from a video file or a PNG-sequence folder.

    Args:
        path: a container file or an output folder.

    Returns:
        The tag, or None when the file or folder carries none (it was not written by deltaface).

    Raises:
        InputError: the path is missing or unreadable, or the tag is not a JSON object.
    """
    p = Path(path)
    if p.is_dir():
        f = p / PROVENANCE_FILE
        if not f.is_file():
            return None
        tag = _parse(f.read_text(encoding="utf-8"), f)
        tag.pop("comment", None)
        return tag
    if not p.exists():
        raise InputError(f"{p}: file not found")
    try:
        with av.open(str(p), mode="r") as container:
            metadata = dict(container.metadata)
    except av.error.FFmpegError as exc:
        raise InputError(f"{p}: cannot read its metadata ({exc.strerror or exc})") from exc
    for key, value in metadata.items():
        if key.lower() == PROVENANCE_KEY:
            return _parse(value, p)
    return None
