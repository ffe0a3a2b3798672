"""Comparison statistics against hand computations."""

import pytest

from forgetless.core.errors import RunDirError
from forgetless.report.compare import (
    _ranks,
    correlation,
    load_runs,
    pareto_front,
    within_correlation,
)


def test_within_experience_correlation_removes_the_index_confound():
    """Later experiences here are sharper and forgotten more (pooled r > 0.9), but between runs
    at the same index the sharper one forgets less: by hand, the demeaned points are
    (∓0.5, ±0.5) at both indices, so r = -1; the lone index-2 point drops out."""
    pts = [{"experience": j, "sharpness": s, "forgetting": f}
           for j, s, f in [(0, 1, 10), (0, 2, 9), (1, 5, 30), (1, 6, 29), (2, 9, 50)]]
    pooled = correlation([p["sharpness"] for p in pts], [p["forgetting"] for p in pts])
    assert pooled["pearson"] > 0.9
    within = within_correlation(pts)
    assert within["n"] == 4 and within["pearson"] == pytest.approx(-1.0)
    # the same for the top eigenvalue, where the sharper run of each index forgets more
    pts = [{**p, "top_eigenvalue": 2 + p["sharpness"] % 2} for p in pts]  # (3, 2) against (10, 9)
    assert within_correlation(pts, "top_eigenvalue")["pearson"] == pytest.approx(1.0)


def test_correlation_hand_computed():
    # x = 1,2,3,4; y = 2,4,5,9: means 2.5, 5; cov = Σ(dx·dy) = (-1.5)(-3)+(-.5)(-1)+(.5)(0)+(1.5)(4)
    # = 4.5+.5+0+6 = 11; Σdx² = 5; Σdy² = 9+1+0+16 = 26 → r = 11/√(5·26) = 0.96476
    c = correlation([1, 2, 3, 4], [2, 4, 5, 9])
    assert c["n"] == 4
    assert c["pearson"] == pytest.approx(11 / (5 * 26) ** 0.5)
    assert c["spearman"] == pytest.approx(1.0)  # monotone
    # a monotone but non-linear relation: Spearman 1, Pearson below 1
    c = correlation([1, 2, 3, 4, 5], [1, 2, 3, 4, 100])
    assert c["spearman"] == pytest.approx(1.0) and c["pearson"] < 0.8
    assert correlation([1, 2], [3, 4])["pearson"] is None  # too few pairs
    assert correlation([1, 1, 1], [3, 4, 5])["pearson"] is None  # no spread


def test_ties_share_their_average_rank():
    assert list(_ranks([10.0, 20.0, 20.0, 5.0])) == [1.0, 2.5, 2.5, 0.0]


def test_pareto_front():
    # (cost, forgetting): b is dominated by a (cheaper and forgets less); c is the cheapest; d
    # forgets least; e equals a (neither dominates the other)
    costs = [2.0, 3.0, 1.0, 5.0, 2.0]
    forget = [0.3, 0.4, 0.5, 0.1, 0.3]
    assert pareto_front(costs, forget) == [0, 2, 3, 4]


def test_missing_results_is_one_line_error(tmp_path):
    with pytest.raises(RunDirError, match=r"no results.json"):
        load_runs([tmp_path])
    (tmp_path / "results.json").write_text("{\n broken")
    with pytest.raises(RunDirError, match=r"results.json:2: not valid JSON"):
        load_runs([tmp_path])


def test_a_quoted_pattern_is_expanded_as_the_shell_would(tmp_path):
    """`forgetless compare 'runs/method=sam*-seed*'` (quoted, or from a shell that does not
    expand globs) reads the matching runs in sorted order; a pattern that matches nothing is a
    one-line error naming it; a directory whose name holds `[` is read as it is."""
    import json

    for name in ["method=kif+replay,rho=0.1-seed1", "method=kif+replay,rho=0.1-seed0",
                 "method=seqft-seed0", "odd[1]"]:
        (tmp_path / name).mkdir()
        r = fake_results("x", 0, 0.1)
        r.update(name=name, experiences=[{}, {}], matrices={"train": [[1.0]], "test": [[1.0]]},
                 metrics={"train": {}, "test": {}})
        (tmp_path / name / "results.json").write_text(json.dumps(r))
    runs = load_runs([str(tmp_path / "method=kif+replay,rho=0.1-seed*")])
    assert [label for label, _ in runs] == ["method=kif+replay,rho=0.1-seed0",
                                            "method=kif+replay,rho=0.1-seed1"]
    assert [label for label, _ in load_runs([tmp_path / "odd[1]"])] == ["odd[1]"]
    with pytest.raises(RunDirError, match=r"method=sam\*: no run directory matches"):
        load_runs([str(tmp_path / "method=sam*")])


def fake_results(method, seed, mf, lr=1e-4):
    return {"method": method, "seed": seed, "complete": True,
            "config": {"name": "x", "seed": seed, "method": method, "output_dir": "runs",
                       "data": {"source": "concepts", "seed": seed}, "train": {"lr": lr}},
            "headline": {"MA": 1 - mf, "GA": 0.5, "MF": mf, "GF": 0.1},
            "matrices": {"train": [[1.0, None], [1 - mf, 1.0]]},
            "metrics": {"test": {"BWT": None, "FWT": None}},
            "timings": {"train_s": 1.0, "eval_s": 1.0}, "run": {"peak_memory_mb": 1.0}}


def test_runs_group_by_everything_but_their_seeds_and_pair_by_seed():
    from forgetless.report.compare import group_runs, paired_comparison

    runs = [(f"{m}-{s}", fake_results(m, s, mf)) for m, s, mf in [
        ("seqft", 0, 0.5), ("seqft", 1, 0.6), ("seqft", 2, 0.4),
        ("replay", 0, 0.3), ("replay", 1, 0.45), ("replay", 2, 0.3)]]
    groups = group_runs(runs)
    assert [g["label"] for g in groups] == ["seqft", "replay"]
    assert [len(g["runs"]) for g in groups] == [3, 3]
    (d,), warnings = paired_comparison(groups)
    assert not warnings and d["MF"]["test"] == "paired t" and d["MF"]["n"] == 3
    assert d["MF"]["mean"] == pytest.approx(-0.15) and d["MF"]["p"] == pytest.approx(0.035098, abs=1e-5)
    # no shared seed: Welch's test and a warning that says so
    other = [(f"lr-{s}", fake_results("seqft", s, mf, lr=3e-4)) for s, mf in [(5, 0.7), (6, 0.8)]]
    groups = group_runs(runs[:3] + other)
    assert [g["label"] for g in groups] == ["lr=0.0001", "lr=0.0003"]
    (d,), warnings = paired_comparison(groups)
    assert d["MF"]["test"] == "Welch t" and "share no seed: unpaired (Welch)" in warnings[0]


def test_forgetting_per_experience_is_paired_by_seed_experience_by_experience():
    """By hand: seqft forgets experiences 0 and 1 by (0.6, 0.3) and (0.8, 0.4) on seeds 0 and 1;
    kif by (0.2, 0.3) and (0.2, 0.4): its MF gain (−0.5 on experience 0) sits on experience 0
    alone (0.0 on experience 1). An arm trained jointly has no row; two experiences give none."""
    from forgetless.report import by_experience
    from forgetless.report.compare import group_runs

    def run(method, seed, per):
        r = fake_results(method, seed, 0.5)
        r["forgetting_per_experience"] = {"train": [*per, None]}
        return (f"{method}-{seed}", r)

    # 0.1 + 0.2 is 0.30000000000000004: kif − seqft on experience 1 is −3e-17, not 0
    runs = [run("seqft", 0, [0.6, 0.1 + 0.2]), run("seqft", 1, [0.8, 0.4]),
            run("kif", 0, [0.2, 0.3]), run("kif", 1, [0.2, 0.4]),
            run("multitask", 0, [None, None])]
    # seed 2 of seqft stopped after two experiences: what it forgot so far is left out
    label, unfinished = run("seqft", 2, [0.1, None])
    runs.append((label, {**unfinished, "complete": False}))
    table = by_experience.forgetting_by_experience(group_runs(runs))
    assert table["experiences"] == [0, 1]
    assert [g["label"] for g in table["groups"]] == ["seqft", "kif"]
    seqft = table["groups"][0]["per"]
    assert [d["mean"] for d in seqft] == [pytest.approx(0.7), pytest.approx(0.35)]
    (kif,) = table["differences"]
    assert kif["group"] == "kif" and kif["reference"] == "seqft"
    first, second = kif["per"]
    assert first["mean"] == pytest.approx(-0.5) and first["n"] == 2
    # differences −0.4 and −0.6: sd 0.1414, t(0.975, 1) = 12.706, half-width 1.2706
    assert first["ci_low"] == pytest.approx(-0.5 - 12.7062 * 0.1, abs=1e-3)
    assert -1e-16 < second["mean"] < 0 and second["p"] == 1.0
    rows = by_experience.rows(table)
    assert rows[0][:3] == ["seqft", "2", "70.0 [-57.1, 197.1]"]
    assert rows[-1][0] == "kif − seqft" and rows[-1][3] == "+0.0 [0.0, 0.0]"  # not "-0.0"
    two = [run("seqft", 0, [0.5]), run("kif", 0, [0.1])]
    assert by_experience.forgetting_by_experience(group_runs(two)) is None


def test_forgetting_by_age_pairs_the_drop_a_steps_after_learning_by_seed():
    """By hand, from 3-experience train matrices. seqft seed 0: age 1 drops 1.0−0.6 and 1.0−0.5
    (mean 0.45), age 2 drops 1.0−0.2 = 0.8; seed 1: (0.2 + 0.3)/2 = 0.25 and 0.4. kif: 0.1 and
    0.2 on both seeds. kif − seqft: age 1 −0.35, −0.15 (mean −0.25); age 2 −0.6, −0.2 (−0.4).
    A cell never scored is skipped; an arm trained jointly (one row) has no ages."""
    from forgetless.report import by_experience
    from forgetless.report.compare import group_runs

    def run(method, seed, matrix):
        r = fake_results(method, seed, 0.5)  # rows padded with None as results.json writes them
        r["matrices"] = {"train": [[*row, *[None] * (len(matrix[-1]) - len(row))]
                                   for row in matrix]}
        return (f"{method}-{seed}", r)

    at_age = by_experience.forgetting_at_age
    assert at_age({"matrices": {"train": [[1.0], [None, 0.8], [0.5, 0.6, 0.7]]}}, "train") \
        == [pytest.approx(0.2), pytest.approx(0.5)]
    assert at_age({"matrices": {"train": [[1.0]]}}, "train") == [] and at_age({}, "train") == []
    # experience 0 left out: age 1 is experience 1 alone (1.0 − 0.5 on seqft seed 0 below)
    assert at_age({"matrices": {"train": [[1.0], [0.6, 1.0], [0.2, 0.5, 0.9]]}}, "train", 1) \
        == [pytest.approx(0.5)]
    # relative: each drop over what was learned. Age 1: 0.25/0.5 and 0.5/1.0; age 2: 0.5/0.5.
    # An experience learned to 0 has no share to lose and is skipped (age 2 has none left).
    assert at_age({"matrices": {"train": [[0.5], [0.25, 1.0], [0.0, 0.5, 0.8]]}}, "train",
                  relative=True) == [pytest.approx(0.5), pytest.approx(1.0)]
    assert at_age({"matrices": {"train": [[0.0], [0.0, 0.8], [0.0, 0.4, 1.0]]}}, "train",
                  relative=True) == [pytest.approx(0.5), None]
    runs = [run("seqft", 0, [[1.0], [0.6, 1.0], [0.2, 0.5, 0.9]]),
            run("seqft", 1, [[0.8], [0.6, 0.9], [0.4, 0.6, 1.0]]),
            run("kif", 0, [[0.9], [0.8, 0.8], [0.7, 0.7, 0.8]]),
            run("kif", 1, [[0.8], [0.7, 0.9], [0.6, 0.8, 0.9]]),
            run("multitask", 0, [[0.9, 0.9, 0.9]])]
    table = by_experience.forgetting_by_age(group_runs(runs))
    assert table["ages"] == [1, 2] and table["experiences"] == [2, 1]
    assert [g["label"] for g in table["groups"]] == ["seqft", "kif"]
    assert [d["mean"] for d in table["groups"][0]["per"]] == [pytest.approx(0.35),
                                                              pytest.approx(0.6)]
    (kif,) = table["differences"]
    assert [d["mean"] for d in kif["per"]] == [pytest.approx(-0.25), pytest.approx(-0.4)]
    assert [d["n"] for d in kif["per"]] == [2, 2]
    # differences −0.35 and −0.15: sd 0.1414, half-width 12.706 · 0.1
    assert kif["per"][0]["ci_high"] == pytest.approx(-0.25 + 12.7062 * 0.1, abs=1e-3)
    assert by_experience.header(table) == ["group", "n", "1 later, 2 exps", "2 later, 1 exp"]
    assert by_experience.rows(table)[-1][:3] == ["kif − seqft", "2", "-25.0 [-152.1, 102.1]"]
    two = [run("seqft", 0, [[1.0], [0.5, 1.0]]), run("kif", 0, [[1.0], [0.9, 1.0]])]
    assert by_experience.forgetting_by_age(group_runs(two)) is None
    assert by_experience.forgetting_by_age(group_runs(runs), first=1) is None  # one age left
    # relative, seqft seed 0 age 1: (0.4/1.0 + 0.5/1.0)/2 = 0.45; seed 1: (0.2/0.8 + 0.3/0.9)/2
    share = by_experience.forgetting_by_age(group_runs(runs), relative=True)
    assert share["relative"] and table["relative"] is False
    assert share["groups"][0]["per"][0]["mean"] == pytest.approx((0.45 + (0.25 + 1 / 3) / 2) / 2)


def test_figures_draw_one_mean_per_arm_cell_by_cell():
    """By hand: seqft seeds 0 and 1 end with R[1][0] = 0.5 and 0.3 (mean 0.4); seed 2 stopped
    after experience 0, so its matrix has one row and row 1 is the mean of two runs. Forgetting
    of experience 0: 0.5 and 0.7 (mean 0.6); None and the short list count for nothing."""
    from forgetless.report.compare import group_runs, mean_by_position, per_arm

    def run(method, seed, matrix, forgetting):
        r = fake_results(method, seed, 0.5)
        r["matrices"] = {"train": matrix, "test": matrix}
        r["forgetting_per_experience"] = {"train": forgetting, "test": forgetting}
        return (f"{method}-{seed}", r)

    runs = [run("seqft", 0, [[1.0, None], [0.5, 1.0]], [0.5, None]),
            run("seqft", 1, [[0.8, None], [0.3, 0.9]], [0.7, None]),
            run("seqft", 2, [[0.6, None]], []),
            run("replay", 0, [[1.0, None], [0.9, 1.0]], [0.1, None])]
    (seqft, mean), (replay, one) = per_arm(group_runs(runs))
    assert (seqft, replay) == ("seqft (mean of 3)", "replay")
    assert mean["matrices"]["train"] == [[pytest.approx(0.8), None],
                                         [pytest.approx(0.4), pytest.approx(0.95)]]
    assert mean["forgetting_per_experience"]["test"] == [pytest.approx(0.6), None]
    assert one["matrices"]["train"] == [[1.0, None], [0.9, 1.0]]
    assert mean_by_position([]) == [] and mean_by_position([[None], [2.0, 4.0]]) == [2.0, 4.0]


def test_scatter_names_each_run_or_colours_each_group():
    from forgetless.report import plots

    fig, (one, grouped) = plots.figure(6, 3, 2)
    xs, ys, runs = [1.0, 2.0, 3.0], [3.0, 2.0, 1.0], ["seqft-0", "seqft-1", "kif-0"]
    plots.scatter_labelled(one, xs, ys, runs)
    assert [t.get_text() for t in one.texts] == runs and one.get_legend() is None
    plots.scatter_labelled(grouped, xs, ys, runs, ["seqft", "seqft", "kif"])
    assert not grouped.texts
    assert [t.get_text() for t in grouped.get_legend().get_texts()] == ["seqft", "kif"]
    sizes = [len(c.get_offsets()) for c in grouped.collections]
    assert sizes == [2, 1]
    assert len({tuple(c.get_facecolor()[0]) for c in grouped.collections}) == 2
    assert len(plots.colors(11)) == 11 and len(set(plots.colors(11))) == 11
    # a panel without seqft's points keeps kif's colour from the palette
    fig2, (alone,) = plots.figure(3, 3)
    palette = {"seqft": "red", "kif": "blue"}
    plots.scatter_labelled(alone, [1.0], [1.0], ["kif-0"], ["kif"], palette)
    assert tuple(alone.collections[0].get_facecolor()[0]) == (0.0, 0.0, 1.0, 1.0)
    plots.close(fig)
    plots.close(fig2)


def test_learning_accuracy_is_blank_for_a_run_trained_jointly_even_one_written_before():
    """A multitask results.json from before its LA was blanked: the diagonal holds only the last
    experience (0.9 here), which is not how the experiences were learned."""
    from forgetless.report.compare import run_row

    sequential = fake_results("seqft", 0, 0.5)
    assert run_row("s", sequential)["LA_train"] == pytest.approx(1.0)
    joint = {**fake_results("multitask", 0, 0.0),
             "matrices": {"train": [[None, None], [0.95, 0.9]]},
             "experiences": [{"experience": 0, "joint": True}, {"experience": 1}]}
    assert run_row("m", joint)["LA_train"] is None


def test_runs_from_different_machines_are_flagged_in_the_comparison():
    from forgetless.report.compare import group_runs, paired_comparison

    def on(cpu, threads, results):
        results["run"]["machine"] = {"cpu": cpu, "cpu_capability": "AVX2", "threads": threads,
                                     "gpu": None}
        return results

    same = [(f"{m}-{s}", on("EPYC", 2, fake_results(m, s, 0.5))) for m in ("seqft", "replay")
            for s in (0, 1, 2)]
    assert paired_comparison(group_runs(same))[1] == []
    mixed = [*same[:5], ("replay-2", on("EPYC", 1, fake_results("replay", 2, 0.5)))]
    (warning,) = paired_comparison(group_runs(mixed))[1]
    assert warning.startswith("the runs ran on 2 machines (5 on EPYC (AVX2, 2 threads); 1 on "
                              "EPYC (AVX2, 1 thread)), and some pairs span two (replay seed 2)")
    # every seed's pair on one machine (seed 2 of both arms on the other): compared fairly, and
    # said so, since each group's mean mixes the machines
    xeon = [(f"{m}-2", on("Xeon", 2, fake_results(m, 2, 0.5))) for m in ("seqft", "replay")]
    per_pair = [same[0], same[1], xeon[0], same[3], same[4], xeon[1]]
    (note,) = paired_comparison(group_runs(per_pair))[1]
    assert note == ("the runs ran on 2 machines (4 on EPYC (AVX2, 2 threads); 2 on Xeon (AVX2, "
                    "2 threads)); every pair compared ran on one machine, but a group's mean "
                    "mixes machines")
    # a run resumed on another machine is named apart, with its machines in order
    resumed = on("EPYC", 2, fake_results("replay", 2, 0.5))
    resumed["run"]["machines"] = [{**resumed["run"]["machine"], "threads": 1},
                                  resumed["run"]["machine"]]
    (moved,) = paired_comparison(group_runs([*same[:5], ("replay-2", resumed)]))[1]
    assert moved == ("replay-2 trained on 2 machines across its sessions (EPYC (AVX2, 1 thread) "
                     "then EPYC (AVX2, 2 threads)): resumed on another processor or thread "
                     "count, its numbers are no one machine's; run it again on one")
    # one seed twice in an arm (the same run passed twice, or a seed from two machines) would
    # pair only one of them: refused, naming the runs
    with pytest.raises(RunDirError, match=r"compare: runs replay-1, replay-1-xeon have the same "
                                          r"config and seed 1; pass one run per config and seed "
                                          r"\(their numbers differ, MF seed 1 50.0, 40.0: another"):
        group_runs([*same, ("replay-1-xeon", on("Xeon", 2, fake_results("replay", 1, 0.4)))])
    # ... and says whether it is the same run again, seed by seed (seed 1's two runs alike,
    # seed 2's two alike, though the seeds differ from each other)
    again = [*same[:5], ("replay-2", fake_results("replay", 2, 0.3)),
             ("replay-1b", fake_results("replay", 1, 0.5)), ("replay-2b", fake_results("replay", 2, 0.3))]
    with pytest.raises(RunDirError, match=r"seed 1, 2; pass one run per config and seed \(their "
                                          r"accuracy matrices and epoch losses are identical: "
                                          r"the run reproduced"):
        group_runs(again)
    # the same matrices (counts a small stream can repeat by chance) with other losses: differ
    trained = [(label, {**r, "experiences": [{"epoch_losses": [0.25]}]}) for label, r in again]
    trained[-1][1]["experiences"] = [{"epoch_losses": [0.2500001]}]
    with pytest.raises(RunDirError, match=r"MF seed 1 50.0, 50.0; seed 2 30.0, 30.0: another"):
        group_runs(trained)
    with pytest.raises(RunDirError, match=r"MF seed 1 50.0, 50.0; seed 2 50.0, 30.0: another"):
        group_runs([*same, ("replay-1b", fake_results("replay", 1, 0.5)),
                    ("replay-2b", fake_results("replay", 2, 0.3))])
    # runs from before the machine was recorded are not counted
    old = [*same[:5], ("replay-2", fake_results("replay", 2, 0.5))]
    assert paired_comparison(group_runs(old))[1] == []


def test_reports_embed_only_landscape_plots_they_wrote(tmp_path):
    from forgetless.report.run_html import landscape_plot
    from forgetless.report.tables import md

    (tmp_path / "secret.txt").write_text("password")
    run = tmp_path / "run"
    (run / "landscape").mkdir(parents=True)
    png = b"\x89PNG\r\n\x1a\n" + b"0" * 16
    (run / "landscape" / "a.png").write_bytes(png)
    (run / "landscape" / "fake.png").write_bytes(b"not a png")
    assert landscape_plot(run, "landscape/a.png") == (run / "landscape" / "a.png").resolve()
    for name in ["../secret.txt", "landscape/../../secret.txt", "landscape/fake.png",
                 str(tmp_path / "secret.txt"), None, "landscape/missing.png"]:
        assert landscape_plot(run, name) is None, name
    assert md("a|b *c* [d](e) `f`") == r"a\|b \*c\* \[d\](e) \`f\`"


def test_a_name_with_dollar_signs_is_drawn_as_text():
    from forgetless.report import plots

    fig = plots.matrices_figure([("run$x^2$-$", {"matrices": {"train": [[0.5]], "test": [[0.25]]}})])
    fig.canvas.draw()  # mathtext would fail on the unbalanced "$" (or render x²)
    assert fig.axes[0].get_title() == "run$x^2$-$\ntrain (memorization)"
    plots.close(fig)


def test_recovery_is_compared_where_runs_measured_it():
    """`won back` (recovered − final, train, pooled) is a paired column only when some run has
    the recovery probe; by hand: seqft wins back 0.2, 0.1, 0.3; freeze 0.0 each → −0.2."""
    from forgetless.report.compare import (
        diff_header,
        difference_table,
        group_runs,
        paired_comparison,
        recovery_gain,
    )

    def with_recovery(r, final, recovered):
        row = {"experience": 0, "split": "train", "n": 4, "learned": 1.0, "final": final,
               "recovered": recovered, "control": 0.0}
        return {**r, "recovery": {"rows": [row]}}

    plain = [(f"seqft-{s}", fake_results("seqft", s, 0.5)) for s in range(3)]
    (d,), _ = paired_comparison(group_runs(plain + [
        (f"freeze-{s}", fake_results("freeze", s, 0.4)) for s in range(3)]))
    assert "recovery_gain" not in d and "won back" not in diff_header([d])

    runs = [(f"seqft-{s}", with_recovery(fake_results("seqft", s, 0.5), 0.5, 0.5 + g))
            for s, g in enumerate([0.2, 0.1, 0.3])]
    runs += [(f"freeze-{s}", with_recovery(fake_results("freeze", s, 0.4), 0.6, 0.6))
             for s in range(3)]
    assert recovery_gain(runs[0][1]) == pytest.approx(0.2)
    (d,), _ = paired_comparison(group_runs(runs))
    assert d["recovery_gain"]["mean"] == pytest.approx(-0.2) and d["recovery_gain"]["n"] == 3
    assert diff_header([d])[-1] == "won back"
    assert difference_table([d])[0][-1].startswith("-20.0 [")


