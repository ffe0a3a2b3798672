"""scripts/table2.py: docs/studies.md's Table 2 rendered from run directories, each arm paired
by seed with its reference — checked against a hand-computed row."""

import importlib.util
import json

from tests.conftest import REPO
from tests.unit.test_compare import fake_results

spec = importlib.util.spec_from_file_location("table2", REPO / "scripts" / "table2.py")
table2 = importlib.util.module_from_spec(spec)
spec.loader.exec_module(table2)


def write_run(folder, method, seed, mf, la, session_s, memory_mb, machine, landscape_s=0.0,
              threads=2):
    r = fake_results(method, seed, mf)
    matrix = [[la, None], [la - mf, la]]  # learned la on both, forgot mf of experience 0
    r.update(name=f"{method}-{seed}", experiences=[{}, {}],
             matrices={"train": matrix, "test": matrix},
             metrics={"train": {}, "test": {"BWT": 0.0, "FWT": 0.0}})
    # summed: the run's seconds; flatness, measured within evaluation, is not the method's cost
    r["timings"] = {"train_s": session_s - 10.0, "eval_s": 10.0 + landscape_s,
                    "landscape_s": landscape_s}
    r["run"] = {"peak_memory_mb": memory_mb, "session_s": 1.0,
                "machine": {"cpu": machine, "cpu_capability": "AVX512", "threads": threads}}
    folder.mkdir(parents=True)
    (folder / "results.json").write_text(json.dumps(r))


def test_a_row_pairs_the_arm_with_its_reference_by_seed(tmp_path, capsys):
    """By hand: seqft MF 0.5, 0.6 (seeds 0, 1); replay 0.3, 0.5: differences −0.2, −0.1, mean
    −15.0 points, sd 0.0707, half-width 12.706 · 0.05 = 63.5. Learned: seqft 1.0, 0.9; replay
    0.9, 0.9: −0.1, 0.0 → −5.0 [−68.5, 58.5]. MF as a share of the best score: seqft 0.5/1.0,
    0.6/0.9; replay 0.3/0.9, 0.5/0.9: differences −1/6, −1/9, mean −13.9, half-width
    12.706 · (1/18)/2 = 35.3 → [−49.2, 21.4]. Replay's seed 1 ran on another machine and
    measured flatness for 500 s besides its 1,300 s; its seed 0 ran with one thread against
    seqft's two, so both pairs span machines."""
    runs = tmp_path / "runs"
    write_run(runs / "seqft-seed0", "seqft", 0, 0.5, 1.0, 100.0, 1024.0, "Intel(R) Xeon(R)")
    write_run(runs / "seqft-seed1", "seqft", 1, 0.6, 0.9, 120.0, 2048.0, "Intel(R) Xeon(R)")
    write_run(runs / "replay-seed0", "replay", 0, 0.3, 0.9, 300.0, 3072.0, "Intel(R) Xeon(R)",
              threads=1)
    write_run(runs / "replay-seed1", "replay", 1, 0.5, 0.9, 1300.0, 3072.0, "AMD EPYC 7B13",
              landscape_s=500.0)
    (tmp_path / "spec.yaml").write_text(
        'rows:\n  - arm: seqft\n    reference: ["runs/seqft-seed*"]\n'
        '  - arm: replay\n    reference: ["runs/seqft-seed*"]\n    runs: ["runs/replay-seed*"]\n'
        '    paper: "77.3 / 22.5 / 47.0"\n')
    assert table2.main([str(tmp_path / "spec.yaml")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 4
    seqft = [c.strip() for c in lines[2].strip("|").split("|")]
    assert seqft[:3] == ["seqft", "Xeon AVX512 2t × 2", "–"]
    assert seqft[8:] == ["55.0 [-8.5, 118.5]", "100–120 s", "1.0–2.0 GiB", "–"]
    replay = [c.strip() for c in lines[3].strip("|").split("|")]
    # seed 0 ran with 1 thread against seqft's 2: another machine for its float sums
    assert replay[1:5] == ["Xeon AVX512 1t × 1 + EPYC AVX512 2t × 1", "2 (2 across machines)",
                           "-5.0 [-68.5, 58.5]", "-15.0 [-78.5, 48.5]"]
    assert replay[5] == "-13.9 [-49.2, 21.4]"
    assert replay[8:] == ["40.0 [-87.1, 167.1]", "300–1,300 s", "3.0 GiB", "77.3 / 22.5 / 47.0"]


def test_a_glob_that_matches_nothing_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "spec.yaml").write_text('rows:\n  - arm: seqft\n    reference: ["runs/none*"]\n')
    assert table2.main([str(tmp_path / "spec.yaml")]) == 2
    err = capsys.readouterr().err
    assert "row 'seqft': no run directory matches" in err and err.count("\n") == 1
    (tmp_path / "spec.yaml").write_text("rows: 3\n")
    assert table2.main([str(tmp_path / "spec.yaml")]) == 2
    assert "a list under `rows`" in capsys.readouterr().err
