"""`forgetless compare RUN_DIR…`: one table, plots and an HTML page across runs.

Reads each run's results.json (nothing is re-run). Writes into the output directory:
compare.json (the table and correlations), compare.md, compare.html (self-contained) and the
PNGs: accuracy matrices, forgetting per experience, accuracy vs forgetting, cost vs forgetting
(Pareto front by wall time and by peak memory) and, where runs recorded flatness
(`landscape.record: true`), sharpness vs forgetting with its correlation.
"""

from __future__ import annotations

import glob
import json
from pathlib import Path

import numpy as np

from forgetless.core.config import flatten, saved_results_keys
from forgetless.core.diagnostics import comparison_notes, diagnose
from forgetless.core.errors import ConfigError, RunDirError
from forgetless.core.metrics import learning_accuracy, pooled_recovery, relative_forgetting
from forgetless.core.quantities import quantity
from forgetless.core.results import machine_words, trained_jointly
from forgetless.core.stats import (
    LEVEL,
    compared_seeds,
    describe,
    difference_text,
    interval_level,
    interval_text,
    level_text,
    paired,
    welch,
)
from forgetless.core.store import RunStore, check_writable, write_files
from forgetless.report import by_experience, plots
from forgetless.report import html as H
from forgetless.report.tables import md

ROW_QUANTITIES = ["MA", "GA", "MF", "GF", "BWT_test", "sample_nll_rise", "qa_retention",
                  "sharpness_mean", "train_s", "wall_s", "peak_memory_mb"]
"""The quantities of a comparison's table, after run, method and seed (core/quantities.py)."""
COLUMNS = ["run", "method", "seed", *(quantity(k).label for k in ROW_QUANTITIES)]


def load_runs(run_dirs: list[str | Path]) -> list[tuple[str, dict]]:
    """(label, results) per run; labels are the run directory names, made unique."""
    if not run_dirs:
        raise RunDirError("compare: give at least one run directory")
    runs, seen = [], set()
    for d in _expand(run_dirs):
        path = Path(d) / "results.json"
        if not path.is_file():
            raise RunDirError(f"{d}: no results.json (not a run directory, or the run has not "
                              f"finished an experience yet)")
        results = RunStore(d).read_results()
        label = Path(d).resolve().name
        while label in seen:
            label += "'"
        seen.add(label)
        runs.append((label, results))
    return runs


def _expand(run_dirs: list[str | Path]) -> list[str | Path]:
    """A quoted pattern (`'runs/method=sam*-seed*'`, or any shell that does not expand globs) is
    expanded here, in sorted order, as the shell would; a path that exists is taken as it is."""
    out = []
    for d in run_dirs:
        if Path(d).exists() or not any(c in str(d) for c in "*?["):
            out.append(d)
            continue
        matches = sorted(glob.glob(str(d)))
        if not matches:
            raise RunDirError(f"{d}: no run directory matches this pattern")
        out += matches
    return out


def mean_flatness(results: dict, key: str = "sharpness") -> float | None:
    """The mean over the steps of a flatness measure (`landscape.record`); None without one."""
    rows = [r[key] for r in results.get("flatness") or [] if r.get(key) is not None]
    return float(np.mean(rows)) if rows else None


def run_row(label: str, r: dict) -> dict:
    h, p = r["headline"], r.get("probe_summary") or {}
    # an unfinished run has no headline; its learning accuracy and BWT over the steps done so
    # far would pair, seed by seed, with other runs' over the whole stream
    whole = bool(r["complete"])
    # runs written before multitask's LA was blanked still carry the last step's accuracy
    sequential = whole and not trained_jointly(r.get("experiences", []))
    train = np.array(r["matrices"]["train"], dtype=float) if sequential else None
    return {
        "run": label, "method": r["method"], "seed": r["seed"], "complete": r["complete"],
        "MA": h["MA"], "GA": h["GA"], "MF": h["MF"], "GF": h["GF"],
        "LA_train": learning_accuracy(train) if sequential else None,
        "MF_relative": relative_forgetting(train) if sequential else None,
        "BWT_test": r["metrics"]["test"]["BWT"] if whole else None,
        "FWT_test": r["metrics"]["test"]["FWT"] if whole else None,
        "sample_nll_rise": p.get("sample_nll_rise"), "qa_retention": p.get("qa_retention_final"),
        "corpus_nll_rise": p.get("corpus_nll_rise"),
        "sharpness_mean": mean_flatness(r),
        "top_eigenvalue_mean": mean_flatness(r, "top_eigenvalue"),
        # the method's cost: flatness (`landscape.record`) is a measurement some runs add
        "train_s": r["timings"]["train_s"],
        "wall_s": (r["timings"]["train_s"] + r["timings"]["eval_s"]
                   - (r["timings"].get("landscape_s") or 0)),
        "peak_memory_mb": r["run"]["peak_memory_mb"],
        "recovery_gain": recovery_gain(r),
    }


