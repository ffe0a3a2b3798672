"""One continual-learning run: setup → fit → finish.

    run = setup(cfg, run_dir, fresh, callbacks)   # validate, load, open the run dir, resume
    fit(run)                                      # for each experience: train, evaluate, save
    return finish(run)                            # results.json, on_run_end

Resumable: after every experience the model's trainable weights, every method's state, the
optimizer state (when it carries over, `train.reset_optimizer: false`) and the `RunState` (all
evaluations so far) go into one checkpoint; with `train.checkpoint_every` the loop also
checkpoints inside an experience (adding the optimizer, the schedule, every RNG state, the data
position and the methods' step state). Re-running the same config continues from the newest
checkpoint and ends with the same numbers as an uninterrupted run, bitwise on the same machine.
Nothing here draws or prints results: callbacks (core/events.py) do, installed by the caller.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import yaml
from accelerate import Accelerator
from accelerate.state import AcceleratorState
from accelerate.utils import set_seed
from tqdm.auto import tqdm

from forgetless.core.config import RunConfig
from forgetless.core.errors import ConfigError, RunDirError
from forgetless.core.events import (
    Callback,
    EvaluationDone,
    ExperienceDone,
    ExperienceTrained,
    RunStarted,
    emit,
)
from forgetless.core.progress import bars_disabled
from forgetless.core.results import Result, build_results, machine_words, versions
from forgetless.core.seeding import derive_seed, rng_state, set_rng_state
from forgetless.core.store import LOCK, RunLock, RunStore, atomic_write_text, check_writable
from forgetless.data.audit import audit
from forgetless.data.chat import as_the_model_sees_it
from forgetless.data.collate import Encoded, encode_all
from forgetless.data.stream import build_stream
from forgetless.data.types import Example, Stream
from forgetless.engine.loop import layout_notes, new_optimizer, step_layout, train_experience
from forgetless.engine.recovery import check_recovery, measure_recovery
from forgetless.engine.recovery import settings as recovery_settings
from forgetless.engine.trained import restore_weights, save_model
from forgetless.eval.controls import name_swapped
from forgetless.eval.evaluator import check_scorer, evaluate, prediction_rows
from forgetless.eval.harness import Harness
from forgetless.eval.landscape import flatness
from forgetless.eval.probe import Probe
from forgetless.methods import registry
from forgetless.methods.hooks import Context, Method
from forgetless.models.device import (
    machine,
    peak_memory_mb,
    peak_tflops,
    reset_peak_memory,
    use_tf32,
)
from forgetless.models.load import count_parameters, load_model, load_tokenizer, weights_mb


@dataclass
class RunState:
    """Everything a run has measured so far; saved in every checkpoint (state.json)."""

    completed: int = -1
    """The last experience trained and saved (-1: none)."""
    initial_done: bool = False
    """The untrained model has been scored (`eval.initial`)."""
    global_step: int = 0
    evaluations: list[dict] = field(default_factory=list)
    """One row per (after, experience, split): n, accuracy, nll."""
    experiences: list[dict] = field(default_factory=list)
    """One row per trained experience: examples, steps, epoch losses, seconds, method stats."""
    probes: list[dict] = field(default_factory=list)
    """Base-knowledge probe rows (after = -1: the base model)."""
    probe_qa_base: list[bool] | None = None
    """Which country questions the base model chose right (for retention)."""
    flatness: list[dict] = field(default_factory=list)
    """ρ-sharpness and top eigenvalue after each evaluated experience (`landscape.record`)."""
    controls: list[dict] = field(default_factory=list)
    """One row per (control, after, experience, split): n, accuracy (`eval.controls`)."""
    recovery: dict | None = None
    """The recovery probe after the stream (`eval.recovery`): settings, rows, seconds."""
    machines: list[dict] = field(default_factory=list)
    """The machines (`run.machine`) the run's sessions trained on, each where it changed: two or
    more and its numbers mix the rounding of both (a resume on another processor or thread
    count)."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunState:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Run:
    """What setup() builds and fit() works on."""

    cfg: RunConfig
    accelerator: Accelerator
    ctx: Context
    stream: Stream
    methods: list[Method]
    owner: Method | None
    """The method that owns the optimizer step (SAM), if any."""
    store: RunStore
    lock: RunLock | None
    examples: dict[tuple[int, str], list[Example]]
    encoded: dict[tuple[int, str], list[Encoded]]
    probe: Probe | None
    state: RunState
    callbacks: list[Callback]
    parameters: tuple[int, int]
    started: float
    controls: dict[str, tuple[dict, dict]] = field(default_factory=dict)
    """Per control: (examples, encoded) by (experience, split), scored beside each evaluation."""
    audit: dict = field(default_factory=dict)
    """The stream's audit (data/audit.py): what a guess that ignores the concept scores."""
    step_checkpoint: tuple[Path, dict, dict, dict] | None = None
    """(path, weights, parts, state) of a mid-experience checkpoint to resume the next
    experience from (restored in `_train`, after `before_experience` has been replayed)."""

    @property
    def main(self) -> bool:
        return self.accelerator.is_main_process

    def encode(self, examples: list[Example], history: bool = False) -> list[Encoded]:
        """`history`: a conversation's earlier assistant turns as targets too (training)."""
        return encode_all(examples, self.ctx.tokenizer, self.cfg.data.prompt_template,
                          self.cfg.train.max_length, history)

    def emit(self, name: str, event: Any) -> None:
        if self.main:
            emit(self.callbacks, name, event)


