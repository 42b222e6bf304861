#!/usr/bin/env bash
# test_evolve_cells.sh — end-to-end tests of the cell search space (Regularized
# Evolution) on a Fashion-MNIST subset, with a tiny NASNet-style template:
#   a. -algo aging: the run completes; children come from hidden_state, op or
#      identity mutations; every death is the oldest living individual; every
#      individual's cfg carries its cells and has no [cell] left;
#      `finish -filters F -cells N` retrains the winner's cells at that size
#      from scratch in the run folder, and export writes that model;
#   b. -algo random: fresh samples past the initial population; the best so far
#      stays alive; the cells seen cover every allowed op;
#   c. kill -9 mid-search, -resume: no gap or duplicate, the budget is reached;
#   d. export: the winner (weights) loads in our classifier and, with -ops
#      upstream (the default; avg3x3 is AlexeyAB-only and export says so), in Debian's upstream darknet with the same top-1; export at
#      another width/depth writes a cfg that trains with `classifier train`;
#   e. template errors: a clear message naming the line.
# Env: BIN (default bin), BUILD (build-san => smaller runs).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_cells

need_darknet
[ -r "$FASHION/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $FASHION"; echo "0 passed, 1 failed"; exit 1; }

if [[ "$BUILD" == *san* ]]; then POP=4 EVALS=12 STEPS=10; else POP=6 EVALS=30 STEPS=20; fi
fashion_data
# a tiny template: stem, normal cell, reduction, normal cell, head
cp "$FIXTURES/cells.cfg" "$T/tiny.cfg"
SMALL=(-population "$POP" -evals "$EVALS" -steps "$STEPS" -batch 32 -holdout 300 -max-train 1500 -blocks 2)

# ------------------------------------------------------------------ a. aging
run a "$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/a" -algo aging -sample 3 "${SMALL[@]}"
check "aging search exits 0 (rc=$rc: $(tail -n 2 "$T/a.err"))" [ "$rc" -eq 0 ]
check "aging: $EVALS events" [ "$(lines "$T/a/events.jsonl")" -eq "$EVALS" ]
check "aging: the log names the algorithm and the space" grep -q 'aging search of cells' "$T/a.out"
muts=$(grep -oE '"mutation":"[a-z_]+"' "$T/a/events.jsonl" | sort -u | cut -d'"' -f4 | tr '\n' ' ')
check "aging: mutations are hidden_state / op / identity after the initial ones ($muts)" \
  bash -c "echo '$muts' | grep -qE '^(hidden_state |identity |none |op )+$' && echo '$muts' | grep -q none"
