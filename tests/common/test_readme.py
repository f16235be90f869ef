"""The README leads nowhere that does not exist: every file or folder of the repository it
names is there (it pointed at ../shared/ARCHITECTURE.md, which is not in a clone)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("sitegate/", "config/", "systemd/", "docs/", "scripts/", "bench/", "tests/", "../")


def _named_paths(text: str) -> list[str]:
    names = set()
    for code in re.findall(r"`([^`\n]+)`", text):
        for word in code.split():
            word = word.rstrip(".,;:)")
            if word.startswith(TOPS) and "*" not in word and "{" not in word:
                names.add(word)
    return sorted(names)


def test_every_path_the_readme_names_exists() -> None:
    names = _named_paths((ROOT / "README.md").read_text(encoding="utf-8"))
    assert "docs/ARCHITECTURE.md" in names
    assert [n for n in names if not (ROOT / n).exists()] == []


def test_the_architecture_page_names_what_exists() -> None:
    """docs/ARCHITECTURE.md is kept current with the code: the modules it names are there."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    names = _named_paths(text)
    assert "sitegate/sync/protocol.py" in names
    # firmware_tools and cloud/auth are being built (the Trust section says so)
    missing = [n for n in names if not (ROOT / n).exists()
               and not n.startswith(("sitegate/firmware_tools/", "sitegate/cloud/auth/",
                                     "sitegate/common/signing.py", "config/mosquitto/"))]
    assert missing == []


@pytest.mark.timeout(900)  # each part adds commands; at load 14 the whole took ~7 min
def test_the_readmes_commands_run_in_order_on_a_fresh_copy() -> None:
    """scripts/readme-check's core (without --full: the demo and the suite are tested in
    their own way): every runnable README command succeeds on a copy of HEAD."""
    import subprocess
    import sys

    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "readme_check.py")],
                         capture_output=True, text=True, timeout=900)
    ran = [ln.split(None, 2)[2] for ln in res.stdout.splitlines() if ln.startswith("ok ")]
    for expected in ("sitegate check-config config/examples/", "sitegate-cloud migrate",
                     "sitegate-cloud site import", "sitegate-cloud bill"):
        assert any(r.startswith(expected) for r in ran), res.stdout
    failed = [ln.split(None, 2)[2] for ln in res.stdout.splitlines() if ln.startswith("FAIL")]
    assert failed == [], res.stdout


def test_readme_check_runs_each_alternative_and_skips_only_real_templates() -> None:
    """A line with one word of alternatives is one command per alternative (each must
    work as typed); elisions and placeholders stay templates."""
    import sys

    sys.path.insert(0, str(ROOT / "scripts"))
    import readme_check

    text = ("```sh\n"
            "sitegate-cloud expense show|pdf 2025-26 --db cloud.db   # a|b in a comment\n"
            "sitegate-cloud export --db cloud.db --format csv|json\n"
            "sitegate-cloud invoice list|show ...\n"
            "sitegate-cloud ocmf check|export --db cloud.db --gateway GW --session ID\n"
            "sitegate-cloud ocmf pin --db cloud.db --key 3059...\n"
            "```\n")
    got = [(c.text, c.skip is None) for c in readme_check.commands(text)]
    assert got == [
        ("sitegate-cloud expense show 2025-26 --db cloud.db", True),
        ("sitegate-cloud expense pdf 2025-26 --db cloud.db", True),
        ("sitegate-cloud export --db cloud.db --format csv", True),
        ("sitegate-cloud export --db cloud.db --format json", True),
        ("sitegate-cloud invoice list|show ...", False),
        ("sitegate-cloud ocmf check|export --db cloud.db --gateway GW --session ID", False),
        ("sitegate-cloud ocmf pin --db cloud.db --key 3059...", False)]
