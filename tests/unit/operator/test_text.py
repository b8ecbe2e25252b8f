from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st
from trainingjob_operator.text import printable, printable_data

# What a hostile worker or tenant writes, and what a terminal must be shown instead.
HOSTILE = [
    ("\x1b[31mred\x1b[0m loss", "red loss"),                      # colour
    ("model\x1b[2J\x1b[H\x1b[1;1Hfine", "modelfine"),              # clear screen, cursor home
    ("\x1b[2K\x1b[1Aup", "up"),                                    # erase line, cursor up
    ("\x1b]8;;https://evil.example/\x1b\\s3://b/m\x1b]8;;\x1b\\", "s3://b/m"),  # OSC 8 link
    ("\x1b]0;pwned title\x07after", "after"),                      # window title, BEL-ended
    ("\x9b31mC1 CSI", "C1 CSI"),                                   # 8-bit CSI
    ("evil\rgood", "evil good"),                                   # CR overwrite
    ("bell\x07\x00nul\x7fdel\x85nel", "bellnuldel nel"),
    ("admin\u202egnp.exe", "admingnp.exe"),                         # bidi override
    ("\u2066iso\u2069late\u200f", "isolate"),                       # isolates, RLM
    ("a\nfake line\tand tab\u2028sep", "a fake line and tab sep"),  # one line stays one line
    ("\x1b[31", ""),                                               # cut short: all of it goes
    ("plain text, ünïcødé ✓", "plain text, ünïcødé ✓"),
]


@pytest.mark.parametrize(("hostile", "shown"), HOSTILE)
def test_control_characters_and_sequences_are_removed(hostile: str, shown: str) -> None:
    assert printable(hostile) == shown


def test_a_multiline_output_keeps_its_lines_and_tabs_and_shows_what_cr_overwrote() -> None:
    tail = "step 1\r\nstep 2\t10%\r\x1b[K20%\nTraceback\x1b[0m\n\x1b]0;x\n"
    assert printable(tail, multiline=True) == "step 1\nstep 2\t10%\n20%\nTraceback\n\n"


def test_data_from_the_cluster_is_made_printable_everywhere_but_keeps_named_lines() -> None:
    body = {"metadata": {"name": "j"}, "status": {
        "message": "done\n\x1b[1mPhase: Completed", "reason": "Bad\u202eReason",
        "failure": {"output": "line 1\nline\x1b[31m 2"}, "history": [{"message": "a\rb"}],
        "n": 3, "ok": True, "none": None}}
    assert printable_data(body, multiline={"output"}) == {"metadata": {"name": "j"}, "status": {
        "message": "done Phase: Completed", "reason": "BadReason",
        "failure": {"output": "line 1\nline 2"}, "history": [{"message": "a b"}],
        "n": 3, "ok": True, "none": None}}


def _unsafe(ch: str) -> bool:
    return unicodedata.category(ch) == "Cc" or ch in "\u061c\u200e\u200f" or (
        "\u202a" <= ch <= "\u202e") or ("\u2066" <= ch <= "\u2069")


@given(st.text(max_size=300), st.booleans())
def test_any_text_comes_out_safe_no_longer_and_stable(text: str, multiline: bool) -> None:
    out = printable(text, multiline)
    allowed = "\n\t" if multiline else ""
    assert not any(_unsafe(ch) and ch not in allowed for ch in out), repr(out)
    assert len(out) <= len(text)
    assert printable(out, multiline) == out
