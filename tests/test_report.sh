#!/usr/bin/env bash
# test_report.sh — end-to-end tests of `darknet evolve report DIR [-out FILE] [-id N,...]`
# on small real runs (Fashion-MNIST subset):
#   a. a search from the trivial seed prints the report's path at its end; the
#      progress plot has one dot per evaluated individual; every href/src of the
#      page is a file that exists next to it; the lineage runs from an initial
#      individual (parent -1) to the best, parent by parent; every individual
#      drawn has its .dot/.svg/.cfg; -out and -id; the test accuracy appears
#      after `export`;
#   b. a cell search (tiny template): the normal and reduction cells are drawn;
#   c. a run with failures (learning rate 100: some children diverge), reported
#      while it runs, killed with kill -9 and resumed: failed dots and reasons,
#      dots = individuals; a partial last line of events.jsonl is skipped;
#   d. without Graphviz on PATH the .dot files are written and the page says so;
#   e. missing or corrupt run folders and bad arguments: a clear error, exit 1
#      (2 for usage), never a crash;
#   f. the page loads in headless Chromium without console errors (skipped,
#      saying so, when chromium is not installed).
# Env: BIN (default bin), BUILD (build-san => smaller runs).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_report

need_darknet
[ -r "$FASHION/train-images-idx3-ubyte.gz" ] || { echo "no Fashion-MNIST in $FASHION"; echo "0 passed, 1 failed"; exit 1; }
if [[ "$BUILD" == *san* ]]; then EVALS=24 CEVALS=8 FEVALS=40 FSTEPS=150; else EVALS=40 CEVALS=12 FEVALS=80 FSTEPS=400; fi
fashion_data
SMALL=(-batch 32 -holdout 300 -max-train 1500)
HAVE_DOT=0; command -v dot >/dev/null && HAVE_DOT=1
[ "$HAVE_DOT" -eq 1 ] || echo "note: Graphviz dot is not installed (scripts/setup installs it): diagrams are checked as .dot only"

# ------------------------------------------------------------------ helpers
# circles SVG [KIND]: the individuals' dots in a progress plot
circles() { grep -o "<circle class=\"ind ${2:-}" "$1" | wc -l; }
# individuals of an event log: its whole lines that are not promotions
events() { grep '}$' "$1" | grep -vc '"event":"promotion"'; }
# links_ok PAGE: every href/src is a relative file that exists beside the page
links_ok() {
  local page=$1 dir bad=0 n=0 ref
  dir=$(dirname "$page")
  while read -r ref; do
    n=$((n + 1))
    case $ref in *://*|/*|'') echo "  external or absolute reference: '$ref'" >&2; bad=1; continue ;; esac
    [ -f "$dir/$ref" ] || { echo "  missing: $dir/$ref" >&2; bad=1; }
  done < <(grep -oE '(href|src)="[^"]*"' "$page" | cut -d'"' -f2)
  [ "$bad" -eq 0 ] && [ "$n" -gt 0 ]
}
# best_id EVENTS: the best individual ever (highest accuracy, ties: the lower id)
# the best ever: the highest level (promotions), then accuracy, then the earlier id
best_id() {
  awk '/"outcome":"ok"/ { match($0, /"id":[0-9]+/); id = substr($0, RSTART + 5, RLENGTH - 5) + 0
         match($0, /"accuracy":[-0-9.eE+]+/); acc[id] = substr($0, RSTART + 11, RLENGTH - 11) + 0
         lv[id] = match($0, /"rung":[0-9]+/) ? substr($0, RSTART + 7, RLENGTH - 7) + 0 : 0 }
       END { for (i in acc) if (best == "" || lv[i] > lv[best] || (lv[i] == lv[best] && (acc[i] > acc[best] ||
             (acc[i] == acc[best] && i + 0 < best + 0)))) best = i; print best }' "$1"
}
# lineage_ok PAGE EVENTS: the rows go from an initial individual (parent -1 in
# the log too) to the best, each the child of the row before
lineage_ok() {
  local page=$1 ev=$2 prev="" first=1 id parent
  while read -r id parent; do
    if [ "$first" -eq 1 ]; then
      [ "$parent" = "-1" ] || { echo "  lineage starts at $id with parent $parent" >&2; return 1; }
      grep -q "\"id\":$id,\"parent\":-1," "$ev" || { echo "  $id is not an initial individual in the log" >&2; return 1; }
      first=0
    else
      [ "$parent" = "$prev" ] || { echo "  lineage row $id has parent $parent, not $prev" >&2; return 1; }
      grep -q "\"id\":$id,\"parent\":$parent," "$ev" || { echo "  the log does not say $id <- $parent" >&2; return 1; }
    fi
    prev=$id
  done < <(grep -oE '<tr data-id="[0-9]+" data-parent="-?[0-9]+"' "$page" | sed -E 's/.*data-id="([0-9]+)" data-parent="(-?[0-9]+)"/\1 \2/')
  [ -n "$prev" ] && [ "$prev" = "$(best_id "$ev")" ] || { echo "  lineage ends at '$prev', the best is $(best_id "$ev")" >&2; return 1; }
}
# drawn PAGE: the ids of the individuals with diagrams
drawn() { grep -oE '<section class="arch" data-id="[0-9]+"' "$1" | grep -oE '[0-9]+' | tr '\n' ' '; }
# diagrams_ok PAGE [cells]: each drawn individual has its files (and inline SVG when dot is there)
diagrams_ok() {
  local page=$1 dir id bad=0 f
  dir=$(dirname "$page")
  for id in $(drawn "$page"); do
    f=("arch-$id.dot" "arch-$id.cfg")
    [ "$HAVE_DOT" -eq 1 ] && f+=("arch-$id.svg")
    [ "${2:-}" = cells ] && f+=("cells-$id-normal.dot" "cells-$id-reduction.dot")
    [ "${2:-}" = cells ] && [ "$HAVE_DOT" -eq 1 ] && f+=("cells-$id-normal.svg" "cells-$id-reduction.svg")
    for x in "${f[@]}"; do [ -s "$dir/$x" ] || { echo "  missing $dir/$x" >&2; bad=1; }; done
  done
  [ -n "$(drawn "$page")" ] && [ "$bad" -eq 0 ]
}

