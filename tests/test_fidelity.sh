#!/usr/bin/env bash
# test_fidelity.sh — promotions and final training of `darknet evolve`, end to
# end on a small Fashion-MNIST search:
#   a. promotions: "promotion" events name a living individual one level up,
#      train steps x eta^k x (eta-1) more steps and score on the whole holdout
#      (children on -val-images); the log replays (status), the best ever is
#      of the highest level, and -workers 1 runs are reproducible with them;
#   b. kill -9 at several moments, two of them right after a promotion started
#      (the event after the kill is that promotion: with one worker the next
#      step depends on the state only), then -resume: the log replays, no gap, and
#      the search ends with its final training;
#   c. final training: DIR/final/ holds the model, its weights, the curve and
#      result.json with the test accuracy; export writes that model (same
#      weights, bit for bit) and says so; status and the report show it;
#      kill -9 during final training, then -resume continues from the
#      checkpoint; `finish` refuses to redo a finished one without -again and
#      keeps the old one as final.1; -from scratch; a resume that extends the
#      search keeps the outdated final model as final.2 and trains anew;
#   d. a folder whose options.cfg predates these options (no schedule,
#      mutations, rungs, ... keys) resumes with the old behaviour: no
#      promotions, no final training, the paper's mutations;
#   e. a final training that diverges (finish -lr) starts again at half the
#      peak rate, up to 3 times; when every rate diverges it fails with a clear
#      message, keeps the earlier final model, and export takes the search's best;
#   f. a timed final training refits its length to the pace and keeps to its
#      budget when the machine slows down;
#   g. -augment auto (the default): a winner that memorised its few training
#      images gets flip + crop in its final training, one that underfits does
#      not; the log's figures agree with the decision and result.json keeps it;
#   h. -final-width: finish -width 2 doubles every hidden layer (not the
#      classes), from scratch; export, status and the report give the wide
#      model; auto takes the widest whose measured speed gives 20 epochs, and
#      none without -hours; kill -9 during a widened final training, then
#      finish continues at its width; the search's -max-params holds; bad
#      widths are refused;
#   i. -erase: finish -augment 1 -erase 0.5 adds random erasing, said in the
#      log, result.json and the report; bad probabilities are refused;
#   j. -decay: finish -decay D trains with weight decay D instead of the
#      genome's: other weights than the same training without it (which
#      repeats bit for bit), said in the log, result.json, model.cfg and the
#      report; a search's -final-decay does the same for its final training
#      and is finish's default; bad values are refused.
# Env: BIN (where darknet lives, default bin), BUILD (build-san => smaller runs).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_fidelity

need_darknet
if [ ! -r "$FASHION/train-images-idx3-ubyte.gz" ]; then
  echo "Fashion-MNIST is not installed in $FASHION (scripts/setup installs it)"; echo "0 passed, 1 failed"; exit 1
fi
fashion_data
# a seed whose steps take a few milliseconds, so that kills land mid-training
fixture conv.cfg
E=(-population 4 -batch 64 -max-train 2000 -holdout 300 -val-images 100 -threads 2)
strip() { sed -E 's/"(elapsed|train_seconds|eval_seconds|build_seconds|worker_busy_seconds)":[-0-9.eE+]+//g; s/"time":"[^"]*"//g' "$1"; }
evals() { grep -oE '"eval":[0-9]+' "$1" | cut -d: -f2 | tr '\n' ' '; }
sequential() { [ "$(evals "$1")" = "$(seq -s ' ' 1 "$2") " ]; }
field() { sed -nE "s/.*\"$1\":(-?[0-9.eE+]+).*/\\1/p"; }

# ------------------------------------------------------------------ a. promotions
run a "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/a" "${E[@]}" -steps 6 -rungs 3 -eta 2 -evals 24 -final 0
check "a search with promotions exits 0 (rc=$rc: $(tail -n 2 "$T/a.err"))" [ "$rc" -eq 0 ]
EV=$T/a/events.jsonl
np=$(grep -c '"event":"promotion"' "$EV")
check "promotions happened ($np of 24 evaluations)" [ "$np" -ge 3 ]
check "the log is gap-free with promotions" sequential "$EV" 24
check "promotions to level 1 trained 6 x 1 more steps" \
  bash -c "grep '\"event\":\"promotion\"' '$EV' | grep '\"rung\":1,' | grep -vq '\"steps\":6,' && exit 1 || exit 0"
