"""TensorBoard through accelerate: event files with the run's losses and scores."""

import importlib.util

import pytest

import forgetless
from forgetless.errors import ConfigError

pytestmark = pytest.mark.integration


def test_tensorboard_event_files_hold_losses_and_scores(tiny_overrides, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = forgetless.run(None, [*tiny_overrides, "tracking.trackers=[tensorboard]",
                                   "train.epochs=4"], run_dir=tmp_path / "run")
    logs = list((result.run_dir / "tracking").rglob("events.out.tfevents.*"))
    assert logs, "no TensorBoard event file"
    scalars = {}
    for path in logs:
        acc = EventAccumulator(str(path))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            scalars.setdefault(tag, []).extend(acc.Scalars(tag))
    losses = scalars["train/epoch_loss"]
    assert [e.step for e in losses] == list(range(1, 13))  # 3 experiences × 4 epochs
    flat = [x for exp in result.results["experiences"] for x in exp["epoch_losses"]]
    assert [e.value for e in losses] == pytest.approx(flat, rel=1e-6)
    for split in ("train", "test"):
        seen = scalars[f"eval/{split}/seen_mean"]
        assert [e.step for e in seen] == [0, 1, 2]
        R = result.matrix(split)
        assert [e.value for e in seen] == pytest.approx([R[i, : i + 1].mean() for i in range(3)])
    assert [e.step for e in scalars["probe/sample_nll"]] == [0, 1, 2]


@pytest.mark.skipif(importlib.util.find_spec("mlflow") is not None, reason="mlflow is installed")
def test_missing_tracker_package_is_a_config_error(tiny_overrides, tmp_path):
    with pytest.raises(ConfigError, match=r"tracking.trackers: 'mlflow' is not installed"):
        forgetless.run(None, [*tiny_overrides, "tracking.trackers=[mlflow]"],
                       run_dir=tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_mlflow_local_store_holds_the_losses(tiny_overrides, tmp_path):
    pytest.importorskip("mlflow", reason="MLflow is an optional tracker: pip install mlflow")
    from mlflow.tracking import MlflowClient

    result = forgetless.run(None, [*tiny_overrides, "tracking.trackers=[mlflow]", "train.epochs=2"],
                            run_dir=tmp_path / "run")
    store = result.run_dir / "tracking" / "mlruns"
    client = MlflowClient(tracking_uri=store.resolve().as_uri())
    runs = [r for e in client.search_experiments() for r in client.search_runs([e.experiment_id])]
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "train/epoch_loss")
    flat = [x for exp in result.results["experiences"] for x in exp["epoch_losses"]]
    assert [m.value for m in sorted(history, key=lambda m: m.step)] == pytest.approx(flat, rel=1e-6)


def test_wandb_runs_offline_into_the_run_directory(tiny_overrides, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional tracker: pip install wandb")
    import json

    for var in ("WANDB_MODE", "WANDB_DIR"):  # forgetless sets both; undo that after the test
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    result = forgetless.run(None, [*tiny_overrides, "tracking.trackers=[wandb]", "train.epochs=2"],
                            run_dir=tmp_path / "run")
    offline = list((result.run_dir / "tracking").rglob("offline-run-*"))
    assert offline, "W&B did not write an offline run under the run directory"
    summary = json.loads(next(offline[0].rglob("wandb-summary.json")).read_text())
    R = result.matrix("test")
    assert summary["eval/test/seen_mean"] == pytest.approx(R[2].mean())
