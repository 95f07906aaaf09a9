#!/usr/bin/env python3
"""Open every page of the built documentation site in a real browser (headless Chromium, driven by
Playwright) and report console errors, page errors and failed requests; screenshot the home page and a guide.

    mkdocs build --strict --site-dir /tmp/site
    python scripts/docs_browser_check.py /tmp/site [--chromium /usr/bin/chromium] [--shots /tmp/shots]

Needs `pip install playwright` and a Chromium (Debian: apt-get install chromium); nothing is downloaded.
Exit code 1 when any page logged an error.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import threading
from pathlib import Path

from playwright.sync_api import sync_playwright

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SHOTS = {"index.html": "home.png", "guides/own-model/index.html": "guide-own-model.png"}


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        pass


def serve(site: Path) -> tuple[http.server.ThreadingHTTPServer, str]:
    handler = functools.partial(QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_address[1]}/"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("site", type=Path, help="the folder mkdocs build wrote")
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="the Chromium executable")
    parser.add_argument("--shots", type=Path, default=Path("/tmp/docs-shots"), help="folder for the screenshots")
    args = parser.parse_args()
    pages = sorted(path.relative_to(args.site).as_posix() for path in args.site.rglob("index.html"))
    server, base = serve(args.site)
    args.shots.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=args.chromium, args=CHROMIUM_FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        current = {"url": ""}
        page.on("console", lambda m: m.type == "error" and problems.append(f"{current['url']}: console: {m.text}"))
        page.on("pageerror", lambda error: problems.append(f"{current['url']}: page error: {error}"))
        page.on("requestfailed", lambda r: problems.append(f"{current['url']}: request failed: {r.url}"))
        for name in pages:
            current["url"] = base + name
            response = page.goto(base + name, wait_until="networkidle")
            if response is None or not response.ok:
                problems.append(f"{name}: HTTP {response.status if response else 'no response'}")
            if name in SHOTS:
                page.screenshot(path=str(args.shots / SHOTS[name]))
        browser.close()
    server.shutdown()
    print(f"{len(pages)} pages opened in {args.chromium}; screenshots in {args.shots}")
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    raise SystemExit(main())