def test_tables_after_every_experience_figures_every_30_s_from_the_start_and_at_the_end(
        monkeypatch, tmp_path):
    from forgetless.core.events import ExperienceDone, RunStarted
    from forgetless.report import callbacks

    rendered, clock = [], [100.0]
    monkeypatch.setattr(callbacks, "render", lambda store, results, quiet, figures=True:
                        rendered.append((results["after"], quiet, figures)))
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: clock[0])
    writer = callbacks.ReportWriter()
    writer.on_run_start(RunStarted(run_dir=tmp_path, config=None, n_experiences=5,
                                   resumed_after=-1))
    for e, now in enumerate([110.0, 129.9, 130.0, 131.0, 160.0]):
        clock[0] = now
        writer.on_experience_done(ExperienceDone(e, 5, [0.1], {"after": e}))
    writer.on_run_end({"after": "end"})
    assert rendered == [(0, True, False), (1, True, False), (2, True, True), (3, True, False),
                        (4, True, True), ("end", False, True)]
    # a run that ends within 30 s draws once, at the end
    rendered.clear()
    writer.on_run_start(RunStarted(run_dir=tmp_path, config=None, n_experiences=2,
                                   resumed_after=-1))
    for e in range(2):
        clock[0] += 5
        writer.on_experience_done(ExperienceDone(e, 2, [0.1], {"after": e}))
    writer.on_run_end({"after": "end"})
    assert [figures for *_, figures in rendered] == [False, False, True]



def test_runs_written_by_an_older_version_group_with_todays():
    """A run saved before a key existed (model.dtype), or with a resume-neutral (recovery) or
    inert setting changed, is the same arm: its config is read with today's defaults, as
    `matches_saved` reads a run directory's. A setting that changes results still splits."""
    from forgetless.report.compare import group_runs

    old = fake_results("seqft", 0, 0.5)
    new = fake_results("seqft", 1, 0.4)
    new["config"] |= {"model": {"dtype": "fp32"},
                      "eval": {"recovery": {"enabled": True, "experiences": [0]}},
                      "probe": {"qa": False, "qa_questions": 7}}
    old["config"]["probe"] = {"qa": False}
    assert [len(g["runs"]) for g in group_runs([("old", old), ("new", new)])] == [2]
    other = fake_results("seqft", 2, 0.4)
    other["config"]["train"] = {"lr": 3e-4}
    assert [len(g["runs"]) for g in group_runs([("old", old), ("other", other)])] == [1, 1]


def test_an_arm_without_forgetting_counts_its_seeds_and_is_warned_on_its_accuracy():
    """Multitask trains all experiences at once: no MF, no learning accuracy. Its comparison
    still rests on its paired MA seeds, and the few-seeds warning names MA, not 'MF: n = 0'."""
    from forgetless.core.stats import compared_seeds
    from forgetless.report.compare import (
        difference_table,
        group_runs,
        headline_note,
        paired_comparison,
    )

    def joint(seed, ma):
        r = fake_results("multitask", seed, 0.0)
        r["headline"] = {"MA": ma, "GA": 0.6, "MF": None, "GF": None}
        r["matrices"] = {"train": [[None, None], [ma, ma]]}
        r["experiences"] = [{"experience": 0, "joint": True}, {"experience": 1}]
        return r

    seqft = [(f"seqft-{s}", fake_results("seqft", s, mf)) for s, mf in [(0, 0.5), (1, 0.6), (2, 0.4)]]
    two = [(f"mt-{s}", joint(s, ma)) for s, ma in [(0, 0.9), (1, 0.95)]]
    (d,), _ = paired_comparison(group_runs(seqft + two))
    assert d["MF"]["n"] == 0 and d["LA_train"]["n"] == 0 and d["MA"]["n"] == 2
    assert compared_seeds(d, d["keys"]) == 2 and difference_table([d])[0][1] == "2"
    (note,) = headline_note(d)
    assert note.startswith("multitask vs seqft, MA: n = 2 seeds — an anecdote")
    three = [*two, ("mt-2", joint(2, 0.92))]
    (d,), _ = paired_comparison(group_runs(seqft + three))
    assert compared_seeds(d, d["keys"]) == 3 and headline_note(d) == []  # MA +0.42, interval clear of 0
    # an arm with forgetting is still judged on MF
    replay = [(f"replay-{s}", fake_results("replay", s, 0.45)) for s in (0, 1)]
    (d,), _ = paired_comparison(group_runs(seqft + replay))
    assert headline_note(d)[0].startswith("replay vs seqft, MF: n = 2 seeds")


def test_less_forgetting_from_learning_less_is_named():
    """seqft learns 1.0 and loses 0.5, 0.6, 0.4 of it; the arm learns half as much (0.5, 0.55,
    0.5) and loses 0.55, 0.55, 0.45 of that: MF is lower on every seed (−0.225, −0.2975,
    −0.175), the share lost is not (+0.05, −0.05, +0.05), and it learned less."""
    from forgetless.report.compare import group_runs, headline_note, paired_comparison

    def lazy(seed, la, share):
        r = fake_results("kif", seed, la * share)
        r["matrices"] = {"train": [[la, None], [la * (1 - share), la]]}
        return (f"kif-{seed}", r)

    seqft = [(f"seqft-{s}", fake_results("seqft", s, mf)) for s, mf in [(0, 0.5), (1, 0.6), (2, 0.4)]]
    arm = [lazy(0, 0.5, 0.55), lazy(1, 0.55, 0.55), lazy(2, 0.5, 0.45)]
    (d,), _ = paired_comparison(group_runs(seqft + arm))
    assert d["MF"]["ci_high"] < 0 and d["MF_relative"]["mean"] == pytest.approx(0.05 / 3)
    (note,) = headline_note(d)
    assert note == ("kif vs seqft: MF is lower, but MF as a share of what was learned is not "
                    "established (its interval includes 0) and the arm learned less: it may forget "
                    "less because it learned less")
    # an arm that loses a smaller share too gets no such note
    keeps = [lazy(0, 1.0, 0.2), lazy(1, 1.0, 0.25), lazy(2, 1.0, 0.15)]
    (d,), _ = paired_comparison(group_runs(seqft + keeps))
    assert headline_note(d) == []


