import pytest

from forgetless.core.config import RunConfig, load_config, parse_override
from forgetless.core.errors import ConfigError


def test_defaults_are_the_embedded_quickstart():
    cfg = load_config()
    assert cfg.model.name == "embedded" and cfg.method == "seqft"
    assert cfg.data.source == "concepts" and cfg.data.n_experiences == 3


def test_overrides_are_typed():
    cfg = load_config(None, ["train.lr=3e-4", "train.epochs=2", "model.lora.enabled=true",
                             "model.lora.target_modules=[q_proj, v_proj]"])
    assert cfg.train.lr == pytest.approx(3e-4) and cfg.train.epochs == 2
    assert cfg.model.lora.enabled and cfg.model.lora.target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize("override, needle", [
    ("train.lrr=1", "train.lrr: unknown key"),
    ("train.lr=abc", "train.lr: Input should be a valid number"),
    ("train.lr=-1", "train.lr: Input should be greater than 0"),
    ("train.epochs=0", "train.epochs"),
    ("eval.scorer=beam", "eval.scorer"),
    ("method=seqft+nope", "unknown method 'nope'"),
    ("method=seqft+seqft", "listed twice"),
    ("bogus=1", "unknown key 'bogus'"),
    ("data.source=hf", "data.datasets: required for data.source 'hf'"),
    ("data.path=x.txt", "data.path: not an option of data.source 'concepts'"),
    ("train=3", "train"),
    # a union's members fail together, in one message about the key
    ("eval.batch_size=big", "eval.batch_size: Input should be a valid integer, unable to parse "
                            "string as an integer or 'auto' (got 'big')"),
    ("train.compile=turbo", "train.compile: Input should be 'inductor', 'aot_eager' or 'eager'"),
])
def test_bad_values_are_one_line_errors(override, needle):
    with pytest.raises(ConfigError) as err:
        load_config(None, [override])
    message = str(err.value)
    assert needle in message and "\n" not in message


def test_method_section_must_belong_to_a_used_method(monkeypatch):
    with pytest.raises(ConfigError, match="'seqft' does not use it|unknown key"):
        load_config({"method": "seqft", "replay": {"buffer_size": 10}})


def test_yaml_file_errors(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  lr: [1,\n")
    with pytest.raises(ConfigError, match=r"bad.yaml: line \d+ not valid YAML"):
        load_config(bad)
    typo = tmp_path / "typo.yaml"
    typo.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"typo.yaml: train.epoch: unknown key"):
        load_config(typo)


def test_override_syntax():
    assert parse_override("a.b=[1, 2]") == ("a.b", [1, 2])
    assert parse_override("name=my run") == ("name", "my run")
    with pytest.raises(ConfigError, match="expected dotted.key=value"):
        parse_override("train.lr")


def test_fingerprint_tracks_results_not_location():
    a = load_config(None, ["output_dir=/x"])
    b = load_config(None, ["output_dir=/y"])
    c = load_config(None, ["train.lr=2e-4"])
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_round_trip_through_dict():
    cfg = load_config(None, ["train.lr=2e-4", "seed=3"])
    again = load_config(cfg.to_dict())
    assert again.to_dict() == cfg.to_dict() and isinstance(again, RunConfig)


def test_presets_validate_and_quickstart_is_the_default():
    from tests.conftest import REPO

    for preset in sorted((REPO / "configs").glob("*.yaml")):
        load_config(preset)
    quick = load_config(REPO / "configs" / "quickstart.yaml").to_dict()
    default = load_config().to_dict()
    quick.pop("name"), default.pop("name")
    assert quick == default, "configs/quickstart.yaml must match what `forgetless run` does"


def test_cli_docs_list_every_key():
    from forgetless.core.config import all_keys
    from tests.conftest import REPO

    text = (REPO / "docs" / "cli.md").read_text()
    missing = [key for key, *_ in all_keys() if f"\n{key}  (" not in text]
    assert not missing, f"docs/cli.md is stale (regenerate with `forgetless config --keys`): {missing}"


def test_facts_per_concept_is_bounded_at_load_time():
    with pytest.raises(ConfigError, match="data.facts_per_concept: Input should be less than or equal to 5"):
        load_config(None, ["data.facts_per_concept=6"])


def test_a_saved_config_from_before_a_key_existed_is_the_same_settings():
    cfg = load_config(None, ["train.lr=3e-4", "method=replay"])
    saved = cfg.to_dict()
    del saved["train"]["mixed_precision"]  # as written by a version without the key
    assert cfg.matches_saved(saved)
    assert not cfg.matches_saved({**saved, "seed": 1})
    assert not cfg.matches_saved({**saved, "train": {**saved["train"], "bogus": 1}})


def test_a_saved_config_differing_only_in_a_setting_that_is_off_is_the_same_run():
    # probe.qa_questions did nothing with the QA probe off (its default changed from 200 to 64)
    cfg = load_config(None, ["probe.qa=false", "probe.samples=0"])
    saved = cfg.to_dict()
    saved["probe"] = {**saved["probe"], "qa_questions": 200, "sample_length": 32}
    assert cfg.matches_saved(saved)
    on = load_config(None, ["probe.qa=true", "probe.samples=0"])
    assert not on.matches_saved({**saved, "probe": {**saved["probe"], "qa": True}})
    sampled = load_config(None, ["probe.qa=false", "probe.samples=4"])
    assert not sampled.matches_saved({**saved, "probe": {**saved["probe"], "samples": 4}})


def test_fingerprint_hashes_only_what_differs_from_the_defaults():
    base = load_config(None)
    assert load_config(None, ["train.mixed_precision=fp32"]).fingerprint() == base.fingerprint()
    assert load_config(None, ["output_dir=/elsewhere"]).fingerprint() == base.fingerprint()
    assert load_config(None, ["train.mixed_precision=bf16"]).fingerprint() != base.fingerprint()
    assert load_config(None, ["method=replay"]).fingerprint() != base.fingerprint()


def test_a_changed_default_names_new_runs_apart_from_the_old_ones(tmp_path):
    """fused AdamW became the default: a run with it must not land in (and be refused by) the
    directory of a run named when the per-tensor loop was the default; that one keeps its name."""
    import hashlib
    import json

    from forgetless.core.config import NAMED_UNDER_DEFAULTS, TrainConfig
    from forgetless.engine.experiment import default_run_dir

    assert NAMED_UNDER_DEFAULTS["train.fused_optimizer"] is not TrainConfig().fused_optimizer
    new, old = load_config(None), load_config(None, ["train.fused_optimizer=false"])
    # the name every default run had before: nothing differed from the defaults but the method
    before = hashlib.sha256(json.dumps({"method": "seqft"}).encode()).hexdigest()[:8]
    assert old.fingerprint() == before != new.fingerprint()
    assert default_run_dir(new) != default_run_dir(old)


def test_a_key_inert_while_its_switch_is_off_leaves_the_name_alone():
    def name(*overrides):
        return load_config(None, list(overrides)).fingerprint()

    assert name("probe.qa=false", "probe.qa_questions=7") == name("probe.qa=false")
    assert name("probe.qa=true", "probe.qa_questions=7") != name("probe.qa=true")
    assert name("probe.samples=0", "probe.sample_length=9") == name("probe.samples=0")
    assert name("probe.samples=4", "probe.sample_length=9") != name("probe.samples=4")


@pytest.mark.parametrize("override, needle", [
    ("train.lr=.inf", "train.lr: Input should be a finite number"),
    ("train.weight_decay=.nan", "train.weight_decay: Input should be a finite number"),
    ("sam.rho=.inf", "sam.rho: Input should be a finite number"),
    ("seed=-1", "seed: Input should be greater than or equal to 0"),
    ("data.seed=4294967296", "data.seed: Input should be less than or equal to 4294967295"),
    ("train.on_nonfinite=ignore", "train.on_nonfinite"),
])
def test_non_finite_and_out_of_range_values_are_refused(override, needle):
    overrides = [override, "method=sam"] if override.startswith("sam.") else [override]
    with pytest.raises(ConfigError) as err:
        load_config(None, overrides)
    assert needle in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("template", ["Q: {question} {context}", "Q: {question} {", "{0} {question}"])
def test_prompt_templates_are_checked_by_formatting_a_sample(template):
    with pytest.raises(ConfigError, match=r"data.prompt_template must use only the placeholder "
                                          r"\{question\}"):
        load_config({"data": {"prompt_template": template}})
    assert load_config({"data": {"prompt_template": "{{literal}} {question}"}})


def test_config_keys_with_a_config_shows_its_values_and_only_what_applies(capsys):
    from forgetless.cli import main

    assert main(["config", "--keys", "--set", "data.source=corpus", "--set", "method=ewc",
                 "--set", "train.lr=0.002"]) == 0
    out = capsys.readouterr().out
    assert "train.lr = 0.002  (float, default 0.0001)" in out
    assert 'data.domain = "world"' in out and "ewc.lam = 1000.0" in out
    # another source's options and an unused method's section are left out
    assert "data.concepts_per_experience" not in out and "replay." not in out
    assert main(["config", "--keys"]) == 0
    plain = capsys.readouterr().out
    assert "data.concepts_per_experience  (" in plain and "replay.buffer_size  (" in plain


def test_an_empty_config_file_is_a_warning_not_silence(tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing set yet\n")
    assert load_config(path) == load_config(None)
    err = capsys.readouterr().err
    assert f"{path}: the config file is empty; every option takes its default" in err


def test_quiet_and_tqdm_disable_turn_the_bars_off(monkeypatch):
    import os

    from forgetless.cli import main
    from forgetless.core.progress import bars_disabled

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    assert bars_disabled() is None  # a bar on a terminal only
    for value, expected in (("1", True), ("true", True), ("0", None), ("false", None)):
        monkeypatch.setenv("TQDM_DISABLE", value)
        assert bars_disabled() is expected
    monkeypatch.delenv("TQDM_DISABLE")
    assert main(["run", "--quiet", "--set", "train.lr=abc"]) == 2  # stops before training
    assert os.environ["TQDM_DISABLE"] == "1" and bars_disabled() is True
