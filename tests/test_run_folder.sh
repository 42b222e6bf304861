#!/usr/bin/env bash
# test_run_folder.sh — what nothing may do to a run folder of `darknet evolve`
# (README, "The run folder"), end to end on a small Fashion-MNIST search:
#   a. one writer: a resume that finds the folder locked (the lock held by this
#      test, as a running search holds it) is refused and changes nothing; two
#      resumes started together leave a folder that replays; two starts on one
#      new folder at the same instant: exactly one wins;
#   b. a lost log (events.jsonl deleted or emptied) is refused, nothing deleted;
#   c. a missing or truncated weights file of a living individual costs that
#      individual: status, report and export of others work, -resume goes on
#      with it dead ("lost" in the log) and its file kept in DIR/orphans/;
#      export beside a running search;
#   d. the data options cannot change: a hand-edited options.cfg is refused
#      naming the key; -resume -evals below the evaluations done is refused;
#   e. no traps: a start that failed before its first evaluation (a typo in the
#      .data, an impossible -holdout) runs again with the same command after the
#      fix, or resumes; paths with spaces; export -id N and -out forms; a FIFO
#      or a device as an input is refused at once.
# Env: BIN (where darknet lives, default bin), BUILD (build-san => smaller runs).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_run_folder

need_darknet
if [ ! -r "$FASHION/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed in $FASHION (scripts/setup installs it)"; echo "0 passed, 1 failed"; exit 1
fi
fashion_data
SEED_CFG=cfg/evo-trivial.cfg
E=(-population 4 -steps 20 -batch 32 -max-train 1200 -holdout 300 -threads 1)
# evals FILE: the eval numbers, space separated
evals() { grep -oE '"eval":[0-9]+' "$1" | cut -d: -f2 | tr '\n' ' '; }
# sequential FILE N: eval numbers 1..N, no gap, no duplicate
sequential() { [ "$(evals "$1")" = "$(seq -s ' ' 1 "$2") " ]; }
sums() { (cd "$1" && find . -type f ! -path './report/*' -print0 | sort -z | xargs -0 cksum); }
# a living individual's id (alive: born, never in a "killed" or "lost" list)
living() {
  local ids dead
  ids=$(grep '"outcome":"ok"' "$1/events.jsonl" | grep -oE '"id":[0-9]+' | cut -d: -f2 | sort -nu)   # a promotion repeats its id
  dead=$(grep -oE '"(killed|lost)":\[[0-9,]*\]' "$1/events.jsonl" | grep -oE '[0-9]+')
  for i in $ids; do grep -qx "$i" <<<"$dead" || echo "$i"; done
}

run base "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/R" "${E[@]}" -evals 8
check "a small search runs (rc=$rc: $(tail -n 2 "$T/base.err"))" [ "$rc" -eq 0 ]

# ------------------------------------------------------------------ a. one writer
cp -r "$T/R" "$T/L"
before=$(sums "$T/L")
flock "$T/L" sleep 3 & holder=$!   # the lock a running search holds
sleep 0.5
expect_error locked_resume 1 'in use: another darknet evolve' "$DN" evolve -resume "$T/L" -evals 12 -threads 1
check "a refused resume changes nothing (options.cfg, log, files)" [ "$(sums "$T/L")" = "$before" ]
expect_error locked_start 1 'in use' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/L" "${E[@]}" -evals 9
run locked_status "$DN" evolve status "$T/L"
check "status reads a locked folder (rc=$rc)" [ "$rc" -eq 0 ]
wait $holder
run unlocked_resume "$DN" evolve -resume "$T/L" -evals 9
check "the lock released, the resume goes on (rc=$rc: $(tail -n 1 "$T/unlocked_resume.err"))" [ "$rc" -eq 0 ]

# the issue's reproducer: two resumes at once; whatever the timing, the folder replays
cp -r "$T/R" "$T/two"
"$DN" evolve -resume "$T/two" -evals 9 >"$T/two1.out" 2>"$T/two1.err" & p1=$!
sleep 0.3
run two2 "$DN" evolve -resume "$T/two" -evals 12 -threads 1
wait $p1; rc1=$?
n=$(lines "$T/two/events.jsonl")
check "two resumes: eval numbers 1..$n, no duplicate" sequential "$T/two/events.jsonl" "$n"
check "two resumes: one was refused, or ran after the other (rc $rc1, $rc; $n events)" \
  bash -c "[ $rc1 -eq 0 ] && { [ $rc -eq 0 -a $n -eq 12 ] || { [ $rc -eq 1 ] && grep -q 'in use' '$T/two2.err'; }; }"
run two_status "$DN" evolve status "$T/two"
check "two resumes: status still reads the folder (rc=$rc)" [ "$rc" -eq 0 ]
run two_resume "$DN" evolve -resume "$T/two" -evals 13
check "two resumes: the folder resumes (rc=$rc: $(tail -n 1 "$T/two_resume.err"))" [ "$rc" -eq 0 -a "$(lines "$T/two/events.jsonl")" -eq 13 ]

# two starts on one new folder at the same instant: exactly one wins
for round in 1 2 3; do
  "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/S$round" "${E[@]}" -evals 4 >"$T/s1.out" 2>"$T/s1.err" & q1=$!
  "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/S$round" "${E[@]}" -evals 4 >"$T/s2.out" 2>"$T/s2.err" & q2=$!
  wait $q1; r1=$?; wait $q2; r2=$?
  check "two starts, round $round: exactly one wins (rc $r1 and $r2)" [ $((r1 == 0)) -ne $((r2 == 0)) ]
  check "two starts, round $round: the loser says why" grep -qE 'in use|already holds' "$T/s1.err" "$T/s2.err"
  check "two starts, round $round: one whole log" sequential "$T/S$round/events.jsonl" 4
done

# ------------------------------------------------------------------ b. a lost log
for how in deleted emptied; do
  cp -r "$T/R" "$T/lost_$how"
  if [ $how = deleted ]; then rm "$T/lost_$how/events.jsonl"; else : > "$T/lost_$how/events.jsonl"; fi
  before=$(sums "$T/lost_$how")
  expect_error "lost_$how" 1 'the log of this search is lost' "$DN" evolve -resume "$T/lost_$how"
  check "log $how: the way out is given" grep -q 'Restore events.jsonl' "$T/lost_$how.err"
  check "log $how: nothing deleted or changed" [ "$(sums "$T/lost_$how")" = "$before" ]
  expect_error "lost_start_$how" 1 'already holds individuals' \
    "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/lost_$how" "${E[@]}" -evals 4
done

# ------------------------------------------------------------------ c. one damaged file costs one individual
cp -r "$T/R" "$T/D"
mapfile -t alive < <(living "$T/D")
check "at least two living individuals (${alive[*]})" [ "${#alive[@]}" -ge 2 ]
victim=${alive[0]} other=${alive[1]}
truncate -s -8 "$T/D/weights/$victim.weights"
run d_status "$DN" evolve status "$T/D"
check "damaged weights: status works (rc=$rc)" [ "$rc" -eq 0 ]
run d_report "$DN" evolve report "$T/D"
check "damaged weights: report works (rc=$rc: $(tail -n 1 "$T/d_report.err"))" [ "$rc" -eq 0 ]
run d_export "$DN" evolve export "$T/D" -id "$other"
check "damaged weights: export of another individual works (rc=$rc)" [ "$rc" -eq 0 -a -s "$T/D/export/$other.weights" ]
expect_error d_export_victim 1 "weights/$victim.weights: corrupt" "$DN" evolve export "$T/D" -id "$victim"
run d_resume "$DN" evolve -resume "$T/D" -evals 10
check "damaged weights: -resume goes on (rc=$rc: $(tail -n 1 "$T/d_resume.err"))" [ "$rc" -eq 0 -a "$(lines "$T/D/events.jsonl")" -eq 10 ]
check "damaged weights: the resume says the individual counts as dead" grep -q "individual $victim .*counts as dead" "$T/d_resume.err"
check "damaged weights: the log records it as lost" grep -q "\"lost\":\[$victim\]" "$T/D/events.jsonl"
check "damaged weights: the file is kept aside" [ -s "$T/D/orphans/weights/$victim.weights" ]
check "damaged weights: the log replays" sequential "$T/D/events.jsonl" 10
# the best's weights gone: the default export takes the next best, with a warning
cp -r "$T/R" "$T/B"
rm -rf "$T/B/final"   # the search's best, not its final training, is what export takes then
best=$(sed -nE 's/^best: individual ([0-9]+).*/\1/p' "$T/base.out")
rm -f "$T/B/weights/$best.weights"
run b_export "$DN" evolve export "$T/B"
check "the best's weights missing: export takes the next best (rc=$rc: $(tail -n 1 "$T/b_export.err"))" \
  [ "$rc" -eq 0 -a -s "$T/B/best/best.weights" ]
check "... and says so" grep -q "cannot export individual $best" "$T/b_export.err"
# export beside a running search
"$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/live" "${E[@]}" -evals 60 >"$T/live.out" 2>"$T/live.err" & lp=$!
while [ "$(lines "$T/live/events.jsonl")" -lt 5 ] && kill -0 $lp 2>/dev/null; do sleep 0.1; done
ok_exports=0 tries=0
while kill -0 $lp 2>/dev/null && [ $tries -lt 8 ]; do
  tries=$((tries + 1))
  "$DN" evolve export "$T/live" -out "$T/live_exp/m" >"$T/le.out" 2>"$T/le.err" && ok_exports=$((ok_exports + 1)) \
    || echo "  export beside the search failed: $(tail -n 1 "$T/le.err")" >&2
done
wait $lp
check "export beside a running search: $ok_exports of $tries succeed" [ "$tries" -ge 1 -a "$ok_exports" -eq "$tries" ]

# ------------------------------------------------------------------ d. the data options are fixed
cp -r "$T/R" "$T/K"
sed -i 's/^holdout=.*/holdout=301/' "$T/K/options.cfg"
expect_error edited_holdout 1 'options.cfg: holdout=301, but .* holdout=300' "$DN" evolve -resume "$T/K"
sed -i 's/^holdout=.*/holdout=300/; s/^max_train=.*/max_train=1100/' "$T/K/options.cfg"
expect_error edited_max_train 1 'max_train=1100' "$DN" evolve -resume "$T/K"
sed -i 's/^max_train=.*/max_train=1200/; s/^seed=.*/seed=2/' "$T/K/options.cfg"
expect_error edited_seed 1 'seed=2' "$DN" evolve -resume "$T/K"
sed -i 's/^seed=.*/seed=1/' "$T/K/options.cfg"
before=$(sums "$T/K")
expect_error evals_below 2 '-evals 5: the search has already done 8 evaluations' "$DN" evolve -resume "$T/K" -evals 5
check "-evals below the done is not saved" [ "$(sums "$T/K")" = "$before" ]
run k_ok "$DN" evolve -resume "$T/K" -evals 9
check "put back, it resumes (rc=$rc: $(tail -n 1 "$T/k_ok.err"))" [ "$rc" -eq 0 ]

# ------------------------------------------------------------------ e. no traps
# a typo in the .data: the start fails before its first evaluation; fixed, the same command runs
sed 's#^train=.*#train=/nonexistent/train-images-idx3-ubyte.gz#' "$T/fashion.data" > "$T/typo.data"
expect_error typo_start 1 'nonexistent' "$DN" evolve "$T/typo.data" "$SEED_CFG" -out "$T/typo" "${E[@]}" -evals 4
cp "$T/fashion.data" "$T/typo.data"
run typo_again "$DN" evolve "$T/typo.data" "$SEED_CFG" -out "$T/typo" "${E[@]}" -evals 4
check "after fixing the .data, the same command runs (rc=$rc: $(tail -n 1 "$T/typo_again.err"))" [ "$rc" -eq 0 ]
check "... and says it starts anew" grep -q 'recorded no evaluation: starting it anew' "$T/typo_again.err"
sed -i 's#^train=.*#train=/nonexistent/train-images-idx3-ubyte.gz#' "$T/typo.data"
expect_error typo2_start 1 'nonexistent' "$DN" evolve "$T/typo.data" "$SEED_CFG" -out "$T/typo2" "${E[@]}" -evals 4
cp "$T/fashion.data" "$T/typo.data"
run typo2_resume "$DN" evolve -resume "$T/typo2"
check "... or resumes (rc=$rc: $(tail -n 1 "$T/typo2_resume.err"))" [ "$rc" -eq 0 -a "$(lines "$T/typo2/events.jsonl")" -eq 4 ]
# an impossible -holdout, then the corrected command
E2=(-population 4 -steps 20 -batch 32 -threads 1 -evals 3)
expect_error holdout_start 1 'leaves nothing to train on' "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/ho" "${E2[@]}" -holdout 99999
run holdout_again "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/ho" "${E2[@]}" -max-train 1200 -holdout 300
check "after an impossible -holdout, the corrected command runs (rc=$rc: $(tail -n 1 "$T/holdout_again.err"))" [ "$rc" -eq 0 ]

# paths with spaces: data, seed, run folder, export, resume, report, status
mkdir -p "$T/my data"
cp "$T/fashion.data" "$T/my data/fashion set.data"
cp "$SEED_CFG" "$T/my data/seed model.cfg"
SP="$T/my runs/run 1"
run sp "$DN" evolve "$T/my data/fashion set.data" "$T/my data/seed model.cfg" -out "$SP" "${E[@]}" -evals 4
check "spaces: the search runs (rc=$rc: $(tail -n 1 "$T/sp.err"))" [ "$rc" -eq 0 ]
check "spaces: the export hint is one shell word" grep -qF "export with: darknet evolve export '$SP'" "$T/sp.out"
run sp_resume "$DN" evolve -resume "$SP" -evals 5
check "spaces: resume (rc=$rc)" [ "$rc" -eq 0 ]
run sp_export "$DN" evolve export "$SP" -out "$T/my exports/best model"
check "spaces: export (rc=$rc: $(tail -n 1 "$T/sp_export.err"))" [ "$rc" -eq 0 -a -s "$T/my exports/best model.weights" ]
check "spaces: export says upstream cannot read such a .data" grep -q 'upstream Darknet removes every space' "$T/sp_export.out"
run sp_valid "$DN" classifier valid "$T/my exports/best model.data" "$T/my exports/best model.cfg" "$T/my exports/best model.weights"
check "spaces: the exported files validate (rc=$rc: $(tail -n 1 "$T/sp_valid.err"))" [ "$rc" -eq 0 ]
run sp_report "$DN" evolve report "$SP"
check "spaces: report (rc=$rc)" [ "$rc" -eq 0 -a -s "$SP/report/index.html" ]

# export -id N without -out keeps the best's export; -out FOLDER/ and -out ''
run ex_best "$DN" evolve export "$T/R"
sum_best=$(cksum < "$T/R/best/best.weights")
some=$(living "$T/R" | head -n 1)
run ex_id "$DN" evolve export "$T/R" -id "$some"
check "export -id $some writes DIR/export/$some.* (rc=$rc)" [ "$rc" -eq 0 -a -s "$T/R/export/$some.cfg" -a -s "$T/R/export/$some.weights" ]
check "export -id leaves the best's export alone" [ "$(cksum < "$T/R/best/best.weights")" = "$sum_best" ]
run ex_dir "$DN" evolve export "$T/R" -out "$T/into/"
check "export -out FOLDER/ writes FOLDER/best.* (rc=$rc)" [ "$rc" -eq 0 -a -s "$T/into/best.weights" -a ! -e "$T/into/.weights" ]
run ex_dir_id "$DN" evolve export "$T/R" -id "$some" -out "$T/into"
check "export -id N -out FOLDER writes FOLDER/N.* (rc=$rc)" [ "$rc" -eq 0 -a -s "$T/into/$some.weights" ]
expect_error ex_empty 2 "-out wants a file prefix" "$DN" evolve export "$T/R" -out ""
expect_error start_out_empty 2 "needs -out DIR" "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "" "${E[@]}" -evals 4
run start_slash "$DN" evolve "$T/fashion.data" "$SEED_CFG" -out "$T/slash/" "${E[@]}" -evals 4
check "-out DIR/ is the folder DIR (rc=$rc)" [ "$rc" -eq 0 -a -s "$T/slash/events.jsonl" ]

# a FIFO or a device as an input is refused at once, not waited on or read forever
mkfifo "$T/fifo.cfg"
expect_error fifo_seed 1 'not a regular file \(a FIFO\)' timeout 20 "$DN" evolve "$T/fashion.data" "$T/fifo.cfg" -out "$T/ff" "${E[@]}" -evals 2
expect_error zero_data 1 'not a regular file \(a character device\)' timeout 20 "$DN" evolve /dev/zero "$SEED_CFG" -out "$T/ff" "${E[@]}" -evals 2

check "no crash anywhere" no_crash "$T"/*.err
echo "test_run_folder.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
