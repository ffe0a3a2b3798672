"""A study's progress lines: the run's name, its progress, the time so far and left."""

from pathlib import Path

from forgetless.core.events import ExperienceDone, RunStarted
from forgetless.report.callbacks import ConsoleProgress


def results(after):
    return {"evaluations": [{"after": after, "experience": j, "split": "train", "accuracy": 0.5}
                            for j in range(after + 1)]}


def lines(progress, capsys, resumed_after, times):
    clock = iter(times)
    progress.clock = lambda: next(clock)
    progress.on_run_start(RunStarted(Path("r"), None, 4, resumed_after))
    capsys.readouterr()
    for e in range(resumed_after + 1, 4):
        progress.on_experience_done(ExperienceDone(e, 4, [0.25], results(e)))
    return capsys.readouterr().out.splitlines()


def test_a_labelled_line_gives_the_time_so_far_and_left_at_this_sessions_pace(capsys):
    out = lines(ConsoleProgress("seqft-seed0"), capsys, -1, [0, 60, 150, 200, 400])
    assert out == [
        "seqft-seed0 | experience 1/4: loss 0.250 | train acc (seen) 50.0 | 1m00s so far, "
        "about 3m00s left",
        "seqft-seed0 | experience 2/4: loss 0.250 | train acc (seen) 50.0 | 2m30s so far, "
        "about 2m30s left",
        "seqft-seed0 | experience 3/4: loss 0.250 | train acc (seen) 50.0 | 3m20s so far, "
        "about 1m07s left",
        "seqft-seed0 | experience 4/4: loss 0.250 | train acc (seen) 50.0 | 6m40s so far"]
    # resumed after experience 2: the pace is this session's, over the experiences it ran
    out = lines(ConsoleProgress("kif-seed1"), capsys, 1, [0, 100, 7300])
    assert out[0].endswith("| 1m40s so far, about 1m40s left")
    assert out[1].endswith("| 2h01m so far")


def test_an_unlabelled_line_is_the_plain_one(capsys):
    out = lines(ConsoleProgress(), capsys, 2, [0, 5])
    assert out == ["experience 4/4: loss 0.250 | train acc (seen) 50.0"]


def test_with_the_arms_finished_runs_the_time_left_follows_their_profile(capsys):
    # finished seeds took 10, 20, 30, 40 s per experience; this session runs at half their
    # speed: after experience 1 (20 s) the 90 s still to come take 180 s
    out = lines(ConsoleProgress("replay-seed1", profile=[10, 20, 30, 40]), capsys, -1,
                [0, 20, 60, 120, 200])
    assert [line.split(" | ")[-1] for line in out] == [
        "0m20s so far, about 3m00s left", "1m00s so far, about 2m20s left",
        "2m00s so far, about 1m20s left", "3m20s so far"]
    # resumed after experience 2: the pace compares this session with the profile's third
    out = lines(ConsoleProgress("replay-seed1", profile=[10, 20, 30, 40]), capsys, 1, [0, 60, 200])
    assert out[0].endswith("| 1m00s so far, about 1m20s left")
    # a profile of another length (another stream) is not used
    out = lines(ConsoleProgress("x-seed0", profile=[1, 2]), capsys, -1, [0, 60, 120, 180, 240])
    assert out[0].endswith("| 1m00s so far, about 3m00s left")


def test_the_profile_is_the_mean_of_the_arms_finished_seeds(tmp_path):
    import json

    from forgetless.studies.study import experience_seconds

    def run(name, complete, seconds):
        d = tmp_path / name
        d.mkdir()
        rows = [{"train_s": t, "eval_s": v} for t, v in seconds]
        (d / "results.json").write_text(json.dumps({"complete": complete, "experiences": rows}))
        return d

    run("method=replay-seed0", True, [(10, 2), (20, 4)])
    run("method=replay-seed1", True, [(14, 2), (30, 6)])
    run("method=replay-seed2", False, [(100, 0)])  # unfinished: left out
    run("method=replay,buffer_size=8-seed0", True, [(1000, 0), (1000, 0)])  # another arm
    here = tmp_path / "method=replay-seed3"
    assert experience_seconds(here) == [14.0, 30.0]
    assert experience_seconds(tmp_path / "method=seqft-seed0") is None


def test_durations_read_as_minutes_and_seconds_then_hours_and_minutes():
    from forgetless.core.progress import duration

    assert [duration(s) for s in (0, 59.4, 59.6, 420, 3599, 3600, 3929, 90061)] == [
        "0m00s", "0m59s", "1m00s", "7m00s", "59m59s", "1h00m", "1h05m", "25h01m"]


