"""A run directory is forgetless's alone: user folders are never emptied or written into, and
two runs never share one."""

import json
import os
import re

import pytest

import forgetless
from forgetless.core.errors import RunDirError
from forgetless.core.store import RunLock
from tests.conftest import REPO, forgetless_cli

pytestmark = pytest.mark.integration

QUICK = ["train.epochs=1", "probe.samples=0", "probe.qa=false", "data.n_experiences=1"]


def run_cli(out, *extra):
    sets = [x for o in ["model.name=tiny-llama-2m-v4k", *QUICK] for x in ("--set", o)]
    return forgetless_cli("run", *sets, "--out", out, "--quiet", *extra, check=False, cwd=REPO)


@pytest.mark.parametrize("extra", [["--fresh"], []])
def test_a_users_folder_is_never_emptied_or_written_into(tmp_path, extra):
    folder = tmp_path / "thesis"
    folder.mkdir()
    (folder / "chapter1.tex").write_text("years of work")
    (folder / "data.csv").write_text("a,b\n1,2\n")
    proc = run_cli(folder, *extra)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert "not a forgetless run directory" in proc.stderr or "forgetless made" in proc.stderr
    assert sorted(p.name for p in folder.iterdir()) == ["chapter1.tex", "data.csv"]
    assert (folder / "chapter1.tex").read_text() == "years of work"


def test_fresh_on_a_new_directory_runs(tmp_path):
    # --fresh in a script that runs again and again must also work the first time, when --out
    # does not exist yet (it was refused: the new directory had no marker, only the lock)
    out = tmp_path / "new" / "run"
    proc = run_cli(out, "--fresh")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((out / "results.json").read_text())["complete"]


def test_fresh_empties_a_run_directory_and_a_file_is_refused(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    first = forgetless.run(None, [*tiny_overrides, *QUICK], run_dir=out)
    assert (out / ".forgetless-run").is_file()
    (out / "stale.txt").write_text("left by an earlier run")
    again = forgetless.run(None, [*tiny_overrides, *QUICK], run_dir=out, fresh=True)
    assert not (out / "stale.txt").exists()
    assert again.headline == first.headline
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match="exists and is not a directory"):
        forgetless.run(None, [*tiny_overrides, *QUICK], run_dir=tmp_path / "afile")


def test_a_run_directory_in_use_is_refused(tiny_overrides, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    lock = RunLock(out).acquire()  # as a run that is still going holds it
    try:
        with pytest.raises(RunDirError, match=r"in use by pid \d+ on .*; wait for it to finish"):
            forgetless.run(None, [*tiny_overrides, *QUICK], run_dir=out)
    finally:
        lock.release()
    forgetless.run(None, [*tiny_overrides, *QUICK], run_dir=out)  # free again: it runs
    assert (out / "results.json").is_file()


def test_a_run_that_fails_after_taking_the_lock_frees_it(tiny_overrides, tmp_path):
    """In one process (a notebook, the Python API) a run that fails in set-up after locking its
    directory — here on a damaged checkpoint — frees the lock: the next call is told about the
    checkpoint again, not that the directory is in use by this very process."""
    from forgetless.core.errors import ForgetlessError

    out = tmp_path / "run"
    overrides = [*tiny_overrides, *QUICK, "data.n_experiences=2"]
    forgetless.run(None, overrides, run_dir=out)
    state = next((out / "checkpoints").iterdir()) / "state.json"
    state.write_text(state.read_text()[:20])
    for _ in range(2):
        with pytest.raises(ForgetlessError, match="damaged checkpoint"):
            forgetless.run(None, overrides, run_dir=out)
    RunLock(out).acquire().release()  # nobody holds it


def test_a_non_finite_loss_stops_the_run_in_one_line_or_is_skipped(tiny_overrides, tmp_path):
    from tests.conftest import TINY

    sets = [x for o in [*TINY, "probe.samples=0", "probe.qa=false", "train.lr=1e4",
                        "train.max_grad_norm=null"] for x in ("--set", o)]
    proc = forgetless_cli("run", *sets, "--out", tmp_path / "stop", "--quiet", check=False,
                          cwd=REPO)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.count("\n") == 1
    # Which step first overflows depends on the machine's kernels (step 3 on AVX2, step 5 on
    # AVX-512); the skip run below must agree with it on the same machine.
    first_bad = re.search(r"experience 0, optimizer step (\d+): the training loss is not finite; "
                          r"lower train\.lr \(now 10000\) or set train\.on_nonfinite=skip",
                          proc.stderr)
    assert first_bad, proc.stderr
    assert not (tmp_path / "stop" / "checkpoints").exists()  # nothing half-trained is saved
    assert not (tmp_path / "stop" / ".lock").read_text()  # the lock was released
    skipped = forgetless.run(None, [*tiny_overrides, "probe.samples=0", "probe.qa=false",
                                    "train.lr=1e4", "train.max_grad_norm=null",
                                    "train.on_nonfinite=skip"], run_dir=tmp_path / "skip")
    # every step from the first non-finite one on is skipped, the ones before it are taken
    steps = [x["steps"] for x in skipped.results["experiences"]]
    assert [x["skipped_steps"] for x in skipped.results["experiences"]] == [
        steps[0] - (int(first_bad.group(1)) - 1), *steps[1:]]
    summary = (skipped.run_dir / "summary.md").read_text()
    assert "**Weak evidence:** experience 1: the training loss was not finite" in summary


def test_an_unwritable_output_is_refused_before_the_model_loads(tmp_path, monkeypatch):
    import forgetless.engine.experiment as experiment

    def no_model(*args, **kwargs):
        raise AssertionError("the model was loaded before the output was checked")

    monkeypatch.setattr(experiment, "load_model", no_model)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(RunDirError, match=r"cannot be created: .*afile is a file"):
        forgetless.run(None, QUICK, run_dir=tmp_path / "afile" / "run")
    # A read-only place (simulated: root, which runs CI, may write anywhere)
    real_access = os.access
    import forgetless.core.store as store

    monkeypatch.setattr(store.os, "access",
                        lambda p, mode: False if p == tmp_path else real_access(p, mode))
    with pytest.raises(RunDirError, match=rf"{tmp_path.name}/run: cannot be written: .* is not "
                                          r"writable"):
        forgetless.run(None, QUICK, run_dir=tmp_path / "run")


def test_step_losses_are_looked_at_per_step_only_when_skipping(tiny_overrides, tmp_path,
                                                               monkeypatch):
    """With train.on_nonfinite=stop (the default) the loop takes no per-step decision on the
    host: step losses stay on the device until a checkpoint or the epoch's end. Skipping must
    look at every step before taking it."""
    from forgetless.engine import loop

    looked = []
    real = loop._finite_everywhere
    monkeypatch.setattr(loop, "_finite_everywhere", lambda acc, v: looked.append(v) or real(acc, v))
    quick = [*tiny_overrides, "model.name=tiny-llama-2m-v4k", "data.n_experiences=1",
             "train.epochs=2", "probe.samples=0", "probe.qa=false", "eval.initial=false"]
    stop = forgetless.run(None, quick, run_dir=tmp_path / "stop")
    assert looked == [] and stop.results["experiences"][0]["steps"] == 4
    skip = forgetless.run(None, [*quick, "train.on_nonfinite=skip"], run_dir=tmp_path / "skip")
    assert len(looked) == 4
    assert skip.results["experiences"][0]["epoch_losses"] == \
        stop.results["experiences"][0]["epoch_losses"]
