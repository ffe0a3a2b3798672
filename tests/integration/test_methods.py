"""Methods do what they claim, measured against seqft on the same tiny model, stream and seed."""

import pytest

import forgetless

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def seqft(tmp_path_factory):
    from tests.conftest import TINY

    out = tmp_path_factory.mktemp("seqft")
    return forgetless.run(None, TINY, run_dir=out / "run")


def test_replay_forgets_less_than_seqft(seqft, tiny_overrides, tmp_path):
    replay = forgetless.run(None, [*tiny_overrides, "method=replay", "replay.buffer_size=8"],
                            run_dir=tmp_path / "replay")
    print("seqft", seqft.headline, "replay", replay.headline)
    assert replay.headline["MF"] < seqft.headline["MF"] - 0.2
    assert replay.headline["MA"] > seqft.headline["MA"]
    # the buffer was trained on: experience 1 and 2 had 8 new + up to 8 replayed examples
    assert [x["n_train_examples"] for x in replay.results["experiences"]] == [8, 16, 16]


def answer_nll(result, after, experience=0, split="train"):
    return next(ev["nll"] for ev in result.results["evaluations"]
                if ev["after"] == after and ev["experience"] == experience and ev["split"] == split)


def test_lwf_moves_old_answers_less_than_seqft(seqft, tiny_overrides, tmp_path):
    lwf = forgetless.run(None, [*tiny_overrides, "method=lwf", "lwf.alpha=1.0"],
                         run_dir=tmp_path / "lwf")
    rise = {name: answer_nll(r, 2) - answer_nll(r, 0) for name, r in
            (("seqft", seqft), ("lwf", lwf))}
    print("answer-NLL rise on experience 0:", rise)
    assert rise["lwf"] < rise["seqft"]


def test_ewc_moves_parameters_less_than_seqft(tiny_overrides, tmp_path):
    from safetensors.torch import load_file

    def drift(method_overrides, name):
        result = forgetless.run(None, [*tiny_overrides, "keep_checkpoints=all",
                                       *method_overrides], run_dir=tmp_path / name)
        ckpt = result.run_dir / "checkpoints"
        first = load_file(str(ckpt / "exp-000" / "weights.safetensors"))
        last = load_file(str(ckpt / "exp-002" / "weights.safetensors"))
        return sum(float(((last[k] - first[k]) ** 2).sum()) for k in first) ** 0.5, result

    d_seqft, _ = drift([], "seqft")
    d_ewc, ewc = drift(["method=ewc", "ewc.lam=100000"], "ewc")
    print("parameter drift after experience 0:", {"seqft": d_seqft, "ewc": d_ewc})
    assert d_ewc < 0.8 * d_seqft
    assert "fisher" in (ewc.run_dir / "checkpoints" / "exp-002" / "state.json").read_text()