def recovery_gain(r: dict) -> float | None:
    """The recovery probe's recovered − final accuracy on the training questions, pooled over
    the experiences it measured (None without `eval.recovery`)."""
    rows = (r.get("recovery") or {}).get("rows") or []
    pooled = pooled_recovery(rows).get("train") if rows else None
    if not pooled or pooled["recovered"] is None or pooled["final"] is None:
        return None
    return pooled["recovered"] - pooled["final"]


def _ranks(x: np.ndarray) -> np.ndarray:
    """Average ranks (ties share the mean of their positions), for Spearman's ρ."""
    order = np.argsort(x, kind="stable")
    ranks = np.empty(len(x))
    ranks[order] = np.arange(len(x), dtype=float)
    for value in np.unique(x):
        tie = x == value
        ranks[tie] = ranks[tie].mean()
    return ranks


def correlation(xs: list[float], ys: list[float]) -> dict:
    """Pearson r and Spearman ρ of paired values (None with fewer than 3 pairs or no spread)."""
    x, y = np.asarray(xs, float), np.asarray(ys, float)
    out = {"n": len(x), "pearson": None, "spearman": None}
    if len(x) >= 3 and x.std() > 0 and y.std() > 0:
        out["pearson"] = float(np.corrcoef(x, y)[0, 1])
        rx, ry = _ranks(x), _ranks(y)
        if rx.std() > 0 and ry.std() > 0:
            out["spearman"] = float(np.corrcoef(rx, ry)[0, 1])
    return out


def sharpness_forgetting(runs: list[tuple[str, dict]]) -> dict:
    """Two views of PAPERS.md §2's claim (flatter minima forget less):
    per run, mean sharpness over experiences vs MF; and per experience, pooled over runs, the
    sharpness measured right after learning experience j vs how much of j is forgotten by the end
    (train split). The same three correlations for the top Hessian eigenvalue under
    `top_eigenvalue`, where runs measured it: the two measures of flatness need not agree."""
    out = _flatness_correlations(runs, "sharpness")
    eigenvalue = _flatness_correlations(runs, "top_eigenvalue")
    points = eigenvalue.pop("points")  # the same rows as the sharpness points, where measured
    out["top_eigenvalue"] = eigenvalue if points else None
    return out


def _flatness_correlations(runs: list[tuple[str, dict]], key: str) -> dict:
    run_x, run_y, exp_x, exp_y, points = [], [], [], [], []
    for label, r in runs:
        s = mean_flatness(r, key)
        if s is not None and r["headline"]["MF"] is not None:
            run_x.append(s)
            run_y.append(r["headline"]["MF"])
        per = by_experience.forgetting_of(r, "train")
        for row in r.get("flatness") or []:
            j = row["experience"]
            if j < len(per) and per[j] is not None and row.get(key) is not None:
                exp_x.append(row[key])
                exp_y.append(per[j])
                points.append({"run": label, "experience": j, "sharpness": row["sharpness"],
                               "top_eigenvalue": row.get("top_eigenvalue"), "forgetting": per[j]})
    return {"runs": correlation(run_x, run_y), "experiences": correlation(exp_x, exp_y),
            "within_experience": within_correlation(points, key), "points": points}


def within_correlation(points: list[dict], key: str = "sharpness") -> dict:
    """Flatness (`key`) vs forgetting with the experience index held fixed: each point's measure
    and forgetting minus the means of its experience index over the runs, then correlated.
    Pooling over indices mixes in that earlier experiences are both measured at another stage of
    training and forgotten for longer; this compares runs only with each other at the same
    index. Indices measured in fewer than 2 runs drop out."""
    by_index: dict[int, list[dict]] = {}
    for p in points:
        by_index.setdefault(p["experience"], []).append(p)
    xs, ys = [], []
    for group in by_index.values():
        if len(group) < 2:
            continue
        mx = float(np.mean([p[key] for p in group]))
        my = float(np.mean([p["forgetting"] for p in group]))
        xs += [p[key] - mx for p in group]
        ys += [p["forgetting"] - my for p in group]
    return correlation(xs, ys)


def pareto_front(costs: list[float], losses: list[float]) -> list[int]:
    """Indices not dominated: no other run is at most as costly and forgets at most as much,
    strictly better in one."""
    front = []
    for i, (c, f) in enumerate(zip(costs, losses, strict=True)):
        if not any((c2 <= c and f2 <= f) and (c2 < c or f2 < f)
                   for k, (c2, f2) in enumerate(zip(costs, losses, strict=True)) if k != i):
            front.append(i)
    return front


