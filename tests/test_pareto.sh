#!/usr/bin/env bash
# test_pareto.sh — accuracy and cost together (-objective), end to end on a
# small Fashion-MNIST search:
#   a. -objective acc,flops: the archive (recomputed here from events.jsonl
#      by awk: the non-dominated scores as they arrived) keeps its weights
#      after death, the other dead lose theirs; the report draws every
#      individual in pareto-flops.svg and lists the archive; while the
#      search runs the page is rewritten and reloads itself (headless
#      Chromium loads it), and the last page does not;
#   b. (not under the sanitizers) aging evolution (which kills archive members as they age),
#      kill -9 mid-search, then -resume: the log is gap-free and the archive
#      has every member's weights, dead ones included;
#   c. export -pareto: every archived model with its test accuracy, and
#      pareto.tsv; upstream Darknet predicts the cheapest as ours does;
#   d. export -max-flops / -max-params: the kept model (living, best ever,
#      archive) within the budget that ranks first (level, then accuracy), as
#      recomputed here; a budget below every model and -max-latency without a
#      measured latency fail clearly;
#   e. -objective acc,latency: every child's latency is measured and recorded,
#      and export -max-latency picks within it;
#   f. usage errors;
#   g. final training of the front: a search with -final-front 2 trains its
#      winner into DIR/final and the cheaper model the tier names (recomputed
#      here: the top-ranked archived model within 1/sqrt(10)^k of the
#      winner's FLOPs) into DIR/final/front/ID, and nothing else; -resume
#      -final-front 3 adds the next tier's; finish then trains nothing;
#      export -pareto writes their final weights with the test accuracy final
#      training measured; export -max-flops takes the final-trained model
#      within the budget; finish -max-flops trains the best within a budget.
# Env: BIN (where darknet lives, default bin), BUILD (build-san => smaller runs).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_pareto