# every death is the oldest living individual at that time
oldest_ok=$(awk '
  { id = ""; if (match($0, /"id":[0-9]+/)) id = substr($0, RSTART + 5, RLENGTH - 5) + 0
    ok = ($0 !~ /"outcome":"failed"/)
    if (match($0, /"killed":\[[0-9,]*\]/)) {
      k = substr($0, RSTART + 10, RLENGTH - 11)
      if (k != "") { n = split(k, ks, ","); for (i = 1; i <= n; ++i) {
        min = -1; for (a in alive) if (min < 0 || a + 0 < min) min = a + 0
        if (ks[i] + 0 != min) bad++
        delete alive[ks[i] + 0] } }
    }
    if (ok && id != "") alive[id] = 1 }
  END { print bad + 0 }' "$T/a/events.jsonl")
check "aging: every killed individual was the oldest living one ($oldest_ok wrong)" [ "$oldest_ok" -eq 0 ]
first=$(ls "$T"/a/individuals/* 2>/dev/null | head -n 1)
[ -n "$first" ] || first=$(find "$T/a" -name '*.cfg' ! -name options.cfg ! -name seed.cfg | head -n 1)
check "aging: individuals carry their cells" grep -q '^# evo cells normal=' "$first"
check "aging: individuals have no [cell] left" bash -c "! grep -q '^\[cell\]' '$first'"
check "aging: no crash" no_crash "$T/a.err"
# the default op set is the one pjreddie Darknet loads: no avg3x3 ([local_avgpool])
check "default ops: no individual holds a [local_avgpool]" bash -c "! grep -lq '^\[local_avgpool\]' '$T'/a/individuals/*.cfg"
run export_a "$DN" evolve export "$T/a" -out "$T/wina/best"
check "default ops: export says pjreddie Darknet loads the winner" grep -q 'loads in: our darknet, pjreddie Darknet' "$T/export_a.out"
# avg3x3 only: the winner is AlexeyAB-only, and both export paths say so
run avg "$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/avg" -algo random -ops avg3x3 "${SMALL[@]}" -evals 3
check "avg3x3 search exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
run export_avg "$DN" evolve export "$T/avg" -out "$T/winavg/best"
check "avg3x3: the export holds a [local_avgpool]" grep -q '^\[local_avgpool\]' "$T/winavg/best.cfg"
check "avg3x3: export says pjreddie Darknet does not load it" grep -q 'not in pjreddie Darknet' "$T/export_avg.out"
run export_avg_wide "$DN" evolve export "$T/avg" -filters 6 -cells 1 -out "$T/winavg/wide"
check "avg3x3: the width/depth export says so too" grep -q 'not in pjreddie Darknet' "$T/export_avg_wide.out"
# the winner's cells retrained at another width and depth in the run folder
run finish_wide "$DN" evolve finish "$T/a" -again -filters 6 -cells 2 -epochs 0.3
check "finish -filters -cells trains the scaled cells (rc=$rc: $(tail -n 1 "$T/finish_wide.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"from\":\"scratch\"' '$T/a/final/result.json' && grep -qE '^final: test accuracy' '$T/finish_wide.out'"
run export_wide "$DN" evolve export "$T/a" -out "$T/wide/best"
check "... and export writes that model (the scaled cfg, its trained weights)" \
  bash -c "cmp -s '$T/a/final/final.weights' '$T/wide/best.weights' && [ \$(grep -c '^\[' '$T/wide/best.cfg') -gt \$(grep -c '^\[' '$T/wina/best.cfg') ]"

# ------------------------------------------------------------------ b. random search
run b "$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/b" -algo random -ops sep3x3,max3x3,identity "${SMALL[@]}"
check "random search exits 0 (rc=$rc: $(tail -n 2 "$T/b.err"))" [ "$rc" -eq 0 ]
nchild=$(grep -vc '"event":"promotion"' "$T/b/events.jsonl")
check "random: samples past the initial population ($nchild children)" \
  [ "$(grep -v '"event":"promotion"' "$T/b/events.jsonl" | grep -c '"mutation":"random"')" -eq $((nchild - POP)) ]
cells_b=$(find "$T/b" -name '*.cfg' ! -name options.cfg ! -name seed.cfg -exec grep -h '^# evo cells' {} +)
for op in sep3x3 max3x3 identity; do check "random: op $op seen" grep -q "$op" <<< "$cells_b"; done
check "random: only the allowed ops" bash -c "! grep -qE 'sep5x5|sep7x7|avg3x3|conv1x1|conv3x3' <<< '$cells_b'"
run status_b "$DN" evolve status "$T/b"
best_acc=$(grep -oE '"accuracy":[0-9.]+' "$T/b/events.jsonl" | cut -d: -f2 | sort -g | tail -n 1)
check "random: the best so far is alive (status shows $best_acc)" grep -qE "^best: individual [0-9]+" "$T/status_b.out"

# ------------------------------------------------------------------ c. kill -9, resume
"$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/c" -algo aging -sample 3 "${SMALL[@]}" >"$T/c.out" 2>&1 &
pid=$!
for _ in $(seq 1 600); do [ "$(lines "$T/c/events.jsonl")" -ge $((POP + 2)) ] && break; sleep 0.1; done
kill -9 "$pid" 2>/dev/null; wait "$pid" 2>/dev/null
n0=$(lines "$T/c/events.jsonl")
check "kill -9 came mid-search ($n0 events)" [ "$n0" -ge $((POP + 2)) -a "$n0" -lt "$EVALS" ]
run c_resume "$DN" evolve -resume "$T/c"
check "resume exits 0 (rc=$rc: $(tail -n 2 "$T/c_resume.err"))" [ "$rc" -eq 0 ]
evals=$(grep -oE '"eval":[0-9]+' "$T/c/events.jsonl" | cut -d: -f2 | tr '\n' ' ')
check "resume: evals 1..$EVALS, no gap or duplicate" [ "$evals" = "$(seq -s ' ' 1 "$EVALS") " ]

# ------------------------------------------------------------------ d. export
run d "$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/d" -algo aging -sample 3 -ops upstream "${SMALL[@]}"
check "upstream-op search exits 0" [ "$rc" -eq 0 ]
run export "$DN" evolve export "$T/d" -out "$T/win/best"
check "export exits 0 (rc=$rc: $(tail -n 2 "$T/export.err"))" [ "$rc" -eq 0 ]
check "export reports a test accuracy" grep -qiE 'test accuracy: +[0-9.]+%' "$T/export.out"
check "the exported cfg is plain" bash -c "! grep -qE '^\[cell\]|^# evo' '$T/win/best.cfg'"
if [ -x "$UPSTREAM" ]; then
  fashion_pngs 3
  top1() { grep -E '^ *[0-9]+\.[0-9]+%: ' "$1" | head -n 1 | sed -E 's/^ *([0-9.]+)%: (.*)$/\2/'; }
  same=0 total=0
  while read -r img _; do
    run ours "$DN" classifier predict "$T/win/best.data" "$T/win/best.cfg" "$T/win/best.weights" "$img"
    (cd "$T/win" && timeout 120 "$UPSTREAM" classifier predict best.data best.cfg best.weights "$img" >"$T/up.out" 2>"$T/up.err")
    total=$((total + 1))
    [ -n "$(top1 "$T/ours.out")" ] && [ "$(top1 "$T/ours.out")" = "$(top1 "$T/up.out")" ] && same=$((same + 1))
  done < "$T/png.list"
  check "upstream darknet loads the exported cell network and agrees on top-1 ($same/$total)" [ "$same" -eq "$total" -a "$total" -gt 0 ]
fi
run wide "$DN" evolve export "$T/d" -filters 6 -cells 2 -out "$T/wide/net"
check "export -filters 6 -cells 2 exits 0 (rc=$rc: $(tail -n 2 "$T/wide.err"))" [ "$rc" -eq 0 ]
check "export at width/depth writes no weights" [ -s "$T/wide/net.cfg" -a ! -e "$T/wide/net.weights" ]
check "export at width/depth: first cell filters 6" grep -qx 'filters=6' "$T/wide/net.cfg"
check "export at width/depth says how to train" grep -q 'darknet classifier train' "$T/wide.out"
(cd "$T/wide" && timeout 300 "$DN" classifier train net.data net.cfg -max_batches 2 >"$T/train.out" 2>"$T/train.err"); rc=$?
check "the width/depth export trains with classifier train (rc=$rc: $(tail -n 2 "$T/train.err"))" [ "$rc" -eq 0 ]

# ------------------------------------------------------------------ e. template errors
mk() { sed "$2" "$T/tiny.cfg" > "$T/$1.cfg"; }
mk badtype 's/^type=normal$/type=sideways/'
awk 'NR==1,/^decay/{print; next} /^\[convolutional\]/{skip=1} skip && /^\[cell\]/{skip=0} !skip' "$T/tiny.cfg" > "$T/nostem.cfg"
expect_error badtype 1 'badtype\.cfg:[0-9]+:.*sideways' "$DN" evolve "$T/fashion.data" "$T/badtype.cfg" -out "$T/e1" "${SMALL[@]}"
expect_error nostem 1 'nostem\.cfg:[0-9]+:.*cell' "$DN" evolve "$T/fashion.data" "$T/nostem.cfg" -out "$T/e3" "${SMALL[@]}"
check "no run folder left by refused starts" [ ! -e "$T/e1" -a ! -e "$T/e3" ]

echo "test_evolve_cells.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
