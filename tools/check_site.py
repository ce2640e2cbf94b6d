"""Check the built site as a reader meets it; exit 1 with a list of problems.

Usage: ``python tools/check_site.py [--html _build/html] [--toc _toc.yml]`` (``make check-site``).

Every page of ``_toc.yml`` must exist as HTML and, on each of them:

- no error output: no traceback or stderr output cell, no ``Traceback (most recent call last)``, no docutils
  ``system-message`` or ``problematic`` node (what Sphinx leaves where a role or directive failed);
- no unrendered MyST role (``{glue:text}`…```, ``{ref}`…```, ``{cite:p}`…```, …) in the text, as glued text
  leaves one (code blocks may show one);
- math renders offline: MathJax is loaded from the site (a local ``<script src>`` whose file exists, none from
  another host), and no TeX delimiter ``\\(``, ``\\[`` or ``$$`` sits in text that MathJax skips. Which text
  MathJax processes is read from the page's own ``window.MathJax`` options (``processHtmlClass``,
  ``ignoreHtmlClass``) and MathJax 3's rules: text inside an ignored element is skipped unless an element
  nearer to it has a process class; ``pre``/``code``/``script``/... are skipped unless they have one;
- every ``<img>`` resolves to an existing file or a non-empty ``data:`` URI;
- every dropdown (``<details>``, and admonitions or toggles that sphinx-togglebutton folds) has content besides
  its title;
- every local link resolves: ``<a href>`` to an existing file and, with ``#anchor``, to an element with that id;
  ``<link href>`` and ``<script src>`` to existing files.
"""

from __future__ import annotations

import argparse
import copy
import json
import re
import sys
from collections import Counter
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml
from bs4 import BeautifulSoup, NavigableString, Tag
from bs4.element import Comment, Doctype, ProcessingInstruction

# MathJax 3 defaults (startup options of tex-chtml.js) used when a page does not override them
MATHJAX_SKIP_TAGS = {"script", "noscript", "style", "textarea", "pre", "code", "annotation", "annotation-xml"}
MATHJAX_DEFAULT_PROCESS = "mathjax_process"
MATHJAX_DEFAULT_IGNORE = "mathjax_ignore"
TEX_DELIMITERS = re.compile(r"\\\(|\\\[|\$\$")
LITERAL_TAGS = {"pre", "code", "script", "style", "textarea", "kbd", "samp"}
ERROR_CLASSES = {"traceback", "stderr", "system-message", "problematic"}
EXTERNAL_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "javascript", "data"}  # not files of the site


def toc_files(toc: dict) -> list[str]:
    """Document names of ``_toc.yml`` (root first), without suffix; ``url`` and ``glob`` entries are skipped."""
    files = [toc["root"]]

    def walk(entries):
        for entry in entries or []:
            if "file" in entry:
                files.append(entry["file"])
            for key in ("parts", "chapters", "sections"):
                walk(entry.get(key))

    for key in ("parts", "chapters", "sections"):
        walk(toc.get(key))
    return [str(Path(f).with_suffix("")) if Path(f).suffix in {".md", ".ipynb", ".py", ".rst"} else f for f in files]


def _class_regex(names: str) -> re.Pattern:
    """MathJax 3's class test: any class token equal to one of the ``|``-separated names."""
    return re.compile(r"(^| )(" + names + r")( |$)")


def mathjax_options(soup: BeautifulSoup) -> tuple[re.Pattern, re.Pattern]:
    """``(process, ignore)`` class regexes from the page's ``window.MathJax = {...}`` script, else defaults."""
    options = {}
    for script in soup.find_all("script", src=False):
        text = script.get_text().strip()
        if text.startswith("window.MathJax"):
            config = text.split("=", 1)[1].strip().rstrip(";")
            try:
                options = json.loads(config).get("options", {})
            except json.JSONDecodeError:
                options = {}
    return (
        _class_regex(options.get("processHtmlClass", MATHJAX_DEFAULT_PROCESS)),
        _class_regex(options.get("ignoreHtmlClass", MATHJAX_DEFAULT_IGNORE)),
    )


def _classes(tag: Tag) -> list[str]:
    return list(tag.get("class") or [])


def _text_nodes(node: Tag, process: re.Pattern, ignore: re.Pattern, skipped: bool = False, literal: bool = False):
    """Yield ``(text, skipped_by_mathjax, inside_literal)`` for every text node under ``node``."""
    for child in node.children:
        if isinstance(child, (Comment, Doctype, ProcessingInstruction)):
            continue
        if isinstance(child, NavigableString):
            yield str(child), skipped, literal
        elif isinstance(child, Tag):
            cls = " ".join(_classes(child))
            is_process = bool(process.search(cls))
            child_skipped = (skipped or bool(ignore.search(cls)) or child.name in MATHJAX_SKIP_TAGS) and not is_process
            yield from _text_nodes(child, process, ignore, child_skipped, literal or child.name in LITERAL_TAGS)


