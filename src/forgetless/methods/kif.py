"""KIF (PAPERS.md §4): find which skill units hold each experience's knowledge, and fuse per unit.

During an experience, after every optimizer step's gradients are complete (before clipping):

    I = |θ ⊙ g|   (or |θg − ½(θg)²| with sensitivity "second")
    Ī = β1·Ī + (1−β1)·I;   Ū = β2·Ū + (1−β2)·|I − Ī|
    score(unit) = mean over the unit's entries of Ī ⊙ Ū

After the experience (cur = weights now, prev = weights before it):

    Ic = minmax(score_cur), Ip = minmax(score_prev_accumulated)
    hard: important = at or above the `quantile` of Ic (of Ip);
          both → 0.3·cur + 0.7·prev, only prev → prev, only cur → cur, neither → ½cur + ½prev
    soft: w_cur = sigmoid((Ic − Ip)/τ), fused = w_cur·cur + (1 − w_cur)·prev
    score_prev_accumulated ← minmax(0.3·Ic + 0.7·Ip)

Skill units. Full fine-tuning: each trainable tensor ("tensor") or each output row of each
matrix ("row"; vectors stay one unit). LoRA: each adapted module's (A, B) pair ("tensor") or each
rank-1 component r = (column r of B, row r of A) ("row"). LoRA fusion is done on ΔW = B·A, not on
A and B separately (mixing factors would give (wB_c + …)(wA_c + …), not a mix of updates):
ΔW_f = Σ_units w·ΔW_cur,unit + (1 − w)·ΔW_prev,unit, refactored into rank-r factors by truncated
SVD. That is exact whenever ΔW_f has rank ≤ r (e.g. every unit takes one side, w ∈ {0, 1}); the
relative Frobenius error of the truncation is recorded per experience otherwise.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from typing import Literal

import torch
from pydantic import Field, PositiveFloat, model_validator

from forgetless.core.config import Section
from forgetless.core.errors import ForgetlessError
from forgetless.methods.hooks import Context, Method
from forgetless.methods.registry import register


class KIFConfig(Section):
    unit: Literal["tensor", "row"] = "tensor"
    """Skill unit: "tensor" (each weight tensor; LoRA: each adapted module) or "row" (each
    output row; LoRA: each rank-1 component)."""
    beta1: float = Field(0.85, ge=0, lt=1)
    """EMA factor of the sensitivity (Ī)."""
    beta2: float = Field(0.85, ge=0, lt=1)
    """EMA factor of the uncertainty (Ū)."""
    sensitivity: Literal["first", "second"] = "first"
    """"first": |θ⊙g|; "second": |θg − ½(θg)²| (the paper's second-order variant)."""
    fusion: Literal["hard", "soft", "average"] = "hard"
    """"hard": the four-case rule on top-`quantile` units; "soft": w_cur = sigmoid((Ic−Ip)/τ);
    "average": every unit `neither_current`·cur + rest·prev, importance ignored — the control
    that tells whether KIF is more than averaging with the previous weights (same cost)."""
    quantile: float = Field(0.8, gt=0, lt=1)
    """Units at or above this quantile of the normalised scores are important (0.8: top 20 %)."""
    both_current: float = Field(0.3, ge=0, le=1)
    """Hard rule, important to both: weight of the current weights (the paper's 0.3)."""
    neither_current: float = Field(0.5, ge=0, le=1)
    """Hard rule, important to neither: weight of the current weights (0.5)."""
    temperature: PositiveFloat = 0.25
    """Soft rule temperature τ: [c_prev, c_cur] = softmax([Ip, Ic]/τ), i.e. w_cur =
    sigmoid((Ic − Ip)/τ) (the paper's 0.25)."""
    accumulate_current: float = Field(0.3, ge=0, le=1)
    """Weight of the current scores in the accumulated previous scores (0.3)."""
    vectors: Literal["current", "fuse"] = "current"
    """1-D parameters (norm weights, biases): "current" keeps their new values and leaves them out
    of the ranking — their |θ⊙g| lives on another scale (norm weights near 1 get the largest
    scores) and takes the top of every ranking, so almost every matrix falls into "neither" and is
    averaged with the old weights; "fuse": units like any other (the reference code)."""
    normalise: Literal["global", "family"] = "global"
    """Min-max normalise the scores "global"ly (the paper) or within each parameter family (the same
    tensor of every layer, e.g. all mlp.down_proj), so that the ranking compares like with like."""
    strict: bool = True
    """Important = strictly above the quantile (TaSL's `>`): with ties at the quantile (e.g. many
    zero scores) `>=` would call every tied unit important."""
    placement: Literal["importance", "shuffled"] = "importance"
    """Which units get which fusion weight: those their importance picked ("importance"), or, after
    the rule has set every weight, each unit the weight of a random other unit of the same size
    ("shuffled", drawn anew each experience from the run's seed). Shuffled keeps every case's
    share, by count and by weight, and drops only the choice of units: the control that tells
    whether importance picks the right units, where `fusion: average` tells whether the cases
    matter at all (with which it cannot be combined: every weight is the same there)."""

    @model_validator(mode="after")
    def _shuffles_something(self) -> KIFConfig:
        if self.placement == "shuffled" and self.fusion == "average":
            raise ValueError("placement 'shuffled' with fusion 'average' changes nothing (every "
                             "unit gets the same weight); use fusion 'hard' or 'soft'")
        return self


def minmax(x: torch.Tensor) -> torch.Tensor:
    span = x.max() - x.min()
    return (x - x.min()) / span if span > 0 else torch.zeros_like(x)


def family(name: str) -> str:
    """A parameter's family: its name with the layer index removed."""
    return re.sub(r"\.\d+\.", ".*.", name)


def normalise(scores: torch.Tensor, index: list[tuple], how: str) -> torch.Tensor:
    """Min-max over all units ("global") or within each family of units ("family")."""
    if how == "global":
        return minmax(scores)
    out = torch.empty_like(scores)
    groups: dict[str, list[int]] = {}
    for i, (_, name, _) in enumerate(index):
        groups.setdefault(family(name), []).append(i)
    for members in groups.values():
        at = torch.tensor(members, device=scores.device)
        out[at] = minmax(scores[at])
    return out


def important(scores: torch.Tensor, cfg: KIFConfig) -> torch.Tensor:
    """Mask of the units above the `quantile` of these normalised scores (strictly, by default)."""
    above = torch.gt if cfg.strict else torch.ge
    return above(scores, torch.quantile(scores, cfg.quantile))


def hard_cases(ic: torch.Tensor, ip: torch.Tensor, cfg: KIFConfig) -> dict[str, torch.Tensor]:
    """The hard rule's four cases as masks over the units: important to "both" experiences, to
    the "previous" only, to the "current" only, or to "neither"."""
    cur_imp, prev_imp = important(ic, cfg), important(ip, cfg)
    return {"both": cur_imp & prev_imp, "previous": prev_imp & ~cur_imp,
            "current": cur_imp & ~prev_imp, "neither": ~cur_imp & ~prev_imp}


def case_weights(cases: dict[str, torch.Tensor], cfg: KIFConfig) -> torch.Tensor:
    """The hard rule's weight of the current weights per unit, from its cases."""
    w = torch.full(cases["neither"].shape, cfg.neither_current, device=cases["neither"].device)
    w[cases["both"]] = cfg.both_current
    w[cases["previous"]] = 0.0
    w[cases["current"]] = 1.0
    return w


def fusion_weights(ic: torch.Tensor, ip: torch.Tensor, cfg: KIFConfig) -> torch.Tensor:
    """Weight of the current weights per unit, from normalised current and previous scores."""
    if cfg.fusion == "soft":
        return torch.sigmoid((ic - ip) / cfg.temperature)
    if cfg.fusion == "average":
        return torch.full_like(ic, cfg.neither_current)
    return case_weights(hard_cases(ic, ip, cfg), cfg).to(ic.dtype)


def accumulated(ic: torch.Tensor, ip: torch.Tensor, index: list[tuple], cfg: KIFConfig) -> torch.Tensor:
    """The previous scores the next experience compares with: normalise(a·Ic + (1 − a)·Ip)."""
    return normalise(cfg.accumulate_current * ic + (1 - cfg.accumulate_current) * ip, index,
                     cfg.normalise)


def shared_with_before(now: torch.Tensor, before: torch.Tensor) -> float:
    """Share of the units important now (a mask) that were important before (a mask)."""
    return float((now & before).sum()) / max(int(now.sum()), 1)


def same_size_permutation(sizes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """A random permutation of the units that sends each unit to one of the same size, so that
    `w[perm]` moves weights between units without changing how much of the model each holds."""
    perm = torch.arange(len(sizes))
    for size in sizes.unique():
        members = (sizes == size).nonzero().flatten()
        perm[members] = members[torch.randperm(len(members), generator=generator)]
    return perm


def fuse_lora(b_cur, a_cur, b_prev, a_prev, w: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, float]:
    """Fused (B, A) of rank r with B·A = Σ_k w_k·b_cur,k a_cur,kᵀ + (1 − w_k)·b_prev,k a_prev,kᵀ
    (w: one weight per rank-1 component, or one for all), best rank-r by SVD; relative error."""
    r = a_cur.shape[0]
    w = w.expand(r) if w.numel() == 1 else w
    delta = (b_cur * w) @ a_cur + (b_prev * (1 - w)) @ a_prev
    u, s, vh = torch.linalg.svd(delta.double(), full_matrices=False)
    root = s[:r].sqrt()
    b = (u[:, :r] * root).to(b_cur.dtype)
    a = (root[:, None] * vh[:r]).to(a_cur.dtype)
    total = float(s.square().sum())
    err = (float(s[r:].square().sum()) / total) ** 0.5 if total > 0 else 0.0
    return b, a, err


_LORA = re.compile(r"^(.*)\.lora_([AB])\.([^.]+)\.weight$")


class Units:
    """The skill units of a model's trainable parameters and their scores as one flat vector."""

    def __init__(self, named: list[tuple[str, torch.nn.Parameter]], unit: str, *,
                 vectors: str):
        self.params = OrderedDict(named)
        self.lora: dict[str, dict[str, str]] = {}  # module → {"A": name, "B": name}
        for name in self.params:
            m = _LORA.match(name)
            if m:
                self.lora.setdefault(m.group(1), {})[m.group(2)] = name
        paired = {n for pair in self.lora.values() for n in pair.values()}
        self.plain = [n for n in self.params if n not in paired
                      and (vectors == "fuse" or self.params[n].dim() >= 2)]
        """Plain units; 1-D parameters left out with vectors "current" (never fused)."""
        self.row = unit == "row"

    def scores(self, score: dict[str, torch.Tensor]) -> tuple[torch.Tensor, list[tuple]]:
        """Flat unit scores and, per entry, what it is: ("plain", name, row|None) or
        ("lora", module, rank|None). `score` holds Ī⊙Ū per parameter."""
        values, index = [], []
        for name in self.plain:
            s = score[name]
            if self.row and s.dim() >= 2:
                per_row = s.flatten(1).mean(1)
                values.append(per_row)
                index += [("plain", name, i) for i in range(len(per_row))]
            else:
                values.append(s.mean().reshape(1))
                index.append(("plain", name, None))
        for module, pair in self.lora.items():
            a, b = score[pair["A"]], score[pair["B"]]  # A: [r, in], B: [out, r]
            if self.row:
                # component k: row k of A and column k of B, weighted by their entry counts
                comp = (a.sum(1) + b.sum(0)) / (a.shape[1] + b.shape[0])
                values.append(comp)
                index += [("lora", module, k) for k in range(len(comp))]
            else:
                values.append(((a.sum() + b.sum()) / (a.numel() + b.numel())).reshape(1))
                index.append(("lora", module, None))
        return (torch.cat(values).float() if values else torch.zeros(0)), index

    def sizes(self, index: list[tuple]) -> torch.Tensor:
        """Trainable entries per unit of `index` (a row's entries, a LoRA component's row of A
        and column of B): to weigh unit shares by how much of the model they are."""
        out = []
        for kind, name, sub in index:
            if kind == "plain":
                p = self.params[name]
                out.append(p.numel() if sub is None else p.shape[1:].numel())
            else:
                a, b = self.params[self.lora[name]["A"]], self.params[self.lora[name]["B"]]
                out.append(a.numel() + b.numel() if sub is None else a.shape[1] + b.shape[0])
        return torch.tensor(out, dtype=torch.float64)


@register("kif", KIFConfig, summary="KIF: skill-unit importance and per-unit fusion after each "
          "experience (full fine-tuning or LoRA)")
class KIF(Method):
    config: KIFConfig

    def __init__(self, config: KIFConfig):
        super().__init__(config)
        self.units: Units | None = None
        self.ema: dict[str, torch.Tensor] = {}
        self.unc: dict[str, torch.Tensor] = {}
        self.prev: dict[str, torch.Tensor] = {}
        self.prev_scores: torch.Tensor | None = None
        self.prev_important: torch.Tensor | None = None
        """The previous experience's own important units (not the accumulated scores')."""
        self.stats: dict = {}
        self._scratch: torch.Tensor | None = None
        self._sizes: torch.Tensor | None = None

    def setup(self, ctx: Context) -> None:
        self.units = Units(ctx.trainable_parameters(), self.config.unit, vectors=self.config.vectors)

    def before_experience(self, ctx: Context, exp) -> None:
        with torch.no_grad():
            self.prev = {n: p.detach().clone() for n, p in self.units.params.items()}
        self.ema = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self.units.params.items()}
        self.unc = {n: torch.zeros_like(p, dtype=torch.float32) for n, p in self.units.params.items()}
        self.stats = {"steps": 0}

    @torch.no_grad()
    def on_gradients(self, ctx: Context) -> None:
        names, checks = [], []
        for name, p in self.units.params.items():
            if p.grad is not None:
                names.append(name)
                checks.append(self._update(p.detach().reshape(-1), p.grad.reshape(-1),
                                           self.ema[name].view(-1), self.unc[name].view(-1)))
        # One host sync per step for the finiteness check, not one per tensor.
        finite = torch.isfinite(torch.stack(checks)) if checks else torch.ones(0, dtype=torch.bool)
        if not bool(finite.all()):
            bad = names[int((~finite).nonzero()[0])]
            raise ForgetlessError(f"kif: non-finite gradient in {bad} at step "
                                  f"{ctx.global_step}; lower train.lr or check the data")
        self.stats["steps"] += 1

    # Elements per block on CPU. The update is ~6 elementwise passes over every weight each
    # step; done tensor by tensor they stream θ, g, Ī, Ū and a scratch through memory ~15
    # times. Block by block, each block stays in cache between the passes, so memory sees about
    # one read of θ, g, Ī, Ū and one write of Ī, Ū (benchmarks/kif_cost.py). On a GPU the
    # bandwidth is ample and kernel launches are what cost, so a tensor is one block there.
    cpu_block = 1 << 20

    def _update(self, theta, grad, ema, unc) -> torch.Tensor:
        """Ī, Ū ← EMA updates from I = |θ⊙g| (or the second-order form) over one flat tensor.
        Returns the sum of I: not finite exactly when some gradient entry is not."""
        c = self.config
        n = theta.numel()
        block = self.cpu_block if theta.device.type == "cpu" else max(n, 1)
        size = min(block, max(n, 1))
        if self._scratch is None or self._scratch.numel() < size or self._scratch.device != theta.device:
            self._scratch = torch.empty(size, dtype=torch.float32, device=theta.device)
        checks = []
        for start in range(0, n, block):
            end = min(start + block, n)
            sens = self._scratch[: end - start]
            torch.mul(theta[start:end], grad[start:end], out=sens)
            if c.sensitivity == "second":
                sens.addcmul_(sens, sens, value=-0.5)
            sens.abs_()
            checks.append(sens.sum())
            e = ema[start:end]
            e.lerp_(sens, 1 - c.beta1)
            unc[start:end].lerp_(sens.sub_(e).abs_(), 1 - c.beta2)
        return torch.stack(checks).sum() if checks else torch.zeros((), device=theta.device)

    def current_scores(self) -> tuple[torch.Tensor, list[tuple]]:
        return self.units.scores({n: self.ema[n] * self.unc[n] for n in self.ema})

    @torch.no_grad()
    def after_experience(self, ctx: Context, exp) -> None:
        c = self.config
        scores, index = self.current_scores()
        if not index:  # only 1-D parameters are trained (vectors: current): nothing to fuse
            return
        ic = normalise(scores, index, c.normalise)
        digest = ctx.agreed_digest("kif importance", [round(float(x), 6) for x in ic])
        self.stats.update(digest=digest, importance=_tensor_map(ic, index))
        # Is the importance specific to what each experience learned? Near 1 − quantile if the
        # ranking were drawn at random each time, near 1 if the same units lead every time.
        now = important(ic, c).cpu()
        if self.prev_important is not None:
            self.stats["important_shared_with_previous"] = shared_with_before(now, self.prev_important)
        self.prev_important = now
        if self.prev_scores is None:  # first experience: nothing to protect yet
            self.prev_scores = ic.cpu()
            return
        ip = normalise(self.prev_scores.to(ic.device), index, c.normalise)
        # The units do not change between experiences, so their sizes are counted once.
        if self._sizes is None:
            self._sizes = self.units.sizes(index)
        cases = hard_cases(ic, ip, c) if c.fusion == "hard" else None
        w = fusion_weights(ic, ip, c) if cases is None else case_weights(cases, c).to(ic.dtype)
        if c.placement == "shuffled":
            # Every process draws the same permutation: the seed is the run's, not the rank's.
            # Not derive_seed: evidence/concept1k-kif's shuffled runs drew from this formula, and
            # a re-run must draw the same rows to reproduce them.
            gen = torch.Generator().manual_seed(ctx.seed * 1_000_003 + exp.index)
            perm = same_size_permutation(self._sizes, gen).to(w.device)
            w = w[perm]
            cases = None if cases is None else {k: m[perm] for k, m in cases.items()}
        self._fuse(w, index)
        # the next experience compares with what this one found important, shuffled or not
        self.prev_scores = accumulated(ic, ip, index, c).cpu()
        self.stats["fused_share_current"] = float(w.mean())
        # Per unit, the share above can hide how much of the model each case holds: on
        # SmolLM2-135M the tied embedding alone is a fifth of the fused weights.
        total = float(self._sizes.sum())
        self.stats["fused_share_current_by_weight"] = float((w.double().cpu() * self._sizes).sum()) / total
        if cases is not None:
            self.stats["fused_cases_by_weight"] = {
                case: float(self._sizes[mask.cpu()].sum()) / total for case, mask in cases.items()}

    def _fuse(self, w: torch.Tensor, index: list[tuple]) -> None:
        per_param: dict[str, list[tuple[int | None, float]]] = {}
        per_lora: dict[str, list[tuple[int | None, float]]] = {}
        for (kind, name, sub), weight in zip(index, w.tolist(), strict=True):
            (per_param if kind == "plain" else per_lora).setdefault(name, []).append((sub, weight))
        for name, entries in per_param.items():
            p, prev = self.units.params[name], self.prev[name]
            if entries[0][0] is None:
                weight = torch.tensor(entries[0][1], device=p.device, dtype=p.dtype)
            else:  # one weight per output row
                weight = torch.tensor([e[1] for e in entries], device=p.device, dtype=p.dtype)
                weight = weight.view(-1, *([1] * (p.dim() - 1)))
            p.copy_(weight * p + (1 - weight) * prev)
        errors = []
        for module, entries in per_lora.items():
            names = self.units.lora[module]
            a, b = self.units.params[names["A"]], self.units.params[names["B"]]
            weight = torch.tensor([e[1] for e in entries], device=a.device, dtype=a.dtype)
            new_b, new_a, err = fuse_lora(b.detach(), a.detach(), self.prev[names["B"]],
                                          self.prev[names["A"]], weight)
            b.copy_(new_b)
            a.copy_(new_a)
            errors.append(err)
        if errors:
            self.stats["lora_svd_error_max"] = max(errors)

    def experience_stats(self) -> dict:
        return self.stats

    def state_dict(self) -> dict:
        state = {"prev_scores": self.prev_scores, "prev_important": self.prev_important}
        return {k: v for k, v in state.items() if v is not None}

    def load_state_dict(self, state: dict) -> None:
        self.prev_scores = state.get("prev_scores")
        self.prev_important = state.get("prev_important")  # absent in checkpoints before 2026-12-02

    def step_state(self) -> dict:
        return {"ema": self.ema, "unc": self.unc, "steps": self.stats.get("steps", 0)}

    def load_step_state(self, ctx: Context, state: dict) -> None:
        with torch.no_grad():
            for name, value in state["ema"].items():
                self.ema[name].copy_(value)
            for name, value in state["unc"].items():
                self.unc[name].copy_(value)
        self.stats["steps"] = state["steps"]


def _tensor_map(ic: torch.Tensor, index: list[tuple]) -> dict[str, float]:
    """Importance per tensor / LoRA module (row units averaged), for the report's heatmap."""
    sums: dict[str, list[float]] = {}
    for (_, name, _), value in zip(index, ic.tolist(), strict=True):
        sums.setdefault(name, []).append(value)
    return {name: sum(v) / len(v) for name, v in sums.items()}
