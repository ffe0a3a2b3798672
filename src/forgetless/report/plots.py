"""Figures shared by the run report and `forgetless compare` (matplotlib, Agg, no screen)."""

from __future__ import annotations

import matplotlib
import numpy as np

matplotlib.use("Agg")
# Run and arm names are plain text: a directory called `a$b$` must not be parsed as math.
matplotlib.rcParams["text.parse_math"] = False
import matplotlib.pyplot as plt  # noqa: E402


def as_array(matrix: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if x is None else x for x in row] for row in matrix], dtype=float)


def draw_matrix(ax, matrix: list[list[float | None]], title: str) -> None:
    """R[i][j] as a heatmap, row = after experience i, with the percentages written in."""
    data = as_array(matrix)
    ax.imshow(data * 100, cmap="viridis", vmin=0, vmax=100, aspect="equal")
    T = data.shape[0]
    for i in range(T):
        for j in range(T):
            if not np.isnan(data[i, j]):
                v = data[i, j] * 100
                ax.text(j, i, f"{v:.0f}", ha="center", va="center", fontsize=8 if T < 8 else 6,
                        color="white" if v < 60 else "black")
    ax.set_xticks(range(T))
    ax.set_yticks(range(T))
    ax.set_xlabel("experience", fontsize=8)
    ax.set_ylabel("after training", fontsize=8)
    ax.set_title(title, fontsize=9)
    ax.tick_params(labelsize=7)


def matrices_figure(runs: list[tuple[str, dict]]):
    """One row per entry (a run, or an arm's mean): train (memorization) and test
    (generalization) matrices."""
    fig, axes = plt.subplots(len(runs), 2, figsize=(6.4, 3.0 * len(runs)), squeeze=False)
    for row, (label, results) in zip(axes, runs, strict=True):
        for ax, split in zip(row, ("train", "test"), strict=True):
            name = {"train": "train (memorization)", "test": "test (generalization)"}[split]
            draw_matrix(ax, results["matrices"][split], f"{label}\n{name}" if label else name)
    fig.tight_layout()
    return fig


def close(fig) -> None:
    plt.close(fig)


def figure(width: float, height: float, ncols: int = 1):
    fig, axes = plt.subplots(1, ncols, figsize=(width, height), squeeze=False)
    return fig, axes[0]


def colors(n: int) -> list:
    """n distinguishable colours: matplotlib's tab10, tab20 past ten."""
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(k % cmap.N) for k in range(n)]


def scatter_labelled(ax, xs: list[float], ys: list[float], labels: list[str],
                     groups: list[str] | None = None, palette: dict | None = None,
                     **kwargs) -> None:
    """Points named by annotation, one per run; or, with `groups`, coloured by group with one
    legend entry each (a study's 33 runs annotated one by one cannot be read). `palette`: group →
    colour, so that a group keeps its colour in panels that leave another group out."""
    if groups is None:
        ax.scatter(xs, ys, **kwargs)
        for x, y, label in zip(xs, ys, labels, strict=True):
            ax.annotate(label, (x, y), fontsize=7)
        return
    names = list(dict.fromkeys(groups))
    palette = palette or dict(zip(names, colors(len(names)), strict=True))
    for name in names:
        pts = [(x, y) for x, y, g in zip(xs, ys, groups, strict=True) if g == name]
        ax.scatter(*zip(*pts, strict=True), color=palette[name], label=name)
    if names:
        ax.legend(fontsize=7)
