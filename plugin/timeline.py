"""Frame ranges from an editor's timeline: OpenTimelineIO (.otio) and CMX 3600 (.edl) files.

An editor marks what to change where she works: markers (locators) and clips in her cut. This
module reads them with OpenTimelineIO (and its ``cmx_3600`` adapter for EDLs) and maps each onto
frames of the input video, so that ``--delta smile=0.5@marker:NAME`` edits exactly the frames the
editor marked.

Two time spaces (``space``), as an EDL names them:

- ``record`` (default): the timeline's own time, the cut as it plays. The input is taken to be the
  cut (or a render of it): the input's frame 0 is the timeline's first frame, i.e. the input's
  start timecode when the input carries one (``timecode`` tag of the video stream or container,
  as cameras and NLE exports write it), else the timeline's start (``global_start_time`` in an
  .otio; the first record-in timecode in an EDL).
- ``source``: the media time of the clips (an EDL's source in/out, an .otio clip's
  ``source_range``). The input is the source media: its frame 0 is its own start timecode (0 when
  it carries none). Markers on the timeline itself (not on a clip) have no source time.

What each item's times are:

- a clip: record = where it sits in its track; source = its ``source_range``;
- a marker on a clip, in an .otio: ``marked_range`` is in the clip's source time (OTIO's rule);
  record = the clip's record start + the offset into the clip;
- a marker (``* LOC:``) in an EDL: its timecode is a record timecode (how NLEs write locators; the
  adapter stores it unchanged on the clip, OpenTimelineIO issue #169);
- a marker on a track or on the timeline's stack: record time only.

Only video tracks are read (an EDL's ``AA/V`` events copy each clip onto the audio tracks too).

Rate and rounding: times are converted to seconds with their own rate (a 24 fps timeline keeps
24 fps times), then to frames of the input at the input's mean frame rate. An input frame
belongs to a range ``[start, end)`` when its start time lies inside it: first frame
``ceil(start * fps)``, last frame ``ceil(end * fps) - 1`` (e.g. 24 fps timeline frames 10-19,
0.4167-0.8333 s, are frames 13-24 at 30 fps). A zero-length marker, or a range too short to hold
a frame start, means the one frame showing at its start: ``floor(start * fps)``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tracking.errors import ConfigError

SPACES = ("record", "source")
TIMELINE_SUFFIXES = (".otio", ".edl")
#: Frame rate of an EDL's timecodes when nobody says (OpenTimelineIO's own default).
DEFAULT_EDL_RATE = 24.0
#: Slack, in input frames, for times that land on a frame start up to float error.
FRAME_EPS = 1e-6
#: A timeline reference in a --delta spec: ``marker:NAME`` or ``clip:NAME`` (NAME may hold spaces).
REF_PATTERN = re.compile(r"(marker|clip):(.+)", re.DOTALL)


@dataclass(frozen=True)
class TimelineItem:
    """A marker or clip of a timeline, with its times in seconds.

    Attributes:
        kind: ``"marker"`` or ``"clip"``.
        name: the marker's or clip's name (may be empty).
        track: the name of the track it is on (``""`` for markers on the timeline's stack).
        record_start_s, record_end_s: record (timeline) time, seconds, end exclusive; absolute
            (timeline start timecode included).
        source_start_s, source_end_s: source (media) time, seconds, or None when it has none.
        rate: the rate of the timeline's times (frames per second).
        zero_length: a marker of no duration (one frame).
    """

    kind: str
    name: str
    track: str
    record_start_s: float
    record_end_s: float
    source_start_s: float | None
    source_end_s: float | None
    rate: float
    zero_length: bool = False

    def __post_init__(self) -> None:
        if self.kind not in ("marker", "clip"):
            raise ConfigError(f"timeline item kind must be 'marker' or 'clip', got {self.kind!r}")
        if not self.record_end_s >= self.record_start_s:
            raise ConfigError(f"timeline {self.kind} {self.name!r}: ends before it starts")

    @property
    def ref(self) -> str:
        """How a --delta spec names it: ``marker:NAME`` / ``clip:NAME``."""
        return f"{self.kind}:{self.name}"


@dataclass(frozen=True)
class Timeline:
    """What :func:`read_timeline` found.

    Attributes:
        path: the file.
        name: the timeline's name.
        rate: its frame rate.
        record_origin_s: seconds of the timeline's first frame (its start timecode).
        items: markers first, then clips, each in timeline order.
    """

    path: Path
    name: str
    rate: float
    record_origin_s: float
    items: tuple[TimelineItem, ...]


@dataclass(frozen=True)
class MappedItem:
    """A timeline item on the input's frames.

    Attributes:
        item: the timeline item.
        first_frame, last_frame: inclusive input frames, or None when it cannot be mapped.
        problem: why it cannot be used (outside the clip, no source time), else None.
    """

    item: TimelineItem
    first_frame: int | None
    last_frame: int | None
    problem: str | None = None

    def as_dict(self) -> dict[str, Any]:
        it = self.item
        return {
            "ref": it.ref, "kind": it.kind, "name": it.name, "track": it.track,
            "record_tc": [seconds_to_timecode(it.record_start_s, it.rate),
                          seconds_to_timecode(it.record_end_s, it.rate)],
            "source_tc": None if it.source_start_s is None else [
                seconds_to_timecode(it.source_start_s, it.rate), seconds_to_timecode(it.source_end_s or 0.0, it.rate)],
            "frames": None if self.first_frame is None else [self.first_frame, self.last_frame],
            "problem": self.problem,
        }


def seconds_to_timecode(seconds: float, rate: float) -> str:
    """Non-drop ``HH:MM:SS:FF`` of ``seconds`` at ``rate`` (nominal rate ``round(rate)``)."""
    nominal = max(1, round(rate))
    frames = round(seconds * rate)
    sign = "-" if frames < 0 else ""
    frames = abs(frames)
    ff = frames % nominal
    s = frames // nominal
    return f"{sign}{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}:{ff:02d}"


def _seconds(t: Any) -> float:
    return float(t.value) / float(t.rate)


def read_timeline(path: Path | str, edl_rate: float | None = None) -> Timeline:
    """Read the markers and clips of an .otio or CMX 3600 .edl file (module docstring for times).

    Args:
        path: the file.
        edl_rate: the frame rate of an EDL's timecodes (an EDL does not say; the command line
            passes ``--timeline-rate`` or the input's rate). Default :data:`DEFAULT_EDL_RATE`.

    Raises:
        ConfigError: the file is missing, unreadable, of another type, or holds no timeline.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TIMELINE_SUFFIXES:
        raise ConfigError(f"{path}: a timeline must be an .otio or a CMX 3600 .edl file")
    if not path.is_file():
        raise ConfigError(f"{path}: timeline file does not exist")
    import opentimelineio as otio  # deferred: only timeline users pay for the import

    try:
        if suffix == ".edl":
            rate = DEFAULT_EDL_RATE if edl_rate is None else edl_rate
            if not (math.isfinite(rate) and rate > 0):
                raise ConfigError(f"{path}: EDL frame rate must be > 0, got {rate!r}")
            obj = otio.adapters.read_from_file(str(path), adapter_name="cmx_3600", rate=rate)
        else:
            obj = otio.adapters.read_from_file(str(path), adapter_name="otio_json")
    except ConfigError:
        raise
    except Exception as exc:  # noqa: BLE001 - otio raises many kinds (parse, schema, encoding)
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{path}: cannot read the timeline: {first[:200]}") from None
    if not isinstance(obj, otio.schema.Timeline):
        raise ConfigError(f"{path}: holds a {type(obj).__name__}, not a timeline")
    return _collect(path, obj, from_edl=suffix == ".edl")


def _collect(path: Path, tl: Any, from_edl: bool) -> Timeline:
    import opentimelineio as otio

    global_start = tl.global_start_time
    rate = float(global_start.rate) if global_start is not None else None
    offset = _seconds(global_start) if global_start is not None else 0.0
    markers: list[TimelineItem] = []
    clips: list[TimelineItem] = []
    for m in tl.tracks.markers:
        r = m.marked_range
        markers.append(_marker(m.name, "", offset + _seconds(r.start_time), _seconds(r.duration),
                               float(r.start_time.rate), None))
    for track in tl.tracks:
        # Audio tracks are left out: faces are in the picture, and an EDL's "AA/V" events put a
        # copy of each clip (with its locators) on every track they name.
        if not isinstance(track, otio.schema.Track) or track.kind != otio.schema.TrackKind.Video:
            continue
        trim = _seconds(track.source_range.start_time) if track.source_range is not None else 0.0
        base = offset - trim  # record seconds = base + track-internal seconds
        for m in track.markers:
            r = m.marked_range
            markers.append(_marker(m.name, track.name, base + _seconds(r.start_time), _seconds(r.duration),
                                   float(r.start_time.rate), None))
        for child in track:
            if not isinstance(child, otio.schema.Clip):
                continue
            rip = child.range_in_parent()
            src = child.trimmed_range()
            r0, r1 = base + _seconds(rip.start_time), base + _seconds(rip.end_time_exclusive())
            s0, s1 = _seconds(src.start_time), _seconds(src.end_time_exclusive())
            rate = rate or float(src.start_time.rate)
            clips.append(TimelineItem("clip", child.name, track.name, r0, r1, s0, s1, float(src.start_time.rate)))
            for m in child.markers:
                mr = m.marked_range
                start, dur = _seconds(mr.start_time), _seconds(mr.duration)
                if from_edl:  # LOC timecodes are record timecodes (module docstring)
                    rec = start
                    srcs = s0 + (start - r0)
                else:  # OTIO: a clip's marker is in the clip's source time
                    srcs = start
                    rec = r0 + (start - s0)
                markers.append(_marker(m.name, track.name, rec, dur, float(mr.start_time.rate), srcs))
    # An EDL's first record-in is its start timecode (the adapter keeps it as a negative track trim).
    origin = min(c.record_start_s for c in clips) if from_edl and clips else offset
    return Timeline(path=path, name=tl.name or "", rate=rate or 24.0, record_origin_s=origin,
                    items=tuple(markers + clips))


def _marker(name: str, track: str, start: float, dur: float, rate: float, source_start: float | None) -> TimelineItem:
    return TimelineItem("marker", name, track, start, start + dur,
                        source_start, None if source_start is None else source_start + dur, rate,
                        zero_length=dur <= 0)


def input_start_timecode(path: Path | str) -> str | None:
    """The input's start timecode tag (``HH:MM:SS:FF``, ``;`` for drop frame), or None.

    Looks at the video stream's metadata, then the container's, then any data stream's (QuickTime
    ``tmcd`` tracks), for a key ``timecode`` (any case). Image folders have none.
    """
    path = Path(path)
    if path.is_dir():
        return None
    import av

    try:
        with av.open(str(path)) as container:
            sources = [s.metadata for s in container.streams.video] + [container.metadata]
            sources += [s.metadata for s in container.streams if s.type not in ("video", "audio")]
            for meta in sources:
                for key, value in meta.items():
                    if key.lower() == "timecode" and value:
                        return str(value)
    except (av.FFmpegError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read its start timecode: {exc}") from None
    return None


def timecode_seconds(timecode: str, fps: float) -> float:
    """Seconds of a start timecode at the clip's rate (drop frame with ``;``, SMPTE rules).

    Raises:
        ConfigError: not a timecode.
    """
    import opentimelineio as otio

    try:
        return _seconds(otio.opentime.from_timecode(timecode, fps))
    except Exception as exc:  # noqa: BLE001 - otio raises ValueError or its own kinds
        raise ConfigError(f"start timecode {timecode!r}: {exc}") from None


def frames_of(start_s: float, end_s: float, fps: float, zero_length: bool = False) -> tuple[int, int]:
    """Input frames (inclusive) whose start time lies in ``[start_s, end_s)`` (module docstring).

    Args:
        start_s, end_s: seconds relative to the input's frame 0.
        fps: the input's frame rate.
        zero_length: a point marker: the one frame showing at ``start_s``.
    """
    if not (fps > 0 and math.isfinite(fps)):
        raise ConfigError(f"frame rate must be > 0, got {fps!r}")
    showing = math.floor(start_s * fps + FRAME_EPS)
    if zero_length:
        return showing, showing
    first = math.ceil(start_s * fps - FRAME_EPS)
    last = math.ceil(end_s * fps - FRAME_EPS) - 1
    if last < first:
        return showing, showing
    return first, last


def map_timeline(timeline: Timeline, fps: float, num_frames: int, *, space: str = "record",
                 start_timecode: str | None = None) -> list[MappedItem]:
    """Map every item of ``timeline`` onto the input's frames.

    Args:
        timeline: from :func:`read_timeline`.
        fps: the input's mean frame rate.
        num_frames: the input's frame count.
        space: ``"record"`` or ``"source"`` (module docstring).
        start_timecode: the input's start timecode tag, or None.

    Returns:
        One :class:`MappedItem` per item; items outside the clip carry a ``problem``.
    """
    if space not in SPACES:
        raise ConfigError(f"timeline space must be one of {', '.join(SPACES)}, got {space!r}")
    tc_s = None if start_timecode is None else timecode_seconds(start_timecode, fps)
    if space == "record":
        zero = tc_s if tc_s is not None else timeline.record_origin_s
    else:
        zero = tc_s or 0.0
    out = []
    for it in timeline.items:
        if space == "record":
            start, end = it.record_start_s, it.record_end_s
        elif it.source_start_s is None:
            out.append(MappedItem(it, None, None, "has no source time (a marker on the timeline, not on a clip)"))
            continue
        else:
            start, end = it.source_start_s, it.source_end_s if it.source_end_s is not None else it.source_start_s
        a, b = frames_of(start - zero, end - zero, fps, it.zero_length)
        problem = None
        if a < 0 or b > num_frames - 1:
            problem = (f"maps to frames {a}-{b}, outside the input's {num_frames} frames (0-{num_frames - 1})"
                       f" in {space} time")
        out.append(MappedItem(it, a, b, problem))
    return out


def resolve_ref(mapped: list[MappedItem], ref: str, path: Path | str) -> tuple[int, int]:
    """The input frames of ``marker:NAME`` or ``clip:NAME``.

    Raises:
        ConfigError: unknown name (the message lists the known ones), ambiguous name, or a range
            outside the input.
    """
    m = REF_PATTERN.fullmatch(ref.strip())
    if m is None:
        raise ConfigError(f"{path}: {ref!r} is not a timeline reference (marker:NAME or clip:NAME)")
    kind, name = m.group(1), m.group(2).strip()
    hits = [x for x in mapped if x.item.kind == kind and x.item.name == name]
    if not hits:
        known = sorted({x.item.name for x in mapped if x.item.kind == kind and x.item.name})
        listing = ", ".join(repr(k) for k in known[:20]) or "none"
        raise ConfigError(f"{path}: no {kind} named {name!r}; {kind}s in this timeline: {listing}")
    if len(hits) > 1:
        where = ", ".join(f"{seconds_to_timecode(h.item.record_start_s, h.item.rate)}" for h in hits)
        raise ConfigError(f"{path}: {len(hits)} {kind}s are named {name!r} (at {where}); rename them to tell them apart")
    hit = hits[0]
    if hit.problem is not None or hit.first_frame is None or hit.last_frame is None:
        raise ConfigError(f"{path}: {kind} {name!r} {hit.problem}")
    return hit.first_frame, hit.last_frame


def expand_delta_specs(specs: list[str], mapped: list[MappedItem] | None, path: Path | str | None) -> list[str]:
    """Rewrite ``NAME=STRENGTH@marker:M[~R]`` / ``@clip:C[~R]`` into ``NAME=STRENGTH@A-B[~R]``.

    Specs without a timeline reference are returned unchanged.

    Raises:
        ConfigError: a reference without ``--timeline``, or one :func:`resolve_ref` refuses.
    """
    out = []
    for spec in specs:
        head, at, tail = spec.partition("@")
        if not at or REF_PATTERN.match(tail.strip()) is None:
            out.append(spec)
            continue
        ref, ramp = tail, ""
        ramp_match = re.fullmatch(r"(.*?)(~\d+)\s*", tail, re.DOTALL)
        if ramp_match:
            ref, ramp = ramp_match.group(1), ramp_match.group(2)
        if mapped is None or path is None:
            raise ConfigError(f"--delta {spec!r}: a marker or clip reference needs --timeline FILE")
        try:
            a, b = resolve_ref(mapped, ref, path)
        except ConfigError as exc:
            raise ConfigError(f"--delta {spec!r}: {exc}") from None
        out.append(f"{head}@{a}-{b}{ramp}")
    return out
