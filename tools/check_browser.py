"""Check the built site's layout in a real browser (headless Chromium, offline); exit 1 with a list of problems.

Usage: ``python tools/check_browser.py [--html _build/html] [--toc _toc.yml] [--width 1400] [--pages P ...]
[--report]`` (``make check-browser``; ``make browser`` installs Debian's ``chromium`` and ``chromium-driver``).

Every page of ``_toc.yml`` (the same list as ``tools/check_site.py``) is loaded in one browser session, in a
window ``--width`` px wide and 1,000 px high. After the page's web fonts and MathJax (``MathJax.startup.promise``)
are ready, every ``<details>`` dropdown of the article is opened, and in the article content
(``main#main-content article.bd-article``), whose content box is the text column, these are problems:

- ``table too wide``: a ``<table>`` wider than the column (the larger of its box and its ``scrollWidth``), or
  reaching past the column's right edge (an indented one, as in a dropdown), also when it sits in a horizontally
  scrolling wrapper;
- ``code block too wide``: a ``<pre>`` that scrolls horizontally (``scrollWidth > clientWidth``) or is wider
  than the column;
- ``image too wide``: an ``<img>`` or figure ``<svg>`` wider than the column;
- ``image without a numbered caption``: an ``<img>`` or figure ``<svg>`` that is not in a ``<figure>`` whose
  ``<figcaption>`` holds a ``span.caption-number`` (Sphinx's "Fig. N"); also inside collapsed dropdowns;
- ``unrendered math``: ``$$``, ``\\(``, ``\\)``, ``\\[``, ``\\]`` or ``\\begin{`` in text outside code blocks
  (``pre``, ``code``, ``.highlight``), and ``MathJax error``: a ``mjx-merror`` or ``.MathJax_Error`` element;
- ``table cell shows a missing value``: a ``td``/``th`` whose whole text is ``nan``, ``NaN``, ``None`` or ``<NA>``.

Every chapter (a page matching ``--chapters``, default ``notebooks/*``) must also hold at least one numbered
figure, at least one citation (a link into the bibliography page, ``references.html#…``) and exactly one
"Key takeaways" admonition; the book's first page must hold a table (its findings). A page that lacks one says
``chapter without …`` / ``first page without a table``.

A 1 px tolerance absorbs sub-pixel rounding. Icons (inside buttons, links, dropdown titles, math) and images
outside the article (the theme's logo) are not figures. A per-page summary is printed; ``--report`` prints only
that table and exits 0 whatever it finds.
"""

import argparse
import fnmatch
import importlib.util
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import yaml

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
MISSING_BROWSER = "chromium not found: run `make browser` (apt-get install chromium chromium-driver)"
WINDOW_HEIGHT = 1000
CHROMIUM_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
PAGE_TIMEOUT_S = 30
MATHJAX_TIMEOUT_MS = 15000


def _sibling(name: str):
    """Import ``tools/<name>.py`` (``tools`` is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toc_files = _sibling("check_site").toc_files

# Waits, without fixed sleeps, for web fonts and then, where the page loads MathJax, for its first typesetting.
WAIT_JS = r"""
const done = arguments[arguments.length - 1];
const deadline = Date.now() + arguments[0];
const loadsMathJax = Array.from(document.scripts).some(s => /mathjax/i.test(s.src || ''));
function waitMathJax() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise) {
    mj.startup.promise.then(() => done('typeset'), e => done('error: ' + e));
  } else if (!loadsMathJax) {
    done('none');
  } else if (Date.now() > deadline) {
    done('timeout');
  } else {
    setTimeout(waitMathJax, 20);
  }
}
(document.fonts ? document.fonts.ready : Promise.resolve()).then(waitMathJax, waitMathJax);
"""

# Opens every dropdown of the article, then measures; returns counts and problems as [kind, detail] pairs.
MEASURE_JS = r"""
const article = document.querySelector('main#main-content article.bd-article')
  || document.querySelector('article.bd-article') || document.querySelector('main#main-content article');
if (!article) return {error: 'no article content (main#main-content article.bd-article) on the page'};
const collapsed = Array.from(article.querySelectorAll('details:not([open])'));
article.querySelectorAll('details').forEach(d => { d.open = true; });

