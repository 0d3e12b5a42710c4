"""Database URLs in messages: never with their password (light enough for the command line to import early)."""

from __future__ import annotations

import re

#: `user:password@` in a URL inside a longer message: everything from the user's `:` to the last `@` before a
#: blank, as the password may hold `@` or `/` (SQLAlchemy reads `bf:s3cr/et@db` as password `s3cr/et`).
_CREDENTIALS = re.compile(r"(?P<scheme>://[^/@:\s]*):[^\s]*@")
#: A password given as a query parameter (`?password=...`, `&password=...`), which libpq and asyncpg accept.
_PASSWORD_PARAMETER = re.compile(r"(?P<name>[?&;]password=)[^&;\s]*", re.IGNORECASE)
_HIDDEN = "****"


def masked_url(text: str) -> str:
    """`text` with every URL's password replaced: `user:****@host`, `?password=****`."""
    return _PASSWORD_PARAMETER.sub(rf"\g<name>{_HIDDEN}", _masked_credentials(text))


def _masked_credentials(text: str) -> str:
    if "://" in text and not any(c.isspace() for c in text):
        # the whole text is one URL: SQLAlchemy knows where its password ends better than any pattern
        from sqlalchemy.engine import make_url  # imported here: the command line imports this module early

        try:
            url = make_url(text)
        except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads: the pattern below still masks it
            pass
        else:
            if url.password is None:
                return text
            return url.set(password="PASSWORD").render_as_string(hide_password=False).replace(
                ":PASSWORD@", f":{_HIDDEN}@", 1)
    return _CREDENTIALS.sub(rf"\g<scheme>:{_HIDDEN}@", text)
