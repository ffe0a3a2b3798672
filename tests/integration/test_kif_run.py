"""KIF on the tiny model, same seed and stream: forgetting against seqft and replay, LoRA, and
importance that agrees across processes."""

import json

import pytest

import forgetless
from forgetless.methods.kif import KIFConfig
from tests.conftest import TINY
from tests.integration.test_run import (
    cli,
    kill_after_first_checkpoint,
    sets,
)

pytestmark = pytest.mark.integration

NO_PROBE = ["probe.samples=0", "probe.qa=false"]
KIF = [*TINY, *NO_PROBE, "method=kif"]
"""Shared (the `finished_run` fixture) by the tests that only read it."""


def test_kif_records_importance_and_fuses(finished_run):
    result = finished_run(KIF)
    stats = [x["methods"]["kif"] for x in result.results["experiences"]]
    assert all(s["steps"] == 60 for s in stats)  # 8 examples, 4 per step, 30 epochs
    assert "fused_share_current" not in stats[0] and 0 < stats[1]["fused_share_current"] < 1
    # the importance map per experience: one score per weight tensor, normalised to [0, 1]
    imp = stats[1]["importance"]
    assert len(imp) > 10 and min(imp.values()) == 0.0 and max(imp.values()) == 1.0
    assert (result.run_dir / "importance.png").stat().st_size > 1000
    assert "## Where each experience's knowledge sits" in (result.run_dir /
                                                           "summary.md").read_text()


def test_fusion_cases_rebuilt_from_importance_match_the_recorded(finished_run, tmp_path, capsys):
    """scripts/kif_fusion_cases.py rebuilds, for runs that predate the record, how the fused
    weights split over the hard rule's cases from the importance each experience recorded; on
    a run that recorded both, the rebuilt split is the recorded one."""
    import importlib.util
    import shutil

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("cases", REPO / "scripts" / "kif_fusion_cases.py")
    cases = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cases)
    run = finished_run(KIF).run_dir
    old = shutil.copytree(run, tmp_path / "old", ignore=shutil.ignore_patterns("checkpoints"))
    results = json.loads((old / "results.json").read_text())
    for x in results["experiences"]:  # what runs before 2026-12-02 did not record
        x["methods"]["kif"].pop("fused_cases_by_weight", None)
        x["methods"]["kif"].pop("important_shared_with_previous", None)
    (old / "results.json").write_text(json.dumps(results))
    assert cases.main([str(run)]) == 0
    recorded = capsys.readouterr().out
    assert cases.main([str(old)]) == 0
    rebuilt = capsys.readouterr().out
    assert "(recorded)" in recorded and "(rebuilt)" in rebuilt
    assert recorded.splitlines()[1:] == rebuilt.splitlines()[1:]
    shares = [x["methods"]["kif"]["fused_cases_by_weight"]
              for x in json.loads((run / "results.json").read_text())["experiences"][1:]]
    assert all(sum(s.values()) == pytest.approx(1.0) for s in shares)
    assert cases.main([str(finished_run([*TINY, *NO_PROBE]).run_dir)]) == 2  # not a KIF run
    assert "not a finished KIF run" in capsys.readouterr().err
    # important = strictly above the 0.8 quantile of ten scores: the top two each time
    first = {f"u{i}": i / 10 for i in range(1, 11)}       # u9, u10
    second = {**first, "u1": 2.0, "u9": 0.0}               # u1, u10
    third = {**second, "u1": 0.0, "u2": 3.0, "u10": 0.0}  # u2, u8
    experiences = [{"methods": {"kif": {"importance": imp}}} for imp in (first, second, third)]
    assert cases.shared_important({"experiences": experiences}, KIFConfig()) == [0.5, 0.0]


def test_shuffled_placement_moves_the_weights_and_keeps_the_cases(finished_run):
    """`kif.placement: shuffled` against kif, same seed: experience 1 trains the same (nothing
    is fused before it), so its importance and its split over the cases are the same; the
    shuffled fusion then puts the weights on other units, so experience 2 trains from other
    weights."""
    kif = finished_run(KIF).results["experiences"]
    shuffled = finished_run([*KIF, "kif.placement=shuffled"]).results["experiences"]
    a, b = kif[1]["methods"]["kif"], shuffled[1]["methods"]["kif"]
    assert a["importance"] == b["importance"]
    assert a["fused_cases_by_weight"] == pytest.approx(b["fused_cases_by_weight"])
    assert kif[2]["methods"]["kif"]["importance"] != shuffled[2]["methods"]["kif"]["importance"]


@pytest.mark.xfail(strict=True, reason=(
    "On the tiny random-init model KIF still learns less (issue #18): seed 0, with the new "
    "defaults (vectors current, strict >, fused AdamW), LA 0.33 vs seqft 0.96 and MF 0.44 vs "
    "1.0 on the tests' 2-layer TINY_MODEL (2026-12-02); LA 0.33 vs 0.92, MF 0.50 vs 0.88 on "
    "tiny-llama-5m-v4k (2026-11-30); LA 0.33 vs 0.88, MF 0.31 vs 0.94 on tiny-llama-5m. Here "
    "the model memorises at lr 3e-3 and any partial return to the previous weights — the "
    "½-merge control too, and every KIF variant tried (family normalisation, row units, "
    "quantile 0.5, lr 1e-3) — erases the new experience. On SmolLM2-135M and Concept-1K "
    "(concept1k-small) the same defaults keep learning (docs/studies.md), and on SmolLM2 cut to "
    "8 layers (test_kif_pretrained.py, the acceptance test). Strict: when KIF "
    "learns here as well as seqft and still forgets less, this passes and the marker must go."))
def test_kif_learns_like_seqft_and_forgets_less(finished_run):
    runs = {"seqft": finished_run([*TINY, *NO_PROBE]), "kif": finished_run(KIF)}
    la = {n: r.metrics["train"]["LA"] for n, r in runs.items()}
    mf = {n: r.headline["MF"] for n, r in runs.items()}
    print("LA:", la, "MF:", mf, "MA:", {n: r.headline["MA"] for n, r in runs.items()})
    assert la["kif"] >= la["seqft"] - 0.05
    assert mf["kif"] < mf["seqft"]


def test_kif_with_lora_fuses_adapters(tiny_overrides, tmp_path):
    result = forgetless.run(None, [*tiny_overrides, *NO_PROBE, "method=kif", "kif.unit=row",
                                   "model.lora.enabled=true", "train.lr=1e-2"],
                            run_dir=tmp_path / "lora")
    stats = [x["methods"]["kif"] for x in result.results["experiences"]]
    # one unit per adapted module (every linear layer), no base weights
    assert all(name.endswith("_proj") for name in stats[0]["importance"])
    assert 0 <= stats[1]["lora_svd_error_max"] < 1
    print("LoRA kif:", result.headline, [s.get("lora_svd_error_max") for s in stats])


def test_kif_composes_with_replay_and_sam(tiny_overrides, tmp_path):
    result = forgetless.run(None, [*tiny_overrides, *NO_PROBE, "method=kif+replay+sam",
                                   "replay.buffer_size=8", "data.n_experiences=2"],
                            run_dir=tmp_path / "all")
    last = result.results["experiences"][-1]["methods"]
    assert last["sam"]["passes_per_step"] == 2.0
    assert last["kif"]["steps"] == 120  # (8 new + 8 replayed) / 4 per step × 30 epochs
    assert 0 < last["kif"]["fused_share_current"] < 1 and last["replay"]["buffer"] == 8
    print("kif+replay+sam:", result.headline)


def test_killed_kif_run_resumes_with_its_accumulated_scores(finished_run, tiny_overrides,
                                                           tmp_path):
    # The accumulated previous scores live in the checkpoint: a resumed run fuses after
    # experience 1 exactly as an uninterrupted one (without them it would treat experience 1 as
    # the first and skip the fusion); so does the last experience's important set, which the
    # next one's overlap is counted against.
    overrides = [*tiny_overrides, *NO_PROBE, "method=kif"]
    reference = finished_run(KIF).results
    out = tmp_path / "killed"
    kill_after_first_checkpoint(overrides, out)
    cli("run", *sets(overrides), "--out", str(out), "--quiet")
    final = json.loads((out / "results.json").read_text())
    assert final["complete"] and final["matrices"] == reference["matrices"]
    for got, want in zip(final["experiences"], reference["experiences"], strict=True):
        for key in ("fused_share_current", "important_shared_with_previous"):
            assert got["methods"]["kif"].get(key) == want["methods"]["kif"].get(key), key
        assert got["methods"]["kif"]["digest"] == want["methods"]["kif"]["digest"]
    assert "important_shared_with_previous" in final["experiences"][1]["methods"]["kif"]
