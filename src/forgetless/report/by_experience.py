"""Forgetting experience by experience, per group of runs and each group minus the first, paired
by seed: where along the stream an arm's MF comes from.

MF averages the forgetting of every experience but the last. Earlier experiences are trained
over more often, so they are forgotten more, and an arm can lower MF through one of them alone:
on concept1k-small most of KIF's MF gain over seqft is on the first step (docs/studies.md).
This table shows that confound — the experience index — instead of leaving it inside a mean.
The table by age separates part of it: at age 1 every experience counts, each one step after
it was learned (there KIF's gain is not the first step's alone).
"""

from __future__ import annotations

from forgetless.core.stats import describe, difference_text, interval_text, paired
from forgetless.report.tables import eigenvalue_settled, recorded_hessian_iters


def forgetting_of(results: dict, split: str) -> list[float | None]:
    """A run's forgetting of each experience (results.json; [] for a run without it)."""
    return list((results.get("forgetting_per_experience") or {}).get(split) or [])


def forgetting_at_age(results: dict, split: str, first: int = 0,
                      relative: bool = False) -> list[float | None]:
    """A run's forgetting by age: entry a−1 is the mean over experiences j ≥ first of R[j][j] −
    R[j+a][j], the drop of what was just learned a experiences later (matrix cells that were not
    scored are skipped; None where none pairs). [] for a run without matrices or with one
    experience. `first` > 0 leaves the earliest experiences out (is a gain the first one's?).
    `relative`: each drop as a share of what was learned, (R[j][j] − R[j+a][j]) / R[j][j]
    (experiences learned to 0 are skipped) — an arm that learns less has fewer points to lose,
    and this compares arms by the share of their learning they lose instead."""
    R = (results.get("matrices") or {}).get(split) or []
    out = []
    for a in range(1, len(R) - first):
        drops = [(R[j][j] - R[j + a][j]) / (R[j][j] if relative else 1)
                 for j in range(first, len(R) - a)
                 if _cell(R, j, j) is not None and _cell(R, j + a, j) is not None
                 and not (relative and R[j][j] == 0)]
        out.append(sum(drops) / len(drops) if drops else None)
    return out


def _cell(R: list, i: int, j: int) -> float | None:
    row = R[i] if i < len(R) else None
    return row[j] if row is not None and j < len(row) else None


def _paired_table(groups: list[dict], values_of, split: str, positions: str) -> dict | None:
    """Each group's mean per position (values_of(results, split)[k]) and each group minus the
    first, paired by seed; None unless every finished run has the same number (≥ 2) of
    positions. Unfinished runs are left out: what they forgot so far is not what they forget
    by the end."""
    # each finished run's values, computed once: {seed: values} per group
    groups = [{**g, "values": {r["seed"]: values_of(r, split) for _, r in g["runs"]
                               if r.get("complete", True)}} for g in groups]
    # runs with no values at all (an arm trained jointly) do not decide the width
    lengths = {len(v) for g in groups for v in g["values"].values() if v}
    if len(groups) < 2 or len(lengths) != 1 or (width := lengths.pop()) < 2:
        return None

    def by_seed(g: dict, k: int) -> dict:
        return {seed: (v[k] if k < len(v) else None) for seed, v in g["values"].items()}

    rows = [{"label": g["label"], "n": len(g["values"]),
             "per": [describe(list(by_seed(g, k).values())) for k in range(width)]}
            for g in groups]
    rows = [g for g in rows if any(d["n"] for d in g["per"])]  # not the arms trained jointly
    reference = groups[0]
    differences = []
    for g in groups[1:]:
        per = [paired(by_seed(reference, k), by_seed(g, k)) for k in range(width)]
        if any(d["n"] for d in per):
            differences.append({"group": g["label"], "reference": reference["label"],
                                "per": per})
    return {"split": split, "positions": positions, "width": width, "groups": rows,
            "differences": differences}


def forgetting_by_experience(groups: list[dict], split: str = "train") -> dict | None:
    """{split, experiences, groups: [{label, n, per: [describe]}], differences: [{group,
    reference, per: [paired]}]} over experiences 0 … T−2, for groups (report/compare.py
    `group_runs`) whose runs all have T ≥ 3 experiences; None otherwise (with two experiences the
    table is MF itself). Groups without forgetting (trained jointly) and groups that share no
    seed with the first are left out of the differences. Unfinished runs are left out."""
    def forgetting(r: dict, s: str) -> list[float | None]:
        return forgetting_of(r, s)[:-1]  # the last experience is never forgotten

    table = _paired_table(groups, forgetting, split, "experience")
    if table is not None:
        table["experiences"] = list(range(table["width"]))
    return table


