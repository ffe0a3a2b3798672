"""Every study preset runs end to end at its smoke size; sweeps resume by skipping done runs."""

import json

import pytest

from forgetless.studies.study import load_study, plan
from forgetless.studies.sweep import status, sweep
from tests.conftest import REPO

pytestmark = pytest.mark.integration
STUDIES = sorted((REPO / "configs" / "studies").glob("*.yaml"))


@pytest.mark.parametrize("study", STUDIES, ids=[p.stem for p in STUDIES])
def test_study_preset_smoke(study, tmp_path, monkeypatch):
    # In this process: the CLI's own path is tested in test_sweep_jobs.py, and a child process
    # would pay the imports again for each preset.
    # Studies on Concept-1K read $CONCEPT1K_DIR: a fixture in its format, 10 concepts.
    concepts = [f"Zorb{i}" for i in range(10)]
    (tmp_path / "dataset.txt").write_text("".join(
        f"({c}, IsA, Thing)\nQ1: What is {c}?\nA1: a thing\nQ2: {c} is what?\nQ2: a thing\n"
        for c in concepts))
    monkeypatch.setenv("CONCEPT1K_DIR", str(tmp_path))
    sweep(study, tmp_path / "s", smoke=True, quiet=True)
    summary = json.loads((tmp_path / "s" / "sweep.json").read_text())
    loaded, path = load_study(study)
    n_arms = len(plan(loaded, path, smoke=True))
    assert len(summary["runs"]) == n_arms and all(r["complete"] for r in summary["runs"])
    names = ["sweep.md", "sweep.html", "arms.png"]
    if summary["study"]["kind"] == "run":
        names.append("compare/compare.html")
    for name in names:
        assert (tmp_path / "s" / name).is_file(), name
    if study.stem == "concept1k-sam":
        # the arms that record flatness carry it, and their difference is paired
        recorded = [t for t in summary["arms"] if "record=true" in t["arm"]]
        assert recorded and all(t["sharpness_mean"]["n"] == 1 for t in recorded)
        assert "sharpness (mean)" in (tmp_path / "s" / "sweep.md").read_text()
    # --dry-run reads every kind of run directory the sweep made as done
    assert status(study, tmp_path / "s", smoke=True)[-1] == f"{n_arms} runs: {n_arms} done"


def test_sweep_resumes_by_skipping_finished_runs(tmp_path, capsys):
    study = REPO / "configs" / "studies" / "buffer-size.yaml"
    # --arms: a slice of the study first — replay alone runs and is summarised alone
    sliced = sweep(study, tmp_path, smoke=True, arms=["method=replay*"])
    out = capsys.readouterr().out
    assert out.count("ran in") == 1 and "[1/1] method=replay,buffer_size=2-seed0" in out
    assert [a["arm"] for a in sliced["arms"]] == ["method=replay,buffer_size=2"]
    assert status(study, tmp_path, smoke=True, arms=["method=seqft"]) == [
        "method=seqft-seed0: pending", "1 run: 1 pending; left: not estimated (1 arm with none "
        "finished)"]
    # the slice as if it ran with 99 threads: the seqft run about to start would pair with it
    # across machines, which the sweep says before it starts
    replay = next(tmp_path.glob("runs/method=replay*-seed0")) / "results.json"
    results = json.loads(replay.read_text())
    results["run"]["machine"]["threads"] = 99
    replay.write_text(json.dumps(results))
    # then the whole study into the same folder: the slice counts as done
    first = sweep(study, tmp_path, smoke=True)
    out, err = capsys.readouterr()
    assert "forgetless: warning: this sweep runs on " in err
    assert "(seed 0: method=replay,buffer_size=2-seed0 on " in err and ", 99 threads)" in err
    assert out.count("ran in") == 1 and out.count("done before") == 1
    # each run's experiences as they finish, named, with the time so far
    progress = [line for line in out.splitlines() if " so far" in line]
    assert progress and all(line.split(" | ")[0].endswith(("-seed0", "-seed1", "-seed2"))
                            and " | experience " in line for line in progress)
    second = sweep(study, tmp_path, smoke=True)
    out, err = capsys.readouterr()
    assert out.count("done before") == 2 and "ran in" not in out
    assert "this sweep runs on" not in err  # nothing starts, nothing to pair across machines
    assert first["arms"] == second["arms"]
    # --dry-run reads the same directory: both runs done, with the MF the sweep printed
    lines = status(study, tmp_path, smoke=True)
    printed = sorted(line.split(": MF ")[1].split(" ")[0] for line in out.splitlines()
                     if "done before" in line)
    assert sorted(line.split(", MF ")[1].split(",")[0] for line in lines[:-1]) == printed
    assert lines[-1] == "2 runs: 2 done"
    # the study's confidence level: the same runs summarised at 90 % without running again
    at_90 = tmp_path / "buffer-size-90.yaml"
    at_90.write_text(study.read_text() + "level: 0.9\n")
    third = sweep(at_90, tmp_path, smoke=True)
    out, _ = capsys.readouterr()
    assert out.count("done before") == 2 and "ran in" not in out
    assert third["study"]["level"] == 0.9 and third["arms"] == second["arms"]  # n = 1: no interval
    assert "90 % confidence interval" in out and "[90 % CI]" in out and "95 %" not in out
    assert json.loads((tmp_path / "sweep.json").read_text())["study"]["level"] == 0.9
    assert json.loads((tmp_path / "compare" / "compare.json").read_text())["level"] == 0.9