# ------------------------------------------------------------------ a. a small real run, plain seed
run a "$DN" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/a" -population 6 -evals "$EVALS" -steps 30 "${SMALL[@]}" -seed 3
check "search a exits 0 (rc=$rc: $(tail -n 2 "$T/a.err"))" [ "$rc" -eq 0 ]
page=$(sed -n 's/^report: //p' "$T/a.out")
check "the search prints the report's path at its end ($page)" [ "$page" = "$T/a/report/index.html" -a -s "$T/a/report/index.html" ]
check "the search's report is its last line" bash -c "tail -n 1 '$T/a.out' | grep -q '^report: '"
P=$T/a/report
check "a: one dot per evaluated individual ($(circles "$P/progress.svg") vs $(events "$T/a/events.jsonl"))" \
  [ "$(circles "$P/progress.svg")" -eq "$(events "$T/a/events.jsonl")" ]
check "a: the same over time" [ "$(circles "$P/progress-time.svg")" -eq "$(events "$T/a/events.jsonl")" ]
check "a: nothing else in the plot is a circle" [ "$(grep -c '<circle' "$P/progress.svg")" -eq "$(events "$T/a/events.jsonl")" ]
check "a: dead and alive are told apart" bash -c "[ $(circles "$P/progress.svg" alive) -eq 6 ] && [ $(circles "$P/progress.svg" dead) -gt 0 ]"
check "a: the plot has the best-so-far line and axes" bash -c "grep -q 'class=\"p-best\"' '$P/progress.svg' && grep -q '>evaluation<' '$P/progress.svg' && grep -q 'validation accuracy' '$P/progress.svg'"
check "a: the page embeds both plots" [ "$(grep -o '<circle class="ind' "$P/index.html" | wc -l)" -eq $((2 * $(events "$T/a/events.jsonl"))) ]
check "a: every href/src of the page exists beside it" links_ok "$P/index.html"
check "a: the lineage runs from an initial individual to the best" lineage_ok "$P/index.html" "$T/a/events.jsonl"
check "a: the best and its ancestors are drawn ($(drawn "$P/index.html"))" diagrams_ok "$P/index.html"
best=$(best_id "$T/a/events.jsonl")
check "a: the best ($best) is drawn first" [ "$(drawn "$P/index.html" | cut -d' ' -f1)" = "$best" ]
check "a: the summary has the best, params, FLOPs, evaluations, failures, time" \
  bash -c "grep -q 'best validation accuracy' '$P/index.html' && grep -q 'FLOPs per image' '$P/index.html' && grep -q '>parameters<' '$P/index.html' && grep -q '$EVALS of $EVALS' '$P/index.html' && grep -q '>failures<' '$P/index.html' && grep -q '>search time<' '$P/index.html'"
check "a: no test accuracy before export" grep -q 'not measured (run darknet evolve export' "$P/index.html"
if [ "$HAVE_DOT" -eq 1 ]; then
  check "a: the diagrams show shapes and layer types" grep -q '28x28x1' "$P/arch-$best.svg"
  check "a: the page inlines the diagrams" [ "$(grep -c '<svg' "$P/index.html")" -ge $((2 + $(drawn "$P/index.html" | wc -w))) ]
fi
# -out FILE and -id
run a_out "$DN" evolve report "$T/a" -out "$T/elsewhere/page.html" -id 1,4 -id 2
check "report -out -id exits 0 (rc=$rc: $(tail -n 2 "$T/a_out.err"))" [ "$rc" -eq 0 ]
check "report prints the page's path" grep -qx "report: $T/elsewhere/page.html" "$T/a_out.out"
check "-out: the figures are beside the page" bash -c "[ -s '$T/elsewhere/page.html' ] && [ -s '$T/elsewhere/progress.svg' ]"
for id in 1 2 4; do
  check "-id: individual $id is drawn" bash -c "grep -q '<section class=\"arch\" data-id=\"$id\"' '$T/elsewhere/page.html' && [ -s '$T/elsewhere/arch-$id.dot' ]"
done
check "-out: every href/src exists" links_ok "$T/elsewhere/page.html"
check "-out: every drawn individual has its files" diagrams_ok "$T/elsewhere/page.html"
check "report writes nothing into the run but its report folder" [ ! -e "$T/a/tests.jsonl" ]
run a_export "$DN" evolve export "$T/a" -out "$T/win/best"
check "export exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
tacc=$(grep -oE 'test accuracy: +[0-9.]+%' "$T/a_export.out" | grep -oE '[0-9.]+%')
run a_again "$DN" evolve report "$T/a"
check "after export the page shows the best's test accuracy ($tacc)" \
  bash -c "[ -n '$tacc' ] && grep -q 'test accuracy of the best</th><td>$tacc' '$P/index.html'"
check "a: no crash" no_crash "$T/a.err" "$T/a_out.err" "$T/a_again.err"

# ------------------------------------------------------------------ b. a cell search
cp "$FIXTURES/cells.cfg" "$T/tiny.cfg"   # a tiny template: stem, normal, reduction, normal cell, head
run b "$DN" evolve "$T/fashion.data" "$T/tiny.cfg" -out "$T/b" -algo aging -sample 3 -population 4 -evals "$CEVALS" -steps 10 -blocks 2 "${SMALL[@]}"
check "cell search exits 0 (rc=$rc: $(tail -n 2 "$T/b.err"))" [ "$rc" -eq 0 ]
P=$T/b/report
check "b: the search wrote its report" grep -qx "report: $P/index.html" "$T/b.out"
check "b: one dot per individual" [ "$(circles "$P/progress.svg")" -eq "$(events "$T/b/events.jsonl")" ]
check "b: every href/src exists" links_ok "$P/index.html"
check "b: the lineage runs from an initial individual to the best" lineage_ok "$P/index.html" "$T/b/events.jsonl"
check "b: normal and reduction cells drawn for each individual shown" diagrams_ok "$P/index.html" cells
best=$(best_id "$T/b/events.jsonl")
check "b: the cells' dot has both inputs, blocks and the concatenation" \
  bash -c "grep -q 'h(k-2)' '$P/cells-$best-normal.dot' && grep -q 'block 1' '$P/cells-$best-reduction.dot' && grep -q 'concat' '$P/cells-$best-normal.dot'"
check "b: the page names the cells" grep -q 'cells: <code>normal=' "$P/index.html"
check "b: the summary says cell search" grep -q 'cells of a template' "$P/index.html"

# ------------------------------------------------------------------ c. failures, report while running, kill -9, resume
sed -e 's/^learning_rate=.*/learning_rate=100/' cfg/evo-trivial.cfg > "$T/hot.cfg"
"$DN" evolve "$T/fashion.data" "$T/hot.cfg" -out "$T/c" -population 6 -evals "$FEVALS" -steps "$FSTEPS" "${SMALL[@]}" -seed 2 \
  >"$T/c1.out" 2>"$T/c1.err" &
pid=$!
for _ in $(seq 1000); do [ "$(events "$T/c/events.jsonl")" -ge 10 ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.02; done
n0=$(events "$T/c/events.jsonl")
run c_live "$DN" evolve report "$T/c" -out "$T/live/index.html"
n1=$(events "$T/c/events.jsonl")
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
nk=$(events "$T/c/events.jsonl")
check "report while the search runs exits 0 (rc=$rc: $(tail -n 2 "$T/c_live.err"))" [ "$rc" -eq 0 ]
dots=$(circles "$T/live/progress.svg")
check "report while running: dots = events read ($n0 <= $dots <= $n1)" [ "$dots" -ge "$n0" -a "$dots" -le "$n1" ]
check "kill -9 came mid-search ($nk of $FEVALS events)" [ "$nk" -ge 10 -a "$nk" -lt "$FEVALS" ]
run c_resume "$DN" evolve -resume "$T/c"
check "resume exits 0 (rc=$rc: $(tail -n 2 "$T/c_resume.err"))" [ "$rc" -eq 0 ]
P=$T/c/report
check "resume: the search wrote its report" grep -qx "report: $P/index.html" "$T/c_resume.out"
nf=$(grep -c '"outcome":"failed"' "$T/c/events.jsonl")
check "c: the run has failures ($nf)" [ "$nf" -ge 1 ]
check "c: one dot per individual after the resume" [ "$(circles "$P/progress.svg")" -eq "$(events "$T/c/events.jsonl")" ]
check "c: failed dots = failures ($(circles "$P/progress.svg" failed) vs $nf)" [ "$(circles "$P/progress.svg" failed)" -eq "$nf" ]
check "c: the failures are listed with their reason" grep -q '<td>training diverged' "$P/index.html"
check "c: every href/src exists" links_ok "$P/index.html"
check "c: the lineage runs from an initial individual to the best" lineage_ok "$P/index.html" "$T/c/events.jsonl"
check "c: diagrams for each individual shown" diagrams_ok "$P/index.html"
failed_id=$(grep '"outcome":"failed"' "$T/c/events.jsonl" | head -n 1 | sed -nE 's/.*"id":([0-9]+).*/\1/p')
run c_failed "$DN" evolve report "$T/c" -out "$T/cf/index.html" -id "$failed_id"
check "a failed individual can be drawn (rc=$rc: $(tail -n 1 "$T/c_failed.err"))" [ "$rc" -eq 0 -a -s "$T/cf/arch-$failed_id.dot" ]
# a partial last line, as a search being killed while writing leaves it
cp -r "$T/c" "$T/torn"
printf '{"eval":%d,"id":999,"parent":3,"mutat' $((FEVALS + 1)) >> "$T/torn/events.jsonl"
run torn "$DN" evolve report "$T/torn"
check "a partial last line is skipped (rc=$rc: $(tail -n 1 "$T/torn.err"))" [ "$rc" -eq 0 ]
check "a partial last line: a note says so" grep -qiE 'partial|torn' "$T/torn.err"
check "a partial last line: the page says so" grep -q "partial line" "$T/torn/report/index.html"
check "a partial last line: dots = whole lines" [ "$(circles "$T/torn/report/progress.svg")" -eq "$(events "$T/c/events.jsonl")" ]
check "c: no crash" no_crash "$T/c_live.err" "$T/c_resume.err" "$T/torn.err" "$T/c_failed.err"

# ------------------------------------------------------------------ d. without Graphviz
run nodot env PATH=/nonexistent "$DN" evolve report "$T/a" -out "$T/nodot/index.html"
check "without dot the report still works (rc=$rc: $(tail -n 1 "$T/nodot.err"))" [ "$rc" -eq 0 ]
check "without dot: a note on stderr" grep -q 'Graphviz' "$T/nodot.err"
check "without dot: the page says how to render" grep -q 'dot -Tsvg' "$T/nodot/index.html"
check "without dot: .dot files, no diagram .svg" bash -c "ls '$T'/nodot/arch-*.dot >/dev/null && ! ls '$T'/nodot/arch-*.svg 2>/dev/null"
check "without dot: every href/src exists" links_ok "$T/nodot/index.html"

# ------------------------------------------------------------------ e. errors
mkdir -p "$T/empty"
expect_error missing_dir 1 'nothere.*no such run folder' "$DN" evolve report "$T/nothere"
expect_error not_a_run 1 'empty/options\.cfg: missing' "$DN" evolve report "$T/empty"
cp -r "$T/a" "$T/noev"; rm "$T/noev/events.jsonl"
expect_error no_events 1 'noev/events\.jsonl: missing' "$DN" evolve report "$T/noev"
cp -r "$T/a" "$T/corrupt"; sed -i '3s/.*/{"eval":3, this is not json/' "$T/corrupt/events.jsonl"
expect_error corrupt_events 1 'corrupt/events\.jsonl:3:' "$DN" evolve report "$T/corrupt"
cp -r "$T/a" "$T/badopt"; printf '[evolve]\ndata=x\nseed_cfg=y\npopulation=lots\n' > "$T/badopt/options.cfg"
expect_error corrupt_options 1 'badopt/options\.cfg:4:.*population' "$DN" evolve report "$T/badopt"
cp -r "$T/a" "$T/badcfg"; best=$(best_id "$T/a/events.jsonl"); printf 'garbage \x01\x02 [[[\n' > "$T/badcfg/individuals/$best.cfg"
expect_error garbage_cfg 1 "badcfg/individuals/$best\\.cfg" "$DN" evolve report "$T/badcfg"
cp -r "$T/a" "$T/nocfg"; rm "$T/nocfg/individuals/$best.cfg"
expect_error missing_cfg 1 "nocfg/individuals/$best\\.cfg" "$DN" evolve report "$T/nocfg"
expect_error unknown_id 1 'no individual 12345' "$DN" evolve report "$T/a" -out "$T/x/index.html" -id 12345
expect_error overwrite 1 'refusing to overwrite' "$DN" evolve report "$T/a" -out "$T/a/events.jsonl"
check "-out never overwrites a file that is not a page" [ "$(lines "$T/a/events.jsonl")" -eq "$EVALS" ]
expect_error no_dir 2 'usage: darknet evolve report' "$DN" evolve report
expect_error bad_flag 2 "unknown option '-frob'" "$DN" evolve report "$T/a" -frob
expect_error bad_id 2 "-id wants an integer, not 'x'" "$DN" evolve report "$T/a" -id 3,x
expect_error no_out_value 2 '-out needs a value' "$DN" evolve report "$T/a" -out
run help "$DN" evolve -h
check "evolve -h documents report" grep -q 'darknet evolve report DIR' "$T/help.out"

# ------------------------------------------------------------------ f. headless Chromium
CHROMIUM=$(command -v chromium || command -v chromium-browser || true)
if [ -z "$CHROMIUM" ]; then
  echo "skipped: the headless Chromium check (chromium is not installed; scripts/setup installs it)"
else
  for d in a b; do
    timeout 120 "$CHROMIUM" --headless --disable-gpu --no-sandbox --enable-logging=stderr --v=0 \
      --user-data-dir="$T/chromium-$d" --dump-dom "file://$T/$d/report/index.html" >"$T/dom_$d.out" 2>"$T/dom_$d.err"
    rc=$?
    check "chromium loads report $d (rc=$rc)" [ "$rc" -eq 0 ]
    check "chromium renders report $d (lineage table and plot in the DOM)" \
      bash -c "grep -q 'Lineage of the best individual' '$T/dom_$d.out' && grep -q '<circle class=\"ind' '$T/dom_$d.out'"
    check "chromium: no console message or uncaught error for report $d" \
      bash -c "! grep -E ':CONSOLE|Uncaught|Failed to load resource' '$T/dom_$d.err'"
  done
fi

echo "test_report.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
