"""The recovery probe (`eval.recovery`): what it scores, that it leaves the run alone, that it is
added to a finished run without training, reused, and deterministic."""

import json
import shutil

import pytest

import forgetless
from forgetless.cli import main
from forgetless.data.stream import build_stream
from forgetless.engine.recovery import concept_split, group_key

pytestmark = pytest.mark.integration

RECOVERY = ["eval.recovery.enabled=true", "eval.recovery.experiences=[0,2]",
            "eval.recovery.fraction=0.25"]


@pytest.fixture(scope="module")
def plain(finished_run, tmp_path_factory):
    """A finished tiny run without the probe (3 experiences, 4 concepts each): a copy of the
    shared one, which these tests add to."""
    from tests.conftest import TINY

    shared = finished_run([*TINY, "probe.samples=0", "probe.qa=false"])
    run_dir = tmp_path_factory.mktemp("recovery") / "run"
    shutil.copytree(shared.run_dir, run_dir, ignore=shutil.ignore_patterns(".lock"))
    return forgetless.load(run_dir)


def rows(result) -> dict:
    return {(r["experience"], r["split"]): r for r in result.results["recovery"]["rows"]}


def test_added_to_a_finished_run_without_training_and_reused(plain, capsys):
    from tests.conftest import TINY

    checkpoint = next((plain.run_dir / "checkpoints").iterdir()) / "weights.safetensors"
    mtime = checkpoint.stat().st_mtime_ns
    args = [*TINY, "probe.samples=0", "probe.qa=false", *RECOVERY]
    first = forgetless.run(None, args, run_dir=plain.run_dir)
    assert checkpoint.stat().st_mtime_ns == mtime  # nothing was trained or saved again
    assert first.results["matrices"] == plain.results["matrices"]
    got = rows(first)
    assert set(got) == {(0, "train"), (0, "test"), (2, "train"), (2, "test")}

    stream = build_stream(forgetless.load_config(None, args).data)
    for (j, split), r in got.items():
        exp = stream.experiences[j]
        tuned, scored = concept_split(exp, 0.25, seed=0)
        assert not tuned & scored and len(tuned) == 1 and len(scored) == 3
        assert r["tuned_concepts"] == 1 and r["scored_concepts"] == 3
        key = group_key(exp)
        assert r["tuned_on"] == sum(key(ex) in tuned for ex in exp.train)
        assert r["n"] == sum(key(ex) in scored for ex in exp.split(split))
        # the scored questions' accuracy right after learning them is read from that
        # evaluation's predictions; for the last experience that model is the final one
        if j == 2:
            assert r["learned"] == r["final"]
        assert 0 <= r["recovered"] <= 1 and 0 <= r["control"] <= 1
    pooled = first.results["recovery"]["pooled"]["train"]
    assert pooled["n"] == got[(0, "train")]["n"] + got[(2, "train")]["n"]
    learned = plain.results["matrices"]["train"][0][0]
    assert got[(0, "train")]["learned"] >= learned - 0.25  # 3 of the 4 concepts

    again = forgetless.run(None, args, run_dir=plain.run_dir)
    assert again.results["recovery"] == first.results["recovery"]  # reused, seconds included

    results = json.loads((plain.run_dir / "results.json").read_text())
    del results["recovery"]
    (plain.run_dir / "results.json").write_text(json.dumps(results))
    fresh = forgetless.run(None, args, run_dir=plain.run_dir)
    assert rows(fresh) == got  # measured again: the same numbers

    longer = forgetless.run(None, [*args, "eval.recovery.epochs=3"], run_dir=plain.run_dir)
    assert longer.results["recovery"]["settings"]["epochs"] == 3
    assert longer.results["matrices"] == plain.results["matrices"]
    assert checkpoint.stat().st_mtime_ns == mtime
    summary = (plain.run_dir / "summary.md").read_text()
    assert "## Is the forgetting real? (recovery)" in summary and "| all | train |" in summary
    assert "Is the forgetting real?" in (plain.run_dir / "report.html").read_text()


def test_without_a_control_and_on_a_run_started_with_it(tmp_path, capsys):
    from tests.conftest import TINY

    code = main(["run", *(f"--set={o}" for o in TINY), "--set=probe.samples=0",
                 "--set=probe.qa=false", "--set=eval.recovery.enabled=true",
                 "--set=eval.recovery.control=false", "--out", str(tmp_path / "r")])
    assert code == 0
    out = capsys.readouterr().out
    assert "recovery of experience 0 (train," in out and "(control -;" in out
    results = json.loads((tmp_path / "r" / "results.json").read_text())
    assert all(r["control"] is None for r in results["recovery"]["rows"])