def table_rows(rows: list[dict]) -> list[list[str]]:
    return [[r["run"], r["method"], str(r["seed"]),
             *(quantity(k).format(r[k]) for k in ROW_QUANTITIES)] for r in rows]


PAIRED_QUANTITIES = ["LA_train", "MA", "GA", "MF", "MF_relative", "GF"]
"""What `compare` tests between groups of runs (paired by seed)."""
OPTIONAL_PAIRED = ["sample_nll_rise", "corpus_nll_rise", "recovery_gain", "sharpness_mean",
                   "top_eigenvalue_mean"]
"""Tested too where some run has them (`probe.samples`, `probe.corpus`, `eval.recovery`,
`landscape.record`)."""


def paired_keys(groups: list[dict]) -> list[str]:
    return PAIRED_QUANTITIES + [k for k in OPTIONAL_PAIRED
                                if any(row[k] is not None for g in groups for row in g["rows"])]
_NOT_THE_ARM = ("seed", "name", "output_dir")


def _measured(r: dict) -> tuple:
    """The numbers a run measured that a reproduction must repeat: its accuracy matrices (counts
    of right answers, which another run can match by chance on a small stream) and its epoch
    losses (floats, which it cannot)."""
    return r.get("matrices"), [x.get("epoch_losses") for x in r.get("experiences") or []]


def _reproduced_or_not(runs: list[tuple[str, dict]], seeds: list) -> str:
    """What a user passing one seed twice usually wants to know: is it the same run again?"""
    by_seed = {seed: [r for _, r in runs if r["seed"] == seed] for seed in seeds}
    if all(_measured(r) == _measured(same[0]) for same in by_seed.values() for r in same):
        return ("their accuracy matrices and epoch losses are identical: the run reproduced, "
                "nothing to pair")
    mf = "; ".join(f"seed {seed} " + ", ".join(
        f"{100 * r['headline']['MF']:.1f}" if (r.get("headline") or {}).get("MF") is not None
        else "–" for r in same) for seed, same in by_seed.items())
    return (f"their numbers differ, MF {mf}: another machine, thread count or code draws the "
            f"seed anew, so compare them apart")


def group_runs(runs: list[tuple[str, dict]]) -> list[dict]:
    """Runs that differ only in their seeds (`seed`, `data.seed`), name and output location form
    one group (their configs read with today's defaults, as `RunConfig.matches_saved` reads a
    run directory's); a group's label is what sets it apart from the others (its method, or the
    settings that differ)."""
    keys = []
    for _, r in runs:
        # read as matches_saved reads a run directory: runs written by an older version (keys
        # added since, resume-neutral or inert settings) still group with today's
        try:
            flat = saved_results_keys(r.get("config") or {})
        except ConfigError:  # no longer loads: its settings as written
            flat = flatten(r.get("config") or {})
        keys.append({k: v for k, v in flat.items()
                     if k not in _NOT_THE_ARM and k != "data.seed"})
    groups: list[dict] = []
    for (label, r), key in zip(runs, keys, strict=True):
        for g in groups:
            if g["key"] == key:
                g["runs"].append((label, r))
                break
        else:
            groups.append({"key": key, "runs": [(label, r)]})
    for g in groups:  # each run's row once (what the tables and tests read)
        g["rows"] = [run_row(label, r) for label, r in g["runs"]]
        seeds = [r["seed"] for _, r in g["runs"]]
        if twice := sorted({s for s in seeds if seeds.count(s) > 1}, key=str):
            # pairing is by seed: a second run of one seed would silently replace the first
            runs = ", ".join(label for label, r in g["runs"] if r["seed"] in twice)
            raise RunDirError(f"compare: runs {runs} have the same config and seed "
                              f"{', '.join(map(str, twice))}; pass one run per config and seed "
                              f"({_reproduced_or_not(g['runs'], twice)})")
    varying = sorted({k for g in groups for k in g["key"]
                      if len({json.dumps(h["key"].get(k), sort_keys=True) for h in groups}) > 1})
    sections = {m for g in groups for m in str(g["key"].get("method", "")).split("+")}
    own = {k for k in varying if k.split(".")[0] in sections}  # options of a method's section

    def sets_apart_its_method(k: str) -> bool:
        """Whether option k differs between groups of one and the same method."""
        values: dict[str, set[str]] = {}
        for h in groups:
            if k in h["key"]:
                values.setdefault(str(h["key"].get("method")), set()).add(
                    json.dumps(h["key"][k], sort_keys=True))
        return any(len(v) > 1 for v in values.values())

    # where methods differ, a method's option is shown only if it tells apart groups of one
    # method, and only on the groups that have it (seqft's label carries no kif option)
    telling = {k for k in own if sets_apart_its_method(k)} if "method" in varying else own

    def differing(g: dict) -> list[str]:
        """The settings that may name group g: a method's option only on groups that have it."""
        return [k for k in varying if k != "method"
                and (k not in own or "method" not in varying or k in g["key"])]

    def does_nothing(k: str, g: dict) -> bool:
        """A flatness option of a group that records no flatness: studies set them differently,
        but they change nothing in its runs, so they do not name it — unless nothing else tells
        it apart (the full labels below)."""
        return (k.startswith("landscape.") and k != "landscape.record"
                and not g["key"].get("landscape.record"))

    def label(g: dict, keys: list[str], full: bool = False) -> str:
        parts = ([str(g["key"].get("method"))] if "method" in varying or not keys else [])
        parts += [f"{k if full else k.split('.')[-1]}={g['key'].get(k)}" for k in keys]
        return " ".join(parts) or "runs"

    for g in groups:
        g["label"] = label(g, [k for k in differing(g) if (k not in own or k in telling)
                               and not does_nothing(k, g)][:3])
    # a short label must still name one group: where two read alike (a grid over more than three
    # settings), those groups are labelled by every setting that differs, with its full name
    labels = [g["label"] for g in groups]
    for g in groups:
        if labels.count(g["label"]) > 1:
            g["label"] = label(g, differing(g), full=True)
    return groups


