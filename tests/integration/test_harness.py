"""lm-evaluation-harness tasks as a probe part (`probe.lm_eval`), offline, on the tiny model."""

import json

import pytest

import forgetless
from tests.integration.test_run import cli, sets

pytestmark = pytest.mark.integration


def quick(tiny_overrides, *extra):
    return [o for o in tiny_overrides if not o.startswith("probe.every_evaluation")] + [
        "data.n_experiences=2", "train.epochs=4", "probe.samples=0", "probe.qa=false", *extra]


def test_the_example_task_is_measured_like_the_harness_measures_it(tiny_overrides, tmp_path):
    """The probe's numbers for the shipped example task are the harness's own on the saved final
    model; the harness leaves training untouched (same matrices as without it); the reports
    show it."""
    from forgetless.engine.trained import load_trained
    from forgetless.eval.harness import Harness

    run = forgetless.run(None, quick(tiny_overrides, "probe.lm_eval=[example]",
                                     "probe.lm_eval_limit=20"), run_dir=tmp_path / "r")
    rows = run.results["probe"]
    assert [r["after"] for r in rows] == [-1, 1]
    final = rows[-1]["lm_eval"]["forgetless_arithmetic"]
    assert final["n"] == 20 and 0 <= final["acc"] <= 1 and final["acc_stderr"] > 0
    assert set(final) == {"acc", "acc_stderr", "acc_norm", "acc_norm_stderr", "n"}
    _, tok, model, _ = load_trained(run.run_dir)
    again = Harness(["example"], 20, 8).measure(model, tok, "cpu")
    assert again["forgetless_arithmetic"] == pytest.approx(final, rel=1e-6)
    # the harness draws from no generator training uses
    without = forgetless.run(None, quick(tiny_overrides), run_dir=tmp_path / "plain")
    assert without.results["matrices"] == run.results["matrices"]
    summary = (run.run_dir / "summary.md").read_text()
    assert "lm-evaluation-harness" in summary and "forgetless\\_arithmetic" in summary
    assert "lm-evaluation-harness" in (run.run_dir / "report.html").read_text()
    from forgetless.report.summary import console_table

    assert "lm-eval: forgetless_arithmetic acc" in console_table(run.results)


def test_a_task_yaml_of_ones_own_with_relative_data_files(tiny_overrides, tmp_path):
    task_dir = tmp_path / "tasks"
    task_dir.mkdir()
    (task_dir / "yes_no.jsonl").write_text("".join(
        json.dumps({"q": f"Is {i} even?", "label": i % 2}) + "\n" for i in range(6)))
    (task_dir / "yes_no.yaml").write_text(
        "task: yes_no\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: yes_no.jsonl\n"
        "test_split: test\noutput_type: multiple_choice\ndoc_to_text: '{{q}}'\n"
        "doc_to_choice: ['yes', 'no']\ndoc_to_target: '{{label}}'\n"
        "metric_list:\n  - metric: acc\n")
    run = forgetless.run(None, quick(tiny_overrides, "data.n_experiences=1",
                                     f"probe.lm_eval=[{task_dir / 'yes_no.yaml'}]"),
                         run_dir=tmp_path / "r")
    assert run.results["probe"][-1]["lm_eval"]["yes_no"]["n"] == 6


@pytest.mark.parametrize("task, message", [
    ("no_such_task_anywhere", "probe.lm_eval: the harness cannot load"),
    ("missing/task.yaml", "probe.lm_eval: task file 'missing/task.yaml' not found"),
])
def test_bad_tasks_fail_before_training_in_one_line(tiny_overrides, tmp_path, task, message):
    # through the CLI only: each load of a named task indexes the harness's thousands of task
    # files (12 s), and the CLI's exit 2 with one line is the API's ConfigError
    proc = cli("run", *sets(quick(tiny_overrides, f"probe.lm_eval=[{task}]")), "--out",
               str(tmp_path / "c"), check=False)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1
    assert f"forgetless: error: {message}" in proc.stderr
    assert not (tmp_path / "c" / "results.json").exists()
