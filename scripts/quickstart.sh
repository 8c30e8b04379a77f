#!/usr/bin/env bash
# Installs what is missing, builds the examples, and runs the main job on the default model.
# (Until the conversion pipeline lands, the main job is the exact GQA -> MLA rewrite check and the
# shape planner for the default model's attention shape.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mla_install_deps

jobs="${MLA_JOBS:-$(nproc)}"
cmake --preset cpu-release >/dev/null
cmake --build --preset cpu-release -j "$jobs" --target mla-shapes

bin=build/cpu-release/examples
echo
echo "== SmolLM2-135M attention (3 KV heads x 64): shapes for a 50 % smaller KV cache =="
"$bin/shapes/mla-shapes" --kv-heads 3 --head-dim 64 --reduction 0.5
