"""Database URLs in messages: never with their password (light enough for the command line to import early)."""

from __future__ import annotations

import re

#: `user:password@` in a URL, parsable or not, also inside a longer message; the password may hold an `@`.
_CREDENTIALS = re.compile(r"(?P<scheme>://[^/@:\s]*):[^/\s]*@")


def masked_url(text: str) -> str:
    """`text` with every URL's password replaced: `user:****@host`."""
    return _CREDENTIALS.sub(r"\g<scheme>:****@", text)
