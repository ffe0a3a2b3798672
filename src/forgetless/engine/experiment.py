"""One continual-learning run: stream → model → for each experience: train, evaluate, save.

Resumable: after every experience the model's trainable weights, every method's state and all
evaluations so far go into one checkpoint; re-running the same config continues after the last
complete checkpoint and, because every random choice is seeded per experience, ends with the
same numbers as an uninterrupted run.
"""

from __future__ import annotations

import json
import resource
import shutil
import time
from pathlib import Path

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import ProjectConfiguration, set_seed

from forgetless.config import RunConfig
from forgetless.data.collate import encode_all
from forgetless.data.stream import build_stream
from forgetless.engine.hooks import Context
from forgetless.engine.loop import derive_seed, step_layout, train_experience
from forgetless.errors import ConfigError, RunDirError
from forgetless.eval.evaluator import check_scorer, evaluate, prediction_rows
from forgetless.eval.probe import Probe
from forgetless.landscape import flatness
from forgetless.methods import registry
from forgetless.models.load import count_parameters, load_model, load_tokenizer
from forgetless.report.summary import write_report
from forgetless.results import build_results
from forgetless.store import RunStore, atomic_write_text
from forgetless.tracking import (
    check_trackers,
    evaluation_scalars,
    flat_config,
    prepare_environment,
)


def default_run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / f"{cfg.name}-{cfg.method}-{cfg.fingerprint()}"


def _prepare_run_dir(store: RunStore, cfg: RunConfig, fresh: bool) -> None:
    config_path = store.dir / "config.yaml"
    if (config_path.is_file() and not fresh
            and not cfg.matches_saved(yaml.safe_load(config_path.read_text()))):
        raise RunDirError(
            f"{store.dir}: holds a run of a different config; pass --fresh to replace it "
            f"or choose another --out"
        )
    if fresh and store.dir.exists():
        shutil.rmtree(store.dir)
    store.dir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))


