"""Bad input as a new user makes it: one line on stderr naming what and where, exit code 2, no
traceback, nothing half-written. One row per case (issue #16's suite starts here)."""

import json
import subprocess

import pytest

from tests.conftest import FORGETLESS, REPO

pytestmark = pytest.mark.integration


def results_json(**changes) -> dict:
    base = {"name": "r", "method": "seqft", "seed": 0, "complete": True, "config": {},
            "matrices": {"train": [[1.0]], "test": [[0.5]]},
            "metrics": {"train": {}, "test": {}}, "headline": {"MA": 1.0},
            "experiences": [], "timings": {"train_s": 1.0, "eval_s": 1.0},
            "run": {"peak_memory_mb": 1.0}}
    for key, value in changes.items():
        node = base
        *parents, last = key.split("__")
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[last]
        else:
            node[last] = value
    return base


def write(path, text: bytes | str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


CASES = {
    # id: (files to write {relative path: content}, command args, expected text in the error)
    "config not UTF-8": ({"c.yaml": b"name: \xff\xfe\n"}, ["run", "{d}/c.yaml"],
                         "c.yaml: not UTF-8 text"),
    "config not YAML": ({"c.yaml": "name: [\n"}, ["config", "{d}/c.yaml"], "not valid YAML"),
    "template placeholder": ({}, ["config", "--set", "data.prompt_template=Q: {question} {x}"],
                             "data.prompt_template must use only the placeholder"),
    "report: results missing a key": (
        {"r/results.json": json.dumps(results_json(matrices__test=KeyError))},
        ["report", "{d}/r"], "key 'matrices.test' is missing (expected a list of rows"),
    "report: wrong type": (
        {"r/results.json": json.dumps(results_json(seed="zero"))},
        ["report", "{d}/r"], "key 'seed' is a str (expected the seed)"),
    "report: not a square matrix": (
        {"r/results.json": json.dumps(results_json(matrices__test=[[0.5, 0.2]]))},
        ["report", "{d}/r"], "key 'matrices.test' is not a 1×1 matrix"),
    "compare: results missing a key": (
        {"r/results.json": json.dumps(results_json(headline=KeyError))},
        ["compare", "{d}/r", "--out", "{d}/cmp"], "key 'headline' is missing"),
    "report: results not UTF-8": ({"r/results.json": b"\xff{}"}, ["report", "{d}/r"],
                                  "not UTF-8 text"),
    "seed negative": ({}, ["config", "--set", "seed=-1"], "seed: Input should be greater than"),
    "lr infinite": ({}, ["config", "--set", "train.lr=.inf"], "train.lr: Input should be a finite"),
    "source option of another source": ({}, ["data", "--set", "data.path=x"],
                                        "data.path: not an option of data.source 'concepts'"),
    "unknown source": ({}, ["data", "--set", "data.source=nope"],
                       "data.source: unknown data source 'nope'"),
    "audit of an empty stream": ({"t/a.jsonl": ""},
                                 ["data", "--set", "data.source=jsonl", "--set", "data.path={d}/t",
                                  "--audit"], "a.jsonl"),
    "examples without --json": ({}, ["data", "--examples"], "--examples is a JSON listing"),
}


@pytest.mark.parametrize("files, args, expected", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_and_exit_2(tmp_path, files, args, expected):
    for rel, content in files.items():
        write(tmp_path / rel, content)
    before = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    proc = subprocess.run([FORGETLESS, *(a.replace("{d}", str(tmp_path)) for a in args)],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    assert expected in proc.stderr
    after = {p: p.stat().st_mtime_ns for p in tmp_path.rglob("*")}
    assert after == before  # nothing written, nothing rewritten


def test_a_damaged_checkpoint_or_run_config_is_one_line(tiny_overrides, tmp_path):
    import forgetless

    overrides = [*tiny_overrides, "train.epochs=1", "probe.samples=0", "probe.qa=false"]
    forgetless.run(None, overrides, run_dir=tmp_path / "run")
    sets = [x for o in overrides for x in ("--set", o)]
    state = next((tmp_path / "run" / "checkpoints").iterdir()) / "state.json"
    state.write_text(state.read_text()[:20])  # truncated
    proc = subprocess.run([FORGETLESS, "run", *sets, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "damaged checkpoint (JSONDecodeError" in proc.stderr and "--fresh" in proc.stderr
    (tmp_path / "run" / "config.yaml").write_text("name: [")
    proc = subprocess.run([FORGETLESS, "run", *sets, "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and "config.yaml: damaged run config (ParserError)" in proc.stderr
