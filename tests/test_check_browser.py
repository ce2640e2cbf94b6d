"""The browser checker on a tiny hand-written site, in the real headless Chromium (``make browser`` installs it).

Every page has the article skeleton of a built page (``main#main-content`` > ``.bd-article-container`` >
``article.bd-article``) with a 772 px text column, as at a 1,400 px window; the site's MathJax is the offline
copy the book serves. A clean page passes; each planted defect is reported alone, naming its page and kind.
"""

import importlib.util
import sysconfig
from pathlib import Path

import pytest
import yaml

_spec = importlib.util.spec_from_file_location(
    "check_browser", Path(__file__).parents[1] / "tools" / "check_browser.py"
)
check_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_browser)

MATHJAX = Path(sysconfig.get_paths()["purelib"]) / "sphinx-mathjax-offline" / "static" / "mathjax"
# what myst-parser writes into every page with math
HEAD = (
    '<script>window.MathJax = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}'
    '</script><script async="async" src="../_static/mathjax/tex-chtml.js"></script>'
    "<style>body { margin: 0; font: 16px sans-serif; } .bd-main { display: flex; justify-content: center; }"
    " .bd-article-container { box-sizing: border-box; width: 868px; padding: 16px; overflow-x: auto; }"
    " article.bd-article { padding: 0 32px; } .pst-scrollable-table-container { overflow-x: auto; }"
    " pre { overflow: auto; } img { max-width: 100%; }</style>"
)
SVG = "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' width='{w}' height='200'%3E%3C/svg%3E"
IMG = f'<img alt="a plot" src="{SVG.format(w=600)}">'
FIGURE = (
    f'<figure class="align-default" id="fig-{{n}}"><div class="cell_output docutils container">{IMG}</div>'
    '<figcaption><p><span class="caption-number">Fig. {n} </span><span class="caption-text">Loadings.</span></p>'
    "</figcaption></figure>"
)
TABLE = (
    '<div class="pst-scrollable-table-container"><table class="table"><thead><tr><th>cell type</th><th>n</th>'
    "</tr></thead><tbody><tr><td>{value}</td><td>12</td></tr></tbody></table></div>"
)
CITATION = '<p>As in <a class="reference internal" href="../book/references.html#id3">[Maher, 2025]</a>.</p>'
TAKEAWAYS = '<div class="admonition tip"><p class="admonition-title">Key takeaways</p><p>Module 0 holds.</p></div>'
CLEAN = f"""
<section id="page"><h1>A page</h1>
<p>Each output is <span class="math notranslate nohighlight">\\(y_a = x^\\top Q_a x\\)</span>.</p>
<div class="math notranslate nohighlight">\\[ Q_a = B M_a B^\\top \\]</div>
{TABLE.format(value="beta")}
{FIGURE.format(n=1)}
<details class="sd-dropdown"><summary>More <svg class="sd-octicon" width="16" height="16"></svg></summary>
<div>{FIGURE.format(n=2)}</div></details>
<div class="highlight"><pre>glue("acc", acc)  # shows $$x$$ and \\(y\\) in code</pre></div>
<p>Inline <code>r"\\["</code> code and a <button><svg width="16" height="16"></svg></button> button.</p>
{CITATION}
{TAKEAWAYS}
</section>
"""
DEFECTS = {
    "wide_table": (
        TABLE.format(value="beta"),
        TABLE.format(value='<span style="display: inline-block; width: 2000px">beta</span>'),
        "table too wide",
    ),
    "indented_table": (
        TABLE.format(value="beta"),
        '<div style="padding-left: 40px">'
        + TABLE.format(value='<span style="display: inline-block; width: 740px">beta</span>')
        + "</div>",
        'table too wide: table 1 (first row "cell type | n")',
    ),
    "wide_pre": (
        "</pre></div>\n<p>Inline",
        '</pre></div>\n<div class="highlight"><pre>print(\'' + "x" * 300 + "')</pre></div>\n<p>Inline",
        "code block too wide",
    ),
    "bare_image": ("</section>", f'<div class="cell_output">{IMG}</div></section>', "image without a numbered caption"),
    "unnumbered_caption": (
        '<span class="caption-number">Fig. 1 </span>',
        "",
        'image without a numbered caption: image (data: URI, alt "a plot"): its caption has no number',
    ),
    "nan_cell": (TABLE.format(value="beta"), TABLE.format(value="nan"), "table cell shows a missing value"),
    "raw_math": ("</section>", "<p>The loss $$x$$ is small.</p></section>", "unrendered math"),
    "collapsed_image": (
        "</section>",
        f"<details><summary>Hidden plot</summary><div>{IMG}</div></details></section>",
        "image without a numbered caption",
    ),
    "mathjax_error": ("</section>", '<p><span class="math">\\(x^1^2\\)</span></p></section>', "MathJax error"),
}


def _page(body: str) -> str:
    """A page with a built page's containers; a wide logo outside the article must be ignored."""
    logo = f'<img class="logo__image" alt="logo" src="{SVG.format(w=3000)}">'
    return (
        f"<html><head>{HEAD}</head><body><nav class='bd-sidebar-primary'>{logo}</nav>"
        '<main id="main-content" class="bd-main tex2jax_ignore mathjax_ignore" role="main"><div class="bd-content">'
        f'<div class="bd-article-container"><article class="bd-article">{body}</article></div></div></main>'
        "</body></html>"
    )


