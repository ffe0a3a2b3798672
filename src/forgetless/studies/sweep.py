"""`forgetless sweep STUDY.yaml`: a grid of runs, repeated over seeds, summarised as mean, 95 %
confidence interval (or the study's `level`) and n per arm, with paired differences to a reference arm.

A study file:

    name: buffer-size
    base: ../quickstart.yaml        # optional run config, relative to the study file
    set: {model.name: tiny-llama-5m} # overrides every run shares
    variants:                        # optional list of arms (each a set of overrides) ...
      - {method: seqft}
      - {method: replay}
    grid:                            # ... crossed with the cartesian product of these values
      replay.buffer_size: [8, 32]
    seeds: [0, 1, 2]
    level: 0.95                      # confidence level of the summary (1 − 0.05 / k for k arms)
    smoke: {train.epochs: 2}         # extra overrides under --smoke (the CI size)

A grid key that names a method section (`replay.…`) applies only to variants whose method uses
that method, so `seqft` is not multiplied by buffer sizes it has no use for. Each run lives in
`<out>/runs/<arm>-seed<k>`; a finished run with the same config is skipped, a partial one
resumes. The study directory gets sweep.json, sweep.md, sweep.html, plots, and a
`forgetless compare` of every run.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from forgetless.core.errors import ConfigError, RunDirError, RunFailedError
from forgetless.core.progress import duration
from forgetless.core.quantities import quantity
from forgetless.core.stats import (
    compared_seeds,
    describe,
    difference_text,
    interval_level,
    interval_text,
    level_text,
    paired,
)
from forgetless.core.store import atomic_write_json, atomic_write_text, lock_holder
from forgetless.report import html as H
from forgetless.report import plots
from forgetless.report.tables import md
from forgetless.studies.study import (
    StudyConfig,
    arm_label,
    execute,
    execute_when_free,
    load_study,
    plan,
    run_directory,
    run_name,
    run_state,
    selected,
)

METRICS = ["LA_train", "MA", "GA", "MF", "MF_relative", "GF", "sample_nll_rise", "wall_s"]
OPTIONAL_METRICS = ["corpus_nll_rise", "qa_retention", "recovery_gain", "sharpness_mean",
                    "top_eigenvalue_mean"]
"""Added to a study's tables where some run measured them (probe.corpus, probe.qa,
eval.recovery, landscape.record)."""
PRETRAIN_METRICS = ["loss_a_before", "loss_a_after", "loss_a_rise", "loss_b_after", "wall_s"]
"""Columns of a study's table (keys of core/quantities.py)."""


def _percent(key: str) -> bool:
    return quantity(key).unit == "%"


def pretrain_row(label: str, r: dict) -> dict:
    return {"run": label, "seed": r["seed"], "complete": r["complete"],
            **{k: r[k] for k in ("loss_a_before", "loss_a_after", "loss_a_rise", "loss_b_after")},
            "parameters": r["phase_a"]["parameters"], "wall_s": r["session_s"]}


