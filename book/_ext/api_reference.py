"""Sphinx directives of the API reference: one page per public module, and an index page listing them.

``.. module-api:: bilinear_core.pp`` writes one module's page (``book/api/pp.rst``): the module's name as the page
title, its docstring, a summary table of its public functions and classes, then their autodoc entries.
``.. api-index:: bilinear_core`` writes the index (``book/api.rst``): the module pages, grouped and in the order
of :data:`MODULE_GROUPS` with each module's one-line summary, then the names the package re-exports at the top level.

Public means: a module none of whose name's parts starts with ``_`` and which exports something (a module with
``__all__ = []``, such as the input checks, has no page); its public members are its ``__all__`` or, without one,
the functions and classes defined in it whose names do not start with ``_``.

The pages are the ``sections:`` of ``- file: book/api`` in ``_toc.yml``, in :data:`MODULE_GROUPS` order, each with
``title:`` its name relative to the package (the sidebar's entry; the page's own title is the full name). Jupyter
Book's ``only_build_toc_files`` drops any page that is not there (autosummary's ``:recursive:`` stub pages never are).
``tests/test_api_reference.py`` fails when a public module has no page in the toc or the toc names a missing page,
and the index warns (an error under ``-W``) about a public module that :data:`MODULE_GROUPS` does not place.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import pkgutil
import re

from docutils.parsers.rst import Directive
from sphinx.util import logging

logger = logging.getLogger(__name__)

#: The module pages in the order a user meets them (names relative to the package), under the index's headings.
MODULE_GROUPS = (
    ("The AnnData face", ("pp", "tl", "pl")),
    ("Arrays: model, training, interpretation", ("model", "train", "interpret", "enrichment", "report")),
    ("A trained model on new cells: save, load, apply, command line", ("io", "apply", "cli")),
    (
        "Analyses",
        ("frequencies", "perturbation", "composition", "baselines", "stability", "regularisation", "evaluation"),
    ),
    ("Data", ("datasets", "datasets.genesets", "datasets.simulate")),
    ("Larger data", ("stream", "checkpoint", "distributed", "devices")),
)
PAGES_DIR = "book/api"  # a module's page: PAGES_DIR/<name relative to the package>.rst


def _modules(package_name: str) -> list[str]:
    """Full names of the package's modules and subpackages' modules whose names' parts have no leading ``_``."""
    package = importlib.import_module(package_name)
    modules = pkgutil.walk_packages(package.__path__, prefix=f"{package_name}.")
    return sorted(m.name for m in modules if not any(part.startswith("_") for part in m.name.split(".")))


def public_modules(package_name: str) -> list[str]:
    """Full names of the package's public modules and subpackages' modules, sorted."""
    return [name for name in _modules(package_name) if getattr(importlib.import_module(name), "__all__", None) != []]


def internal_modules(package_name: str) -> list[str]:
    """Full names of the modules without a leading ``_`` that export nothing (``__all__ = []``), sorted."""
    return [name for name in _modules(package_name) if getattr(importlib.import_module(name), "__all__", None) == []]


def ordered_modules(package_name: str) -> list[str]:
    """Full names of the modules of :data:`MODULE_GROUPS`, in page order."""
    return [f"{package_name}.{name}" for _, names in MODULE_GROUPS for name in names]


def page_path(module_name: str) -> str:
    """The page in ``_toc.yml``: ``bilinear_core.datasets.simulate`` -> ``book/api/datasets.simulate``."""
    return f"{PAGES_DIR}/{module_name.split('.', 1)[1]}"


def public_members(module_name: str) -> list[str]:
    """Functions and classes defined in the module (not imported into it), in source order; ``__all__`` wins."""
    module = importlib.import_module(module_name)
    names = getattr(module, "__all__", None)
    if names is None:
        names = [
            name
            for name, obj in vars(module).items()
            if not name.startswith("_")
            and (inspect.isfunction(obj) or inspect.isclass(obj))
            and obj.__module__ == module_name
        ]
    return list(names)


def module_rst(module_name: str) -> list[str]:
    """reST of a module's page: the title (the module's name, as plain text: a long name in the larger monospace
    font would not fit a narrow window), the module docstring, a summary table, then every member.

    The page is a ``section.api-module`` (``_static/custom.css`` styles the API pages through it).
    """
    lines = [".. rst-class:: api-module", "", module_name, "=" * len(module_name), ""]
    lines += [f".. automodule:: {module_name}", "   :members:", ""]
    members = public_members(module_name)
    if members:
        lines += ["   .. autosummary::", "      :nosignatures:", ""]
        lines += [f"      {name}" for name in members]
        lines.append("")
    return lines


