"""Study planning, the summary with intervals and paired differences, without running anything."""

import numpy as np
import pytest

from forgetless.core.errors import ConfigError
from forgetless.studies.study import StudyConfig, arms, load_study, plan
from forgetless.studies.sweep import summarise


def test_method_section_keys_only_multiply_the_arms_that_use_them():
    study = StudyConfig(name="s", variants=[{"method": "seqft"}, {"method": "replay"}],
                        grid={"replay.buffer_size": [8, 16], "train.lr": [1e-4, 3e-4]})
    got = arms(study, "seqft")
    assert got == [
        {"method": "seqft", "train.lr": 1e-4}, {"method": "seqft", "train.lr": 3e-4},
        {"method": "replay", "replay.buffer_size": 8, "train.lr": 1e-4},
        {"method": "replay", "replay.buffer_size": 8, "train.lr": 3e-4},
        {"method": "replay", "replay.buffer_size": 16, "train.lr": 1e-4},
        {"method": "replay", "replay.buffer_size": 16, "train.lr": 3e-4},
    ]


def test_summary_is_mean_sample_sd_and_t_interval_over_seeds():
    def row(arm, seed, mf):
        return {"arm": arm, "overrides": {}, "seed": seed, "MA": 1.0, "GA": None, "MF": mf,
                "GF": 0.0, "sample_nll_rise": None, "wall_s": 10.0 * (seed + 1)}

    table = summarise([row("a", 0, 0.2), row("a", 1, 0.4), row("b", 0, 0.5)])
    a, b = table
    # n = 2: sd = 0.1414 (ddof 1), half-width = t(0.975, 1) · sd / √2 = 12.7062 · 0.1 = 1.2706
    assert a["MF"]["n"] == 2 and a["MF"]["mean"] == pytest.approx(0.3)
    assert a["MF"]["sd"] == pytest.approx(0.1414214, rel=1e-6)
    assert a["MF"]["ci_high"] == pytest.approx(0.3 + 1.2706205, rel=1e-6)
    assert a["wall_s"]["mean"] == 15.0 and a["GA"]["mean"] is None
    assert b["MF"]["mean"] == 0.5 and b["MF"]["sd"] is None and b["MF"]["ci_low"] is None
    assert a["seeds"] == [0, 1]


def test_differences_pair_arms_by_seed():
    from forgetless.studies.sweep import differences

    rows = [{"arm": "seqft", "seed": s, "MF": mf} for s, mf in [(0, 0.5), (1, 0.6), (2, 0.4)]]
    rows += [{"arm": "replay", "seed": s, "MF": mf} for s, mf in [(0, 0.3), (1, 0.45), (2, 0.3)]]
    (d,) = differences(rows, "seqft", ["MF"])
    assert d["arm"] == "replay" and d["MF"]["n"] == 3
    assert d["MF"]["mean"] == pytest.approx(-0.15) and d["MF"]["p"] == pytest.approx(0.035098, abs=1e-5)


def test_an_arm_trained_jointly_is_counted_by_the_seeds_it_has_numbers_for():
    """multitask has no learning accuracy (the first metric) and no forgetting: its row still
    says how many seeds its accuracy differences rest on."""
    from forgetless.studies.sweep import _diff_rows, differences

    rows = [{"arm": "seqft", "seed": s, "LA_train": 0.99, "MA": 0.6 + s / 100, "MF": 0.3}
            for s in range(3)]
    rows += [{"arm": "multitask", "seed": s, "LA_train": None, "MA": 0.9 + s / 50, "MF": None}
             for s in range(3)]
    metrics = ["LA_train", "MA", "MF"]
    (d,) = differences(rows, "seqft", metrics)
    assert (d["LA_train"]["n"], d["MA"]["n"], d["MF"]["n"]) == (0, 3, 0)
    assert _diff_rows([d], metrics)[0][:2] == ["multitask", "3"]