def test_an_unfinished_run_is_shown_and_left_out_of_every_paired_difference():
    """Seed 2 of kif stopped after its first experience (learned 0.2 so far, no headline). Its
    learning accuracy over that one step must not pair with seqft's over the whole stream: by
    hand, learned kif − seqft over seeds 0–1 is (0.9 − 1.0 + 0.8 − 1.0)/2 = −0.15, n = 2, the
    same n as MF; with seed 2 it would be n = 3."""
    from forgetless.report.compare import group_runs, paired_comparison, run_notes, run_row

    def run(method, seed, diagonal):
        r = fake_results(method, seed, 0.5)
        r["matrices"] = {"train": [[diagonal, None], [0.5, diagonal]]}
        return f"{method}-{seed}", r

    unfinished = fake_results("kif", 2, 0.5)
    unfinished.update(complete=False, completed_experiences=1,
                      headline={"MA": None, "GA": None, "MF": None, "GF": None},
                      matrices={"train": [[0.2, None]]},
                      metrics={"test": {"BWT": -0.1, "FWT": None}})
    runs = [run("seqft", s, 1.0) for s in (0, 1, 2)] + [run("kif", 0, 0.9), run("kif", 1, 0.8),
                                                        ("kif-2", unfinished)]
    assert run_row("kif-2", unfinished)["LA_train"] is None
    assert run_row("kif-2", unfinished)["BWT_test"] is None
    (d,), _ = paired_comparison(group_runs(runs))
    assert d["LA_train"]["n"] == d["MF"]["n"] == 2
    assert d["LA_train"]["mean"] == pytest.approx(-0.15)
    assert run_notes(runs) == ["kif-2: unfinished (1 experience done): shown, left out of the "
                               "statistics"]


def test_a_note_shared_by_runs_is_said_once_with_their_labels():
    from forgetless.report.compare import run_notes

    def audited(label, oracle):
        r = fake_results("seqft", 0, 0.5)
        r["audit"] = {"relation_majority_experience": oracle}
        return label, r

    notes = run_notes([audited("a", 0.708), audited("b", 0.708), audited("c", 0.01),
                       audited("d", 0.9)])
    assert len(notes) == 2
    assert notes[0].startswith("2 runs (a, b): a guess that ignores the concept") and "70.8 %" in notes[0]
    assert notes[1].startswith("d: a guess") and "90.0 %" in notes[1]
    # shared by all of them: said as every run's, without the list of labels
    notes = run_notes([audited("a", 0.708), audited("b", 0.708), audited("c", 0.708)])
    assert notes == [notes[0]] and notes[0].startswith("every run (3): a guess that ignores")


def test_groups_of_one_method_that_differ_in_its_options_get_different_labels():
    """seqft, kif and kif's ½-merge control: kif's option sets its two groups apart, and seqft,
    which has no kif options, is labelled by its method alone."""
    from forgetless.report.compare import group_runs

    def kif(seed, fusion):
        r = fake_results("kif", seed, 0.3)
        r["config"]["kif"] = {"fusion": fusion}
        return r

    runs = [("seqft", fake_results("seqft", 0, 0.5)), ("kif", kif(0, "hard")),
            ("control", kif(0, "average"))]
    assert [g["label"] for g in group_runs(runs)] == ["seqft", "kif fusion=hard",
                                                      "kif fusion=average"]


def test_groups_that_differ_only_past_the_third_setting_still_get_different_labels():
    """A grid over four settings: labels name at most three, and where two groups would read
    alike they are labelled by every setting that differs."""
    from forgetless.report.compare import group_runs

    def arm(batch_size, epochs, lr, weight_decay):
        r = fake_results("seqft", 0, 0.5, lr=lr)
        r["config"]["train"].update(batch_size=batch_size, epochs=epochs, weight_decay=weight_decay)
        return r

    runs = [("a", arm(8, 5, 1e-4, 0.0)), ("b", arm(8, 5, 1e-4, 0.1)), ("c", arm(16, 10, 3e-4, 0.0))]
    assert [g["label"] for g in group_runs(runs)] == [
        "train.batch_size=8 train.epochs=5 train.lr=0.0001 train.weight_decay=0.0",
        "train.batch_size=8 train.epochs=5 train.lr=0.0001 train.weight_decay=0.1",
        "batch_size=16 epochs=10 lr=0.0003"]


def test_a_flatness_option_names_no_group_that_records_no_flatness():
    """Two studies set `landscape.examples` differently with flatness off: it changes nothing, so
    replay and kif are labelled by their methods alone. Where it is all that differs, it still
    tells the groups apart; where flatness is recorded, it names the group."""
    from forgetless.report.compare import group_runs

    def arm(method, examples, record=False):
        r = fake_results(method, 0, 0.3)
        r["config"]["landscape"] = {"record": record, "examples": examples}
        return r

    runs = [("replay", arm("replay", 16)), ("kif", arm("kif", 32))]
    assert [g["label"] for g in group_runs(runs)] == ["replay", "kif"]
    runs = [("a", arm("replay", 16)), ("b", arm("replay", 32))]
    assert [g["label"] for g in group_runs(runs)] == ["landscape.examples=16",
                                                      "landscape.examples=32"]
    runs = [("a", arm("sam", 16, record=True)), ("b", arm("sam", 32, record=True))]
    assert [g["label"] for g in group_runs(runs)] == ["examples=16", "examples=32"]


def write_three_step_run(folder, method, seed, matrix, forgetting, **more):
    """A finished run of 3 experiences in folder/<method>-<seed>, its train and test matrix
    `matrix`, its forgetting per experience `forgetting`; `more`: further results.json keys."""
    import json

    r = fake_results(method, seed, 0.3)
    r.update(name=f"{method}-{seed}", experiences=[{}, {}, {}],
             matrices={"train": matrix, "test": matrix},
             metrics={"train": {}, "test": {"BWT": None, "FWT": None}},
             forgetting_per_experience={"train": forgetting}, **more)
    d = folder / f"{method}-{seed}"
    d.mkdir()
    (d / "results.json").write_text(json.dumps(r))
    return d


