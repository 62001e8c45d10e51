"""Packaging and layering: presets come from inside the installed package, and the core does not reach up."""

import ast
import importlib
import tomllib
from importlib import resources
from pathlib import Path

import pytest

import sim
from sim import data

ROOT = Path(__file__).resolve().parent.parent


def _setuptools_config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_under_sim_is_listed_for_installation() -> None:
    found = {".".join(p.parent.relative_to(ROOT).parts) for p in (ROOT / "sim").rglob("__init__.py")}
    listed = set(_setuptools_config()["packages"])
    assert found - listed == set(), "add these to [tool.setuptools] packages in pyproject.toml"


def test_data_folder_is_installed_as_sim_presets() -> None:
    config = _setuptools_config()
    assert config["package-dir"]["sim.presets"] == "data"
    assert "sim.presets" in config["packages"]
    assert "*.json" in config["package-data"]["sim.presets"]


def test_presets_are_read_with_importlib_resources() -> None:
    try:
        importlib.import_module(data.PACKAGE)
    except ModuleNotFoundError:
        pytest.skip("this editable install predates the sim.presets mapping: run `pip install -e .` to check")
    folder = resources.files(data.PACKAGE)
    assert data._presets_dir() == folder
    names = sorted(p.name for p in folder.iterdir() if p.name.endswith(".json"))
    assert names == sorted(p.name for p in (ROOT / "data").glob("*.json"))
    for name in names:
        assert data.load(name[: -len(".json")])  # each parses, comments stripped


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "sim" / "core").glob("*.py")), ids=lambda p: p.name)
def test_core_does_not_import_upper_layers(path: Path) -> None:
    upward = {n for n in _imports(path) if n.startswith(("sim.scenarios", "sim.components", "sim.cli", "sim.course"))
              or n in ("sim", "sim.__version__")}
    assert upward == set()


def test_scenarios_are_discovered_through_the_registry_sources() -> None:
    from sim.core import registry

    assert "sim.scenarios" in registry._SOURCES
    assert {s.name for s in sim.list_scenarios()} >= {"queue", "reconnect-storm"}


def test_recorded_version_is_the_installed_distribution() -> None:
    from sim.core.result import package_version

    assert package_version() == sim.__version__