def run_experiment(cfg: RunConfig, run_dir: str | Path | None = None, fresh: bool = False,
                   callbacks: list[Callback] | tuple[Callback, ...] = ()) -> Result:
    run = setup(cfg, run_dir, fresh, list(callbacks))
    try:
        fit(run)
        return finish(run)
    finally:
        if run.lock is not None:
            run.lock.release()


def default_run_dir(cfg: RunConfig) -> Path:
    return Path(cfg.output_dir) / f"{cfg.name}-{cfg.method}-{cfg.fingerprint()}"


def check_precision(cfg: RunConfig) -> None:
    """bf16 on a GPU without it would fail deep inside accelerate; say so in one line first."""
    if (cfg.train.mixed_precision == "bf16" and torch.cuda.is_available()
            and not torch.cuda.is_bf16_supported()):
        raise ConfigError(f"train.mixed_precision=bf16: this GPU ({torch.cuda.get_device_name()}) "
                          f"has no bf16 support; use fp32")


SHARDED = {"ACCELERATE_USE_FSDP": "FSDP", "ACCELERATE_USE_DEEPSPEED": "DeepSpeed",
           "ACCELERATE_USE_MEGATRON_LM": "Megatron-LM"}
"""How `accelerate launch` (its flags or its config file) tells a process to shard the model."""


def check_not_sharded(distributed_type: str | None = None) -> None:
    """Sharded training is refused before anything loads: forgetless checkpoints, restores and
    exports whole parameters, and its methods read them whole (KIF's per-unit importance and
    fusion, EWC's Fisher, SAM's global gradient norm, teacher copies)."""
    names = [name for var, name in SHARDED.items()
             if os.environ.get(var, "").strip().lower() in ("1", "true", "yes")]
    if distributed_type in ("FSDP", "DEEPSPEED", "MEGATRON_LM"):
        names.append(distributed_type)
    if names:
        raise ConfigError(f"{names[0]}: sharded training is not supported (checkpoints and methods "
                          f"such as kif, ewc and sam need whole parameters on every process); "
                          f"train data-parallel (`accelerate launch --multi_gpu`) and fit memory "
                          f"with model.lora.enabled=true and model.dtype=bf16")


