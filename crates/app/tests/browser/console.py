"""The workshop console in a real, headless Chromium (Playwright).

Run by crates/app/tests/console.rs against a real stack:
    python console.py BASE_URL SCREENSHOT_DIR

Every wait is for an element or attribute (Playwright's expect retries
until its timeout); there is no fixed sleep. Any console error, page
error or failed request fails the run.
"""

import os
import pathlib
import re
import sys

from playwright.sync_api import expect, sync_playwright

BASE = sys.argv[1].rstrip("/")
SHOTS = pathlib.Path(sys.argv[2])
CHROMIUM = os.environ.get("CHROMIUM_BIN", "/usr/bin/chromium")
# Debian's Chromium on a closed network: no sandbox (containers), no GPU,
# none of the background connections that would log errors.
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
expect.set_options(timeout=15_000)


def require(condition, what):
    """An assertion that `python -O` cannot remove."""
    if not condition:
        raise AssertionError(what)


def step(text):
    print(f"console test: {text}", flush=True)


def shot(page, name):
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    step(f"screenshot {path}")


def done(page, value):
    expect(page.locator("#result")).to_have_attribute("data-done", value)


def lesson(page, name, steps):
    """Clicks a lesson's button; its steps once they are all drawn."""
    page.click(f"[data-control='{name}']")
    done(page, name)
    drawn = page.locator("#result [data-testid=step]")
    expect(drawn).to_have_count(steps)
    return drawn.all()


def hops(page):
    return page.locator("#result [data-testid=hop]")


def hop_texts(page):
    return [" ".join(t.split()) for t in hops(page).all_inner_texts()]


def token_field(card, kind, name):
    return card.locator(f"tr[data-{kind}='{name}'] td").first


def main():
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = []
    try:
        run(problems)
    finally:
        # Also when a step failed: a JS error is often why.
        if problems:
            print("console test: the page logged errors:\n  " + "\n  ".join(problems), flush=True)
    if problems:
        sys.exit(1)
    step("all checks passed, no console error")


