"""The architecture's dependency rules (docs/ARCHITECTURE.md), checked two ways: a static
scan of every import statement (lazy ones inside functions included), and a real import of
each program's modules in a fresh interpreter, looking at what ended up in sys.modules."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

PKG = Path(__file__).resolve().parents[2] / "sitegate"
GATEWAY_SIDE = ("gateway", "drivers", "ocpp_server", "sync", "firmware_tools")
# What the cloud may not import of ours: the gateway's code.
NOT_FOR_CLOUD = ("sitegate.gateway", "sitegate.drivers", "sitegate.ocpp_server",
                 "sitegate.sync.client", "sitegate.demo")
# What the gateway may not import: the cloud, and the cloud's libraries (no use on a Pi).
CLOUD_LIBS = ("sqlalchemy", "fastapi", "fastapi_offline", "alembic", "qrbill", "fpdf", "starlette",
              "uvicorn", "msgspec")
NOT_FOR_GATEWAY = ("sitegate.cloud", "sitegate.demo", *CLOUD_LIBS)
# Billing's arrays: never imported by gateway code (the static scan). The import test cannot
# check it: sqlite-utils (a gateway dependency) imports numpy whenever it is installed.
CLOUD_ONLY_STATIC = ("numpy",)
# The one gateway-side exception: the gateway's CLI wires in `sitegate demo` by name
# (sitegate/gateway/cli.py), and the demo sits above both programs.
# fpdf2 is also the gateway's optional `report` extra: the commissioning report's PDF, in
# this one module, imported only when a PDF is written (the import test below still finds
# it unloaded).
ALLOWED = {("sitegate/firmware_tools/commission_pdf.py", "fpdf")}


def _hits(name: str, banned: tuple[str, ...]) -> bool:
    return any(name == b or name.startswith(b + ".") for b in banned)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every module an import statement in the file names, with its line."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.append((node.lineno, node.module))
            # `from sitegate import gateway` names the module in the alias
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names]
    return out


def _violations(parts: tuple[str, ...], banned: tuple[str, ...]) -> list[str]:
    found = []
    for part in parts:
        for path in sorted((PKG / part).rglob("*.py")):
            for line, name in _imports(path):
                if (str(path.relative_to(PKG.parent)), name.split(".")[0]) in ALLOWED:
                    continue
                if _hits(name, banned):
                    found.append(f"{path.relative_to(PKG.parent)}:{line}: imports {name}")
    return found


def test_static_cloud_imports_no_gateway_code() -> None:
    assert _violations(("cloud",), NOT_FOR_CLOUD) == []


def test_static_gateway_side_imports_no_cloud_code_or_dependency() -> None:
    assert _violations(GATEWAY_SIDE, NOT_FOR_GATEWAY + CLOUD_ONLY_STATIC) == []


def test_static_common_imports_neither_program() -> None:
    assert _violations(("common",), NOT_FOR_CLOUD + NOT_FOR_GATEWAY) == []


def test_the_scan_sees_lazy_and_aliased_imports(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    from sitegate.gateway.cli_core import x\n"
                   "    import sqlalchemy.orm\n    from sitegate import drivers\n")
    names = {n for _, n in _imports(bad)}
    assert {"sitegate.gateway.cli_core", "sqlalchemy.orm", "sitegate.drivers"} <= names
    assert _hits("sqlalchemy.orm", NOT_FOR_GATEWAY) and _hits("sitegate.drivers", NOT_FOR_CLOUD)


_LOAD = """
import importlib, json, pkgutil, sys
import sitegate
for top in sys.argv[1].split(","):
    pkg = importlib.import_module("sitegate." + top)
    for mod in pkgutil.walk_packages(pkg.__path__, pkg.__name__ + "."):
        if ".migrations" in mod.name or mod.name.endswith("__main__"):
            continue  # Alembic scripts run only under Alembic; __main__ runs a program
        importlib.import_module(mod.name)
print(json.dumps(sorted(sys.modules)))
"""


def _loaded(parts: str) -> list[str]:
    res = subprocess.run([sys.executable, "-c", _LOAD, parts], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize(("parts", "banned"), [
    ("cloud,common", NOT_FOR_CLOUD),
    (",".join(GATEWAY_SIDE) + ",common", NOT_FOR_GATEWAY),
])
def test_importing_every_module_of_a_program_loads_nothing_of_the_other(
        parts: str, banned: tuple[str, ...]) -> None:
    loaded = _loaded(parts)
    assert len(loaded) > 50  # it did import something
    assert [m for m in loaded if _hits(m, banned)] == []


def _graph(parts: tuple[str, ...]) -> dict[str, set[str]]:
    """Module -> the modules of ``parts`` it imports (lazy imports too; imports only for
    type checkers are left out: they do not run)."""
    paths = {".".join(p.relative_to(PKG.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for part in parts for p in (PKG / part).rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        tree = ast.parse(path.read_text(encoding="utf-8"))
        typing_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                       and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                       for n in ast.walk(node)}
        graph[name] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
            else:
                continue
            graph[name] |= {m for m in found if m in paths and m != name}
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    done: set[str] = set()

    def visit(node: str, trail: list[str]) -> list[str] | None:
        if node in trail:
            return [*trail[trail.index(node):], node]
        if node in done:
            return None
        for dep in sorted(graph[node]):
            if found := visit(dep, [*trail, node]):
                return found
        done.add(node)
        return None

    for start in sorted(graph):
        if found := visit(start, []):
            return found
    return None


def test_no_import_cycle_in_the_gateway_and_the_shared_code() -> None:
    """cli_core -> daemon -> remote_config -> cli_core was one: the site-file checks lived
    in a CLI module."""
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle(_graph(("gateway", "common"))) is None
