"""Open a self-contained HTML report in a real headless Chromium, offline, and say what happened.

A helper for the report tests, not a test module. It drives the system's Chromium (Debian's
``chromium``) through Playwright's ``executable_path``, so no Playwright browser download is
needed. The network is off three times over: the browser context is ``offline``, every request
that is not ``file:``, ``data:``, ``blob:`` or ``about:`` is recorded and aborted, and Chromium's
host resolver answers every name with NOTFOUND.
"""

from __future__ import annotations

import io
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

BROWSER_NAMES = ("chromium", "chromium-browser", "google-chrome")
LOCAL_SCHEMES = ("file:", "data:", "blob:", "about:")
GRAPH_SELECTOR = ".plotly-graph-div"
LAUNCH_ARGS = [
    *"--headless --no-sandbox --disable-gpu --disable-quic --no-first-run".split(),
    *"--disable-background-networking --disable-component-update --disable-sync".split(),
    "--host-resolver-rules=MAP * ~NOTFOUND",  # no DNS at all: Chromium looks up Google hosts itself
]

# Number of graphs that plotly has drawn: each holds an svg.main-svg and has a nonzero size.
_COUNT_RENDERED = """sel => Array.from(document.querySelectorAll(sel)).filter(el => {
    const box = el.getBoundingClientRect();
    return el.querySelector('svg.main-svg') !== null && box.width > 0 && box.height > 0;
}).length"""
_ALL_RENDERED = f"sel => ({_COUNT_RENDERED})(sel) === document.querySelectorAll(sel).length"


@dataclass
class PageCheck:
    """What happened when a page was opened: errors, requests, graphs, screenshot and text."""

    console_errors: list[str]  # text of console messages of type "error"
    page_errors: list[str]  # uncaught exceptions
    network_requests: list[str]  # URLs of blocked requests (not file:, data:, blob:, about:)
    graphs_expected: int  # elements matching the graph selector
    graphs_rendered: int  # of those, how many hold an svg.main-svg and have a nonzero size
    screenshot_png: bytes  # full page
    text: str  # document.body.innerText
    title: str


def find_browser() -> str | None:
    """Return the path of a Chromium-family browser on ``PATH``, or None when there is none."""
    return next(filter(None, map(shutil.which, BROWSER_NAMES)), None)


def open_offline(
    html_path: Path,
    *,
    width: int = 1400,
    height: int = 900,
    timeout_s: float = 60,
    selector: str = GRAPH_SELECTOR,
) -> PageCheck:
    """Open ``html_path`` in headless Chromium with no network and report what happened.

    Parameters
    ----------
    html_path : Path
        The HTML file to open.
    width, height : int
        Viewport size in CSS pixels.
    timeout_s : float
        Budget for loading the page and waiting for every graph to render. Running out of it
        while waiting for graphs is not an error: the counts say how far rendering got.
    selector : str
        CSS selector of the graph elements to count.

    Returns
    -------
    PageCheck
        Console errors, uncaught exceptions, blocked requests, graph counts, a full-page
        screenshot, the body text and the title.

    Raises
    ------
    RuntimeError
        When no browser is found: tests call ``find_browser`` first and skip when it is None.
    playwright.sync_api.TimeoutError
        When the page itself does not load within ``timeout_s``.
    """
    from playwright.sync_api import Route, sync_playwright
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    executable = find_browser()
    if executable is None:
        raise RuntimeError(f"no browser found on PATH (looked for {', '.join(BROWSER_NAMES)})")
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []

    def block_remote(route: Route) -> None:
        if route.request.url.startswith(LOCAL_SCHEMES):
            route.continue_()
        else:
            requests.append(route.request.url)
            route.abort("internetdisconnected")

    deadline = time.monotonic() + timeout_s
    viewport = {"width": width, "height": height}
    with (
        sync_playwright() as pw,
        pw.chromium.launch(executable_path=executable, headless=True, args=LAUNCH_ARGS) as browser,
        browser.new_context(offline=True, viewport=viewport) as context,
    ):
        context.route("**/*", block_remote)
        page = context.new_page()
        page.on("console", lambda m: m.type == "error" and console_errors.append(m.text))
        page.on("pageerror", lambda e: page_errors.append(str(e)))
        page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=timeout_s * 1e3)
        remaining_ms = max(1.0, (deadline - time.monotonic()) * 1e3)
        try:
            page.wait_for_function(_ALL_RENDERED, arg=selector, timeout=remaining_ms)
        except PlaywrightTimeout:
            pass  # not every graph rendered in time: the counts below say how many
        return PageCheck(
            console_errors=console_errors,
            page_errors=page_errors,
            network_requests=requests,
            graphs_expected=page.locator(selector).count(),
            graphs_rendered=page.evaluate(_COUNT_RENDERED, selector),
            screenshot_png=page.screenshot(full_page=True),
            text=page.evaluate("() => document.body ? document.body.innerText : ''"),
            title=page.title(),
        )


def screenshot_is_blank(png: bytes, tolerance: float = 1e-4) -> bool:
    """Whether (almost) every pixel of a PNG image has the same colour.

    Parameters
    ----------
    png : bytes
        The PNG image, e.g. ``PageCheck.screenshot_png``. Decoded with Pillow.
    tolerance : float
        Largest share of pixels allowed to differ from the most common colour: 1e-4 of a
        1400x900 screenshot is 126 pixels, less than one short word of text.

    Returns
    -------
    bool
        True when at most ``tolerance`` of the pixels differ from the most common colour.
    """
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        rgb = image.convert("RGB")
        total = rgb.width * rgb.height
        colours = rgb.getcolors(maxcolors=total) or []
    return total == 0 or max(count for count, _ in colours) >= (1 - tolerance) * total