def run(problems):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1000})
        page.on(
            "console",
            lambda m: problems.append(f"console {m.type}: {m.text}")
            if m.type in ("error", "assert")
            else None,
        )
        page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
        page.on(
            "requestfailed",
            lambda r: problems.append(f"request failed: {r.url} {r.failure}"),
        )

        step(f"loading {BASE}/")
        page.goto(f"{BASE}/")
        expect(page.locator("body")).to_have_attribute("data-ready", "1")
        expect(page.locator("#scenarios li")).to_have_count(10)
        expect(page.locator("#scenarios li[data-scenario='6'] .teaches")).to_contain_text(
            "private_key_jwt"
        )

        step("scenario 1, valid, with the mouse")
        page.click("#scenarios li[data-scenario='1'] button:not(.expired)")
        done(page, "1-valid")
        expect(page.locator("#result [data-testid=verdict]")).to_contain_text("Accepted (200)")
        expect(hops(page)).to_have_count(4)
        texts = hop_texts(page)
        require(re.search(r"browser → servicea GET /scenario1 200", texts[0]), texts)
        require(re.search(r"servicea → jwt-factory POST /issueToken/servicea 200", texts[1]), texts)
        require(re.search(r"servicea → serviceb GET /scenario1-server 200", texts[2]), texts)
        require(re.search(r"serviceb → jwt-factory POST /verify/servicea 200", texts[3]), texts)
        card = page.locator("#result [data-testid=token]").first
        expect(token_field(card, "claim", "aud")).to_contain_text("serviceb")
        expect(page.locator("#result tr.aud")).to_have_count(1)
        expect(token_field(card, "claim", "sub")).to_contain_text("servicea")
        expect(token_field(card, "field", "alg")).to_have_text(re.compile(r"^(RS|ES|PS|Ed)"))
        kid = token_field(card, "field", "kid").inner_text().strip()
        require(kid.startswith("servicea"), kid)
        expect(token_field(card, "claim", "exp")).to_contain_text("expires in")
        check = page.locator("#result [data-testid=check]").filter(has_text="jwt-factory")
        expect(check.first).to_contain_text("valid")
        expect(check.first).to_contain_text(kid)
        expect(check.first.locator("[data-testid=required]")).to_contain_text("aud=serviceb")
        expect(check.first.locator("[data-testid=required]")).to_contain_text("sub=servicea")
        expect(page.locator("#result .diagram svg text.lane-name")).to_have_count(4)
        shot(page, "scenario1")

        step("scenario 1, expired, with the keyboard (E)")
        page.keyboard.press("e")
        done(page, "1-expired")
        verdict = page.locator("#result [data-testid=verdict]")
        expect(verdict).to_contain_text("Refused by jwt-factory (403)")
        expect(page.locator("#result [data-testid=reason]")).to_have_text("jwt expired")
        expect(token_field(page.locator("#result [data-testid=token]").first, "claim", "exp")).to_contain_text(
            "EXPIRED"
        )
        refused = page.locator("#result [data-testid=check]").filter(has_text="refused")
        expect(refused.first).to_contain_text("jwt expired")
        shot(page, "scenario1-expired")
        # The README's picture (docs/img/console.png): what the room sees.
        page.screenshot(path=str(SHOTS / "console.png"))
        step(f"screenshot {SHOTS / 'console.png'} (the viewport)")

        step("scenario 3, with the keyboard (3)")
        page.keyboard.press("3")
        done(page, "3-valid")
        expect(page.locator("#result [data-testid=verdict]")).to_contain_text("Accepted (200)")
        texts = hop_texts(page)
        require(len(texts) == 2, texts)
        require(re.search(r"servicea → serviceb GET /scenario3-server 200", texts[1]), texts)
        card = page.locator("#result [data-testid=token]").first
        expect(token_field(card, "claim", "aud")).to_contain_text("serviceb")
        expect(token_field(card, "claim", "sub")).to_contain_text("servicea")
        expect(token_field(card, "claim", "iss")).to_contain_text("https://service-issuer")
        kid = token_field(card, "field", "kid").inner_text().strip()
        check = page.locator("#result [data-testid=check]").first
        expect(check).to_contain_text("serviceb")
        expect(check).to_contain_text(kid)
        shot(page, "scenario3")

        step("scenario 6, twice: the second token comes from servicea's cache")
        page.click("#scenarios li[data-scenario='6'] button:not(.expired)")
        done(page, "6-valid")
        expect(page.locator("#result [data-testid=verdict]")).to_contain_text("Accepted (200)")
        texts = hop_texts(page)
        require(any(re.search(r"servicea → jwt-factory POST /token 200", t) for t in texts), texts)
        require(any(re.search(r"servicea → serviceb GET /scenario6-server 200", t) for t in texts), texts)
        card = page.locator("#result [data-testid=token]").first
        expect(token_field(card, "field", "typ")).to_have_text("at+jwt")
        expect(token_field(card, "claim", "client_id")).to_contain_text("servicea")
        expect(token_field(card, "claim", "aud")).to_contain_text("serviceb")
        expect(page.locator("#result [data-testid=check]").first).to_contain_text("at+jwt")
        page.evaluate("document.getElementById('result').dataset.done = ''")
        page.keyboard.press("6")
        done(page, "6-valid")
        texts = hop_texts(page)
        require(not any("POST /token" in t for t in texts), texts)
        expect(page.locator("#result .diagram text.note").filter(has_text="from my cache")).to_have_count(1)
        shot(page, "scenario6")

        step("the replay lesson: bearer accepted, bound refused")
        bearer, bound = lesson(page, "replay", 2)
        expect(bearer.locator("[data-testid=verdict]")).to_contain_text("Accepted (200)")
        expect(bound.locator("[data-testid=verdict]")).to_contain_text("Refused by serviceb (401)")
        expect(bound.locator("[data-testid=reason]")).to_contain_text("certificate")
        expect(bound.locator("tr[data-claim='cnf']")).to_have_count(1)
        shot(page, "replay")

        step("rotating servicea's factory key: the new key is published before it signs")
        lesson(page, "rotate", 2)
        keys = page.locator("#result [data-testid=keys]")
        expect(keys.locator("tbody tr")).to_have_count(2)
        for phase in ("next", "current"):
            expect(keys).to_contain_text(phase)
        for published in keys.locator("tbody tr td:nth-child(3)").all():
            expect(published).to_have_text("yes")
        shot(page, "rotation")

        browser.close()


if __name__ == "__main__":
    main()
