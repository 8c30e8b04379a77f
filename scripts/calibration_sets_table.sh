#!/usr/bin/env bash
# The calibration-set table of bench/RESULTS.md (issue 30): does calibrating on mla-calib's sets beat calibrating on
# plain validation text? For each KV budget (50 % and 75 %) the project's recipe is converted on each calibration
# source, training-free (factorisation + refit) and with layer-wise distillation, and scored by mla-eval on a
# prefix of the evaluation text. Jobs run in parallel, one thread each; a job with its eval JSON is skipped, so an
# interrupted table resumes.
#
#   scripts/calibration_sets_table.sh BIN_DIR MODEL CORPUS EVAL_TEXT OUT_DIR [JOBS] [MAX_TOKENS]
#
# BIN_DIR holds mla-calib, mla-convert and mla-eval. Sources: plain (CORPUS itself, its first tokens: what
# mla-convert reads by default), and mla-calib's swa, full, mixed and random sets built from CORPUS, and its hard
# set whose student is the plain training-free conversion at the same budget (built once that conversion exists).
set -euo pipefail
[ $# -ge 5 ] || { sed -n 2,13p "$0"; exit 2; }
bin=$1 model=$2 corpus=$3 text=$4 out=$5 jobs=${6:-$(nproc)} max_tokens=${7:-8192}
for f in "$bin/mla-calib" "$bin/mla-convert" "$bin/mla-eval" "$model" "$corpus" "$text"; do
  [ -e "$f" ] || { echo "calibration_sets_table: $f does not exist" >&2; exit 2; }
done
mkdir -p "$out"
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive

# 8192 calibration + 512 held-out tokens + one window of 256: 8960 tokens; each set holds 9216.
common="--method attention_aware --rope rorope --allocation uniform --refit --calib-tokens 8192 --heldout-tokens 512 --window 256"
distill="--distill-steps 50 --distill-batch 2 --distill-tokens 8192 --distill-lr 5e-3"
declare -A budget=([50]="--kv-budget 0.5 --rope-dim 64" [75]="--kv-budget 0.25 --rope-dim 32")

# The sets (one mla-calib run without a student; two threads).
if [ ! -s "$out/sets/calib_mixed.jsonl" ]; then
  OMP_NUM_THREADS=$jobs "$bin/mla-calib" --model "$model" --corpus "$corpus" --window 256 --tokens 9216 --candidates 4 \
    --out "$out/sets" >"$out/calib.log" 2>"$out/calib.err"
fi

run_one() {  # name calib-path extra-args [keep]
  local name=$1 calib=$2 args=$3 keep=${4:-} ckpt="$out/ckpt_$1" t0=$SECONDS
  [ -s "$out/$name.eval.json" ] && return 0
  rm -rf "$ckpt"
  # shellcheck disable=SC2086
  "$bin/mla-convert" --model "$model" --calib "$calib" $args --out "$ckpt" >"$out/$name.convert.log" \
    2>"$out/$name.convert.err" || { echo "FAILED convert $name" >&2; return 0; }
  "$bin/mla-eval" --model "$ckpt" --mla-form naive --text "$text" --ctx 2048 --max-tokens "$max_tokens" \
    --json "$out/$name.eval.json.tmp" >"$out/$name.eval.log" 2>&1 && mv "$out/$name.eval.json.tmp" "$out/$name.eval.json" ||
    echo "FAILED eval $name" >&2
  [ -n "$keep" ] || rm -rf "$ckpt"
  echo "done $name in $((SECONDS - t0)) s" >&2
}
export -f run_one
export bin model text out max_tokens

# Round 1: every source but hard; the plain training-free conversions are kept as the hard sets' students.
list=$(mktemp)
trap 'rm -f "$list"' EXIT
for b in 50 75; do
  for src in plain swa full mixed random; do
    calib="$out/sets/calib_$src.jsonl"
    [ $src = plain ] && calib=$corpus
    keep=""
    [ $src = plain ] && keep=keep
    echo "${src}_${b}|$calib|${budget[$b]} $common|$keep" >>"$list"
    echo "${src}_distill_${b}|$calib|${budget[$b]} $common $distill|" >>"$list"
  done
done
tr '\n' '\0' <"$list" | xargs -0 -P "$jobs" -I{} bash -c 'IFS="|" read -r n c a k <<<"$1"; run_one "$n" "$c" "$a" "$k"' _ {}

# Round 2: the hard sets (the student is the plain training-free conversion at the same budget), and their runs.
: >"$list"
for b in 50 75; do
  if [ ! -s "$out/hard_$b/calib_hard.jsonl" ] && [ -d "$out/ckpt_plain_$b" ]; then
    OMP_NUM_THREADS=$jobs "$bin/mla-calib" --model "$model" --student "$out/ckpt_plain_$b" --corpus "$corpus" \
      --window 256 --tokens 9216 --candidates 4 --out "$out/hard_$b" >"$out/calib_hard_$b.log" 2>"$out/calib_hard_$b.err"
  fi
  echo "hard_${b}|$out/hard_$b/calib_hard.jsonl|${budget[$b]} $common|" >>"$list"
  echo "hard_distill_${b}|$out/hard_$b/calib_hard.jsonl|${budget[$b]} $common $distill|" >>"$list"
done
tr '\n' '\0' <"$list" | xargs -0 -P "$jobs" -I{} bash -c 'IFS="|" read -r n c a k <<<"$1"; run_one "$n" "$c" "$a" "$k"' _ {}

# One line per job: name, perplexity.
shopt -s nullglob
for f in "$out"/*.eval.json; do
  printf '%s %s\n' "$(basename "$f" .eval.json)" "$(sed -n 's/.*"perplexity": *\([0-9.e+-]*\).*/\1/p' "$f")"
done | sort | tee "$out/table.txt"
