#!/usr/bin/env bash
# test_gpu_emu.sh — the GPU code paths end to end on an EMU=1 build (CUDA and
# cuBLAS emulated on the host by tests/gpu_emu: two devices, ASan + UBSan),
# one thread per block (build-emu/) or, with EMU_BLOCKS=full, real blocks
# (build-emu-full/: 256-thread blocks as fibers, real barriers and shuffles):
#   0. the emulator's self-test (tests/gpu_emu/selftest.cu): reductions and
#      shuffles right; with real blocks also that they are real (256 threads,
#      32 lanes, counted barriers and shuffles) and that undefined behaviour
#      in a kernel stops it; with real blocks again in reverse order;
#      tests/gpu_emu/test_coop.c: darknet's block reductions and warp rows at
#      sizes beyond test_gpu's (threads and lanes that loop, idle ones,
#      losses over more blocks than partial sums) against the host;
#   1. tests/test_gpu: every layer on the GPU against the CPU, batch changes,
#      data parallel over devices 0 and 1, out of device memory: real passes,
#      not "skipped"; with no device (DN_EMU_DEVICES=0) it reports the skip;
#      with real blocks: barriers and warp shuffles of several threads ran,
#      and test_gpu passes again with threads and blocks in reverse order;
#   2. classifier train on a tiny PNG dataset with -gpus 0, -gpus 1 and
#      -gpus 0,1 (data parallel): exit 0, kernels ran on exactly the listed
#      devices, and the saved weights load in the CPU build's classifier
#      valid with top-1 >= 0.9; upstream's -i 1 trains on device 1 and
#      -nogpu on the CPU (each says so), -gpus wins over -i, -i 2 is an
#      error, and darknet -h says it is a GPU build;
#   3. evolve -gpus 0,1 (one worker per device): completes, both workers
#      evaluated, children inherited weights, both devices ran kernels; and
#      with -workers 4 (two threads per device); a timed finish -width auto
#      times each width on the device;
#   4. errors: a device that does not exist (-gpus 2) is a usage error for
#      evolve and an error for classifier train; out of device memory
#      (DN_EMU_FAIL_ALLOC_AFTER) is a clean exit 1 for train and failed
#      individuals with the reason for evolve; never a crash or a leak.
# Env: BUILD, BIN (the emulated build; make test-gpu-emu sets them), CPU_BIN
# (the CPU build's binary folder, default bin), EMU_BLOCKS (full: BUILD has
# real blocks; default one).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_gpu_emu
CPU_BIN=${CPU_BIN:-bin}
case $CPU_BIN in /*) CPU_DN=$CPU_BIN/darknet ;; *) CPU_DN=$PWD/$CPU_BIN/darknet ;; esac
export DN_EMU_STATS=1   # per-device launch counts on stderr at exit

need_darknet
[ -x "$CPU_DN" ] || { echo "no $CPU_DN (build the CPU darknet first)"; echo "0 passed, 1 failed"; exit 1; }
FULL=0; MODE="one thread per block"
[ "${EMU_BLOCKS:-one}" = full ] && { FULL=1; MODE="real blocks"; }
# ran_on NAME DEVICE: the run's stderr shows kernel launches on DEVICE
ran_on() { grep -Eq "^gpu_emu: device $2: [1-9][0-9]* launches" "$T/$1.err"; }
# real_blocks TEXT: DN_EMU_STATS's line says barriers and warp operations of several threads ran
real_blocks() { grep -Eq '^gpu_emu: real blocks: .* [1-9][0-9]* barriers, [1-9][0-9]* warp operations' <<<"$1"; }
# count_run LABEL CMD...: runs a test binary; adds its "N passed, M failed" to the totals; output in $out
count_run() {
  local label=$1; shift
  out=$("$@" 2>&1); rc=$?
  local line p f
  line=$(printf '%s\n' "$out" | grep -E '[0-9]+ passed, [0-9]+ failed' | tail -n 1)
  p=$(printf '%s' "$line" | sed -nE 's/.* ([0-9]+) passed.*/\1/p')
  f=$(printf '%s' "$line" | sed -nE 's/.* ([0-9]+) failed.*/\1/p')
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0}))
  npassed=${p:-0}
  if [ "$rc" -ne 0 ]; then fail "$label exits $rc"; printf '%s\n' "$out" | grep -v '^gpu_emu: device' | tail -n 30 >&2; fi
  check "$label: no sanitizer report" no_crash <(printf '%s\n' "$out")
}

# ------------------------------------------------------------------ 0. the emulator's self-test
count_run selftest "$BUILD/tests/gpu_emu/selftest"
check "selftest ran ($MODE, $npassed checks)" eval '[ "$npassed" -gt 10 ] && grep -q "($MODE)" <<<"$out"'
if [ "$FULL" = 1 ]; then
  count_run "selftest in reverse order" env DN_EMU_ORDER=reverse "$BUILD/tests/gpu_emu/selftest"
  check "selftest in reverse order ran" grep -q "(real blocks, reverse order)" <<<"$out"
