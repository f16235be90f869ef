"""Labels in the invoices' languages: one flat TOML catalogue per language.

``text("de", "balance")`` -> "Saldo". Keys are plain snake_case names; a value may hold
``{name}`` fields filled from keyword arguments. A key missing from a catalogue falls back
to English, and a key missing from English shows as the key itself (a test keeps the
catalogues in step). The web console uses these; invoices can use the same.
"""

from __future__ import annotations

import tomllib
from functools import cache
from pathlib import Path

LANGUAGES = ("en", "de")
DEFAULT = "en"
_DIR = Path(__file__).resolve().parent


@cache
def catalogue(lang: str) -> dict[str, str]:
    if lang not in LANGUAGES:
        lang = DEFAULT
    return tomllib.loads((_DIR / f"{lang}.toml").read_text(encoding="utf-8"))


def text(lang: str, key: str, **fields: object) -> str:
    value = catalogue(lang).get(key) or catalogue(DEFAULT).get(key) or key
    return value.format(**fields) if fields else value


def pick(accept_language: str | None) -> str:
    """The first of our languages named in an Accept-Language header (else English)."""
    for part in (accept_language or "")[:200].split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT
