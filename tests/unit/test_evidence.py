"""scripts/evidence.py: a study's finished runs into the repository (without the data's words)
and back, where the sweep counts them as finished."""

import importlib.util
import json

import yaml

from forgetless.core.config import load_config
from forgetless.studies.study import finished
from tests.conftest import REPO

spec = importlib.util.spec_from_file_location("evidence", REPO / "scripts" / "evidence.py")
evidence = importlib.util.module_from_spec(spec)
spec.loader.exec_module(evidence)


def write_run(folder, cfg, complete):
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    results = {"complete": complete, "config": cfg.to_dict(),
               "stream": {"experiences": [{"id": 0, "n_train": 2, "concepts": ["Aquaponics"]}]}}
    (folder / "results.json").write_text(json.dumps(results))
    (folder / "predictions").mkdir()
    (folder / "predictions" / "after-000.jsonl").write_text('{"question": "a third party\'s"}\n')


def test_saved_runs_leave_the_data_out_and_restore_as_finished(tmp_path, capsys):
    cfg = load_config(None, ["model.name=tiny-llama-2m-v4k"])
    out = tmp_path / "study"
    write_run(out / "runs" / "seqft-seed0", cfg, complete=True)
    write_run(out / "runs" / "seqft-seed1", cfg, complete=False)
    assert evidence.main(["save", str(out), str(tmp_path / "kept")]) == 0
    kept = tmp_path / "kept" / "runs"
    assert [p.name for p in kept.iterdir()] == ["seqft-seed0"]  # only complete runs
    assert sorted(p.name for p in (kept / "seqft-seed0").iterdir()) == ["config.yaml",
                                                                        "results.json"]
    saved = (kept / "seqft-seed0" / "results.json").read_text()
    assert "Aquaponics" not in saved and json.loads(saved)["stream"]["experiences"][0]["n_train"] == 2

    elsewhere = tmp_path / "other-machine"
    assert evidence.main(["restore", str(tmp_path / "kept"), str(elsewhere)]) == 0
    assert finished(elsewhere / "runs" / "seqft-seed0", cfg)
    # a run already there is never overwritten
    (elsewhere / "runs" / "seqft-seed0" / "results.json").write_text('{"complete": true}')
    evidence.main(["restore", str(tmp_path / "kept"), str(elsewhere)])
    assert (elsewhere / "runs" / "seqft-seed0" / "results.json").read_text() == '{"complete": true}'
    assert "restored 0 runs of 1" in capsys.readouterr().out


def test_a_folder_without_runs_is_a_one_line_error(tmp_path, capsys):
    assert evidence.main(["save", str(tmp_path), str(tmp_path / "kept")]) == 2
    err = capsys.readouterr().err
    assert "no runs/ folder" in err and err.count("\n") == 1
    assert not (tmp_path / "kept").exists()
