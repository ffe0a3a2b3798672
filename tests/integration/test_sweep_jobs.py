"""`forgetless sweep --jobs N` and the submitit launcher: the runs they start in other processes
compute exactly what the same runs compute one after another, failures are named with their
output, and finished runs are kept."""

import json
import subprocess
import sys

import pytest
import torch

from forgetless.core.errors import RunFailedError
from forgetless.studies.sweep import sweep
from tests.conftest import forgetless_cli

pytestmark = pytest.mark.integration

STUDY = """name: jobs
set: {model.name: tiny-llama-2m-v4k, data.concepts_per_experience: 2, data.facts_per_concept: 1,
      train.epochs: 2, train.lr: 3.0e-3, probe.samples: 0, probe.qa: false}
variants:
  - {method: seqft}
  - {method: replay, replay.buffer_size: 2}
seeds: [0, 1]
"""


def _numbers(out):
    """Per run: accuracy matrices and every epoch's training loss (floats, compared exactly)."""
    numbers = {}
    for run in sorted((out / "runs").iterdir()):
        r = json.loads((run / "results.json").read_text())
        numbers[run.name] = (r["matrices"], [e["epoch_losses"] for e in r["experiences"]])
    return numbers


@pytest.fixture(scope="module")
def one_at_a_time(tmp_path_factory):
    root = tmp_path_factory.mktemp("sweep-jobs")
    (root / "study.yaml").write_text(STUDY)
    # one thread, as each parallel process below has: the same floating-point sums (under
    # `pytest -n 0` this process would otherwise use every core's)
    before = torch.get_num_threads()
    try:
        summary = sweep(root / "study.yaml", root / "serial", quiet=True, threads=1)
    finally:
        torch.set_num_threads(before)
    return root, summary, _numbers(root / "serial")


def test_jobs_run_the_same_numbers_in_parallel_processes(one_at_a_time, capsys):
    root, serial, numbers = one_at_a_time
    parallel = sweep(root / "study.yaml", root / "parallel", jobs=2, threads=1)
    printed = capsys.readouterr().out
    assert printed.count("ran in") == 4
    assert _numbers(root / "parallel") == numbers
    assert len(numbers) == 4 and any(loss for _, losses in numbers.values() for loss in losses)
    assert [a["MF"] for a in parallel["arms"]] == [a["MF"] for a in serial["arms"]]
    # Each process kept its output; a second sweep finds every run finished.
    assert len(list((root / "parallel" / "logs").glob("*.log"))) == 4
    sweep(root / "study.yaml", root / "parallel", jobs=2, threads=1)
    assert capsys.readouterr().out.count("done before") == 4


def test_submitit_local_executor_runs_the_study_as_a_job_array(one_at_a_time):
    pytest.importorskip("submitit")
    root, _, numbers = one_at_a_time
    # one seed: an array of 2 jobs (one per arm) shows what 4 would, in half the time
    (root / "seed0.yaml").write_text(STUDY.replace("seeds: [0, 1]", "seeds: [0]"))
    sweep(root / "seed0.yaml", root / "submitit", launcher="submitit-local", jobs=2, threads=1,
          quiet=True)
    seed0 = {name: n for name, n in numbers.items() if name.endswith("-seed0")}
    assert len(seed0) == 2 and _numbers(root / "submitit") == seed0
    assert list((root / "submitit" / "submitit").glob("*_log.out"))


def test_a_failed_run_is_named_with_its_error_and_the_others_are_kept(tmp_path, capsys):
    (tmp_path / "study.yaml").write_text(STUDY.replace("seeds: [0, 1]", "seeds: [0]").replace(
        "{method: replay, replay.buffer_size: 2}", "{method: seqft, train.lr: 1.0e+30}"))
    with pytest.raises(RunFailedError, match=r"1 of 2 runs failed \(.*lr=1.0e\+30-seed0\)"):
        sweep(tmp_path / "study.yaml", tmp_path / "out", jobs=2, threads=1)
    printed = capsys.readouterr().out
    assert "failed (exit 2): forgetless: error: experience" in printed
    assert "training loss is not finite" in printed
    complete = [p.parent.name for p in (tmp_path / "out" / "runs").glob("*/results.json")
                if json.loads(p.read_text())["complete"]]
    assert complete == ["method=seqft-seed0"]