def setup(cfg: RunConfig, run_dir: str | Path | None, fresh: bool,
          callbacks: list[Callback]) -> Run:
    started = time.perf_counter()
    versions()  # the commit this process loaded, not the one checked out when results are written
    store = RunStore(run_dir or default_run_dir(cfg))
    check_not_sharded()
    check_precision(cfg)
    check_writable(store.dir)  # before minutes of loading, not after
    # accelerate keeps one state per process and refuses a second precision; one process may run
    # several experiments (sweeps, the Python API), so start each from a clean accelerator state
    # (the process group, if any, is kept).
    AcceleratorState._reset_state(reset_partial_state=False)
    accelerator = Accelerator(cpu=not torch.cuda.is_available(),
                              mixed_precision=cfg.train.accelerate_precision)
    check_not_sharded(str(accelerator.distributed_type).rsplit(".", 1)[-1])
    reset_peak_memory(accelerator.device)  # this run's peak, not an earlier one's in this process
    stream = build_stream(cfg.data)
    check_scorer(cfg.eval.scorer, stream)
    check_recovery(cfg, len(stream), accelerator.num_processes)
    # harness tasks load now: a task that cannot load fails before anything is written
    harness = (Harness(cfg.probe.lm_eval, cfg.probe.lm_eval_limit, cfg.eval.batch_size)
               if cfg.probe.lm_eval else None)
    methods = registry.build(cfg)
    for e in range(min(2, len(stream))):  # reservations may start with the second experience
        step_layout(cfg, methods, accelerator.num_processes, e)
    if accelerator.is_main_process:
        notes = layout_notes(cfg, methods, accelerator.num_processes, min(1, len(stream) - 1))
        for note in dict.fromkeys(notes):
            print(f"forgetless: warning: {note}", file=sys.stderr, flush=True)
    set_seed(cfg.seed)
    use_tf32(cfg.train.tf32)
    tokenizer = load_tokenizer(cfg.model)
    template, stream = as_the_model_sees_it(stream, cfg.data, tokenizer)
    saved_cfg, cfg = cfg, with_prompt_template(cfg, template)
    model = load_model(cfg.model, tokenizer, cfg.seed)
    for m in methods:
        m.configure_model(model)
    # Only now that stream and model are known good does anything get written.
    with ExitStack() as release_on_error:
        lock = _open_run_dir(store, saved_cfg, fresh) if accelerator.is_main_process else None
        if lock is not None:  # a caller in this process (a notebook, a sweep) may retry at once
            release_on_error.callback(lock.release)
        accelerator.wait_for_everyone()
        parameters = count_parameters(model)
        optimizer = new_optimizer(model, cfg.train)
        model, optimizer = accelerator.prepare(model, optimizer)
        if cfg.train.compile:
            # in place (not torch.compile(model)): names and state dicts stay those of the model
            accelerator.unwrap_model(model).compile(backend=cfg.train.compile, dynamic=True)
        ctx = Context(cfg, accelerator, model, tokenizer, stream, cfg.seed, optimizer)
        for m in methods:
            m.setup(ctx)
        owner = next((m for m in methods if registry.get(m.name).owns_optimizer_step), None)
        cap = cfg.eval.max_train_examples
        examples = {(e.index, s): e.split(s)[:cap] if s == "train" else e.split(s)
                    for e in stream.experiences for s in ("train", "test")}
        run = Run(cfg, accelerator, ctx, stream, methods, owner, store, lock, examples, {}, None,
                  RunState(), callbacks, parameters, started)
        run.encoded = {key: run.encode(v) for key, v in examples.items()}
        if run.main:
            _warn_long_answers(run.encoded, cfg.train.max_length)
        run.audit = audit(stream)
        if "name_swap" in cfg.eval.controls:
            swapped = name_swapped(stream, cfg.seed)
            run.controls["name_swap"] = (swapped, {k: run.encode(v) for k, v in swapped.items()})
        _resume(run)
        _note_machine(run, machine(accelerator.device))
        if cfg.probe.samples or cfg.probe.qa or cfg.probe.corpus or harness is not None:
            run.probe = Probe(ctx, store.dir, harness)
        mid_steps = run.step_checkpoint[3]["position"]["done"] if run.step_checkpoint else 0
        run.emit("on_run_start", RunStarted(store.dir, cfg, len(stream), run.state.completed,
                                            mid_steps, *planned_work(run)))
        release_on_error.pop_all()  # the run holds the lock now; run_experiment frees it
        return run


