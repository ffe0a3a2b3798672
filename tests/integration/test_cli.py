import json

import pytest

from tests.integration.test_run import cli, sets

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("args, needle", [
    (["run", "--set", "train.lr=abc"], "train.lr: Input should be a valid number"),
    (["run", "missing.yaml"], "missing.yaml: config file not found"),
    (["run", "--set", "model.name=/no/such/model"], "model.name='/no/such/model': not a built-in"),
    (["data", "--set", "data.source=concept1k", "--set", "data.path=/nope.txt"],
     "/nope.txt: Concept-1K file not found"),
    (["report", "/no/run/dir"], "no results.json"),
    (["sweep", "configs/studies/buffer-size.yaml", "--seeds", "x"],
     "--seeds: expected comma-separated integers, got 'x'"),
    (["run", "--threads", "0"], "--threads: expected a positive integer, got '0'"),
    (["pretrain", "--threads", "x"], "--threads: expected a positive integer, got 'x'"),
])
def test_bad_input_is_one_line_and_exit_2(args, needle, tmp_path):
    proc = cli(*args, check=False, cwd=tmp_path)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], proc.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be written on bad input"


def test_data_json_lists_experiences():
    proc = cli("data", "--json", "--set", "data.n_experiences=4")
    data = json.loads(proc.stdout)
    assert [d["id"] for d in data] == [0, 1, 2, 3]
    assert set(data[0]) == {"id", "n_train", "n_test", "concepts"}
    assert data[0]["n_train"] == 32 and len(data[0]["concepts"]) == 8
    table = cli("data", "--set", "data.n_experiences=4").stdout
    assert "n_train" in table and len(table.strip().splitlines()) == 6


def test_run_threads_sets_the_thread_count_the_run_records(tiny_overrides, tmp_path):
    """`forgetless run --threads T` trains with T threads (the count is part of the machine a
    run's numbers belong to: a resume must be able to match it)."""
    import torch

    before = torch.get_num_threads()
    wanted = before + 1
    try:
        cli("run", *sets([*tiny_overrides, "train.epochs=1"]), "--out", str(tmp_path / "r"),
            "--quiet", "--threads", str(wanted))
        assert torch.get_num_threads() == wanted
    finally:
        torch.set_num_threads(before)
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert results["run"]["machine"]["threads"] == wanted


def test_report_rerenders_a_run(tiny_overrides, tmp_path):
    out = tmp_path / "r"
    cli("run", *sets([*tiny_overrides, "train.epochs=1"]), "--out", str(out), "--quiet")
    written = ["summary.md", "matrix_train.csv", "matrix_test.csv", "report.html"]
    before = {name: (out / name).read_text() for name in written}
    for name in written:
        (out / name).unlink()
    proc = cli("report", str(out))
    # what the run wrote, again, from results.json alone
    after = {name: (out / name).read_text() for name in written}
    for name in ("summary.md", "matrix_train.csv", "matrix_test.csv"):
        assert after[name] == before[name], name
    ma = json.loads((out / "results.json").read_text())["headline"]["MA"]
    assert f"{100 * ma:.1f}" in proc.stdout and f"{100 * ma:.1f}" in after["report.html"]


def test_changed_config_in_same_run_dir_is_refused(tiny_overrides, tmp_path):
    out = tmp_path / "r"
    cli("run", *sets([*tiny_overrides, "train.epochs=1"]), "--out", str(out), "--quiet")
    proc = cli("run", *sets([*tiny_overrides, "train.epochs=2"]), "--out", str(out), check=False)
    assert proc.returncode == 2 and "different config" in proc.stderr


def test_methods_and_config_keys():
    assert "seqft" in cli("methods").stdout
    keys = cli("config", "--keys").stdout
    assert "train.lr" in keys and "model.lora.r" in keys
    assert "lr: 0.0002" in cli("config", "--set", "train.lr=2e-4").stdout
