"""Issue #18's acceptance for KIF on a small *pretrained* model: the fused model still fits each
new step. The random-init tiny models cannot show it (the strict xfail in test_kif_run.py: there
any partial return to the previous weights erases the new step); a pretrained model's updates
are small beside its weights, which is where KIF — and averaging — keep what was just learned.
The model is the embedded SmolLM2-135M cut to its first 8 of 30 layers and its first 4,096 token
ids (as the tests' -v4k tiny models are: the 49,152-row output layer was a quarter of each step;
about 20 s a run on one core); in its own file so that it runs beside the other KIF tests."""

import pytest

import forgetless

pytestmark = pytest.mark.integration

LAYERS = 8


@pytest.fixture(scope="module")
def small_pretrained(tmp_path_factory):
    """The embedded model's first LAYERS decoder layers, final norm, and embeddings (tied to the
    head) for the first CUT_VOCABULARY ids, with the tokenizer cut to those ids, saved as a local
    model directory."""
    from transformers import AutoTokenizer

    from forgetless.core.config import ModelConfig
    from forgetless.models.load import CUT_VOCABULARY, cut_tokenizer_dir, load_model, load_tokenizer

    cfg = ModelConfig(name="embedded")
    tokenizer = load_tokenizer(cfg)
    model = load_model(cfg, tokenizer, seed=0)
    model.model.layers = model.model.layers[:LAYERS]
    model.config.num_hidden_layers = LAYERS
    if getattr(model.config, "layer_types", None):
        model.config.layer_types = model.config.layer_types[:LAYERS]
    tokenizer = AutoTokenizer.from_pretrained(cut_tokenizer_dir(CUT_VOCABULARY))
    model.resize_token_embeddings(CUT_VOCABULARY)
    out = tmp_path_factory.mktemp(f"smollm2-{LAYERS}-layers")
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def test_kif_fits_each_new_step_on_a_small_pretrained_model(small_pretrained, tmp_path):
    """Same seed and stream (2 experiences × 4 concepts × 2 facts, one batch of 8 per step,
    15 epochs, lr 1e-3): KIF's learning accuracy, measured after its fusion, is within 5 points
    of seqft's, and the fusion did keep part of the previous weights (so the comparison is not
    KIF doing nothing); it also forgets less. Measured 2026-12-01 on the 2-core Xeon, one
    thread: both learned 1.00, MF 0.375 against 1.0, KIF kept 0.47 of the current weights —
    as with batches of 4 at lr 5e-4 (2026-11-30), in 64 % of the time: half the optimizer
    steps, each of which updates all 45M parameters. With the vocabulary cut (2026-12-04, the
    AVX-512 EPYC, one thread): both learned 1.00, MF 0.5 against 1.0, KIF kept 0.47; 42 s for
    the two runs against 55 s with the whole vocabulary."""
    base = [f"model.name={small_pretrained}", "data.n_experiences=2",
            "data.concepts_per_experience=4", "data.facts_per_concept=2", "train.epochs=15",
            "train.lr=1e-3", "train.batch_size=8", "probe.samples=0", "probe.qa=false",
            f"output_dir={tmp_path / 'runs'}"]
    runs = {m: forgetless.run(None, [*base, f"method={m}"], run_dir=tmp_path / m)
            for m in ("seqft", "kif")}
    la = {m: r.metrics["train"]["LA"] for m, r in runs.items()}
    mf = {m: r.headline["MF"] for m, r in runs.items()}
    kept = runs["kif"].results["experiences"][1]["methods"]["kif"]["fused_share_current"]
    print("LA", la, "MF", mf, "share of the current weights", kept)
    assert la["seqft"] >= 0.9, "the stream must be learnable by this model for the test to mean anything"
    assert la["kif"] >= la["seqft"] - 0.05
    assert 0 < kept < 1
    assert mf["kif"] < mf["seqft"]