def check_precision(cfg: RunConfig) -> None:
    """bf16 on a GPU without it would fail deep inside accelerate; say so in one line first."""
    if (cfg.train.mixed_precision == "bf16" and torch.cuda.is_available()
            and not torch.cuda.is_bf16_supported()):
        raise ConfigError(f"train.mixed_precision=bf16: this GPU ({torch.cuda.get_device_name()}) "
                          f"has no bf16 support; use fp32")


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def run_experiment(cfg: RunConfig, run_dir: str | Path | None = None, fresh: bool = False,
                   quiet: bool = False) -> dict:
    started = time.perf_counter()
    run_path = Path(run_dir or default_run_dir(cfg))
    trackers = list(cfg.tracking.trackers)
    check_trackers(trackers)
    check_precision(cfg)
    # accelerate keeps one state per process and refuses a second precision; one process may run
    # several experiments (sweeps, the Python API), so start each from a clean accelerator state
    # (the process group, if any, is kept).
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(
        cpu=not torch.cuda.is_available(), mixed_precision=cfg.train.accelerate_precision,
        log_with=trackers or None,
        project_config=ProjectConfiguration(project_dir=str(run_path),
                                            logging_dir=str(run_path / "tracking")))
    main = accelerator.is_main_process
    stream = build_stream(cfg.data)
    check_scorer(cfg.eval.scorer, stream)
    methods = registry.build(cfg)
    for e in range(min(2, len(stream))):  # reservations may start with the second experience
        step_layout(cfg, methods, accelerator.num_processes, e)
    set_seed(cfg.seed)
    tokenizer = load_tokenizer(cfg.model)
    model = load_model(cfg.model, tokenizer, cfg.seed)
    # Only now that stream and model are known good does anything get written.
    store = RunStore(run_path)
    if main:
        _prepare_run_dir(store, cfg, fresh)
    accelerator.wait_for_everyone()
    if trackers:
        prepare_environment(trackers, store.dir / "tracking")
        accelerator.init_trackers(store.dir.name, config=flat_config(cfg.to_dict()))
    trainable, total = count_parameters(model)
    owner = next((m for m in methods if registry.get(m.name).owns_optimizer_step), None)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=cfg.train.lr, weight_decay=cfg.train.weight_decay,
    )
    model, optimizer = accelerator.prepare(model, optimizer)
    ctx = Context(cfg, accelerator, model, tokenizer, stream, cfg.seed, optimizer)
    for m in methods:
        m.setup(ctx)

    def enc(examples):
        return encode_all(examples, tokenizer, cfg.data.prompt_template, cfg.train.max_length)

    examples = {(e.index, s): e.split(s) for e in stream.experiences for s in ("train", "test")}
    encoded = {key: enc(v) for key, v in examples.items()}

    state: dict = {"completed": -1, "initial_done": False, "global_step": 0,
                   "evaluations": [], "experiences": []}
    checkpoints = store.checkpoints()
    if checkpoints:
        _, path = checkpoints[-1]
        weights, method_states, state = store.load_checkpoint(path)
        named = dict(ctx.unwrapped_model.named_parameters())
        if set(weights) != {n for n, p in named.items() if p.requires_grad}:
            raise RunDirError(f"{path}: checkpoint weights do not match this model")
        with torch.no_grad():
            for name, value in weights.items():
                named[name].copy_(value)
        for m in methods:
            m.load_state_dict(method_states.get(m.name, {}))
        ctx.global_step = state["global_step"]
        ctx.pristine = False
        if main and not quiet:
            print(f"resuming {store.dir} after experience {state['completed']}")

    def run_evaluation(after: int, indices: list[int]) -> float:
        t0 = time.perf_counter()
        tasks = [(j, s) for j in indices for s in ("train", "test")]
        scores = evaluate(ctx, tasks, examples, encoded, after)
        rows = []
        for key, sc in scores.items():
            state["evaluations"].append({
                "after": after, "experience": key[0], "split": key[1], "n": len(sc),
                "accuracy": sum(s.points for s in sc) / max(len(sc), 1),
                "nll": sum(s.nll for s in sc) / max(len(sc), 1),
            })
            rows += prediction_rows(after, key, examples[key], sc)
        if main:
            name = "initial" if after < 0 else f"after-{after:03d}"
            atomic_write_text(store.dir / "predictions" / f"{name}.jsonl",
                              "".join(json.dumps(r) + "\n" for r in rows))
        return time.perf_counter() - t0

    state.setdefault("probes", [])
    probe = Probe(ctx, store.dir) if cfg.probe.samples or cfg.probe.qa else None

    def run_probe(after: int) -> float:
        t0 = time.perf_counter()
        row, correct = probe.measure(after, state.get("probe_qa_base"))
        if after < 0:
            state["probe_qa_base"] = correct
        row["seconds"] = time.perf_counter() - t0
        state["probes"].append(row)
        return row["seconds"]

    state.setdefault("flatness", [])

    def record_flatness(e: int) -> float:
        t0 = time.perf_counter()
        lc = cfg.landscape
        items = encoded[(e, "train")][:lc.examples]
        row = flatness(ctx.unwrapped_model, items, tokenizer.pad_token_id, lc.rho,
                       lc.ascent_steps, lc.hessian_iters, seed=derive_seed(cfg.seed, "hvp", e))
        state["flatness"].append({"after": e, "experience": e, **row})
        return time.perf_counter() - t0

    T = len(stream)
    if probe is not None and not any(r["after"] < 0 for r in state["probes"]):
        run_probe(-1)  # the base model, before any training
    if cfg.eval.initial and not state["initial_done"]:
        run_evaluation(-1, list(range(T)))
        state["initial_done"] = True

    joint = any(getattr(m, "joint", False) for m in methods)
    for e in range(state["completed"] + 1, T):
        exp = stream.experiences[e]
        if joint and e < T - 1:  # multitask: everything is trained together with the last one
            state["experiences"].append({
                "experience": e, "n_train_examples": 0, "steps": 0, "epoch_losses": [],
                "train_s": 0.0, "eval_s": 0.0, "methods": {}, "joint": True})
            state["completed"] = e
            continue
        set_seed(derive_seed(cfg.seed, "experience", e))
        ctx.experience_index = e
        for m in methods:
            m.before_experience(ctx, exp)
        train_examples = exp.train
        for m in methods:
            train_examples = m.train_examples(ctx, exp, train_examples)
        t0 = time.perf_counter()
        stats = train_experience(ctx, methods, owner, enc(train_examples),
                                 desc=f"experience {e + 1}/{T}")
        ctx.pristine = False
        for m in methods:
            m.after_experience(ctx, exp)
        train_s = time.perf_counter() - t0
        eval_s = 0.0
        if (e + 1) % cfg.eval.every == 0 or e == T - 1:
            seen = list(range(e + 1))
            if cfg.eval.next and e + 1 < T:
                seen.append(e + 1)
            eval_s = run_evaluation(e, seen)
            if probe is not None:
                eval_s += run_probe(e)
            if cfg.landscape.record:
                eval_s += record_flatness(e)
        state["experiences"].append({
            "experience": e, "n_train_examples": len(train_examples), "steps": stats["steps"],
            "epoch_losses": stats["epoch_losses"], "train_s": train_s, "eval_s": eval_s,
            "methods": {m.name: st for m in methods if (st := m.experience_stats())},
        })
        state["completed"] = e
        state["global_step"] = ctx.global_step
        if trackers:
            epochs_before = sum(len(x["epoch_losses"]) for x in state["experiences"][:-1])
            for k, loss in enumerate(stats["epoch_losses"]):
                accelerator.log({"train/epoch_loss": loss}, step=epochs_before + k + 1)
            if any(ev["after"] == e for ev in state["evaluations"]):
                probe_row = state["probes"][-1] if probe is not None else None
                accelerator.log(evaluation_scalars(state["evaluations"], e, probe_row),
                                step=epochs_before + len(stats["epoch_losses"]))
        if main:
            weights = {n: p for n, p in ctx.trainable_parameters()}
            store.save_checkpoint(e, weights, {m.name: m.state_dict() for m in methods}, state,
                                  keep_all=cfg.keep_checkpoints == "all")
            info = _run_info(accelerator, trainable, total, started)
            write_report(store, build_results(cfg, stream, state, info), quiet=True)
        accelerator.wait_for_everyone()
        if main and not quiet:
            accs = [ev for ev in state["evaluations"] if ev["after"] == e]
            _print_progress(e, T, stats, accs)

    if trackers:
        accelerator.end_training()
    info = _run_info(accelerator, trainable, total, started)
    results = build_results(cfg, stream, state, info)
    if main:
        write_report(store, results, quiet=quiet)
    accelerator.wait_for_everyone()
    results["run_dir"] = str(store.dir)
    return results


def _run_info(accelerator: Accelerator, trainable: int, total: int, started: float) -> dict:
    return {
        "processes": accelerator.num_processes,
        "device": str(accelerator.device),
        "parameters": {"trainable": trainable, "total": total},
        "peak_memory_mb": _peak_memory_mb(accelerator.device),
        "session_s": time.perf_counter() - started,
    }


def _print_progress(e: int, T: int, stats: dict, evals: list[dict]) -> None:
    parts = [f"experience {e + 1}/{T}: loss {stats['epoch_losses'][-1]:.3f}"]
    for split in ("train", "test"):
        accs = [ev["accuracy"] for ev in evals if ev["split"] == split and ev["experience"] <= e]
        if accs:
            parts.append(f"{split} acc (seen) {100 * sum(accs) / len(accs):.1f}")
    print(" | ".join(parts), flush=True)
