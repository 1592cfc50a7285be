"""Masking passwords: the one function every message, --json, run record and read.py uses.

libpq takes a password in four forms, and each is masked wherever it appears in
a text: a URL's user-info (``postgresql://user:PW@host/db``), a URL's query
(``?password=PW``), a keyword/value string (``host=h password=PW``, the value
quoted or not, with backslash escapes) and the environment (``PGPASSWORD=PW``).
Passwords known by value (the settings', the environment's, those parsed out of
a connection string) are masked anywhere in the text too, also percent-encoded:
a driver message may quote a piece of a connection string in a form of its own.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

MASK = "***"

# A URL's user-info (libpq's, a Pushgateway's) ends at the first '@'; a password
# cannot hold an unencoded '@' or '/'.
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^\s:@/?#]*:)([^@/\n]*)(?=@)")
# A value masked before, followed by what a message puts after it, stays as it is
# (masking again would take the ": reason" after it along).
_MASKED = r"\*\*\*(?=[:;,)\s]|$)|"
_QUERY = re.compile(r"(?i)([?&]password=)(" + _MASKED + r"[^&#\s]*)")
# Keyword/value: a quoted value (backslash escapes inside), or one up to white space.
_KEYWORD = re.compile(r"(?i)(?<![\w?&])((?:PG)?password\s*=\s*)"
                      r"(" + _MASKED + r"'(?:\\.|[^'\\])*'?|(?:\\.|[^\s\\])+)")
_UNESCAPE = re.compile(r"\\(.)")


def mask(text: str, known: Iterable[str] = ()) -> str:
    """``text`` with every password in it replaced by ``***``: each libpq form, and ``known``."""
    text = _USERINFO.sub(lambda m: m.group(1) + MASK, text)
    text = _QUERY.sub(lambda m: m.group(1) + MASK, text)
    text = _KEYWORD.sub(lambda m: m.group(1) + MASK, text)
    literal = {form for secret in known if secret
               for form in (secret, quote(secret, safe=""), quote(secret))}
    for secret in sorted(literal - {MASK}, key=len, reverse=True):  # longest first
        text = text.replace(secret, MASK)
    return text


def passwords_in(dsn: str) -> set[str]:
    """The passwords a connection string holds, as libpq reads them (to mask them by value)."""
    found = set()
    for m in _USERINFO.finditer(dsn):
        found.add(unquote(m.group(2)))
    for m in _QUERY.finditer(dsn):
        found.add(unquote(m.group(2)))
    if not dsn.lower().startswith(("postgresql://", "postgres://")):
        for m in _KEYWORD.finditer(dsn):
            value = m.group(2)
            if value.startswith("'"):
                value = value[1:-1] if len(value) > 1 and value.endswith("'") else value[1:]
            found.add(_UNESCAPE.sub(r"\1", value))
    return found - {""}


def known_passwords(connect_args: Mapping[str, str],
                    environ: Mapping[str, str] | None = None) -> set[str]:
    """Every password a connection may use: its arguments' and PGPASSWORD (libpq reads it too)."""
    env = os.environ if environ is None else environ
    found = passwords_in(connect_args.get("dsn", ""))
    found.update(p for p in (connect_args.get("password"), env.get("PGPASSWORD")) if p)
    return found


def mask_all(value: object, known: Iterable[str] = ()) -> object:
    """A JSON-able value with every string in it masked (before encoding: escapes stay valid)."""
    if isinstance(value, str):
        return mask(value, known)
    if isinstance(value, dict):
        return {k: mask_all(v, known) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_all(v, known) for v in value]
    return value


class MaskingFilter(logging.Filter):
    """A log handler's filter: each line masked, with ``known`` once the settings are read."""

    def __init__(self) -> None:
        super().__init__()
        self.known: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = mask(record.getMessage(), self.known), None
        return True
