"""Data shown as data on the command line: free text from events and databases is never markup or a terminal code.

A holder named `[/]` would otherwise crash every table it appears in (Rich reads it as a closing tag), a
`[link=...]` would render as a clickable link, and raw escape sequences (`\\x1b[31m`, `\\x1b]8;;...`) would reach
the terminal, even when the output is piped. `safe` is the one way a command puts such text on screen.
"""

from __future__ import annotations

from rich.markup import escape

#: Bidirectional overrides and isolates: they reorder what a terminal shows without being visible themselves.
_BIDI = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f")


def visible(value: object) -> str:
    """`value` as text with every control character written out as its escape (`\\x1b`, `\\n`, `\\u202e`)."""
    text = str(value)
    return "".join(_shown(char) for char in text)


def _shown(char: str) -> str:
    code = ord(char)
    if code < 0x20 or 0x7F <= code < 0xA0 or char in _BIDI:
        return repr(char)[1:-1] if code < 0x100 else f"\\u{code:04x}"
    return char


def safe(value: object) -> str:
    """`value` ready for a Rich table cell or a markup string: control characters visible, markup escaped, so it
    prints literally (`[/]` prints as `[/]`)."""
    return escape(visible(value))