def sweep(study_path: str | Path, out_dir: str | Path | None = None, smoke: bool = False,
          quiet: bool = False, seeds: list[int] | None = None, jobs: int = 1,
          launcher: str = "local", launcher_options: dict[str, Any] | None = None,
          threads: int | None = None, arms: list[str] | None = None) -> dict:
    """Run a study's runs (skipping finished ones) and summarise them. `jobs` > 1 or a launcher
    other than local runs them as separate processes (studies/launch.py): `threads` CPU threads
    each (default: the cores split between the jobs); `launcher_options` go to submitit.
    `arms`: only the arms matching these globs are run and summarised (the study's reference
    where it is among them, else the first of them); the rest of the study waits for a later
    call into the same `--out`."""
    import json

    from forgetless.report.compare import machine_of, run_row
    from forgetless.studies import launch

    if launcher not in launch.LAUNCHERS:
        raise ConfigError(f"--launcher {launcher}: expected one of {', '.join(launch.LAUNCHERS)}")
    if jobs < 1 or (threads is not None and threads < 1):
        raise ConfigError(f"--jobs {jobs} --threads {threads}: expected positive numbers")
    study, path = load_study(study_path)
    metrics = METRICS if study.kind == "run" else PRETRAIN_METRICS
    runs = plan(study, path, smoke, seeds)
    chosen = selected(runs, arms, path)
    out = study_dir(study, out_dir, smoke)
    before, pending, other = [], [], []
    theirs: list[launch.Job] = []  # runs another process (a second sweep) is running
    for k in chosen:
        r = runs[k]
        job = launch.Job(k, run_name(r))
        state = run_state(run_directory(out, r), r["config"])
        (before if state["state"] == "done" else pending).append(job)
        if state["state"] == "other config":  # refused now, not when its turn comes hours later
            other.append(run_directory(out, r))
        elif state["state"] == "running":
            theirs.append(job)
            if not quiet:
                print(f"{job.name}: in use by {state['holder']}: left to it; this sweep runs "
                      "the others, then waits for it", flush=True)
    if other:
        raise RunDirError(f"{other[0]}: holds a run of a different config"
                          + (f" (and {len(other) - 1} more run directories)" if len(other) > 1
                             else "")
                          + "; the study changed since it ran: remove them or choose another --out")

    loaded: dict[int, dict] = {}

    def results_of(k: int) -> dict:
        if k not in loaded:
            loaded[k] = json.loads((run_directory(out, runs[k]) / "results.json").read_text())
        return loaded[k]

    def shown(k: int, ran: bool, by: str = "") -> str:
        results = results_of(k)
        if study.kind == "run":
            mf = run_row("", results)["MF"]
            what = "MF " + ("-" if mf is None else f"{100 * mf:.1f}")
        else:
            what = f"domain-A loss rise {pretrain_row('', results)['loss_a_rise']:+.3f}"
        if not ran:
            return what + (f" (done by {by})" if by else " (done before)")
        # the run's own time (this session of it), not the time since a job array was submitted
        seconds = results["run"]["session_s"] if study.kind == "run" else results["session_s"]
        return what + f" (ran in {seconds:.0f} s)"

    counter = iter(range(1, len(chosen) + 1))

    def done(job: launch.Job, code: int | None, log: Path, ran: bool = True, by: str = "") -> None:
        if code == 0 and ran and log.is_file() and _last_line(log).endswith(launch.DONE_ELSEWHERE):
            ran, by = False, "another process"  # a --jobs process found it finished there
        if not quiet:
            what = (f"failed (exit {code}): {_last_line(log)} — its output: {log}" if code != 0
                    else shown(job.index, ran, by))
            print(f"[{next(counter)}/{len(chosen)}] {job.name}: {what}", flush=True)

    for job in before:
        done(job, 0, Path(), ran=False)
    if pending and launcher == "local" and study.kind == "run":
        finished = [(runs[k]["seed"], run_name(runs[k]), machine_of(results_of(k)))
                    for k in range(len(runs))
                    if run_state(run_directory(out, runs[k]), runs[k]["config"])["state"] == "done"]
        starting = [(runs[j.index]["seed"], j.name) for j in pending]
        if warning := split_pairs(finished, starting, this_machine(jobs, threads)):
            print(f"forgetless: warning: {warning}", file=sys.stderr, flush=True)
    planned = launch.Planned(str(Path(study_path).resolve()), str(out.resolve()), smoke, seeds)
    if launcher == "local" and jobs == 1:
        from forgetless.models.device import use_threads

        use_threads(threads)

    def take(todo: list[launch.Job]) -> list[launch.Job]:
        """Run `todo`, leaving alone any run another process has started meanwhile (two sweeps
        into one --out share the work); return the runs that failed. Processes started for
        `--jobs` or a launcher wait for such a run themselves (`launch.run_planned`)."""
        if launcher != "local":
            return launch.run_submitit(planned, todo, jobs, done, launcher,
                                       launcher_options or {}, threads)
        if jobs > 1:
            return launch.run_local(planned, todo, jobs, done, threads)
        for job in todo:
            if lock_holder(run_directory(out, runs[job.index])):  # another sweep took it since
                theirs.append(job)
                continue
            execute(study.kind, runs[job.index]["config"], run_directory(out, runs[job.index]),
                    progress=not quiet)
            done(job, 0, Path())
        return []

    failed = take([j for j in pending if j not in theirs])
    if theirs and launcher == "local" and jobs == 1:
        # wait for their holders, then run what they left unfinished (a run whose process died
        # resumes here)
        for job in theirs:
            r = runs[job.index]
            ran = execute_when_free(study.kind, r["config"], run_directory(out, r),
                                    progress=not quiet)
            done(job, 0, Path(), ran=ran, by="" if ran else "another process")
    elif theirs:
        failed += take(theirs)
    if failed:
        names = ", ".join(j.name for j in failed)
        raise RunFailedError(f"{len(failed)} of {len(chosen)} runs failed ({names}); their output is "
                             f"in {out}/logs (or {out}/submitit); finished runs are kept — fix the "
                             "cause and run the same command again")
    rows = []
    for k in chosen:
        r = runs[k]
        run_dir = run_directory(out, r)
        results = results_of(k)
        row = (run_row(run_dir.name, results) if study.kind == "run"
               else pretrain_row(run_dir.name, results))
        rows.append({**row, "arm": r["arm"], "overrides": r["overrides"], "run_dir": str(run_dir)})
    if study.kind == "run":
        metrics = [*metrics[:-1], *(k for k in OPTIONAL_METRICS
                                    if any(row.get(k) is not None for row in rows)), metrics[-1]]
    with interval_level(study.level, f"{path}: level"):
        return _summarise_study(study, path, out, [runs[k] for k in chosen], rows, metrics, arms,
                                smoke, quiet)


