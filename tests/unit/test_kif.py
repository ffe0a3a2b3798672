"""KIF by hand: importance EMA and uncertainty, the four fusion cases, LoRA fusion in ΔW."""

from types import SimpleNamespace

import pytest
import torch

from forgetless.core.errors import ForgetlessError
from forgetless.methods.kif import (
    KIF,
    KIFConfig,
    Units,
    fuse_lora,
    fusion_weights,
    minmax,
    same_size_permutation,
)


def fake_ctx(named):
    return SimpleNamespace(trainable_parameters=lambda: named, global_step=0, seed=0,
                           agreed_digest=lambda what, value: "d")


def test_importance_ema_and_uncertainty_by_hand():
    p = torch.nn.Parameter(torch.tensor([2.0, -1.0]))
    kif = KIF(KIFConfig(beta1=0.5, beta2=0.25, vectors="fuse"))  # a vector as a unit
    ctx = fake_ctx([("w", p)])
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=0))
    ema = unc = torch.zeros(2)
    for g in ([0.5, 1.0], [-1.0, 3.0]):
        p.grad = torch.tensor(g)
        kif.on_gradients(ctx)
        i = (p.detach() * p.grad).abs()          # |θ ⊙ g|
        ema = 0.5 * ema + 0.5 * i                # Ī
        unc = 0.25 * unc + 0.75 * (i - ema).abs()  # Ū with the updated Ī
    assert torch.allclose(kif.ema["w"], ema) and torch.allclose(kif.unc["w"], unc)
    scores, index = kif.current_scores()
    assert index == [("plain", "w", None)]
    assert scores[0] == pytest.approx(float((ema * unc).mean()))


@pytest.mark.parametrize("sensitivity", ["first", "second"])
def test_blockwise_update_equals_the_whole_tensor_formula(sensitivity):
    # The CPU update runs in cache-sized blocks; blocks of 3 over 2 tensors of 10 and 7 entries
    # (ragged last blocks) must give the same Ī and Ū as the formula on whole tensors.
    gen = torch.Generator().manual_seed(0)
    shapes = {"a": (2, 5), "b": (7,)}
    params = {n: torch.nn.Parameter(torch.randn(s, generator=gen)) for n, s in shapes.items()}
    kif = KIF(KIFConfig(beta1=0.6, beta2=0.3, sensitivity=sensitivity))
    kif.cpu_block = 3
    ctx = fake_ctx(list(params.items()))
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=0))
    ema = {n: torch.zeros(s) for n, s in shapes.items()}
    unc = {n: torch.zeros(s) for n, s in shapes.items()}
    for _ in range(3):
        for n, p in params.items():
            p.grad = torch.randn(shapes[n], generator=gen)
            x = p.detach() * p.grad
            i = (x - 0.5 * x * x).abs() if sensitivity == "second" else x.abs()
            ema[n] = 0.6 * ema[n] + 0.4 * i
            unc[n] = 0.3 * unc[n] + 0.7 * (i - ema[n]).abs()
        kif.on_gradients(ctx)
    for n in shapes:
        assert torch.allclose(kif.ema[n], ema[n], atol=1e-6)
        assert torch.allclose(kif.unc[n], unc[n], atol=1e-6)
    # an infinite gradient in the last block of the second tensor is found and named
    params["b"].grad = torch.tensor([0.0] * 6 + [float("inf")])
    with pytest.raises(ForgetlessError, match="non-finite gradient in b "):
        kif.on_gradients(ctx)


def test_second_order_sensitivity():
    p = torch.nn.Parameter(torch.tensor([2.0]))
    kif = KIF(KIFConfig(beta1=0.0, beta2=0.0, sensitivity="second"))
    ctx = fake_ctx([("w", p)])
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=0))
    p.grad = torch.tensor([1.5])
    kif.on_gradients(ctx)
    assert float(kif.ema["w"]) == pytest.approx(abs(3.0 - 0.5 * 9.0))


def test_non_finite_gradients_are_an_error():
    p = torch.nn.Parameter(torch.ones(2))
    kif = KIF(KIFConfig())
    ctx = fake_ctx([("layer.w", p)])
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=0))
    p.grad = torch.tensor([1.0, float("nan")])
    with pytest.raises(ForgetlessError, match="kif: non-finite gradient in layer.w"):
        kif.on_gradients(ctx)


def test_the_four_fusion_cases():
    #               both  only prev  only cur  neither
    ic = torch.tensor([1.0, 0.0, 0.9, 0.1])
    ip = torch.tensor([1.0, 0.8, 0.0, 0.2])
    w = fusion_weights(ic, ip, KIFConfig(quantile=0.5))
    assert w.tolist() == pytest.approx([0.3, 0.0, 1.0, 0.5])
    soft = fusion_weights(ic, ip, KIFConfig(fusion="soft", temperature=0.5))
    assert soft.tolist() == pytest.approx(torch.sigmoid((ic - ip) / 0.5).tolist())
    assert minmax(torch.tensor([2.0, 4.0, 3.0])).tolist() == [0.0, 1.0, 0.5]


def test_fusion_on_a_toy_model_after_two_experiences():
    names = ["both", "prev", "cur", "neither"]
    params = [torch.nn.Parameter(torch.zeros(2, 3)) for _ in names]
    named = list(zip(names, params, strict=True))
    kif = KIF(KIFConfig(quantile=0.5))
    ctx = fake_ctx(named)
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=1))  # prev = zeros
    kif.prev_scores = torch.tensor([1.0, 0.8, 0.0, 0.2])
    with torch.no_grad():
        for p in params:
            p.fill_(10.0)  # what the experience learned
    current = {"both": 1.0, "prev": 0.0, "cur": 0.9, "neither": 0.1}
    for n in names:  # Ī⊙Ū with the chosen per-unit means
        kif.ema[n] = torch.full((2, 3), current[n])
        kif.unc[n] = torch.ones(2, 3)
    kif.after_experience(ctx, SimpleNamespace(index=1))
    got = {n: float(p.detach()[0, 0]) for n, p in named}
    assert got == pytest.approx({"both": 3.0, "prev": 0.0, "cur": 10.0, "neither": 5.0})
    # accumulated scores: minmax(0.3·Ic + 0.7·Ip)
    ic = minmax(torch.tensor([1.0, 0.0, 0.9, 0.1]))
    ip = torch.tensor([1.0, 0.8, 0.0, 0.2])
    assert torch.allclose(kif.prev_scores, minmax(0.3 * ic + 0.7 * ip))
    assert kif.stats["importance"]["cur"] == pytest.approx(0.9)


def test_fusion_cases_are_counted_by_weight():
    """Units of 2, 6, 12 and 20 entries in the four cases: per unit the mean weight of the
    current weights is (0.3 + 0 + 1 + 0.5) / 4 = 0.45; by weight the cases hold 5, 15, 30 and
    50 % of the 40 entries, and the share of current is (0.3·2 + 0·6 + 1·12 + 0.5·20) / 40."""
    names = ["both", "prev", "cur", "neither"]
    shapes = [(1, 2), (2, 3), (4, 3), (5, 4)]
    named = [(n, torch.nn.Parameter(torch.zeros(s))) for n, s in zip(names, shapes, strict=True)]
    kif = KIF(KIFConfig(quantile=0.5))
    ctx = fake_ctx(named)
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=1))
    kif.prev_scores = torch.tensor([1.0, 0.8, 0.0, 0.2])
    current = {"both": 1.0, "prev": 0.0, "cur": 0.9, "neither": 0.1}
    for n, p in named:
        kif.ema[n] = torch.full_like(p, current[n])
        kif.unc[n] = torch.ones_like(p)
    kif.after_experience(ctx, SimpleNamespace(index=1))
    assert kif.stats["fused_share_current"] == pytest.approx(0.45)
    assert kif.stats["fused_share_current_by_weight"] == pytest.approx(22.6 / 40)
    assert kif.stats["fused_cases_by_weight"] == pytest.approx(
        {"both": 0.05, "previous": 0.15, "current": 0.3, "neither": 0.5})
    rows = Units([("w", torch.nn.Parameter(torch.zeros(3, 4)))], "row", vectors="current")
    assert rows.sizes(rows.scores({"w": torch.zeros(3, 4)})[1]).tolist() == [4.0, 4.0, 4.0]
    average = KIF(KIFConfig(quantile=0.5, fusion="average"))
    average.setup(ctx)
    average.before_experience(ctx, SimpleNamespace(index=1))
    average.prev_scores = torch.tensor([1.0, 0.8, 0.0, 0.2])
    average.ema, average.unc = kif.ema, kif.unc
    average.after_experience(ctx, SimpleNamespace(index=1))
    assert average.stats["fused_share_current_by_weight"] == pytest.approx(0.5)
    assert "fused_cases_by_weight" not in average.stats  # the control has no cases


def test_row_units_fuse_each_output_row():
    p = torch.nn.Parameter(torch.zeros(2, 2))
    kif = KIF(KIFConfig(unit="row", quantile=0.5))
    ctx = fake_ctx([("w", p)])
    kif.setup(ctx)
    kif.before_experience(ctx, SimpleNamespace(index=1))
    kif.prev_scores = torch.tensor([1.0, 0.0])  # row 0 mattered before, row 1 not
    with torch.no_grad():
        p.fill_(4.0)
    kif.ema["w"] = torch.tensor([[0.0, 0.0], [1.0, 1.0]])  # now row 1 matters
    kif.unc["w"] = torch.ones(2, 2)
    kif.after_experience(ctx, SimpleNamespace(index=1))
    assert p[:, 0].tolist() == [0.0, 4.0]  # row 0: only prev → prev; row 1: only cur → cur


def rank_r(out, inp, r, seed):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(out, r, generator=g), torch.randn(r, inp, generator=g)


def test_lora_fusion_is_consistent_in_delta_w():
    b_c, a_c = rank_r(6, 5, 2, 0)
    b_p, a_p = rank_r(6, 5, 2, 1)
    for w in (1.0, 0.0):  # one side wins: exactly that side's ΔW
        b, a, err = fuse_lora(b_c, a_c, b_p, a_p, torch.tensor([w]))
        want = b_c @ a_c if w else b_p @ a_p
        assert torch.allclose(b @ a, want, atol=1e-5) and err < 1e-6
    # per-component weights whose mix has rank ≤ r: exact Σ w_k b_c,k a_c,kᵀ + (1−w_k) b_p,k a_p,kᵀ
    w = torch.tensor([1.0, 0.0])
    b, a, err = fuse_lora(b_c, a_c, b_p, a_p, w)
    want = torch.outer(b_c[:, 0], a_c[0]) + torch.outer(b_p[:, 1], a_p[1])
    assert torch.allclose(b @ a, want, atol=1e-5) and err < 1e-6
    # a real mix has rank up to 2r: the best rank-r approximation, its error reported
    b, a, err = fuse_lora(b_c, a_c, b_p, a_p, torch.tensor([0.3]))
    full = 0.3 * b_c @ a_c + 0.7 * b_p @ a_p
    u, s, vh = torch.linalg.svd(full)
    assert torch.allclose(b @ a, (u[:, :2] * s[:2]) @ vh[:2], atol=1e-4)
    assert err == pytest.approx(float((s[2:].square().sum() / s.square().sum()).sqrt()), rel=1e-4)


def test_lora_units_pair_a_and_b():
    r = 2
    named = [
        ("m.layers.0.q_proj.lora_A.default.weight", torch.nn.Parameter(torch.zeros(r, 4))),
        ("m.layers.0.q_proj.lora_B.default.weight", torch.nn.Parameter(torch.zeros(3, r))),
        ("m.head.weight", torch.nn.Parameter(torch.zeros(3))),
    ]
    score = {n: torch.ones_like(p) for n, p in named}
    score[named[0][0]][1] = 3.0  # component 1 of A matters more
    units = Units(named, "row", vectors="fuse")
    scores, index = units.scores(score)
    assert index == [("plain", "m.head.weight", None), ("lora", "m.layers.0.q_proj", 0),
                     ("lora", "m.layers.0.q_proj", 1)]
    assert scores.tolist() == pytest.approx([1.0, 1.0, (12 + 3) / 7])
    assert units.sizes(index).tolist() == [3, 7, 7]  # a component: a row of A, a column of B
    whole = Units(named, "tensor", vectors="fuse")
    scores, index = whole.scores(score)
    assert len(index) == 2 and scores[1] == pytest.approx((4 + 12 + 6) / 14)
    assert whole.sizes(index).tolist() == [3, 14]


def test_importance_grid_by_layer_and_module():
    from forgetless.report.importance import importance_grid, importance_plot

    imp = {"model.layers.0.self_attn.q_proj.weight": 0.5, "model.layers.1.mlp.down_proj.weight": 1.0,
           "model.embed_tokens.weight": 0.0, "base.model.layers.1.self_attn.q_proj": 0.25}
    modules, rows = importance_grid(imp)
    assert modules == ["q_proj", "down_proj"]
    assert rows == [[0.5, None], [0.25, 1.0]]
    results = {"experiences": [{"experience": 0, "methods": {"kif": {"importance": imp}}},
                               {"experience": 1, "methods": {}}]}
    png = importance_plot(results)
    assert png.startswith(b"\x89PNG") and len(png) > 1000
    assert importance_plot({"experiences": []}) is None


