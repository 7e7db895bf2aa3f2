"""The built book in a real browser: headless Chromium over every page of ``_toc.yml``, at desktop
(1280 px) and phone (390 px) widths.

Checked on each page: no JavaScript errors (console errors, uncaught exceptions, failed requests,
HTTP errors), no request to another host (they are blocked and recorded), every plotly figure drawn
with at least one trace and its legend, caption, menus and title inside its box, equations typeset by MathJax, saved widget state drawn, the launch buttons
pointing at the repository configured in ``_config.yml``, and (phone) no horizontal page overflow.
On desktop, one menu button of each plotly figure that has menus is clicked and must change what is
drawn. Screenshots go to ``_build/browser-artifacts/<width>/<page>.png``.

The checks are generic (no page texts), so they hold whatever the chapters say. Run after a build:
``bash scripts/test.sh`` does (``pytest tests/test_browser.py``); skipped, with the reason, when
``_build/html`` (or ``BOOK_HTML``) is absent, Chromium is missing (``apt-get install -y chromium``,
or ``CHROMIUM=/path``), or Playwright's Python package is not installed. Playwright only drives
the system's Chromium here; it downloads no browser.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import shutil
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import yaml

from resnet_nb.book_meta import repository_url

ROOT = Path(__file__).resolve().parents[1]
HTML = Path(os.environ.get("BOOK_HTML", ROOT / "_build" / "html"))
ARTIFACTS = Path(os.environ.get("BOOK_BROWSER_ARTIFACTS", ROOT / "_build" / "browser-artifacts"))
CHROMIUM = (os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
            or shutil.which("google-chrome"))  # the last: what GitHub's Ubuntu runners ship
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}
SETTLE_MS = 20_000  # the longest a page may take to draw its figures, equations and widgets

try:
    from playwright.sync_api import Browser, Page, sync_playwright
except ImportError:  # pragma: no cover - exercised where playwright is not installed
    sync_playwright = None  # type: ignore[assignment]

pytestmark = [
    pytest.mark.slow,  # a browser per page: minutes, and it checks the built book, not the code of the day
    pytest.mark.skipif(not (HTML / "index.html").is_file(),
                       reason=f"no built book in {HTML}: run `bash scripts/book.sh` (or jupyter-book build .) first"),
    pytest.mark.skipif(CHROMIUM is None, reason="Chromium not found: apt-get install -y chromium (or set CHROMIUM=...)"),
    pytest.mark.skipif(sync_playwright is None, reason="the playwright Python package is not installed (requirements.txt)"),
]


def toc_pages() -> list[str]:
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    return [toc["root"]] + [entry["file"] for part in [toc] for entry in part.get("chapters", [])]


PAGES = toc_pages()
CASES = [(page, view) for page in PAGES for view in VIEWPORTS]


@dataclass
class Visit:
    """What one page showed at one width."""

    url: str
    errors: list[str] = field(default_factory=list)  # console errors, page errors, failed/4xx requests
    foreign: list[str] = field(default_factory=list)  # requests to another host (blocked)
    state: dict[str, Any] = field(default_factory=dict)  # from the page: figures, math, widgets, links, widths
    menu_changes: list[dict[str, Any]] = field(default_factory=list)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - signature from the base class
        pass


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_QuietHandler, directory=str(HTML)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    thread.join(5)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


# What the page reports once drawn (evaluated in the browser).
STATE_JS = """() => {
  const outside = (el, box) => { const r = el.getBoundingClientRect();
    return r.width > 0 && (r.right > Math.min(box.right, window.innerWidth) + 1 || r.bottom > box.bottom + 1 || r.left < box.left - 1); };
  const figures = [...document.querySelectorAll('.js-plotly-plot')].map(gd => { const box = gd.getBoundingClientRect();
    return {id: gd.id, traces: (gd.data || []).length, drawn: gd.querySelectorAll('g.trace, g.table').length,
      menus: (gd.layout && gd.layout.updatemenus || []).length,
      cut: [...gd.querySelectorAll('g.legend, g.annotation, g.updatemenu-header-group, .g-gtitle')]
        .filter(el => outside(el, box)).map(el => el.getAttribute('class'))}; });
  const maths = [...document.querySelectorAll('.math')];
  const views = [...document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]')];
  const links = [...document.querySelectorAll('.article-header-buttons a[href], .header-article a[href]')]
    .map(a => a.href).filter(h => /^https?:/.test(h));
  return {
    figures,
    math: maths.length, typeset: maths.filter(m => m.querySelector('mjx-container')).length,
    math_errors: document.querySelectorAll('mjx-merror').length,
    widget_views: views.length,
    widgets_drawn: views.filter(s => { const d = s.previousElementSibling;
      return d && d.classList.contains('widget-subarea') && d.childElementCount > 0; }).length,
    links,
    scroll_width: document.documentElement.scrollWidth, inner_width: window.innerWidth,
  };
}"""

SETTLED_JS = """() => {
  const figs = [...document.querySelectorAll('.plotly-graph-div')];
  const plotted = figs.every(gd => gd._fullLayout !== undefined);
  const mathDone = !document.querySelector('.math') || document.querySelector('mjx-container') !== null;
  const views = document.querySelectorAll('script[type="application/vnd.jupyter.widget-view+json"]').length;
  const widgetsDone = views === 0 || document.querySelectorAll('.widget-subarea').length >= views;
  return plotted && mathDone && widgetsDone;
}"""

# A signature of what a figure draws: the shapes of its traces, which are visible, its axis titles.
DRAWN_JS = """(id) => { const gd = document.getElementById(id);
  const paths = [...gd.querySelectorAll('g.trace path, g.trace rect')].map(p => p.getAttribute('d') || p.getAttribute('width'));
  const visible = [...gd.querySelectorAll('g.trace')].map(t => getComputedStyle(t).opacity + t.style.display);
  const titles = [...gd.querySelectorAll('.g-xtitle, .g-ytitle')].map(t => t.textContent);
  return JSON.stringify([paths, visible, titles]); }"""


def _visit(browser: Browser, server: str, page_name: str, view: str) -> Visit:
    visit = Visit(url=f"{server}/{page_name}.html")
    context = browser.new_context(viewport=VIEWPORTS[view])
    local = urlparse(server).netloc

    def route(r: Any) -> None:
        url = r.request.url
        if urlparse(url).scheme in ("http", "https", "ws", "wss") and urlparse(url).netloc != local:
            visit.foreign.append(url)
            r.abort()
        else:
            r.continue_()

    context.route("**/*", route)
    page: Page = context.new_page()
    page.on("console", lambda m: m.type == "error" and visit.errors.append(f"console: {m.text} @ {m.location.get('url', '')}"))
    page.on("pageerror", lambda e: visit.errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: urlparse(r.url).netloc == local and visit.errors.append(f"request failed: {r.url}"))
    page.on("response", lambda r: r.status >= 400 and visit.errors.append(f"HTTP {r.status}: {r.url}"))
    try:
        page.goto(visit.url, wait_until="load")
        try:
            page.wait_for_function(SETTLED_JS, timeout=SETTLE_MS)
        except Exception as exc:  # reported by the checks below (what is missing), not as a timeout
            visit.errors.append(f"page did not finish drawing in {SETTLE_MS / 1000:g} s: {type(exc).__name__}")
        page.evaluate("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        page.wait_for_timeout(800)  # _static/phone-figures.js re-lays figures 150 ms after the page settles
        visit.state = page.evaluate(STATE_JS)
        shot = ARTIFACTS / view / f"{page_name.replace('/', '_')}.png"
        shot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(shot), full_page=True)
        if view == "desktop":
            visit.menu_changes = _click_menus(page, [f for f in visit.state["figures"] if f["menus"]])
    finally:
        context.close()
    return visit


def _click_menus(page: Page, figures: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Open the first menu of each figure and click its second button; record whether the drawing changed."""
    results = []
    for fig in figures:
        gd = page.locator(f"#{fig['id']}")
        gd.scroll_into_view_if_needed()
        before = page.evaluate(DRAWN_JS, fig["id"])
        header = gd.locator("g.updatemenu-header-group").first
        buttons = gd.locator("g.updatemenu-button, g.updatemenu-dropdown-button")
        if header.count():  # a dropdown: open it first
            header.click()
            page.wait_for_timeout(300)
        clicked = buttons.count() > 1
        if clicked:
            buttons.nth(1).click()
            page.wait_for_timeout(600)
        results.append({"id": fig["id"], "clicked": clicked, "changed": page.evaluate(DRAWN_JS, fig["id"]) != before})
    return results