def paired_comparison(groups: list[dict]) -> tuple[list[dict], list[str]]:
    """Each group against the first, per quantity: paired by seed where the groups share seeds
    (mean difference, 95 % CI, paired t-test p), otherwise Welch's unpaired test with a warning."""
    base = groups[0]
    warnings, out = [], []

    def values(group, key):
        return {row["seed"]: row[key] for row in group["rows"]}

    keys = paired_keys(groups)
    warnings += machine_warnings(groups)
    for g in groups[1:]:
        row = {"group": g["label"], "reference": base["label"], "keys": keys}
        shared = {r["seed"] for _, r in base["runs"]} & {r["seed"] for _, r in g["runs"]}
        if not shared:
            warnings.append(f"{g['label']} and {base['label']} share no seed: unpaired (Welch) "
                            f"comparison")
        for key in keys:
            a, b = values(base, key), values(g, key)
            row[key] = paired(a, b) if shared else welch(list(a.values()), list(b.values()))
        out.append(row)
    return out, warnings


def machine_of(results: dict) -> str | None:
    """The machine a run recorded (results.json `run.machine`), in words; None for runs written
    before it was recorded."""
    m = (results.get("run") or {}).get("machine")
    if not m:
        return None
    return machine_words(m)


def machine_warnings(groups: list[dict]) -> list[str]:
    """A warning where the runs compared ran on different machines: the same config and seed
    give different numbers on another processor or thread count (docs/studies.md). A pair of
    runs on two machines mixes the method's effect with the machine's; runs on several machines
    whose every pair ran on one machine compare fairly, but a group's mean then mixes machines.
    Runs written before the machine was recorded are not counted. A run resumed on another
    machine is one machine's numbers up to the change and the other's after: named apart."""
    mixed = [(name, r) for g in groups for name, r in g["runs"]
             if len((r.get("run") or {}).get("machines") or []) > 1]
    warnings = [
        f"{name} trained on {len(r['run']['machines'])} machines across its sessions "
        f"({' then '.join(machine_words(m) for m in r['run']['machines'])}): resumed on another "
        "processor or thread count, its numbers are no one machine's; run it again on one"
        for name, r in mixed]
    return warnings + _machines_apart(groups)


def _machines_apart(groups: list[dict]) -> list[str]:
    seen: dict[str, int] = {}
    for g in groups:
        for _, r in g["runs"]:
            if (text := machine_of(r)) is not None:
                seen[text] = seen.get(text, 0) + 1
    if len(seen) < 2:
        return []
    machines = "; ".join(f"{n} on {text}" for text, n in seen.items())
    reference = {r["seed"]: machine_of(r) for _, r in groups[0]["runs"]}
    split = set()  # (arm, seed) whose run and reference run ran on two known machines
    for g in groups[1:]:
        for _, r in g["runs"]:
            ours, theirs = machine_of(r), reference.get(r["seed"])
            if ours is not None and theirs is not None and ours != theirs:
                split.add((g["label"], r["seed"]))
    split = sorted(split, key=str)
    if not split:
        return [f"the runs ran on {len(seen)} machines ({machines}); every pair compared ran on "
                f"one machine, but a group's mean mixes machines"]
    pairs = ", ".join(f"{label} seed {seed}" for label, seed in split)
    return [f"the runs ran on {len(seen)} machines ({machines}), and some pairs span two "
            f"({pairs}): the same config and seed give different numbers on different "
            f"processors and thread counts, so those differences mix the method's effect with "
            f"the machine's"]


