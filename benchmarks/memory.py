"""Peak memory of a run by model set-up: full fine-tuning, LoRA, LoRA on a bf16 base, each with a
base-model teacher in use (the probe's held-out samples: KL to the base model).

Each case is a separate `forgetless run` process (peak resident memory, or peak CUDA memory on a
GPU, is per process; results.json `run.peak_memory_mb`): 2 experiences of the built-in stream,
1 epoch, 8 probe samples, no country QA.

    .venv/bin/python benchmarks/memory.py [--model embedded] [--out /tmp/forgetless-memory]
    .venv/bin/python benchmarks/memory.py --random-init smollm2-360m [--cases 0,1,2]

`--random-init` measures a larger shape without downloading it: the SmolLM2 family's published
shape, randomly initialised, saved once beside --out with the embedded tokenizer (memory does
not depend on the weights' values). `--set` adds overrides (e.g. fewer examples per step).
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
SHAPES = {  # the SmolLM2 models' config.json shapes (tied embeddings, vocabulary 49,152)
    "smollm2-360m": dict(hidden_size=960, intermediate_size=2560, num_hidden_layers=32,
                         num_attention_heads=15, num_key_value_heads=5),
    "smollm2-1.7b": dict(hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                         num_attention_heads=32, num_key_value_heads=32),
}


def random_init(shape: str, where: Path) -> Path:
    """A randomly initialised model of `shape` with the embedded tokenizer, saved once."""
    target = where / f"{shape}-random-init"
    if (target / "model.safetensors").is_file() or (target / "model.safetensors.index.json").is_file():
        return target
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from forgetless.models.load import embedded_tokenizer_dir

    tok = AutoTokenizer.from_pretrained(embedded_tokenizer_dir())
    config = LlamaConfig(vocab_size=len(tok), tie_word_embeddings=True, rms_norm_eps=1e-5,
                         max_position_embeddings=8192, rope_theta=100000.0,
                         bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                         **SHAPES[shape])
    torch.manual_seed(0)
    LlamaForCausalLM(config).save_pretrained(target, safe_serialization=True)
    tok.save_pretrained(target)
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="embedded")
    parser.add_argument("--out", default="/tmp/forgetless-memory")
    parser.add_argument("--random-init", choices=sorted(SHAPES))
    parser.add_argument("--cases", default=",".join(map(str, range(len(CASES)))),
                        help="which set-ups, by number (default all): " +
                        "; ".join(f"{i} {name}" for i, name in enumerate(CASES)))
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    if args.random_init:
        args.model = str(random_init(args.random_init, out.parent / "forgetless-models"))
    forgetless = Path(sys.executable).parent / "forgetless"
    chosen = {int(c) for c in args.cases.split(",")}
    print(f"model {args.random_init or args.model}: {' '.join([*SHORT, *args.overrides])}")
    print("| set-up | weights (MiB) | peak memory (MiB) | trainable / total parameters | wall s |")
    print("|---|---|---|---|---|")
    for i, (name, extra) in enumerate(CASES.items()):
        if i not in chosen:
            continue
        run_dir = out / str(i)
        sets = [f"--set={o}" for o in [f"model.name={args.model}", *SHORT, *args.overrides,
                                       *extra]]
        subprocess.run([str(forgetless), "run", *sets, "--out", str(run_dir), "--quiet"],
                       check=True, stdout=subprocess.DEVNULL)
        r = json.loads((run_dir / "results.json").read_text())["run"]
        p = r["parameters"]
        print(f"| {name} | {r['weights_mb']:.0f} | {r['peak_memory_mb']:.0f} | "
              f"{p['trainable']:,} / {p['total']:,} | "
              f"{r['session_s']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
