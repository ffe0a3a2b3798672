"""The embedded default end to end (minutes: marked slow, not in CI)."""

import pytest

import forgetless

pytestmark = pytest.mark.slow


def test_default_run_forgets(tmp_path):
    result = forgetless.run(None, [f"output_dir={tmp_path}"])
    assert result.results["complete"]
    assert result.headline["MF"] > 0, "sequential fine-tuning of the embedded model must forget"
    assert result.headline["MA"] > result.headline["GA"], "paraphrases must be harder"