fi

count_run test_coop "$BUILD/tests/gpu_emu/test_coop"
check "test_coop ran" [ "$npassed" -gt 20 ]
[ "$FULL" = 1 ] && count_run "test_coop in reverse order" env DN_EMU_ORDER=reverse "$BUILD/tests/gpu_emu/test_coop"

# ------------------------------------------------------------------ 1. test_gpu
count_run test_gpu "$BUILD/tests/test_gpu"
check "test_gpu runs on the emulated devices (not skipped)" eval '! grep -q skipped <<<"$out" && [ "$npassed" -gt 1000 ]'
if [ "$FULL" = 1 ]; then
  check "test_gpu ran real blocks: barriers and warp shuffles of several threads" real_blocks "$out"
  count_run "test_gpu in reverse order" env DN_EMU_ORDER=reverse "$BUILD/tests/test_gpu"
  check "test_gpu in reverse order: real blocks, not skipped" eval 'real_blocks "$out" && [ "$npassed" -gt 1000 ]'
fi
out=$(DN_EMU_DEVICES=0 "$BUILD/tests/test_gpu" 2>&1)
check "test_gpu without a device reports the skip" grep -q 'skipped: no CUDA device' <<<"$out"

# ------------------------------------------------------------------ 2. classifier train
tiny_pngs 16
for g in 0 1 01; do sed -e "s#^backup=.*#backup=$T/backup$g#" "$T/tiny.data" > "$T/g$g.data"; done
# batch norm, convolutions (im2col + GEMM), maxpool, avgpool, connected, softmax
cp "$FIXTURES/tiny.cfg" "$T/tiny.cfg"

for g in 0 1 0,1; do
  n=${g/,/}
  max=(); [ "$g" = 1 ] && max=(-max_batches 10)   # device 1 alone: only where it runs
  run "train$n" "$DN" classifier train "$T/g$n.data" "$T/tiny.cfg" -gpus "$g" -quiet "${max[@]}"
  check "train -gpus $g exits 0 (rc=$rc: $(grep -v '^gpu_emu:' "$T/train$n.err" | tail -n 1))" [ "$rc" -eq 0 ]
  check "train -gpus $g: no sanitizer report" no_crash "$T/train$n.err"
done
check "-gpus 0 runs on device 0 only" eval 'ran_on train0 0 && ! ran_on train0 1'
check "-gpus 1 runs on device 1 only" eval 'ran_on train1 1 && ! ran_on train1 0'
check "-gpus 0,1 runs on both devices" eval 'ran_on train01 0 && ran_on train01 1'
check "-gpus 0,1 says data parallel" grep -q 'data-parallel on 2 GPUs' "$T/train01.err"
[ "$FULL" = 1 ] && check "train ran real blocks (batch norm, softmax, avgpool)" real_blocks "$(cat "$T/train0.err")"
for n in 0 01; do
  run "valid$n" "$CPU_DN" classifier valid "$T/g$n.data" "$T/tiny.cfg" "$T/backup$n/tiny.weights"
  acc=$(awk '/^valid: /{print $6}' "$T/valid$n.out" | tr -d ,)
  check "weights of -gpus ${n/01/0,1} on the CPU build: top-1 ${acc:-none} >= 0.9" awk -v a="${acc:-0}" 'BEGIN{exit !(a >= 0.9)}'
done
# upstream's global -i N and -nogpu, before or after the command (read by main): device N or the CPU
run train_i1 "$DN" -i 1 classifier train "$T/g1.data" "$T/tiny.cfg" -quiet -max_batches 2
check "-i 1 exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
check "-i 1 trains on device 1: says so, kernels ran there only" \
  eval 'grep -q "training on GPU 1" "$T/train_i1.err" && ran_on train_i1 1 && ! ran_on train_i1 0'
run train_nogpu "$DN" classifier train "$T/g1.data" "$T/tiny.cfg" -quiet -max_batches 2 -nogpu
check "-nogpu exits 0 (rc=$rc)" [ "$rc" -eq 0 ]
check "-nogpu trains on the CPU: says so, no kernel ran" \
  eval 'grep -q -- "-nogpu: training on the CPU" "$T/train_nogpu.err" && ! ran_on train_nogpu 0 && ! ran_on train_nogpu 1'
