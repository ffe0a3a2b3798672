"""Third-party methods and data sources register through entry points: a tiny plugin package
is built and installed (pip, into a folder on PYTHONPATH) and used from the command line."""

import json
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import FORGETLESS, REPO, TINY

pytestmark = pytest.mark.integration

PYPROJECT = """
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "forgetless-plugin-example"
version = "0.1"

[project.entry-points."forgetless.methods"]
count_steps = "fl_plugin.count_steps"

[project.entry-points."forgetless.sources"]
arithmetic = "fl_plugin.arithmetic"
"""

METHOD = '''
"""A method that counts the optimizer steps of each experience (and changes nothing)."""
from forgetless.core.config import Section
from forgetless.methods.hooks import Method
from forgetless.methods.registry import register


class CountStepsConfig(Section):
    every: int = 1
    """Count every k-th step."""


@register("count_steps", CountStepsConfig, summary="counts optimizer steps (plugin example)")
class CountSteps(Method):
    def before_experience(self, ctx, exp):
        self.steps = 0

    def after_optimizer_step(self, ctx):
        self.steps += ctx.global_step % self.config.every == 0

    def experience_stats(self):
        return {"counted": self.steps}
'''

SOURCE = '''
"""A source of sums: experience e asks for e + k."""
from typing import Literal

from forgetless.core.config import SourceConfig
from forgetless.data.sources.registry import register
from forgetless.data.types import Example, Experience, Stream


class ArithmeticConfig(SourceConfig):
    source: Literal["arithmetic"] = "arithmetic"
    n_experiences: int = 2
    """Experiences."""


@register("arithmetic", ArithmeticConfig, "sums (plugin example)")
def build(cfg):
    exps = []
    for e in range(cfg.n_experiences):
        ex = [Example(f"{e}+{k}", f"What is {e} plus {k}?", str(e + k), f"sum{e}", "plus")
              for k in range(4)]
        exps.append(Experience(e, ex, ex, [f"sum{e}"]))
    return Stream("arithmetic", exps)
'''


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    root = tmp_path_factory.mktemp("plugin")
    pkg = root / "src" / "fl_plugin"
    pkg.mkdir(parents=True)
    (root / "pyproject.toml").write_text(textwrap.dedent(PYPROJECT))
    (pkg / "__init__.py").write_text("")
    (pkg / "count_steps.py").write_text(METHOD)
    (pkg / "arithmetic.py").write_text(SOURCE)
    site = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--no-build-isolation", "--disable-pip-version-check", "--target", str(site),
                    str(root)], check=True, capture_output=True)
    return site


def cli(site, *args):
    env = {**os.environ, "PYTHONPATH": str(site), "HF_HUB_OFFLINE": "1", "TQDM_DISABLE": "1"}
    return subprocess.run([FORGETLESS, *args], capture_output=True, text=True, env=env, cwd=REPO)


def test_a_plugin_method_and_source_are_registered_and_run(plugin_path, tmp_path):
    assert "count_steps" in cli(plugin_path, "methods").stdout
    assert "arithmetic" in cli(plugin_path, "data", "--sources").stdout
    data = json.loads(cli(plugin_path, "data", "--set", "data.source=arithmetic",
                          "--set", "data.n_experiences=3", "--json").stdout)
    assert [d["n_train"] for d in data] == [4, 4, 4]
    keys = cli(plugin_path, "config", "--keys").stdout
    assert "count_steps.every" in keys and "[data.source arithmetic]" in keys

    sets = [x for o in TINY if not o.startswith("data.") for x in ("--set", o)]
    proc = cli(plugin_path, "run", *sets, "--set", "data.source=arithmetic",
               "--set", "method=seqft+count_steps", "--set", "count_steps.every=2",
               "--set", "train.epochs=2", "--set", "probe.samples=0", "--set", "probe.qa=false",
               "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 0, proc.stderr[-2000:]
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    # 4 examples, batch 8 → 1 step per epoch, 2 epochs per experience; global steps 1,2 | 3,4
    assert [x["methods"]["count_steps"]["counted"] for x in results["experiences"]] == [1, 1]


def test_without_the_plugin_its_names_are_unknown():
    proc = subprocess.run([FORGETLESS, "data", "--set", "data.source=arithmetic"],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2
    assert "data.source: unknown data source 'arithmetic' (known: classification" in proc.stderr