def _summarise_study(study, path, out, planned, rows, metrics, arms, smoke, quiet) -> dict:
    """sweep.json, .md, .html, the figures and compare/ of a study's finished runs (`planned`,
    each with its row of results in `rows`), at the study's confidence level."""
    from forgetless.report.compare import compare

    table = summarise(rows, metrics)
    reference = study.reference or table[0]["arm"]
    if arms and reference not in {t["arm"] for t in table}:
        reference = table[0]["arm"]  # the study's reference was not among the arms chosen
    if reference not in {t["arm"] for t in table}:
        raise ConfigError(f"{path}: reference: no arm '{reference}' (arms: "
                          f"{', '.join(t['arm'] for t in table)})")
    diffs = differences(rows, reference, metrics)
    summary = {"study": study.model_dump(), "smoke": smoke, "arms_chosen": arms,
               "seeds": sorted({r["seed"] for r in planned}),
               "runs": rows, "arms": table, "differences": diffs}
    if study.kind == "run":
        # each config once: under --smoke two arms can be one config (e.g. epochs set for both)
        once: dict[str, str] = {}
        for r, row in zip(planned, rows, strict=True):
            once.setdefault(r["config"].fingerprint(), row["run_dir"])
        compare(list(once.values()), out / "compare", level=study.level)
    figures = {"arms": _arms_figure(table, study.kind)}
    numeric = _numeric_axes(study)
    if numeric:
        figures["trend"] = _trend_figure(table, numeric[0], study.kind)
    if len(numeric) >= 2 and (grid := _grid_figure(table, numeric[0], numeric[1], study.kind)):
        figures["grid"] = grid
    for name, png in figures.items():
        (out / f"{name}.png").write_bytes(png)
    atomic_write_json(out / "sweep.json", summary)
    atomic_write_text(out / "sweep.md", _markdown(study, table, diffs, list(figures), metrics))
    atomic_write_text(out / "sweep.html", _page(study, table, diffs, figures, smoke, metrics))
    if not quiet:
        print(_markdown(study, table, diffs, [], metrics))
        print(f"study: {out}/sweep.html")
    summary["out_dir"] = str(out)
    return summary