def test_the_time_left_follows_the_planned_work_of_the_experiences_to_come():
    from forgetless.report.callbacks import planned_left

    # training: 2 s per example (the median of the last 3 rates: 2, 2, 3); evaluations: 1 s per
    # scored example plus 30 s (fitted exactly on 40, 60, 80 scored)
    rows = [{"experience": 0, "n_train_examples": 10, "train_s": 20, "eval_s": 70},
            {"experience": 1, "n_train_examples": 20, "train_s": 60, "eval_s": 90},
            {"experience": 2, "n_train_examples": 30, "train_s": 60, "eval_s": 110}]
    run = {"experiences": rows}
    plan = ([10, 20, 30, 40, 40], [40, 60, 80, 100, 120])
    # experience 3: 2 × 40 + 100 + 30; experience 4: 2 × 40 + 120 + 30
    assert planned_left(plan, run, 2) == 2 * 40 + 130 + 2 * 40 + 150
    # one evaluation (rows after experience 0 are not read): all of it grows with the size
    # (70 s for 40 → 1.75 s a scored example)
    assert planned_left(plan, run, 0) == 2 * (20 + 30 + 40 + 40) + 1.75 * (60 + 80 + 100 + 120)
    # an experience not evaluated (eval.every) costs its training alone
    assert planned_left(([10, 20, 30, 40, 40], [40, 60, 80, 0, 120]), run, 2) == \
        2 * 40 + 2 * 40 + 150
    # nothing trained yet, or a plan of another length: no estimate from it
    assert planned_left(plan, {"experiences": []}, 0) is None
    assert planned_left(([10], [40]), run, 2) is None


def test_flatness_and_the_probe_are_expected_at_their_own_cost_not_per_example_scored():
    from forgetless.report.callbacks import planned_left

    # experience 0's 70 s of evaluation hold 50 s of flatness and 10 s of probe: the scoring
    # itself is 10 s for 40 examples (0.25 s each); later ones expect the same 60 s on top
    rows = [{"experience": 0, "n_train_examples": 10, "train_s": 20, "eval_s": 70},
            {"experience": 1, "n_train_examples": 20, "train_s": 60, "eval_s": 999}]
    run = {"experiences": rows,
           "flatness": [{"after": 0, "seconds": 50.0}, {"after": 1, "seconds": 900.0}],
           "probe": [{"after": -1, "seconds": 25.0, "sampling_s": 5.0},
                     {"after": 0, "seconds": 10.0}]}
    plan = ([10, 20, 30], [40, 60, 80])
    assert planned_left(plan, run, 0) == 2 * (20 + 30) + 0.25 * (60 + 80) + 2 * (50 + 10)
    # without them, the 70 s would all have grown with the examples scored (1.75 s each)
    assert planned_left(plan, {"experiences": rows}, 0) == 2 * 50 + 1.75 * (60 + 80)
    # a probe only at the end (the default): once, at its first pass's cost — its `seconds`,
    # which the texts' sampling at set-up (`sampling_s`) is not part of
    run["probe"] = run["probe"][:1]
    run["experiences"] = [{**rows[0], "eval_s": 60}]
    assert planned_left(plan, run, 0) == 2 * 50 + 0.25 * (60 + 80) + 2 * 50 + 25


def test_without_finished_seeds_a_study_line_uses_the_planned_work(capsys):
    clock = iter([0, 100])
    progress = ConsoleProgress("replay-seed0", clock=lambda: next(clock))
    progress.on_run_start(RunStarted(Path("r"), None, 3, -1, 0, [10, 20, 30], [10, 20, 30]))
    row = {"experience": 0, "n_train_examples": 10, "train_s": 90, "eval_s": 10}
    progress.on_experience_done(ExperienceDone(0, 3, [0.25], {**results(0), "experiences": [row]}))
    # 9 s per example trained, 1 s per example scored: (9 + 1) × (20 + 30) — where the pace per
    # experience would say 2 × 100 s
    assert capsys.readouterr().out.strip().endswith("| 1m40s so far, about 8m20s left")


def test_each_method_plans_the_examples_it_adds():
    from forgetless.core.config import load_config
    from forgetless.engine.experiment import planned_train_examples
    from forgetless.methods import registry

    def plan(*overrides, sizes=(60, 50, 40)):
        return planned_train_examples(registry.build(load_config(None, list(overrides))),
                                      list(sizes))

    assert plan("method=seqft") == [60, 50, 40]
    # the buffer joins each experience after the first, up to its size
    assert plan("method=replay", "replay.buffer_size=100") == [60, 50 + 60, 40 + 100]
    assert plan("method=replay", "replay.mixing=batch") == [60, 50, 40]  # rows, not examples
    assert plan("method=multitask") == [0, 0, 150]
    assert plan("method=lamol", "lamol.sampling_ratio=0.2") == [60, 50 + 10, 40 + 8]
    assert plan("method=kif+replay", "replay.buffer_size=100") == [60, 110, 140]