@pytest.mark.parametrize("other_finishes", [True, False], ids=["finished-there", "let-go"])
def test_two_sweeps_into_one_out_share_the_work(tmp_path, capsys, monkeypatch, other_finishes):
    """A run another process holds is left to it: the sweep runs the others first, then waits
    for it; done there, it counts as done; let go unfinished (its process died), it resumes here.
    The other process is this test holding the run's lock; the wait (core/store.py, tested in
    test_store_and_loop.py) is where it finishes the run or lets go."""
    from forgetless.core import store
    from forgetless.core.store import RunLock
    from forgetless.studies.study import execute, run_directory

    study = REPO / "configs" / "studies" / "buffer-size.yaml"
    loaded, path = load_study(study)
    replay = next(r for r in plan(loaded, path, smoke=True) if r["arm"].startswith("method=replay"))
    replay_dir = run_directory(tmp_path, replay)
    replay_dir.mkdir(parents=True)
    held = RunLock(replay_dir).acquire()
    waited = []

    def other_process_ends(run_dir):
        waited.append(run_dir.name)
        # by now this sweep has run seqft: the runs it could take came first
        assert (tmp_path / "runs" / "method=seqft-seed0" / "results.json").is_file()
        held.release()
        if other_finishes:
            execute(loaded.kind, replay["config"], replay_dir)

    monkeypatch.setattr(store, "wait_until_free", other_process_ends)
    summary = sweep(study, tmp_path, smoke=True)
    out = capsys.readouterr().out
    assert waited == [replay_dir.name]
    assert f"{replay_dir.name}: in use by pid " in out and "left to it" in out
    assert out.count("ran in") == (1 if other_finishes else 2)
    assert ("(done by another process)" in out) == other_finishes
    assert all(r["complete"] for r in summary["runs"]) and len(summary["runs"]) == 2


def test_a_run_whose_note_names_a_process_on_another_host_is_waited_for_once(tmp_path, capsys):
    """A note from another host cannot be checked from here: the sweep leaves the run to it,
    finds its lock free (that process is gone), and runs it — once, not in a loop of waits."""
    from forgetless.studies.study import run_directory

    study = REPO / "configs" / "studies" / "buffer-size.yaml"
    loaded, path = load_study(study)
    replay = next(r for r in plan(loaded, path, smoke=True) if r["arm"].startswith("method=replay"))
    replay_dir = run_directory(tmp_path, replay)
    replay_dir.mkdir(parents=True)
    (replay_dir / ".lock").write_text("pid 4242 on another-host")
    summary = sweep(study, tmp_path, smoke=True)
    out = capsys.readouterr().out
    assert "in use by pid 4242 on another-host: left to it" in out and out.count("ran in") == 2
    assert all(r["complete"] for r in summary["runs"])
