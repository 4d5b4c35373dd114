"""Compare a clip with its re-encode: frame count, pts, pixels after decoding, audio packets (JSON).

    python bench/compare_clips.py IN OUT

Used for the pass-through round trip, e.g. for every fixture clip:

    for f in ../shared/fixtures/*.mp4; do
      deltaface render "$f" -o "/tmp/$(basename "$f" .mp4).ffv1.mp4" --codec ffv1 --overwrite --quiet
      python bench/compare_clips.py "$f" "/tmp/$(basename "$f" .mp4).ffv1.mp4"
    done
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import av
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from plugin.video import VideoReader  # noqa: E402


def audio_packets(path: str) -> list[bytes]:
    with av.open(path) as c:
        streams = list(c.streams.audio)
        return [bytes(p) for p in c.demux(streams) if p.size] if streams else []


def main() -> None:
    src, out = sys.argv[1], sys.argv[2]
    identical = frames_in = frames_out = 0
    times_in, times_out, pts_in, pts_out = [], [], [], []
    with VideoReader(src) as a, VideoReader(out) as b:
        for fa, fb in zip(a, b, strict=False):
            identical += bool(np.array_equal(fa.image, fb.image))
            times_in.append(fa.pts * fa.time_base)
            times_out.append(fb.pts * fb.time_base)
            pts_in.append(fa.pts)
            pts_out.append(fb.pts)
        frames_in, frames_out = a.info.num_frames, b.info.num_frames
        tb_in, tb_out = a.info.time_base, b.info.time_base
    aa, ab = audio_packets(src), audio_packets(out)
    print(json.dumps({
        "clip": Path(src).name, "frames_in": frames_in, "frames_out": frames_out,
        "time_base": [str(tb_in), str(tb_out)], "pts_equal": pts_in == pts_out and tb_in == tb_out,
        "times_equal": times_in == times_out, "frames_bit_identical": f"{identical}/{frames_in}",
        "audio_packets": [len(aa), len(ab)], "audio_identical": aa == ab,
    }))


if __name__ == "__main__":
    main()