def test_compare_writes_both_tables_by_age(tmp_path):
    """compare.md, compare.html and compare.json carry the table by age in points and as a share
    of what was learned (3 experiences, two arms, two seeds each)."""

    from forgetless.report.compare import compare

    dirs = [write_three_step_run(tmp_path, method, seed, matrix, [0.4, 0.3, None])
            for method, seed, matrix in [
                ("seqft", 0, [[1.0, None, None], [0.6, 1.0, None], [0.2, 0.5, 0.9]]),
                ("seqft", 1, [[0.8, None, None], [0.6, 0.9, None], [0.4, 0.6, 1.0]]),
                ("kif", 0, [[0.9, None, None], [0.8, 0.8, None], [0.7, 0.7, 0.8]]),
                ("kif", 1, [[0.8, None, None], [0.7, 0.9, None], [0.6, 0.8, 0.9]])]]
    summary = compare(dirs, tmp_path / "cmp")
    points, share = summary["forgetting_by_age"], summary["forgetting_by_age_relative"]
    assert not points["relative"] and share["relative"]
    # seqft seed 0, age 2: 1.0 − 0.2 in points, the same over R[0][0] = 1.0 as a share; seed 1:
    # 0.8 − 0.4 = 0.4 in points, 0.5 as a share
    assert points["groups"][0]["per"][1]["mean"] == pytest.approx(0.6)
    assert share["groups"][0]["per"][1]["mean"] == pytest.approx(0.65)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## Forgetting by age, paired" in md
    assert "## Forgetting by age as a share of what was learned, paired" in md
    html = (tmp_path / "cmp" / "compare.html").read_text()
    assert "(R[j][j] − R[j+a][j]) / R[j][j]" in html


def test_compare_at_another_level_says_so_everywhere(tmp_path):
    """`compare(level=0.975)`: the paired interval by hand (MF diffs −0.2 and −0.1, mean −0.15,
    sd 0.070711: half-width t(0.9875, 1)·0.070711/√2 = 25.4517·0.05 = 1.27258), compare.json
    records the level, and no note in compare.md or compare.html still says 95 %."""
    import json

    from forgetless.report.compare import compare

    matrix = [[1.0, None, None], [0.6, 1.0, None], [0.2, 0.5, 0.9]]
    dirs = [write_three_step_run(tmp_path, method, seed, matrix, [0.8, 0.5, None],
                                 headline={"MA": 0.5, "GA": 0.5, "MF": mf, "GF": 0.1})
            for method, seed, mf in [("seqft", 0, 0.5), ("seqft", 1, 0.6), ("kif", 0, 0.3),
                                     ("kif", 1, 0.5)]]
    summary = compare(dirs, tmp_path / "cmp", level=0.975)
    assert summary["level"] == 0.975
    assert json.loads((tmp_path / "cmp" / "compare.json").read_text())["level"] == 0.975
    mf = summary["differences"][0]["MF"]
    assert mf["mean"] == pytest.approx(-0.15)
    assert mf["ci_high"] - mf["mean"] == pytest.approx(25.451699579 * 0.05)
    for name in ("compare.md", "compare.html"):
        text = (tmp_path / "cmp" / name).read_text()
        assert "97.5 % CI" in text and "95 %" not in text
    assert "95 % CI" in (compare(dirs, tmp_path / "default") and
                         (tmp_path / "default" / "compare.md").read_text())


def test_flatness_is_compared_where_runs_recorded_it():
    """With `landscape.record`, mean ρ-sharpness and mean top eigenvalue over the steps pair by
    seed like MF; by hand: seqft's sharpness means 0.3, 0.2, 0.4 and sam's 0.1 each → −0.2;
    eigenvalues (10 + 20)/2 = 15 against 5 → −10 on every seed. Without a record: no column."""
    from forgetless.report.compare import diff_header, group_runs, paired_comparison

    def with_flatness(r, sharpness, eigenvalues):
        pairs = enumerate(zip(sharpness, eigenvalues, strict=True))
        rows = [{"after": j, "experience": j, "loss": 0.1, "rho": 0.05, "sharpness": s,
                 "top_eigenvalue": ev} for j, (s, ev) in pairs]
        return {**r, "flatness": rows}

    plain = [(f"{m}-{s}", fake_results(m, s, 0.5)) for m in ("seqft", "sam") for s in range(3)]
    (d,), _ = paired_comparison(group_runs(plain))
    assert "sharpness_mean" not in d and "top_eigenvalue_mean" not in d
    runs = [(f"seqft-{s}", with_flatness(fake_results("seqft", s, 0.5), [m - 0.1, m + 0.1],
                                         [10.0, 20.0])) for s, m in enumerate([0.3, 0.2, 0.4])]
    runs += [(f"sam-{s}", with_flatness(fake_results("sam", s, 0.5), [0.1, 0.1], [5.0, None]))
             for s in range(3)]
    (d,), _ = paired_comparison(group_runs(runs))
    assert d["sharpness_mean"]["mean"] == pytest.approx(-0.2) and d["sharpness_mean"]["n"] == 3
    assert d["top_eigenvalue_mean"]["mean"] == pytest.approx(-10.0)
    assert diff_header([d])[-2:] == ["sharpness (mean)", "top eigenvalue (mean)"]
    # wall time is the method's: the flatness measurement (inside evaluation) is left out
    from forgetless.report.compare import run_row

    timed = {**runs[0][1], "timings": {"train_s": 2.0, "eval_s": 5.0, "landscape_s": 3.0}}
    assert run_row("seqft-0", timed)["wall_s"] == 4.0