def _snippet(text: str, match: re.Match, width: int = 40) -> str:
    start = max(match.start() - width, 0)
    return " ".join(text[start : match.end() + width].split())


def _local_target(page: Path, html_root: Path, url: str) -> tuple[Path | None, str]:
    """``(file, fragment)`` of a local URL relative to ``page``; ``file`` is None for an external URL."""
    parts = urlsplit(url)
    if parts.scheme in EXTERNAL_SCHEMES or parts.netloc or url.startswith("//"):
        return None, ""
    path = unquote(parts.path)
    if not path:
        return page, unquote(parts.fragment)
    target = (html_root / path.lstrip("/")) if path.startswith("/") else (page.parent / path)
    return target.resolve(), unquote(parts.fragment)


def _ids(soup: BeautifulSoup) -> set[str]:
    ids = {tag["id"] for tag in soup.find_all(id=True)}
    return ids | {tag["name"] for tag in soup.find_all("a", attrs={"name": True})}


def _has_content(node: Tag, title: Tag | None) -> bool:
    """Whether ``node`` holds text or media outside its ``title`` element."""
    for child in node.descendants:
        if title is not None and (child is title or any(parent is title for parent in child.parents)):
            continue
        if isinstance(child, Tag) and child.name in {"img", "svg", "table", "iframe", "video", "canvas"}:
            return True
        if isinstance(child, NavigableString) and not isinstance(child, Comment) and child.strip():
            return True
    return False


class SiteChecker:
    """Checks pages of one built site; remembers parsed pages for anchor look-ups."""

    def __init__(self, html_root: Path):
        self.html_root = Path(html_root).resolve()
        self._soups: dict[Path, BeautifulSoup] = {}
        self._ids: dict[Path, set[str]] = {}
        self.counts = Counter()  # what was checked, for the summary line

    def soup(self, path: Path) -> BeautifulSoup:
        path = path.resolve()
        if path not in self._soups:
            self._soups[path] = BeautifulSoup(path.read_text(encoding="utf-8", errors="replace"), "html.parser")
        return self._soups[path]

    def ids(self, path: Path) -> set[str]:
        """The anchors of the page at ``path``, collected once per page (links to it are checked against them)."""
        path = path.resolve()
        if path not in self._ids:
            self._ids[path] = _ids(self.soup(path))
        return self._ids[path]

    def check_page(self, page: Path) -> list[str]:
        soup = self.soup(page)
        self.counts["pages"] += 1
        problems = []
        problems += self.errors(soup)
        problems += self.glue(soup)
        problems += self.math(page, soup)
        problems += self.images(page, soup)
        problems += self.dropdowns(soup)
        problems += self.links(page, soup)
        return problems

    def errors(self, soup: BeautifulSoup) -> list[str]:
        problems = []
        for tag in soup.find_all(class_=True):
            classes = set(_classes(tag))
            found = classes & ERROR_CLASSES
            if {"output", "error"} <= classes:
                found.add("error")
            if found:
                text = " ".join(tag.get_text(" ").split())[:80]
                problems.append(f"error output ({', '.join(sorted(found))}): {text!r}")
        if "Traceback (most recent call last)" in soup.get_text():
            problems.append("a Python traceback is shown")
        return problems

    def glue(self, soup: BeautifulSoup) -> list[str]:
        process, ignore = mathjax_options(soup)
        body = copy.copy(soup.body or soup)
        for node in body.select(".problematic"):  # a failed role, reported as error output already
            node.decompose()
        return [
            f"unrendered role: {text.strip()[:80]!r}"
            for text, _, literal in _text_nodes(body, process, ignore)
            if not literal and UNRENDERED_ROLE.search(text)
        ]

    def math(self, page: Path, soup: BeautifulSoup) -> list[str]:
        problems = []
        process, ignore = mathjax_options(soup)
        body = soup.body or soup
        scripts = [s["src"] for s in soup.find_all("script", src=True) if "mathjax" in s["src"].lower()]
        local = [src for src in scripts if _local_target(page, self.html_root, src)[0] is not None]
        remote = [src for src in scripts if src not in local]
        problems += [f"MathJax loaded from another host: {src}" for src in remote]
        has_math = bool(body.find(class_="math"))
        self.counts["math elements"] += len(body.find_all(class_="math"))
        for text, skipped, literal in _text_nodes(body, process, ignore):
            for match in TEX_DELIMITERS.finditer(text):
                if literal:
                    continue
                has_math = True
                if skipped:
                    problems.append(f"raw TeX outside MathJax-processed elements: '{_snippet(text, match)}'")
        if has_math and not local:
            problems.append("page has math but does not load MathJax from the site")
        return problems

    def images(self, page: Path, soup: BeautifulSoup) -> list[str]:
        problems = []
        for img in soup.find_all("img"):
            self.counts["images"] += 1
            src = img.get("src", "")
            if src.startswith("data:"):
                if not src.partition(",")[2].strip():
                    problems.append(f"image with an empty data: URI (alt={img.get('alt', '')!r})")
                continue
            target, _ = _local_target(page, self.html_root, src) if src else (page, "")
            if not src or target == page.resolve():
                problems.append(f"image without a source (alt={img.get('alt', '')!r})")
            elif target is None:
                problems.append(f"image from another host: {src}")
            elif not target.is_file():
                problems.append(f"missing image: {src}")
        return problems

    def dropdowns(self, soup: BeautifulSoup) -> list[str]:
        problems = []
        for details in soup.find_all("details"):
            self.counts["dropdowns"] += 1
            summary = details.find("summary")
            if not _has_content(details, summary):
                title = " ".join(summary.get_text(" ").split()) if summary else ""
                problems.append(f"empty dropdown: {title[:80]!r}")
        for tag in soup.find_all(class_=True):
            classes = set(_classes(tag))
            if "admonition" in classes and ("dropdown" in classes or "toggle" in classes):
                title = tag.find(class_="admonition-title")
                if not _has_content(tag, title):
                    name = " ".join(title.get_text(" ").split()) if title else ""
                    problems.append(f"empty dropdown: {name[:80]!r}")
            elif "toggle" in classes and tag.name == "div" and not _has_content(tag, None):
                problems.append("empty toggle block")
        return problems

    def links(self, page: Path, soup: BeautifulSoup) -> list[str]:
        problems = []
        refs = [("a", "href"), ("link", "href"), ("script", "src")]
        for name, attr in refs:
            for tag in soup.find_all(name, attrs={attr: True}):
                url = tag[attr]
                target, fragment = _local_target(page, self.html_root, url)
                if target is None:
                    continue
                self.counts["local links"] += 1
                if not target.exists():
                    problems.append(f"broken link: {url}")
                elif target.is_dir():
                    if not (target / "index.html").is_file():
                        problems.append(f"link to a folder without index.html: {url}")
                elif fragment and name == "a" and target.suffix == ".html":
                    if fragment not in self.ids(target):
                        problems.append(f"broken anchor: {url}")
        return problems