def forgetting_by_age(groups: list[dict], split: str = "train", first: int = 0,
                      relative: bool = False) -> dict | None:
    """The same table by age, 1 … T−1 experiences after learning (`forgetting_at_age`), with
    `experiences`: how many experiences each age averages over (T − a). At age 1 every
    experience but the last counts once, each one step after it was learned, so an arm's gain
    there is not the first experience's alone — the experience-index confound of the table by
    experience; at the oldest age only experience 0 is left. None with fewer than 3 experiences.
    `first`: experiences before it are left out of every age; `relative`: drops as a share of
    what was learned (`forgetting_at_age`), the control for arms that learn less."""
    table = _paired_table(groups, lambda r, s: forgetting_at_age(r, s, first, relative), split,
                          "age")
    if table is not None:
        table["first"] = first
        table["relative"] = relative
        table["ages"] = list(range(1, table["width"] + 1))
        table["experiences"] = [table["width"] + 1 - a for a in table["ages"]]
    return table


def flatness_of(results: dict, key: str) -> list[float | None]:
    """A run's flatness measure (`sharpness` or `top_eigenvalue`) right after learning each
    experience, in stream order (results.json `flatness`; [] for a run without it)."""
    return [r.get(key) for r in sorted(results.get("flatness") or [], key=lambda r: r["after"])]


def flatness_by_experience(groups: list[dict], key: str = "sharpness") -> dict | None:
    """The paired table of a flatness measure after each experience (`landscape.record`), as
    `forgetting_by_experience` is of forgetting: each group's mean per experience and each group
    minus the first, paired by seed. Groups that did not record it are left out; None where
    fewer than two did, or runs recorded different numbers of experiences."""
    table = _paired_table(groups, lambda r, _split: flatness_of(r, key), "train", "experience")
    if table is not None:
        table.update(experiences=list(range(table["width"])), measure=key, scale=1,
                     digits=4 if key == "sharpness" else 2)
        if key == "top_eigenvalue":
            table["unsettled"] = unsettled_estimates(groups)
    return table


def unsettled_estimates(groups: list[dict]) -> list[dict]:
    """Per group, how many of its finished runs' top-eigenvalue estimates ran out of
    power-iteration steps before they settled (`eigenvalue_settled`): lower bounds, not values."""
    out = []
    for g in groups:
        rows = [(row, recorded_hessian_iters(r)) for _, r in g["runs"] if r.get("complete", True)
                for row in r.get("flatness") or [] if row.get("top_eigenvalue") is not None]
        if rows:
            out.append({"label": g["label"], "estimates": len(rows),
                        "unsettled": sum(eigenvalue_settled(row, cap) is False
                                         for row, cap in rows)})
    return out


def header(table: dict) -> list[str]:
    if table.get("positions") == "age":
        return ["group", "n", *(f"{a} later, {e} exp{'s' if e > 1 else ''}"
                                for a, e in zip(table["ages"], table["experiences"], strict=True))]
    return ["group", "n", *(f"exp {j}" for j in table["experiences"])]


def rows(table: dict) -> list[list[str]]:
    """Each group's mean [CI] per experience (or age) — forgetting in %, flatness as
    measured — then each difference to the first group (the n column: seeds paired, the most
    any position pairs)."""
    scale, digits = table.get("scale", 100), table.get("digits", 1)
    out = [[g["label"], str(g["n"]),
            *(interval_text(d, scale, digits, with_n=False) for d in g["per"])]
           for g in table["groups"]]
    out += [[f"{d['group']} − {d['reference']}", str(max(x["n"] for x in d["per"])),
             *(difference_text({**x, "p": None}, scale, digits) for x in d["per"])]
            for d in table["differences"]]
    return out


NOTE = ("Forgetting of each experience by the end (its best score while it was among the seen "
        "ones minus its final score), train split, in %: mean [{level} CI] over a group's seeds, "
        "then each group minus the first, paired by seed. MF is the mean of a row: a difference "
        "in MF may come from one experience alone.")

AGE_NOTE = ("Forgetting by age: the drop of each experience's train-split score from right after "
            "it was learned to a experiences later (R[j][j] − R[j+a][j]), averaged over the "
            "experiences old enough, in %: mean [{level} CI] over a group's seeds, then each group "
            "minus the first, paired by seed. Age 1 counts every experience but the last once, "
            "so a difference there is not the first experience's alone; the oldest age is "
            "experience 0 only.")

RELATIVE_AGE_NOTE = ("The same, each drop as a share of what was learned ((R[j][j] − R[j+a][j]) / "
                     "R[j][j], in % of R[j][j]): an arm that learns less has fewer points to "
                     "lose, so a gain in points may be a gain in learning less; a gain here is "
                     "not.")

FLATNESS_NOTES = {
    "sharpness": ("ρ-sharpness of the training loss on an experience's first training examples, "
                  "right after learning it (`landscape.record`): mean [{level} CI] over a group's "
                  "seeds, then each group minus the first, paired by seed."),
    "top_eigenvalue": ("The top Hessian eigenvalue of the same loss at the same moment, the same "
                       "way. The two measures need not agree: ρ-sharpness is the loss rise at "
                       "radius ρ in the worst direction, the eigenvalue the curvature at the "
                       "point."),
}
