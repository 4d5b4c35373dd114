"""Copying a source's other streams (audio, subtitles, data) into the output, packet for packet.

:class:`plugin.writer.VideoWriter` re-encodes the video and copies every other stream the output
container accepts byte for byte, interleaved in step with the video; what it cannot copy, it
names (:func:`copy_refusal`).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import av

def copy_refusal(stream: av.stream.Stream, format_name: str) -> str:
    """Why ``stream`` cannot be copied into a ``format_name`` container ("" if it can).

    Tried on a throwaway in-memory container: some streams (a QuickTime timecode track, say)
    are accepted by ``add_stream_from_template`` but make the muxer fail at the header.
    """
    if stream.type not in ("audio", "subtitle", "data"):
        return f"{stream.type} streams are not copied"
    if stream.name is None:  # no codec FFmpeg knows, e.g. a QuickTime timecode track
        timecode = "; MOV/MP4 re-create a timecode track from the video's" \
            if "timecode" in stream.metadata else ""
        return f"its codec is unknown to FFmpeg{timecode}"
    try:
        with av.open(io.BytesIO(), mode="w", format=format_name) as probe_out:
            probe_out.add_stream_from_template(stream)
            probe_out.start_encoding()
    except (ValueError, av.error.FFmpegError) as exc:
        return f"the {format_name} muxer refuses it ({exc})"
    return ""


class PacketCopier:
    """Copies the source's non-video streams packet for packet, in step with the video."""

    def __init__(self, source: Path, video_index: int, out: av.container.OutputContainer) -> None:
        self.src = av.open(str(source), mode="r")
        self.map: dict[int, av.stream.Stream] = {}
        self.skipped: list[str] = []
        fmt = out.format.name
        for s in self.src.streams:
            if s.index == video_index:
                continue
            refusal = copy_refusal(s, fmt)
            if refusal:
                self.skipped.append(f"stream {s.index} ({s.type}): {refusal}")
                continue
            o = out.add_stream_from_template(s)
            o.metadata.update(s.metadata)
            o.disposition = s.disposition
            self.map[s.index] = o
        wanted = [self.src.streams[i] for i in self.map]
        self.packets: Iterator[av.Packet] = iter(self.src.demux(wanted)) if wanted else iter(())
        self.pending: av.Packet | None = None
        self.count = 0

    def mux_until(self, out: av.container.OutputContainer, until: Fraction | None) -> None:
        """Mux every source packet that starts at or before ``until`` seconds (None: all)."""
        while True:
            pkt = self.pending or next(self.packets, None)
            self.pending = None
            if pkt is None:
                return
            if pkt.dts is None and pkt.size == 0:
                continue  # end-of-stream marker: nothing to copy
            ts = pkt.dts if pkt.dts is not None else pkt.pts
            if until is not None and ts is not None and ts * pkt.time_base > until:
                self.pending = pkt
                return
            pkt.stream = self.map[pkt.stream_index]
            out.mux(pkt)
            self.count += 1

    def close(self) -> None:
        self.src.close()