@pytest.fixture(scope="module")
def visits(browser: Browser, server: str) -> dict[tuple[str, str], Visit]:
    """Each page at each width, loaded once (lazily) and shared by the checks."""
    cache: dict[tuple[str, str], Visit] = {}

    class Lazy(dict):  # type: ignore[type-arg]
        def __missing__(self, key: tuple[str, str]) -> Visit:
            cache[key] = _visit(browser, server, *key)
            self[key] = cache[key]
            return cache[key]

    return Lazy()


def _ids(case: tuple[str, str]) -> str:
    return f"{Path(case[0]).name}-{case[1]}"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_no_javascript_errors(visits: dict, case: tuple[str, str]) -> None:
    visit = visits[case]
    assert not visit.errors, f"{visit.url}:\n" + "\n".join(visit.errors)


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_no_request_to_another_host(visits: dict, case: tuple[str, str]) -> None:
    visit = visits[case]
    assert not visit.foreign, f"{visit.url} asked other hosts for:\n" + "\n".join(sorted(set(visit.foreign)))


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_every_plotly_figure_is_drawn_with_traces(visits: dict, case: tuple[str, str]) -> None:
    visit = visits[case]
    bad = [f for f in visit.state["figures"] if f["traces"] == 0 or f["drawn"] == 0]
    assert not bad, f"{visit.url}: figures without drawn traces: {json.dumps(bad)}"
    # every figure the page stores was turned into a drawing (a broken script leaves a bare div)
    html = (HTML / f"{case[0]}.html").read_text(encoding="utf-8")
    assert len(visit.state["figures"]) == html.count("Plotly.newPlot("), f"{visit.url}: some figures were not drawn"


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_equations_are_typeset(visits: dict, case: tuple[str, str]) -> None:
    state = visits[case].state
    assert state["typeset"] == state["math"], f"{state['math'] - state['typeset']} of {state['math']} equations not typeset"
    assert state["math_errors"] == 0


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_widgets_are_drawn_from_saved_state(visits: dict, case: tuple[str, str]) -> None:
    state = visits[case].state
    assert state["widgets_drawn"] == state["widget_views"], (
        f"{state['widget_views'] - state['widgets_drawn']} of {state['widget_views']} widgets not drawn")


