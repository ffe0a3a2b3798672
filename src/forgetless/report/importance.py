"""KIF importance maps as a layer × module heatmap, one panel per experience."""

from __future__ import annotations

import re
from pathlib import Path

_NAME = re.compile(r"layers\.(\d+)\.(?:self_attn|mlp)\.(\w+?)(?:\.weight)?$")
ORDER = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def importance_grid(importance: dict[str, float]) -> tuple[list[str], list[list[float | None]]]:
    """(module names, rows per layer) from {parameter or module name: score}; other tensors
    (embeddings, norms) are left out of the map."""
    cells: dict[tuple[int, str], float] = {}
    for name, value in importance.items():
        m = _NAME.search(name)
        if m:
            cells[(int(m.group(1)), m.group(2))] = value
    if not cells:
        return [], []
    modules = [m for m in ORDER if any(k[1] == m for k in cells)]
    modules += sorted({k[1] for k in cells} - set(modules))
    layers = max(k[0] for k in cells) + 1
    return modules, [[cells.get((i, m)) for m in modules] for i in range(layers)]


def write_importance_plot(results: dict, path: Path) -> bool:
    maps = [(x["experience"], x["methods"]["kif"]["importance"]) for x in results["experiences"]
            if "kif" in x.get("methods", {}) and x["methods"]["kif"].get("importance")]
    grids = [(e, *importance_grid(imp)) for e, imp in maps]
    grids = [g for g in grids if g[1]]
    if not grids:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, len(grids), figsize=(2.2 + 2.0 * len(grids), 4.5), squeeze=False)
    for ax, (e, modules, rows) in zip(axes[0], grids, strict=True):
        data = np.array([[np.nan if v is None else v for v in row] for row in rows])
        im = ax.imshow(data, aspect="auto", cmap="magma", vmin=0, vmax=1, origin="lower")
        ax.set_xticks(range(len(modules)), [m.replace("_proj", "") for m in modules],
                      rotation=90, fontsize=7)
        ax.set_ylabel("layer", fontsize=8)
        ax.set_title(f"experience {e}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="normalised importance", shrink=0.8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
