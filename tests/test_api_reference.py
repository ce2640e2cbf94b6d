"""The API reference finds every public module and member of bilinear_core by itself."""

import importlib.util
from pathlib import Path

_path = Path(__file__).parents[1] / "book" / "_ext" / "api_reference.py"
_spec = importlib.util.spec_from_file_location("api_reference", _path)
api_reference = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(api_reference)


def test_public_modules_skip_private_ones():
    modules = api_reference.public_modules("bilinear_core")
    assert {"bilinear_core.model", "bilinear_core.interpret", "bilinear_core.tl"} <= set(modules)
    assert "bilinear_core.datasets.genesets" in modules  # modules of subpackages too
    assert not any("._" in name for name in modules)  # bilinear_core.datasets._files and the like
    assert modules == sorted(modules)


def test_public_members_are_defined_in_the_module_in_source_order():
    members = api_reference.public_members("bilinear_core.interpret")
    assert "eigendecompose" in members and "Modules" in members
    assert "_weights" not in members  # private
    assert "BilinearMLP" not in members  # imported from bilinear_core.model, documented there
    assert members.index("interaction_matrices") < members.index("eigendecompose")


def test_module_rst_lists_members_under_automodule():
    lines = api_reference.module_rst("bilinear_core.model")
    assert lines[0] == "``bilinear_core.model``" and set(lines[1]) == {"-"} and len(lines[1]) == len(lines[0])
    assert ".. automodule:: bilinear_core.model" in lines
    assert "      BilinearMLP" in lines


def test_top_level_names_point_to_their_modules():
    lines = api_reference.top_level_rst("bilinear_core")
    assert "   bilinear_core.interpret.eigendecompose" in lines
    assert "   bilinear_core.train.fit" in lines