def test_top_units_include_what_the_heatmap_leaves_out():
    from forgetless.report.importance import top_units

    imp = {"model.norm.weight": 1.0, "model.layers.0.self_attn.q_proj.weight": 0.001,
           "model.embed_tokens.weight": 0.2}
    results = {"experiences": [
        {"experience": 0, "methods": {"kif": {"importance": imp}}},
        {"experience": 1, "methods": {"kif": {"importance": imp, "fused_share_current": 0.4}}}]}
    results["experiences"].append({"experience": 2, "methods": {"kif": {
        "importance": imp, "fused_share_current": 0.45, "fused_cases_by_weight": {
            "both": 0.05, "previous": 0.15, "current": 0.3, "neither": 0.5},
        "important_shared_with_previous": 0.8}}})
    rows = top_units(results, k=2)
    top = "norm.weight 1.00, embed_tokens.weight 0.20"
    assert rows == [[0, top, "- (first: scores only)", "-", "-"],
                    [1, top, "0.40", "-", "-"],
                    [2, top, "0.45", "50 / 30 / 15 / 5", "80 %"]]


def test_vectors_keep_their_new_values_and_stay_out_of_the_ranking():
    """A norm weight with by far the largest score would push every matrix into "neither" (½/½)
    under `vectors: fuse`; with the default it is not a unit and keeps its new value."""
    names = ["layers.0.norm.weight", "layers.0.q.weight", "layers.0.k.weight"]
    params = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2, 3)),
              torch.nn.Parameter(torch.zeros(2, 3))]
    named = list(zip(names, params, strict=True))
    results = {}
    for vectors in ("current", "fuse"):
        kif = KIF(KIFConfig(quantile=0.5, vectors=vectors))
        ctx = fake_ctx(named)
        kif.setup(ctx)
        with torch.no_grad():
            for p in params:
                p.zero_()
        kif.before_experience(ctx, SimpleNamespace(index=1))  # prev = zeros
        with torch.no_grad():
            for p in params:
                p.fill_(10.0)
        score = {names[0]: 100.0, names[1]: 1.0, names[2]: 0.1}
        for n in names:
            kif.ema[n] = torch.full_like(dict(named)[n], score[n])
            kif.unc[n] = torch.ones_like(dict(named)[n])
        kif.prev_scores = torch.zeros(len(kif.units.plain))  # nothing mattered before
        kif.after_experience(ctx, SimpleNamespace(index=1))
        results[vectors] = [float(p.detach().flatten()[0]) for p in params]
    # default: q is the top matrix (only cur → 10), k neither (5), the norm untouched (10)
    assert results["current"] == [10.0, 10.0, 5.0]
    # fuse: the norm takes the top; q's 1.0 is now 0.01 after min-max and falls to "neither"
    assert results["fuse"] == [10.0, 5.0, 5.0]


def test_family_normalisation_and_strict_ties():
    from forgetless.methods.kif import family, normalise

    assert family("model.layers.12.mlp.down_proj.weight") == "model.layers.*.mlp.down_proj.weight"
    index = [("plain", f"l.{i}.{kind}.weight", None) for i in range(2) for kind in ("q", "mlp")]
    scores = torch.tensor([1.0, 100.0, 3.0, 300.0])  # q: 1, mlp: 100, q: 3, mlp: 300
    assert normalise(scores, index, "family").tolist() == [0.0, 0.0, 1.0, 1.0]
    assert normalise(scores, index, "global").tolist() == pytest.approx(
        [0.0, 99 / 299, 2 / 299, 1.0])
    # ties at the quantile: >= calls all tied units important, > none of them
    ic = torch.tensor([0.0, 0.0, 0.0, 1.0])
    ip = torch.zeros(4)
    loose = fusion_weights(ic, ip, KIFConfig(quantile=0.5, strict=False))
    strict = fusion_weights(ic, ip, KIFConfig(quantile=0.5))
    assert loose.tolist() == pytest.approx([0.3] * 4)  # every unit "important to both"
    assert strict.tolist() == pytest.approx([0.5, 0.5, 0.5, 1.0])


def test_average_control_ignores_importance():
    ic = torch.tensor([1.0, 0.0, 0.9, 0.1])
    ip = torch.tensor([1.0, 0.8, 0.0, 0.2])
    w = fusion_weights(ic, ip, KIFConfig(fusion="average"))
    assert w.tolist() == [0.5] * 4


def test_same_size_permutation_moves_units_only_among_equals():
    sizes = torch.tensor([6.0, 2.0, 6.0, 6.0, 12.0, 2.0, 6.0])
    seen = set()
    for seed in range(20):
        perm = same_size_permutation(sizes, torch.Generator().manual_seed(seed))
        assert sorted(perm.tolist()) == list(range(7))  # a permutation
        assert torch.equal(sizes[perm], sizes)           # each unit keeps its size
        assert perm[4] == 4                              # the only unit of 12 stays
        seen.add(tuple(perm.tolist()))
    assert len(seen) > 1  # and it does move units
    again = same_size_permutation(sizes, torch.Generator().manual_seed(3))
    assert torch.equal(again, same_size_permutation(sizes, torch.Generator().manual_seed(3)))


