"""results.json → matrices CSV, summary.md, report.html and the console table. Pure functions of
results."""

from __future__ import annotations

from pathlib import Path

from forgetless.core.diagnostics import diagnose
from forgetless.core.quantities import METRICS_PER_SPLIT, SCORE_NAMES, quantity
from forgetless.core.store import RunStore, write_files
from forgetless.report.run_html import run_html
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
    harness_line,
    harness_rows,
    md,
    pct,
    recorded_hessian_iters,
    recovery_rows,
)

METRIC_ROWS = [(k, quantity(k).meaning) for k in METRICS_PER_SPLIT]


def matrix_csv(matrix: list[list[float | None]]) -> str:
    T = len(matrix)
    lines = ["after\\experience," + ",".join(str(j) for j in range(T))]
    for i, row in enumerate(matrix):
        lines.append(f"{i}," + ",".join("" if x is None else f"{x:.6f}" for x in row))
    return "\n".join(lines) + "\n"


def _md_matrix(matrix: list[list[float | None]]) -> list[str]:
    T = len(matrix)
    out = ["| after \\ exp | " + " | ".join(str(j) for j in range(T)) + " |",
           "|---|" + "---|" * T]
    for i, row in enumerate(matrix):
        out.append(f"| {i} | " + " | ".join(pct(x) for x in row) + " |")
    return out


def warnings_md(results: dict) -> list[str]:
    notes = diagnose(results)
    return [*(f"**Weak evidence:** {n}." for n in notes), ""] if notes else []


