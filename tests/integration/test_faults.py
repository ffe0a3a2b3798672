"""Faults: a run or a report interrupted while it writes a checkpoint, evaluates or renders, and
a disk that fills up. Nothing already saved is lost, no half-written file is ever read, the
message is one line, and the re-run ends with the uninterrupted numbers."""

import json
import shutil
import subprocess
import uuid

import pytest

import forgetless
from forgetless.cli import main
from forgetless.core import store as store_module
from forgetless.core.store import RunStore
from forgetless.engine import experiment
from tests.conftest import TINY

pytestmark = pytest.mark.integration

SMALL = [*TINY, "data.n_experiences=2", "train.epochs=4", "probe.samples=4", "probe.qa=false"]


class Killed(BaseException):
    """Stands for SIGKILL at that moment (an Exception handler must not swallow it)."""


def overrides_in(tmp_path, *extra):
    return [*SMALL, *extra, f"output_dir={tmp_path / 'runs'}"]


def same_numbers(got, want):
    return (got["complete"] and got["matrices"] == want["matrices"]
            and [x["epoch_losses"] for x in got["experiences"]]
            == [x["epoch_losses"] for x in want["experiences"]])


def no_temporaries(run_dir):
    return [p for p in run_dir.rglob(".*") if p.name not in (".lock", ".forgetless-run")]


def test_killed_while_writing_a_checkpoint(tmp_path, monkeypatch):
    """Killed half-way through the second checkpoint (a temporary directory with a partial
    weights file is left, as SIGKILL leaves it): resume ignores and removes it and continues
    from the last whole checkpoint."""
    overrides = overrides_in(tmp_path, "train.checkpoint_every=3")
    reference = forgetless.run(None, overrides, run_dir=tmp_path / "ref").results
    out = tmp_path / "run"
    write, calls = RunStore._write, []

    def dies_half_way(self, name, weights, parts, state):
        calls.append(name)
        if len(calls) == 2:
            tmp = self.dir / "checkpoints" / f".{name}.{uuid.uuid4().hex[:8]}"
            tmp.mkdir(parents=True)
            (tmp / "weights.safetensors").write_bytes(b"\0" * 1000)  # cut short
            raise Killed
        return write(self, name, weights, parts, state)

    monkeypatch.setattr(RunStore, "_write", dies_half_way)
    with pytest.raises(Killed):
        forgetless.run(None, overrides, run_dir=out)
    monkeypatch.undo()
    assert len(no_temporaries(out)) == 1 and RunStore(out).step_checkpoint()[1] == 3
    resumed = forgetless.run(None, overrides, run_dir=out).results
    assert same_numbers(resumed, reference)
    assert no_temporaries(out) == []


