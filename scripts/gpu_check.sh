#!/usr/bin/env bash
# The GPU checks, in one run on a machine with a CUDA device: the CUDA test suite, the same tests under
# compute-sanitizer (memcheck, racecheck, synccheck, initcheck), and the decode benchmarks.
#
#   ./scripts/gpu_check.sh [BIN_DIR] [OUT_DIR]
#
# BIN_DIR holds mla_cuda_tests and mla_cuda_bench (default build/cuda/tests/cuda and build/cuda/bench) and
# optionally lib/ with shared libraries the target machine lacks (Boost.Test, Google Benchmark), so that
# binaries built on a machine without a GPU can run on one without the -dev packages. Results (logs and the
# benchmark JSON) go to OUT_DIR (default $OUT or ./gpu-check-out). Exits non-zero when a check fails.
set -uo pipefail
bin="${1:-}"
out="${2:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
if [ -n "$bin" ]; then
  tests="$bin/mla_cuda_tests" bench="$bin/mla_cuda_bench"
  [ -d "$bin/lib" ] && export LD_LIBRARY_PATH="$bin/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
else
  tests=build/cuda/tests/cuda/mla_cuda_tests bench=build/cuda/bench/mla_cuda_bench
fi
export PATH="$PATH:/usr/local/cuda/bin"
sanitizer=$(command -v compute-sanitizer || ls /usr/local/cuda*/bin/compute-sanitizer 2>/dev/null | head -1)
status=0
step() { printf '\n==== %s ====\n' "$*"; }

step "device"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv | tee "$out/device.txt"

step "CUDA tests"
"$tests" --log_level=message --report_level=short 2>&1 | tee "$out/tests.log" | grep -v '^$' | tail -25
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "mla: CUDA tests FAILED"; status=1; }

if [ -n "$sanitizer" ]; then
  # memcheck over every test but the all-shapes sweep (the longest), then the sweep under racecheck's
  # cheaper sibling tools on one case each.
  quick='cuda_rope:cuda_gqa_decode:cuda_latent_append:cuda_mla_decode/gpt_oss_long_context,empty_splits,heads_per_block'
  for tool in memcheck racecheck synccheck initcheck; do
    step "compute-sanitizer --tool $tool"
    set_=$quick
    [ "$tool" != memcheck ] && set_='cuda_mla_decode/empty_splits:cuda_gqa_decode'
    "$sanitizer" --tool "$tool" --error-exitcode 3 "$tests" --run_test="$set_" --report_level=short 2>&1 \
      | tee "$out/sanitizer_$tool.log" | tail -6
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "mla: compute-sanitizer $tool FAILED"; status=1; }
  done
else
  echo "mla: compute-sanitizer not found"; status=1
fi

step "benchmarks"
"$bench" --benchmark_out="$out/cuda_bench.json" --benchmark_out_format=json \
  --benchmark_counters_tabular=true 2>&1 | tee "$out/bench.log" | tail -60
[ "${PIPESTATUS[0]}" -eq 0 ] || { echo "mla: benchmarks FAILED"; status=1; }
exit $status