@pytest.mark.parametrize("case", [c for c in CASES if c[1] == "phone"], ids=_ids)
def test_no_horizontal_overflow_on_a_phone(visits: dict, case: tuple[str, str]) -> None:
    state = visits[case].state
    assert state["scroll_width"] <= state["inner_width"], (
        f"page is {state['scroll_width']} px wide at {state['inner_width']} px: something does not wrap or scroll in its box")


@pytest.mark.parametrize("case", CASES, ids=_ids)
def test_figure_legends_captions_and_menus_stay_inside_the_figure(visits: dict, case: tuple[str, str]) -> None:
    visit = visits[case]
    cut = {f["id"]: f["cut"] for f in visit.state["figures"] if f["cut"]}
    assert not cut, f"{visit.url}: parts drawn outside their figure (cut off): {cut}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).name)
def test_launch_buttons_point_to_the_configured_repository(visits: dict, page: str) -> None:
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    url, branch = repository_url(ROOT / "_config.yml"), config["repository"].get("branch", "main")
    slug = url.removeprefix("https://github.com/")
    links = visits[(page, "desktop")].state["links"]
    assert f"https://colab.research.google.com/github/{slug}/blob/{branch}/{page}.ipynb" in links
    assert any(h.startswith(f"https://mybinder.org/v2/gh/{slug}/{branch}?") and h.endswith(f"{page}.ipynb") for h in links), links
    github = [h for h in links if urlparse(h).netloc == "github.com"]
    assert github and all(h.startswith(url) for h in github), github


@pytest.mark.parametrize("page", PAGES, ids=lambda p: Path(p).name)
def test_a_menu_of_each_figure_changes_what_is_drawn(visits: dict, page: str) -> None:
    changes = visits[(page, "desktop")].menu_changes
    if not changes:
        pytest.skip("no figure with menus on this page")
    unchanged = [c["id"] for c in changes if not (c["clicked"] and c["changed"])]
    assert not unchanged, f"menus that changed nothing when clicked: {unchanged}"