n2=$(grep '"event":"promotion"' "$EV" | grep -c '"rung":2,')
check "level 2 reached ($n2), with 6 x 2 x 1 more steps" \
  bash -c "[ $n2 -ge 1 ] && ! grep '\"rung\":2,' '$EV' | grep -vq '\"steps\":12,'"
check "children are scored on 100 images, promotions on the whole holdout (300)" \
  bash -c "! grep -v promotion '$EV' | grep -vq '\"val_images\":100,' && ! grep promotion '$EV' | grep -vq '\"val_images\":300,'"
check "each promotion goes one level up from the individual's level" awk '
  { match($0, /"id":[0-9]+/); id = substr($0, RSTART + 5, RLENGTH - 5)
    match($0, /"rung":[0-9]+/); r = substr($0, RSTART + 7, RLENGTH - 7) + 0
    if ($0 ~ /"event":"promotion"/) { if (!(id in lv) || r != lv[id] + 1) bad = 1; if ($0 ~ /"outcome":"ok"/) lv[id] = r }
    else lv[id] = 0 }
  END { exit bad }' "$EV"
run a_status "$DN" evolve status "$T/a"
top=$(grep -oE '"rung":[0-9]+' "$EV" | cut -d: -f2 | sort -n | tail -n 1)
check "status replays the log and names a best ever of the top level ($top)" \
  grep -qE "^best ever: individual [0-9]+, validation [0-9.]+% \\(level $top\\)" "$T/a_status.out"
check "status shows the levels" grep -q ' level ' "$T/a_status.out"
run a2 "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/a2" "${E[@]}" -steps 6 -rungs 3 -eta 2 -evals 24 -final 0
check "the same seed: the same log with promotions (timing aside)" cmp -s <(strip "$EV") <(strip "$T/a2/events.jsonl")
run a_report "$DN" evolve report "$T/a"
check "the report lists the promotions" grep -q '<h2>Promotions</h2>' "$T/a/report/index.html"