def markdown(results: dict) -> str:
    h = results["headline"]
    run = results["run"]
    t = results["timings"]
    lines = [
        f"# {md(results['name'])} — {md(results['method'])}",
        "",
        f"Stream `{results['stream']['name']}`, {len(results['matrices']['train'])} experiences, "
        f"model `{results['config']['model']['name']}`"
        + (" + LoRA" if results["config"]["model"]["lora"]["enabled"] else "")
        + f", seed {results['seed']}, {run['processes']} process(es) on {run['device']}.",
        "" if results["complete"] else
        f"**Incomplete:** {results['completed_experiences']} experiences done so far.",
        "",
        *warnings_md(results),
        "| MA ↑ | GA ↑ | MF ↓ | GF ↓ |",
        "|---|---|---|---|",
        f"| {pct(h['MA'])} | {pct(h['GA'])} | {pct(h['MF'])} | {pct(h['GF'])} |",
        "",
        f"MA/GA: final average {SCORE_NAMES[results['config']['eval']['scorer']]} (%) on the "
        "training examples (memorization) and on the held-out test examples (generalization); "
        "MF/GF: their forgetting.",
        "",
        "## Metrics",
        "",
        "| metric | train (memorization) | test (generalization) |",
        "|---|---|---|",
    ]
    for key, label in METRIC_ROWS:
        lines.append(f"| {key} — {label} | {pct(results['metrics']['train'][key])} | "
                     f"{pct(results['metrics']['test'][key])} |")
    controls = control_rows(results)
    if controls:
        lines += ["", "## Controls", "", "Final mean over the experiences seen (%). "
                  + "; ".join(f"`{n}`: {t}" for n, t in CONTROL_NOTES.items()
                              if n in results["control_matrices"]) + ".", "",
                  "| " + " | ".join(CONTROL_HEADER) + " |", "|" + "---|" * len(CONTROL_HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in controls]
    recovery = recovery_rows(results)
    if recovery:
        lines += ["", "## Is the forgetting real? (recovery)", "", RECOVERY_NOTE + ".", "",
                  "| " + " | ".join(RECOVERY_HEADER) + " |", "|" + "---|" * len(RECOVERY_HEADER)]
        lines += ["| " + " | ".join(r) + " |" for r in recovery]
    lines += _md_probe(results.get("probe") or [])
    lines += _md_flatness(results.get("flatness") or [], results.get("forgetting_per_experience"),
                          recorded_hessian_iters(results))
    lines += _md_landscape(results.get("landscape") or [])
    for split, title in (("train", "memorization"), ("test", "generalization")):
        lines += ["", f"## Accuracy matrix, {split} ({title})", ""]
        lines += _md_matrix(results["matrices"][split])
        if results.get("initial"):
            lines.append("| untrained | " + " | ".join(pct(x) for x in results["initial"][split])
                         + " |")
    lines += ["", "## Cost", "",
              "| experience | train examples | steps | final epoch loss | train s | eval s |",
              "|---|---|---|---|---|---|"]
    for x in results["experiences"]:
        loss = f"{x['epoch_losses'][-1]:.3f}" if x["epoch_losses"] else "- (joint)"
        lines.append(f"| {x['experience']} | {x['n_train_examples']} | {x['steps']} | "
                     f"{loss} | {x['train_s']:.1f} | {x['eval_s']:.1f} |")
    parts = (f"; base-knowledge probe {t['probe_s']:.1f} s (its samples and the base model before "
             f"training, the rest within evaluation)" if t.get("probe_s") else "")
    if t.get("landscape_s"):
        parts += f"; flatness {t['landscape_s']:.1f} s (within evaluation)"
    lines += ["", f"Total: train {t['train_s']:.1f} s, evaluation {t['eval_s']:.1f} s{parts}; "
              f"peak memory {run['peak_memory_mb']:.0f} MiB; "
              f"{run['parameters']['trainable']:,} of {run['parameters']['total']:,} "
              f"parameters trained." + (f" Speed: {speed_line(results)}."
                                        if speed_line(results) else ""),
              ""]
    v = results["versions"]
    lines.append("Versions: " + ", ".join(f"{k} {v[k]}" for k in sorted(v)) + ".")
    return "\n".join(lines) + "\n"


def _num(x: float | None, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _md_probe(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    out = ["", "## What the base model knew", "",
           "Held-out samples of the base model (never trained on): next-token loss and KL(base ‖ "
           "model) per token. World-knowledge QA (country capitals and regions): exact match "
           "with the stream's scorer, and log-likelihood choice among the answer and 3 "
           "distractors (chance 25 %); retention = share of the questions the base model chose "
           "right that are still chosen right. Held-out text: next-token loss per token on held-out "
           "documents of `probe.corpus`.", "",
           "| after | held-out NLL | KL to base | QA exact match | QA choice | QA retention | "
           "held-out text NLL |",
           "|---|---|---|---|---|---|---|"]
    for r in rows:
        label = "base model" if r["after"] < 0 else str(r["after"])
        out.append(f"| {label} | {_num(r.get('sample_nll'))} | {_num(r.get('sample_kl'))} | "
                   f"{pct(r.get('qa_accuracy'))} | {pct(r.get('qa_choice_accuracy'))} | "
                   f"{pct(r.get('qa_retention'))} | {_num(r.get('corpus_nll'))} |")
    harness = harness_rows({"probe": rows})
    if harness:
        out += ["", HARNESS_NOTE + " (%):", "", "| " + " | ".join(HARNESS_HEADER) + " |",
                "|" + "---|" * len(HARNESS_HEADER)]
        out += ["| " + " | ".join(md(c) for c in row) + " |" for row in harness]
    return out


def _md_flatness(rows: list[dict], forgetting: dict | None,
                 hessian_iters: int | None = None) -> list[str]:
    if not rows:
        return []
    out = ["", "## Flatness after each experience", "",
           "Training loss on the experience just learned: ρ-sharpness (max loss rise within an L2 "
           "ball of radius ρ) and the top Hessian eigenvalue; beside them, how much of that "
           "experience's memorization accuracy is lost by the end of the run.", "",
           "| after | loss | ρ | ρ-sharpness | top eigenvalue | final forgetting (train) |",
           "|---|---|---|---|---|---|"]
    f = (forgetting or {}).get("train") or []
    for r in rows:
        e = r["experience"]
        lost = f[e] if e < len(f) else None
        out.append(f"| {r['after']} | {_num(r['loss'])} | {r['rho']} | {_num(r['sharpness'], 4)} "
                   f"| {eigenvalue_text(r, hessian_iters)} | {pct(lost)} |")
    if note := eigenvalue_note(rows, hessian_iters):
        out += ["", note]
    return out


def _md_landscape(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    out = ["", "## Loss landscape (`forgetless landscape`)", "",
           "| checkpoint after | data of | loss | ρ-sharpness | top eigenvalue | plots |",
           "|---|---|---|---|---|---|"]
    for r in rows:
        plots = ", ".join(f"[{p.split('/')[-1]}]({p})" for p in r.get("plots", []))
        out.append(f"| {r['after']} | {r['experience']} ({r['split']}) | {_num(r['loss'])} | "
                   f"{_num(r['sharpness'], 4)} | {eigenvalue_text(r)} | {plots} |")
    if note := eigenvalue_note(rows):
        out += ["", note]
    return out


def probe_line(results: dict) -> str | None:
    p = results.get("probe_summary") or {}
    parts = []
    if p.get("sample_nll_base") is not None:
        parts.append(f"held-out NLL {_num(p['sample_nll_base'])} → {_num(p['sample_nll_final'])}"
                     f", KL to base {_num(p['sample_kl_final'])}")
    if p.get("qa_accuracy_base") is not None:
        parts.append(f"country QA choice {pct(p['qa_choice_accuracy_base'])}% → "
                     f"{pct(p['qa_choice_accuracy_final'])}% (retention "
                     f"{pct(p['qa_retention_final'])}%), exact match "
                     f"{pct(p['qa_accuracy_base'])}% → {pct(p['qa_accuracy_final'])}%")
    if p.get("corpus_nll_base") is not None:
        parts.append(f"held-out text NLL {_num(p['corpus_nll_base'])} → "
                     f"{_num(p['corpus_nll_final'])}")
    return ("base knowledge: " + "; ".join(parts)) if parts else None


def speed_line(results: dict) -> str | None:
    """Training throughput: real tokens per second, padding share of the batches, and MFU where
    the device's peak is known (results.json `timings`)."""
    t = results.get("timings") or {}
    if not t.get("train_tokens_per_s"):
        return None
    mfu = f"{100 * t['mfu']:.1f} %" if t.get("mfu") is not None else "- (peak of this device unknown)"
    return (f"training {t['train_tokens_per_s']:,.0f} tokens/s, padding "
            f"{100 * t['train_padding_share']:.1f} % of batch positions, MFU {mfu}")


def console_table(results: dict) -> str:
    h = results["headline"]
    m = results["metrics"]
    rows = [("", "train (MA)", "test (GA)")]
    for key, _ in METRIC_ROWS:
        rows.append((key, pct(m["train"][key]), pct(m["test"][key])))
    width = [max(len(r[c]) for r in rows) for c in range(3)]
    body = "\n".join("  ".join(r[c].rjust(width[c]) for c in range(3)) for r in rows)
    head = (f"{results['name']} [{results['method']}]  MA {pct(h['MA'])}  GA {pct(h['GA'])}  "
            f"MF {pct(h['MF'])}  GF {pct(h['GF'])}")
    lines = [head, body, *(f"weak evidence: {n}" for n in diagnose(results))]
    if probe_line(results):
        lines.append(probe_line(results))
    if harness_line(results):
        lines.append(harness_line(results))
    if speed_line(results):
        lines.append(f"speed: {speed_line(results)}; peak memory "
                     f"{results['run']['peak_memory_mb']:,.0f} MiB")
    for r in recovery_rows(results):
        lines.append(f"recovery of experience {r[0]} ({r[1]}, {r[2]} questions): learned {r[3]} → "
                     f"final {r[4]} → recovered {r[5]} (control {r[6]}; won back {r[7]} %)")
    for split in ("train", "test"):
        lines.append(f"accuracy matrix ({split}), row = after experience i:")
        for i, row in enumerate(results["matrices"][split]):
            lines.append(f"  {i:>3} " + " ".join(pct(x).rjust(5) for x in row))
    return "\n".join(lines)


def render(store: RunStore, results: dict, quiet: bool = False, figures: bool = True) -> None:
    """The matrix CSVs, summary.md, report.html (and the KIF heatmap) of a run, from results:
    all rendered first, then written together (`write_files`). Without `figures` (between the
    throttled full renders of a running run) only the CSVs and summary.md: drawing is the slow
    part, so report.html and importance.png keep their last render."""
    from forgetless.report.importance import TOP_HEADER, importance_plot, top_units

    files: dict[Path, str | bytes] = {
        store.dir / f"matrix_{split}.csv": matrix_csv(results["matrices"][split])
        for split in ("train", "test")}
    text = markdown(results)
    png = importance_plot(results) if figures else None
    if png is not None:
        files[store.dir / "importance.png"] = png
    if png is not None or (not figures and (store.dir / "importance.png").is_file()):
        text += ("\n## Where each experience's knowledge sits (KIF)\n\n"
                 "![importance per layer and module](importance.png)\n\n"
                 f"| {' | '.join(TOP_HEADER)} |\n|{'---|' * len(TOP_HEADER)}\n"
                 + "".join(f"| {' | '.join(map(str, r))} |\n" for r in top_units(results)))
    files[store.dir / "summary.md"] = text
    if figures:
        files[store.dir / "report.html"] = run_html(results, store.dir, png)
    write_files(files)
    if not quiet:
        print(console_table(results))
        print(f"run directory: {store.dir}")
