"""Progress display: plain lines off a terminal, one redrawn bar on one, nothing when quiet; ETA."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest

from plugin.cli import run
from plugin.progress import BAR_WIDTH, Progress, eta_seconds, format_duration
from tests.plugin.media import write_clip

#: ETA tolerance in seconds (float arithmetic only).
ETA_TOL_S = 1e-9
LINE = re.compile(r"^render: (\d+)/100 frames(, [\d.]+ fps)?, (ETA \d+:\d\d|ETA \?|done in \d+:\d\d)$")


class FakeClock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


def run_frames(progress: Progress, clock: FakeClock, total: int | None, frames: int, step_s: float) -> None:
    for done in range(1, frames + 1):
        clock.t += step_s
        progress(done, total)


def test_eta_is_the_mean_rate_extrapolated() -> None:
    assert eta_seconds(25, 100, 5.0) == pytest.approx(15.0, abs=ETA_TOL_S)  # 5 fps, 75 left
    assert eta_seconds(26, 100, 5.0, since=1) == pytest.approx(74 * 5.0 / 25, abs=ETA_TOL_S)
    assert eta_seconds(100, 100, 7.0) == 0.0
    assert eta_seconds(1, 100, 1.0) is None  # too few frames to know a rate
    assert eta_seconds(10, None, 1.0) is None
    assert eta_seconds(10, 100, 0.0) is None
    assert format_duration(15.0) == "0:15"
    assert format_duration(14.2) == "0:15"  # rounded up: never promises too early
    assert format_duration(3725) == "1:02:05"
    assert format_duration(None) == "?"


def test_plain_lines_are_rate_limited_and_parseable() -> None:
    clock, out = FakeClock(), io.StringIO()
    p = Progress("render", stream=out, interval=3.0, clock=clock, tty=False)
    run_frames(p, clock, 100, 100, 0.1)  # 10 fps for 10 s
    lines = out.getvalue().splitlines()
    assert all(LINE.match(line) for line in lines), lines
    # 9.9 s after the first report at one line per 3 s, plus the final one
    assert len(lines) == 4
    assert lines[-1].startswith("render: 100/100 frames, 10.0 fps, done in 0:10")
    first = LINE.match(lines[0])
    assert first is not None and first.group(1) == "31"  # the first line comes one interval in
    assert "ETA 0:07" in lines[0]  # 69 frames left at 10 fps: 6.9 s, shown rounded up
    assert "\r" not in out.getvalue()


def test_plain_close_reports_a_step_that_stopped_early() -> None:
    clock, out = FakeClock(), io.StringIO()
    with Progress("render", stream=out, interval=3.0, clock=clock, tty=False) as p:
        run_frames(p, clock, None, 12, 0.1)
    lines = out.getvalue().splitlines()
    assert lines == ["render: 12 frames, 10.0 fps"]


def test_tty_bar_redraws_one_line_and_ends_it() -> None:
    clock, out = FakeClock(), FakeTty()
    p = Progress("track", stream=out, clock=clock)
    assert p.is_tty
    run_frames(p, clock, 40, 40, 0.0625)  # 16 fps, a redraw at most every 0.1 s: every 2nd frame
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1  # one line, ended once
    draws = text.split("\r")[1:]
    assert len(draws) == 21  # frames 1, 3, ..., 39 and the last (40): throttled, not 40 times
    last = draws[-1].replace("\x1b[K", "").strip()
    assert last.startswith("track") and "[" + "#" * BAR_WIDTH + "]" in last
    assert "40/40 frames" in last and "16.0 fps" in last and "done in 0:03" in last  # 2.44 s, rounded up
    half = next(d for d in draws if " 21/40 frames" in d)
    filled = BAR_WIDTH * 21 // 40
    assert "[" + "#" * filled + "-" * (BAR_WIDTH - filled) + "]" in half
    assert "ETA 0:02" in half  # 19 frames left at 16 fps: 1.19 s


def test_tty_bar_closed_early_still_ends_its_line() -> None:
    clock, out = FakeClock(), FakeTty()
    with Progress("render", stream=out, clock=clock) as p:
        run_frames(p, clock, 100, 30, 0.2)
    assert out.getvalue().endswith("\n")
    assert "30/100 frames" in out.getvalue().split("\r")[-1]


def test_quiet_writes_nothing() -> None:
    for tty in (False, True):
        clock = FakeClock()
        out = FakeTty() if tty else io.StringIO()
        with Progress("render", quiet=True, stream=out, clock=clock) as p:
            run_frames(p, clock, 50, 50, 1.0)
        assert out.getvalue() == ""


def test_json_is_the_only_thing_on_stdout_and_quiet_silences_stderr(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    clip = write_clip(tmp_path / "in.mp4", num_frames=12)
    level = logging.getLogger().level
    try:
        assert run(["render", str(clip), "-o", str(tmp_path / "a.mp4"), "--json"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["frames_written"] == 12  # the whole of stdout is one JSON document
        assert "render: 12/12 frames" in err  # progress went to stderr (not a terminal: plain lines)
        assert run(["render", str(clip), "-o", str(tmp_path / "b.mp4"), "--quiet", "--json"]) == 0
        out, err = capsys.readouterr()
        assert json.loads(out)["frames_written"] == 12 and err == ""
    finally:
        logging.getLogger().setLevel(level)


def test_a_failing_step_adds_no_line_but_ends_the_bar() -> None:
    for tty, expect in ((False, ""), (True, "\n")):
        clock = FakeClock()
        out = FakeTty() if tty else io.StringIO()
        with pytest.raises(RuntimeError):
            with Progress("render", stream=out, interval=3.0, clock=clock, tty=tty) as p:
                run_frames(p, clock, 100, 5, 0.1)
                raise RuntimeError("decode failed")
        assert out.getvalue().endswith(expect) and out.getvalue().count("\n") == len(expect)