def planned_train_examples(methods: list[Method], sizes: list[int]) -> list[int]:
    """Per experience, the examples it is expected to train on, given the stream's training
    sizes: each method in turn adds what it expects to (`Method.expected_train_examples`)."""
    planned, seen = [], 0
    for e, size in enumerate(sizes):
        n = size
        for m in methods:
            n = m.expected_train_examples(e, len(sizes), n, seen)
        planned.append(n)
        seen += size
    return planned


def planned_work(run: Run) -> tuple[list[int], list[int]]:
    """Per experience: the examples it is expected to train on, and those scored after it — what
    progress lines scale the time left by (replay's experiences grow with its buffer, and each
    evaluation scores every experience seen)."""
    sizes = [(len(run.encoded[(e, "train")]), len(run.encoded[(e, "test")]))
             for e in range(len(run.stream))]
    return planned_from_sizes(run.cfg, run.methods,
                              [len(exp.train) for exp in run.stream.experiences], sizes)


def planned_from_sizes(cfg: RunConfig, methods: list[Method], train_sizes: list[int],
                       scored_sizes: list[tuple[int, int]]) -> tuple[list[int], list[int]]:
    """`planned_work` from the stream's training sizes and the (train, test) examples scored of
    each experience, with the config's evaluation schedule (`eval.every`, `eval.next`)."""
    T, scored = len(train_sizes), []
    for e in range(T):
        evaluated = (e + 1) % cfg.eval.every == 0 or e == T - 1
        indices = list(range(e + 1)) + ([e + 1] if cfg.eval.next and e + 1 < T else [])
        scored.append(sum(sum(scored_sizes[j]) for j in indices) if evaluated else 0)
    return planned_train_examples(methods, train_sizes), scored


def planned_from_results(cfg: RunConfig, results: dict) -> tuple[list[int], list[int]] | None:
    """`planned_work` of a run from its results.json (stream sizes) and config, without the
    stream or the model: what `forgetless sweep --dry-run` estimates a partial run's time by.
    None where results.json does not record the sizes."""
    rows = results.get("stream", {}).get("experiences", [])
    if not rows or any("n_train" not in x or "n_test" not in x for x in rows):
        return None
    cap = cfg.eval.max_train_examples
    train = [x["n_train"] for x in rows]
    scored = [(min(x["n_train"], cap) if cap else x["n_train"], x["n_test"]) for x in rows]
    return planned_from_sizes(cfg, registry.build(cfg), train, scored)


def with_prompt_template(cfg: RunConfig, template: str) -> RunConfig:
    """The config the run works with: `data.prompt_template` is the rendered chat template where
    `data.chat_template` asks for one (data/chat.py), so every encoder, sampler and parser uses
    it, and results.json records it. The run directory keeps the config as given."""
    if template == cfg.data.prompt_template:
        return cfg
    data = cfg.data.model_copy(update={"prompt_template": template})
    return cfg.model_copy(update={"data": data})


def _warn_long_answers(encoded: dict[tuple[int, str], list[Encoded]], max_length: int) -> None:
    """Answers are never cut (they are what is scored), so one longer than train.max_length keeps
    its example over the limit with a one-token prompt: say so once, with a count."""
    items = [it for v in encoded.values() for it in v]
    long = sum(len(it.input_ids) > max_length for it in items)
    if long:
        print(f"forgetless: warning: {long} of {len(items)} scored examples have an answer longer "
              f"than train.max_length={max_length} tokens allows; they are kept whole with their "
              f"prompt cut to one token (raise train.max_length)", file=sys.stderr)


