"""KIF importance maps as a layer × module heatmap, one panel per experience."""

from __future__ import annotations

import io
import re

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


def _kif_stats(results: dict) -> list[tuple[int, dict]]:
    """(experience, KIF stats) for every experience whose KIF stats hold importance scores:
    what both views below read."""
    out = []
    for x in results["experiences"]:
        st = x.get("methods", {}).get("kif") or {}
        if st.get("importance"):
            out.append((x["experience"], st))
    return out


def importance_maps(results: dict) -> list[tuple[int, dict[str, float]]]:
    return [(e, st["importance"]) for e, st in _kif_stats(results)]


CASES = ("neither", "current", "previous", "both")


def top_units(results: dict, k: int = 5) -> list[list[object]]:
    """Per experience: its k most important units (any kind: norms and embeddings included,
    which the heatmap leaves out), the mean fusion weight of the current weights, and how the
    fused weights split over the hard rule's cases, and the share of its important units that
    were important at the experience before (runs before 2026-12-02 recorded neither)."""
    rows = []
    for e, st in _kif_stats(results):
        best = sorted(st["importance"].items(), key=lambda kv: -kv[1])[:k]
        share = st.get("fused_share_current")
        cases = st.get("fused_cases_by_weight")
        shared = st.get("important_shared_with_previous")
        rows.append([e, ", ".join(f"{n.removeprefix('model.')} {v:.2f}" for n, v in best),
                     "- (first: scores only)" if share is None else f"{share:.2f}",
                     "-" if cases is None else " / ".join(f"{100 * cases[c]:.0f}" for c in CASES),
                     "-" if shared is None else f"{100 * shared:.0f} %"])
    return rows


TOP_HEADER = ["experience", "most important units (normalised score)",
              "mean weight of current (per unit)",
              "fused weights, % (½-merged / current / previous / 0.3·current)",
              "important units also important the experience before"]


def importance_plot(results: dict) -> bytes | None:
    """The KIF importance heatmap as PNG bytes (None: the run has no importance scores)."""
    maps = importance_maps(results)
    grids = [(e, *importance_grid(imp)) for e, imp in maps]
    grids = [g for g in grids if g[1]]
    if not grids:
        return None
    import matplotlib

    matplotlib.use("Agg")
    matplotlib.rcParams["text.parse_math"] = False
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    # One log colour scale over the matrices of every panel. The scores are min-max normalised
    # over all units, and 1-D units (norm weights) usually hold the maximum: on SmolLM2-135M the
    # projection matrices span 1e-6…6e-4 of it, which a linear scale shows as uniform black.
    positive = [v for _, _, rows in grids for row in rows for v in row if v is not None and v > 0]
    top = max(positive, default=1.0)
    norm = LogNorm(vmin=max(min(positive, default=top * 1e-4), top * 1e-4), vmax=top)
    fig, axes = plt.subplots(1, len(grids), figsize=(2.2 + 2.0 * len(grids), 4.5), squeeze=False)
    for k, (ax, (e, modules, rows)) in enumerate(zip(axes[0], grids, strict=True)):
        data = np.array([[np.nan if v is None else max(v, norm.vmin) for v in row] for row in rows])
        im = ax.imshow(data, aspect="auto", cmap="magma", norm=norm, origin="lower")
        ax.set_xticks(range(len(modules)), [m.replace("_proj", "") for m in modules],
                      rotation=90, fontsize=7)
        if k == 0:
            ax.set_ylabel("layer", fontsize=8)
        ax.set_title(f"experience {e}", fontsize=9)
    fig.colorbar(im, ax=axes[0].tolist(), label="normalised importance (log; 1 = the top unit)",
                 shrink=0.8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    return buf.getvalue()
