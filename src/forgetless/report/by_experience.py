"""Forgetting experience by experience, per group of runs and each group minus the first, paired
by seed: where along the stream an arm's MF comes from.

MF averages the forgetting of every experience but the last. Earlier experiences are trained
over more often, so they are forgotten more, and an arm can lower MF through one of them alone:
on concept1k-small KIF's gain over seqft sits almost all on the first step (docs/studies.md).
This table shows that confound — the experience index — instead of leaving it inside a mean.
"""

from __future__ import annotations

from forgetless.core.stats import describe, difference_text, interval_text, paired


def forgetting_of(results: dict, split: str) -> list[float | None]:
    """A run's forgetting of each experience (results.json; [] for a run without it)."""
    return list((results.get("forgetting_per_experience") or {}).get(split) or [])


def forgetting_by_experience(groups: list[dict], split: str = "train") -> dict | None:
    """{split, experiences, groups: [{label, n, per: [describe]}], differences: [{group,
    reference, per: [paired]}]} over experiences 0 … T−2, for groups (report/compare.py
    `group_runs`) whose runs all have T ≥ 3 experiences; None otherwise (with two experiences the
    table is MF itself). Groups without forgetting (trained jointly) and groups that share no
    seed with the first are left out of the differences. Unfinished runs are left out: what
    they forgot so far is not what they forget by the end."""
    groups = [{**g, "runs": [(label, r) for label, r in g["runs"] if r.get("complete", True)]}
              for g in groups]
    lengths = {len(forgetting_of(r, split)) for g in groups for _, r in g["runs"]}
    if len(groups) < 2 or len(lengths) != 1 or (T := lengths.pop()) < 3:
        return None
    experiences = list(range(T - 1))

    def by_seed(g: dict, j: int) -> dict:
        return {r["seed"]: forgetting_of(r, split)[j] for _, r in g["runs"]}

    rows = [{"label": g["label"], "n": len(g["runs"]),
             "per": [describe(list(by_seed(g, j).values())) for j in experiences]}
            for g in groups]
    rows = [g for g in rows if any(d["n"] for d in g["per"])]  # not the arms trained jointly
    reference = groups[0]
    differences = []
    for g in groups[1:]:
        per = [paired(by_seed(reference, j), by_seed(g, j)) for j in experiences]
        if any(d["n"] for d in per):
            differences.append({"group": g["label"], "reference": reference["label"],
                                "per": per})
    return {"split": split, "experiences": experiences, "groups": rows,
            "differences": differences}


def header(table: dict) -> list[str]:
    return ["group", "n", *(f"exp {j}" for j in table["experiences"])]


def rows(table: dict) -> list[list[str]]:
    """Each group's mean forgetting [95 % CI] per experience, in %, then each difference to the
    first group (the n column: seeds paired, the most any experience pairs)."""
    out = [[g["label"], str(g["n"]),
            *(interval_text(d, 100, 1, with_n=False) for d in g["per"])] for g in table["groups"]]
    out += [[f"{d['group']} − {d['reference']}", str(max(x["n"] for x in d["per"])),
             *(difference_text({**x, "p": None}, 100, 1) for x in d["per"])]
            for d in table["differences"]]
    return out


NOTE = ("Forgetting of each experience by the end (its best score while it was among the seen "
        "ones minus its final score), train split, in %: mean [95 % CI] over a group's seeds, "
        "then each group minus the first, paired by seed. MF is the mean of a row: a difference "
        "in MF may come from one experience alone.")
