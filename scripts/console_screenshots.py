"""Screenshots of the web console's main pages, for a reviewer (not a test).

    scripts/console-screenshots [DIR]      # default: ./console-screenshots

Starts the console on a free loopback port over a fresh database holding the web tests'
billed site (tests/web/console_kit.py: two buildings, three flats, January 2026), with an
operator and a tenant, puts some invoices through their lifecycle, and has headless
Chromium (Debian's /usr/bin/chromium) save each page at desktop and phone width.
"""

from __future__ import annotations

import sys
import tempfile
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "web"))


def main() -> int:
    from console_kit import PASSWORD, SITE, make_console
    from playwright.sync_api import sync_playwright

    from sitegate.cloud.billing import ops

    out = Path(sys.argv[1] if len(sys.argv) > 1 else "console-screenshots").resolve()
    out.mkdir(parents=True, exist_ok=True)
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        print("needs Debian's chromium: apt-get install chromium", file=sys.stderr)
        return 2
    for c in make_console(Path(tempfile.mkdtemp(prefix="sitegate-shots-"))):
        a, b, k = c.numbers["anna"], c.numbers["ben"], c.numbers["carl"]
        ops.act(c.engine, SITE, a, "issue", date(2026, 2, 2))
        ops.act(c.engine, SITE, a, "pay", date(2026, 2, 10), amount="100.00")
        ops.act(c.engine, SITE, b, "issue", date(2026, 2, 2))
        ops.act(c.engine, SITE, b, "remind", date(2026, 3, 10))
        c.user("olga@example.ch", "operator")
        c.user("anna@example.ch", "tenant", "anna", language="de")
        pages = {
            "olga@example.ch": [
                ("sites", "/web/sites"),
                ("overview", f"/web/sites/{SITE}/invoices"),
                ("overview-filtered", f"/web/sites/{SITE}/invoices?period=2026-01"
                                      "&point=a-1&point=a-2"),
                ("invoice", f"/web/sites/{SITE}/invoices/{b}"),
                ("confirm-pay", f"/web/sites/{SITE}/invoices/{b}/act/pay"),
                ("site", f"/web/sites/{SITE}?meter=m1&day=2026-01-15"),
                ("fleet", "/web/fleet"),
            ],
            "anna@example.ch": [("tenant", "/web/me?to=2026-06")],
        }
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(chromium),
                                        args=["--no-sandbox", "--disable-gpu"])
            for email, shots in pages.items():
                for width, suffix in ((1200, ""), (390, "-phone")):
                    ctx = browser.new_context(viewport={"width": width, "height": 900})
                    page = ctx.new_page()
                    page.goto(f"{c.url}/web/login")
                    if email == "olga@example.ch" and not suffix:
                        page.screenshot(path=str(out / "login.png"))
                    page.fill("input[name=email]", email)
                    page.fill("input[name=password]", PASSWORD)
                    page.click("button[type=submit]")
                    page.wait_for_load_state()
                    for name, path in shots:
                        page.goto(c.url + path)
                        page.wait_for_load_state("networkidle")
                        page.screenshot(path=str(out / f"{name}{suffix}.png"), full_page=True)
                    ctx.close()
            browser.close()
    print(f"screenshots in {out}: {', '.join(sorted(x.name for x in out.glob('*.png')))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
