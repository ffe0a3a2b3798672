"""How much of KIF's fusion is a plain ½-merge: per step, the share of the fused weights in each
case of the hard rule (important to neither experience → ½·cur + ½·prev, to the current only →
cur, to the previous only → prev, to both → 0.3·cur + 0.7·prev), weighted by entry count.

    .venv/bin/python scripts/kif_fusion_cases.py RUN_DIR [RUN_DIR ...]

Runs since 2026-12-02 record this (`fused_cases_by_weight` in results.json). For earlier runs it
is rebuilt from the normalised importance each experience recorded, replaying the accumulation of
the previous scores; that is possible for tensor units with full fine-tuning (one score per
tensor), and the rebuilt per-unit share must equal the recorded `fused_share_current`, or the
script stops. Tensor sizes come from the run's model, loaded as the run loaded it.

It also prints how many of each experience's important units (strictly above the `quantile` of
its own normalised importance) were important at the experience before: near 1 − quantile if
importance were step-specific at random, near 1 if the same units lead every time. Runs since
2026-12-02 record it (`important_shared_with_previous`); for earlier runs it is rebuilt for
tensor units from the recorded importance (row units record only tensor means).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

import torch

from forgetless.core.config import load_config
from forgetless.core.errors import ForgetlessError
from forgetless.methods.kif import (
    Units,
    accumulated,
    case_weights,
    hard_cases,
    important,
    normalise,
    shared_with_before,
)
from forgetless.models.load import load_model, load_tokenizer
from forgetless.report.importance import CASES


def rebuilt(results: dict, cfg) -> list[tuple[int, dict[str, float]]]:
    """Per fused experience, (its index, the cases' shares of the fused weights), from recorded importance."""
    kif = cfg.method_config("kif")
    if kif.unit != "tensor" or cfg.model.lora.enabled or kif.fusion != "hard":
        raise ForgetlessError("only hard fusion of tensor units under full fine-tuning can be "
                              "rebuilt from recorded importance (kif.unit, model.lora, kif.fusion)")
    model = load_model(cfg.model, load_tokenizer(cfg.model), seed=cfg.seed)
    units = Units([(n, p) for n, p in model.named_parameters() if p.requires_grad], kif.unit,
                  vectors=kif.vectors)
    prev, out = None, []
    for x in results["experiences"]:
        st = x["methods"]["kif"]
        names = list(st["importance"])
        index = [("plain", n, None) for n in names]
        ic = torch.tensor([st["importance"][n] for n in names])
        if prev is None:
            prev = ic
            continue
        ip = normalise(prev, index, kif.normalise)
        cases = hard_cases(ic, ip, kif)
        w = case_weights(cases, kif)
        if abs(float(w.mean()) - st["fused_share_current"]) > 1e-6:
            raise ForgetlessError(f"experience {x['experience']}: rebuilt share of current "
                                  f"{float(w.mean()):.6f} != recorded {st['fused_share_current']:.6f}")
        sizes = units.sizes(index)
        out.append((x["experience"], {c: float(sizes[m].sum() / sizes.sum())
                                      for c, m in cases.items()}))
        prev = accumulated(ic, ip, index, kif)
    return out


def shared_important(results: dict, kif) -> list[float]:
    """Per experience after the first: the share of its important units that were important at
    the experience before (each ranked on its own recorded importance), as KIF records it."""
    maps = [x["methods"]["kif"]["importance"] for x in results["experiences"]]
    names = list(maps[0])
    tops = [important(torch.tensor([m[n] for n in names]), kif) for m in maps]
    return [shared_with_before(now, before) for before, now in itertools.pairwise(tops)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path)
    args = parser.parse_args(argv)
    for run in args.runs:
        try:
            results = json.loads((run / "results.json").read_text(encoding="utf-8"))
            cfg = load_config(run / "config.yaml")
            recorded = [(x["experience"], x["methods"]["kif"]["fused_cases_by_weight"])
                        for x in results["experiences"]
                        if "fused_cases_by_weight" in x.get("methods", {}).get("kif", {})]
            shares = recorded or rebuilt(results, cfg)
        except KeyError as e:
            print(f"kif_fusion_cases: {run}: results.json has no {e} (not a finished KIF run?)",
                  file=sys.stderr)
            return 2
        except (OSError, ForgetlessError) as e:
            print(f"kif_fusion_cases: {run}: {e}", file=sys.stderr)
            return 2
        print(f"{run.name} ({'recorded' if recorded else 'rebuilt'}): fused weights, % "
              f"({' / '.join(CASES)}) per fused experience")
        for k, s in shares:
            print(f"  {k}: " + " / ".join(f"{100 * s[c]:.1f}" for c in CASES))
        mean = {c: sum(s[c] for _, s in shares) / len(shares) for c in CASES}
        print("  mean: " + " / ".join(f"{100 * mean[c]:.1f}" for c in CASES))
        kif = cfg.method_config("kif")
        shared = [x["methods"]["kif"]["important_shared_with_previous"]
                  for x in results["experiences"][1:]
                  if "important_shared_with_previous" in x["methods"]["kif"]]
        if not shared and kif.unit == "tensor":
            shared = shared_important(results, kif)
        if shared:
            print(f"  important units shared with the experience before (chance ≈ "
                  f"{1 - kif.quantile:.2f}): " + " ".join(f"{v:.2f}" for v in shared)
                  + f"; mean {sum(shared) / len(shared):.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