def modules_rst(package_name: str) -> list[str]:
    """reST of the index's list of module pages: one summary table per group of :data:`MODULE_GROUPS`."""
    lines = []
    internal = [f"``{name}``" for name in internal_modules(package_name)]
    if internal:
        names = " and ".join([", ".join(internal[:-1]), internal[-1]] if len(internal) > 1 else internal)
        lines += [f"Not listed: {names}, which serve the other modules and export nothing.", ""]
    for heading, names in MODULE_GROUPS:
        lines += [heading, "-" * len(heading), "", ".. autosummary::", "   :nosignatures:", ""]
        lines += [f"   {package_name}.{name}" for name in names]
        lines.append("")
    return lines


def top_level_rst(package_name: str) -> list[str]:
    """reST table of the names the package re-exports at the top level, linked to where they are documented."""
    package = importlib.import_module(package_name)
    targets = []
    for name in getattr(package, "__all__", []):
        obj = getattr(package, name)
        if inspect.isfunction(obj) or inspect.isclass(obj):
            targets.append(f"{obj.__module__}.{obj.__qualname__}")
    if not targets:
        return []
    title = "Top-level names"
    return [
        title,
        "-" * len(title),
        "",
        f"Imported by ``import {package_name}``; each is documented on its module's page.",
        "",
        ".. autosummary::",
        "   :nosignatures:",
        "",
        *(f"   {target}" for target in targets),
        "",
    ]


def _dataclass_defaults(app, what, name, obj, options, signature, return_annotation):
    """A dataclass field's ``default_factory`` shown as its value (``{}``; ``...`` unless a builtin container)
    where autodoc writes ``<factory>``.

    ``<factory>`` is no Python expression: the signature would be shown unparsed (``~module.Class`` annotations
    and all, on one line); with the value it is parsed like any other (short names, one parameter per line).
    """
    if what != "class" or not signature or "<factory>" not in signature or not dataclasses.is_dataclass(obj):
        return None
    for field in dataclasses.fields(obj):
        factory = field.default_factory
        if factory is dataclasses.MISSING:
            continue
        value = repr(factory()) if factory in (dict, list, set, tuple) else "..."
        pattern = rf"(\b{re.escape(field.name)}\b[^=]*= )<factory>"
        signature = re.sub(pattern, lambda m, value=value: m.group(1) + value, signature)
    return signature, return_annotation


class _InsertRst(Directive):
    """A directive whose reST, made by :meth:`rst` from its argument, is parsed in its place."""

    required_arguments = 1
    has_content = False

    def rst(self, name: str) -> list[str]:
        raise NotImplementedError

    def _warn(self, message: str) -> None:
        logger.warning(f"{self.name}: {message}", location=self.state.document)

    def run(self):
        try:
            lines = self.rst(self.arguments[0])
        except Exception as err:  # a module that cannot be imported is a warning (an error under -W)
            self._warn(f"cannot document {self.arguments[0]}: {err!r}")
            return []
        source = self.state_machine.input_lines.source(self.lineno - self.state_machine.input_offset - 1)
        self.state_machine.insert_input(lines, source)
        return []


class ModuleApi(_InsertRst):
    """``.. module-api:: package.module``: the page of one public module."""

    def rst(self, name):
        package_name = name.split(".")[0]
        if name not in public_modules(package_name):
            self._warn(f"{name} is not a public module")
        return module_rst(name)


class ApiIndex(_InsertRst):
    """``.. api-index:: package``: the module pages in :data:`MODULE_GROUPS` order, then the top-level names."""

    def rst(self, package_name):
        placed, public = ordered_modules(package_name), public_modules(package_name)
        for name in sorted(set(public) - set(placed)):
            self._warn(f"public module {name} has no place in MODULE_GROUPS (book/_ext/api_reference.py)")
        for name in sorted(set(placed) - set(public)):
            self._warn(f"{name} of MODULE_GROUPS is not a public module")
        return modules_rst(package_name) + top_level_rst(package_name)


def setup(app):
    app.add_directive("module-api", ModuleApi)
    app.add_directive("api-index", ApiIndex)
    app.connect("autodoc-process-signature", _dataclass_defaults)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
