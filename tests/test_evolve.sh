#!/usr/bin/env bash
# test_evolve.sh — end-to-end tests of `darknet evolve` on a Fashion-MNIST subset:
#   a. a small search from the trivial seed: its best beats the initial individuals;
#   b. the same -seed twice gives the same events.jsonl (timing fields dropped);
#   c. kill -9 mid-search, then -resume: the events written before the kill stay,
#      eval numbers have no gap or duplicate, the search completes its budget (and,
#      with the same seed, ends with the same log as the uninterrupted run);
#   d. a seed with a huge learning rate: failed individuals with a reason, each
#      trained again at half its rate first, the search still completes its
#      budget, then exits 1 (nothing to export);
#   e. export: PREFIX.cfg/.weights load in our `classifier predict` and in Debian's
#      upstream /usr/bin/darknet with the same top-1 on a few test images;
#   f. bad input of every kind: non-zero exit and a message, never a crash;
#   g. `evolve status DIR` (read-only) and `evolve -h`;
#   h. -workers 2: the event log has no gap or duplicate, every individual is
#      alive, killed (once, while alive) or failed, both workers evaluated;
#      the final training takes every thread again; -patience ends a search
#      whose best has stood and hands the time left to final training.
# Env: BIN (where darknet lives, default bin), BUILD (build-san => smaller runs).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_evolve

# events.jsonl without the timing fields (elapsed, *_seconds, time)
untimed() { sed -E 's/"(elapsed|time|[a-z_]*seconds)":("[^"]*"|[^,}]*),?//g; s/,}/}/g' "$1"; }
# the values of one numeric field, one per line
field() { grep -oE "\"$2\":-?[0-9.eE+-]+" "$1" | cut -d: -f2; }

