"""The explicit training loop for one experience.

A global batch is `train.batch_size` examples, identical on every process (same seeded
permutation); each process takes its share, split into `grad_accum` micro-batches. The loss is
the answer-token NLL summed over the global batch and divided by its answer-token count, which
every process knows without communicating, so 1 process × 8 and 2 processes × 4 × accumulation
compute the same gradient.
"""

from __future__ import annotations

import contextlib
import itertools
import math
from collections.abc import Callable

import torch
from tqdm.auto import tqdm

from forgetless.core.errors import ConfigError, TrainingError
from forgetless.core.progress import bars_disabled
from forgetless.core.seeding import derive_seed
from forgetless.data.collate import Encoded, answer_nll, collate, forward_answer_logits
from forgetless.methods.hooks import Context, Method


def new_optimizer(model: torch.nn.Module, train) -> torch.optim.Optimizer:
    """AdamW over the parameters that train, with `train`'s (a TrainConfig) settings: the fused
    kernel by default; with `train.fused_optimizer=false` PyTorch's own choice (on a CPU its
    per-tensor loop, which measured faster there than the multi-tensor kernels at 135M
    parameters; a whole training step with it took 1.09× (AVX2) to 1.42× (AVX-512) the fused
    kernel's, benchmarks/README.md matmul_floor)."""
    return torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=train.lr,
                             weight_decay=train.weight_decay, betas=train.betas,
                             fused=train.fused_optimizer or None)


def epoch_batches(n: int, batch_size: int, seed: int, lengths: list[int] | None = None,
                  group: int = 0) -> list[list[int]]:
    """A seeded permutation cut into full global batches; the last one is completed with the
    start of the permutation (every example is seen each epoch, every batch has the same size).
    With `group` > 0 and `lengths`: every `group` consecutive batches are pooled, sorted by
    length (longest first) and cut again, their order shuffled (train.length_grouping)."""
    generator = torch.Generator().manual_seed(seed)
    perm = torch.randperm(n, generator=generator).tolist()
    steps = math.ceil(n / batch_size)
    filled = list(itertools.islice(itertools.cycle(perm), steps * batch_size))
    batches = [filled[s * batch_size:(s + 1) * batch_size] for s in range(steps)]
    if not group or lengths is None:
        return batches
    out = []
    for start in range(0, steps, group):
        pool = sorted((i for b in batches[start:start + group] for i in b),
                      key=lambda i: -lengths[i])  # stable: ties keep the random order
        cut = [pool[k:k + batch_size] for k in range(0, len(pool), batch_size)]
        out += [cut[k] for k in torch.randperm(len(cut), generator=generator).tolist()]
    return out


def check_batch_layout(batch_size: int, world: int, grad_accum: int) -> int:
    """Micro-batch size, or a config error if the global batch does not split evenly."""
    parts = world * grad_accum
    if batch_size % parts:
        raise ConfigError(
            f"train.batch_size={batch_size} must be divisible by processes × train.grad_accum "
            f"= {world} × {grad_accum}"
        )
    return batch_size // parts


def step_layout(config, methods: list[Method], world: int, experience: int) -> tuple[int, int]:
    """(examples of the experience per global step, per micro-batch). Methods may reserve rows
    of every step for data of their own (replay share, self-replay `replace`)."""
    cfg = config.train
    reserved = sum(m.reserved_rows(config, world, experience) for m in methods)
    if not reserved:
        return cfg.batch_size, check_batch_layout(cfg.batch_size, world, cfg.grad_accum)
    new_rows = cfg.batch_size - reserved
    parts = world * cfg.grad_accum
    if new_rows < parts or new_rows % parts:
        raise ConfigError(
            f"train.batch_size={cfg.batch_size} minus the {reserved} rows per step that method "
            f"'{config.method}' reserves leaves {new_rows}; it must be a positive multiple of "
            f"processes × train.grad_accum = {world} × {cfg.grad_accum}")
    return new_rows, new_rows // parts


def layout_notes(config, methods: list[Method], world: int, experience: int) -> list[str]:
    """Warnings for methods whose rows per step under `world` processes × train.grad_accum
    differ from one process without accumulation (their rows are rounded to a multiple of the
    parts): the same config then trains a different protocol, and comparing the two runs
    compares protocols, not process counts."""
    parts = world * config.train.grad_accum
    if parts == 1:
        return []
    single = config.model_copy(update={"train": config.train.model_copy(update={"grad_accum": 1})})
    notes = []
    for m in methods:
        here, alone = m.rows_per_step(config, world, experience), m.rows_per_step(single, 1,
                                                                                    experience)
        if here != alone:
            notes.append(
                f"{m.name} puts {here} rows of its own in every step of {config.train.batch_size} "
                f"under {world} process(es) × train.grad_accum {config.train.grad_accum} (a "
                f"multiple of {parts}), where one process without accumulation puts {alone}: "
                f"the two train different protocols; set {m.rows_option or 'its rows'} so that "
                f"they are a multiple of {parts} in both")
    return notes


