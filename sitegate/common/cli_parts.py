"""A command made of parts: each part's CLI module adds its subcommands through
``register(subparsers)``; a part not there (an optional extra) is left out. Both
``sitegate`` and ``sitegate-cloud`` are built so."""

from __future__ import annotations

import argparse
import importlib
from collections.abc import Sequence


def build_parser(prog: str, description: str, parts: Sequence[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in parts:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that part is not there
                continue
            raise
        module.register(sub)
    return parser
