"""Packaging rules (STYLE.md §4): the wheel ships twisted/plugins without any __init__.py."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import clearwater

ROOT = Path(__file__).resolve().parents[2]


def test_no_init_in_twisted_plugin_folders() -> None:
    assert not (ROOT / "twisted" / "__init__.py").exists()
    assert not (ROOT / "twisted" / "plugins" / "__init__.py").exists()
    assert (ROOT / "twisted" / "plugins" / "clearwater_plugins.py").exists()


def test_plugin_module_is_found_through_twisted_plugins() -> None:
    from twisted.plugin import IPlugin, getPlugins

    import twisted.plugins

    list(getPlugins(IPlugin, twisted.plugins))  # must not raise
    import twisted.plugins.clearwater_plugins as plugins

    assert Path(plugins.__file__).resolve().parent == ROOT / "twisted" / "plugins"


def test_py_typed_marker() -> None:
    assert (Path(clearwater.__file__).parent / "py.typed").exists()


@pytest.mark.skipif(
    sys.implementation.name != "cpython", reason="one wheel check is enough (CPython run)"
)
def test_wheel_contents(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(tmp_path), str(ROOT)],
        check=True,
        cwd=tmp_path,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("clearwater-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "twisted/plugins/clearwater_plugins.py" in names
    assert "clearwater/py.typed" in names
    assert "clearwater/sip/_parser.py" in names
    assert "twisted/__init__.py" not in names
    assert "twisted/plugins/__init__.py" not in names
    assert not any(name.startswith("tests/") for name in names)
