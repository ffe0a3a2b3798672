"""`forgetless` command line. Bad input: one line on stderr naming what was wrong, exit code 2."""

from __future__ import annotations

import argparse
import errno
import json
import sys

from forgetless.core.errors import ConfigError, ForgetlessError


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("config", nargs="?", help="YAML config, or a preset's name (forgetless config "
                   "--list); default: the built-in quickstart")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config value, e.g. --set train.lr=1e-4 (repeatable)")


class _OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (`forgetless sweep: error: …`); `-h` still shows the usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} -h)\n")


def _parser() -> argparse.ArgumentParser:
    from forgetless.core.config import LandscapeConfig

    landscape = LandscapeConfig()
    parser = _OneLineParser(
        prog="forgetless",
        description="Continual learning of language models: measure forgetting, mitigate it.",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("run", help="run (or resume) a continual-learning experiment")
    _add_config_args(p)
    p.add_argument("--out", help="run directory (default: <output_dir>/<name>-<method>-<hash>)")
    p.add_argument("--fresh", action="store_true", help="discard an existing run directory")
    p.add_argument("--quiet", action="store_true", help="no progress bars, progress lines or final "
                   "table (sets TQDM_DISABLE=1)")
    _add_threads_arg(p)

    p = sub.add_parser("data", help="print the stream a config produces")
    _add_config_args(p)
    p.add_argument("--json", action="store_true", help="JSON list of experiences")
    p.add_argument("--sources", action="store_true", help="list the registered data sources")
    p.add_argument("--examples", action="store_true", help="with --json: every example of every "
                   "experience (experience, split, uid, question, prompt, answer, concept, "
                   "relation, choices)")
    p.add_argument("--audit", action="store_true", help="what a concept-blind guess scores, "
                   "answers found in their questions, duplicates, answer lengths")

    p = sub.add_parser("report", help="re-render summary.md and the table of a run directory")
    p.add_argument("run_dir")

    p = sub.add_parser("config", help="print the resolved config, or every key with --keys")
    _add_config_args(p)
    p.add_argument("--keys", action="store_true", help="list every key, its type and default")
    p.add_argument("--list", action="store_true", help="list the presets shipped with forgetless")
    p.add_argument("--copy", metavar="NAME", help="copy preset NAME to the config path given "
                   "(default: ./<name>.yaml), to edit")

    p = sub.add_parser("export", help="a run's trained model as a Hugging Face directory")
    p.add_argument("run_dir")
    p.add_argument("--out", required=True, help="directory to create (must not exist or be empty)")
    p.add_argument("--stage", type=int, default=None, help="the model after experience K "
                   "(default: the newest checkpoint; keep_checkpoints: all keeps every one)")
    p.add_argument("--adapter", action="store_true", help="LoRA runs: write the adapter alone "
                   "(peft format) instead of the merged model")

    p = sub.add_parser("landscape", help="loss surfaces, ρ-sharpness and top Hessian eigenvalue "
                       "around a run's checkpoint")
    p.add_argument("run_dir")
    p.add_argument("--experience", type=int, help="checkpoint after this experience (default: "
                   "the newest)")
    p.add_argument("--data", type=int, help="examples of this experience (default: the same)")
    p.add_argument("--split", choices=["train", "test"], default="train")
    p.add_argument("--points", type=int, default=11, help="grid points per direction")
    p.add_argument("--radius", type=float, default=1.0, help="grid half-width, in units of the "
                   "filter-normalised direction")
    # Defaults are the config's (LandscapeConfig), so a recorded and a later measure agree.
    p.add_argument("--rho", type=float, default=landscape.rho, help="radius for ρ-sharpness")
    p.add_argument("--ascent-steps", type=int, default=landscape.ascent_steps)
    p.add_argument("--hessian-iters", type=int, default=landscape.hessian_iters)
    p.add_argument("--examples", type=int, default=landscape.examples,
                   help="examples used (the first N)")
    p.add_argument("--seed", type=int, default=0, help="seed of the random directions")

    p = sub.add_parser("compare", help="one table, plots and an HTML page across run directories")
    p.add_argument("run_dirs", nargs="+", metavar="RUN_DIR")
    p.add_argument("--out", default="comparison", help="output directory (default: ./comparison)")
    p.add_argument("--level", type=_level, default=0.95, metavar="L",
                   help="confidence level of every interval (default 0.95; 0.975 splits α = 0.05 "
                   "over two looks at the data or two arms, Bonferroni)")

    p = sub.add_parser("sweep", help="a grid of runs over seeds from a study file, summarised")
    p.add_argument("study", help="study YAML (see configs/studies/)")
    p.add_argument("--out", help="study directory (default: runs/studies/<name>[-smoke])")
    p.add_argument("--smoke", action="store_true", help="the study's reduced size (first seed, "
                   "smoke overrides)")
    p.add_argument("--dry-run", action="store_true", help="list the runs and where each "
                   "stands (done, running, stopped, pending), with the work left; run nothing")
    p.add_argument("--seeds", type=_seed_list, metavar="S[,S…]", help="run these seeds instead of "
                   "the study's (e.g. 0 first; finished runs are kept when more seeds follow)")
    p.add_argument("--arms", action="append", metavar="GLOB", help="only the arms whose name "
                   "(as --dry-run lists them, without -seedK) matches this shell glob, e.g. "
                   "'method=sam*' (repeatable): a slice of a long study first, the rest later into "
                   "the same --out")
    p.add_argument("--jobs", type=_positive, default=1, metavar="N", help="run N runs at a time, each "
                   "its own process (CPU threads split between them; GPUs dealt one per run, "
                   "shared when fewer); with --launcher slurm, the array's parallelism")
    p.add_argument("--threads", type=_positive, metavar="T", help="CPU threads per run (default: the "
                   "cores divided by --jobs)")
    p.add_argument("--launcher", default="local", choices=["local", "slurm", "submitit-local"],
                   help="local: processes here; slurm: a SLURM job array through submitit "
                   "(pip install 'forgetless[slurm]'); submitit-local: that path on this machine")
    p.add_argument("--launcher-option", action="append", default=[], metavar="KEY=VALUE",
                   help="a submitit executor parameter, e.g. slurm_partition=gpu, timeout_min=120, "
                   "gpus_per_node=1 (repeatable)")

    p = sub.add_parser("pretrain", help="a small Llama from scratch on domain A, then fine-tuning "
                       "on domain B: how much of A is lost")
    p.add_argument("config", nargs="?", help="YAML pretraining config (default: built-in)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--out", help="run directory (default: <output_dir>/<name>-<size>-<hash>)")
    _add_threads_arg(p)
    p.add_argument("--keys", action="store_true", help="list every key, its type and default")
    p.add_argument("--list", action="store_true", help="list the presets shipped with forgetless")
    p.add_argument("--copy", metavar="NAME", help="copy preset NAME to the config path given "
                   "(default: ./<name>.yaml), to edit")

    sub.add_parser("methods", help="list the registered methods")
    return parser


def _cmd_run(args) -> int:
    from forgetless.core.config import load_config
    from forgetless.engine.experiment import run_experiment
    from forgetless.report.callbacks import run_callbacks

    if args.quiet:
        from forgetless.core.progress import silence_bars

        silence_bars()
    cfg = load_config(args.config, args.overrides)
    from forgetless.models.device import use_threads

    use_threads(args.threads)
    run_experiment(cfg, run_dir=args.out, fresh=args.fresh,
                   callbacks=run_callbacks(cfg, quiet=args.quiet))
    return 0


def _cmd_data(args) -> int:
    from forgetless.core.config import load_config
    from forgetless.data.stream import build_stream

    if args.sources:
        from forgetless.data.sources import registry

        for name in registry.names():
            print(f"{name:<15} {registry.get(name).summary}")
        return 0
    cfg = load_config(args.config, args.overrides)
    stream = build_stream(cfg.data)
    if args.audit:
        from forgetless.data.audit import audit, audit_text

        report = audit(stream)
        print(json.dumps(report, indent=1) if args.json else audit_text(report))
        return 0
    if args.examples:
        if not args.json:
            raise ConfigError("--examples is a JSON listing: add --json")
        template = cfg.data.prompt_template
        if cfg.data.chat_template != "none":  # rendered by the model's tokenizer
            from forgetless.data.chat import as_the_model_sees_it
            from forgetless.models.load import load_tokenizer

            template, stream = as_the_model_sees_it(stream, cfg.data, load_tokenizer(cfg.model))
        print(json.dumps(stream.examples(template), indent=1))
        return 0
    summary = stream.summary()
    if args.json:
        print(json.dumps(summary, indent=1))
        return 0
    print(f"stream {stream.name}: {len(summary)} experiences")
    print(f"{'id':>3} {'n_train':>8} {'n_test':>7}  concepts")
    for row in summary:
        names = row.get("name") or ", ".join(row["concepts"])
        if len(names) > 70:
            names = names[:67] + "..."
        print(f"{row['id']:>3} {row['n_train']:>8} {row['n_test']:>7}  {names}")
    return 0


def _cmd_report(args) -> int:
    from forgetless.core.store import RunStore
    from forgetless.report.summary import render

    store = RunStore(args.run_dir)
    render(store, store.read_results())
    return 0


def _cmd_config(args) -> int:
    import yaml

    from forgetless.core.config import all_keys, load_config

    if args.list:
        from forgetless.core.presets import describe_preset, presets

        found = presets()
        width = max(len(name) for name in found)
        for name, path in found.items():
            print(f"{name:<{width}}  {describe_preset(path)}")
        return 0
    if args.copy:
        from forgetless.core.presets import copy_preset

        print(f"wrote {copy_preset(args.copy, args.config)}")
        return 0
    if args.keys:
        given = args.config is not None or bool(args.overrides)
        cfg = load_config(args.config, args.overrides) if given else None
        for key, type_name, default, doc in all_keys():
            value = "" if cfg is None else _key_value(cfg, key, doc)
            if value is None:
                continue  # another source's or an unused method's option
            print(f"{key}{value}  ({type_name}, default {default})\n    {doc}")
        return 0
    print(yaml.safe_dump(load_config(args.config, args.overrides).to_dict(), sort_keys=False),
          end="")
    return 0


def _key_value(cfg, key: str, doc: str) -> str | None:
    """" = value" of a key in this config; None where the key does not apply to it (another data
    source's option, the section of a method it does not use)."""
    import json

    from forgetless.core.config import flatten
    from forgetless.core.registry import METHODS

    if doc.startswith("[data.source ") and not doc.startswith(f"[data.source {cfg.data.source}]"):
        return None
    section = key.split(".")[0]
    if section in METHODS.names() and section not in cfg.method.split("+"):
        return None
    values = flatten(cfg.to_dict())
    if key not in values:
        return ""  # a section heading
    return f" = {json.dumps(values[key])}"


def _cmd_landscape(args) -> int:
    from forgetless.studies.landscape import run_landscape

    for name in ("points", "ascent_steps", "examples"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    for name in ("radius", "rho"):
        if not getattr(args, name) > 0:
            raise ConfigError(f"--{name} must be positive")
    if args.hessian_iters < 0:
        raise ConfigError("--hessian-iters must be 0 or more")
    run_landscape(args.run_dir, args.experience, args.data, args.split, args.points, args.radius,
                  args.rho, args.ascent_steps, args.hessian_iters, args.examples, args.seed)
    return 0


def _cmd_export(args) -> int:
    from forgetless.engine.trained import export

    out = export(args.run_dir, args.out, args.stage, args.adapter)
    print(f"{'adapter' if args.adapter else 'model'} written to {out}")
    return 0


def _cmd_compare(args) -> int:
    from forgetless.core.stats import LEVEL
    from forgetless.report.compare import COLUMNS, compare, table_rows

    summary = compare(args.run_dirs, args.out, args.level)
    width = [max(len(c), *(len(r[k]) for r in table_rows(summary["runs"])))
             for k, c in enumerate(COLUMNS[:8])]
    for row in [COLUMNS[:8], *(r[:8] for r in table_rows(summary["runs"]))]:
        print("  ".join(c.rjust(w) if k else c.ljust(w)
                        for k, (c, w) in enumerate(zip(row, width, strict=True))))
    corr = summary["sharpness_forgetting"]
    if corr["points"]:
        from forgetless.report.compare import corr_text

        print(f"sharpness vs forgetting, per run: {corr_text(corr['runs'])}; per experience: "
              f"{corr_text(corr['experiences'])}")
    if summary["differences"]:
        from forgetless.report.compare import diff_header, difference_table

        print("paired by seed, each group minus the first"
              + ("" if args.level == LEVEL else f" ({100 * args.level:.4g} % intervals)") + ":")
        diffs = summary["differences"]
        for row in [diff_header(diffs), *difference_table(diffs)]:
            print("  " + " | ".join(row))
    for w in summary["warnings"]:
        print(f"forgetless: warning: {w}", file=sys.stderr)
    print(f"comparison: {args.out}/compare.html")
    return 0


def _add_threads_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_positive, metavar="T", help="CPU threads (default: "
                   "torch's, every core); the count reorders float sums, so resume a run, or run "
                   "its partners, with the count it started with (a sweep's --threads)")


def _level(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"expected a confidence level between 0 and 1 (e.g. "
                                         f"0.975), got {text!r}")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _seed_list(text: str) -> list[int]:
    try:
        seeds = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        seeds = []
    if not seeds:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    return seeds


def _cmd_sweep(args) -> int:
    from forgetless.studies.sweep import status, sweep

    if args.dry_run:
        print("\n".join(status(args.study, args.out, args.smoke, args.seeds, args.arms)))
        return 0
    from forgetless.studies.launch import launcher_options

    sweep(args.study, args.out, smoke=args.smoke, seeds=args.seeds, jobs=args.jobs,
          launcher=args.launcher, launcher_options=launcher_options(args.launcher_option),
          threads=args.threads, arms=args.arms)
    return 0


def _cmd_pretrain(args) -> int:
    from forgetless.studies.pretraining import PretrainConfig, load_pretrain_config, run_pretrain

    if args.keys:
        from forgetless.core.config import describe

        for key, type_name, default, doc in describe(PretrainConfig):
            print(f"{key}  ({type_name}, default {default})\n    {doc}")
        return 0
    cfg = load_pretrain_config(args.config, args.overrides)
    from forgetless.models.device import use_threads

    use_threads(args.threads)
    run_pretrain(cfg, args.out)
    return 0


def _cmd_methods(args) -> int:
    from forgetless.methods import registry

    for name in registry.names():
        spec = registry.get(name)
        owns = "  [owns the optimizer step]" if spec.owns_optimizer_step else ""
        print(f"{name:<12} {spec.summary}{owns}")
    return 0


COMMANDS = {"run": _cmd_run, "data": _cmd_data, "report": _cmd_report, "config": _cmd_config,
            "landscape": _cmd_landscape, "compare": _cmd_compare, "sweep": _cmd_sweep,
            "pretrain": _cmd_pretrain, "methods": _cmd_methods, "export": _cmd_export}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from forgetless.core.presets import resolve

    for name in ("config", "study"):  # a preset's name stands for its packaged file
        if getattr(args, name, None) is not None and not (name == "config" and
                                                          getattr(args, "copy", None)):
            setattr(args, name, resolve(getattr(args, name)))
    try:
        return COMMANDS[args.command](args)
    except ForgetlessError as e:
        print(f"forgetless: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("forgetless: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
    except OSError as e:
        if e.errno not in _STORAGE_ERRORS:
            raise
        # Every file forgetless writes goes to a temporary name first: what was there is intact.
        print(f"forgetless: error: {e.filename or 'writing output'}: {e.strerror}; files written "
              f"before are whole — make room (or fix permissions) and run the same command "
              f"again to resume", file=sys.stderr)
        return 1


_STORAGE_ERRORS = {errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM, errno.EIO,
                   errno.EFBIG}


if __name__ == "__main__":
    raise SystemExit(main())