def group_table(groups: list[dict]) -> list[list[str]]:
    rows = []
    for g in groups:
        seeds = [r["seed"] for _, r in g["runs"]]
        cells = [g["label"], str(len(seeds))]
        for key in paired_keys(groups):
            q = quantity(key)
            d = describe([row[key] for row in g["rows"]])
            cells.append(interval_text(d, q.scale, q.digits, with_n=False))
        rows.append(cells)
    return rows


def difference_table(diffs: list[dict]) -> list[list[str]]:
    rows = []
    for d in diffs:
        cells = [d["group"], str(compared_seeds(d, d.get("keys", PAIRED_QUANTITIES))),
                 d[PAIRED_QUANTITIES[0]]["test"]]
        for key in d.get("keys", PAIRED_QUANTITIES):
            q = quantity(key)
            cells.append(difference_text(d[key], q.scale, q.digits))
        rows.append(cells)
    return rows


def headline_note(diff: dict) -> list[str]:
    """The seeds warning for one comparison, on MF, or on MA where the arm has no forgetting."""
    key = "MF" if diff["MF"]["n"] or not diff["MA"]["n"] else "MA"
    d = diff[key]
    what = f"{diff['group']} vs {diff['reference']}"
    q = quantity(key)
    notes = comparison_notes(d["n"], d["ci_low"], d["ci_high"], f"{what}, {key}",
                             mean=d["mean"], sd=d["sd"], scale=q.scale, digits=q.digits)
    share, learned = diff.get("MF_relative") or {}, diff.get("LA_train") or {}
    if (key == "MF" and not notes and d["ci_high"] is not None and d["ci_high"] < 0
            and share.get("n", 0) >= 3 and share.get("ci_low") is not None
            and share["ci_low"] <= 0 <= share["ci_high"]):
        notes.append(f"{what}: MF is lower, but MF as a share of what was learned is not "
                     f"established (its interval includes 0)"
                     + (" and the arm learned less: it may forget less because it learned less"
                        if learned.get("ci_high") is not None and learned["ci_high"] < 0 else ""))
    return notes


def run_notes(runs: list[tuple[str, dict]]) -> list[str]:
    """Each run's diagnostics, a note shared by several runs said once with their labels, or
    as every run's where all of them share it (a study's 30 labels would bury the note)."""
    by_note: dict[str, list[str]] = {}
    for label, r in runs:
        if not r["complete"]:
            done = r["completed_experiences"]
            by_note.setdefault(f"unfinished ({done} experience{'' if done == 1 else 's'} done): "
                               f"shown, left out of the statistics", []).append(label)
        for note in diagnose(r):
            by_note.setdefault(note, []).append(label)
    return [f"{labels[0]}: {note}" if len(labels) == 1
            else f"every run ({len(labels)}): {note}" if len(labels) == len(runs)
            else f"{len(labels)} runs ({', '.join(labels)}): {note}"
            for note, labels in by_note.items()]


def mean_by_position(values: list[list[float | None]]) -> list[float | None]:
    """Position by position, the mean over the lists that have a value there; None where none
    has (an unfinished run's rows and forgetting are shorter or hold None)."""
    out: list[float | None] = []
    for j in range(max((len(v) for v in values), default=0)):
        cell = [v[j] for v in values if j < len(v) and v[j] is not None]
        out.append(sum(cell) / len(cell) if cell else None)
    return out


def per_arm(groups: list[dict]) -> list[tuple[str, dict]]:
    """What the figures draw where groups hold several seeds: one entry per group, its accuracy
    matrices and forgetting per experience averaged cell by cell over its runs (a study of 11
    arms × 3 seeds draws 11 rows of matrices, not 33)."""
    out = []
    for g in groups:
        results = [r for _, r in g["runs"]]
        mean: dict = {"matrices": {}, "forgetting_per_experience": {}}
        for split in ("train", "test"):
            rows = max(len(r["matrices"][split]) for r in results)
            mean["matrices"][split] = [
                mean_by_position([r["matrices"][split][i] for r in results
                                  if i < len(r["matrices"][split])]) for i in range(rows)]
            mean["forgetting_per_experience"][split] = mean_by_position(
                [by_experience.forgetting_of(r, split) for r in results])
        label = f"{g['label']} (mean of {len(results)})" if len(results) > 1 else g["label"]
        out.append((label, mean))
    return out


def compare(run_dirs: list[str | Path], out_dir: str | Path, level: float = LEVEL) -> dict:
    """One table, paired differences, plots and notes across runs, written to `out_dir`.
    `level`: the confidence level of every interval (0.975 to split α = 0.05 over two looks or
    two arms, Bonferroni); compare.json records it."""
    with interval_level(level, "--level"):
        return _compare(run_dirs, out_dir, level)


