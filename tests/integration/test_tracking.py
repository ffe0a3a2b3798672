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