const style = getComputedStyle(article);
const box = article.getBoundingClientRect();
const colLeft = box.left + parseFloat(style.borderLeftWidth) + parseFloat(style.paddingLeft);
const colWidth = article.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
const colRight = colLeft + colWidth;
const px = x => Math.round(x);
const short = (text, n) => { text = (text || '').replace(/\s+/g, ' ').trim();
  return text.length > n ? text.slice(0, n - 1) + '…' : text; };
// how far an element reaches beyond the column (its width, or its right edge), <= 0 when it fits
function overflow(el) {
  const r = el.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) return 0;  // not rendered (display: none)
  const width = Math.max(r.width, el.scrollWidth || 0);
  return Math.max(width - colWidth, r.right - colRight);
}
const widthOf = el => px(Math.max(el.getBoundingClientRect().width, el.scrollWidth || 0));
const tooWide = el => widthOf(el) > colWidth + 1 ? `${widthOf(el)} px in a ${px(colWidth)} px column`
  : `${widthOf(el)} px, indented: reaches ${px(el.getBoundingClientRect().right - colRight)} px past the column`;
const problems = [];
const result = {column: px(colWidth), tables: 0, tablesTooWide: 0, figures: 0, numbered: 0, codeTooWide: 0};
result.citations = Array.from(article.querySelectorAll('a[href]'))
  .filter(a => /(^|\/)references\.html#./.test(a.getAttribute('href'))).length;
result.takeaways = Array.from(article.querySelectorAll('.admonition > .admonition-title'))
  .filter(t => t.textContent.trim() === 'Key takeaways').length;

const tables = Array.from(article.querySelectorAll('table'));
tables.forEach((table, i) => {
  result.tables += 1;
  const caption = table.querySelector('caption');
  const head = table.querySelector('tr');
  const label = `table ${i + 1}` + (caption ? ` "${short(caption.textContent, 50)}"`
    : head ? ` (first row "${short(Array.from(head.cells).map(c => c.textContent.trim()).join(' | '), 50)}")` : '');
  if (overflow(table) > 1) {
    result.tablesTooWide += 1;
    problems.push(['table too wide', `${label}: ${tooWide(table)}`]);
  }
  const missing = Array.from(table.querySelectorAll('td, th')).filter(cell => {
    if (cell.closest('table') !== table) return false;  // a nested table reports its own cells
    const text = cell.textContent.trim();
    return text === 'nan' || text === 'NaN' || text === 'None' || text === '<NA>';
  });
  if (missing.length) {
    const values = Array.from(new Set(missing.map(c => `'${c.textContent.trim()}'`))).join(', ');
    problems.push(['table cell shows a missing value',
      `${label}: ${missing.length} cell(s) show ${values}`]);
  }
});

article.querySelectorAll('pre').forEach(pre => {
  const scrolls = pre.scrollWidth > pre.clientWidth + 1;
  if (scrolls || overflow(pre) > 1) {
    result.codeTooWide += 1;
    const how = scrolls ? `scrolls: ${pre.scrollWidth} px of text in a ${pre.clientWidth} px box`
      : tooWide(pre);
    problems.push(['code block too wide', `"${short(pre.textContent, 50)}" ${how}`]);
  }
});

const icon = 'button, a, summary, mjx-container, .MathJax, .headerlink, .copybtn, .sd-octicon, .svg-inline--fa';
const figures = Array.from(article.querySelectorAll('img, svg')).filter(el => {
  if (el.tagName.toLowerCase() === 'img') return true;
  if (el.parentElement.closest('svg') || el.closest(icon)) return false;
  const r = el.getBoundingClientRect();
  return r.width > 48 || r.height > 48;  // small inline svgs are icons
});
figures.forEach(el => {
  result.figures += 1;
  const name = el.tagName.toLowerCase() === 'img'
    ? ((el.getAttribute('src') || '').startsWith('data:') ? `image (data: URI, alt "${short(el.alt, 50)}")`
       : `image ${short(el.getAttribute('src'), 70)}`)
    : 'svg figure';
  const figure = el.closest('figure');
  const caption = figure && figure.querySelector(':scope > figcaption');
  const number = caption && caption.querySelector('.caption-number');
  const where = collapsed.some(d => d.contains(el)) ? ' (in a collapsed dropdown)' : '';
  if (number && number.textContent.trim()) {
    result.numbered += 1;
  } else {
    const why = caption ? 'its caption has no number' : figure ? 'its figure has no caption' : 'not in a figure';
    problems.push(['image without a numbered caption', `${name}: ${why}${where}`]);
  }
  if (overflow(el) > 1) {
    problems.push(['image too wide', `${name}: ${tooWide(el)}${where}`]);
  }
});

const literal = 'pre, code, script, style, textarea, .highlight, mjx-container, mjx-assistive-mml';
const tex = /\$\$|\\\(|\\\)|\\\[|\\\]|\\begin\{/;
const walker = document.createTreeWalker(article, NodeFilter.SHOW_TEXT);
for (let node = walker.nextNode(); node; node = walker.nextNode()) {
  const match = tex.exec(node.nodeValue);
  if (!match || node.parentElement.closest(literal)) continue;
  const start = Math.max(match.index - 30, 0);
  problems.push(['unrendered math', `"${short(node.nodeValue.slice(start, match.index + 40), 80)}"`]);
}
article.querySelectorAll('mjx-merror, .MathJax_Error').forEach(el => {
  const text = el.getAttribute('data-mjx-error') || el.getAttribute('title') || el.textContent;
  problems.push(['MathJax error', `"${short(text, 80)}"`]);
});
result.problems = problems;
return result;
"""


@dataclass
class PageResult:
    """What one page measured: counts for the summary, ``problems`` as ``"kind: detail"`` lines."""

    page: str
    column: int = 0
    tables: int = 0
    tables_too_wide: int = 0
    figures: int = 0
    numbered: int = 0
    code_too_wide: int = 0
    citations: int = 0
    takeaways: int = 0
    problems: list[str] = field(default_factory=list)
    missing: bool = False


class BrowserMissing(RuntimeError):
    pass


def open_browser(width: int = 1400, height: int = WINDOW_HEIGHT, user_data_dir: str | None = None):
    """Headless Debian Chromium through Debian's chromedriver (Selenium Manager never downloads anything)."""
    if not (CHROMIUM.is_file() and CHROMEDRIVER.exists()):
        raise BrowserMissing(MISSING_BROWSER)
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError as err:
        raise BrowserMissing(f"selenium is not installed ({err}): run `make install`") from err
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in [*CHROMIUM_FLAGS, f"--window-size={width},{height}"]:
        options.add_argument(flag)
    if user_data_dir:
        options.add_argument(f"--user-data-dir={user_data_dir}")
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(PAGE_TIMEOUT_S)
    driver.set_script_timeout(MATHJAX_TIMEOUT_MS / 1000 + 5)
    return driver


def measure_page(driver, html_root: Path, page: str) -> PageResult:
    """Load ``html_root/page`` in ``driver`` and measure it (see the module docstring)."""
    from selenium.common.exceptions import WebDriverException

    result = PageResult(page)
    path = Path(html_root) / page
    if not path.is_file():
        result.missing = True
        result.problems.append("page missing")
        return result
    try:
        driver.get(path.resolve().as_uri())
        mathjax = driver.execute_async_script(WAIT_JS, MATHJAX_TIMEOUT_MS)
        measured = driver.execute_script(MEASURE_JS)
    except WebDriverException as err:
        result.problems.append(f"page could not be measured: {err.msg or err}")
        return result
    if mathjax == "timeout":
        result.problems.append(f"unrendered math: MathJax did not finish within {MATHJAX_TIMEOUT_MS // 1000} s")
    elif mathjax.startswith("error"):
        result.problems.append(f"unrendered math: MathJax failed ({mathjax})")
    if "error" in measured:
        result.problems.append(measured["error"])
        return result
    result.column = measured["column"]
    result.tables = measured["tables"]
    result.tables_too_wide = measured["tablesTooWide"]
    result.figures = measured["figures"]
    result.numbered = measured["numbered"]
    result.code_too_wide = measured["codeTooWide"]
    result.citations = measured["citations"]
    result.takeaways = measured["takeaways"]
    result.problems += [f"{kind}: {detail}" for kind, detail in measured["problems"]]
    return result


def check_pages(html_root: Path, pages: list[str], width: int = 1400, driver=None) -> list[PageResult]:
    """Measure ``pages`` (paths relative to ``html_root``) in one browser session (``driver``, or a new one)."""
    if driver is not None:
        return [measure_page(driver, html_root, page) for page in pages]
    with tempfile.TemporaryDirectory(prefix="check-browser-") as profile:
        driver = open_browser(width, user_data_dir=profile)
        try:
            return [measure_page(driver, html_root, page) for page in pages]
        finally:
            driver.quit()


def toc_pages(toc_path: Path) -> list[str]:
    """The HTML pages of ``_toc.yml``, relative to the site root (``notebooks/01_math.html``)."""
    return [f"{name}.html" for name in toc_files(yaml.safe_load(Path(toc_path).read_text()))]


def check_contents(results: list[PageResult], chapters: str = "notebooks/*", first: str | None = None) -> None:
    """Add to ``results`` what a chapter (``chapters``, a glob) or the first page (``first``) lacks."""
    for r in results:
        if r.missing:
            continue
        if fnmatch.fnmatch(r.page, chapters):
            if r.numbered < 1:
                r.problems.append("chapter without a numbered figure")
            if r.citations < 1:
                r.problems.append("chapter without a citation (a link into references.html)")
            if r.takeaways != 1:
                r.problems.append(f"chapter without one Key takeaways box: it has {r.takeaways}")
        if r.page == first and r.tables < 1:
            r.problems.append("first page without a table (the book's findings)")


COLUMNS = [
    ("tables", "tables"),
    ("tables_too_wide", "too wide"),
    ("figures", "figures"),
    ("numbered", "numbered"),
    ("code_too_wide", "code too wide"),
    ("citations", "citations"),
    ("takeaways", "takeaways"),
    ("column", "column px"),
]


def summary_table(results: list[PageResult]) -> str:
    """Per page: tables, tables too wide, figures (images), figures with a numbered caption, code blocks too wide."""
    name_width = max([len("page"), *(len(r.page) for r in results)])
    lines = ["page".ljust(name_width) + "".join(f"  {title:>{len(title)}}" for _, title in COLUMNS)]
    for r in results:
        if r.missing:
            lines.append(r.page.ljust(name_width) + "  (page missing)")
            continue
        lines.append(r.page.ljust(name_width) + "".join(f"  {getattr(r, a):>{len(t)}}" for a, t in COLUMNS))
    totals = "".join(f"  {sum(getattr(r, a) for r in results):>{len(t)}}" for a, t in COLUMNS[:-1])
    lines.append("total".ljust(name_width) + totals)
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default="_build/html", type=Path, help="built site (default: _build/html)")
    parser.add_argument("--toc", default="_toc.yml", type=Path, help="table of contents (default: _toc.yml)")
    parser.add_argument("--width", default=1400, type=int, help="browser window width in px (default: 1400)")
    parser.add_argument("--pages", nargs="+", metavar="PAGE", help="only these pages (relative to --html)")
    parser.add_argument("--report", action="store_true", help="print only the per-page table and exit 0")
    parser.add_argument("--chapters", default="notebooks/*", help="pages that are chapters (glob; %(default)s)")
    args = parser.parse_args(argv)
    if not args.html.is_dir():
        print(f"check-browser: no built site at {args.html}; run `make book` first.", file=sys.stderr)
        return 2
    if args.pages:
        pages = [p if p.endswith(".html") else f"{p}.html" for p in args.pages]
    else:
        pages = toc_pages(args.toc)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="check-browser-") as profile:
        try:
            driver = open_browser(args.width, user_data_dir=profile)
        except BrowserMissing as err:
            print(f"check-browser: {err}", file=sys.stderr)
            return 2
        except Exception as err:  # selenium's errors when Chromium does not start: a message, not a traceback
            message = " ".join(str(getattr(err, "msg", None) or err).split())[:300]
            print(f"check-browser: could not start chromium: {type(err).__name__}: {message}", file=sys.stderr)
            return 2
        try:
            results = check_pages(args.html, pages, driver=driver)
        finally:
            driver.quit()
    check_contents(results, args.chapters, first=None if args.pages else pages[0])  # the toc's root page
    seconds = time.perf_counter() - start
    print(f"check-browser: {args.html} at {args.width} px, {len(pages)} pages in {seconds:.1f} s")
    print(summary_table(results))
    if args.report:
        return 0
    report = [(r.page, problem) for r in results for problem in r.problems]
    if not report:
        print("check-browser: no problems.")
        return 0
    n_pages = len({page for page, _ in report})
    print(f"check-browser: {len(report)} problem(s) on {n_pages} of {len(pages)} pages:", file=sys.stderr)
    for page, problem in report:
        print(f"  {page}: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
