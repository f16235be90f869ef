"""End to end in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright; no
browser is downloaded): an operator logs in, filters the overview, issues and pays an
invoice and downloads its PDF; a tenant sees only their own invoices and plot, and is
refused another tenant's; a form posted without its CSRF token is refused.

One browser for the module, a fresh context (cookies) per person."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from console_kit import PASSWORD, SITE, Console

from sitegate.cloud.billing import ops

CHROMIUM = Path("/usr/bin/chromium")
pytestmark = [pytest.mark.skipif(not CHROMIUM.exists(),
                                 reason="needs Debian's chromium (.ci/run installs it)"),
              pytest.mark.xdist_group("web-browser")]  # one browser, one worker


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM),
                              args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


def _login(browser, console: Console, email: str):  # type: ignore[no-untyped-def]
    ctx = browser.new_context(accept_downloads=True, viewport={"width": 1100, "height": 900})
    page = ctx.new_page()
    page.goto(f"{console.url}/web/")
    assert page.url.endswith("/web/login")
    page.fill("input[name=email]", email)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    return ctx, page


def test_operator_filters_issues_pays_and_downloads(browser, console: Console) -> None:
    console.user("op@example.ch", "operator")
    ctx, page = _login(browser, console, "op@example.ch")
    assert page.url.endswith("/web/sites")
    page.click("text=Invoices")
    # January 2026, all three flats: 223.20 + 111.60 + 446.40 = 781.20 billed... as drafts,
    # which bill nothing yet: Amount 0.00 and 3 drafts
    row = page.locator("#overview tbody tr[data-period='2026-01'] td")
    assert row.nth(1).inner_text() == "0.00" and row.nth(4).inner_text() == "3"
    # filter: Haus A's second flat (Ben) and the period
    page.select_option("select[name=point]", ["a-2"])
    page.select_option("select[name=period]", "2026-01")
    page.click("#filters button[type=submit]")
    assert "point=a-2" in page.url
    drill = page.locator("#drill tbody tr")
    assert drill.count() == 1 and "Ben Beispiel" in drill.inner_text()
    number = console.numbers["ben"]
    page.click(f"#drill tr[data-number='{number}'] >> text={number}")
    # issue, with its confirmation
    page.click("a[data-action=issue]")
    assert "Issue invoice" in page.inner_text("main")
    page.fill("input[name=date]", "2026-02-02")
    page.click("button[type=submit].danger")
    assert page.inner_text("#state") == "in progress"
    # pay: the balance is proposed; 372 kWh x 0.30 = 111.60
    page.click("a[data-action=pay]")
    assert page.input_value("input[name=amount]") == "111.60"
    page.fill("input[name=date]", "2026-02-20")
    page.click("button[type=submit].danger")
    assert page.inner_text("#state") == "settled"
    assert page.inner_text("#balance") == "CHF 0.00"
    with page.expect_download() as dl:
        page.click("#pdf")
    assert Path(dl.value.path()).read_bytes()[:5] == b"%PDF-"
    # back in the overview (Ben's flat, January): Amount and Collected 111.60, 1 settled
    page.goto(f"{console.url}/web/sites/{SITE}/invoices?period=2026-01&point=a-2")
    cells = page.locator("#overview tbody tr td")
    assert [cells.nth(i).inner_text() for i in (1, 2, 3, 6)] == \
        ["111.60", "111.60", "0.00", "1"]
    ctx.close()


def test_tenant_sees_only_their_own_and_is_refused_another(browser, console: Console) -> None:
    for account in ("anna", "ben"):
        ops.act(console.engine, SITE, console.numbers[account], "issue")
    console.user("anna@example.ch", "tenant", "anna")
    ctx, page = _login(browser, console, "anna@example.ch")
    page.goto(f"{console.url}/web/me?to=2026-06")
    mine = page.locator("#my-invoices tbody tr")
    assert mine.count() == 1
    assert mine.get_attribute("data-number") == str(console.numbers["anna"])
    assert "Ben" not in page.inner_text("main")
    # her plot is drawn (uPlot's canvas), and its table says January: 744 now, 595.2 before
    page.wait_for_selector("figure.chart .plot canvas")
    jan = page.locator("table.consumption tr", has_text="2026-01").locator("td")
    assert jan.all_text_contents() == ["2026-01", "744.00", "595.2"]
    with page.expect_download() as dl:
        page.click(f"#my-invoices tr[data-number='{console.numbers['anna']}'] >> text=PDF")
    assert Path(dl.value.path()).read_bytes()[:5] == b"%PDF-"
    # Ben's invoice, by its address: refused as if it did not exist
    resp = page.goto(f"{console.url}/web/me/{SITE}/invoices/{console.numbers['ben']}/pdf")
    assert resp.status == 404
    resp = page.goto(f"{console.url}/web/sites/{SITE}/invoices/{console.numbers['ben']}")
    assert resp.status == 403
    resp = page.goto(f"{console.url}/web/sites/{SITE}/invoices")
    assert resp.status == 403
    ctx.close()


def test_form_posted_without_its_csrf_token_is_refused(browser, console: Console) -> None:
    console.user("op@example.ch", "operator")
    ctx, page = _login(browser, console, "op@example.ch")
    number = console.numbers["carl"]
    page.goto(f"{console.url}/web/sites/{SITE}/invoices/{number}/act/issue")
    page.locator("main input[name=csrf]").evaluate("e => e.remove()")
    page.click("button[type=submit].danger")
    assert "did not come from this site" in page.inner_text("main")
    page.goto(f"{console.url}/web/sites/{SITE}/invoices/{number}")
    assert page.inner_text("#state") == "draft"
    ctx.close()
