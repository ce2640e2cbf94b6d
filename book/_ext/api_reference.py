"""Sphinx directive ``package-api``: one section per public module of a package, found at build time.

``.. package-api:: bilinear_core`` writes, for every module of the package whose name does not start with ``_``,
a section with an autosummary table of its public functions and classes followed by their autodoc entries.
A module added to the package appears in the reference without editing any page. (Autosummary's own
``:recursive:`` stub pages are not used: Jupyter Book's ``only_build_toc_files`` excludes files that are not in
``_toc.yml``, which the generated stubs never are.)
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil

from docutils.parsers.rst import Directive
from sphinx.util import logging

logger = logging.getLogger(__name__)


def public_modules(package_name: str) -> list[str]:
    """Full names of the package's public modules and subpackages' modules, sorted."""
    package = importlib.import_module(package_name)
    modules = pkgutil.walk_packages(package.__path__, prefix=f"{package_name}.")
    return sorted(m.name for m in modules if not any(part.startswith("_") for part in m.name.split(".")))


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
    """reST for one module: a section title, the module docstring, a summary table, then every member."""
    title = f"``{module_name}``"
    lines = [title, "-" * len(title), "", f".. automodule:: {module_name}", "   :members:", ""]
    members = public_members(module_name)
    if members:
        lines += ["   .. autosummary::", "      :nosignatures:", ""]
        lines += [f"      {name}" for name in members]
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
        f"Imported by ``import {package_name}``; each is documented with its module below.",
        "",
        ".. autosummary::",
        "   :nosignatures:",
        "",
        *(f"   {target}" for target in targets),
        "",
    ]


class PackageApi(Directive):
    """``.. package-api:: package``: top-level names, then every public module of ``package``."""

    required_arguments = 1
    has_content = False

    def run(self):
        package_name = self.arguments[0]
        lines = top_level_rst(package_name)
        for module_name in public_modules(package_name):
            try:
                lines += module_rst(module_name)
            except Exception as err:  # a module that cannot be imported is a warning (an error under -W)
                logger.warning(f"package-api: cannot document {module_name}: {err!r}", location=self.state.document)
        source = self.state_machine.input_lines.source(self.lineno - self.state_machine.input_offset - 1)
        self.state_machine.insert_input(lines, source)
        return []


def setup(app):
    app.add_directive("package-api", PackageApi)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