def train_experience(
    ctx: Context, methods: list[Method], owner: Method | None, items: list[Encoded],
    desc: str = "", resume: dict | None = None,
    checkpoint: Callable[[dict], None] | None = None,
) -> dict:
    """Train one experience. `resume`: a position `checkpoint` was given (weights, optimizer,
    RNG and method state already restored by the caller); training continues at the next step
    as if never interrupted. `checkpoint(position)` is called every `train.checkpoint_every`
    optimizer steps and after the last one."""
    cfg = ctx.config.train
    acc = ctx.accelerator
    world, rank = acc.num_processes, acc.process_index
    new_rows, micro = step_layout(ctx.config, methods, world, ctx.experience_index)
    pad = ctx.tokenizer.pad_token_id
    model = ctx.model
    model.train()
    if cfg.reset_optimizer and resume is None:
        ctx.optimizer.state.clear()
    ctx.optimizer.zero_grad(set_to_none=True)

    n_steps = cfg.epochs * math.ceil(len(items) / new_rows)
    scheduler = _scheduler(ctx.optimizer, cfg, n_steps)
    # None: a bar on a terminal, nothing in CI logs; TQDM_DISABLE / --quiet: none at all
    bar = tqdm(total=n_steps, desc=desc, disable=True if not acc.is_main_process else bars_disabled(),
               leave=False)
    # Where training stands (what a checkpoint records): the next (epoch, batch), steps done,
    # this epoch's loss sums so far, finished epochs' losses, skipped steps, tokens trained.
    # input_tokens / padded_positions: this process's batches, real tokens and rows × width.
    at = {"epoch": 0, "batch": 0, "done": 0, "nll_sum": 0.0, "token_sum": 0, "epoch_losses": [],
          "skipped": 0, "trained_tokens": 0, "input_tokens": 0, "padded_positions": 0}
    if resume is not None:
        at = {k: resume.get(k, 0) for k in at}  # checkpoints from before the token counts: 0
        if scheduler is not None:
            scheduler.load_state_dict(resume["scheduler"])
            for group, lr in zip(ctx.optimizer.param_groups, scheduler.get_last_lr(), strict=True):
                group["lr"] = lr
        bar.update(at["done"])
    every = cfg.checkpoint_every if checkpoint is not None else None
    lengths = [len(it.input_ids) for it in items] if cfg.length_grouping else None
    # Step losses stay on the device until looked at, at a checkpoint and at the end of each
    # epoch: one host sync there instead of one per step (train.on_nonfinite=skip must look at
    # every step before it is taken, so it syncs each step).
    pending: list[tuple[int, torch.Tensor]] = []
    sum_dtype = torch.float32 if acc.device.type == "mps" else torch.float64  # MPS has no fp64

    def settle() -> None:
        """Add the pending step losses to this epoch's sum, in step order; stop at the first
        that is not finite on any process, naming its step."""
        if not pending:
            return
        losses = torch.stack([loss for _, loss in pending])
        bad = (~torch.isfinite(losses)).to(torch.float32)
        if acc.num_processes > 1:
            bad = acc.reduce(bad, reduction="sum")
        first = next((k for k, flag in enumerate(bad.tolist()) if flag), None)
        if first is not None:
            raise TrainingError(
                f"experience {ctx.experience_index}, optimizer step {pending[first][0]}: the "
                f"training loss is not finite; lower train.lr (now {cfg.lr:g}) or set "
                f"train.on_nonfinite=skip")
        for value in losses.tolist():
            at["nll_sum"] += value
        pending.clear()

    for epoch in range(at["epoch"], cfg.epochs):
        order_seed = derive_seed(ctx.seed, "order", ctx.experience_index, epoch)
        if epoch > at["epoch"]:
            at.update(nll_sum=0.0, token_sum=0)
        for b, global_batch in enumerate(epoch_batches(len(items), new_rows, order_seed, lengths,
                                                       cfg.length_grouping)):
            if epoch == at["epoch"] and b < at["batch"]:
                continue  # done before the checkpoint this run resumed from
            n_tokens = sum(items[i].n_targets for i in global_batch)
            mine = [global_batch[(a * world + rank) * micro:(a * world + rank + 1) * micro]
                    for a in range(cfg.grad_accum)]
            collated = [collate([items[i] for i in idx], pad) for idx in mine]
            at["input_tokens"] += sum(int(c["attention_mask"].sum()) for c in collated)
            at["padded_positions"] += sum(c["attention_mask"].numel() for c in collated)
            batches = [{k: v.to(acc.device) for k, v in c.items()} for c in collated]

            def compute_grads(batches=batches, n_tokens=n_tokens) -> torch.Tensor:
                """Zero grads, forward+backward over this step's micro-batches; local NLL sum
                (on the device)."""
                ctx.optimizer.zero_grad(set_to_none=True)
                local = torch.zeros((), dtype=sum_dtype, device=acc.device)
                for a, batch in enumerate(batches):
                    ctx.micro_index = a
                    last = a == len(batches) - 1
                    sync = contextlib.nullcontext() if last else acc.no_sync(model)
                    with sync:
                        outputs = forward_answer_logits(model, batch)
                        nll = answer_nll(outputs.logits, batch["labels"]).sum()
                        # DDP averages gradients over processes: scale by `world` to get the sum.
                        loss = nll * world / n_tokens
                        share = batch["labels"].shape[0] * world / new_rows
                        for m in methods:
                            extra = m.extra_loss(ctx, batch, outputs)
                            if extra is not None:
                                loss = loss + extra * share
                        acc.backward(loss)
                    local = local + nll.detach().to(sum_dtype)
                return local

            for m in methods:
                m.before_step(ctx)
            local_nll = compute_grads()
            if cfg.on_nonfinite == "stop" or _finite_everywhere(acc, float(local_nll)):
                for m in methods:
                    m.on_gradients(ctx)
                if owner is not None:
                    owner.optimizer_step(ctx, compute_grads)
                else:
                    ctx.clip_and_step()
                ctx.global_step += 1
                for m in methods:
                    m.after_optimizer_step(ctx)
                pending.append((ctx.global_step, local_nll))
                at["token_sum"] += n_tokens
                at["trained_tokens"] += n_tokens
            else:
                ctx.optimizer.zero_grad(set_to_none=True)
                at["skipped"] += 1
            if scheduler is not None:
                scheduler.step()  # the schedule runs over all n_steps, skipped ones too
            at.update(epoch=epoch, batch=b + 1, done=at["done"] + 1)
            bar.update(1)
            if every and (at["done"] % every == 0 or at["done"] == n_steps):
                settle()  # a checkpoint never holds weights trained on a non-finite loss
                checkpoint({**at, "epoch_losses": list(at["epoch_losses"]),
                            "scheduler": scheduler.state_dict() if scheduler else None})
        settle()
        total = acc.reduce(torch.tensor(at["nll_sum"], device=acc.device), reduction="sum")
        at["epoch_losses"].append(float(total) / at["token_sum"] if at["token_sum"]
                                  else float("nan"))
        bar.set_postfix(loss=f"{at['epoch_losses'][-1]:.3f}")
    bar.close()
    tokens = acc.reduce(torch.tensor([at["input_tokens"], at["padded_positions"]],
                                     device=acc.device), reduction="sum")
    return {"steps": n_steps, "epoch_losses": at["epoch_losses"], "skipped_steps": at["skipped"],
            "target_tokens": at["trained_tokens"], "input_tokens": int(tokens[0]),
            "padded_positions": int(tokens[1])}


def _scheduler(optimizer, cfg, n_steps: int):
    """The experience's learning-rate schedule (None: constant). Every experience starts again
    from the peak `train.lr`."""
    for group in optimizer.param_groups:
        group["lr"] = group["initial_lr"] = cfg.lr
    if cfg.schedule == "constant":
        return None
    from transformers import get_cosine_with_min_lr_schedule_with_warmup

    return get_cosine_with_min_lr_schedule_with_warmup(
        optimizer, num_warmup_steps=int(cfg.warmup * n_steps), num_training_steps=n_steps,
        min_lr_rate=cfg.min_lr)


def _finite_everywhere(acc, local_nll: float) -> bool:
    """Whether every process's loss of this step is finite (one small all-reduce when there are
    several processes: they must all skip or stop together)."""
    finite = math.isfinite(local_nll)
    if acc.num_processes > 1:
        flag = torch.tensor(0.0 if finite else 1.0, device=acc.device)
        finite = float(acc.reduce(flag, reduction="sum")) == 0.0
    return finite
