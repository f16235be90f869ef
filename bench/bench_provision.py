"""The SD card, timed: `provision write` of a bundle into a FAT image and the first start's
`provision take-up` (both checking manifest, digests, site file, token, CA) next to the
floor, copying the same files with plain mtools and nothing checked; and the installer's
budget for the card as a whole (issue 13: "in minutes"; here 120 s).

    .venv/bin/python bench/bench_provision.py
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from benchkit import ROOT, timed

sys.path.insert(0, str(ROOT))

from tests.provision.test_bundle import ca_cert, cli, fat_image, site, token  # noqa: E402

BUDGET = 120.0


def main() -> int:
    if shutil.which("mcopy") is None:
        print("needs mtools and dosfstools")
        return 2
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        out = tmp / "bundle"
        made = cli("provision", "bundle", "--site-config", str(site(tmp)), "--claim", token(),
                   "--ca", str(ca_cert(tmp / "ca.crt")), "--out", str(out))
        assert made.returncode == 0, made.stderr
        floor_img, img = fat_image(tmp / "floor.img"), fat_image(tmp / "boot.img")
        files = [p for p in out.rglob("*") if p.is_file() and not p.name.startswith("label")]

        def floor() -> None:
            subprocess.run(["mmd", "-i", str(floor_img), "::/sitegate"], check=True)
            for p in files:
                subprocess.run(["mcopy", "-i", str(floor_img), str(p),
                                f"::/{p.relative_to(out).as_posix()}"], check=True)

        t_floor = timed(floor)
        t_write = timed(lambda: cli("provision", "write", "--bundle", str(out),
                                    "--boot-partition", str(img)))
        t_take = timed(lambda: cli("provision", "take-up", "--boot-partition", str(img),
                                   "--config", str(tmp / "etc" / "site.toml")))
    print(f"{'step':34}{'ours':>9}{'floor/limit':>14}")
    print(f"{'write bundle to FAT image':34}{t_write:8.2f}s{t_floor:12.2f}s  (plain mcopy)")
    print(f"{'take-up at first start':34}{t_take:8.2f}s{'-':>13}")
    print(f"{'card total':34}{t_write + t_take:8.2f}s{BUDGET:12.0f}s  (installer budget)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
