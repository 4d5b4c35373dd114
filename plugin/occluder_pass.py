"""Before the render: find what covers each edited face (``synthesis.occluders``) in one read.

The occluder masks need the frames around an edit (the face's reference is the median of its
frames nearby, and a frame's mask is voted on by its neighbours), so they are found before the
render pass, not during it: one forward decode over the edited frames of every face, with
:data:`REFERENCE_SPAN` frames each side, unwrapping each edited face's frames there into UV space.
The edit stage then puts the covered pixels back from the frame
(``compositing.occlusion.occluder_weight``).

Swap repair looks in the plate instead (:func:`occluders_on` there, :meth:`Occluders.carried` onto
the swap's faces): what covers the face is the same picture in both, and a swap model's own
failures (a face that melts) would read as occluders in the swap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from plugin.provenance import merge_ranges
from plugin.video import VideoReader
from synthesis.occluders import OccluderConfig, face_luma, found, track_masks
from synthesis.plan import FacePlan
from tracking.analysis import Track

#: Frames each side of a face's edited frames (within their shot) whose face joins its reference.
REFERENCE_SPAN = 75
#: A mask is kept as uint8 (levels of 1/255).
_LEVELS = 255.0
#: Luminance (0-255) within which two clips show the same picture (:func:`shown_in`): a lossy
#: encode of the same pixels moves them by a few levels; another face, a smear, by far more.
SAME_LUMA = 8.0


@dataclass
class Occluders:
    """Occluder masks of the edited faces: ``(track id, frame) -> (S, S)`` uint8 UV mask, only
    where something covers the face or a mask fades in or out (``synthesis.occluders``), and the
    share of the face covered on the frames found covered themselves. ``meshes`` holds, for masks
    found on another clip's face (:meth:`carried`), the ``(478, 3)`` landmarks they were found
    under: the mask is taken onto the frame through them (where that clip shows the occluder),
    not through the edited face's own."""

    masks: dict[tuple[int, int], NDArray[np.uint8]] = field(default_factory=dict)
    shares: dict[tuple[int, int], float] = field(default_factory=dict)
    meshes: dict[tuple[int, int], NDArray[np.float32]] = field(default_factory=dict)

    def at(self, track_id: int, frame_index: int) -> NDArray[np.float32] | None:
        """``(S, S)`` float32 in [0, 1]: what covers face ``track_id`` in that frame (None: nothing)."""
        m = self.masks.get((track_id, frame_index))
        return None if m is None else m.astype(np.float32) / _LEVELS

    def covering(self, track_id: int, frame_index: int) -> tuple[NDArray[np.float32], NDArray[np.float32] | None] | None:
        """What covers face ``track_id`` in that frame, as ``plugin.editing.EditStage`` takes it:
        the UV mask (:meth:`at`) and the landmarks to take it through (None: the face's own), or
        None where nothing covers it."""
        m = self.at(track_id, frame_index)
        return None if m is None else (m, self.meshes.get((track_id, frame_index)))

    def carried(self, faces: Mapping[int, int], offset: int, tracks: Mapping[int, Track]) -> Occluders:
        """These masks, found on one clip's faces (``tracks``), for the same picture's faces in
        another clip: face ``t`` becomes ``faces[t]`` and frame ``f`` frame ``f + offset`` (a swap
        whose frame ``f + offset`` shows the plate's frame ``f``); each keeps the landmarks it
        was found under (:attr:`meshes`). Faces not in ``faces`` are left out."""
        out = Occluders()
        for (tid, f), mask in self.masks.items():
            if tid not in faces:
                continue
            key = (faces[tid], f + offset)
            out.masks[key] = mask
            if (tid, f) in self.shares:
                out.shares[key] = self.shares[(tid, f)]
            track = tracks[tid]
            out.meshes[key] = track.landmarks[int(np.searchsorted(track.frame_indices, f))].astype(np.float32)
        return out

    def merged(self, other: Occluders) -> Occluders:
        """Both sets of masks (``other``'s where both have one)."""
        return Occluders({**self.masks, **other.masks}, {**self.shares, **other.shares}, {**self.meshes, **other.meshes})

    def events(self) -> list[dict[str, Any]]:
        """Per face and run of frames found covered (fades aside): ``{"face", "frames": [a, b],
        "action": "occluded", "share"}`` (the largest share of the face's seen texels covered in
        the run)."""
        out = []
        for tid in sorted({t for t, _ in self.shares}):
            frames = sorted(f for t, f in self.shares if t == tid)
            for a, b in merge_ranges((f, f) for f in frames):
                share = max(self.shares[(tid, f)] for f in range(a, b + 1))
                out.append({"face": tid, "frames": [a, b], "action": "occluded", "share": round(share, 3)})
        return out


@dataclass
class _Work:
    """One face's run of rows in one shot: the rows read, which of them are edited, the reference."""

    track: Track
    rows: NDArray[np.intp]
    edited: NDArray[np.bool_]
    reference: NDArray[np.intp]
    lumas: dict[int, tuple[NDArray[np.float32], NDArray[np.bool_]]] = field(default_factory=dict)


