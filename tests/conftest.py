import os
import sys
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TQDM_DISABLE"] = "1"
if os.environ.get("PYTEST_XDIST_WORKER"):
    # Parallel workers (pytest -n N) share the cores: one thread each, for the worker and for the
    # `forgetless` children it starts (whose numbers are compared with in-process runs: the same
    # thread count gives the same floating-point sums).
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
FORGETLESS = str(Path(sys.executable).with_name("forgetless"))

TINY_MODEL = "tiny-llama-5m-2layer-v4k"

# A stream and a model small enough that a 3-experience run takes seconds, yet the model
# memorises the first experience (100 % train accuracy) and then forgets it.
TINY = [
    f"model.name={TINY_MODEL}",
    "data.concepts_per_experience=4",
    "data.facts_per_concept=2",
    "train.epochs=30",
    "train.lr=3e-3",
    "train.batch_size=4",
    # a small probe after every evaluation: 8 held-out samples, 40 country questions
    "probe.every_evaluation=true",
    "probe.samples=8",
    "probe.sample_length=32",
    "probe.qa_questions=40",
]


@pytest.fixture
def tiny_overrides(tmp_path):
    return [*TINY, f"output_dir={tmp_path / 'runs'}"]


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, worker_id):
    """`finished_run(overrides)`: the finished run of these overrides (no `output_dir`), trained
    once per test session and shared by every test and every pytest-xdist worker that asks for
    the same overrides (the run directory is named by their hash; a file lock makes the second
    asker wait for the first). Read it, never change it: a test that adds to a run copies its
    directory first. Tests whose subject is training twice (determinism, resume) still train
    their second run themselves."""
    import hashlib

    from filelock import FileLock

    import forgetless

    root = tmp_path_factory.getbasetemp()
    if worker_id != "master":
        root = root.parent  # the workers' base directories share this parent
    root = root / "finished-runs"
    root.mkdir(exist_ok=True)

    def get(overrides):
        assert not any(o.startswith("output_dir=") for o in overrides), "shared runs set no output_dir"
        run_dir = root / hashlib.sha256("\n".join(overrides).encode()).hexdigest()[:12]
        with FileLock(f"{run_dir}.lock"):
            if (run_dir / "results.json").is_file():
                done = forgetless.load(run_dir)
                if done.results["complete"]:
                    return done
            return forgetless.run(None, overrides, run_dir=run_dir)

    return get


@pytest.fixture(scope="module")
def tiny():
    """(tokenizer, tiny-llama-2m-v4k in eval mode), seeded: for scorer and collate tests."""
    from forgetless.core.config import ModelConfig
    from forgetless.models.load import load_model, load_tokenizer

    cfg = ModelConfig(name="tiny-llama-2m-v4k")
    tok = load_tokenizer(cfg)
    return tok, load_model(cfg, tok, seed=0).eval()


def forgetless_cli(*args, check=True, cwd=None):
    """`forgetless ARGS` through the console script's own `main`, in this process: its exit
    status and what it printed, as a CompletedProcess.

    A new interpreter pays torch's and transformers' imports (4–5 s on 2 cores), most of a small
    command's time; `main` is all the console script runs. Tests about processes themselves
    (a kill and the resume, torchrun, an installed plugin's entry points, the real exit status
    of the executable) start real ones."""
    import contextlib
    import io
    import subprocess

    from forgetless.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.chdir(cwd or os.getcwd()), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's errors and --help
            code = e.code if isinstance(e.code, int) else int(e.code is not None)
    proc = subprocess.CompletedProcess(["forgetless", *map(str, args)], code, out.getvalue(),
                                       err.getvalue())
    if check and code != 0:
        raise AssertionError(f"exit {code}: {proc.stderr[-2000:]}")
    return proc


# The files whose tests take longest (sums of their tests' durations, one worker, 2026-12-04:
# 36–86 s each against under 25 s for any other): they go first, so that the workers finish
# together rather than one running a long file while the other idles.
LONGEST_FIRST = ("integration/test_sweep_jobs.py", "integration/test_run.py",
                 "integration/test_sweep.py", "integration/test_kif_pretrained.py",
                 "integration/test_resume.py", "integration/test_methods.py",
                 "integration/test_kif_run.py", "integration/test_sam.py")


def pytest_collection_modifyitems(items):
    rank = {name: k for k, name in enumerate(LONGEST_FIRST)}
    # a stable sort: the other files keep their collection order after these
    items.sort(key=lambda item: rank.get(f"{item.path.parent.name}/{item.path.name}", len(rank)))