def _open_run_dir(store: RunStore, cfg: RunConfig, fresh: bool) -> RunLock:
    """Create or reopen the run directory, lock it, and check it holds this config's run.
    A non-empty directory forgetless did not make is refused (and never emptied)."""
    store.dir.mkdir(parents=True, exist_ok=True)  # check_writable vetted the path
    config_path = store.dir / "config.yaml"
    foreign = [p.name for p in store.dir.iterdir() if p.name != LOCK]
    if foreign and not store.is_marked and not config_path.is_file():
        raise RunDirError(f"{store.dir}: not empty and not a forgetless run directory; "
                          f"choose another --out")
    lock = RunLock(store.dir).acquire()
    try:
        if fresh:
            store.clear()
        elif config_path.is_file() and not cfg.matches_saved(_saved_config(config_path)):
            raise RunDirError(f"{store.dir}: holds a run of a different config; pass --fresh to "
                              f"replace it or choose another --out")
        store.mark()  # a directory from before markers existed is adopted here
        atomic_write_text(config_path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    except BaseException:
        lock.release()
        raise
    if lock.previous:
        print(f"forgetless: warning: {store.dir}: taking over the lock of {lock.previous}, which "
              f"is no longer running", file=sys.stderr)
    return lock


def _saved_config(path: Path) -> dict:
    try:
        saved = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise RunDirError(f"{path}: damaged run config ({type(e).__name__}); pass --fresh to "
                          f"start this run directory anew") from None
    if not isinstance(saved, dict):
        raise RunDirError(f"{path}: damaged run config (not a mapping); pass --fresh to start "
                          f"this run directory anew")
    return saved


def _resume(run: Run) -> None:
    """Continue from the newest checkpoint: the one after the last finished experience, then a
    mid-experience one of the experience after it, if any (kept for `_train`)."""
    run.store.finish_interrupted_writes(keep_all=run.cfg.keep_checkpoints == "all")
    checkpoints = run.store.checkpoints()
    if checkpoints:
        _, path = checkpoints[-1]
        weights, parts, state = run.store.load_parts(path)
        restore_weights(run.ctx.unwrapped_model, weights, path)
        for m in run.methods:
            m.load_state_dict(parts["methods"].get(m.name, {}))
        if "optimizer" in parts:
            load_optimizer_state(run.ctx.optimizer, parts["optimizer"], path)
        run.state = RunState.from_dict(state)
        run.ctx.global_step = run.state.global_step
        run.ctx.pristine = False
    mid = run.store.step_checkpoint()
    if mid is not None and mid[0] == run.state.completed + 1:
        weights, parts, state = run.store.load_parts(mid[2])
        run.step_checkpoint = (mid[2], weights, parts, state)
        run.state = RunState.from_dict(state["run"])  # with the evaluations before experience 0


def _note_machine(run: Run, here: dict) -> None:
    """Record this session's machine where it differs from the last session's, and say so when a
    resumed run changes machine: from here on its numbers are neither the first machine's nor
    this one's (docs/reliability.md)."""
    state = run.state
    if state.completed == len(run.stream) - 1:
        return  # finished: nothing trains in this session
    if state.machines and state.machines[-1] != here and run.main:
        before = state.machines[-1]
        done = f"{state.completed + 1} experience(s)" + (" and part of the next"
                                                         if run.step_checkpoint else "")
        threads_only = {**before, "threads": here["threads"]} == here
        remedy = (f"resume it with {before['threads']} thread(s) (forgetless run --threads "
                  f"{before['threads']}, or the sweep's --threads)" if threads_only else
                  "finish it where it started, or remove it and run it again")
        print(f"forgetless: warning: {run.store.dir}: resumed on {machine_words(here)} after "
              f"{done} on {machine_words(before)}: the same config and seed give "
              "other numbers on another processor or thread count, so this run's will be "
              f"neither machine's; {remedy}", file=sys.stderr, flush=True)
    if not state.machines or state.machines[-1] != here:
        state.machines.append(here)


def optimizer_state(optimizer) -> dict:
    """The optimizer's state_dict with string keys (a checkpoint part)."""
    saved = optimizer.state_dict()
    return {"state": {str(k): v for k, v in saved["state"].items()},
            "param_groups": saved["param_groups"]}


def load_optimizer_state(optimizer, saved: dict, path: Path) -> None:
    """Inverse of `optimizer_state` (JSON made the tuples lists and the keys strings)."""
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in saved["param_groups"]]
    try:
        optimizer.load_state_dict({"state": {int(k): v for k, v in saved["state"].items()},
                                   "param_groups": groups})
    except (ValueError, KeyError) as e:
        raise RunDirError(f"{path}: optimizer state does not match this model ({e})") from None