def _site(root: Path) -> tuple[Path, Path]:
    html = root / "html"
    (html / "notebooks").mkdir(parents=True)
    (html / "_static").mkdir()
    (html / "_static" / "mathjax").symlink_to(MATHJAX)
    for name, (old, new, _) in {"clean": ("", "", ""), **DEFECTS}.items():
        assert old in CLEAN, name
        (html / "notebooks" / f"{name}.html").write_text(_page(CLEAN.replace(old, new, 1)))
    # the defect pages nest as sections under the first chapter: the checker walks nested entries
    first, *rest = DEFECTS
    chapter = {"file": f"notebooks/{first}", "sections": [{"file": f"notebooks/{name}"} for name in rest]}
    toc = root / "_toc.yml"
    toc.write_text(yaml.safe_dump({"format": "jb-book", "root": "notebooks/clean", "chapters": [chapter]}))
    return html, toc


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    assert MATHJAX.is_dir(), f"the offline MathJax of sphinx-mathjax-offline is missing: {MATHJAX}"
    return _site(tmp_path_factory.mktemp("site"))


@pytest.fixture(scope="module")
def results(site):
    html, toc = site
    return {r.page: r for r in check_browser.check_pages(html, check_browser.toc_pages(toc))}


def test_toc_pages_walk_sections(site):
    _, toc = site
    assert check_browser.toc_pages(toc) == [f"notebooks/{name}.html" for name in ["clean", *DEFECTS]]


def test_clean_page_passes(results):
    clean = results["notebooks/clean.html"]
    assert clean.problems == []
    assert clean.column == 772
    assert (clean.tables, clean.tables_too_wide, clean.figures, clean.numbered, clean.code_too_wide) == (1, 0, 2, 2, 0)


@pytest.mark.parametrize("name", DEFECTS)
def test_each_defect_is_reported_alone(results, name):
    problems = results[f"notebooks/{name}.html"].problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(DEFECTS[name][2]), problems


def test_problems_say_where(results):
    assert "(in a collapsed dropdown)" in results["notebooks/collapsed_image.html"].problems[0]
    assert "px, indented: reaches" in results["notebooks/indented_table.html"].problems[0]


def test_main_lists_problems_and_report_exits_zero(site, capsys):
    html, toc = site
    pages = ["notebooks/clean.html", "notebooks/nan_cell"]
    assert check_browser.main(["--html", str(html), "--toc", str(toc), "--pages", *pages]) == 1
    out, err = capsys.readouterr()
    assert "notebooks/nan_cell.html: table cell shows a missing value: table 1" in err
    assert "'nan'" in err
    assert "notebooks/clean.html" in out and "notebooks/clean.html:" not in err
    assert check_browser.main(["--html", str(html), "--toc", str(toc), "--report", "--width", "800"]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    header, *rows = out.splitlines()[1:]
    assert header.split() == "page tables too wide figures numbered code too wide citations takeaways column px".split()
    assert rows[0].split() == ["notebooks/clean.html", "1", "0", "2", "2", "0", "1", "1", rows[0].split()[-1]]
    assert rows[-1].startswith("total")


def test_missing_chromium_is_a_message(site, capsys, monkeypatch):
    html, toc = site
    monkeypatch.setattr(check_browser, "CHROMIUM", Path("/nonexistent/chromium"))
    assert check_browser.main(["--html", str(html), "--toc", str(toc)]) == 2
    assert "chromium not found: run `make browser`" in capsys.readouterr().err


def test_chapters_need_a_numbered_figure_a_citation_and_one_key_takeaways_box(tmp_path):
    html, _ = _site(tmp_path)
    lacking = {
        "no_figure": (FIGURE.format(n=1), "", "", ""),  # Fig. 2 stays: drop both
        "no_citation": (CITATION, "", "", ""),
        "two_takeaways": (TAKEAWAYS, TAKEAWAYS * 2, "", ""),
        "no_table": (TABLE.format(value="beta"), "", "", ""),
    }
    for name, (old, new, _, _) in lacking.items():
        text = CLEAN.replace(old, new)
        if name == "no_figure":
            text = text.replace(FIGURE.format(n=2), "")
        (html / "notebooks" / f"{name}.html").write_text(_page(text))
    pages = ["notebooks/no_table.html", "notebooks/clean.html", *(f"notebooks/{n}.html" for n in lacking)]
    results = check_browser.check_pages(html, pages)
    assert all(r.problems == [] for r in results)  # layout alone: nothing wrong
    check_browser.check_contents(results, "notebooks/*", first="notebooks/no_table.html")
    found = {r.page.split("/")[1]: r.problems for r in results}
    assert found["clean.html"] == [] and found["no_table.html"] == ["first page without a table (the book's findings)"]
    assert found["no_figure.html"] == ["chapter without a numbered figure"]
    assert found["no_citation.html"] == ["chapter without a citation (a link into references.html)"]
    assert found["two_takeaways.html"] == ["chapter without one Key takeaways box: it has 2"]
    check_browser.check_contents(results, "book/*")  # not chapters, no first page: no requirement
    assert found["no_citation.html"] == ["chapter without a citation (a link into references.html)"]
