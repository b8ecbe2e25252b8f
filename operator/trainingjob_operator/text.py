"""Pure: text from workers and the cluster made safe to show on a terminal.

A termination message, a result's model name, a pod's or the API server's message are
written by whoever runs the pod (or sets its status), and the operator copies them into
status messages and Events that people read with kubectl, and the plugin prints them. A
terminal obeys the control characters in them: ANSI (ECMA-48) sequences move the cursor,
recolour or clear the screen, set the window title or, OSC 8, make a link say one thing
and open another; a CR makes what follows overwrite what came before; bidi overrides
(Unicode UAX #9: U+202A..U+202E, U+2066..U+2069) show text in another order than it is
(CVE-2021-42574, "Trojan Source"). `printable` is the one place that removes them.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

# ECMA-48 sequences, removed whole so no "[31m" is left behind: CSI (ESC [ or U+009B,
# parameters, intermediates, one final byte); the string sequences OSC, DCS, SOS, PM, APC up
# to their terminator (BEL or ST: ESC \ or U+009C) or the end of the line; any other ESC
# with its intermediates and final byte.
_SEQUENCE = re.compile(
    r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]?"
    r"|(?:\x1b[\]PX^_]|[\x90\x98\x9d\x9e\x9f])[^\x07\x1b\x9c\n]*(?:\x07|\x1b\\|\x9c)?"
    r"|\x1b[ -/]*[0-~]?")
# What ends a line for a terminal or for str.splitlines (CR alone: what follows overwrote
# the line, so it is shown as a line of its own and hides nothing).
_BREAK = re.compile("\r\n|[\r\n\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# Every other C0 and C1 control, DEL, and the bidi marks, embeddings, overrides, isolates.
_CONTROL = re.compile("[\x00-\x08\x0e-\x1b\x1f\x7f-\x84\x86-\x9f"
                      "\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: str, multiline: bool = False) -> str:
    """`text` without control characters. Line breaks become "\\n" and tabs stay when
    `multiline` (a worker's output tail is lines); else both become a space, so a message
    stays one line and cannot add a line of its own to what a tool prints."""
    if text.isprintable():  # the common case: nothing to do
        return text
    text = _SEQUENCE.sub("", text)
    text = _BREAK.sub("\n" if multiline else " ", text)
    if not multiline:
        text = text.replace("\t", " ")
    return _CONTROL.sub("", text)


def printable_data(data: Any, multiline: Collection[str] = ()) -> Any:
    """JSON-shaped data with every string (keys too) printable; the values of the keys in
    `multiline` keep their lines."""
    if isinstance(data, str):
        return printable(data)
    if isinstance(data, list):
        return [printable_data(v, multiline) for v in data]
    if isinstance(data, dict):
        return {printable(k): printable(v, True) if k in multiline and isinstance(v, str)
                else printable_data(v, multiline) for k, v in data.items()}
    return data
