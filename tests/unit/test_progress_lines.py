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
