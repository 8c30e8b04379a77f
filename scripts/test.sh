#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. cpu-release: unit tests, compile-fail tests, header self-containment, packaging, examples;
#   2. cpu-debug:   the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. cuda:        compiles every CUDA header, test and bench with nvcc (sm_80, sm_90) and runs the
#                   GPU tests, which skip without a device (skipped when nvcc is absent).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mla_install_deps

jobs="${MLA_JOBS:-$(nproc)}"
export CTEST_PARALLEL_LEVEL="${CTEST_PARALLEL_LEVEL:-$jobs}"
# Leak checks are on; UBSan prints a stack trace for any finding, and findings are fatal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

step() { printf '\n==== %s ====\n' "$*"; }

for preset in cpu-release cpu-debug; do
  step "configure + build: $preset"
  cmake --preset "$preset" >/dev/null
  cmake --build --preset "$preset" -j "$jobs"
  step "test: $preset"
  ctest --preset "$preset"
done

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  step "configure + build: cuda (nvcc; compile only without a GPU)"
  cmake --preset cuda >/dev/null
  cmake --build --preset cuda -j "$jobs"
  step "test: cuda (GPU tests; skipped without a device)"
  ctest --preset cuda
else
  step "cuda: nvcc not found, CUDA build skipped"
fi
step "all test stages passed"
