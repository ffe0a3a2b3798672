"""Bad input as a new user makes it: one line on stderr naming what and where, exit code 2, no
traceback, nothing half-written. One row per case (issue #16's suite starts here)."""

import json
import subprocess

import pytest

from forgetless.cli import main
from tests.conftest import FORGETLESS, REPO, forgetless_cli

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


JSONL_OK = '{"prompt": "Q?", "answer": "A"}\n'
HF_ROW = '{"question": "Q?", "answer": "A"}\n'
C1K_OK = "(Zorbl, color, red)\nQ1: What color is Zorbl?\nA1: red\nQ2: Zorbl has which color?\nA2: red\n"


def jsonl(path_key="t", **sets):
    return ["data", "--set", "data.source=jsonl", "--set", f"data.path={{d}}/{path_key}",
            *[x for k, v in sets.items() for x in ("--set", f"{k}={v}")]]


CASES.update({
    # --- config: keys, types, values, files
    "unknown key": ({}, ["config", "--set", "nope=1"], "unknown key 'nope'"),
    "unknown nested key": ({}, ["config", "--set", "train.nope=1"], "train.nope"),
    "wrong type": ({}, ["config", "--set", "train.epochs=many"], "train.epochs"),
    "zero epochs": ({}, ["config", "--set", "train.epochs=0"], "train.epochs"),
    "negative batch": ({}, ["config", "--set", "train.batch_size=-8"], "train.batch_size"),
    "lr not a number": ({}, ["config", "--set", "train.lr=.nan"], "train.lr"),
    "warmup with constant schedule": ({}, ["config", "--set", "train.warmup=0.1"],
                                      "train.warmup applies to schedule 'cosine' only"),
    "min_lr with constant schedule": ({}, ["config", "--set", "train.min_lr=0.5"],
                                      "train.min_lr applies to schedule 'cosine' only"),
    "betas out of range": ({}, ["config", "--set", "train.betas=[0.9, 1.5]"], "train.betas"),
    "checkpoint_every zero": ({}, ["config", "--set", "train.checkpoint_every=0"],
                              "train.checkpoint_every"),
    "on_nonfinite unknown": ({}, ["config", "--set", "train.on_nonfinite=ignore"],
                             "train.on_nonfinite"),
    "unknown method": ({}, ["config", "--set", "method=nope"], "nope"),
    "method section unused": ({}, ["config", "--set", "ewc.lam=10"],
                              "section 'ewc' is set but method 'seqft' does not use it"),
    "method option unknown": ({}, ["config", "--set", "method=ewc", "--set", "ewc.lamda=10"],
                              "ewc.lamda"),
    "ewc gamma above 1": ({}, ["config", "--set", "method=ewc", "--set", "ewc.gamma=2"],
                          "ewc.gamma"),
    "scorer unknown": ({}, ["config", "--set", "eval.scorer=bleu"], "eval.scorer"),
    "recovery of an experience the stream lacks": (
        {}, ["run", "--set", "model.name=tiny-llama-2m-v4k", "--set", "eval.recovery.enabled=true",
             "--set", "eval.recovery.experiences=[0,3]"],
        "eval.recovery.experiences: 3 is not an experience of this 3-experience stream"),
    "recovery fraction of 1": ({}, ["config", "--set", "eval.recovery.fraction=1"],
                               "eval.recovery.fraction"),
    "freeze freezes nothing": ({}, ["config", "--set", "method=freeze", "--set", "freeze.layers=0",
                                    "--set", "freeze.embeddings=false"], "freezes nothing"),
    "freeze more layers than the model has": (
        {}, ["run", "--set", "model.name=tiny-llama-2m-v4k", "--set", "method=freeze",
             "--set", "freeze.layers=9"], "freeze.layers=9, but the model has 2 decoder layers"),
    "keep_checkpoints unknown": ({}, ["config", "--set", "keep_checkpoints=some"],
                                 "keep_checkpoints"),
    "lora rank zero": ({}, ["config", "--set", "model.lora.enabled=true",
                            "--set", "model.lora.r=0"], "model.lora.r"),
    "corpus option without corpus": ({}, ["config", "--set", "probe.corpus_documents=8"],
                                     "probe.corpus_documents does nothing without probe.corpus"),
    "landscape examples cut": ({}, ["config", "--set", "landscape.record=true",
                                    "--set", "eval.max_train_examples=8"],
                               "landscape.examples=32 but eval.max_train_examples=8"),
    "stream too large": ({}, ["data", "--set", "data.n_experiences=100000",
                              "--set", "data.concepts_per_experience=100"],
                         "at most 100,000"),
    "--set without =": ({}, ["config", "--set", "train.lr"], "train.lr"),
    "config file missing": ({}, ["run", "{d}/missing.yaml"], "missing.yaml"),
    "config a list": ({"c.yaml": "- a\n- b\n"}, ["config", "{d}/c.yaml"], "c.yaml"),
    "template stray brace": ({}, ["config", "--set", "data.prompt_template=Q: {question"],
                             "data.prompt_template"),
    "template without question": ({}, ["config", "--set", "data.prompt_template=Answer:"],
                                  "data.prompt_template"),
    "unknown preset": ({}, ["run", "no-such-preset"], "no-such-preset"),
    "copy unknown preset": ({}, ["config", "--copy", "no-such-preset", "{d}/x.yaml"],
                            "no-such-preset"),
    "unknown CLI option": ({}, ["run", "--bogus"], "--bogus"),
    # --- output locations and run directories
    "--out under a file": ({"f": "x"}, ["run", "--set", "model.name=tiny-llama-2m-v4k",
                                        "--out", "{d}/f/run"], "is a file"),
    "--out is a file": ({"f": "x"}, ["run", "--set", "model.name=tiny-llama-2m-v4k",
                                     "--out", "{d}/f"], "exists and is not a directory"),
    "--out a folder of yours": ({"mine/thesis.tex": "x"},
                                ["run", "--set", "model.name=tiny-llama-2m-v4k", "--out", "{d}/mine"],
                                "not empty and not a forgetless run directory"),
    "--fresh on a folder of yours": ({"mine/thesis.tex": "x"},
                                     ["run", "--set", "model.name=tiny-llama-2m-v4k", "--out",
                                      "{d}/mine", "--fresh"], "not a forgetless run directory"),
    # --- models
    "model dir missing": ({}, ["run", "--set", "model.name={d}/nomodel", "--out", "{d}/r"],
                          "not a built-in model"),
    "model dir without config.json": ({"m/weights.txt": "x"},
                                      ["run", "--set", "model.name={d}/m", "--out", "{d}/r"],
                                      "config.json not found"),
    "model dir with a broken config.json": ({"m/config.json": "{", "m/tokenizer.json": "{"},
                                            ["run", "--set", "model.name={d}/m", "--out",
                                             "{d}/r"], "model.name="),
    # --- data files of every source
    "jsonl: folder missing": ({}, jsonl("none"), "none"),
    "jsonl: not JSON": ({"t/a.jsonl": "{oops\n"}, jsonl(), "a.jsonl:1: not valid JSON"),
    "jsonl: field missing": ({"t/a.jsonl": '{"prompt": "Q?"}\n'}, jsonl(),
                             "a.jsonl:1: answer: missing (expected a non-empty string)"),
    "jsonl: unknown field": ({"t/a.jsonl": '{"prompt": "Q?", "answer": "A", "x": 1}\n'},
                             jsonl(), "unknown field 'x'"),
    "jsonl: answer not a string": ({"t/a.jsonl": '{"prompt": "Q?", "answer": 3}\n'}, jsonl(),
                                   "a.jsonl:1"),
    "jsonl: not UTF-8": ({"t/a.jsonl": b'{"prompt": "\xff"}\n'}, jsonl(), "not UTF-8 text"),
    "jsonl: task not found": ({"t/a.jsonl": JSONL_OK}, jsonl(**{"data.tasks": "[b]"}),
                              "data.tasks names 'b'"),
    "concept1k: file missing": ({}, ["data", "--set", "data.source=concept1k",
                                     "--set", "data.path={d}/c1k.txt"],
                                "Concept-1K file not found"),
    "concept1k: bad record": ({"c1k.txt": "(Zorbl, color)\nQ1: x\nA1: y\nQ2: z\nA2: y\n"},
                              ["data", "--set", "data.source=concept1k",
                               "--set", "data.path={d}/c1k.txt"], "c1k.txt:1"),
    "concept1k: more steps than concepts": (
        {"c1k.txt": C1K_OK}, ["data", "--set", "data.source=concept1k",
                              "--set", "data.path={d}/c1k.txt", "--set", "data.n_experiences=3"],
        "data.n_experiences=3 exceeds the 1 concepts"),
    "hf: no datasets": ({}, ["data", "--set", "data.source=hf"], "data.datasets"),
    "hf: file missing": ({}, ["data", "--set", "data.source=hf",
                              "--set", "data.datasets=[{d}/none.jsonl]"], "none.jsonl"),
    "hf: column missing": ({"h.jsonl": '{"q": "Q?", "answer": "A"}\n'},
                           ["data", "--set", "data.source=hf", "--set", "data.shape=columns",
                            "--set", "data.datasets=[{d}/h.jsonl]"], "question"),
    "hf: unknown shape": ({"h.jsonl": HF_ROW}, ["data", "--set", "data.source=hf",
                                                "--set", "data.shape=chatml",
                                                "--set", "data.datasets=[{d}/h.jsonl]"],
                          "data.shape"),
    "hf: unsupported file type": ({"h.xml": "<a/>"}, ["data", "--set", "data.source=hf",
                                                      "--set", "data.datasets=[{d}/h.xml]"],
                                  "h.xml"),
    "corpus: unknown domain": ({}, ["data", "--set", "data.source=corpus",
                                    "--set", "data.domain=poetry"], "poetry"),
    "corpus: folder without text": ({"txt/a.md": "x"},
                                    ["data", "--set", "data.source=corpus",
                                     "--set", "data.domain={d}/txt"], "txt"),
    "superni: not a task file": ({"s/task1.json": "[]"},
                                 ["data", "--set", "data.source=superni",
                                  "--set", "data.path={d}/s", "--set", "data.tasks=[task1]"],
                                 "task1.json: expected a SuperNI task object"),
    "trace: task folder missing": ({}, ["data", "--set", "data.source=trace",
                                        "--set", "data.path={d}/tr", "--set", "data.tasks=[C-STANCE]"],
                                   "data.path must be a directory"),
    "classification: data missing": ({}, ["data", "--set", "data.source=classification",
                                          "--set", "data.path={d}/cls"], "cls"),
    # --- commands on run directories
    "report: not a run dir": ({"empty/x": "x"}, ["report", "{d}/empty"], "no results.json"),
    "report: results not JSON": ({"r/results.json": "{"}, ["report", "{d}/r"],
                                 "results.json:1: not valid JSON"),
    "compare: a run missing": ({}, ["compare", "{d}/r1", "--out", "{d}/cmp"], "r1"),
    "compare: --out a file": ({"r/results.json": json.dumps(results_json()), "f": "x"},
                              ["compare", "{d}/r", "--out", "{d}/f"],
                              "--out {d}/f: exists and is not a directory"),
    "export: not a run dir": ({"empty/x": "x"}, ["export", "{d}/empty", "--out", "{d}/m"],
                              "not a run directory"),
    "landscape: not a run dir": ({"empty/x": "x"}, ["landscape", "{d}/empty"],
                                 "not a run directory"),
    "sweep: study missing": ({}, ["sweep", "{d}/study.yaml"], "study.yaml"),
    "sweep: unknown study key": ({"study.yaml": "base: {}\nseedz: [0]\n"},
                                 ["sweep", "{d}/study.yaml", "--dry-run"], "seedz"),
    "sweep: --arms matches no arm": ({"study.yaml": "name: s\nvariants: [{method: seqft}]\n"},
                                     ["sweep", "{d}/study.yaml", "--arms", "method=sam*"],
                                     "--arms method=sam*: matches no arm of"),
    "pretrain: unknown key": ({"p.yaml": "sizes: [1]\nwrong: 1\n"},
                              ["pretrain", "{d}/p.yaml"], "wrong"),
})