need_darknet
if [ ! -r "$FASHION/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed in $FASHION (scripts/setup installs it)"; echo "0 passed, 1 failed"; exit 1
fi
fashion_data
fixture conv.cfg
E=(-population 6 -batch 64 -max-train 2000 -holdout 300 -val-images 100 -threads 2 -steps 6 -final 0)
EVALS=60

# replay DIR [COST]: one line per individual that trained, from the log alone:
# "id rung accuracy flops params latency alive archived kept" (kept: the
# search must still hold its weights: alive, archived or the best ever); the
# archive as pareto.c keeps it, written again here in awk
replay() {
  awk -v cost="${2:-flops}" -v OFMT=%.9g '
    function num(k) { if (match($0, "\"" k "\":-?[0-9.eE+-]+")) return substr($0, RSTART + length(k) + 3, RLENGTH - length(k) - 3) + 0; return 0 }
    function ids(k,   s, a, n, i) { delete out; if (!match($0, "\"" k "\":\\[[0-9,]*\\]")) return 0
      s = substr($0, RSTART + length(k) + 4, RLENGTH - length(k) - 5); n = split(s, a, ","); for (i = 1; i <= n; ++i) out[i] = a[i] + 0; return n }
    function c(i) { return cost == "flops" ? fl[i] : cost == "params" ? pa[i] : lat[i] }
    function dom(a, b) { return acc[a] >= acc[b] && c(a) <= c(b) && (acc[a] > acc[b] || c(a) < c(b)) }
    # the archive as the events arrive: a new score enters unless an archived model dominates or equals it,
    # and drops the archived models it dominates (a dropped model never returns)
    function update(i,   k, j) {
      arch[i] = 0
      for (k = 1; k <= n; ++k) { j = order[k]; if (j != i && arch[j] && (dom(j, i) || (acc[j] == acc[i] && c(j) == c(i)))) return }
      for (k = 1; k <= n; ++k) { j = order[k]; if (j != i && arch[j] && dom(i, j)) arch[j] = 0 }
      arch[i] = 1 }
    { id = num("id"); ok = $0 ~ /"outcome":"ok"/
      if ($0 ~ /"event":"promotion"/) { if (ok) { acc[id] = num("accuracy"); rung[id] = num("rung"); update(id) } }
      else if (ok) { order[++n] = id; acc[id] = num("accuracy"); fl[id] = num("flops"); pa[id] = num("params")
                     lat[id] = num("latency_ms"); rung[id] = 0; alive[id] = 1; update(id) }
      k = ids("killed"); for (i = 1; i <= k; ++i) alive[out[i]] = 0
      k = ids("lost"); for (i = 1; i <= k; ++i) alive[out[i]] = 0 }
    END {
      best = -1
      for (a = 1; a <= n; ++a) { i = order[a]
        if (best < 0 || rung[i] > rung[best] || (rung[i] == rung[best] && acc[i] > acc[best])) best = i }
      for (a = 1; a <= n; ++a) { i = order[a]
        print i, rung[i], acc[i], fl[i], pa[i], lat[i], alive[i] + 0, arch[i] + 0, (alive[i] || arch[i] || i == best) ? 1 : 0 }
    }' "$1/events.jsonl"
}
archived() { replay "$@" | awk '$8 { print $1 }' | sort -n | tr '\n' ' '; }
evals() { grep -oE '"eval":[0-9]+' "$1" | cut -d: -f2 | tr '\n' ' '; }
sequential() { [ "$(evals "$1")" = "$(seq -s ' ' 1 "$2") " ]; }
# weights_as_kept DIR: every kept individual has its weights, no other dead one has (the baseline aside)
weights_as_kept() {   # DIR [COST]
  local dir=$1 bad=0 base
  base=$(grep -m1 '"parent":-1,.*"outcome":"ok"' "$dir/events.jsonl" | sed -nE 's/.*"id":([0-9]+).*/\1/p')
  while read -r id _ _ _ _ _ _ _ kept; do
    if [ "$kept" = 1 ] && [ ! -s "$dir/weights/$id.weights" ]; then echo "kept $id has no weights" >&2; bad=1; fi
    if [ "$kept" = 0 ] && [ "$id" != "$base" ] && [ -e "$dir/weights/$id.weights" ]; then echo "dead $id still has weights" >&2; bad=1; fi
  done < <(replay "$dir" "${2:-flops}")
  return $bad
}

# ------------------------------------------------------------------ a. a search on accuracy and FLOPs, live report
"$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/a" "${E[@]}" -evals $EVALS -objective acc,flops \
  -report-every 0.5 >"$T/a.out" 2>"$T/a.err" &
pid=$!
for _ in $(seq 3000); do grep -qs 'http-equiv="refresh"' "$T/a/report/index.html" && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
live=0; grep -qs 'http-equiv="refresh"' "$T/a/report/index.html" && live=1 && cp "$T/a/report/index.html" "$T/live.html"
check "while the search runs, the report is rewritten as a page that reloads itself" [ "$live" = 1 ]
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -n "$CHROMIUM" ] && [ "$BUILD" != build-san ] && kill -0 $pid 2>/dev/null; then
  timeout 120 "$CHROMIUM" --headless --disable-gpu --no-sandbox --user-data-dir="$T/chromium" --dump-dom \
    "file://$T/a/report/index.html" >"$T/dom.out" 2>"$T/dom.err"
  running=0; kill -0 $pid 2>/dev/null && running=1
  check "chromium loads the live page while the search runs (still running: $running)" \
    bash -c "grep -q 'http-equiv=\"refresh\"' '$T/dom.out' && grep -q 'The search is running' '$T/dom.out' && grep -q '<circle class=\"ind' '$T/dom.out'"
elif [ -z "$CHROMIUM" ]; then   # (under the sanitizers the page is the same: not loaded again)
  echo "skipped: the headless Chromium check (chromium is not installed; scripts/setup installs it)"
