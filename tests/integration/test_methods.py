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