def test_each_seed_varies_the_data_unless_told_not_to(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: s\nseeds: [3, 4]\n")
    study, path = load_study(f)
    assert [(r["seed"], r["config"].data.seed) for r in plan(study, path, smoke=False)] == [
        (3, 3), (4, 4)]
    f.write_text("name: s\nseeds: [3, 4]\nvary_data_seed: false\nset: {data.seed: 7}\n")
    study, path = load_study(f)
    assert [r["config"].data.seed for r in plan(study, path, smoke=False)] == [7, 7]


def test_study_errors_are_one_line(tmp_path):
    bad = tmp_path / "s.yaml"
    bad.write_text("name: s\ngrids: {}\n")
    with pytest.raises(ConfigError, match=r"s.yaml: grids: unknown key"):
        load_study(bad)
    bad.write_text("name: s\ngrid: {train.lr: [-1]}\n")
    study, path = load_study(bad)
    with pytest.raises(ConfigError, match=r"s.yaml: arm lr=-1, seed 0: .*train.lr: Input should be "
                                          r"greater than 0"):
        plan(study, path, smoke=False)
    bad.write_text("name: s\nvariants: [{method: seqft}, {method: seqft, train.epochs: 5}]\n")
    study, path = load_study(bad)  # 5 is the default: both arms are one config
    with pytest.raises(ConfigError, match=r"s.yaml: arms method=seqft and method=seqft,epochs=5 "
                                          r"give the same config \(seed 0\); remove one"):
        plan(study, path, smoke=False)
    bad.write_text("name: s\nvariants: [{method: seqft}, {method: seqft, train.epochs: 20}]\n"
                   "smoke: {train.epochs: 1}\n")
    study, path = load_study(bad)  # --smoke may make two arms one config: its size, on purpose
    assert len(plan(study, path, smoke=True)) == 2
    bad.write_text("name: s\ngrid: {train.lr: [0.1]}\nsmoke_grid: {train.epochs: [1]}\n")
    with pytest.raises(ConfigError, match=r"smoke_grid.train.epochs: not a key of grid"):
        load_study(bad)
    for level in ("95", "0", "1"):
        bad.write_text(f"name: s\nlevel: {level}\n")
        with pytest.raises(ConfigError, match=r"s.yaml: level: Input should be (less|greater) than"):
            load_study(bad)
    with pytest.raises(ConfigError, match=r"nope.yaml: study file not found"):
        load_study(tmp_path / "nope.yaml")


def test_seeds_option_replaces_the_study_seeds(tmp_path):
    f = tmp_path / "s.yaml"
    f.write_text("name: s\nvariants: [{method: seqft}]\ngrid: {train.lr: [0.1, 0.2]}\n"
                 "seeds: [0, 1, 2]\n")
    study, path = load_study(f)
    assert [(r["arm"], r["seed"]) for r in plan(study, path, smoke=False, seeds=[1])] == [
        ("method=seqft,lr=0.1", 1), ("method=seqft,lr=0.2", 1)]
    assert len(plan(study, path, smoke=False)) == 6


def test_grid_values_place_each_arm_in_its_cell_per_group():
    from forgetless.studies.sweep import _grid_figure, grid_values

    def entry(method, lr, epochs, mf):
        o = {"method": method, "train.lr": lr, "train.epochs": epochs}
        return {"arm": f"{method} {lr} {epochs}", "overrides": o, "MF": {"mean": mf, "std": 0, "n": 1},
                "LA_train": {"mean": 1.0, "std": 0, "n": 1}, "GF": {"mean": None, "std": None, "n": 0}}

    table = [entry("seqft", 1e-4, 1, 0.1), entry("seqft", 1e-5, 1, 0.0), entry("seqft", 1e-4, 3, 0.3),
             entry("replay", 1e-4, 3, 0.05)]
    xs, ys, grids = grid_values(table, "train.lr", "train.epochs", "MF")
    assert xs == [1e-5, 1e-4] and ys == [1, 3]
    assert set(grids) == {"method=seqft", "method=replay"}
    # rows = epochs, columns = lr; a cell without a run is NaN
    assert grids["method=seqft"].tolist() == [[0.0, 0.1], [pytest.approx(float("nan"), nan_ok=True), 0.3]]
    assert np.isnan(grids["method=replay"][0]).all() and grids["method=replay"][1, 1] == 0.05
    assert np.isnan(grid_values(table, "train.lr", "train.epochs", "GF")[2]["method=seqft"]).all()
    assert _grid_figure(table, "train.lr", "train.epochs")[:4] == b"\x89PNG"
    assert _grid_figure(table, "train.lr", "replay.buffer_size") is None  # no arm has both keys


def test_slot_environments_split_threads_and_deal_gpus():
    from forgetless.studies.launch import slot_environments

    envs = slot_environments(4, threads=3, gpus=["2", "5"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in envs] == ["2", "5", "2", "5"]
    assert {e["OMP_NUM_THREADS"] for e in envs} == {"3"}
    one_gpu = slot_environments(3, threads=1, gpus=["0"])
    assert [e["CUDA_VISIBLE_DEVICES"] for e in one_gpu] == ["0", "0", "0"]  # shared
    cpu = slot_environments(2, gpus=[])
    assert all("CUDA_VISIBLE_DEVICES" not in e for e in cpu)


def test_concurrent_cpu_runs_that_ask_for_more_threads_than_cores_are_warned():
    from forgetless.studies.launch import oversubscribed

    warning = oversubscribed(jobs=2, threads=2, cores=2, gpus=0)
    assert warning.startswith("forgetless: warning: --jobs 2 × --threads 2 = 4 threads on 2 CPU")
    assert "\n" not in warning
    assert oversubscribed(jobs=2, threads=1, cores=2, gpus=0) is None  # one core each
    assert oversubscribed(jobs=2, threads=None, cores=2, gpus=0) is None  # split by forgetless
    assert oversubscribed(jobs=1, threads=4, cores=2, gpus=0) is None  # nothing concurrent
    assert oversubscribed(jobs=4, threads=8, cores=2, gpus=1) is None  # the work is on a GPU


def test_launcher_options_read_values_as_yaml():
    from forgetless.core.errors import ConfigError
    from forgetless.studies.launch import launcher_options

    assert launcher_options(["timeout_min=120", "slurm_partition=gpu"]) == {
        "timeout_min": 120, "slurm_partition": "gpu"}
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        launcher_options(["=3"])


def test_dry_run_says_where_each_run_stands_and_the_work_left(tmp_path):
    import json
    import os
    import socket
    import subprocess

    import yaml

    from forgetless.core.config import load_config
    from forgetless.studies.sweep import status

    base = tmp_path / "base.yaml"
    base.write_text("model: {name: tiny-llama-2m-v4k}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nbase: base.yaml\nvariants: [{method: seqft}, {method: replay}]\n"
                     "seeds: [0, 1]\n")
    out = tmp_path / "out"

    def run_dir(name, cfg=None, results=None, lock=None):
        d = out / "runs" / name
        d.mkdir(parents=True)
        cfg = cfg or load_config(base, [f"method={name.split('-')[0].split('=')[1]}",
                                        f"seed={name[-1]}", f"data.seed={name[-1]}"])
        (d / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
        if results is not None:
            (d / "results.json").write_text(json.dumps(results))
        if lock is not None:
            (d / ".lock").write_text(lock)

    def results(complete, done, train_s, eval_s):
        return {"complete": complete, "completed_experiences": done, "headline": {"MF": 0.25},
                "stream": {"experiences": [{}, {}, {}]},
                "timings": {"train_s": train_s, "eval_s": eval_s, "probe_s": 0}}

    gone = subprocess.Popen(["true"])
    gone.wait()
    here = socket.gethostname()
    run_dir("method=seqft-seed0", results=results(True, 3, 600.0, 120.0))
    # a run whose process died after its first experience: its note stays, its lock does not
    run_dir("method=seqft-seed1", results=results(False, 1, 250.0, 50.0),
            lock=f"pid {gone.pid} on {here}")
    run_dir("method=replay-seed0", lock=f"pid {os.getpid()} on {here}")  # alive: running
    run_dir("method=replay-seed1", cfg=load_config(base, ["method=replay", "train.lr=0.5"]))

    lines = status(study, out)
    assert lines[:4] == [
        "method=seqft-seed0: done, MF 25.0, 12m00s of work",
        "method=seqft-seed1: stopped, 1 of 3 experiences done (the next sweep resumes it), "
        "5m00s of work",
        f"method=replay-seed0: running (pid {os.getpid()} on {here})",
        f"method=replay-seed1: other config: {out}/runs/method=replay-seed1 holds another config "
        "(the sweep refuses it)",
    ]
    # seqft's finished run took 720 s; its stopped one has done 300: 420 s (7 min) left, and
    # replay has no finished run to estimate from
    assert lines[4] == ("4 runs: 1 done, 1 running, 1 stopped, 1 other config; left: about 7m00s "
                        "of work at the pace of each arm's finished runs (or of its partial ones, "
                        "by the work planned), plus 1 arm with none finished")


def test_a_run_directory_of_another_config_is_refused_before_anything_runs(tmp_path):
    import yaml

    from forgetless.core.config import load_config
    from forgetless.core.errors import RunDirError
    from forgetless.studies.sweep import sweep

    (tmp_path / "base.yaml").write_text("model: {name: tiny-llama-2m-v4k}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nbase: base.yaml\nvariants: [{method: seqft}, {method: replay}]\n"
                     "seeds: [0]\n")
    stale = tmp_path / "out" / "runs" / "method=replay-seed0"  # the second run's directory
    stale.mkdir(parents=True)
    changed = load_config(tmp_path / "base.yaml", ["method=replay", "train.lr=0.5"])
    (stale / "config.yaml").write_text(yaml.safe_dump(changed.to_dict(), sort_keys=False))
    with pytest.raises(RunDirError, match=f"^{stale}: holds a run of a different config; "):
        sweep(study, tmp_path / "out", quiet=True)
    assert sorted(p.name for p in (tmp_path / "out" / "runs").iterdir()) == ["method=replay-seed0"]


def test_dry_run_estimates_nothing_when_no_arm_has_a_finished_run(tmp_path):
    from forgetless.studies.sweep import status

    (tmp_path / "base.yaml").write_text("model: {name: tiny-llama-2m-v4k}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nbase: base.yaml\nvariants: [{method: seqft}]\nseeds: [0, 1]\n")
    assert status(study, tmp_path / "out")[-1] == (
        "2 runs: 2 pending; left: not estimated (1 arm with none finished)")


def test_dry_run_estimates_an_arm_from_its_partial_runs_by_the_work_planned(tmp_path):
    import json

    import yaml

    from forgetless.core.config import load_config
    from forgetless.studies.sweep import status

    (tmp_path / "base.yaml").write_text("model: {name: tiny-llama-2m-v4k}\n")
    study = tmp_path / "study.yaml"
    study.write_text("name: s\nbase: base.yaml\nvariants: [{method: seqft}]\nseeds: [0, 1]\n")
    d = tmp_path / "out" / "runs" / "method=seqft-seed0"
    d.mkdir(parents=True)
    cfg = load_config(tmp_path / "base.yaml", ["method=seqft", "seed=0", "data.seed=0"])
    (d / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    (d / "results.json").write_text(json.dumps({
        "complete": False, "completed_experiences": 1,
        "stream": {"experiences": [{"n_train": 10, "n_test": 10}] * 3},
        "experiences": [{"experience": 0, "n_train_examples": 10, "train_s": 100.0,
                         "eval_s": 20.0}],
        "timings": {"train_s": 100.0, "eval_s": 20.0, "probe_s": 0}}))
    lines = status(study, tmp_path / "out")
    # 10 s a training example, 1 s a scored example: 2 × 10 × 10 + (40 + 60) = 300 s left; the
    # pending seed is estimated as the partial run's 120 + 300 s
    assert lines[0] == ("method=seqft-seed0: stopped, 1 of 3 experiences done (the next sweep "
                        "resumes it), 2m00s of work, about 5m00s left at its pace")
    assert lines[-1] == ("2 runs: 1 stopped, 1 pending; left: about 12m00s of work at the pace "
                         "of each arm's finished runs (or of its partial ones, by the work "
                         "planned)")



def test_runs_about_to_start_that_pair_with_runs_from_another_machine_are_warned():
    from forgetless.studies.sweep import split_pairs

    here = "Xeon (AVX512, 1 thread)"
    finished = [(0, "method=replay-seed0", "Xeon (AVX512, 2 threads)"),
                (1, "method=replay-seed1", here),
                (2, "method=replay-seed2", "EPYC (AVX512, 1 thread)"),
                (3, "method=replay-seed3", None)]  # written before machines were recorded
    warning = split_pairs(finished, [(0, "method=sam-seed0"), (1, "method=sam-seed1"),
                                     (3, "method=sam-seed3")], here)
    assert warning.startswith("this sweep runs on Xeon (AVX512, 1 thread), but finished runs of "
                              "the same seeds ran on another machine (seed 0: method=replay-seed0 "
                              "on Xeon (AVX512, 2 threads)): ")
    assert "\n" not in warning and "seed 2" not in warning  # seed 2 does not start here
    assert split_pairs(finished, [(1, "method=sam-seed1")], here) is None
    assert split_pairs(finished, [], here) is None


def test_the_machine_a_sweep_starts_runs_on_counts_the_threads_each_run_gets(monkeypatch):
    import torch

    from forgetless.studies import launch
    from forgetless.studies.sweep import this_machine

    monkeypatch.setattr(launch, "cpu_cores", lambda: 8)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 8)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert this_machine(jobs=4, threads=None).endswith(", 2 threads)")  # the cores split
    assert this_machine(jobs=4, threads=1).endswith(", 1 thread)")
    assert this_machine(jobs=1, threads=None).endswith(", 8 threads)")
    assert this_machine(jobs=1, threads=3).endswith(", 3 threads)")
