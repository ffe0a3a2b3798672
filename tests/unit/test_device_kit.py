"""The GPU session's kit (scripts/device_kit.sh) and script (benchmarks/gpu_session.sh): both
parse, and every package the kit carries has its pin in constraints.txt — a pin renamed or
dropped there would otherwise leave the lent machine without it, found only when device time is
being spent."""

import re
import subprocess

import pytest

from tests.conftest import REPO


@pytest.mark.parametrize("script", ["scripts/device_kit.sh", "benchmarks/gpu_session.sh"])
def test_the_scripts_parse(script):
    proc = subprocess.run(["bash", "-n", REPO / script], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_every_package_the_kit_carries_is_pinned():
    kit = (REPO / "scripts" / "device_kit.sh").read_text()
    names = re.search(r"grep -iE '\^\(([^)]*)\)==' constraints.txt", kit).group(1).split("|")
    pinned = {line.split("==")[0].lower().replace("_", "-")
              for line in (REPO / "constraints.txt").read_text().splitlines() if "==" in line}
    assert "transformers" in names and "pydantic_core" in names
    assert [n for n in names if n.lower().replace("_", "-") not in pinned] == []