def test_cli_refuses_bad_launcher_options_in_one_line(tmp_path):
    (tmp_path / "study.yaml").write_text(STUDY)
    for args, expected in [(["--jobs", "0"], "--jobs: expected a positive integer, got '0'"),
                           (["--threads", "x"], "--threads: expected a positive integer, got 'x'"),
                           (["--launcher-option", "partition"], "--launcher-option 'partition'")]:
        proc = forgetless_cli("sweep", tmp_path / "study.yaml", "--out", tmp_path / "o", *args,
                              check=False)
        assert proc.returncode == 2 and expected in proc.stderr, proc.stderr
        assert len(proc.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "o").exists()


def test_the_launched_process_entry_point_names_bad_input(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "forgetless.studies.launch",
                           str(tmp_path / "missing.yaml"), "--out", str(tmp_path), "--index", "0"],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and "missing.yaml" in proc.stderr


def test_pretraining_runs_sharing_phase_a_take_turns_in_parallel(tmp_path):
    """The smoke pretraining grid's two arms share one phase A: run at once, one trains it and
    the other waits for it, instead of failing on its lock; both end with the same phase A."""
    from pathlib import Path

    study = Path(__file__).parents[2] / "configs" / "studies" / "pretraining.yaml"
    summary = sweep(study, tmp_path / "out", smoke=True, jobs=2, threads=1, quiet=True)
    runs = summary["runs"]
    assert len(runs) == 2 and len({r["run_dir"] for r in runs}) == 2
    models = {json.loads((Path(r["run_dir"]) / "results.json").read_text())["model_a"]
              for r in runs}
    assert len(models) == 1
    assert len(list((tmp_path / "out" / "runs" / "_phase_a").glob("*/phase_a/model"))) == 1


@pytest.mark.parametrize("other_finishes", [True, False], ids=["finished-there", "let-go"])
def test_a_launched_run_another_sweep_holds_waits_for_it_and_never_runs_twice(
        tmp_path, monkeypatch, capsys, other_finishes):
    """A `--jobs` process whose run another sweep took while it queued waits for that sweep
    instead of failing on the lock; the run is then done (nothing trained here) or resumed here."""
    from forgetless.core import store
    from forgetless.core.store import RunLock
    from forgetless.studies import launch
    from forgetless.studies import study as study_module
    from forgetless.studies.study import load_study, plan, run_directory

    (tmp_path / "study.yaml").write_text(STUDY)
    loaded, path = load_study(tmp_path / "study.yaml")
    run = plan(loaded, path, False, [0])[0]
    run_dir = run_directory(tmp_path / "out", run)
    run_dir.mkdir(parents=True)
    held = RunLock(run_dir).acquire()
    real_execute, trained = study_module.execute, []

    def other_sweep_ends(waited_dir):
        held.release()
        if other_finishes:
            real_execute(loaded.kind, run["config"], waited_dir)

    monkeypatch.setattr(store, "wait_until_free", other_sweep_ends)
    monkeypatch.setattr(study_module, "execute",
                        lambda *a, **k: trained.append(a[2]) or real_execute(*a, **k))
    planned = launch.Planned(str(tmp_path / "study.yaml"), str(tmp_path / "out"), False, [0])
    assert launch.run_planned(planned, 0) == str(run_dir)
    printed = capsys.readouterr().out
    assert f"{run_dir.name}: in use by pid " in printed
    assert (launch.DONE_ELSEWHERE in printed) == other_finishes
    assert trained == ([] if other_finishes else [run_dir])
    assert study_module.finished(run_dir, run["config"])


def test_the_sweep_names_a_jobs_run_another_process_finished(tmp_path, monkeypatch, capsys):
    """Where a --jobs process's log ends with launch.DONE_ELSEWHERE the sweep says "done by
    another process", not "ran in N s" (with the other process's time); a run it did run keeps
    its time. The processes are stood in for: both runs train here, one log carries the line."""
    from forgetless.studies import launch

    (tmp_path / "study.yaml").write_text(STUDY.replace("seeds: [0, 1]", "seeds: [0]"))

    def fake_run_local(planned, jobs, n, done, threads=None):
        for job in jobs:
            launch.run_planned(planned, job.index)  # what each process would run, in this one
            log = tmp_path / f"{job.name}.log"
            log.write_text(f"{job.name}: {launch.DONE_ELSEWHERE}\n" if job.index == 0 else "\n")
            done(job, 0, log)
        return []

    monkeypatch.setattr(launch, "run_local", fake_run_local)
    sweep(tmp_path / "study.yaml", tmp_path / "out", jobs=2, threads=1)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(lines) == 2
    assert lines[0].endswith("(done by another process)") and "ran in" not in lines[0]
    assert "(ran in " in lines[1]
