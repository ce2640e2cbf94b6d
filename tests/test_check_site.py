"""The site checker on tiny hand-written sites: a good one passes, each kind of breakage is reported."""

import importlib.util
import json
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location("check_site", Path(__file__).parents[1] / "tools" / "check_site.py")
check_site = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(check_site)

TOC = "format: jb-book\nroot: book/intro\nchapters:\n  - file: notebooks/01_math\n"
# what myst-parser writes: MathJax processes only these classes inside the ignored page body
MATHJAX_CONFIG = {"options": {"processHtmlClass": "tex2jax_process|mathjax_process|math|output_area"}}
HEAD = (
    "<script>window.MathJax = " + json.dumps(MATHJAX_CONFIG) + "</script>"
    '<script async src="../_static/mathjax/tex-chtml.js"></script>'
)
GOOD_BODY = """
<main class="bd-main tex2jax_ignore mathjax_ignore">
<section id="the-math"><h1>The math</h1>
<p>Each output is <span class="math notranslate nohighlight">\\(y_a = x^\\top Q_a x\\)</span>, with
accuracy 0.93.</p>
<div class="math notranslate nohighlight">\\[ Q_a = B M_a B^\\top \\]</div>
<img src="../_images/fig.png" alt="a figure"><img src="data:image/png;base64,iVBORw0KGgo=" alt="inline">
<details class="sd-dropdown"><summary>Beta, module 0</summary><div><p>Top genes: Ins1, Ins2</p></div></details>
<pre>glue("acc", acc)  # shows {glue:text}`acc` and r"\\(" in code</pre>
<a href="#the-math">here</a> <a href="../book/intro.html#welcome">intro</a> <a href="https://example.org">out</a>
</section></main>
"""


def _site(tmp_path: Path, body: str = GOOD_BODY, head: str = HEAD) -> tuple[Path, Path]:
    html = tmp_path / "html"
    for folder in ("book", "notebooks", "_static/mathjax", "_images"):
        (html / folder).mkdir(parents=True)
    (html / "_static/mathjax/tex-chtml.js").write_text("// MathJax")
    (html / "_images/fig.png").write_bytes(b"\x89PNG")
    (html / "book/intro.html").write_text('<html><body><section id="welcome"><h1>Hi</h1></section></body></html>')
    (html / "notebooks/01_math.html").write_text(f"<html><head>{head}</head><body>{body}</body></html>")
    toc = tmp_path / "_toc.yml"
    toc.write_text(TOC)
    return html, toc


def _problems(tmp_path, **kwargs) -> list[str]:
    html, toc = _site(tmp_path, **kwargs)
    return check_site.check_site(html, toc).get("notebooks/01_math.html", [])


def test_good_site_passes(tmp_path):
    html, toc = _site(tmp_path)
    assert check_site.check_site(html, toc) == {}
    assert check_site.main(["--html", str(html), "--toc", str(toc)]) == 0


def test_toc_files_walks_nested_entries():
    toc = {"root": "intro", "parts": [{"chapters": [{"file": "a.md", "sections": [{"file": "b"}]}, {"url": "x"}]}]}
    assert check_site.toc_files(toc) == ["intro", "a", "b"]


def test_missing_page_fails_main(tmp_path, capsys):
    html, toc = _site(tmp_path)
    (html / "notebooks/01_math.html").unlink()
    assert check_site.main(["--html", str(html), "--toc", str(toc)]) == 1
    assert "notebooks/01_math.html: page missing" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("accuracy 0.93", 'accuracy <div class="output traceback">ValueError</div>', "error output (traceback)"),
        ("accuracy 0.93", "accuracy Traceback (most recent call last):", "a Python traceback is shown"),
        ("accuracy 0.93", 'accuracy <span class="problematic">{doc}`x`</span>', "error output (problematic)"),
        ("accuracy 0.93", "accuracy {glue:text}`acc`", "unrendered role"),
        ("accuracy 0.93", "accuracy (see {ref}`trust-ensembles`)", "unrendered role"),
        ('<span class="math notranslate nohighlight">', "<span>", "raw TeX outside MathJax-processed elements"),
        ('src="../_images/fig.png"', 'src="../_images/gone.png"', "missing image: ../_images/gone.png"),
        ('src="data:image/png;base64,iVBORw0KGgo="', 'src="data:image/png;base64,"', "empty data: URI"),
        ("<div><p>Top genes: Ins1, Ins2</p></div>", "<div> </div>", "empty dropdown: 'Beta, module 0'"),
        ('href="#the-math"', 'href="#no-such-id"', "broken anchor: #no-such-id"),
        ('href="../book/intro.html#welcome"', 'href="../book/outro.html"', "broken link: ../book/outro.html"),
        ('href="../book/intro.html#welcome"', 'href="../book/intro.html#bye"', "broken anchor"),
    ],
)
def test_each_breakage_is_reported(tmp_path, old, new, expected):
    assert old in GOOD_BODY
    problems = _problems(tmp_path, body=GOOD_BODY.replace(old, new))
    assert len(problems) == 1, problems
    assert expected in problems[0]


def test_math_needs_local_mathjax(tmp_path):
    cdn = '<script async src="https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-chtml.js"></script>'
    problems = _problems(tmp_path, head=HEAD.split("<script async")[0] + cdn)
    assert any("MathJax loaded from another host" in p for p in problems)
    assert any("does not load MathJax from the site" in p for p in problems)


def test_local_mathjax_file_must_exist(tmp_path):
    html, toc = _site(tmp_path)
    (html / "_static/mathjax/tex-chtml.js").unlink()
    problems = check_site.check_site(html, toc)["notebooks/01_math.html"]
    assert problems == ["broken link: ../_static/mathjax/tex-chtml.js"]


def test_without_page_config_mathjax_defaults_apply(tmp_path):
    # MathJax's own default processes the whole page, so math outside .math spans renders ...
    head = '<script async src="../_static/mathjax/tex-chtml.js"></script>'
    assert _problems(tmp_path, head=head, body="<p>Inline \\(x^2\\) math.</p>") == []
    # ... except below an element of its default ignore class
    problems = _problems(tmp_path / "b", head=head, body='<div class="mathjax_ignore"><p>\\(x^2\\)</p></div>')
    assert len(problems) == 1
    assert "raw TeX" in problems[0]
