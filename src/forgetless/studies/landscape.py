"""`forgetless landscape RUN_DIR`: the loss landscape around a saved checkpoint.

Loads the run's config and the checkpoint after experience k, takes the examples of experience
j (train or test split), and computes a 1-D and a 2-D loss surface along filter-normalised random
directions, ρ-sharpness and the top Hessian eigenvalue. Writes PNG plots and the numbers under
`landscape/`, appends them to `landscape.json` (shown by `forgetless report` and in results.json).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from forgetless.core.errors import RunDirError
from forgetless.core.progress import bars_disabled
from forgetless.core.store import RunStore, atomic_write_json


def run_landscape(run_dir: str | Path, after: int | None, experience: int | None,
                  split: str, points: int, radius: float, rho: float, ascent_steps: int,
                  hessian_iters: int, examples: int, seed: int, quiet: bool = False) -> dict:
    from forgetless.data.chat import as_the_model_sees_it
    from forgetless.data.collate import encode_all
    from forgetless.data.stream import build_stream
    from forgetless.engine.trained import load_trained
    from forgetless.eval.landscape import (
        Loss,
        direction_coords,
        filter_normalized_direction,
        flatness,
        surface,
    )

    t0 = time.perf_counter()
    cfg, tokenizer, model, after = load_trained(run_dir, after, option="--experience")
    store = RunStore(run_dir)
    experience = after if experience is None else experience
    # conversations through the chat template, as the run encoded them for its evaluations
    template, stream = as_the_model_sees_it(build_stream(cfg.data), cfg.data, tokenizer)
    if not 0 <= experience < len(stream):
        raise RunDirError(f"--data {experience}: the stream has experiences 0–{len(stream) - 1}")
    data = stream.experiences[experience].split(split)[:examples]
    items = encode_all(data, tokenizer, template, cfg.train.max_length)

    passes = ascent_steps + hessian_iters + points + points * points
    with tqdm(total=passes, desc="landscape", leave=False,
              disable=True if quiet else bars_disabled()) as bar:
        row = {"after": after, "experience": experience, "split": split, "examples": len(items),
               **flatness(model, items, tokenizer.pad_token_id, rho, ascent_steps,
                          hessian_iters, seed, tick=bar.update)}
        loss = Loss(model, items, tokenizer.pad_token_id)
        d1 = filter_normalized_direction(loss.params, seed)
        d2 = filter_normalized_direction(loss.params, seed + 1)
        coords = direction_coords(radius, points)
        # the power iteration may stop early (or, at a saddle, run twice)
        bar.update(max(0, ascent_steps + hessian_iters - bar.n))
        line = surface(loss, [d1], coords, tick=bar.update)
        grid = surface(loss, [d1, d2], coords, tick=bar.update)
    row.update({"radius": radius, "coords": coords, "surface_1d": line, "surface_2d": grid,
                "seconds": time.perf_counter() - t0})

    out = store.dir / "landscape"
    out.mkdir(exist_ok=True)
    stem = f"after-{after:03d}-on-{experience:03d}-{split}"
    row["plots"] = [f"landscape/{stem}-1d.png", f"landscape/{stem}-2d.png"]
    _plot(store.dir, row, stem)
    path = store.dir / "landscape.json"
    rows = json.loads(path.read_text()) if path.is_file() else []
    key = (after, experience, split)
    rows = [r for r in rows if (r["after"], r["experience"], r["split"]) != key] + [row]
    atomic_write_json(path, rows)
    if store.results_path.is_file():
        from forgetless.report.summary import render

        results = store.read_results()
        store.write_results(results)
        render(store, results, quiet=True)
    if not quiet:
        print(f"after experience {after}, data of experience {experience} ({split}, "
              f"{len(items)} examples): loss {row['loss']:.4f}, ρ-sharpness(ρ={rho}) "
              f"{row['sharpness']:.4f}, top Hessian eigenvalue "
              f"{row.get('top_eigenvalue', float('nan')):.3f}"
              f"{'' if row.get('settled', True) else ' (not settled: a lower bound)'}; "
              f"{row['seconds']:.1f} s")
        print(f"plots: {', '.join(str(store.dir / p) for p in row['plots'])}")
    return row


def _plot(run_dir: Path, row: dict, stem: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt

    title = f"after experience {row['after']}, data of {row['experience']} ({row['split']})"
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot(row["coords"], row["surface_1d"], marker="o", ms=3)
    ax.set_xlabel("step along a filter-normalised direction")
    ax.set_ylabel("answer NLL")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(run_dir / f"landscape/{stem}-1d.png", dpi=110)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(4.5, 4))
    cs = ax.contourf(row["coords"], row["coords"], row["surface_2d"], levels=20, cmap="viridis")
    ax.contour(row["coords"], row["coords"], row["surface_2d"], levels=10, colors="white",
               linewidths=0.4)
    fig.colorbar(cs, ax=ax, label="answer NLL")
    ax.plot([0], [0], "r+", ms=10)
    ax.set_xlabel("direction 1")
    ax.set_ylabel("direction 2")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(run_dir / f"landscape/{stem}-2d.png", dpi=110)
    plt.close(fig)
