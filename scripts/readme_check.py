"""Run the README's commands in order on a fresh copy of the repository, as a newcomer would.

``scripts/readme-check`` runs this. It takes every command line of the README's ``sh``
blocks, and the installer's ``sitegate check-config FILE`` on each example site file, in
the order the README gives them, in a fresh copy of the repository (``git archive`` of
HEAD: what a clone has) with the project's virtual environment on PATH. Lines that cannot
run on a development machine are listed as skipped, with the reason: templates
(``invoice list|show|...``), commands of other programs (``curl``, ``sudo``), a service
that runs until stopped (``serve``). ``scripts/demo`` and ``scripts/test`` run with
``--full`` only (the test suite runs both in its own way). A line with one word of
alternatives (``expense show|explain|pdf ...``) runs once per alternative. Exit 1 when a
command fails.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OURS = ("sitegate", "sitegate-cloud", "scripts/demo", "scripts/test")
TIMEOUT = 300  # seconds for one command
PLACEHOLDER = re.compile(r"^(\[.*|.*\]|[A-Z][A-Z_]+|.*\.\.\.)$")  # [-o FILE], GW, ID, 3059...
LONG_TIMEOUT = 3600  # scripts/test (the whole suite) and scripts/demo, with --full


@dataclass(frozen=True)
class Command:
    line: int  # in the README
    text: str
    skip: str | None = None  # why it is not run


def _why_not(words: list[str], full: bool) -> str | None:
    if not words or words[0] not in OURS:
        return "not a sitegate command"
    text = " ".join(words)
    if "|" in text or "..." in text or any(PLACEHOLDER.match(w) for w in words):
        return "a template (alternatives or elisions)"
    if words[0] == "sitegate-cloud" and words[1:2] == ["serve"]:
        return "a service: runs until stopped"
    if "--broker" in words:
        return "talks to the site's MQTT broker"
    if any(w.startswith("/") for w in words[1:]):
        return "uses this machine's system paths"
    if words[0] in ("scripts/demo", "scripts/test") and not full:
        return "run with --full"
    return None


def commands(readme: str, full: bool = False) -> list[Command]:
    """The README's command lines in order: each line of a ``sh`` block (continuation lines
    joined, comments dropped), then ``sitegate check-config FILE`` for the examples."""
    out: list[Command] = []
    block, pending, start = False, "", 0
    for no, line in enumerate(readme.splitlines(), start=1):
        if line.startswith("```"):
            block = line.strip() == "```sh"
            continue
        if not block:
            continue
        if not pending:
            start = no
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        text, pending = pending + line, ""
        try:
            words = shlex.split(text, comments=True)
        except ValueError:
            words = text.split()
        if words[:1] == ["scripts/demo"] and "--duration" not in words:
            # the README's 60-second demo, not until Ctrl-C
            text = text.replace("scripts/demo", "scripts/demo --duration 60", 1)
        if words:  # run as written (the shell drops the comment)
            out += _expanded(start, text, words, full)
    if "sitegate check-config FILE" in readme:
        no = readme[:readme.index("sitegate check-config FILE")].count("\n") + 1
        for example in sorted((ROOT / "config" / "examples").glob("*.toml")):
            if not example.name.startswith("site-"):  # site-*.toml: cloud billing models
                out.append(Command(no, f"sitegate check-config config/examples/{example.name}"))
    return sorted(out, key=lambda c: c.line)  # in the README's order


def _expanded(line: int, text: str, words: list[str], full: bool) -> list[Command]:
    """The line as one command; a line with one word of alternatives (``show|explain``,
    ``--format csv|json``) and nothing elided as one command per alternative, in order."""
    alts = [i for i, w in enumerate(words) if "|" in w]
    if len(alts) == 1 and words[0] in OURS and "..." not in text \
            and not any(PLACEHOLDER.match(w) for w in words):
        i = alts[0]
        return [Command(line, shlex.join([*words[:i], alt, *words[i + 1:]]),
                        _why_not([*words[:i], alt, *words[i + 1:]], full))
                for alt in words[i].split("|")]
    return [Command(line, " ".join(text.split()), _why_not(words, full))]


def fresh_copy(into: Path) -> Path:
    """HEAD's files, as a clone has them (no venv, no build output); outside a git checkout
    (an exported tree) the files as they are, without .venv and .git."""
    into.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", "HEAD"],
                             capture_output=True)
    if archive.returncode == 0 and (ROOT / ".git").exists():
        subprocess.run(["tar", "-x", "-C", str(into)], input=archive.stdout, check=True)
        return into
    shutil.copytree(ROOT, into, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "*.egg-info"))
    return into


def _run(command: str, cwd: Path, env: dict[str, str],
         limit: float) -> subprocess.CompletedProcess[str] | None:
    """One command in its own process group; over ``limit`` the whole group is ended (a
    script's children too, not only the shell), and None returned."""
    proc = subprocess.Popen(command, shell=True, cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=limit)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        return None
    return subprocess.CompletedProcess(command, proc.returncode, out, err)


def run(readme_path: Path, workdir: Path, full: bool = False) -> int:
    copy = fresh_copy(workdir / "clone")
    env = dict(os.environ)
    # the project's commands from the venv running this (scripts/readme-check: .venv)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    failed = 0
    for c in commands(readme_path.read_text(encoding="utf-8"), full):
        if c.skip:
            print(f"skip  README:{c.line}  {c.text}  ({c.skip})", flush=True)
            continue
        limit = LONG_TIMEOUT if c.text.startswith(("scripts/test", "scripts/demo")) \
            else TIMEOUT
        res = _run(c.text, copy, env, limit)
        if res is None:
            failed += 1
            print(f"FAIL  README:{c.line}  {c.text}  (still running after {limit} s)",
                  flush=True)
            continue
        if res.returncode == 0:
            print(f"ok    README:{c.line}  {c.text}", flush=True)
            continue
        failed += 1
        why = (res.stderr.strip() or res.stdout.strip()).splitlines()[-3:]
        print(f"FAIL  README:{c.line}  {c.text}  (exit {res.returncode})", flush=True)
        for line in why:
            print(f"        {line}", flush=True)
    return 1 if failed else 0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--full", action="store_true",
                   help="also run scripts/demo and scripts/test (minutes)")
    p.add_argument("--readme", default=str(ROOT / "README.md"))
    p.add_argument("--keep", action="store_true", help="keep the copy (its path is printed)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="sitegate-readme-"))
    code = run(Path(args.readme), work, args.full)
    if args.keep:
        print(f"the copy: {work / 'clone'}")
    else:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return code


if __name__ == "__main__":
    sys.exit(main())