def _compare(run_dirs: list[str | Path], out_dir: str | Path, level: float) -> dict:
    out = Path(out_dir)
    check_writable(out, "--out")
    runs = load_runs(run_dirs)
    rows = [run_row(label, r) for label, r in runs]
    groups = group_runs(runs)
    diffs, warnings = paired_comparison(groups) if len(groups) > 1 else ([], [])
    warnings += run_notes(runs)
    for d in diffs:
        warnings += headline_note(d)
    # an unfinished run's forgetting so far is not its forgetting by the end: the statistics
    # read finished runs only (the tables and figures still show every run)
    corr = sharpness_forgetting([(label, r) for label, r in runs if r["complete"]])
    per_experience = by_experience.forgetting_by_experience(groups)
    per_age = by_experience.forgetting_by_age(groups)
    per_age_share = by_experience.forgetting_by_age(groups, relative=True)
    paired_tables = _age_tables(per_age, per_age_share) + _flatness_tables(groups)
    figures: dict[str, bytes] = {}

    drawn = per_arm(groups) if any(len(g["runs"]) > 1 for g in groups) else runs
    fig = plots.matrices_figure(drawn)
    figures["matrices"] = H.figure_png(fig)
    plots.close(fig)

    fig, (ax_tr, ax_te) = plots.figure(10, 3.6, 2)
    for ax, split in ((ax_tr, "train"), (ax_te, "test")):
        for label, r in drawn:
            per = by_experience.forgetting_of(r, split)
            xs = [j for j, v in enumerate(per) if v is not None]
            ax.plot(xs, [100 * per[j] for j in xs], marker="o", label=label)
        ax.set_xlabel("experience")
        ax.set_ylabel(f"forgetting by the end, {split} (%)")
        ax.grid(alpha=0.3)
    ax_te.legend(fontsize=7)
    figures["forgetting"] = H.figure_png(fig)
    plots.close(fig)

    # where groups hold several seeds, points are coloured by group rather than each named
    group_of = ({label: g["label"] for g in groups for label, _ in g["runs"]}
                if drawn is not runs else None)
    palette = dict(zip([g["label"] for g in groups], plots.colors(len(groups)), strict=True))

    def groups_of(points: list[dict]) -> list[str] | None:
        return None if group_of is None else [group_of[r["run"]] for r in points]

    fig, axes = plots.figure(10, 3.8, 2)
    for ax, (acc, forg, name) in zip(axes, (("MA", "MF", "memorization"),
                                            ("GA", "GF", "generalization")), strict=True):
        points = [r for r in rows if r[acc] is not None and r[forg] is not None]
        plots.scatter_labelled(ax, [100 * r[forg] for r in points],
                               [100 * r[acc] for r in points], [r["run"] for r in points],
                               groups_of(points), palette)
        ax.set_xlabel(f"{forg} (%) — lower is better")
        ax.set_ylabel(f"{acc} (%) — higher is better")
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3)
    figures["accuracy_vs_forgetting"] = H.figure_png(fig)
    plots.close(fig)

    fig, axes = plots.figure(10, 3.8, 2)
    pareto = {}
    usable = [r for r in rows if r["MF"] is not None]
    for ax, (key, name) in zip(axes, (("wall_s", "wall time, train + eval (s)"),
                                      ("peak_memory_mb", "peak memory (MB)")), strict=True):
        costs = [r[key] for r in usable]
        losses = [100 * r["MF"] for r in usable]
        front = pareto_front(costs, losses)
        pareto[key] = [usable[i]["run"] for i in front]
        pts = sorted((costs[i], losses[i]) for i in front)
        if pts:
            ax.plot(*zip(*pts, strict=True), color="#d33", marker="o", label="Pareto front",
                    zorder=1)
        plots.scatter_labelled(ax, costs, losses, [r["run"] for r in usable], groups_of(usable),
                               palette, **({"color": "#999"} if group_of is None else {}))
        if pts and group_of is None:
            ax.legend(fontsize=7)
        ax.set_xlabel(name)
        ax.set_ylabel("MF (%) — lower is better")
        ax.grid(alpha=0.3)
    figures["cost_vs_forgetting"] = H.figure_png(fig)
    plots.close(fig)

    if corr["points"]:
        fig, axes = plots.figure(5.2, 3.8)
        ax = axes[0]
        for label in dict.fromkeys(p["run"] for p in corr["points"]):
            pts = [p for p in corr["points"] if p["run"] == label]
            ax.scatter([p["sharpness"] for p in pts], [100 * p["forgetting"] for p in pts],
                       label=label)
        ax.set_xlabel("ρ-sharpness right after learning the experience")
        ax.set_ylabel("its forgetting by the end, train (%)")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        figures["sharpness_vs_forgetting"] = H.figure_png(fig)
        plots.close(fig)

    summary = {"runs": rows, "sharpness_forgetting": corr, "pareto": pareto,
               "groups": [{"label": g["label"], "runs": [label for label, _ in g["runs"]]}
                          for g in groups],
               "differences": diffs, "forgetting_by_experience": per_experience,
               "forgetting_by_age": per_age, "forgetting_by_age_relative": per_age_share,
               **{f"{t['measure']}_by_experience": t for _, t, _ in paired_tables
                  if t.get("measure")},
               "warnings": warnings, "run_dirs": [str(Path(d).resolve()) for d in run_dirs],
               "level": level}
    write_files({
        **{out / f"{name}.png": png for name, png in figures.items()},
        out / "compare.json": json.dumps(summary, indent=1, allow_nan=True) + "\n",
        out / "compare.md": markdown(rows, corr, pareto, list(figures), groups, diffs, warnings,
                                     per_experience, paired_tables),
        out / "compare.html": page(rows, corr, pareto, figures, groups, diffs, warnings,
                                   per_experience, paired_tables),
    })
    return summary