def run_main(args, capsys):
    """`forgetless ARGS` in this process (fast; a subprocess pays the imports each time)."""
    try:
        code = main(args)
    except SystemExit as e:  # argparse
        code = e.code
    return code, capsys.readouterr().err


@pytest.mark.parametrize("variable, name", [("ACCELERATE_USE_FSDP", "FSDP"),
                                            ("ACCELERATE_USE_DEEPSPEED", "DeepSpeed")])
def test_sharded_launch_is_refused_before_anything_loads(variable, name, tmp_path, capsys,
                                                         monkeypatch):
    """`accelerate launch --use_fsdp` / `--use_deepspeed` (or its config file) reach the process
    as these variables; the run stops in one line, exit 2, with nothing written."""
    monkeypatch.setenv(variable, "true")
    monkeypatch.chdir(tmp_path)
    code, err = run_main(["run", "--set", "model.name=tiny-llama-2m-v4k", "--set", "method=kif"],
                         capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"{name}: sharded training is not supported" in err and "--multi_gpu" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("files, args, expected", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_and_exit_2(tmp_path, files, args, expected, capsys, monkeypatch):
    work = tmp_path / "work"
    for rel, content in files.items():
        write(work / rel, content)
    work.mkdir(exist_ok=True)
    monkeypatch.chdir(work)  # a default output_dir would land here, and be seen
    before = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
    code, err = run_main([a.replace("{d}", str(work)) for a in args], capsys)
    assert code == 2, err[-2000:]
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith("forgetless: error: ") and expected.replace("{d}", str(work)) in err, err
    after = {p: p.stat().st_mtime_ns for p in work.rglob("*")}
    assert after == before  # nothing written, nothing rewritten


@pytest.mark.parametrize("level", ["95", "1", "0", "high"])
def test_compare_refuses_a_level_outside_0_to_1_in_one_line(level, tmp_path, capsys):
    code, err = run_main(["compare", str(tmp_path), "--out", str(tmp_path / "cmp"), "--level",
                          level], capsys)
    assert code == 2 and err.count("\n") == 1, err
    assert f"--level: expected a confidence level between 0 and 1 (e.g. 0.975), got '{level}'" in err
    assert not (tmp_path / "cmp").exists()


@pytest.mark.parametrize("args", [["config", "--set", "train.lr=-1"], ["run", "--bogus"]],
                         ids=["value", "option"])
def test_the_real_command_line_exits_2_in_one_line(args):
    """The same through the installed entry point, for two cases (the rest run in-process)."""
    proc = subprocess.run([FORGETLESS, *args], capture_output=True, text=True, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("forgetless: error: ")


def test_a_damaged_checkpoint_or_run_config_is_one_line(tiny_overrides, tmp_path):
    import forgetless

    overrides = [*tiny_overrides, "train.epochs=1", "probe.samples=0", "probe.qa=false"]
    forgetless.run(None, overrides, run_dir=tmp_path / "run")
    sets = [x for o in overrides for x in ("--set", o)]
    state = next((tmp_path / "run" / "checkpoints").iterdir()) / "state.json"
    state.write_text(state.read_text()[:20])  # truncated
    proc = forgetless_cli("run", *sets, "--out", tmp_path / "run", check=False, cwd=REPO)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "damaged checkpoint (JSONDecodeError" in proc.stderr and "--fresh" in proc.stderr
    (tmp_path / "run" / "config.yaml").write_text("name: [")
    proc = forgetless_cli("run", *sets, "--out", tmp_path / "run", check=False, cwd=REPO)
    assert proc.returncode == 2 and "config.yaml: damaged run config (ParserError)" in proc.stderr