def this_machine(jobs: int, threads: int | None) -> str:
    """The machine, in `machine_of`'s words, that the runs a local sweep starts will record: this
    processor and its kernels, the threads each run gets (as `launch` deals them), the GPU."""
    import torch

    from forgetless.models.device import cpu_name
    from forgetless.report.compare import machine_of
    from forgetless.studies import launch

    per = threads or (max(1, launch.cpu_cores() // jobs) if jobs > 1 else torch.get_num_threads())
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return machine_of({"run": {"machine": {"cpu": cpu_name(), "threads": per, "gpu": gpu,
                                           "cpu_capability": torch.backends.cpu.get_cpu_capability()}}})


def split_pairs(finished: list[tuple[int, str, str | None]], starting: list[tuple[int, str]],
                here: str) -> str | None:
    """A warning when runs about to start pair, by seed, with finished runs of the study that
    ran on another machine (processor, kernels, thread count or GPU): the same config and seed
    give other numbers there, so the pair's difference would mix the method with the machine.
    `finished`: (seed, run, machine or None when unrecorded); `starting`: (seed, run)."""
    seeds = {seed for seed, _ in starting}
    elsewhere: dict[int, list[str]] = {}
    for seed, name, machine in finished:
        if seed in seeds and machine is not None and machine != here:
            elsewhere.setdefault(seed, []).append(f"{name} on {machine}")
    if not elsewhere:
        return None
    split = "; ".join(f"seed {seed}: {', '.join(runs)}" for seed, runs in sorted(elsewhere.items()))
    return (f"this sweep runs on {here}, but finished runs of the same seeds ran on another "
            f"machine ({split}): the same config and seed give other numbers on another "
            "processor or thread count, so those seeds' paired differences would mix the "
            "method's effect with the machine's; run each seed's arms on one machine (--threads "
            "sets the count)")


def study_dir(study: StudyConfig, out_dir: str | Path | None, smoke: bool) -> Path:
    return Path(out_dir or Path("runs") / "studies" / (study.name + ("-smoke" if smoke else "")))


def status(study_path: str | Path, out_dir: str | Path | None = None, smoke: bool = False,
           seeds: list[int] | None = None, arms: list[str] | None = None) -> list[str]:
    """`forgetless sweep --dry-run`: a line per run saying where it stands (run_state), then a
    count by state and the work left, estimated from each arm's finished runs (of the arms
    matching `arms`, where given)."""
    study, path = load_study(study_path)
    runs = plan(study, path, smoke, seeds)
    runs = [runs[k] for k in selected(runs, arms, path)]
    out = study_dir(study, out_dir, smoke)
    states = [run_state(run_directory(out, r), r["config"]) for r in runs]
    took: dict[str, list[float]] = {}
    for r, st in zip(runs, states, strict=True):
        if st["state"] == "done" and "work_s" in st:
            took.setdefault(r["arm"], []).append(st["work_s"])
    # an arm with no finished run: its partial runs' work so far plus their estimated rest
    partial: dict[str, list[float]] = {}
    for r, st in zip(runs, states, strict=True):
        if r["arm"] not in took and "left_s" in st:
            partial.setdefault(r["arm"], []).append(st.get("work_s", 0.0) + st["left_s"])
    lines, left, unknown = [], 0.0, set()
    for r, st in zip(runs, states, strict=True):
        name = run_name(r)
        what = st["state"]
        if what == "done" and study.kind == "run":
            mf = st["results"]["headline"]["MF"]
            what += ", MF " + ("-" if mf is None else f"{100 * mf:.1f}")
        if what == "running":
            what += f" ({st['holder']})"
        if st.get("experiences") and st["state"] in ("running", "stopped"):
            done, total = st["experiences"]
            what += f", {done} of {total or '?'} experiences done"
        if st["state"] == "stopped":
            what += " (the next sweep resumes it)"
        if st["state"] == "other config":
            what += f": {run_directory(out, r)} holds another config (the sweep refuses it)"
        if "work_s" in st:
            what += f", {duration(st['work_s'])} of work"
        if "left_s" in st and r["arm"] not in took:
            what += f", about {duration(st['left_s'])} left at its pace"
        lines.append(f"{name}: {what}")
        if st["state"] in ("pending", "running", "stopped"):
            if r["arm"] in took:
                left += max(float(np.mean(took[r["arm"]])) - st.get("work_s", 0.0), 0.0)
            elif "left_s" in st:
                left += st["left_s"]
            elif r["arm"] in partial:
                left += float(np.mean(partial[r["arm"]]))
            else:
                unknown.add(r["arm"])
    counts = {s: sum(st["state"] == s for st in states)
              for s in ("done", "running", "stopped", "pending", "other config")}
    summary = (f"{len(runs)} run{'s' * (len(runs) != 1)}: "
               + ", ".join(f"{n} {s}" for s, n in counts.items() if n))
    arms_text = f"{len(unknown)} arm{'s' * (len(unknown) > 1)} with none finished"
    if len(runs) > counts["done"] and len(unknown) and not left:
        summary += f"; left: not estimated ({arms_text})"
    elif len(runs) > counts["done"]:
        summary += (f"; left: about {duration(left)} of work at the pace of each arm's finished "
                    f"runs (or of its partial ones, by the work planned)")
        if unknown:
            summary += f", plus {arms_text}"
    return [*lines, summary]


def _last_line(log: Path) -> str:
    """What a failed run said last (its error, for a forgetless error)."""
    try:
        lines = [line for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


def summarise(rows: list[dict], metrics=METRICS) -> list[dict]:
    """Per arm and metric: n, mean, sd (ddof 1) and the t interval over its seeds (95 %, or the
    level `interval_level` sets)."""
    table = []
    for arm in dict.fromkeys(r["arm"] for r in rows):
        mine = [r for r in rows if r["arm"] == arm]
        entry: dict[str, Any] = {"arm": arm, "overrides": mine[0]["overrides"],
                                 "seeds": [r["seed"] for r in mine]}
        for key in metrics:
            entry[key] = describe([r.get(key) for r in mine])
        table.append(entry)
    return table


def differences(rows: list[dict], reference: str, metrics=METRICS) -> list[dict]:
    """Every other arm minus the reference arm, paired by seed: per metric the mean difference,
    its CI (95 %, or the level `interval_level` sets) and the paired t-test's p
    (core/stats.py)."""
    by_arm: dict[str, dict[int, dict]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], {})[r["seed"]] = r
    base = by_arm[reference]
    out = []
    for arm, runs in by_arm.items():
        if arm == reference:
            continue
        out.append({"arm": arm, "reference": reference, **{
            key: paired({s: r.get(key) for s, r in base.items()},
                        {s: r.get(key) for s, r in runs.items()}) for key in metrics}})
    return out


def _rows(table: list[dict], metrics) -> list[list[str]]:
    out = []
    for t in table:
        cells = [t["arm"], str(len(t["seeds"]))]
        for key in metrics:
            q = quantity(key)
            cells.append(interval_text(t[key], q.scale, q.digits, with_n=False))
        out.append(cells)
    return out


def _diff_rows(diffs: list[dict], metrics) -> list[list[str]]:
    return [[d["arm"], str(compared_seeds(d, metrics)),
             *(difference_text(d[k], quantity(k).scale, quantity(k).digits) for k in metrics)]
            for d in diffs]


def _header(metrics, n_label: str = "n (seeds)") -> list[str]:
    return ["arm", n_label, *(quantity(key).label for key in metrics)]


TABLE_NOTE = ("Mean [{level} confidence interval, t distribution] over n seeds (each seed varies "
              "initialisation and data); accuracy and forgetting in %, losses in nats per token. "
              "One seed is an anecdote: no interval is shown for n = 1.")
DIFF_NOTE = ("Each arm minus {ref}, paired by seed: mean difference [{level} CI], paired t-test p; "
             "n = the seeds both arms ran.")


def _table_note() -> str:
    return TABLE_NOTE.format(level=level_text())


def _diff_note(reference: str) -> str:
    return DIFF_NOTE.format(ref=reference, level=level_text())


def _markdown(study, table, diffs, figures, metrics) -> str:
    header = _header(metrics)
    lines = [f"# Study: {study.name}", "", "| " + " | ".join(header) + " |",
             "|" + "---|" * len(header)]
    lines += ["| " + " | ".join([md(r[0]), *r[1:]]) + " |" for r in _rows(table, metrics)]
    lines += ["", _table_note()]
    if diffs:
        header = _header(metrics, "n (pairs)")
        lines += ["", f"## Paired differences to {diffs[0]['reference']}", "",
                  "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join([md(r[0]), *r[1:]]) + " |" for r in _diff_rows(diffs, metrics)]
        lines += ["", _diff_note(diffs[0]["reference"])]
    lines += [f"![{n}]({n}.png)" for n in figures]
    return "\n".join(lines) + "\n"


def _numeric_axes(study: StudyConfig) -> list[str]:
    """Grid keys with several values, all numbers: what trends and grids are drawn along."""
    return [key for key, values in study.grid.items()
            if len(values) > 1 and all(isinstance(v, int | float) and not isinstance(v, bool)
                                       for v in values)]


def _groups(table: list[dict], keys: tuple[str, ...]) -> dict[str, list[dict]]:
    """The arms that set every one of `keys`, grouped by their other overrides (the label of
    those): one line of a trend, one row of heat maps."""
    groups: dict[str, list[dict]] = {}
    for t in table:
        if all(k in t["overrides"] for k in keys):
            rest = {k: v for k, v in t["overrides"].items() if k not in keys}
            groups.setdefault(arm_label(rest), []).append(t)
    return groups


GRID_PANELS = {"run": ("LA_train", "MF", "GF"), "pretrain": ("loss_a_before", "loss_a_rise")}


def grid_values(table: list[dict], x_key: str, y_key: str, metric: str
                ) -> tuple[list, list, dict[str, np.ndarray]]:
    """(x values, y values, {other overrides' label: matrix[y][x] of the metric's mean}), the
    metric in the table's units (NaN where a cell has no run or no value)."""
    cells = {label: {(t["overrides"][x_key], t["overrides"][y_key]): t for t in items}
             for label, items in _groups(table, (x_key, y_key)).items()}
    xs = sorted({x for g in cells.values() for x, _ in g})
    ys = sorted({y for g in cells.values() for _, y in g})
    grids = {}
    for label, group in cells.items():
        grid = np.full((len(ys), len(xs)), np.nan)
        for (x, y), t in group.items():
            if t[metric]["mean"] is not None:
                grid[ys.index(y), xs.index(x)] = t[metric]["mean"]
        grids[label] = grid
    return xs, ys, grids


def _grid_figure(table: list[dict], x_key: str, y_key: str, kind: str = "run") -> bytes | None:
    """Two numeric grid keys (e.g. learning rate × epochs) as heat maps, one row per combination
    of the other overrides, one column per metric, each cell annotated: a trend over two
    axes reads better as a table with colour than as a dozen lines."""
    metrics = GRID_PANELS[kind]
    per_metric = {m: grid_values(table, x_key, y_key, m) for m in metrics}
    xs, ys, groups = per_metric[metrics[0]]
    if not groups:
        return None
    fig, axes = plots.plt.subplots(len(groups), len(metrics), squeeze=False,
                                   figsize=(3.6 * len(metrics), 0.5 + 0.45 * len(ys) * len(groups)
                                            + 0.6 * len(groups)))
    for row, label in enumerate(groups):
        for col, m in enumerate(metrics):
            ax = axes[row][col]
            scale = 100 if _percent(m) else 1
            grid = scale * per_metric[m][2][label]
            # Forgetting and loss rise: darker is worse; learned: darker is better.
            cmap = "Greens" if m == "LA_train" else "Reds"
            finite = grid[np.isfinite(grid)]
            vmin = min(0.0, finite.min()) if finite.size else 0.0
            vmax = 100.0 if _percent(m) else finite.max() if finite.size else 1.0
            ax.imshow(grid, cmap=cmap, vmin=vmin, vmax=vmax, aspect="auto")
            for i in range(len(ys)):
                for j in range(len(xs)):
                    if np.isfinite(grid[i, j]):
                        dark = (grid[i, j] - vmin) > 0.6 * (vmax - vmin)
                        ax.text(j, i, f"{grid[i, j]:.1f}" if scale == 100 else f"{grid[i, j]:.2f}",
                                ha="center", va="center", fontsize=8,
                                color="white" if dark else "black")
            ax.set_xticks(range(len(xs)), [f"{x:g}" for x in xs], fontsize=7)
            ax.set_yticks(range(len(ys)), [f"{y:g}" for y in ys], fontsize=7)
            ax.set_xlabel(x_key, fontsize=8)
            ax.set_ylabel(y_key, fontsize=8)
            name = quantity(m).label
            ax.set_title(f"{label}: {name}" + (" (%)" if scale == 100 else ""), fontsize=8)
    fig.tight_layout()
    png = H.figure_png(fig)
    plots.close(fig)
    return png


def _ci_errors(table: list[dict], key: str, scale: float) -> np.ndarray:
    """Error bars = the CI at the study's level (asymmetric rows below/above the mean; none for n = 1)."""
    low = [scale * (t[key]["mean"] - t[key]["ci_low"]) if t[key]["ci_low"] is not None else 0
           for t in table]
    high = [scale * (t[key]["ci_high"] - t[key]["mean"]) if t[key]["ci_high"] is not None else 0
            for t in table]
    return np.array([low, high])


PANELS = {"run": (("MA", "MF"), ("GA", "GF")),
          "pretrain": (("loss_a_before", "loss_a_after"), ("loss_a_rise", "loss_b_after"))}


def _arms_figure(table: list[dict], kind: str = "run") -> bytes:
    fig, axes = plots.figure(11, 3.8, 2)
    x = np.arange(len(table))
    for ax, keys in zip(axes, PANELS[kind], strict=True):
        for k, key in enumerate(keys):
            scale = 100 if _percent(key) else 1
            means = [scale * (t[key]["mean"] or 0) for t in table]
            ax.bar(x + (k - 0.5) * 0.38, means, 0.38, yerr=_ci_errors(table, key, scale),
                   capsize=3, label=key)
        ax.set_xticks(x, [t["arm"] for t in table], rotation=30, ha="right", fontsize=7)
        ax.set_ylabel("%" if kind == "run" else "loss per token")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3, axis="y")
    png = H.figure_png(fig)
    plots.close(fig)
    return png


def _trend_figure(table: list[dict], key: str, kind: str = "run") -> bytes:
    """Metric vs the numeric grid key, one line per combination of the other overrides."""
    fig, axes = plots.figure(11, 3.8, 2)
    groups = _groups(table, (key,))
    panels = ((("MF", "GF"), ("MA", "GA")) if kind == "run" else
              (("loss_a_rise",), ("loss_a_before", "loss_b_after")))
    # Arms without the key (e.g. seqft in a buffer-size study) are drawn as dashed references.
    references = [t for t in table if key not in t["overrides"]]
    values = sorted({t["overrides"][key] for g in groups.values() for t in g})
    for ax, metrics in zip(axes, panels, strict=True):
        colours = iter(plots.plt.rcParams["axes.prop_cycle"].by_key()["color"] * 4)
        for t in references:
            for m in metrics:
                if t[m]["mean"] is not None:
                    scale = 100 if _percent(m) else 1
                    ax.axhline(scale * t[m]["mean"], ls="--", lw=1, color=next(colours),
                               label=f"{t['arm']} {m}")
        for label, items in groups.items():
            items = sorted(items, key=lambda t: t["overrides"][key])
            xs = [t["overrides"][key] for t in items]
            for m in metrics:
                scale = 100 if _percent(m) else 1
                ys = [scale * (t[m]["mean"] or 0) for t in items]
                ax.errorbar(xs, ys, yerr=_ci_errors(items, m, scale), marker="o", capsize=3,
                            label=f"{label} {m}")
        ax.set_xlabel(key)
        ax.set_ylabel("%" if kind == "run" else "loss per token")
        if values and all(v > 0 for v in values):
            ax.set_xscale("log")
            ax.set_xticks(values, [f"{v:g}" for v in values])
            ax.minorticks_off()
        ax.legend(fontsize=6)
        ax.grid(alpha=0.3)
    png = H.figure_png(fig)
    plots.close(fig)
    return png


def _page(study, table, diffs, figures, smoke, metrics) -> str:
    link = (' Every run: <a href="compare/compare.html">comparison</a>.'
            if study.kind == "run" else "")
    sections = [H.section("table", "Arms", H.table(_header(metrics), _rows(table, metrics)) +
                          f'<p class="note">{H.esc(_table_note())}{link}</p>')]
    if diffs:
        ref = diffs[0]["reference"]
        sections.append(H.section("differences", f"Paired differences to {ref}",
                                  H.table(_header(metrics, "n (pairs)"), _diff_rows(diffs, metrics))
                                  + f'<p class="note">{H.esc(_diff_note(ref))}</p>'))
    sections.append(H.section("arms", "Accuracy and forgetting per arm",
                              H.img(figures["arms"], "arms")))
    if "trend" in figures:
        sections.append(H.section("trend", "Trend", H.img(figures["trend"], "trend")))
    if "grid" in figures:
        sections.append(H.section("grid", "Grid", H.img(figures["grid"], "grid")))
    return H.page(f"Study: {study.name}", "smoke size" if smoke else "full size", sections)
