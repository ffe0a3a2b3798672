#!/usr/bin/env bash
# Build .device-kit/: what a lent GPU machine (the `device` tool) needs to run forgetless, in two
# loads that each fit one call's 64 MiB. That machine has python3 3.12 with torch, accelerate,
# safetensors, huggingface-hub, tokenizers, numpy, scipy, pandas, matplotlib, pyyaml and tqdm,
# no registry and no internet (../shared/docs/DESIGN.md; the device tool's KINDS.md lists its
# packages). What it lacks travels as wheels; the embedded model's 98 MB GGUF travels in two
# parts, its tokenizer extracted; Concept-1K (no license: never committed) travels compressed
# from $CONCEPT1K_DIR.
#
#   CONCEPT1K_DIR=/data/concept_1k bash scripts/device_kit.sh [--python-version 3.12]
#
# Then, on the device, one call per load (benchmarks/gpu_session.sh says what each does):
#   run  carry=[.device-kit/wheels, .device-kit/data, .device-kit/model-a]
#        command: bash benchmarks/gpu_session.sh setup
#   run  carry=[.device-kit/model-b]          (within the 30 s the machine stays warm)
#        command: bash benchmarks/gpu_session.sh measure
set -euo pipefail
cd "$(dirname "$0")/.."
PYVER=3.12
if [ "${1:-}" = "--python-version" ]; then PYVER=$2; fi
KIT=.device-kit
PY=.venv/bin/python
[ -x "$PY" ] || { echo "device_kit: run scripts/setup.sh first (.venv/bin/python missing)" >&2; exit 2; }
: "${CONCEPT1K_DIR:?device_kit: set CONCEPT1K_DIR to the folder holding the Concept-1K dataset.txt (docs/benchmarks.md)}"
for f in dataset.txt continual_config.json; do
  [ -f "$CONCEPT1K_DIR/$f" ] || { echo "device_kit: CONCEPT1K_DIR=$CONCEPT1K_DIR: $f missing" >&2; exit 2; }
done
gguf=$("$PY" -c "from forgetless.models.load import _embedded_gguf; print(_embedded_gguf())")

rm -rf "$KIT.tmp" && mkdir -p "$KIT.tmp"/{wheels,data,model-a,model-b}
# The forgetless requirements the machine's image lacks or has older than constraints.txt
# (transformers 5.17 there; peft's version there unread), with what they need that it lacks.
# tokenizers stays out (0.23.2 there meets transformers' >=0.23.1); rouge-score too (an sdist
# only, and only free-form answers use it: Concept-1K's are scored by exact match).
pins=$(grep -iE '^(transformers|peft|pydantic|pydantic_core|annotated-types|typing-inspection|gguf|datasets|dill|multiprocess|countryinfo|nltk)==' constraints.txt)
# shellcheck disable=SC2086
"$PY" -m pip download -q --disable-pip-version-check --no-deps --only-binary=:all: \
  --python-version "$PYVER" --implementation cp --platform manylinux2014_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 -d "$KIT.tmp/wheels" $pins
xz -T1 -6 -c "$CONCEPT1K_DIR/dataset.txt" > "$KIT.tmp/data/dataset.txt.xz"
cp "$CONCEPT1K_DIR/continual_config.json" "$KIT.tmp/data/"
# the embedded tokenizer, extracted here, so that tiny models run there before the model arrives
cache=$("$PY" -c "from forgetless.models.load import cut_tokenizer_dir as c; print(c().parent)")
tar -C "$cache" -cJf "$KIT.tmp/data/tokenizers.tar.xz" tokenizer tokenizer-4096
# the first part rides with the wheels and the data, the second alone
head -c 40000000 "$gguf" > "$KIT.tmp/model-a/gguf.part"
tail -c +40000001 "$gguf" > "$KIT.tmp/model-b/gguf.part"
(cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > "$KIT.tmp/model-b/SHA256SUMS"
rm -rf "$KIT" && mv "$KIT.tmp" "$KIT"

tree=$(git ls-files -z | du -cb --files0-from=- | tail -1 | cut -f1)
load() { du -cb "$@" | tail -1 | cut -f1; }
first=$(( tree + $(load "$KIT/wheels" "$KIT/data" "$KIT/model-a") ))
second=$(( tree + $(load "$KIT/model-b") ))
limit=$(( 64 * 1024 * 1024 ))
echo "device_kit: $KIT built: $(ls "$KIT/wheels" | wc -l) wheels for Python $PYVER, Concept-1K, the embedded model in 2 parts"
echo "device_kit: load 1 with the working tree: $(( first / 1048576 )) MiB; load 2: $(( second / 1048576 )) MiB (limit 64 MiB each)"
if [ "$first" -gt "$limit" ] || [ "$second" -gt "$limit" ]; then
  echo "device_kit: a load is over the device tool's 64 MiB" >&2
  exit 1
fi