fi
wait $pid; rc=$?
check "a search on accuracy and FLOPs exits 0 (rc=$rc: $(tail -n 1 "$T/a.err"))" [ "$rc" -eq 0 ]
check "the last page does not reload itself" bash -c "! grep -q 'http-equiv' '$T/a/report/index.html'"
A=$(archived "$T/a")
na=$(echo $A | wc -w)
check "the archive holds several models ($na: $A)" [ "$na" -ge 2 ]
check "every kept model has its weights, the other dead have none" weights_as_kept "$T/a"
nok=$(grep -v '"event":"promotion"' "$T/a/events.jsonl" | grep -c '"outcome":"ok"')
check "pareto-flops.svg draws every individual that trained ($nok)" \
  [ "$(grep -c '<circle class="ind' "$T/a/report/pareto-flops.svg")" -eq "$nok" ]
check "... and rings the archive ($na)" [ "$(grep -c '<circle class="ind [a-z]* archived' "$T/a/report/pareto-flops.svg")" -eq "$na" ]
R=$(sed -n '/<h3>The archive/,/<\/table>/p' "$T/a/report/index.html" | grep -oE '^<tr><td class="num">[0-9]+' | grep -oE '[0-9]+$' | sort -n | tr '\n' ' ')
check "the report's archive table is the archive recomputed from the log ($R / $A)" [ "$R" = "$A" ]
run a_status "$DN" evolve status "$T/a"
check "status counts the archive ($na)" grep -q "^archive: $na non-dominated models (objective acc,flops)" "$T/a_status.out"
check "the report marks the seed and the fronts at 25/50/75%" \
  bash -c "grep -q 'class=\"p-seed\"' '$T/a/report/index.html' && [ \$(grep -c 'class=\"p-front\"' '$T/a/report/pareto-flops.svg') -ge 2 ]"
check "no crash" no_crash "$T/a.err"

# ------------------------------------------------------------------ b. kill -9, resume
# (not under the sanitizers: the store's kill -9 and resume paths have their own tests there, and CI's time is short)
if [ "$BUILD" != build-san ]; then
  # (seed 3: its archive on params keeps several models and loses some to better ones)
  "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/b" "${E[@]}" -evals $EVALS -objective acc,params -algo aging \
    -sample 3 -seed 3 >"$T/b1.out" 2>"$T/b1.err" &
  pid=$!
  for _ in $(seq 3000); do [ "$(lines "$T/b/events.jsonl" 2>/dev/null || echo 0)" -ge 20 ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
  at=$(lines "$T/b/events.jsonl")
  run b2 "$DN" evolve -resume "$T/b"
  check "killed at evaluation $at, -resume finishes (rc=$rc: $(tail -n 1 "$T/b2.err"))" \
    bash -c "[ $at -lt $EVALS ] && [ $rc -eq 0 ]"
  check "the log is gap-free" sequential "$T/b/events.jsonl" $EVALS
  check "the archive (params) survives: every kept model has its weights, the other dead have none" \
    weights_as_kept "$T/b" params
  B=$(archived "$T/b" params)
  dead=$(replay "$T/b" params | awk '$8 && !$7' | wc -l)
  check "the archive on params holds several models ($B), dead ones among them ($dead)" \
    bash -c "[ $(echo $B | wc -w) -ge 2 ] && [ $dead -ge 1 ]"
  check "no crash" no_crash "$T"/b*.err
fi

# ------------------------------------------------------------------ c. export -pareto
run c "$DN" evolve export "$T/a" -pareto
TSV=$T/a/pareto/pareto.tsv
check "export -pareto exits 0 (rc=$rc: $(tail -n 1 "$T/c.err"))" [ "$rc" -eq 0 ]
check "pareto.tsv lists the archive ($na models)" [ "$(grep -vc '^#' "$TSV")" -eq "$na" ]
check "... each with a test accuracy and its files" awk -F'\t' -v d="$T/a/pareto" '
  !/^#/ { if ($4 !~ /^0\.[0-9]+$/) bad = 1; for (e = 1; e <= 4; ++e) { f = d "/" $10 (e == 1 ? ".cfg" : e == 2 ? ".weights" : e == 3 ? ".data" : ".labels")
          if ((getline x < f) < 0) bad = 1; close(f) } }
  END { exit bad }' "$TSV"
check "... named by FLOPs and accuracy" bash -c "! grep -v '^#' '$TSV' | cut -f10 | grep -vqE '^[0-9.e+]+MFLOPs-acc[0-9.]+-id[0-9]+$'"
check "... cheapest first" bash -c "grep -v '^#' '$TSV' | cut -f6 | sort -c -g"
first=$(grep -v '^#' "$TSV" | head -n 1 | cut -f10)
if [ -x "$UPSTREAM" ]; then
  fashion_pngs 3
  same=0
  while read -r img _; do
    run ours "$DN" classifier predict "$T/a/pareto/$first.data" "$T/a/pareto/$first.cfg" "$T/a/pareto/$first.weights" "$img"
    (cd "$T/a/pareto" && timeout 120 "$UPSTREAM" classifier predict "$first.data" "$first.cfg" "$first.weights" "$img") \
      >"$T/up.out" 2>"$T/up.err"
    agree "$(top1 "$T/ours.out")" "$(top1 "$T/up.out")" && same=$((same + 1))
  done < "$T/png.list"
  check "upstream Darknet predicts the cheapest archived model like ours ($same/3)" [ "$same" -eq 3 ]
else
  echo "skipping the upstream check: $UPSTREAM not installed (scripts/setup installs it)"
fi

# ------------------------------------------------------------------ d. budgets
kept_pick() {   # DIR FIELD LIMIT: the kept model within FIELD <= LIMIT ranking first (level, then accuracy; ties earlier)
  replay "$1" | awk -v f="$2" -v lim="$3" '$9 && $f <= lim && (!n++ || $2 > r || ($2 == r && $3 > a)) { id = $1; r = $2; a = $3 } END { print id }'
}
mid=$(grep -v '^#' "$TSV" | cut -f6 | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }')
want=$(kept_pick "$T/a" 4 "$mid")
run d "$DN" evolve export "$T/a" -max-flops "$mid" -out "$T/small"
check "export -max-flops $mid writes the kept model within it that ranks first ($want; rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -q '^export: individual $want ' '$T/d.out' && [ -s '$T/small.weights' ]"
pmax=$(replay "$T/a" | awk '$9 { print $5 }' | sort -n | head -n 2 | tail -n 1)
want=$(kept_pick "$T/a" 5 "$pmax")
run d2 "$DN" evolve export "$T/a" -max-params "$pmax"
check "export -max-params $pmax: individual $want (rc=$rc)" bash -c "[ $rc -eq 0 ] && grep -q '^export: individual $want ' '$T/d2.out'"
expect_error d_none 1 'no kept model is within the budget' "$DN" evolve export "$T/a" -max-flops 10
expect_error d_nolat 1 'measured no latency' "$DN" evolve export "$T/a" -max-latency 5

# ------------------------------------------------------------------ e. latency
run e "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/e" "${E[@]}" -evals 16 -objective acc,latency
check "a search on accuracy and latency exits 0 (rc=$rc: $(tail -n 1 "$T/e.err"))" [ "$rc" -eq 0 ]
check "every child's latency at batch 1 and at the batch is recorded" \
  bash -c "! grep -v promotion '$T/e/events.jsonl' | grep '\"outcome\":\"ok\"' | grep -vqE '\"latency_ms\":[0-9.e-]+,\"latency_batch_ms\":[0-9.e-]+'"
# the costliest archived latency, a hair above it (the log rounds it to 9 digits)
lmax=$(replay "$T/e" latency | awk '$8 { print $6 }' | sort -g | tail -n 1 | awk '{ printf "%.9g", $1 * 1.000001 }')
want=$(kept_pick "$T/e" 6 "$lmax")
run e2 "$DN" evolve export "$T/e" -max-latency "$lmax"
check "export -max-latency $lmax: individual $want (rc=$rc: $(tail -n 1 "$T/e2.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q '^export: individual $want ' '$T/e2.out'"
check "the report plots accuracy against latency" [ -s "$T/e/report/pareto-latency.svg" ]

# ------------------------------------------------------------------ f. usage
expect_error f_obj 2 "-objective 'acc,size': 'size' is not an objective" \
  "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/f" -objective acc,size
expect_error f_two 2 'give one of them' "$DN" evolve export "$T/a" -pareto -id 1
expect_error f_budget 2 "-max-flops 'x'" "$DN" evolve export "$T/a" -max-flops x
expect_error f_report 2 '-report-every -1' "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/f" -report-every -1

# ------------------------------------------------------------------ g. final training of the front
# front_plan DIR K: the winner, then for k = 1 .. K-1 the archived model ranking first within winner / sqrt(10)^k
front_plan() {
  replay "$1" | awk -v K="$2" '
    { id[NR] = $1; r[NR] = $2; a[NR] = $3; f[NR] = $4; ar[NR] = $8
      if (!w || $2 > r[w] || ($2 == r[w] && $3 > a[w])) w = NR }
    END { printf "%s", id[w]; taken[w] = 1; b = f[w]
      for (k = 1; k < K; ++k) { b /= 3.1622776601683795; p = 0
        for (i = 1; i <= NR; ++i) if (ar[i] && !taken[i] && f[i] <= b && (!p || r[i] > r[p] || (r[i] == r[p] && a[i] > a[p]))) p = i
        if (p) { taken[p] = 1; printf " %s", id[p] } }
      print "" }'
}
front_dirs() { ls "$1/final/front" 2>/dev/null | sort -n | tr '\n' ' '; }
# from the trivial seed: a front spanning more than a factor of sqrt(10) in FLOPs
# (30 steps per child: with fewer, a one-filter child or the seed itself often wins, with nothing sqrt(10) cheaper)
G=("${E[@]:0:${#E[@]}-2}" -evals 40 -steps 30 -objective acc,flops -final 0.5 -final-epochs 0.2)
run g "$DN" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/g" "${G[@]}" -final-front 2
read -r GW G1 G2 <<<"$(front_plan "$T/g" 3)"
check "a search with -final-front 2 trains its winner ($GW) and its cheaper model ($G1: $(front_dirs "$T/g"); rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && [ -n '$G1' ] && grep -q '\"id\":$GW,' '$T/g/final/result.json' && [ '$(front_dirs "$T/g")' = '$G1 ' ]"
check "... $G1 finished, with a test accuracy" grep -qE "\"id\":$G1,.*\"test_accuracy\":0\.[0-9]+" "$T/g/final/front/$G1/result.json"
run g2 "$DN" evolve -resume "$T/g" -final-front 3
check "-resume -final-front 3 adds the next (${G2:-none}), training nothing else again (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && [ '$(front_dirs "$T/g")' = '$(for i in $G1 $G2; do echo "$i"; done | sort -n | tr '\n' ' ')' ] && [ \$(grep -c '^final: training' '$T/g2.out') -eq $(echo $G2 | wc -w) ]"
run g3 "$DN" evolve finish "$T/g"
check "finish then trains nothing" bash -c "[ $rc -eq 0 ] && grep -q 'holds a finished model' '$T/g3.out' && ! grep -q '^final: training' '$T/g3.out'"
run g_status "$DN" evolve status "$T/g"
check "status lists the front's final models" bash -c "[ $(grep -c '^final (front): individual' "$T/g_status.out") -eq $(echo $G1 $G2 | wc -w) ]"
run g4 "$DN" evolve export "$T/g" -pareto
check "export -pareto exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
for m in $G1 $G2; do
  t_tsv=$(awk -F'\t' -v id="$m" '$1 == id && $9 == "final" { print $4 }' "$T/g/pareto/pareto.tsv")
  t_fin=$(sed -nE 's/.*"test_accuracy":([0-9.eE+-]+).*/\1/p' "$T/g/final/front/$m/result.json")
  check "export -pareto writes $m's final weights, with final training's test accuracy ($t_tsv / $t_fin)" \
    awk -v a="$t_tsv" -v b="$t_fin" 'BEGIN { exit !(a != "" && a - b < 0.0006 && b - a < 0.0006) }'
done
wf=$(replay "$T/g" | awk -v w="$GW" '$1 == w { printf "%.9g", $4 / 3.1622776601683795 }')
run g5 "$DN" evolve export "$T/g" -max-flops "$wf" -out "$T/g_small"
check "export -max-flops (1/sqrt(10) of the winner) takes the final-trained $G1" \
  bash -c "[ $rc -eq 0 ] && grep -q '^export: the final model of individual $G1 ' '$T/g5.out'"
low=$(grep -v '^#' "$TSV" | head -n 1 | cut -f6)
want=$(kept_pick "$T/a" 4 "$low")
run g6 "$DN" evolve finish "$T/a" -max-flops "$low" -epochs 0.2
run g7 "$DN" evolve export "$T/a" -max-flops "$low" -out "$T/g_low"
check "finish -max-flops $low trains $want into final/front/, which export then writes (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && [ -s '$T/a/final/front/$want/result.json' ] && grep -q '^export: the final model of individual $want ' '$T/g7.out'"
run g8 "$DN" evolve finish "$T/a" -max-flops "$low" -epochs 0.2
check "... and a second time says it is finished" bash -c "[ $rc -eq 0 ] && grep -q 'has a finished final training' '$T/g8.out'"
expect_error g_usage 2 'give one of them' "$DN" evolve finish "$T/a" -front 2 -id 1
expect_error g_front 2 "-final-front 9" "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/f" -final-front 9
check "no crash" no_crash "$T"/*.err

echo "test_pareto.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