def test_shuffled_placement_keeps_the_cases_and_moves_them():
    """Four units of 6 entries in the four cases and one of 20 in "neither": shuffled, the four
    equal units get the rule's four weights in another order on some seed, the big one keeps its
    ½, and the split over the cases by weight is the rule's."""
    names = ["both", "prev", "cur", "neither", "big"]
    shapes = [(2, 3)] * 4 + [(5, 4)]
    current = {"both": 1.0, "prev": 0.0, "cur": 0.9, "neither": 0.1, "big": 0.2}

    def fused(placement, seed):
        named = [(n, torch.nn.Parameter(torch.zeros(s))) for n, s in zip(names, shapes, strict=True)]
        kif = KIF(KIFConfig(quantile=0.5, placement=placement))
        ctx = fake_ctx(named)
        ctx.seed = seed
        kif.setup(ctx)
        kif.before_experience(ctx, SimpleNamespace(index=1))  # prev = zeros
        kif.prev_scores = torch.tensor([1.0, 0.8, 0.0, 0.2, 0.1])
        with torch.no_grad():
            for _, p in named:
                p.fill_(10.0)
        for n, p in named:
            kif.ema[n] = torch.full_like(p, current[n])
            kif.unc[n] = torch.ones_like(p)
        kif.after_experience(ctx, SimpleNamespace(index=1))
        return {n: float(p.detach()[0, 0]) for n, p in named}, kif.stats

    rule, rule_stats = fused("importance", 0)
    assert rule == pytest.approx({"both": 3.0, "prev": 0.0, "cur": 10.0, "neither": 5.0, "big": 5.0})
    moved = False
    for seed in range(10):
        got, stats = fused("shuffled", seed)
        assert sorted(got[n] for n in names[:4]) == pytest.approx([0.0, 3.0, 5.0, 10.0])
        assert got["big"] == pytest.approx(5.0)
        assert stats["fused_cases_by_weight"] == pytest.approx(rule_stats["fused_cases_by_weight"])
        assert stats["fused_share_current_by_weight"] == pytest.approx(
            rule_stats["fused_share_current_by_weight"])
        assert stats["importance"] == rule_stats["importance"]  # what was found, not where it went
        moved |= got != pytest.approx(rule)
    assert moved
    assert fused("shuffled", 4) == fused("shuffled", 4)  # the run's seed decides


def test_important_units_shared_with_the_experience_before():
    """Ten units of equal size, important = strictly above the 0.8 quantile of the normalised
    scores: the top two. Experience 0 ranks u8, u9 on top; experience 1 u9, u0: half of its
    important units were important before; experience 2 u0, u1: half again."""
    named = [(f"u{i}", torch.nn.Parameter(torch.zeros(2, 2))) for i in range(10)]
    low = [0.1 * i for i in range(8)]
    kif = KIF(KIFConfig())
    ctx = fake_ctx(named)
    kif.setup(ctx)
    shared = []
    for k, means in enumerate(([*low, 0.9, 1.0], [0.95, *low[1:], 0.0, 1.0],
                               [1.0, 0.9, *low[2:], 0.0, 0.1])):
        kif.before_experience(ctx, SimpleNamespace(index=k))
        for (n, p), m in zip(named, means, strict=True):
            kif.ema[n] = torch.full_like(p, m)
            kif.unc[n] = torch.ones_like(p)
        kif.after_experience(ctx, SimpleNamespace(index=k))
        shared.append(kif.stats.get("important_shared_with_previous"))
    assert shared == [None, 0.5, 0.5]
    assert kif.prev_important.tolist() == [True, True] + [False] * 8
    again = KIF(KIFConfig())
    again.load_state_dict(kif.state_dict())
    assert torch.equal(again.prev_important, kif.prev_important)


def test_shuffling_an_average_is_a_config_error():
    from forgetless.core.config import load_config
    from forgetless.core.errors import ConfigError

    with pytest.raises(ConfigError, match="kif: placement 'shuffled' with fusion 'average'"):
        load_config(None, ["method=kif", "kif.fusion=average", "kif.placement=shuffled"])
    load_config(None, ["method=kif", "kif.fusion=soft", "kif.placement=shuffled"])  # soft shuffles