def group_header(keys: list[str]) -> list[str]:
    return ["group", "n (seeds)", *(quantity(k).label for k in keys)]


def diff_header(diffs: list[dict]) -> list[str]:
    keys = diffs[0].get("keys", PAIRED_QUANTITIES) if diffs else PAIRED_QUANTITIES
    return ["group", "n", "test", *(quantity(k).label for k in keys)]
def at_level(note: str) -> str:
    """A note with the level its intervals were computed at (`forgetless compare --level`)."""
    return note.format(level=level_text())


GROUP_NOTE = ("Runs that differ only in their seeds form a group: mean [{level} CI, t] over its "
              "runs, in %. Differences: each group minus the first, paired by seed (mean "
              "difference [{level} CI], paired t-test p); Welch's test where no seed is shared.")


def corr_text(c: dict) -> str:
    if c["pearson"] is None:
        return f"n = {c['n']}: not enough pairs with spread to correlate"
    sp = "-" if c["spearman"] is None else f"{c['spearman']:+.2f}"
    return f"n = {c['n']}: Pearson r = {c['pearson']:+.2f}, Spearman ρ = {sp}"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
            + ["| " + " | ".join([md(r[0]), *r[1:]]) + " |" for r in rows])  # names: text


def _flatness_tables(groups: list[dict]) -> list[tuple]:
    """(title, table, note) of the flatness tables by experience that exist."""
    return [(title, table, at_level(by_experience.FLATNESS_NOTES[key]) + _unsettled_note(table))
            for title, key in [
                ("ρ-sharpness after each experience, paired", "sharpness"),
                ("Top Hessian eigenvalue after each experience, paired", "top_eigenvalue")]
            if (table := by_experience.flatness_by_experience(groups, key))]


def _unsettled_note(table: dict) -> str:
    counts = [c for c in table.get("unsettled") or [] if c["unsettled"]]
    if not counts:
        return ""
    return (" Estimates that ran out of power-iteration steps before they settled (lower bounds: "
            "a Rayleigh quotient never exceeds the top eigenvalue): "
            + "; ".join(f"{c['label']} {c['unsettled']} of {c['estimates']}" for c in counts)
            + ". A difference there may be one of convergence, not of curvature.")


def _age_tables(per_age: dict | None, per_age_share: dict | None) -> list[tuple]:
    """(title, table, note) of the tables by age that exist: in points, then as a share."""
    return [(title, table, note) for title, table, note in [
        ("Forgetting by age, paired", per_age, at_level(by_experience.AGE_NOTE)),
        ("Forgetting by age as a share of what was learned, paired", per_age_share,
         by_experience.RELATIVE_AGE_NOTE)] if table]


