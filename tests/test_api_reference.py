"""The API reference: one page per public module, all of them in _toc.yml in reading order, private helpers out."""

import importlib.util
from pathlib import Path

import yaml

ROOT = Path(__file__).parents[1]
_path = ROOT / "book" / "_ext" / "api_reference.py"
_spec = importlib.util.spec_from_file_location("api_reference", _path)
api_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_reference)

TOC_SUFFIXES = (".md", ".ipynb", ".py", ".rst")


def _toc() -> dict:
    return yaml.safe_load((ROOT / "_toc.yml").read_text())


def _entries(entries):
    """Every entry with a ``file`` of a toc (sub)tree, depth first."""
    for entry in entries or []:
        if "file" in entry:
            yield entry
        for key in ("parts", "chapters", "sections"):
            yield from _entries(entry.get(key))


def _api_sections() -> list[dict]:
    (api,) = [entry for entry in _entries(_toc().get("chapters")) if entry["file"] == "book/api"]
    return api.get("sections", [])


def test_public_modules_skip_private_ones_and_those_exporting_nothing():
    modules = api_reference.public_modules("bilinear_core")
    assert {"bilinear_core.model", "bilinear_core.interpret", "bilinear_core.tl"} <= set(modules)
    assert "bilinear_core.datasets.genesets" in modules  # modules of subpackages too
    assert not any("._" in name for name in modules)  # bilinear_core.datasets._files and the like
    assert modules == sorted(modules)
    internal = api_reference.internal_modules("bilinear_core")
    assert {"bilinear_core.checks", "bilinear_core.parallel"} <= set(internal)  # __all__ = []
    assert not set(internal) & set(modules)


def test_every_public_module_has_a_page_in_the_toc_in_reading_order():
    public = api_reference.public_modules("bilinear_core")
    ordered = api_reference.ordered_modules("bilinear_core")
    assert sorted(ordered) == public, (
        "MODULE_GROUPS in book/_ext/api_reference.py must place every public module exactly once: "
        f"missing {sorted(set(public) - set(ordered))}, not public {sorted(set(ordered) - set(public))}"
    )
    assert ordered[:3] == ["bilinear_core.pp", "bilinear_core.tl", "bilinear_core.pl"]  # the AnnData face first
    expected = [{"file": api_reference.page_path(name), "title": name.split(".", 1)[1]} for name in ordered]
    assert _api_sections() == expected, (
        "the sections of `- file: book/api` in _toc.yml must be, in this order:\n"
        + "\n".join(f"      - file: {e['file']}\n        title: {e['title']}" for e in expected)
    )


def test_every_page_of_the_toc_exists():
    toc = _toc()
    files = [toc["root"], *(entry["file"] for entry in _entries(toc.get("chapters")))]
    missing = [f for f in files if not any((ROOT / f).with_suffix(s).is_file() for s in TOC_SUFFIXES)]
    missing = [f for f in missing if not (ROOT / f).is_file()]  # a file named with its suffix
    assert not missing, f"_toc.yml names pages that do not exist: {missing}"


def test_each_module_page_documents_its_module_with_the_directive():
    for name in api_reference.ordered_modules("bilinear_core"):
        page = ROOT / f"{api_reference.page_path(name)}.rst"
        assert page.read_text().strip() == f".. module-api:: {name}", page
    index = (ROOT / "book" / "api.rst").read_text()
    assert ".. api-index:: bilinear_core" in index


def test_public_members_are_defined_in_the_module_in_source_order():
    members = api_reference.public_members("bilinear_core.frequencies")  # no __all__: found in the source
    assert members.index("knn_adjacency") < members.index("laplacian") < members.index("graph_summary")
    assert "check_min_cells" not in members  # imported from bilinear_core.checks
    members = api_reference.public_members("bilinear_core.interpret")  # __all__ wins
    assert "eigendecompose" in members and "Modules" in members
    assert "_weights" not in members  # private
    assert "BilinearMLP" not in members  # imported from bilinear_core.model, documented there
    assert members.index("interaction_matrices") < members.index("eigendecompose")


def test_helpers_of_the_package_and_the_tests_are_not_public():
    assert api_reference.public_members("bilinear_core.checkpoint") == ["Checkpoint"]  # not inject_fault, ...
    assert api_reference.public_members("bilinear_core.io") == ["save", "load", "FORMAT"]  # not atomic_save
    train = api_reference.public_members("bilinear_core.train")
    assert {"fit", "fit_many", "TrainSettings", "FitResult"} <= set(train)
    assert not {"train_model", "MemorySource", "bind_checkpoint", "fit_jobs"} & set(train)
    assert "pole_indices" not in api_reference.public_members("bilinear_core.interpret")
    assert "StreamSource" not in api_reference.public_members("bilinear_core.stream")
    assert "proximal_step" not in api_reference.public_members("bilinear_core.regularisation")
    assert api_reference.public_members("bilinear_core.devices") == ["resolve_device"]


def test_module_rst_lists_members_under_automodule():
    lines = api_reference.module_rst("bilinear_core.model")
    title = lines.index("bilinear_core.model")
    assert lines[title - 2] == ".. rst-class:: api-module"  # the page's section, styled by _static/custom.css
    assert set(lines[title + 1]) == {"="} and len(lines[title + 1]) == len(lines[title])
    assert ".. automodule:: bilinear_core.model" in lines
    assert "      BilinearMLP" in lines


def test_index_lists_module_pages_then_top_level_names():
    lines = api_reference.modules_rst("bilinear_core")
    pp, train, stream = (lines.index(f"   bilinear_core.{name}") for name in ("pp", "train", "stream"))
    assert pp < train < stream
    assert any("``bilinear_core.checks``" in line for line in lines)  # said to have no page
    lines = api_reference.top_level_rst("bilinear_core")
    assert "   bilinear_core.interpret.eigendecompose" in lines
    assert "   bilinear_core.train.fit" in lines


def test_dataclass_factory_defaults_become_values():
    from bilinear_core.train import FitResult

    signature = "(model, history, settings: dict = <factory>, timings: dict = <factory>)"
    shown, _ = api_reference._dataclass_defaults(None, "class", "FitResult", FitResult, {}, signature, None)
    assert shown == "(model, history, settings: dict = {}, timings: dict = {})"