def fit(run: Run) -> None:
    T, state, cfg = len(run.stream), run.state, run.cfg
    if run.probe is not None and not any(r["after"] < 0 for r in state.probes):
        _probe(run, -1)  # the base model, before any training
    if cfg.eval.initial and not state.initial_done:
        _evaluate(run, -1, list(range(T)), epochs=0)
        state.initial_done = True
    joint = any(getattr(m, "joint", False) for m in run.methods)
    for e in range(state.completed + 1, T):
        if joint and e < T - 1:  # multitask: everything is trained together with the last one
            state.experiences.append({"experience": e, "n_train_examples": 0, "steps": 0,
                                      "epoch_losses": [], "train_s": 0.0, "eval_s": 0.0,
                                      "methods": {}, "joint": True})
            state.completed = e
            continue
        row = _train(run, e)
        if (e + 1) % cfg.eval.every == 0 or e == T - 1:
            seen = list(range(e + 1)) + ([e + 1] if cfg.eval.next and e + 1 < T else [])
            epochs = sum(len(x["epoch_losses"]) for x in state.experiences)
            row["eval_s"] = _evaluate(run, e, seen, epochs + len(row["epoch_losses"]))
        state.experiences.append(row)
        state.completed = e
        state.global_step = run.ctx.global_step
        results = _save(run, e)
        run.emit("on_experience_done", ExperienceDone(e, T, row["epoch_losses"], results))


def _train(run: Run, e: int) -> dict:
    ctx, exp = run.ctx, run.stream.experiences[e]
    set_seed(derive_seed(run.cfg.seed, "experience", e))
    ctx.experience_index = e
    for m in run.methods:
        m.before_experience(ctx, exp)
    examples = exp.train
    for m in run.methods:
        examples = m.train_examples(ctx, exp, examples)
    resume = _restore_step_checkpoint(run, e)
    t0 = time.perf_counter()
    stats = train_experience(ctx, run.methods, run.owner, run.encode(examples, history=True),
                             desc=f"experience {e + 1}/{len(run.stream)}", resume=resume,
                             checkpoint=lambda position: _save_step(run, e, position))
    ctx.pristine = False
    for m in run.methods:
        m.after_experience(ctx, exp)
    epochs_before = sum(len(x["epoch_losses"]) for x in run.state.experiences)
    run.emit("on_experience_trained", ExperienceTrained(
        e, len(run.stream), stats["steps"], stats["epoch_losses"], epochs_before))
    return {"experience": e, "n_train_examples": len(examples), "steps": stats["steps"],
            "epoch_losses": stats["epoch_losses"], "target_tokens": stats["target_tokens"],
            "input_tokens": stats["input_tokens"], "padded_positions": stats["padded_positions"],
            "train_s": time.perf_counter() - t0,
            "eval_s": 0.0,
            "methods": {m.name: st for m in run.methods if (st := m.experience_stats())},
            **({"skipped_steps": stats["skipped_steps"]} if stats["skipped_steps"] else {})}


def _restore_step_checkpoint(run: Run, e: int) -> dict | None:
    """If the run resumes inside experience e: weights, optimizer, method step state and RNG as
    at its checkpoint, and the loop position to continue from."""
    if run.step_checkpoint is None:
        return None
    path, weights, parts, state = run.step_checkpoint
    run.step_checkpoint = None
    ctx = run.ctx
    restore_weights(ctx.unwrapped_model, weights, path)
    load_optimizer_state(ctx.optimizer, parts["optimizer"], path)
    for m in run.methods:
        m.load_step_state(ctx, parts["steps"].get(m.name, {}))
    ctx.global_step = state["global_step"]
    ctx.pristine = False
    set_rng_state(parts["rng"], state["rng"])
    return state["position"]