def markdown(rows, corr, pareto, figures, groups=(), diffs=(), warnings=(),
             per_experience=None, tables=()) -> str:
    """`tables`: (title, table, note) of the further paired tables by age and by experience."""
    lines = ["# Comparison", "", *_md_table(COLUMNS, table_rows(rows))]
    lines += ["", "Accuracy and forgetting in %; BWT on the test split; held-out NLL rise and QA "
              "retention from the base-knowledge probe; sharpness = mean ρ-sharpness over "
              "experiences (runs with `landscape.record: true`).", ""]
    if pareto:
        lines += [f"Pareto front (cost vs MF): by wall time {', '.join(pareto['wall_s'])}; "
                  f"by peak memory {', '.join(pareto['peak_memory_mb'])}.", ""]
    if len(groups) > 1:
        lines += ["## Groups and paired differences", "",
                  *_md_table(group_header(paired_keys(groups)), group_table(groups)), "",
                  *_md_table(diff_header(diffs), difference_table(diffs)), "", at_level(GROUP_NOTE), ""]
    lines += [f"**Warning:** {w}." for w in warnings] + ([""] if warnings else [])
    if per_experience:
        lines += ["## Forgetting per experience, paired", "",
                  *_md_table(by_experience.header(per_experience),
                             by_experience.rows(per_experience)), "", at_level(by_experience.NOTE), ""]
    for title, table, note in tables:
        lines += [f"## {title}", "",
                  *_md_table(by_experience.header(table), by_experience.rows(table)), "", note, ""]
    if corr["points"]:
        lines += ["## Sharpness vs forgetting", "",
                  f"- per run (mean sharpness vs MF): {corr_text(corr['runs'])}",
                  f"- per experience, pooled (sharpness after learning j vs forgetting of j): "
                  f"{corr_text(corr['experiences'])}",
                  f"- per experience, at the same index (both minus that index's mean over the "
                  f"runs): {corr_text(corr['within_experience'])}", ""]
        if eig := corr.get("top_eigenvalue"):
            lines += ["The same for the top Hessian eigenvalue:", "",
                      f"- per run (mean top eigenvalue vs MF): {corr_text(eig['runs'])}",
                      f"- per experience, pooled: {corr_text(eig['experiences'])}",
                      f"- per experience, at the same index: "
                      f"{corr_text(eig['within_experience'])}", ""]
    lines += [f"![{name}]({name}.png)" for name in figures]
    return "\n".join(lines) + "\n"


def page(rows, corr, pareto, figures: dict[str, bytes], groups=(), diffs=(), warnings=(),
         per_experience=None, tables=()) -> str:
    sections = [H.section("table", "Runs", H.table(COLUMNS, table_rows(rows)) +
                          '<p class="note">Accuracy and forgetting in %; BWT on the test split; '
                          "held-out NLL rise and QA retention from the base-knowledge probe; "
                          "sharpness = mean ρ-sharpness over experiences.</p>")]
    if len(groups) > 1:
        sections.append(H.section("groups", "Groups and paired differences",
                                  H.table(group_header(paired_keys(groups)), group_table(groups))
                                  + H.table(diff_header(diffs), difference_table(diffs))
                                  + f'<p class="note">{H.esc(at_level(GROUP_NOTE))}</p>'))
    if warnings:
        sections.insert(1, H.section("warnings", "Warnings", "".join(
            f'<p class="note"><b>Warning:</b> {H.esc(w)}.</p>' for w in warnings)))
    sections.append(H.section("matrices", "Accuracy matrices",
                              H.img(figures["matrices"], "accuracy matrices")))
    paired_table = "" if not per_experience else (
        H.table(by_experience.header(per_experience), by_experience.rows(per_experience))
        + f'<p class="note">{H.esc(at_level(by_experience.NOTE))}</p>')
    for _, table, note in tables:
        paired_table += (H.table(by_experience.header(table), by_experience.rows(table))
                         + f'<p class="note">{H.esc(note)}</p>')
    sections.append(H.section("forgetting", "Forgetting per experience",
                              H.img(figures["forgetting"], "forgetting per experience")
                              + paired_table))
    sections.append(H.section("accuracy", "Accuracy vs forgetting",
                              H.img(figures["accuracy_vs_forgetting"], "accuracy vs forgetting")))
    front = "" if not pareto else (
        f'<p class="note">Pareto front by wall time: {H.esc(", ".join(pareto["wall_s"]))}; by '
        f'peak memory: {H.esc(", ".join(pareto["peak_memory_mb"]))}.</p>')
    sections.append(H.section("pareto", "Cost vs forgetting",
                              H.img(figures["cost_vs_forgetting"], "cost vs forgetting") + front))
    if "sharpness_vs_forgetting" in figures:
        sections.append(H.section("sharpness", "Sharpness vs forgetting", (
            f"<p>Per run (mean sharpness vs MF): {H.esc(corr_text(corr['runs']))}<br>"
            f"Per experience, pooled: {H.esc(corr_text(corr['experiences']))}<br>"
            f"Per experience, at the same index (both minus that index's mean over the runs): "
            f"{H.esc(corr_text(corr['within_experience']))}</p>"
            + (f"<p>The same for the top Hessian eigenvalue — per run: "
               f"{H.esc(corr_text(eig['runs']))}<br>Per experience, pooled: "
               f"{H.esc(corr_text(eig['experiences']))}<br>At the same index: "
               f"{H.esc(corr_text(eig['within_experience']))}</p>"
               if (eig := corr.get("top_eigenvalue")) else ""))
            + H.img(figures["sharpness_vs_forgetting"], "sharpness vs forgetting")))
    return H.page("forgetless comparison", f"{len(rows)} runs", sections)
