"""Adding buses and meters to an installer's site file without losing a comment.

``meters import`` and ``scan --write-config`` both end here: the file is edited as a
tomlkit document (comments, order and layout stay as the installer wrote them), the new
text is checked whole like ``check-config`` (with the drivers' profile lookup the caller
hands in) and only then replaces the file, atomically (a crash leaves the old file or the
new one, never half of one).
"""

from __future__ import annotations

import os
import re
import tempfile
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import tomlkit
from tomlkit.items import AoT

from sitegate.common.sitecheck import ConfigError, Problem, ProfileLookup
from sitegate.common.sitefile import SiteConfig, parse_config

MAX_SITE_BYTES = 4 * 1024 * 1024  # a site file is a few kB; 4 MiB is far beyond any


class SiteEdit:
    """A site file opened for adding entries; ``save`` checks the result before writing.

    The new tables are inserted as text after the last element of their array: nothing
    else of the file is touched. (A tomlkit round trip is not enough: it regroups
    interleaved arrays, moving a ``[[buses]]`` written between meters up to the others.)
    tomlkit renders the new tables, so every value is quoted and escaped as TOML wants."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            if self.path.stat().st_size > MAX_SITE_BYTES:
                raise ConfigError(str(self.path), [Problem("", f"larger than "
                                                          f"{MAX_SITE_BYTES} bytes")])
            self.text = self.path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(str(self.path), [Problem("", f"cannot read file: "
                                                       f"{exc.strerror}")]) from exc
        try:
            self._data = tomllib.loads(self.text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(str(self.path), [Problem("", f"not valid TOML: {exc}")]) from exc

    def raw(self) -> dict[str, Any]:
        return self._data

    def add(self, key: str, entries: Iterable[Mapping[str, Any]], comment: str = "") -> int:
        """Append ``entries`` to the array of tables ``key`` (``[[meters]]``), after its
        last element, or at the end of the file when there is none yet."""
        tables = []
        for entry in entries:
            t = tomlkit.table()
            for k, v in entry.items():
                if v is not None:
                    t.add(k, _inline(v) if isinstance(v, dict) else v)
            tables.append(t)
        if not tables:
            return 0
        if key in self._data and not isinstance(self._data[key], list):
            raise ConfigError(str(self.path), [Problem(key, "is not an array of tables "
                                                            f"([[{key}]])")])
        doc = tomlkit.document()
        doc.append(key, AoT(tables))
        block = (f"# {comment}\n" if comment else "") + tomlkit.dumps(doc).strip("\n") + "\n"
        lines = self.text.splitlines(keepends=True)
        at = _after_last(lines, key)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        before = lines[:at]
        gap = "\n" if before and before[-1].strip() else ""
        after = lines[at:]
        sep = "\n" if after and after[0].strip() else ""
        self.text = "".join(before) + gap + block + sep + "".join(after)
        self._data = tomllib.loads(self.text)
        return len(tables)

    def render(self) -> str:
        return self.text

    def check(self, profiles: ProfileLookup) -> SiteConfig:
        """The edited file as check-config sees it (ConfigError naming every problem)."""
        return parse_config(self.render(), str(self.path), profiles)

    def save(self, profiles: ProfileLookup, out: str | Path | None = None) -> SiteConfig:
        cfg = self.check(profiles)
        write_atomically(Path(out) if out else self.path, self.render(),
                         mode_of=self.path)
        return cfg


_HEADER = re.compile(r"^\s*\[")
_QUOTES = re.compile(r"\"\"\"|\'\'\'")


def _after_last(lines: list[str], key: str) -> int:
    """Index of the line where new ``[[key]]`` tables go: after the last one's keys and
    before the comments and blank lines that lead into the next table; the end of the
    file when the array does not exist yet."""
    mine = re.compile(rf"^\s*\[\[\s*{re.escape(key)}\s*\]\]")
    last, inside = None, False
    headers = []
    for i, line in enumerate(lines):
        if len(_QUOTES.findall(line)) % 2:  # a multi-line string opens or closes here
            inside = not inside
            continue
        if inside:
            continue
        if mine.match(line):
            last = i
        if _HEADER.match(line):
            headers.append(i)
    if last is None:
        return len(lines)
    nxt = next((h for h in headers if h > last), len(lines))
    while nxt > last + 1 and (not lines[nxt - 1].strip()
                              or lines[nxt - 1].lstrip().startswith("#")):
        nxt -= 1
    return nxt


def write_atomically(path: Path, text: str, mode_of: Path | None = None) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same directory."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        if mode_of is not None and mode_of.exists():
            os.chmod(tmp, mode_of.stat().st_mode & 0o7777)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _inline(value: dict[str, Any]) -> Any:
    """A link such as ``serial = { port = "...", baudrate = 9600 }`` on one line, as the
    README writes it."""
    t = tomlkit.inline_table()
    t.update(value)
    return t
