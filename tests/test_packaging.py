"""`pip install .` must ship every package and the data the demo needs (a non-editable install
sees only what pyproject lists)."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_every_python_package_is_listed():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "annotate").rglob("__init__.py")}
    assert found <= listed, f"add to [tool.setuptools] packages: {sorted(found - listed)}"
    for package, directory in config["package-dir"].items():
        assert (REPO / directory / "__init__.py").exists(), package
        assert package in listed


def test_example_files_are_covered_by_package_data():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]
    patterns = config["annotate.examples"]
    for path in (REPO / "examples").rglob("*"):
        if path.is_file() and path.suffix != ".py" and "__pycache__" not in path.parts:
            rel = path.relative_to(REPO / "examples")
            assert any(rel.match(p.replace("**/", "*/")) or rel.match(p.replace("**/", "*/*/"))
                       or rel.match(p.replace("**/", "")) for p in patterns), f"{rel} is not shipped"


def test_every_example_folder_is_a_listed_package():
    """Data-only folders are listed as packages: setuptools ships them without 'Package would be
    ignored' warnings (and a new example's folder is not forgotten)."""
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    for folder in (REPO / "examples").rglob("*"):
        if folder.is_dir() and folder.name != "__pycache__":
            package = "annotate.examples." + ".".join(folder.relative_to(REPO / "examples").parts)
            assert package in listed, f"add {package!r} to [tool.setuptools] packages"


def test_license_is_an_spdx_string():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0"  # a table is deprecated by setuptools