def _works(edited: Mapping[int, NDArray[np.integer]], tracks: Mapping[int, Track], config: OccluderConfig) -> list[_Work]:
    out = []
    for track_id, frames in edited.items():
        frames = np.asarray(frames, np.int64)
        if frames.size == 0:
            continue
        track = tracks[track_id]
        found = np.searchsorted(track.frame_indices, frames)
        ok = found < len(track.frame_indices)
        ok[ok] = track.frame_indices[found[ok]] == frames[ok]
        edited_rows = found[ok]
        if edited_rows.size == 0:
            continue
        for seg in np.unique(track.segment_ids[edited_rows]):
            mine = edited_rows[track.segment_ids[edited_rows] == seg]
            lo = track.frame_indices[mine[0]] - REFERENCE_SPAN
            hi = track.frame_indices[mine[-1]] + REFERENCE_SPAN
            rows = np.flatnonzero((track.segment_ids == seg) & (track.frame_indices >= lo) & (track.frame_indices <= hi))
            count = min(len(rows), config.reference_rows)
            reference = np.unique(np.linspace(0, len(rows) - 1, count).round().astype(np.intp))
            out.append(_Work(track, rows, np.isin(rows, mine), reference))
    return out


def find_occluders(input_path: Path, plans: Sequence[FacePlan], tracks: dict[int, Track],
                   config: OccluderConfig | None = None, allow_truncated: bool = False) -> Occluders:
    """The occluder masks of every edited face on its edited frames.

    Args:
        input_path: the clip.
        plans: the planned faces (their edited frames).
        tracks: the clip's tracks by id.
        config: detection settings.
        allow_truncated: stop cleanly where the input turns out truncated or corrupt (the runs
            not read whole get no masks).

    Returns:
        The masks (empty when nothing covers an edited face).
    """
    return occluders_on(input_path, {p.track_id: p.frame_indices for p in plans}, tracks, config, allow_truncated)


def occluders_on(input_path: Path, edited: Mapping[int, NDArray[np.integer]], tracks: Mapping[int, Track],
                 config: OccluderConfig | None = None, allow_truncated: bool = False) -> Occluders:
    """:func:`find_occluders` for the frames ``edited[track id]`` of the faces ``tracks`` of the
    clip ``input_path`` (frames the track does not hold are left out)."""
    config = config or OccluderConfig()
    works = _works(edited, tracks, config)
    result = Occluders()
    if not works:
        return result
    wanted: dict[int, list[tuple[_Work, int]]] = {}
    for w in works:
        for k, row in enumerate(w.rows):
            wanted.setdefault(int(w.track.frame_indices[row]), []).append((w, k))
    ends: dict[int, list[_Work]] = {}
    for w in works:
        ends.setdefault(int(w.track.frame_indices[w.rows[-1]]), []).append(w)
    with VideoReader(input_path, allow_truncated=allow_truncated) as reader:
        for frame in reader.frames(min(wanted), max(wanted) + 1):
            for w, k in wanted.get(frame.index, ()):
                w.lumas[k] = face_luma(frame.image, w.track.landmarks[w.rows[k]])
            for w in ends.get(frame.index, ()):  # a run read whole: its masks, and its lumas freed
                _finish(w, config, result)
    return result


def shown_in(found: Occluders, input_path: Path, other_path: Path, offset: int, tracks: Mapping[int, Track],
             allow_truncated: bool = False) -> Occluders:
    """The masks of ``found`` (on the faces ``tracks`` of ``input_path``) kept only where the clip
    ``other_path`` shows the same picture there, its frame ``f + offset`` for frame ``f``: each
    frame's luminance in UV space (:func:`synthesis.occluders.face_luma`, through the face's
    landmarks) within :data:`SAME_LUMA` of the other's where both show the texel (texels either
    does not show keep the mask).

    Swap repair finds what covers a face in the plate; a swap model leaves it as the plate has it
    (the swap's frame shows the plate's pixels there), while a mask that reaches past the
    occluder onto the face (the landmarker's made-up mesh under a card moves the texture around
    it) covers the swap's face, which is not the plate's. Masks left with nothing are dropped.
    """
    keys: dict[int, list[tuple[int, int]]] = {}
    for tid, f in found.masks:
        keys.setdefault(f, []).append((tid, f))
    out = Occluders(meshes=dict(found.meshes))
    if not keys:
        return out
    first, last = min(keys), max(keys)
    with VideoReader(input_path, allow_truncated=allow_truncated) as a, \
            VideoReader(other_path, allow_truncated=allow_truncated) as b:
        others = b.frames(first + offset, last + offset + 1)
        for frame, other in zip(a.frames(first, last + 1), others):
            for key in keys.get(frame.index, ()):
                track = tracks[key[0]]
                lm = track.landmarks[int(np.searchsorted(track.frame_indices, frame.index))]
                mine, seen = face_luma(frame.image, lm)
                theirs, seen_too = face_luma(other.image, lm)
                # texels either clip does not show keep the mask (it reaches into them on purpose)
                same = ~((np.abs(mine - theirs) > SAME_LUMA) & seen & seen_too)
                mask = np.rint(found.masks[key] * same).astype(np.uint8)
                if mask.max() > 0:
                    out.masks[key] = mask
                    if key in found.shares:
                        out.shares[key] = found.shares[key]
    return out


def _finish(w: _Work, config: OccluderConfig, result: Occluders) -> None:
    """The masks of one run, stored for its edited rows."""
    if len(w.lumas) < len(w.rows):  # some rows not decoded (a truncated clip): no masks
        w.lumas.clear()
        return
    lumas = np.stack([w.lumas[k][0] for k in range(len(w.rows))])
    seen = np.stack([w.lumas[k][1] for k in range(len(w.rows))])
    w.lumas.clear()
    masks = track_masks(lumas, seen, w.reference, config)
    own = found(masks)
    for k in np.flatnonzero(w.edited):
        if masks[k].max() <= 0:
            continue
        key = (w.track.track_id, int(w.track.frame_indices[w.rows[k]]))
        result.masks[key] = np.rint(masks[k] * _LEVELS).astype(np.uint8)
        if own[k]:
            result.shares[key] = float(((masks[k] > 0.5) & seen[k]).sum() / max(int(seen[k].sum()), 1))
