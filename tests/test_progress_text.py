"""The command line's progress: rate and time left on a terminal; plain, short, ``\\r``-free
lines in a log file."""

from __future__ import annotations

import io

from wavegms.core.progress import Progress, TextProgressBar, format_seconds


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def run(bar: TextProgressBar, clock: Clock, total: int = 40, step: float = 0.5) -> None:
    for done in range(total + 1):
        bar(Progress("segment", done, total, f"img{done}.png"))
        clock.now += step


def test_a_terminal_gets_one_line_with_rate_and_eta():
    stream, clock = io.StringIO(), Clock()
    run(TextProgressBar(stream, terminal=True, clock=clock), clock)
    text = stream.getvalue()
    assert text.count("\r") == 41 and text.endswith("\n") and text.count("\n") == 1
    halfway = text.split("\r")[21]  # 20 of 40 done after 10 s: 2 images/s, 10 s left
    assert "20/40" in halfway and "2.00/s" in halfway and "ETA 10s" in halfway


def test_a_log_gets_plain_lines_each_tenth_and_the_last():
    stream, clock = io.StringIO(), Clock()
    run(TextProgressBar(stream, terminal=False, clock=clock), clock, total=200, step=0.1)
    lines = stream.getvalue().splitlines()
    assert "\r" not in stream.getvalue()
    assert 10 <= len(lines) <= 12  # the first, one per tenth, the last: not 201
    assert lines[0].startswith("segment: 0/200 (0%)")
    assert lines[-1].startswith("segment: 200/200 (100%) 10.00/s")
    assert any("ETA 10s" in line for line in lines)  # 100 left at 10 per second


def test_a_slow_log_still_gets_a_line_every_interval():
    stream, clock = io.StringIO(), Clock()
    bar = TextProgressBar(stream, terminal=False, every=30, clock=clock)
    run(bar, clock, total=1000, step=10)  # a tenth takes 1000 s: a line every 30 s anyway
    lines = stream.getvalue().splitlines()
    assert len(lines) > 300 and "10.0s each" in lines[5]


def test_format_seconds():
    assert [format_seconds(s) for s in (0, 42.4, 185, 3725)] == ["0s", "42s", "3m05s", "1h02m"]