def test_killed_while_evaluating(tmp_path, monkeypatch):
    overrides = overrides_in(tmp_path)
    reference = forgetless.run(None, overrides, run_dir=tmp_path / "ref").results
    out = tmp_path / "run"
    evaluate, calls = experiment.evaluate, []

    def dies_in_second_evaluation(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise Killed
        return evaluate(*args, **kwargs)

    monkeypatch.setattr(experiment, "evaluate", dies_in_second_evaluation)
    with pytest.raises(Killed):
        forgetless.run(None, overrides, run_dir=out)
    monkeypatch.undo()
    partial = json.loads((out / "results.json").read_text())
    assert partial["completed_experiences"] == 1  # experience 0 and its evaluation are saved
    assert same_numbers(forgetless.run(None, overrides, run_dir=out).results, reference)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    return forgetless.run(None, overrides_in(tmp, "method=kif"), run_dir=tmp / "run").run_dir


REPORT_FILES = ("matrix_train.csv", "matrix_test.csv", "summary.md", "report.html",
                "importance.png")


@pytest.mark.parametrize("fault", ["killed", "disk full"])
def test_a_report_interrupted_while_writing_changes_nothing(finished_run, tmp_path, fault,
                                                            monkeypatch, capsys):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    for name in REPORT_FILES:  # mark the old outputs, to see that none is replaced
        path = run_dir / name
        path.write_bytes(path.read_bytes() + b"\n<!-- old -->" * (name.endswith((".md", ".html",
                                                                                  ".csv"))))
    before = {name: (run_dir / name).read_bytes() for name in REPORT_FILES}
    # the first renames happen only once every file is on disk: fail while writing instead
    write = store_module.os.fdopen
    opened = []

    def fdopen_failing_third(fd, *args, **kwargs):
        opened.append(fd)
        if len(opened) == 3:
            import os

            os.close(fd)
            if fault == "killed":
                raise Killed
            raise OSError(28, "No space left on device")
        return write(fd, *args, **kwargs)

    monkeypatch.setattr(store_module.os, "fdopen", fdopen_failing_third)
    if fault == "killed":
        with pytest.raises(Killed):
            main(["report", str(run_dir)])
    else:
        assert main(["report", str(run_dir)]) == 1
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and "No space left on device" in err and "Traceback" not in err
        assert str(run_dir) in err  # names the file it could not write
    monkeypatch.undo()
    assert {name: (run_dir / name).read_bytes() for name in REPORT_FILES} == before
    assert no_temporaries(run_dir) == []
    assert main(["report", str(run_dir)]) == 0  # and then it renders
    assert b"<!-- old -->" not in (run_dir / "summary.md").read_bytes()


def mount_tmpfs(path, size):
    path.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    return proc.returncode == 0


def test_a_full_disk_stops_the_run_in_one_line_and_loses_nothing(tmp_path, capsys):
    """A real full disk (a 4 MiB tmpfs: one 2.4 MB checkpoint of the tiny model fits, two do not).
    Where this machine cannot mount one, the same failure is injected by the next test."""
    disk = tmp_path / "disk"
    if not mount_tmpfs(disk, "4m"):
        pytest.skip("cannot mount a tmpfs here (not root); the patched variant still runs")
    try:
        overrides = overrides_in(tmp_path)
        out = disk / "run"
        code = main(["run", *[a for o in overrides for a in ("--set", o)], "--out", str(out),
                     "--quiet"])
        err = capsys.readouterr().err.strip().splitlines()
        assert code == 1
        assert len(err) == 1 and "No space left on device" in err[0], err
        assert str(out / "checkpoints") in err[0]
        saved = json.loads((out / "results.json").read_text())
        assert saved["completed_experiences"] == 1 and not saved["complete"]
        assert [e for e, _ in RunStore(out).checkpoints()] == [0]
        assert no_temporaries(out) == []
        rescued = tmp_path / "rescued"
        shutil.copytree(out, rescued)
    finally:
        subprocess.run(["umount", str(disk)], check=False)
    reference = forgetless.run(None, overrides, run_dir=tmp_path / "ref").results
    resumed = forgetless.run(None, overrides, run_dir=rescued).results
    assert same_numbers(resumed, reference)


def test_a_write_failing_with_enospc_is_one_line(tmp_path, monkeypatch, capsys):
    """The same as above by patching the checkpoint writer (runs on any machine)."""
    overrides = overrides_in(tmp_path)
    out = tmp_path / "run"
    save, calls = store_module.save_file, []

    def fills_up(tensors, path):
        calls.append(path)
        if len(calls) == 3:  # the second checkpoint's weights
            from safetensors import SafetensorError

            raise SafetensorError("Error while serializing: I/O error: No space left on device "
                                  "(os error 28)")
        return save(tensors, path)

    monkeypatch.setattr(store_module, "save_file", fills_up)
    code = main(["run", *[a for o in overrides for a in ("--set", o)], "--out", str(out),
                 "--quiet"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1 and "No space left on device" in err[0], err
    assert "exp-001" in err[0]
    assert [e for e, _ in RunStore(out).checkpoints()] == [0] and no_temporaries(out) == []
