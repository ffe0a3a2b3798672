"""Per-run report.html and `forgetless compare`, rendered in headless Chromium."""

import json
import os
import re
import shutil
import subprocess

import pytest

import forgetless
from tests.conftest import TINY, forgetless_cli

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

# Appended to a copy of the page: after load, count sections and images that decoded.
CHECK = """<script>window.addEventListener('load', () => {
  const imgs = [...document.images];
  const ok = imgs.filter(i => i.complete && i.naturalWidth > 0).length;
  const ids = [...document.querySelectorAll('section')].map(s => s.id).join(',');
  const d = document.createElement('div'); d.id = 'rendered';
  d.textContent = `sections=${ids};images=${imgs.length};decoded=${ok}`;
  document.body.appendChild(d);
});</script>"""


def render(page, tmp_path) -> dict:
    """Open the page in headless Chromium from disk (no server) and read back what rendered."""
    if CHROMIUM is None:
        if os.environ.get("FORGETLESS_REQUIRE_BROWSER"):
            pytest.fail("chromium is not installed (scripts/install-browser.sh installs Debian's chromium)")
        pytest.skip("chromium is not installed (scripts/install-browser.sh installs it where it can)")
    probe = tmp_path / f"check-{page.name}"
    probe.write_text(page.read_text().replace("</body>", CHECK + "</body>"))
    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
         "--virtual-time-budget=5000", "--dump-dom", probe.as_uri()],
        capture_output=True, text=True, timeout=120).stdout
    m = re.search(r'id="rendered">sections=([^;]*);images=(\d+);decoded=(\d+)<', dom)
    assert m, f"page did not render: {dom[:300]!r}"
    return {"sections": m.group(1).split(","), "images": int(m.group(2)),
            "decoded": int(m.group(3))}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    out = tmp_path_factory.mktemp("runs")
    common = [*TINY, "probe.samples=0", "probe.qa=false", "landscape.record=true",
              "landscape.hessian_iters=3", "landscape.examples=8"]
    return [forgetless.run(None, [*common, *extra], run_dir=out / name) for name, extra in
            (("seqft", []), ("sam", ["method=sam", "sam.rho=0.05"]),
             ("replay", ["method=replay", "replay.buffer_size=8"]))]


def test_run_report_html_renders(runs, tmp_path):
    page = runs[1].run_dir / "report.html"
    seen = render(page, tmp_path)
    for section in ("summary", "matrices", "forgetting", "flatness", "cost", "config"):
        assert section in seen["sections"]
    assert seen["images"] >= 1 and seen["decoded"] == seen["images"]
    assert "http" not in re.sub(r'xmlns="http[^"]*"', "", page.read_text())  # nothing fetched


def test_a_render_without_figures_writes_the_tables_and_keeps_the_last_page(runs, tmp_path):
    """Between the throttled full renders of a running run: the CSVs and summary.md follow the
    results, report.html and the KIF heatmap keep their last drawing."""
    from forgetless.core.store import RunStore
    from forgetless.report.summary import render

    run_dir = tmp_path / "copy"
    shutil.copytree(runs[0].run_dir, run_dir)
    results = json.loads((run_dir / "results.json").read_text())
    page, summary = (run_dir / "report.html").read_bytes(), (run_dir / "summary.md").read_text()
    results["matrices"]["train"][0][0] = 0.123456
    render(RunStore(run_dir), results, quiet=True, figures=False)
    assert (run_dir / "report.html").read_bytes() == page
    assert "0.123456" in (run_dir / "matrix_train.csv").read_text()
    assert (run_dir / "summary.md").read_text() != summary
    render(RunStore(run_dir), results, quiet=True)
    assert (run_dir / "report.html").read_bytes() != page


def test_compare_table_plots_correlation_and_html(runs, tmp_path):
    out = tmp_path / "cmp"
    proc = forgetless_cli("compare", *(r.run_dir for r in runs), "--out", out)
    print(proc.stdout)
    assert "sharpness vs forgetting" in proc.stdout
    summary = json.loads((out / "compare.json").read_text())
    assert [r["run"] for r in summary["runs"]] == ["seqft", "sam", "replay"]
    assert summary["runs"][0]["MF"] == runs[0].headline["MF"]
    corr = summary["sharpness_forgetting"]
    assert corr["experiences"]["n"] == 6  # 3 runs × experiences 0 and 1
    assert corr["runs"]["n"] == 3 and corr["runs"]["pearson"] is not None
    for name in ("matrices", "forgetting", "accuracy_vs_forgetting", "cost_vs_forgetting",
                 "sharpness_vs_forgetting"):
        assert (out / f"{name}.png").stat().st_size > 1000
    # three methods, one seed each: three groups, each compared with seqft on its one pair
    assert [g["label"] for g in summary["groups"]] == ["seqft", "sam", "replay"]
    diff = summary["differences"][0]
    assert diff["group"] == "sam" and diff["MF"]["n"] == 1 and diff["MF"]["ci_low"] is None
    assert diff["MF"]["mean"] == pytest.approx(runs[1].headline["MF"] - runs[0].headline["MF"])
    assert "paired by seed, each group minus the first" in proc.stdout
    seen = render(out / "compare.html", tmp_path)
    assert seen["sections"] == ["table", "warnings", "groups", "matrices", "forgetting", "accuracy", "pareto",
                                "sharpness"]
    assert seen["images"] == 5 and seen["decoded"] == 5


def test_compare_bad_input_is_one_line(tmp_path):
    proc = forgetless_cli("compare", tmp_path, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1
    assert "no results.json" in proc.stderr