# ------------------------------------------------------------------ b. kill -9 during promotions, resume
B=(-steps 4 -rungs 2 -eta 8 -evals 60 -final-epochs 1)
"$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/b" "${E[@]}" "${B[@]}" >"$T/b0.out" 2>"$T/b0.err" &
pid=$!
kills=0; before=""
for round in 1 2 3 4; do
  if [ $((round % 2)) -eq 1 ]; then   # right after a promotion started
    for _ in $(seq 3000); do grep -q '^ *promoting ' "$T/b$((round - 1)).out" && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
  else                                # at some moment after the first new event
    n=$(lines "$T/b/events.jsonl")
    for _ in $(seq 3000); do [ "$(lines "$T/b/events.jsonl")" -gt "$n" ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
    sleep 0.3
  fi
  if kill -9 $pid 2>/dev/null; then kills=$((kills + 1)); fi
  wait $pid 2>/dev/null
  before="$before $(lines "$T/b/events.jsonl")"
  "$DN" evolve -resume "$T/b" >"$T/b$round.out" 2>"$T/b$round.err" &
  pid=$!
done
wait $pid; rc=$?
check "killed mid-search $kills times" [ "$kills" -ge 3 ]
check "the last resume finishes (rc=$rc: $(tail -n 2 "$T/b4.err"))" [ "$rc" -eq 0 ]
check "the log replays with no gap or duplicate" sequential "$T/b/events.jsonl" 60
hit=0
for n in $before; do
  sed -n "$((n + 1))p" "$T/b/events.jsonl" | grep -q '"event":"promotion"' && hit=$((hit + 1))
done
check "kills came while promotions trained ($hit; events at the kills:$before)" [ "$hit" -ge 2 ]
check "promotions after the kills" [ "$(grep -c '"event":"promotion"' "$T/b/events.jsonl")" -ge 3 ]
check "the search ended with its final training" [ -s "$T/b/final/result.json" ]
check "no crash" no_crash "$T"/b*.err

# ------------------------------------------------------------------ c. final training
run c "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/c" "${E[@]}" -steps 6 -evals 8 -final-epochs 2
check "search + final training exits 0 (rc=$rc: $(tail -n 2 "$T/c.err"))" [ "$rc" -eq 0 ]
R=$T/c/final/result.json
check "final/ holds the model, its weights, the curve and the result" \
  bash -c "[ -s '$T/c/final/model.cfg' ] && [ -s '$T/c/final/final.weights' ] && [ -s '$T/c/final/curve.tsv' ] && [ -s '$R' ]"
steps=$(field steps < "$R")
check "2 epochs over all 2000 training images at batch 64 ($steps steps)" [ "$steps" = 62 ]
acc=$(field test_accuracy < "$R")
check "a test accuracy on the 10000 test images ($acc)" bash -c "grep -q '\"images\":10000' '$R' && awk 'BEGIN { exit !($acc > 0.3 && $acc <= 1) }'"
check "the search prints it" grep -qE '^final: test accuracy [0-9.]+% on 10000 images' "$T/c.out"
run c_export "$DN" evolve export "$T/c"
check "export writes the final model and says so (rc=$rc)" grep -q 'the final model of' "$T/c_export.out"
check "... the same weights, bit for bit" cmp -s "$T/c/final/final.weights" "$T/c/best/best.weights"
check "... with the same test accuracy" grep -qE "test accuracy: +$(awk -v a="$acc" 'BEGIN { printf "%.2f", 100 * a }')%" "$T/c_export.out"
run c_id "$DN" evolve export "$T/c" -id 1
check "export -id N still writes the search's individual" bash -c "! grep -q 'final model' '$T/c_id.out' && [ -s '$T/c/export/1.weights' ]"
run c_status "$DN" evolve status "$T/c"
check "status shows the final training" grep -qE '^final: individual [0-9]+ trained 62 steps' "$T/c_status.out"
run c_report "$DN" evolve report "$T/c"
check "the report shows the final test accuracy and the curve" \
  bash -c "grep -q 'final test accuracy' '$T/c/report/index.html' && grep -q '<h2>Final training</h2>' '$T/c/report/index.html'"
run c_again "$DN" evolve finish "$T/c"
check "finish on a finished folder changes nothing and says how (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -q -- '-again' '$T/c_again.out' && cmp -s '$T/c/final/final.weights' '$T/c/best/best.weights'"
run c_scratch "$DN" evolve finish "$T/c" -again -from scratch -epochs 1
check "finish -again -from scratch trains anew (rc=$rc: $(tail -n 1 "$T/c_scratch.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"from\":\"scratch\"' '$R' && [ \"\$(sed -nE 's/.*\"steps\":([0-9]+).*/\\1/p' '$R')\" = 31 ]"
check "... and keeps the earlier one as final.1" cmp -s "$T/c/final.1/final.weights" "$T/c/best/best.weights"
# a resumed search outdates its final model: kept as final.2, trained anew after the new evaluations
run c_more "$DN" evolve -resume "$T/c" -evals 12
check "a resume with a larger budget trains a new final model (rc=$rc: $(tail -n 1 "$T/c_more.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q 'kept in .*final.2' '$T/c_more.out' && grep -q '\"evals\":12,' '$R' && [ -s '$T/c/final.2/result.json' ]"

# kill -9 during final training, then -resume continues from the checkpoint
"$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/k" "${E[@]}" -steps 4 -evals 6 -final-epochs 12 >"$T/k1.out" 2>"$T/k1.err" &
pid=$!
for _ in $(seq 3000); do grep -q '"step":[1-9]' "$T/k/final/progress.json" 2>/dev/null && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
at=$(field step < "$T/k/final/progress.json")
check "killed during final training (checkpoint at step $at)" bash -c "[ -n '$at' ] && [ ! -e '$T/k/final/result.json' ]"
run k_resume "$DN" evolve -resume "$T/k"
check "-resume continues it (rc=$rc: $(tail -n 1 "$T/k_resume.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q 'final: continuing at step $at of 375' '$T/k_resume.out'"
check "... and finishes it with its test accuracy" bash -c "grep -q '\"steps\":375' '$T/k/final/result.json' && grep -q '^final: test accuracy' '$T/k_resume.out'"
check "... without a new evaluation" sequential "$T/k/events.jsonl" 6
check "no crash" no_crash "$T"/c*.err "$T"/k*.err

# ------------------------------------------------------------------ d. a folder from before these options
run d "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/d" "${E[@]}" -steps 4 -evals 6 -final 0 -rungs 1 -mutations paper
sed -i -E '/^(schedule|mutations|rungs|eta|val_images|final|final_epochs|final_from|augment)=/d' "$T/d/options.cfg"
run d_resume "$DN" evolve -resume "$T/d" -evals 30
check "an old folder resumes (rc=$rc: $(tail -n 1 "$T/d_resume.err"))" [ "$rc" -eq 0 ]
check "... without promotions or final training" \
  bash -c "! grep -q promotion '$T/d/events.jsonl' && [ ! -e '$T/d/final' ]"
check "... with the paper's mutations only" \
  bash -c "! grep -qE '\"mutation\":\"(deepen|widen|skip_zero|flatten|deepen_head)\"' '$T/d/events.jsonl'"
check "... and its children scored on the whole holdout" bash -c "! grep -v '\"val_images\":300,' '$T/d/events.jsonl' | grep -q ."
check "no crash" no_crash "$T"/d*.err

# ------------------------------------------------------------------ e. a final training that diverges
run e_nan "$DN" evolve finish "$T/c" -again -lr 1e20 -epochs 1
check "a final training that diverges at every rate fails with a clear message (rc=$rc: $(tail -n 1 "$T/e_nan.err"))" \
  bash -c "[ $rc -eq 1 ] && grep -q 'diverged at every peak learning rate down to x0.125' '$T/e_nan.err'"
check "... after starting again 3 times at half the rate" \
  [ "$(grep -c 'diverged: loss is NaN.*starting again at half the peak learning rate' "$T/e_nan.out")" -eq 3 ]
check "... and loses nothing: the finished model is kept as final.3; final/ holds no result" \
  bash -c "[ -s '$T/c/final.3/result.json' ] && [ -s '$T/c/final.3/final.weights' ] && [ ! -e '$R' ]"
run e_export "$DN" evolve export "$T/c"
check "... export then writes the search's best (rc=$rc)" bash -c "[ $rc -eq 0 ] && ! grep -q 'the final model of' '$T/e_export.out'"
run e_half "$DN" evolve finish "$T/c" -lr 4e5 -epochs 1
check "a final training that diverges at its rate starts again at half the rate and finishes (rc=$rc: $(tail -n 1 "$T/e_half.err"))" \
  bash -c "[ $rc -eq 0 ] && grep -q 'starting again at half' '$T/e_half.out' && grep -qE '\"lr\":400000,\"lr_scale\":0\.(5|25|125),' '$R'"
run e_report "$DN" evolve report "$T/c"
check "... and the report names the lower rate" grep -q 'final learning rate' "$T/c/report/index.html"
check "no crash" no_crash "$T"/e*.err

# ------------------------------------------------------------------ f. a timed final training keeps to its budget
# 10.8 s on one core; 2 s in, a busy loop takes half of that core: the length
# measured at the start no longer fits, and the refits at the checkpoints
# bring it back (without them it would take about 1.5 to 1.8 x as long)
taskset -c 0 "$DN" evolve finish "$T/c" -again -hours 0.003 >"$T/f.out" 2>"$T/f.err" &
pid=$!
sleep 2
taskset -c 0 sh -c 'while :; do :; done' &
hog=$!
wait $pid; rc=$?
kill $hog 2>/dev/null; wait $hog 2>/dev/null
secs=$(field seconds < "$R")
check "a timed final training on a machine that slows down keeps to its 10.8 s (took ${secs:-?} s, rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && awk 'BEGIN { exit !($secs >= 8.5 && $secs <= 14.5) }'"
check "no crash" no_crash "$T/f.err"

# ------------------------------------------------------------------ g. -augment auto
# overfits: 200 training images, 400 steps of 64 (128 epochs) on a 16-32 conv;
# underfits: the trivial seed (a linear map of the global average), 20 steps;
# 500 holdout images, so that the bar is two points or two standard errors
G=(-population 2 -batch 64 -holdout 500 -threads 2 -rungs 1 -evals 2 -final-epochs 1 -seed 1)
run g_over "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/g_over" "${G[@]}" -max-train 700 -steps 400
run g_under "$DN" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/g_under" "${G[@]}" -max-train 3000 -steps 20
for g in over under; do
  line=$(grep -E '^final: -augment auto: individual' "$T/g_$g.out")
  read -r tr va bar <<<"$(sed -nE 's/.* scores ([0-9.]+)% on [0-9]+ of its training images and ([0-9.]+)% on [0-9]+ validation images \([-+0-9.]+ pp [<>=]+ ([0-9.]+):.*/\1 \2 \3/p' <<<"$line")"
  want=0; awk -v t="${tr:-0}" -v v="${va:-0}" -v b="${bar:-0}" 'BEGIN { exit !(t - v >= b && b >= 2) }' && want=1
  check "-augment auto, $g: the decision follows its figures (train ${tr:-?}%, val ${va:-?}%, bar ${bar:-?})" \
    bash -c "[ -n '$bar' ] && grep -q '\"augment\":$want' '$T/g_$g/final/result.json' &&
             grep -q '$([ $want = 1 ] && echo 'it overfits, augmentation' || echo ': no augmentation$')' <<<'$line'"
done
check "... the winner that memorised 200 images augments" grep -q '"augment":1' "$T/g_over/final/result.json"
check "... the trivial seed's winner, which underfits, does not" grep -q '"augment":0' "$T/g_under/final/result.json"
check "... the bar is two standard errors when they exceed two points" \
  bash -c "grep -qE 'on 500 validation images \([-+0-9.]+ pp [<>=]+ ([3-9]|[1-9][0-9])\.' '$T/g_under.out'"

# ------------------------------------------------------------------ h. -final-width
# filters of the model.cfg in FILE, in order (the last layer is the [connected] 10)
filters() { grep -E '^(filters|output)=' "$1" | cut -d= -f2 | tr '\n' ' '; }
run h2 "$DN" evolve finish "$T/c" -again -width 2 -epochs 1
id=$(field id < "$R")
want=$(filters "$T/c/individuals/$id.cfg" | awk '{ for (i = 1; i < NF; ++i) printf "%d ", 2 * $i; printf "%d \n", $NF }')
check "finish -width 2: every hidden layer twice as wide, the classes as they were (rc=$rc: $(filters "$T/c/final/model.cfg") want $want)" \
  bash -c "[ $rc -eq 0 ] && [ '$(filters "$T/c/final/model.cfg")' = '$want' ]"
check "... from scratch, recorded in result.json" bash -c "grep -q '\"width\":2,' '$R' && grep -q '\"from\":\"scratch\"' '$R'"
params=$(field params < "$R")
check "... its log and status give its size (${params:-?} params)" \
  bash -c "grep -q 'width x2 ($params params' '$T/h2.out' && $DN evolve status '$T/c' | grep -qE '^final: individual $id at width x2 \\($params params'"
run h2_export "$DN" evolve export "$T/c" -out "$T/h2x/m"
check "... export writes the wide model with its size and test accuracy (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && [ '$(filters "$T/h2x/m.cfg" 2>/dev/null)' = '$want' ] && grep -q 'params: $params,' '$T/h2_export.out' &&
           grep -qE 'test accuracy: +$(awk -v a="$(field test_accuracy < "$R")" 'BEGIN { printf "%.2f", 100 * a }')%' '$T/h2_export.out'"
run h2_report "$DN" evolve report "$T/c"
check "... the report names the width" grep -q 'every hidden layer 2 times as wide' "$T/c/report/index.html"

# auto: each width's speed measured, the widest with 20 epochs in the time left
run h_auto "$DN" evolve finish "$T/c" -again -hours 0.002 -width auto
line=$(grep -E '^final: -final-width auto:' "$T/h_auto.out")
chosen=$(awk '{ print $NF }' <<<"$line" | tr -d x)
pick=$(sed -E 's/.*left://' <<<"$line" | tr ';' '\n' | awk '/epochs/ { k = substr($1, 2); if (k == 1 || $4 >= 20) w = k; else exit } END { print w }')
check "-width auto: the width follows the measured epochs (x${pick:-?} from: ${line#*left:})" \
  bash -c "[ $rc -eq 0 ] && [ -n '$pick' ] && [ '$pick' = '$chosen' ] && grep -q '\"width\":$chosen,' '$R'"
check "... without -hours it trains the winner as searched" \
  bash -c "$DN evolve finish '$T/c' -again -epochs 1 -width auto >'$T/h_untimed.out' 2>&1 && grep -q '\"width\":1,' '$R' &&
           ! grep -q 'final-width auto' '$T/h_untimed.out'"

# a widened final training killed mid-way continues at its width
"$DN" evolve finish "$T/c" -again -width 1.5 -epochs 12 >"$T/hk1.out" 2>"$T/hk1.err" &
pid=$!
# (the finished run before it left a progress.json too: wait for this one's)
for _ in $(seq 3000); do grep '"width":1.5' "$T/c/final/progress.json" 2>/dev/null | grep -q '"step":[1-9]' && break
                         kill -0 $pid 2>/dev/null || break; sleep 0.01; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
at=$(field step < "$T/c/final/progress.json")
run hk2 "$DN" evolve finish "$T/c" -width 1.5 -epochs 12
check "kill -9 during a x1.5 final training, then finish continues at step $at at x1.5 (rc=$rc)" \
  bash -c "[ -n '$at' ] && [ $rc -eq 0 ] && grep -q 'final: continuing at step $at of' '$T/hk2.out' && grep -q '\"width\":1.5,' '$R'"

# the search's limits hold for the wide model; bad widths are refused
cp -r "$T/c" "$T/hl"
sed -i -E "s/^max_params=.*/max_params=$((params * 2))/" "$T/hl/options.cfg"
expect_error h_limit 1 'width x4: .*max_params' "$DN" evolve finish "$T/hl" -again -width 4 -epochs 1
run h_limit_auto "$DN" evolve finish "$T/hl" -again -hours 0.002 -width auto
check "-width auto stays within -max-params (rc=$rc: $(grep -o 'auto:.*' "$T/h_limit_auto.out"))" \
  bash -c "[ $rc -eq 0 ] && awk -v p=\"\$(sed -nE 's/.*\"params\":([0-9]+).*/\\1/p' '$T/hl/final/result.json')\" 'BEGIN { exit !(p > 0 && p <= $((params * 2))) }'"
expect_error h_bad 2 "-final-width '0.5'" "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/hb" "${E[@]}" -final-width 0.5
expect_error h_both 2 '-width and -filters' "$DN" evolve finish "$T/c" -again -width 2 -filters 8
check "no crash" no_crash "$T"/h*.err

# ------------------------------------------------------------------ i. -erase
run i_erase "$DN" evolve finish "$T/c" -again -epochs 1 -augment 1 -erase 0.5
check "finish -erase 0.5: flip + crop + random erasing, in the log and result.json (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -q '^final: training individual .*, flip + crop + erasing 0.5, ' '$T/i_erase.out' &&
           grep -q '\"erase\":0.5,' '$R' && grep -q '\"augment\":1,' '$R'"
run i_report "$DN" evolve report "$T/c"
check "... the report says so" grep -q 'flip + crop + erasing 0.5' "$T/c/report/index.html"
run i_plain "$DN" evolve finish "$T/c" -again -epochs 1 -augment 1
check "... the run's -erase (0) without the flag" bash -c "[ $rc -eq 0 ] && grep -q '\"erase\":0,' '$R'"
cp "$T/c/final/final.weights" "$T/i_plain.weights"
expect_error i_bad 2 "'-erase 1.5' is not understood" "$DN" evolve finish "$T/c" -again -erase 1.5
expect_error i_bad_run 2 "-erase 1.5: random erasing's probability" \
  "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/ib" "${E[@]}" -erase 1.5
check "no crash" no_crash "$T"/i_*.err

# ------------------------------------------------------------------ j. -decay
run j_again "$DN" evolve finish "$T/c" -again -epochs 1 -augment 1
check "the same final training twice gives the same weights (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && cmp -s '$T/c/final/final.weights' '$T/i_plain.weights' && grep -q '\"decay\":0,' '$R'"
run j_decay "$DN" evolve finish "$T/c" -again -epochs 1 -augment 1 -decay 0.05
check "finish -decay 0.05: in the log, result.json and model.cfg (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -q '^final: training individual .*, weight decay 0.05, ' '$T/j_decay.out' &&
           grep -q '\"decay\":0.05,' '$R' && grep -qx 'decay=0.05' '$T/c/final/model.cfg'"
check "... and it trains other weights" bash -c "[ -s '$T/c/final/final.weights' ] && ! cmp -s '$T/c/final/final.weights' '$T/i_plain.weights'"
run j_report "$DN" evolve report "$T/c"
check "... the report says so" grep -q 'final weight decay</th><td>0.05' "$T/c/report/index.html"
run j_run "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/jr" "${E[@]}" -steps 4 -evals 6 -final-epochs 1 -final-decay 0.02
check "a search's -final-decay 0.02 trains its final model with it (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -q '\"decay\":0.02,' '$T/jr/final/result.json' && grep -qx 'decay=0.02' '$T/jr/final/model.cfg'"
run j_run_finish "$DN" evolve finish "$T/jr" -again -epochs 1
check "... and finish without -decay keeps the run's (rc=$rc)" bash -c "[ $rc -eq 0 ] && grep -q '\"decay\":0.02,' '$T/jr/final/result.json'"
expect_error j_bad_run 2 "-final-decay 1: must be in" \
  "$DN" evolve "$T/fashion.data" "$T/conv.cfg" -out "$T/jb" "${E[@]}" -final-decay 1
expect_error j_zero 2 "'-decay 0' is not understood" "$DN" evolve finish "$T/c" -again -decay 0
expect_error j_one 2 "'-decay 1' is not understood" "$DN" evolve finish "$T/c" -again -decay 1
check "no crash" no_crash "$T"/j_*.err

echo "test_fidelity.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