need_darknet
if [ ! -r "$FASHION/train-images-idx3-ubyte.gz" ] || [ ! -r "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed in $FASHION (scripts/setup installs it)"; echo "0 passed, 1 failed"; exit 1
fi

# ------------------------------------------------------------------ scale and inputs
if [[ "$BUILD" == *san* ]]; then
  MAXTRAIN=1500 HOLDOUT=300 STEPS=30 POP=6 EVALS=100
else
  MAXTRAIN=3000 HOLDOUT=500 STEPS=50 POP=8 EVALS=250
fi
fashion_data
SEED_CFG=cfg/evo-trivial.cfg
SMALL=(-population "$POP" -evals "$EVALS" -steps "$STEPS" -batch 32 -holdout "$HOLDOUT" -max-train "$MAXTRAIN")
start() { local name=$1 dir=$2; shift 2; run "$name" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$dir" "${SMALL[@]}" "$@"; }

# ------------------------------------------------------------------ g. help
run help "$DN" evolve -h
check "evolve -h exits 0" [ "$rc" -eq 0 ]
for f in -out -algo -population -evals -hours -steps -batch -holdout -inherit -workers -seed \
         -max-layers -max-params -max-flops -max-memory -max-train -threads -resume export status; do
  check "evolve -h documents $f" grep -q -- "$f" "$T/help.out"
done
check "evolve -h gives the paper's population" grep -q 'paper: 1000' "$T/help.out"
check "evolve -h: -out is required" grep -qE '^ +-out DIR .*\(required\)' "$T/help.out"
check "evolve -h: -gpus is not required" bash -c "grep -E '^ +-gpus ' '$T/help.out' | grep -v -q required"
run dn_help "$DN" -h
check "darknet -h lists evolve" grep -q 'evolve' "$T/dn_help.out"

# ------------------------------------------------------------------ a + b. search, twice with one seed
t0=$(date +%s)
start a "$T/a" -seed 7
check "search a exits 0 (rc=$rc: $(tail -n 2 "$T/a.err"))" [ "$rc" -eq 0 ]
t1=$(date +%s)
check "search a: $EVALS events" [ "$(lines "$T/a/events.jsonl")" -eq "$EVALS" ]
check "search a: one progress line per evaluation" [ "$(grep -cE '^\[ *[0-9]+/'"$EVALS"'\] ' "$T/a.out")" -eq "$EVALS" ]
check "search a: says how to export" grep -q "export with: darknet evolve export $T/a" "$T/a.out"
init_best=$(head -n "$POP" "$T/a/events.jsonl" | field /dev/stdin accuracy | sort -g | tail -n 1)
all_best=$(field "$T/a/events.jsonl" accuracy | sort -g | tail -n 1)
echo "search a: best initial (seed) accuracy ${init_best:-?}, best overall ${all_best:-?}, $((t1 - t0)) s"
check "search a: the best beats the seed by 3 points (${all_best:-?} > ${init_best:-?} + 0.03)" \
  awk -v a="${all_best:-0}" -v b="${init_best:-1}" 'BEGIN{exit !(a > b + 0.03)}'
check "search a: children have parents and mutations" grep -q '"mutation":"[a-z_]*_[a-z_]*"' "$T/a/events.jsonl"
check "search a: someone was killed" grep -qE '"killed":\[[0-9]' "$T/a/events.jsonl"
check "search a: no crash" no_crash "$T/a.err"

start b "$T/b" -seed 7
check "search b exits 0" [ "$rc" -eq 0 ]
untimed "$T/a/events.jsonl" > "$T/a.untimed"; untimed "$T/b/events.jsonl" > "$T/b.untimed"
check "same -seed, same events.jsonl (timing dropped)" cmp -s "$T/a.untimed" "$T/b.untimed"
cmp -s "$T/a.untimed" "$T/b.untimed" || diff "$T/a.untimed" "$T/b.untimed" | head -n 6 >&2
start other "$T/other" -seed 8 -evals "$POP"
check "another -seed, other initial accuracies" [ "$(field "$T/a/events.jsonl" accuracy | head -n "$POP")" != "$(field "$T/other/events.jsonl" accuracy)" ]

# ------------------------------------------------------------------ g. status (read-only)
sum_before=$(cksum < "$T/a/events.jsonl")
run status "$DN" evolve status "$T/a"
check "status exits 0 (rc=$rc: $(tail -n 1 "$T/status.err"))" [ "$rc" -eq 0 ]
check "status shows the budget" grep -qE "evaluations: $EVALS / $EVALS" "$T/status.out"
check "status shows the best" grep -qE '^best: individual [0-9]+' "$T/status.out"
check "status lists the population" [ "$(grep -cE '^ +[0-9]+ +-?[0-9]+  [a-z_]+ +[0-9.]+%' "$T/status.out")" -ge 2 ]
check "status writes nothing" [ "$(cksum < "$T/a/events.jsonl")" = "$sum_before" ]

# ------------------------------------------------------------------ c. kill -9, resume
"$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/c" "${SMALL[@]}" -seed 7 >"$T/c1.out" 2>"$T/c1.err" &
pid=$!
want=$((POP + 2))
for _ in $(seq 600); do
  [ "$(lines "$T/c/events.jsonl")" -ge "$want" ] && break
  kill -0 $pid 2>/dev/null || break
  sleep 0.05
done
run status_live "$DN" evolve status "$T/c"
check "status works while the search runs (rc=$rc: $(tail -n 1 "$T/status_live.err"))" [ "$rc" -eq 0 ]
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
cp "$T/c/events.jsonl" "$T/c.before"
nbefore=$(grep -c '}$' "$T/c.before")
check "kill -9 came mid-search ($nbefore events)" [ "$nbefore" -ge "$want" -a "$nbefore" -lt "$EVALS" ]
run c2 "$DN" evolve -resume "$T/c"
check "resume exits 0 (rc=$rc: $(tail -n 2 "$T/c2.err"))" [ "$rc" -eq 0 ]
check "resume says so" grep -q 'resuming after evaluation' "$T/c2.out"
head -n "$nbefore" "$T/c/events.jsonl" > "$T/c.head"
grep '}$' "$T/c.before" > "$T/c.before.whole"
check "events before the kill are kept" cmp -s "$T/c.head" "$T/c.before.whole"
check "eval numbers 1..$EVALS, no gap, no duplicate" [ "$(field "$T/c/events.jsonl" eval | tr '\n' ' ')" = "$(seq -s ' ' 1 "$EVALS") " ]
untimed "$T/c/events.jsonl" > "$T/c.untimed"
check "kill + resume ends with the uninterrupted run's log" cmp -s "$T/a.untimed" "$T/c.untimed"
run c3 "$DN" evolve -resume "$T/c"
check "resuming a finished search does nothing" [ "$rc" -eq 0 -a "$(lines "$T/c/events.jsonl")" -eq "$EVALS" ]

# ------------------------------------------------------------------ d. divergence
sed -e 's/^learning_rate=.*/learning_rate=1e30/' "$SEED_CFG" > "$T/diverge.cfg"
run d "$DN" evolve "$T/fashion.data" "$T/diverge.cfg" -out "$T/d" -population 3 -evals 6 -steps 5 -batch 32 \
  -holdout "$HOLDOUT" -max-train "$MAXTRAIN" -seed 3
check "diverging search: every evaluation failed, so it exits 1 (rc=$rc)" [ "$rc" -eq 1 ]
check "diverging search: says every evaluation failed" grep -q 'every one of the 6 evaluations failed' "$T/d.err"
check "diverging search: no export hint" bash -c "! grep -q 'export with' '$T/d.out'"
check "diverging search: 6 events" [ "$(lines "$T/d/events.jsonl")" -eq 6 ]
check "diverged individuals are recorded as failed with a reason" grep -qE '"reason":"[^"]+' "$T/d/events.jsonl"
check "a diverged individual is trained again at half its rate: its first reason is recorded" \
  [ "$(grep -cE '"retried":"[^"]*diverged' "$T/d/events.jsonl")" -eq 6 ]
check "the retried individual's cfg records the rate it was trained at (1e30 / 2)" \
  grep -qx 'learning_rate=5e+29' "$T/d/individuals/1.cfg"
check "the report counts the retried children and how they ended" \
  grep -q '6 children diverged at their genome.s learning rate and trained again at half of it: 0 then trained, 6 failed again' "$T/d/report/index.html"
check "failures are shown in the progress" grep -q 'FAILED' "$T/d.out"
check "diverging search: no crash" no_crash "$T/d.err"

# ------------------------------------------------------------------ e. export, ours and upstream predict
run export "$DN" evolve export "$T/a" -out "$T/win/best"
check "export exits 0 (rc=$rc: $(tail -n 2 "$T/export.err"))" [ "$rc" -eq 0 ]
for ext in cfg weights data labels; do check "export writes best.$ext" [ -s "$T/win/best.$ext" ]; done
check "export reports a test accuracy" grep -qiE 'test.*[0-9]+(\.[0-9]+)?%' "$T/export.out"
run export_def "$DN" evolve export "$T/a"
check "export defaults to DIR/best/best" [ "$rc" -eq 0 -a -s "$T/a/best/best.weights" ]
fashion_pngs 6
check "test images written" [ "$(lines "$T/png.list")" -eq 6 ]
if [ -x "$UPSTREAM" ]; then
  same=0 total=0
  while read -r img _; do
    run ours "$DN" classifier predict "$T/win/best.data" "$T/win/best.cfg" "$T/win/best.weights" "$img"
    o=$(top1 "$T/ours.out")
    (cd "$T/win" && timeout 120 "$UPSTREAM" classifier predict best.data best.cfg best.weights "$img" >"$T/up.out" 2>"$T/up.err")
    u=$(top1 "$T/up.out")
    total=$((total + 1))
    if agree "$o" "$u"; then same=$((same + 1)); else echo "  $img: ours '$o', upstream '$u'" >&2; fi
  done < "$T/png.list"
  check "upstream darknet predicts the exported model like ours (top-1 and its probability) ($same/$total)" [ "$same" -eq "$total" -a "$total" -gt 0 ]
else
  echo "skipping the upstream check: $UPSTREAM not installed (scripts/setup installs it)"
fi

# ------------------------------------------------------------------ h. -workers 2: one population, two evaluations in flight
run h "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/h" "${SMALL[@]}" -workers 2
check "-workers 2 exits 0 (rc=$rc: $(tail -n 2 "$T/h.err"))" [ "$rc" -eq 0 ]
check_search_log "-workers 2" "$T/h/events.jsonl" "$EVALS" "$POP" 2
cpus=$(nproc); [ "$cpus" -gt 8 ] && cpus=8
check "-workers 2: the final training takes every thread again ($cpus), not a worker's share" \
  grep -qE "^final: training individual .* $cpus threads?, " "$T/h.out"
# unset -workers: one per CPU (at most population / 4) with -hours, unless latency is measured; else 1
auto=$(nproc); [ "$auto" -gt $((POP / 4)) ] && auto=$((POP / 4)); [ "$auto" -lt 1 ] && auto=1
run h_auto "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/h_auto" "${SMALL[@]}" -evals 0 -hours 0.0003 -final 0
check "-hours without -workers: $auto workers (rc=$rc)" grep -qx "workers=$auto" "$T/h_auto/options.cfg"
run h_lat "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/h_lat" "${SMALL[@]}" -evals 0 -hours 0.0003 -final 0 \
  -objective acc,latency
check "-hours -objective acc,latency without -workers: 1 worker (rc=$rc)" grep -qx "workers=1" "$T/h_lat/options.cfg"
check "-evals without -workers: 1 worker" grep -qx "workers=1" "$T/a/options.cfg"
# -patience: once the best has stood that share of the search's time, the search ends and
# final training gets the time left (18 s in all: 12.6 s of search, its best may stand 0.13 s)
run p "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/p" "${SMALL[@]}" -evals 0 -hours 0.005 -patience 0.01 -workers 1
check "-patience: exits 0 (rc=$rc: $(tail -n 2 "$T/p.err"))" [ "$rc" -eq 0 ]
check "-patience: the search says it ended early" grep -qE "^evolve: the search ended early: its best had stood for 0:00:0[0-9] \(-patience 0.01 of the search's time\); final training gets the 0:00:[01][0-9] left" "$T/p.out"
final_s=$(field "$T/p/final/result.json" seconds)
check "-patience: final training took the time left ($final_s s > 7 s; its share is 5.4 s)" \
  awk -v s="$final_s" 'BEGIN { exit !(s > 7) }'
check "-patience: the report says the search ended early" grep -q "ended early" "$T/p/report/index.html"
n_p=$(lines "$T/p/events.jsonl")
run p_resume "$DN" evolve -resume "$T/p" -patience 0.005
check "-resume -patience 0.005: the search, still stalled, ends at once (rc=$rc)" \
  [ "$rc" -eq 0 -a "$(lines "$T/p/events.jsonl")" -eq "$n_p" ]
check "-resume -patience 0.005 is saved in options.cfg" grep -q "^patience=0.00500*[0-9]\?$" "$T/p/options.cfg"
run h_status "$DN" evolve status "$T/h"
check "-workers 2: status reads the run" [ "$rc" -eq 0 ]
cp -r "$T/h" "$T/h2"
run h_resume "$DN" evolve -resume "$T/h2" -evals $((EVALS + 6))
check "-workers 2: -resume extends it (rc=$rc)" [ "$rc" -eq 0 -a "$(lines "$T/h2/events.jsonl")" -eq $((EVALS + 6)) ]
# -resume may change the workers (saved); a run folder from before -gpus took a list (gpu=0) still resumes
sed -i 's/^gpus=$/gpu=0/' "$T/h2/options.cfg"
run h_resume1 "$DN" evolve -resume "$T/h2" -evals $((EVALS + 8)) -workers 1
check "-resume -workers 1 of a legacy gpu=0 folder (rc=$rc: $(tail -n 1 "$T/h_resume1.err"))" \
  [ "$rc" -eq 0 -a "$(lines "$T/h2/events.jsonl")" -eq $((EVALS + 8)) ]
check "-resume -workers 1 is saved" grep -qx "workers=1" "$T/h2/options.cfg"
check "-resume says 1 worker on the CPU" grep -q "1 worker on the CPU" "$T/h_resume1.out"

# ------------------------------------------------------------------ f. bad input
printf '[net]\nbatch=1\nwidth=28\nheight=28\nchannels=1\n\n[convolutional]\nfilters=4\nsize=3\n' > "$T/nohead.cfg"
cp "$FIXTURES/not-a-number.cfg" "$T/malformed.cfg"
: > "$T/afile"
expect_error missing_seed 1 'missing\.cfg' "$DN" evolve "$T/fashion.data" "$T/missing.cfg" -out "$T/f1" "${SMALL[@]}"
expect_error nohead_seed 1 'nohead\.cfg.*head' "$DN" evolve "$T/fashion.data" "$T/nohead.cfg" -out "$T/f2" "${SMALL[@]}"
expect_error malformed_seed 1 'malformed\.cfg' "$DN" evolve "$T/fashion.data" "$T/malformed.cfg" -out "$T/f3" "${SMALL[@]}"
expect_error missing_data 1 'missing\.data' "$DN" evolve "$T/missing.data" "$SEED_CFG" -out "$T/f4" "${SMALL[@]}"
expect_error unwritable_out 1 'afile' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/afile/run" "${SMALL[@]}"
expect_error existing_run 1 "$T/a" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/a" "${SMALL[@]}"
expect_error no_out 2 '-out' "$DN" evolve "$T/fashion.data" "$SEED_CFG"
expect_error no_seed_arg 2 'seed\.cfg' "$DN" evolve "$T/fashion.data" -out "$T/f5"
expect_error unknown_flag 2 "unknown option '-frob'" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f6" -frob 1
expect_error bad_number 2 "-population wants an integer, not 'ten'" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -population ten
expect_error bad_float 2 "-hours wants a number" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -hours 1h
expect_error no_value 2 '-evals needs a value' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -evals
expect_error small_pop 2 'population' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -population 1
expect_error aging_sample 2 'sample 0' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -algo aging -sample 0
expect_error bad_ops 2 "unknown op 'sep9x9'" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -ops sep3x3,sep9x9
expect_error algo_bad 2 'unknown algorithm' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -algo best
expect_error workers 2 'workers -1' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -workers -1
expect_error workers_many 2 'workers 65' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -workers 65
expect_error gpus_cpu_build 2 'no GPU support|does not exist' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -gpus 0
expect_error gpus_garbage 2 'gpus 0,a: expected device numbers' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -gpus 0,a
expect_error inherit_bad 2 'inherit' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -inherit 2
expect_error patience_bad 2 '-patience 2: .* must be in \[0, 1\]' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -patience 2
expect_error no_budget 2 'budget' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/f7" -evals 0 -hours 0
check "no run folder left by refused starts" [ ! -e "$T/f7" -a ! -e "$T/f1" -a ! -e "$T/f2" ]
mkdir -p "$T/notarun"
expect_error resume_not_run 1 'notarun' "$DN" evolve -resume "$T/notarun"
expect_error resume_missing 1 'nothere' "$DN" evolve -resume "$T/nothere"
expect_error resume_extra 2 'resume' "$DN" evolve -resume "$T/a" -population 5
# -resume may extend the budget: the new -evals is saved and the search goes on to it
cp -r "$T/a" "$T/extend"
n0=$(lines "$T/extend/events.jsonl")
run resume_extend "$DN" evolve -resume "$T/extend" -evals $((n0 + 3))
check "resume -evals extends the search to $((n0 + 3)) events" test "$rc" -eq 0 -a "$(lines "$T/extend/events.jsonl")" -eq $((n0 + 3))
check "resume -evals is saved in options.cfg" grep -qx "evals=$((n0 + 3))" "$T/extend/options.cfg"
cp -r "$T/a" "$T/corrupt"
sed -i '3s/.*/{"eval":3, this is not json/' "$T/corrupt/events.jsonl"
expect_error resume_corrupt 1 'events\.jsonl' "$DN" evolve -resume "$T/corrupt"
expect_error status_corrupt 1 'events\.jsonl' "$DN" evolve status "$T/corrupt"
expect_error status_not_run 1 'notarun' "$DN" evolve status "$T/notarun"
expect_error export_bad_id 1 '12345' "$DN" evolve export "$T/a" -id 12345 -out "$T/x/y"
expect_error export_flag 2 "unknown option '-frob'" "$DN" evolve export "$T/a" -frob

echo "test_evolve.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
