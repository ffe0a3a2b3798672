"""TensorBoard through accelerate: event files with the run's losses and scores."""

import importlib.util
import json
from pathlib import Path

import pytest

import forgetless
from forgetless.core.errors import ConfigError

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
        assert [e.step for e in seen] == [4, 8, 12]  # one step axis: epochs trained so far
        R = result.matrix(split)
        assert [e.value for e in seen] == pytest.approx([R[i, : i + 1].mean() for i in range(3)])
    assert [e.step for e in scalars["probe/sample_nll"]] == [4, 8, 12]
    assert [e.value for e in scalars["experience"]] == [0, 1, 2]
    # the end of the run: headline, metrics and both matrices, on the last step
    h = result.results["headline"]
    for key in ("MA", "GA", "MF", "GF"):
        (event,) = scalars[f"final/{key}"]
        assert event.step == 12 and event.value == pytest.approx(h[key])
    R = result.matrix("test")
    assert scalars["final/test/R/2/0"][0].value == pytest.approx(R[2, 0])
    assert scalars["final/train/BWT"][0].value == pytest.approx(result.metrics["train"]["BWT"])
    assert "final/test/R/0/2" not in scalars  # not measured (NaN / None) is not logged
    # the report: summary.md as text (TensorBoard keeps no files), on the last step
    texts = []
    for path in logs:
        acc = EventAccumulator(str(path), size_guidance={"tensors": 0})
        acc.Reload()
        for tag in acc.Tags()["tensors"]:
            if tag.startswith("report/summary"):
                texts += [(e.step, e.tensor_proto.string_val[0].decode()) for e in acc.Tensors(tag)]
    assert texts == [(12, (result.run_dir / "summary.md").read_text())]


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
    run_id = runs[0].info.run_id
    assert client.get_metric_history(run_id, "final/MF")[0].value == pytest.approx(
        result.results["headline"]["MF"])
    artifacts = {a.path for a in client.list_artifacts(run_id, "report")}
    assert artifacts == {"report/report.html", "report/summary.md", "report/results.json"}
    local = client.download_artifacts(run_id, "report/results.json", str(tmp_path / "dl"))
    assert json.loads(Path(local).read_text())["headline"] == result.results["headline"]


def wandb_records(log_file) -> list:
    """The records of an offline run's .wandb file. wandb 0.31 has no public reader: the
    file is a 7-byte header, then LevelDB-style log records in 32 KiB blocks (crc 4 bytes,
    length 2 bytes little-endian, type 1 byte: 1 full, 2 first, 3 middle, 4 last), each a
    serialised wandb `Record` protobuf."""
    from wandb.proto import wandb_internal_pb2 as pb

    data, pos, block, rows, parts = log_file.read_bytes(), 7, 32768, [], b""
    while pos + 7 <= len(data):
        if block - pos % block < 7:  # no room for a header: the rest of the block is padding
            pos += block - pos % block
            continue
        length, kind = int.from_bytes(data[pos + 4:pos + 6], "little"), data[pos + 6]
        parts += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(parts)
            parts = b""
            rows.append(record)
    return rows


def wandb_history(log_file) -> list[dict]:
    return [{item.key or "/".join(item.nested_key): json.loads(item.value_json)
             for item in record.history.item} for record in wandb_records(log_file)
            if record.WhichOneof("record_type") == "history"]


def test_wandb_runs_offline_into_the_run_directory(tiny_overrides, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="W&B is an optional tracker: pip install wandb")

    for var in ("WANDB_MODE", "WANDB_DIR"):  # forgetless sets both; undo that after the test
        monkeypatch.setenv(var, "")
        monkeypatch.delenv(var)
    result = forgetless.run(None, [*tiny_overrides, "tracking.trackers=[wandb]", "train.epochs=2"],
                            run_dir=tmp_path / "run")
    logs = list((result.run_dir / "tracking").rglob("offline-run-*/run-*.wandb"))
    assert len(logs) == 1, "W&B did not write one offline run under the run directory"
    # Every evaluation reached W&B: it drops logs whose step is below one already logged, which
    # is why evaluations share the epochs' step axis.
    rows = wandb_history(logs[0])
    evals = [r for r in rows if "experience" in r]
    assert [r["experience"] for r in evals] == [0, 1, 2]
    R = result.matrix("train")
    assert [r["eval/train/seen_mean"] for r in evals] == pytest.approx(
        [R[i, : i + 1].mean() for i in range(3)])
    flat = [x for exp in result.results["experiences"] for x in exp["epoch_losses"]]
    assert [r["train/epoch_loss"] for r in rows if "train/epoch_loss" in r] == \
        pytest.approx(flat, rel=1e-6)
    # the end: the headline among the history, the report as an artifact of type "report"
    assert [r["final/MF"] for r in rows if "final/MF" in r] == pytest.approx(
        [result.results["headline"]["MF"]])
    (artifact,) = [r.artifact for r in wandb_records(logs[0])
                   if r.WhichOneof("record_type") == "artifact"]
    assert artifact.type == "report" and artifact.name == "run-report"
    assert {e.path for e in artifact.manifest.contents} == {"report.html", "summary.md",
                                                            "results.json"}