#: A MyST role left as text, e.g. ``{ref}`name``` inside glued text, where roles are not parsed.
UNRENDERED_ROLE = re.compile(r"\{[a-z][\w:-]*\}`")


def check_site(html_root: Path, toc_path: Path, counts: Counter | None = None) -> dict[str, list[str]]:
    """Problems per page (relative path) of every ``_toc.yml`` document; empty when the site is fine.

    ``counts``, if given, is updated with how many pages, images, dropdowns, links and math elements were checked.
    """
    html_root = Path(html_root)
    checker = SiteChecker(html_root)
    toc = yaml.safe_load(Path(toc_path).read_text())
    report = {}
    for name in toc_files(toc):
        page = html_root / f"{name}.html"
        if not page.is_file():
            report[f"{name}.html"] = ["page missing"]
            continue
        problems = checker.check_page(page)
        if problems:
            report[f"{name}.html"] = problems
    if counts is not None:
        counts.update(checker.counts)
    return report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--html", default="_build/html", type=Path, help="built site (default: _build/html)")
    parser.add_argument("--toc", default="_toc.yml", type=Path, help="table of contents (default: _toc.yml)")
    args = parser.parse_args(argv)
    if not args.html.is_dir():
        print(f"check-site: no built site at {args.html}; run `make book` first.", file=sys.stderr)
        return 2
    n_pages = len(toc_files(yaml.safe_load(args.toc.read_text())))
    counts = Counter()
    report = check_site(args.html, args.toc, counts)
    checked = ", ".join(f"{n} {what}" for what, n in counts.items())
    print(f"check-site: {args.html} against {args.toc} ({n_pages} pages); checked {checked}.")
    if not report:
        print("check-site: no problems.")
        return 0
    n_problems = sum(len(p) for p in report.values())
    print(f"check-site: {n_problems} problem(s) on {len(report)} of {n_pages} pages:", file=sys.stderr)
    for page, problems in report.items():
        for problem in problems:
            print(f"  {page}: {problem}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
