"""What the cloud's site commands (billing, expense, stays, jobs, payments, ocmf) share:
the --db/--site/--json options, a subcommand's wiring, clear errors, bounded input files,
files written."""

from __future__ import annotations

import argparse
import functools
import json
import sys
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from sitegate.cloud.billing.sitemodel import SiteModelError
from sitegate.common.output import emit

Command = Callable[[argparse.Namespace], int]
# an error that lists its problems: the lines to print (without "error: ") for it
Problems = Callable[[Any, argparse.Namespace], Iterable[str]]


def common(p: argparse.ArgumentParser, site: bool = True) -> None:
    p.add_argument("--db", required=True, help="database URL or SQLite file path")
    if site:
        p.add_argument("--site", help="site id (optional when the database holds one site)")
    p.add_argument("--json", action="store_true", help="machine-readable output")


def command(ss: argparse._SubParsersAction, name: str, help: str,  # type: ignore[type-arg]
            func: Command, site: bool = True) -> argparse.ArgumentParser:
    """The subcommand ``name`` with the common options, running ``func``; the caller adds
    its own arguments to the parser returned."""
    q: argparse.ArgumentParser = ss.add_parser(name, help=help)
    common(q, site)
    q.set_defaults(func=func)
    return q


def guard(*errors: type[Exception], listed: Mapping[type[Exception], Problems] | None = None,
          footer: str = "nothing stored") -> Callable[[Command], Command]:
    """Bad input is exit 2 with clear lines, never a traceback: an error of ``listed`` one
    line per problem and ``footer``, one of ``errors`` one line."""
    problems = dict(listed or {})

    def wrap(fn: Command) -> Command:
        @functools.wraps(fn)
        def run(args: argparse.Namespace) -> int:
            try:
                return fn(args) or 0
            except tuple(problems) as exc:
                lines = next(f(exc, args) for t, f in problems.items() if isinstance(exc, t))
                sys.stderr.write("".join(f"error: {p}\n" for p in lines) + f"{footer}\n")
            except errors as exc:
                sys.stderr.write(f"error: {exc}\n")
            return 2
        return run
    return wrap


def write_file(out: Path, data: bytes, as_json: bool, **more: Any) -> None:
    """Write ``data`` to ``out`` and say so (in --json the file, its size and ``more``)."""
    out.write_bytes(data)
    emit({"file": str(out), "bytes": len(data), **more}, as_json,
         f"wrote {out}" + "".join(f" ({k} {v})" for k, v in more.items()))


def to_output(text: str, output: str | None) -> bool:
    """An export to its file (-o) or to stdout; whether it went to a file."""
    if output:
        Path(output).write_text(text, encoding="utf-8")
        return True
    sys.stdout.write(text)
    return False


def bounded(path: str, limit: int) -> Path:
    """The path of a file no larger than ``limit`` bytes (a larger one is refused before
    it is read)."""
    p = Path(path)
    if p.stat().st_size > limit:
        raise ValueError(f"{p.name}: larger than {limit} bytes")
    return p


def read_document(path: str, limit: int) -> Any:
    """A TOML or JSON document (JSON when it starts with ``{`` or ``[``), bounded; a file
    that is neither is a SiteModelError naming the file."""
    data = bounded(path, limit).read_bytes()
    try:
        text = data.decode("utf-8-sig")
        return json.loads(text) if text.lstrip()[:1] in ("{", "[") else tomllib.loads(text)
    except (UnicodeDecodeError, ValueError) as exc:  # TOMLDecodeError is a ValueError
        raise SiteModelError([f"{Path(path).name}: {exc}"]) from None
