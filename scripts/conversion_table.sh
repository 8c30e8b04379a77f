#!/usr/bin/env bash
# The GQA -> MLA conversion table of bench/RESULTS.md: every recipe at every KV budget, with and without the
# closed-form refit, converted by mla-convert and scored by mla-eval on a prefix of the evaluation text. Jobs
# run in parallel, one thread each; every job leaves its convert log and eval JSON in OUT_DIR and deletes its
# checkpoint. A job that already has its eval JSON is skipped, so an interrupted table resumes.
#
#   scripts/conversion_table.sh BIN_DIR MODEL CALIB_TEXT EVAL_TEXT OUT_DIR [JOBS] [MAX_TOKENS]
#
# BIN_DIR holds mla-convert and mla-eval (e.g. build/cpu-release/examples/{convert,eval} copied together).
# MLA_TABLE_FILTER=<regex> runs only the jobs whose name matches; MLA_TABLE_SCRATCH=<dir> holds the
# checkpoints while they are evaluated (default: OUT_DIR).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,11p "$0"; exit 2; }
bin=$1 model=$2 calib=$3 text=$4 out=$5 jobs=${6:-$(nproc)} max_tokens=${7:-16384}
for f in "$bin/mla-convert" "$bin/mla-eval" "$model" "$calib" "$text"; do
  [ -e "$f" ] || { echo "conversion_table: $f does not exist" >&2; exit 2; }
done
mkdir -p "$out"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

# name | mla-convert arguments. Budgets are the fraction of the original cache kept (reductions 50, 62.5, 75,
# 87.5 %). With nope_dim 64 the runtime's shapes have d_R 32 or 64 and ranks in steps of 32, so 87.5 %
# (48 elements per layer) needs d_R 16 and --any-rank (runs on the reference path, not in the kernel list).
declare -A recipe=(
  [mha2mla]="--method weight_svd --rope two_norm --allocation uniform"
  [transmla]="--method activation_pca --rope rorope --allocation uniform"
  [care]="--method care --rope rorope --allocation spectrum_greedy"
  [project]="--method attention_aware --rope rorope --allocation uniform"
  [project_greedy]="--method attention_aware --rope rorope --allocation objective_greedy"
)
declare -A budget=(
  [50]="--kv-budget 0.5 --rope-dim 32"
  [62.5]="--kv-budget 0.375 --rope-dim 32"
  [75]="--kv-budget 0.25 --rope-dim 32"
  [87.5]="--kv-budget 0.125 --rope-dim 16 --any-rank"
)
common="--calib $calib --calib-tokens 4096 --heldout-tokens 512 --window 256"

list=$(mktemp)
trap 'rm -f "$list"' EXIT
echo "original|" >"$list"
for b in 50 62.5 75 87.5; do
  for r in transmla mha2mla care project; do
    echo "${r}_${b}|${recipe[$r]} ${budget[$b]} $common" >>"$list"
    echo "${r}_refit_${b}|${recipe[$r]} ${budget[$b]} $common --refit" >>"$list"
  done
done
# Ablation: the project's factorisation with its objective-greedy allocation instead of uniform ranks.
for b in 50 62.5; do
  echo "project_greedy_${b}|${recipe[project_greedy]} ${budget[$b]} $common" >>"$list"
done
if [ -n "${MLA_TABLE_FILTER:-}" ]; then grep -E "^[^|]*(${MLA_TABLE_FILTER})[^|]*\|" "$list" >"$list.f" || true; mv "$list.f" "$list"; fi
echo "conversion_table: $(wc -l <"$list") jobs, $jobs at a time, $max_tokens evaluated tokens each" >&2

run_one() {
  local line=$1 name args ckpt
  name=${line%%|*} args=${line#*|}
  [ -s "$out/$name.eval.json" ] && return 0
  local t0=$SECONDS
  if [ "$name" = original ]; then
    ckpt=$model
  else
    ckpt="${MLA_TABLE_SCRATCH:-$out}/ckpt_$name"
    rm -rf "$ckpt"
    # shellcheck disable=SC2086
    "$bin/mla-convert" --model "$model" $args --out "$ckpt" >"$out/$name.convert.log" 2>"$out/$name.convert.err" ||
      { echo "FAILED convert $name" >&2; return 0; }
  fi
  "$bin/mla-eval" --model "$ckpt" --mla-form naive --text "$text" --ctx 2048 --max-tokens "$max_tokens" --json "$out/$name.eval.json.tmp" \
    >"$out/$name.eval.log" 2>&1 && mv "$out/$name.eval.json.tmp" "$out/$name.eval.json" ||
    echo "FAILED eval $name" >&2
  [ "$name" = original ] || rm -rf "$ckpt"
  echo "done $name in $((SECONDS - t0)) s" >&2
}
export -f run_one
export bin model text out max_tokens
tr '\n' '\0' <"$list" | xargs -0 -P "$jobs" -I{} bash -c 'run_one "$@"' _ {}

# One line per job: name, perplexity, scored tokens, KV bytes per token.
for f in "$out"/*.eval.json; do
  n=$(basename "$f" .eval.json)
  printf '%s %s\n' "$n" "$(tr -d ' \n' <"$f")"
done | sort >"$out/table.txt"
cat "$out/table.txt"