def test_compare_pairs_flatness_experience_by_experience(tmp_path):
    """Where runs recorded flatness, compare adds a paired table per measure, experience by
    experience. By hand: seqft's ρ-sharpness after experiences 0–2 is (0.3, 0.1, 0.2) and
    (0.5, 0.3, 0.2) on seeds 0 and 1, sam's (0.1, 0.1, 0.1) and (0.3, 0.1, 0.0): seqft's mean
    after experience 0 is 0.4, sam − seqft −0.2 there and −0.1 after experience 1; eigenvalues
    10 against 4 everywhere → −6."""
    import json

    from forgetless.report.compare import compare

    matrix = [[1.0, None, None], [0.6, 1.0, None], [0.2, 0.5, 0.9]]
    dirs = [write_three_step_run(
                tmp_path, method, seed, matrix, [0.8, 0.5, None],
                # stored out of order: the table follows `after`
                flatness=[{"after": j, "experience": j, "loss": 0.1, "rho": 0.05, "sharpness": s,
                           "top_eigenvalue": eigenvalue} for j, s in enumerate(sharpness)][::-1])
            for method, seed, sharpness, eigenvalue in [("seqft", 0, [0.3, 0.1, 0.2], 10.0),
                                                        ("seqft", 1, [0.5, 0.3, 0.2], 10.0),
                                                        ("sam", 0, [0.1, 0.1, 0.1], 4.0),
                                                        ("sam", 1, [0.3, 0.1, 0.0], 4.0)]]
    summary = compare(dirs, tmp_path / "cmp")
    sharp, eig = summary["sharpness_by_experience"], summary["top_eigenvalue_by_experience"]
    assert sharp["experiences"] == [0, 1, 2] and sharp["groups"][0]["per"][0]["mean"] == pytest.approx(0.4)
    (d,) = sharp["differences"]
    assert [x["mean"] for x in d["per"]] == pytest.approx([-0.2, -0.1, -0.15])
    assert [x["mean"] for x in eig["differences"][0]["per"]] == pytest.approx([-6.0] * 3)
    md = (tmp_path / "cmp" / "compare.md").read_text()
    assert "## ρ-sharpness after each experience, paired" in md
    assert "## Top Hessian eigenvalue after each experience, paired" in md
    assert "| sam − seqft | 2 | -0.2000 [" in md  # flatness as measured, not in %
    assert "the curvature at the point" in (tmp_path / "cmp" / "compare.html").read_text()
    # eigenvalue vs forgetting: by hand, x = 10 (seqft) or 4 (sam) and y = 0.8 or 0.5 (every
    # run forgot experiences 0 and 1 alike): 8 points, no covariance → r = 0
    eig_corr = summary["sharpness_forgetting"]["top_eigenvalue"]["experiences"]
    assert eig_corr["n"] == 8 and eig_corr["pearson"] == pytest.approx(0.0, abs=1e-12)
    assert "The same for the top Hessian eigenvalue:" in md
    assert "sharpness_by_experience" in compare(dirs[:1] + dirs[2:3], tmp_path / "one")  # n = 1
    # without a record there is no such table
    for d in dirs:
        r = json.loads((d / "results.json").read_text())
        r["flatness"] = []
        (d / "results.json").write_text(json.dumps(r))
    assert "sharpness_by_experience" not in compare(dirs, tmp_path / "none")


def test_eigenvalue_estimates_that_did_not_settle_are_marked_and_counted(tmp_path):
    """A power iteration that ran out of steps gives a lower bound: tables show it as "≥ x" and
    compare counts such estimates per arm. Rows written before `settled` was recorded count as
    unsettled where they stopped at the run's cap (`landscape.hessian_iters`). By hand: seqft's
    rows stopped at 10, 4 and 10 of 10 steps → 2 of 3; sam's say settled, not, settled → 1 of 3."""
    import json

    from forgetless.report.compare import compare
    from forgetless.report.summary import _md_flatness
    from forgetless.report.tables import eigenvalue_settled, eigenvalue_text

    assert eigenvalue_settled({"top_eigenvalue": 3.0, "settled": False}) is False
    assert eigenvalue_settled({"top_eigenvalue": 3.0, "iterations": 10}, 10) is False
    assert eigenvalue_settled({"top_eigenvalue": 3.0, "iterations": 6}, 10) is True
    assert eigenvalue_settled({"top_eigenvalue": 3.0, "iterations": 10}) is None  # cap unknown
    assert eigenvalue_settled({"sharpness": 0.1}) is None
    assert eigenvalue_text({"top_eigenvalue": 3.0, "settled": False}) == "≥ 3.00"
    assert eigenvalue_text({"top_eigenvalue": 3.0, "settled": True}) == "3.00"
    assert eigenvalue_text({}) == "-"

    matrix = [[1.0, None, None], [0.6, 1.0, None], [0.2, 0.5, 0.9]]
    seqft = [{"after": j, "experience": j, "loss": 0.1, "rho": 0.05, "sharpness": 0.1,
              "top_eigenvalue": 5.0, "iterations": it} for j, it in enumerate([10, 4, 10])]
    sam = [{"after": j, "experience": j, "loss": 0.1, "rho": 0.05, "sharpness": 0.1,
            "top_eigenvalue": 9.0, "iterations": 10, "settled": ok}
           for j, ok in enumerate([True, False, True])]
    dirs = []
    for method, rows in [("seqft", seqft), ("sam", sam)]:
        d = write_three_step_run(tmp_path, method, 0, matrix, [0.8, 0.5, None], flatness=rows)
        r = json.loads((d / "results.json").read_text())
        r["config"]["landscape"] = {"record": True, "hessian_iters": 10}
        (d / "results.json").write_text(json.dumps(r))
        dirs.append(d)
    summary = compare(dirs, tmp_path / "cmp")
    assert summary["top_eigenvalue_by_experience"]["unsettled"] == [
        {"label": "seqft", "estimates": 3, "unsettled": 2},
        {"label": "sam", "estimates": 3, "unsettled": 1}]
    assert "seqft 2 of 3; sam 1 of 3." in (tmp_path / "cmp" / "compare.md").read_text()
    lines = _md_flatness(seqft, None, 10)
    assert [ln.split(" | ")[4] for ln in lines if ln.startswith("| 0 ") or ln.startswith("| 1 ")] \
        == ["≥ 5.00", "5.00"]
    assert "lower bound" in lines[-1]
    assert not any("lower bound" in ln for ln in _md_flatness(seqft, None, None))
