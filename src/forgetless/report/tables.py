"""Table pieces shared by summary.md and report.html."""

from __future__ import annotations

from forgetless.core.metrics import pooled_recovery


def md(text: object) -> str:
    """Text as Markdown shows it literally (names of runs and arms may hold |, *, _, [ …)."""
    out = str(text).replace("\\", "\\\\").replace("\n", " ")
    for ch in "|*_[]`<>#":
        out = out.replace(ch, "\\" + ch)
    return out


def pct(x: float | None, digits: int = 1) -> str:
    return "-" if x is None else f"{100 * x:.{digits}f}"


def recorded_hessian_iters(results: dict) -> int | None:
    """The power-iteration cap of a run's flatness rows (`landscape.hessian_iters`)."""
    return ((results.get("config") or {}).get("landscape") or {}).get("hessian_iters")


def eigenvalue_settled(row: dict, hessian_iters: int | None = None) -> bool | None:
    """Whether a flatness row's top-eigenvalue estimate settled before the power iteration's
    cap. Rows written before `settled` was recorded: it settled if it stopped short of
    `hessian_iters`, and did not if it stopped there (it may have settled on that very step:
    then it is counted as not settled). None where there is no estimate or no way to tell."""
    if row.get("top_eigenvalue") is None:
        return None
    if "settled" in row:
        return bool(row["settled"])
    if hessian_iters is None or "iterations" not in row:
        return None
    return row["iterations"] < hessian_iters


def eigenvalue_text(row: dict, hessian_iters: int | None = None, digits: int = 2) -> str:
    """The top eigenvalue as a table shows it: "≥ x" where the estimate did not settle."""
    x = row.get("top_eigenvalue")
    if x is None:
        return "-"
    return ("≥ " if eigenvalue_settled(row, hessian_iters) is False else "") + f"{x:.{digits}f}"


EIGENVALUE_NOTE = ("≥: the power iteration did not settle within its steps "
                   "(`landscape.hessian_iters`); an estimate is a Rayleigh quotient, which never "
                   "exceeds the top eigenvalue, so this one is a lower bound.")


def eigenvalue_note(rows: list[dict], hessian_iters: int | None = None) -> str | None:
    """EIGENVALUE_NOTE where a table of these flatness rows shows a "≥"; None otherwise."""
    unsettled = any(eigenvalue_settled(r, hessian_iters) is False for r in rows)
    return EIGENVALUE_NOTE if unsettled else None


CONTROL_NOTES = {"name_swap": "the same questions with each concept's name swapped for another "
                              "concept's of its experience: a model that stored the facts drops "
                              "towards chance here, a shortcut that ignores the concept does not"}


def control_rows(results: dict) -> list[list[str]]:
    """Per control and split: the final mean accuracy over the experiences seen, real and under
    the control, and the gap (what needs the concept)."""
    rows = []
    for name, by_split in (results.get("control_matrices") or {}).items():
        for split in ("train", "test"):
            real, ctrl = results["matrices"][split][-1], by_split[split][-1]
            pairs = [(a, b) for a, b in zip(real, ctrl, strict=True)
                     if a is not None and b is not None]
            if not pairs:
                continue
            r = sum(a for a, _ in pairs) / len(pairs)
            c = sum(b for _, b in pairs) / len(pairs)
            rows.append([name, split, pct(r), pct(c), pct(r - c)])
    return rows


CONTROL_HEADER = ["control", "split", "accuracy", "under the control", "gap (needs the concept)"]


HARNESS_HEADER = ["after", "task", "metric", "value", "standard error", "examples"]
HARNESS_NOTE = ("lm-evaluation-harness tasks (`probe.lm_eval`), scored by the harness itself on "
                "the base model and wherever the probe measured")


def harness_rows(results: dict) -> list[list[str]]:
    """One row per (probe measurement, harness task, metric): value and standard error (%)."""
    rows = []
    for r in results.get("probe") or []:
        for task, metrics in (r.get("lm_eval") or {}).items():
            for name, value in metrics.items():
                if name == "n" or name.endswith("_stderr"):
                    continue
                rows.append(["base model" if r["after"] < 0 else str(r["after"]), task, name,
                             pct(value), pct(metrics.get(f"{name}_stderr")),
                             str(metrics.get("n", "-"))])
    return rows


def harness_line(results: dict) -> str | None:
    """Base → final of each harness task's first metric, for the console."""
    rows = results.get("probe") or []
    base = next((r for r in rows if r["after"] < 0), None)
    last = rows[-1] if rows and rows[-1]["after"] >= 0 else None
    if base is None or last is None or not base.get("lm_eval"):
        return None
    parts = []
    for task, metrics in base["lm_eval"].items():
        name = next((k for k in metrics if k != "n" and not k.endswith("_stderr")), None)
        final = (last.get("lm_eval") or {}).get(task, {}).get(name)
        if name is not None and final is not None:
            parts.append(f"{task} {name} {pct(metrics[name])}% → {pct(final)}%")
    return ("lm-eval: " + "; ".join(parts)) if parts else None


RECOVERY_HEADER = ["experience", "split", "questions scored", "learned", "final", "recovered",
                   "control", "forgetting won back"]
RECOVERY_NOTE = ("A copy of the final model is tuned briefly on the training questions of some of "
                 "an experience's concepts and scored on its other concepts' questions (%): "
                 "right after learning them, at the end, after the tuning, and the same tuning "
                 "from the untrained model (control: what the tuning teaches by itself). "
                 "Forgetting won back = (recovered − final) / (learned − final): the share of "
                 "the forgetting that was lost alignment, not lost knowledge")


def recovery_rows(results: dict) -> list[list[str]]:
    """One row per (experience, split) of the recovery probe, then the pooled rows ("all") where
    it measured more than one experience."""
    rows = (results.get("recovery") or {}).get("rows", [])
    table = [[str(r["experience"]), r["split"], str(r["n"]), pct(r["learned"]), pct(r["final"]),
              pct(r["recovered"]), pct(r["control"]), pct(pooled_recovery([r])[r["split"]]
                                                          ["won_back"])] for r in rows]
    if len({r["experience"] for r in rows}) > 1:
        for split, p in pooled_recovery(rows).items():
            table.append(["all", split, str(p["n"]), pct(p["learned"]), pct(p["final"]),
                          pct(p["recovered"]), pct(p["control"]), pct(p["won_back"])])
    return table
