#!/usr/bin/env bash
# Builds the libFuzzer harnesses for the safetensors and GGUF parsers (clang, ASan + UBSan) and runs
# each for a bounded time, one process at a time.
#
#   scripts/fuzz.sh [seconds-per-harness]        default 60, or $FUZZ_SECONDS
#
# Environment: FUZZ_DIR (work directory, default /tmp/mla-fuzz: binaries, seeds, grown corpora and
# crash artifacts), CXX_FUZZ (default clang++; Debian package `clang`), FUZZ_TARGETS (default
# "safetensors gguf"). Seeds: small valid files written by tests/io/fuzz/make_seeds.cpp plus the
# golden files in tests/io/data. Exits non-zero when a harness finds a crash, leak or timeout; the
# input is left at $FUZZ_DIR/<target>-crash-* (re-run it with: $FUZZ_DIR/<target>_fuzz <file>).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-${FUZZ_SECONDS:-60}}"
work="${FUZZ_DIR:-/tmp/mla-fuzz}"
cxx="${CXX_FUZZ:-clang++}"
targets="${FUZZ_TARGETS:-safetensors gguf}"

if ! command -v "$cxx" >/dev/null 2>&1; then
  echo "fuzz.sh: $cxx not found (install the Debian package 'clang')" >&2
  exit 1
fi

mkdir -p "$work"
common=(-std=c++17 -g -Iinclude -Itests/io)

echo "== seeds"
"$cxx" "${common[@]}" -O1 tests/io/fuzz/make_seeds.cpp -o "$work/make_seeds"
rm -rf "$work/seeds"
"$work/make_seeds" "$work/seeds" tests/io/data/*.hex

status=0
for t in $targets; do
  echo "== $t: build"
  "$cxx" "${common[@]}" -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
    "tests/io/fuzz/${t}_fuzz.cpp" -o "$work/${t}_fuzz"
  mkdir -p "$work/corpus/$t"
  echo "== $t: fuzz for ${seconds}s"
  if ! "$work/${t}_fuzz" "$work/corpus/$t" "$work/seeds/$t" \
      -dict="tests/io/fuzz/${t}.dict" -max_total_time="$seconds" -max_len=32768 -timeout=10 \
      -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$work/${t}-"; then
    echo "fuzz.sh: $t FAILED (see $work/${t}-*)" >&2
    status=1
  fi
done
exit $status
