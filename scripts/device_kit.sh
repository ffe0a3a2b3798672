#!/usr/bin/env bash
# Build .device-kit/: what a lent GPU machine (the `device` tool) needs to run forgetless, in
# loads that each fit one call's 64 MiB together with the working tree. That machine has
# python3 3.12 with torch, accelerate, safetensors, huggingface-hub, tokenizers, numpy, scipy,
# pandas, matplotlib, pyyaml and tqdm, no registry and no internet (../shared/docs/DESIGN.md; the
# device tool's KINDS.md lists its packages). What it lacks travels as wheels; the embedded
# model's 98 MB GGUF travels in parts sized to what the working tree leaves of each load (the
# tree grows with evidence/: 11 MB on 2026-12-07, when two parts no longer fitted), its
# tokenizer extracted; Concept-1K (no license: never committed) travels compressed from
# $CONCEPT1K_DIR.
#
#   CONCEPT1K_DIR=/data/concept_1k bash scripts/device_kit.sh [--python-version 3.12]
#
# It ends by printing the calls to make (benchmarks/gpu_session.sh says what each does), e.g.
#   run  carry=[.device-kit/wheels, .device-kit/data, .device-kit/model-1]
#        command: bash benchmarks/gpu_session.sh setup
#   run  carry=[.device-kit/model-2]   command: bash benchmarks/gpu_session.sh receive
#   run  carry=[.device-kit/model-3]   command: bash benchmarks/gpu_session.sh measure
# one after another, while the machine is still warm.
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

rm -rf "$KIT.tmp" && mkdir -p "$KIT.tmp"/{wheels,data}
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
(cd "$(dirname "$gguf")" && sha256sum "$(basename "$gguf")") > "$KIT.tmp/data/model.sha256"
# The working tree travels with every load: tracked files and untracked ones git does not
# ignore. What it leaves of 64 MiB, less a margin for files added before the calls, is each
# load's room; the first load also carries the wheels and the data.
tree=$(git ls-files -z --cached --others --exclude-standard | du -cb --files0-from=- | tail -1 | cut -f1)
limit=$(( 64 * 1024 * 1024 ))
room=$(( limit - tree - 2 * 1024 * 1024 ))
first_room=$(( room - $(du -cb "$KIT.tmp/wheels" "$KIT.tmp/data" | tail -1 | cut -f1) ))
[ "$first_room" -gt 0 ] || { echo "device_kit: the working tree ($(( tree / 1048576 )) MiB) leaves no room for the model beside the wheels and data in 64 MiB" >&2; exit 1; }
size=$(stat -c %s "$gguf")
parts=1 offset=$first_room
while [ "$offset" -lt "$size" ]; do parts=$(( parts + 1 )); offset=$(( offset + room )); done
offset=0
for k in $(seq 1 "$parts"); do
  mkdir -p "$KIT.tmp/model-$k"
  n=$room; [ "$k" -eq 1 ] && n=$first_room
  dd if="$gguf" of="$KIT.tmp/model-$k/gguf.part" iflag=skip_bytes,count_bytes skip="$offset" \
    count="$n" bs=1M status=none
  offset=$(( offset + n ))
done
echo "$parts" > "$KIT.tmp/data/model.parts"
rm -rf "$KIT" && mv "$KIT.tmp" "$KIT"

load() { du -cb "$@" | tail -1 | cut -f1; }
echo "device_kit: $KIT built: $(ls "$KIT/wheels" | wc -l) wheels for Python $PYVER, Concept-1K, the embedded model in $parts parts"
echo "device_kit: the working tree is $(( tree / 1048576 )) MiB; the calls to make, one after another:"
for k in $(seq 1 "$parts"); do
  if [ "$k" -eq 1 ]; then carry=("$KIT/wheels" "$KIT/data" "$KIT/model-1") stage=setup
  else carry=("$KIT/model-$k") stage=receive; fi
  [ "$k" -eq "$parts" ] && [ "$k" -gt 1 ] && stage=measure
  bytes=$(( tree + $(load "${carry[@]}") ))
  listed=$(printf '%s, ' "${carry[@]}")
  echo "  $k. carry=[${listed%, }]  command: bash benchmarks/gpu_session.sh $stage   ($(( bytes / 1048576 )) MiB)"
  if [ "$bytes" -gt "$limit" ]; then echo "device_kit: load $k is over the device tool's 64 MiB" >&2; exit 1; fi
done
[ "$parts" -gt 1 ] || echo "  then: bash benchmarks/gpu_session.sh measure (nothing more to carry)"
