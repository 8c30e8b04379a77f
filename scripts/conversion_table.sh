#!/usr/bin/env bash
# The GQA -> MLA conversion table of bench/RESULTS.md: every recipe at every KV budget, with and without the
# closed-form refit, converted by mla-convert and scored by mla-eval on a prefix of the evaluation text. Jobs
# run in parallel, one thread each; every job leaves its convert log and eval JSON in OUT_DIR and deletes its
# checkpoint. A job that already has its eval JSON is skipped, so an interrupted table resumes.
#
#   scripts/conversion_table.sh BIN_DIR MODEL CALIB_TEXT EVAL_TEXT OUT_DIR [JOBS] [MAX_TOKENS]
#
# BIN_DIR holds mla-convert and mla-eval (e.g. build/cpu-release/examples/{convert,eval} copied together).
# MLA_TABLE_GRID=selection runs the grid used to choose settings on validation text (see below) instead of the
# table's recipes. MLA_TABLE_FILTER=<regex> runs only the jobs whose name matches; MLA_TABLE_SCRATCH=<dir> holds the
# checkpoints while they are evaluated (default: OUT_DIR). MLA_TABLE_REFIT=<mla-convert flags> replaces
# `--refit` in the refit jobs (e.g. "--refit-mode sequential --refit-o-proj"; the names keep `_refit`, so give
# such a run its own OUT_DIR).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,15p "$0"; exit 2; }
refit_flags=${MLA_TABLE_REFIT:---refit}
bin=$1 model=$2 calib=$3 text=$4 out=$5 jobs=${6:-$(nproc)} max_tokens=${7:-16384}
for f in "$bin/mla-convert" "$bin/mla-eval" "$model" "$calib" "$text"; do
  [ -e "$f" ] || { echo "conversion_table: $f does not exist" >&2; exit 2; }
done
mkdir -p "$out" ${MLA_TABLE_SCRATCH:+"$MLA_TABLE_SCRATCH"}  # mla-convert refuses an --out whose parent is missing
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
if [ "${MLA_TABLE_GRID:-table}" = selection ]; then
  # MLA_TABLE_GRID=selection: one fixed grid of settings for every budget, for choosing each side's best setting
  # on held-out text (run it with EVAL_TEXT a stretch of the validation file that calibration does not read).
  # Both sides get d_R 32 and 64 (16 at 87.5 %), uniform and spectrum-greedy ranks at 62.5 % (the only budget
  # where they keep different cache sizes); the project also its key weight 0.25, 0.5 and 1, each with the token
  # moment, with the attention moment (`_att`, --moment attention) and with it centred (`_attc`, --centre: not
  # exportable to DeepSeek-V3, whose o_proj has no bias). MHA2MLA's recipe
  # gets d_R 32 only (its training-free results are one to two orders of magnitude behind at every setting).
  declare -A kv=([50]=0.5 [62.5]=0.375 [75]=0.25 [87.5]=0.125)
  for b in 50 62.5 75 87.5; do
    dims="32 64" extra=""
    [ "$b" = 87.5 ] && dims=16 extra=" --any-rank"
    allocs=uniform
    [ "$b" = 62.5 ] && allocs="uniform spectrum_greedy"
    for refit in 0 1; do
      rf="" tag=""
      [ $refit = 1 ] && rf=" $refit_flags" tag=_refit
      for d in $dims; do
        base="--kv-budget ${kv[$b]} --rope-dim $d$extra $common$rf"
        [ "$d" = 64 ] || echo "mha2mla_d${d}${tag}_${b}|${recipe[mha2mla]} $base" >>"$list"
        echo "care_d${d}${tag}_${b}|${recipe[care]} $base" >>"$list"
        for a in $allocs; do
          echo "transmla_${a}_d${d}${tag}_${b}|--method activation_pca --rope rorope --allocation $a $base" >>"$list"
          for w in 0.25 0.5 1; do
            echo "project_${a}_d${d}_kw${w}${tag}_${b}|--method attention_aware --rope rorope --allocation $a --key-weight $w $base" >>"$list"
            echo "project_${a}_d${d}_kw${w}_att${tag}_${b}|--method attention_aware --moment attention --rope rorope --allocation $a --key-weight $w $base" >>"$list"
            echo "project_${a}_d${d}_kw${w}_attc${tag}_${b}|--method attention_aware --moment attention --centre --rope rorope --allocation $a --key-weight $w $base" >>"$list"
          done
        done
      done
    done
  done
else
  for b in 50 62.5 75 87.5; do
    for r in transmla mha2mla care project; do
      echo "${r}_${b}|${recipe[$r]} ${budget[$b]} $common" >>"$list"
      echo "${r}_refit_${b}|${recipe[$r]} ${budget[$b]} $common $refit_flags" >>"$list"
    done
  done
  # Ablation: the project's factorisation with its objective-greedy allocation instead of uniform ranks.
  for b in 50 62.5; do
    echo "project_greedy_${b}|${recipe[project_greedy]} ${budget[$b]} $common" >>"$list"
  done
fi
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
shopt -s nullglob  # a filter that matched nothing leaves no eval JSON
for f in "$out"/*.eval.json; do
  n=$(basename "$f" .eval.json)
  printf '%s %s\n' "$n" "$(tr -d ' \n' <"$f")"
done | sort >"$out/table.txt"
cat "$out/table.txt"

# The selection grid's verdict: for every budget, with and without the refit, the lowest-perplexity setting of
# the published recipes and of the project's method on this evaluation text.
if [ "${MLA_TABLE_GRID:-table}" = selection ]; then
  sed -n 's/^\([^ ]*\) .*"perplexity":\([0-9.e+-]*\).*/\1 \2/p' "$out/table.txt" | awk '
    $1 != "original" {
      n = split($1, part, "_"); budget = part[n]; refit = ($1 ~ /_refit_/) ? "refit" : "no refit"
      side = ($1 ~ /^project_/) ? "project" : "published"; key = budget " | " refit " | " side
      if (!(key in best) || $2 < best[key]) { best[key] = $2; name[key] = $1 }
    }
    END { for (k in best) printf "%s | %s | %.2f\n", k, name[k], best[k] }' | sort -t'|' -k1,1n -k2,2 -k3,3 |
    tee "$out/selection.txt"
fi
