"""Presets ship inside the package and are found by name."""

import fnmatch
import tomllib
from pathlib import Path

import pytest

from forgetless.cli import main
from forgetless.core.errors import ConfigError
from forgetless.core.presets import ROOT, copy_preset, presets, resolve

REPO = Path(__file__).resolve().parents[2]


def test_every_preset_is_package_data():
    patterns = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"][
        "package-data"]["forgetless"]
    files = [str(p.relative_to(ROOT.parent)) for p in ROOT.rglob("*") if p.is_file()]
    assert files and all(any(fnmatch.fnmatch(f, pat) for pat in patterns) for f in files), files
    # the checkout's configs/ is the same folder
    assert (REPO / "configs").resolve() == ROOT


def test_names_resolve_to_the_packaged_files(tmp_path, monkeypatch):
    found = presets()
    assert {"quickstart", "studies/sharpness", "benchmarks/trace"} <= set(found)
    for given in ("quickstart", "quickstart.yaml", "configs/quickstart.yaml"):
        monkeypatch.chdir(tmp_path)  # no configs/ here: the name is what finds it
        assert resolve(given) == str(found["quickstart"])
    own = tmp_path / "quickstart"
    own.write_text("name: mine\n")
    assert resolve(str(own)) == str(own)  # an existing file is always itself
    assert resolve("nothing-like-it") == "nothing-like-it"


def test_copy_and_list(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["config", "--copy", "studies/sharpness"]) == 0
    copied = tmp_path / "sharpness.yaml"
    assert copied.read_text() == presets()["studies/sharpness"].read_text()
    with pytest.raises(ConfigError, match="sharpness.yaml exists; not replaced"):
        copy_preset("studies/sharpness", None)
    assert main(["config", "--copy", "nope"]) == 2
    assert "--copy nope: no such preset" in capsys.readouterr().err
    assert main(["config", "--list"]) == 0
    listing = capsys.readouterr().out
    assert "quickstart" in listing and "studies/pretraining" in listing
    assert main(["config", "quickstart"]) == 0
    assert "name: quickstart" in capsys.readouterr().out
