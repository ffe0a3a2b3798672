"""Peak memory of a run by model set-up: full fine-tuning, LoRA, LoRA on a bf16 base, each with a
base-model teacher in use (the probe's held-out samples: KL to the base model).

Each case is a separate `forgetless run` process (peak resident memory, or peak CUDA memory on a
GPU, is per process; results.json `run.peak_memory_mb`): 2 experiences of the built-in stream,
1 epoch, 8 probe samples, no country QA.

    .venv/bin/python benchmarks/memory.py [--model embedded] [--out /tmp/forgetless-memory]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

CASES = {
    "full fine-tuning, fp32": [],
    "LoRA r=8, fp32 base": ["model.lora.enabled=true"],
    "LoRA r=8, bf16 base": ["model.lora.enabled=true", "model.dtype=bf16"],
}
SHORT = ["data.n_experiences=2", "train.epochs=1", "probe.samples=8", "probe.qa=false",
         "eval.batch_size=16"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--out", default="/tmp/forgetless-memory")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    forgetless = Path(sys.executable).parent / "forgetless"
    print(f"model {args.model}: {' '.join(SHORT)}")
    print("| set-up | weights (MiB) | peak memory (MiB) | trainable / total parameters | wall s |")
    print("|---|---|---|---|---|")
    for i, (name, extra) in enumerate(CASES.items()):
        run_dir = out / str(i)
        sets = [f"--set={o}" for o in [f"model.name={args.model}", *SHORT, *extra]]
        subprocess.run([str(forgetless), "run", *sets, "--out", str(run_dir), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        r = json.loads((run_dir / "results.json").read_text())["run"]
        p = r["parameters"]
        print(f"| {name} | {r['weights_mb']:.0f} | {r['peak_memory_mb']:.0f} | "
              f"{p['trainable']:,} / {p['total']:,} | "
              f"{r['session_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
