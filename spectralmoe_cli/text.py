"""Text from files shown on a terminal: control characters escaped, so one line stays one line.

Class names, file names and error messages can come from a checkpoint, a STAC item or a folder
an attacker wrote; printed raw, a newline there could forge an ``error:`` line in a cron log and
an escape sequence could rewrite the terminal. Every such string is printed through ``shown``.
"""

from __future__ import annotations

import unicodedata


def shown(text: str) -> str:
    """``text`` with every control character (newline, tab, ESC, DEL, C1) written as an escape."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(char: str) -> str:
    named = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
    if char in named:
        return named[char]
    code = ord(char)
    if unicodedata.category(char) in ("Zl", "Zp") or code > 0xFF:
        return f"\\u{code:04x}"
    return f"\\x{code:02x}"