def _save_step(run: Run, e: int, position: dict) -> None:
    """A mid-experience checkpoint (`train.checkpoint_every`), main process; then all wait."""
    if run.main:
        ctx = run.ctx
        rng_tensors, rng_values = rng_state()
        parts = {"methods": {m.name: m.state_dict() for m in run.methods},
                 "steps": {m.name: m.step_state() for m in run.methods},
                 "optimizer": optimizer_state(ctx.optimizer), "rng": rng_tensors}
        state = {"experience": e, "global_step": ctx.global_step, "position": position,
                 "rng": rng_values, "run": run.state.to_dict()}
        run.store.save_step_checkpoint(e, position["done"], dict(ctx.trainable_parameters()),
                                       parts, state)
    run.accelerator.wait_for_everyone()


def _evaluate(run: Run, after: int, indices: list[int], epochs: int) -> float:
    """Score `indices` (both splits), then the probe and flatness; returns the seconds spent
    (all three: `timings.probe_s` and `timings.landscape_s` say how much of it was which).
    `epochs`: epochs trained so far (the trackers' step)."""
    t0 = time.perf_counter()
    tasks = [(j, s) for j in indices for s in ("train", "test")]
    probing = (after >= 0 and run.probe is not None
               and (run.cfg.probe.every_evaluation or after == len(run.stream) - 1))
    total = (sum(len(run.encoded[key]) for key in tasks)
             + sum(len(enc.get(key, ())) for _, enc in run.controls.values() for key in tasks))
    bar = progress_bar(run, total + (run.probe.parts(after) if probing else 0),
                       "scoring" if after < 0 else f"scoring after {after + 1}/{len(run.stream)}")
    scores = evaluate(run.ctx, tasks, run.examples, run.encoded, after, tick=bar.update)
    rows, predictions = [], []
    for key, sc in scores.items():
        rows.append({"after": after, "experience": key[0], "split": key[1], "n": len(sc),
                     "accuracy": sum(s.points for s in sc) / max(len(sc), 1),
                     "nll": sum(s.nll for s in sc) / max(len(sc), 1)})
        predictions += prediction_rows(after, key, run.examples[key], sc)
    run.state.evaluations += rows
    for name, (ex, enc) in run.controls.items():
        present = [key for key in tasks if ex.get(key)]
        for key, sc in evaluate(run.ctx, present, ex, enc, after, tick=bar.update).items():
            run.state.controls.append({"control": name, "after": after, "experience": key[0],
                                       "split": key[1], "n": len(sc),
                                       "accuracy": sum(s.points for s in sc) / len(sc)})
    if run.main:
        name = "initial" if after < 0 else f"after-{after:03d}"
        atomic_write_text(run.store.dir / "predictions" / f"{name}.jsonl",
                          "".join(json.dumps(r) + "\n" for r in predictions))
    probe_row = _probe(run, after, bar.update) if probing else None
    bar.close()
    if after >= 0 and run.cfg.landscape.record:
        _record_flatness(run, after)
    run.emit("on_evaluation", EvaluationDone(after, rows, probe_row, epochs))
    return time.perf_counter() - t0


