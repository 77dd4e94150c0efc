"""The streamers' scripts and the alignment of recorded segments to script lines (the reviewed labels)."""

from __future__ import annotations

import pytest

from scripts.loop.domain import ScriptLine, align, held_out, layout, overlap_ms, streamers


def test_layout_places_lines_with_lead_in_and_gaps() -> None:
    lines = layout([1000, 2000], ["a", "b"], lead_in_s=0.5, gap_s=1.0)
    assert lines == [ScriptLine("a", 500, 1500), ScriptLine("b", 2500, 4500)]
    with pytest.raises(ValueError, match="2 lines but 1 durations"):
        layout([1000], ["a", "b"])


@pytest.mark.parametrize(("a", "b", "ms"), [
    ((0, 10), (5, 20), 5), ((0, 10), (10, 20), 0), ((0, 10), (20, 30), 0), ((5, 6), (0, 100), 1),
])
def test_overlap(a: tuple[int, int], b: tuple[int, int], ms: int) -> None:
    assert overlap_ms(a, b) == ms == overlap_ms(b, a)


SCRIPT = [ScriptLine("one", 500, 2500), ScriptLine("two", 3700, 5200), ScriptLine("three", 6400, 8000)]


@pytest.mark.parametrize(("segment", "expected"), [
    ((400, 2700), "one"),  # VAD pads a little on both sides
    ((3800, 5000), "two"),  # clipped a little: still most of the line
    ((6400, 7000), None),  # less than 60 % of the line: not a clean label
    ((500, 5200), None),  # two lines in one segment
    ((9000, 9500), None),  # nothing there (noise after the script)
])
def test_align(segment: tuple[int, int], expected: str | None) -> None:
    line = align(SCRIPT, segment)
    assert (line.text if line else None) == expected


def test_align_with_no_script() -> None:
    assert align([], (0, 100)) is None


def test_streamers_have_distinct_anchors_both_languages_and_never_say_a_held_out_sentence() -> None:
    team = streamers()
    assert len({s.anchor_id for s in team}) == len(team) >= 3
    assert {s.lang for s in team} == {"zh", "en"}
    spoken = {line for s in team for line in s.lines}
    assert not spoken & {sentence for _, sentence in held_out()}
    assert len(streamers(rounds=2)[0].lines) == 2 * len(team[0].lines)
