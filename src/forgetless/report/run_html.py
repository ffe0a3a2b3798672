"""report.html of one run: results.json drawn as one self-contained page."""

from __future__ import annotations

from pathlib import Path

import yaml

from forgetless.core.diagnostics import diagnose
from forgetless.core.quantities import METRICS_PER_SPLIT, SCORE_NAMES, quantity
from forgetless.report import html as H
from forgetless.report import plots
from forgetless.report.tables import (
    CONTROL_HEADER,
    CONTROL_NOTES,
    HARNESS_HEADER,
    HARNESS_NOTE,
    RECOVERY_HEADER,
    RECOVERY_NOTE,
    control_rows,
    eigenvalue_note,
    eigenvalue_text,
    harness_rows,
    recorded_hessian_iters,
    recovery_rows,
)


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def landscape_plot(run_dir: Path, name: object) -> Path | None:
    """A plot `forgetless landscape` wrote: a PNG under <run dir>/landscape/, nothing else (a
    results.json could name any file, and the page embeds what it names)."""
    if not isinstance(name, str):
        return None
    root = (run_dir / "landscape").resolve()
    path = (run_dir / name).resolve()
    if path.parent != root or path.suffix != ".png" or not path.is_file():
        return None
    with path.open("rb") as fh:
        return path if fh.read(8) == b"\x89PNG\r\n\x1a\n" else None


def run_html(results: dict, run_dir: Path, importance_png: bytes | None = None) -> str:
    """The run's page. `importance_png`: the KIF heatmap just drawn (default: importance.png in
    the run directory, if there)."""
    h = results["headline"]
    m = results["metrics"]
    run = results["run"]
    score = SCORE_NAMES[results["config"]["eval"]["scorer"]]
    notes = "".join(f'<p class="note"><b>Weak evidence:</b> {H.esc(n)}.</p>'
                    for n in diagnose(results))
    sections = [H.section("summary", "Summary", notes + H.cards(
        [("MA ↑ memorization", _pct(h["MA"])), ("GA ↑ generalization", _pct(h["GA"])),
         ("MF ↓ forgetting (train)", _pct(h["MF"])), ("GF ↓ forgetting (test)", _pct(h["GF"]))])
        + f'<p class="note">Scores are {H.esc(score)} (%). MA/GA: final average on the training '
        "and test examples of every experience; MF/GF: how much of each experience's best score "
        "is lost by the end, averaged.</p>"
        + H.table(["metric", "train (memorization)", "test (generalization)"],
                  [[f"{k} — {label}", _pct(m["train"][k]), _pct(m["test"][k])]
                   for k, label in ((k, quantity(k).meaning) for k in METRICS_PER_SPLIT)]))]

    fig = plots.matrices_figure([("", results)])
    sections.append(H.section("matrices", "Accuracy matrices",
                              '<p class="note">Row i: scores after training through experience '
                              "i; column j: experience j.</p>" + H.img(H.figure_png(fig),
                                                                      "accuracy matrices")))
    plots.close(fig)

    controls = control_rows(results)
    if controls:
        sections.append(H.section("controls", "Controls", H.table(CONTROL_HEADER, controls)
                                  + '<p class="note">Final mean over the experiences seen (%). '
                                  + H.esc("; ".join(f"{n}: {t}" for n, t in CONTROL_NOTES.items()
                                                    if n in results["control_matrices"]))
                                  + ".</p>"))

    recovery = recovery_rows(results)
    if recovery:
        sections.append(H.section("recovery", "Is the forgetting real? (recovery)",
                                  H.table(RECOVERY_HEADER, recovery)
                                  + f'<p class="note">{H.esc(RECOVERY_NOTE)}.</p>'))

    per = results.get("forgetting_per_experience") or {}
    T = len(results["matrices"]["train"])
    if T > 1:
        sections.append(H.section("forgetting", "Forgetting per experience", H.table(
            ["experience", "forgetting (train)", "forgetting (test)"],
            [[j, _pct((per.get("train") or [None] * T)[j]), _pct((per.get("test") or [None] * T)[j])]
             for j in range(T - 1)])))

    probe = results.get("probe") or []
    if probe:
        sections.append(H.section("probe", "What the base model knew", H.table(
            ["after", "held-out NLL", "KL to base", "QA exact match", "QA choice", "QA retention",
             "held-out text NLL"],
            [["base model" if r["after"] < 0 else r["after"], _num(r.get("sample_nll")),
              _num(r.get("sample_kl")), _pct(r.get("qa_accuracy")),
              _pct(r.get("qa_choice_accuracy")), _pct(r.get("qa_retention")),
              _num(r.get("corpus_nll"))] for r in probe])))
        harness = harness_rows(results)
        if harness:
            sections.append(H.section("harness", "lm-evaluation-harness",
                                      H.table(HARNESS_HEADER, harness)
                                      + f'<p class="note">{H.esc(HARNESS_NOTE)} (%).</p>'))

    flat = results.get("flatness") or []
    if flat:
        f = per.get("train") or []
        cap = recorded_hessian_iters(results)
        note = eigenvalue_note(flat, cap)
        sections.append(H.section("flatness", "Flatness after each experience", H.table(
            ["after", "loss", "ρ", "ρ-sharpness", "top eigenvalue", "final forgetting (train)"],
            [[r["after"], _num(r["loss"]), r["rho"], _num(r["sharpness"], 4),
              eigenvalue_text(r, cap),
              _pct(f[r["experience"]] if r["experience"] < len(f) else None)] for r in flat])
            + (f'<p class="note">{H.esc(note)}</p>' if note else "")))

    pictures = []
    for r in results.get("landscape") or []:
        for p in r.get("plots", []):
            if (path := landscape_plot(run_dir, p)) is not None:
                pictures.append(H.img(path, p))
    if pictures:
        sections.append(H.section("landscape", "Loss landscape", "".join(pictures)))
    if importance_png is None and (run_dir / "importance.png").is_file():
        importance_png = (run_dir / "importance.png").read_bytes()
    if importance_png is not None:
        from forgetless.report.importance import TOP_HEADER, top_units

        sections.append(H.section("importance", "Where each experience's knowledge sits (KIF)",
                                  H.img(importance_png, "importance heatmap")
                                  + H.table(TOP_HEADER, top_units(results))))

    cost_rows = [[x["experience"], x["n_train_examples"], x["steps"],
                  _num(x["epoch_losses"][-1]) if x["epoch_losses"] else "- (joint)",
                  f"{x['train_s']:.1f}", f"{x['eval_s']:.1f}"] for x in results["experiences"]]
    sections.append(H.section("cost", "Cost", H.table(
        ["experience", "train examples", "steps", "final epoch loss", "train s", "eval s"],
        cost_rows) + f'<p class="note">{run["processes"]} process(es) on {H.esc(run["device"])}; '
        f'peak memory {run["peak_memory_mb"]:.0f} MB; {run["parameters"]["trainable"]:,} of '
        f'{run["parameters"]["total"]:,} parameters trained.</p>'))
    sections.append(H.section("config", "Config", "<pre>" + H.esc(
        yaml.safe_dump(results["config"], sort_keys=False)) + "</pre>"))
    lora = " + LoRA" if results["config"]["model"]["lora"]["enabled"] else ""
    subtitle = (f"stream {results['stream']['name']}, {T} experiences, model "
                f"{results['config']['model']['name']}{lora}, seed {results['seed']}"
                + ("" if results["complete"] else
                   f" — incomplete: {results['completed_experiences']} experiences done"))
    return H.page(f"{results['name']} — {results['method']}", subtitle, sections)