def progress_bar(run: Run, total: int, desc: str, shared: bool = True) -> tqdm:
    """A bar on the main process's terminal (not in logs; none under TQDM_DISABLE / --quiet);
    `total` counts what the whole run does: each process ticks its share where the work is
    `shared` out, all of it where every process does it all."""
    mine = -(-total // run.accelerator.num_processes) if shared else total
    return tqdm(total=mine, desc=desc, leave=False,
                disable=True if not run.main else bars_disabled())


def _probe(run: Run, after: int, tick: Callable[[int], None] | None = None) -> dict:
    t0 = time.perf_counter()
    # inside an evaluation the probe ticks the evaluation's bar; on its own it has its own
    bar = progress_bar(run, run.probe.parts(after), "probing the base model") if tick is None else None
    row, correct = run.probe.measure(after, run.state.probe_qa_base,
                                     bar.update if bar is not None else tick)
    if bar is not None:
        bar.close()
    row["seconds"] = time.perf_counter() - t0
    if after < 0:
        run.state.probe_qa_base = correct
        row["sampling_s"] = run.probe.sampling_s
    run.state.probes.append(row)
    return row


def _record_flatness(run: Run, e: int) -> None:
    lc = run.cfg.landscape
    items = run.encoded[(e, "train")][:lc.examples]
    t0 = time.perf_counter()
    # every process measures it all (the model is whole on each)
    bar = progress_bar(run, lc.ascent_steps + lc.hessian_iters,
                       f"flatness after {e + 1}/{len(run.stream)}", shared=False)
    row = flatness(run.ctx.unwrapped_model, items, run.ctx.tokenizer.pad_token_id, lc.rho,
                   lc.ascent_steps, lc.hessian_iters, seed=derive_seed(run.cfg.seed, "hvp", e),
                   tick=bar.update)
    bar.close()
    run.state.flatness.append({"after": e, "experience": e, **row,
                               "seconds": time.perf_counter() - t0})


def _save(run: Run, e: int) -> dict:
    """Checkpoint and results.json after experience e (main process), then all wait."""
    results = _results(run)
    if run.main:
        weights = dict(run.ctx.trainable_parameters())
        carried = None if run.cfg.train.reset_optimizer else optimizer_state(run.ctx.optimizer)
        run.store.save_checkpoint(e, weights, {m.name: m.state_dict() for m in run.methods},
                                  run.state.to_dict(),
                                  keep_all=run.cfg.keep_checkpoints == "all", optimizer=carried)
        run.store.write_results(results)
    run.accelerator.wait_for_everyone()
    return results


def finish(run: Run) -> Result:
    if run.cfg.eval.recovery.enabled and run.state.completed == len(run.stream) - 1:
        run.state.recovery = _previous_recovery(run)
        if run.state.recovery is None:
            t0 = time.perf_counter()
            run.state.recovery = {**measure_recovery(run), "seconds": time.perf_counter() - t0}
    results = _results(run)
    if run.main:
        if run.cfg.save_model:
            save_model(run.ctx.unwrapped_model, run.ctx.tokenizer, run.store.dir / "model")
        run.store.write_results(results)
    run.emit("on_run_end", results)
    run.accelerator.wait_for_everyone()
    return Result(results, run.store.dir)


def _previous_recovery(run: Run) -> dict | None:
    """This run directory's recovery result, if it was measured with today's settings (the run
    itself is the same: the directory belongs to this config)."""
    try:
        saved = json.loads((run.store.dir / "results.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    old = saved.get("recovery") if isinstance(saved, dict) else None
    if isinstance(old, dict) and old.get("settings") == recovery_settings(run.cfg):
        return old
    return None


def _results(run: Run) -> dict:
    acc = run.accelerator
    trainable, total = run.parameters
    info = {"processes": acc.num_processes, "device": str(acc.device),
            "parameters": {"trainable": trainable, "total": total},
            "peak_memory_mb": peak_memory_mb(acc.device),
            "weights_mb": weights_mb(run.ctx.unwrapped_model),
            "eval_batch_size": run.ctx.eval_batch_size or run.cfg.eval.batch_size,
            "machine": machine(acc.device),
            "machines": run.state.machines,
            "session_s": time.perf_counter() - run.started}
    results = {**build_results(run.cfg, run.stream, run.state.to_dict(), info), "audit": run.audit}
    peak = peak_tflops(acc.device, run.cfg.train.mixed_precision, run.cfg.train.tf32)
    rate = results["timings"].get("train_tokens_per_s")
    # Model FLOPs utilisation on real tokens: 6 × parameters per token (forward + backward).
    results["timings"]["mfu"] = (6 * total * rate / (peak * 1e12)) if peak and rate else None
    return results