run train_i_gpus "$DN" classifier train "$T/g1.data" "$T/tiny.cfg" -quiet -max_batches 2 -i 1 -gpus 0
check "-gpus 0 wins over -i 1 (rc=$rc)" eval '[ "$rc" -eq 0 ] && ran_on train_i_gpus 0 && ! ran_on train_i_gpus 1'
expect_error train_i2 1 '-i: GPU 2 does not exist' "$DN" -i 2 classifier train "$T/g1.data" "$T/tiny.cfg"
run help "$DN" -h
check "darknet -h says this is a GPU build, not a CPU build" \
  eval 'grep -q "This is a GPU build" "$T/help.out" && ! grep -q "CPU build" "$T/help.out"'

# ------------------------------------------------------------------ 3. evolve, one worker per device
cat > "$T/seed.cfg" <<'EOF'
[net]
batch=8
width=16
height=16
channels=3
learning_rate=0.05
momentum=0.9
decay=0.0005
policy=constant

[convolutional]
filters=4
size=3
stride=1
pad=1
activation=leaky

[avgpool]

[connected]
output=2
activation=linear

[softmax]
EOF
EVO=(evolve "$T/g0.data" "$T/seed.cfg" -population 4 -evals 12 -steps 10 -batch 8 -holdout 16 -seed 3)
run evolve "$DN" "${EVO[@]}" -gpus 0,1 -out "$T/ev"
check "evolve -gpus 0,1 exits 0 (rc=$rc: $(grep -v '^gpu_emu:' "$T/evolve.err" | tail -n 1))" [ "$rc" -eq 0 ]
check "evolve: 12 events" [ "$(lines "$T/ev/events.jsonl")" -eq 12 ]
check "evolve: none failed" eval '! grep -q "\"outcome\":\"failed\"" "$T/ev/events.jsonl"'
workers=$(grep -oE '"worker":[0-9]+' "$T/ev/events.jsonl" | sort -u | wc -l)
check "evolve: both workers evaluated ($workers)" [ "$workers" -eq 2 ]
check "evolve: children inherited weights" grep -qE '"inherited":[1-9]' "$T/ev/events.jsonl"
check "evolve: kernels ran on both devices" eval 'ran_on evolve 0 && ran_on evolve 1'
check "evolve: no sanitizer report" no_crash "$T/evolve.err"
# two workers per device: each thread has its own cuBLAS handle there (the emulator rejects a shared one)
run evolve4 "$DN" "${EVO[@]}" -gpus 0,1 -workers 4 -out "$T/ev4"
workers=$(grep -oE '"worker":[0-9]+' "$T/ev4/events.jsonl" | sort -u | wc -l)
check "evolve -workers 4 on 2 devices exits 0 (rc=$rc), 4 workers evaluated ($workers)" [ "$rc" -eq 0 -a "$workers" -eq 4 ]
check "evolve -workers 4: no sanitizer report" no_crash "$T/evolve4.err"
# a timed final training with -width auto times each width on the run's first device
run ev_width "$DN" evolve finish "$T/ev" -again -hours 0.001 -width auto
check "finish -width auto on a device: the widths timed there, the model trained (rc=$rc)" \
  bash -c "[ $rc -eq 0 ] && grep -qE '^final: -final-width auto: .* x1 [0-9]+ ms/step' '$T/ev_width.out' && [ -s '$T/ev/final/result.json' ]"
check "... on device 0, without a sanitizer report" eval 'ran_on ev_width 0 && no_crash "$T/ev_width.err"'

# ------------------------------------------------------------------ 4. errors
expect_error evolve_gpus2 2 'device 2 does not exist \(2 CUDA devices\)' "$DN" "${EVO[@]}" -gpus 2 -out "$T/ev2"
expect_error train_gpus2 1 'GPU 2 does not exist' "$DN" classifier train "$T/g0.data" "$T/tiny.cfg" -gpus 0,2
expect_error train_oom 1 'out of memory' \
  env DN_EMU_FAIL_ALLOC_AFTER=20 "$DN" classifier train "$T/g0.data" "$T/tiny.cfg" -gpus 0
run evolve_oom env DN_EMU_FAIL_ALLOC_AFTER=60 "$DN" "${EVO[@]}" -gpus 0,1 -evals 8 -out "$T/ev_oom"
check "evolve out of device memory still completes (rc=$rc)" [ "$rc" -eq 0 ]
check "... its final training going on on the CPU" grep -q 'final: out of memory on GPU 0 .*continuing on the CPU' "$T/evolve_oom.out"
check "evolve out of device memory: 8 events" [ "$(lines "$T/ev_oom/events.jsonl")" -eq 8 ]
check "evolve out of device memory: failed individuals say why" \
  grep -q '"outcome":"failed","reason":"[^"]*out of memory' "$T/ev_oom/events.jsonl"
check "evolve out of device memory: no sanitizer report" no_crash "$T/evolve_oom.err"

echo "test_gpu_emu.sh ($MODE): $passed passed, $failed failed"
[ "$failed" -eq 0 ]
