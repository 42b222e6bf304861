#!/usr/bin/env bash
# test_evolve_mpi.sh — `darknet evolve ... -mpi` under Open MPI on loopback,
# 1 controller + 2 worker ranks (as root in CI: Open MPI's allow-run-as-root
# variables, --oversubscribe on 2 cores):
#   a. mpirun -np 3: evaluations 1..N, no gap or duplicate, every individual
#      alive, killed or failed, both worker ranks evaluated, inheritance used;
#      the same run folder then resumes without MPI.
#   b. kill -9 of worker rank 1 mid-run: Open MPI aborts the job; mpirun -np 3
#      ... -resume finishes it with every evaluation written before the kill
#      kept, and the log again consistent.
#   e. the same kill under `mpirun --enable-recovery` (the job lives on): rank
#      0 hears nothing from the dead rank for DN_MPI_TIMEOUT seconds, records
#      its child as failed and finishes the search with the other rank; and
#      with rank 0 killed the workers notice its silence and leave, and the
#      run folder resumes.
#   c. a rank that answers with a wrong-version, truncated or foreign message
#      (tests/mpi_rogue.c, MPMD) is dropped with a message naming it and the
#      problem; the search finishes on the other rank.
#   d. -mpi with one rank, and in a build without MPI: usage errors.
# Env: BUILD / BIN as the other tests; MPI_BIN (default ${BUILD}-mpi/bin).
set -u
cd "$(dirname "$0")/.." || exit 1
. tests/lib.sh dn_evolve_mpi

MPI_BIN=${MPI_BIN:-${BUILD}-mpi/bin}
DNM=$PWD/$MPI_BIN/darknet
ROGUE=$PWD/${MPI_BIN%/bin}/tests/mpi_rogue
if ! command -v mpirun >/dev/null || [ ! -x "$DNM" ] || [ ! -x "$ROGUE" ]; then
  echo "no mpirun, $DNM or $ROGUE (make MPI=1; scripts/setup installs Open MPI)"; echo "0 passed, 1 failed"; exit 1
fi
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_btl_base_warn_component_unused=0
# sanitizer builds: Open MPI keeps allocations of MPI_Init until exit, some in
# plugins it unloads (unknown modules to the fast unwinder): unwind fully and
# suppress what MPI's start-up and shutdown allocate; our own leaks still count
printf 'leak:MPI_Init_thread\nleak:ompi_mpi_init\nleak:MPI_Finalize\nleak:ompi_mpi_finalize\nleak:libopen-pal\nleak:libopen-rte\nleak:libhwloc\nleak:libevent\nleak:libpmix\n' > "$T/lsan.supp"
export LSAN_OPTIONS="suppressions=$T/lsan.supp:print_suppressions=0"
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
MPIRUN=(mpirun --oversubscribe)

fashion_data
if [[ "$BUILD" == *san* ]]; then MAXTRAIN=1500 HOLDOUT=300 STEPS=30 POP=6 EVALS=30
else MAXTRAIN=3000 HOLDOUT=500 STEPS=60 POP=8 EVALS=60; fi
# -max-flops: growth is capped, or a run whose children happen to grow (asynchronous
# ranks make every run differ) costs several times another (children of 10 MFLOPs: 500 s)
SMALL=(-population "$POP" -steps "$STEPS" -batch 32 -holdout "$HOLDOUT" -max-train "$MAXTRAIN" -max-flops 1e6)
start_mpi() { local name=$1 dir=$2 np=$3; shift 3
  run "$name" "${MPIRUN[@]}" -np "$np" "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$dir" "${SMALL[@]}" "$@"; }

# pid_of_rank R: the darknet process of MPI rank R
pid_of_rank() {
  local p
  for p in $(pgrep -f "$DNM evolve"); do
    grep -qz "^OMPI_COMM_WORLD_RANK=$1\$" "/proc/$p/environ" 2>/dev/null && echo "$p"
  done
}

# ------------------------------------------------------------------ a. 1 controller + 2 workers
start_mpi a "$T/a" 3 -evals "$EVALS" -mpi
check "mpirun -np 3 exits 0 (rc=$rc: $(tail -n 2 "$T/a.err"))" [ "$rc" -eq 0 ]
check "says it runs on MPI ranks" grep -q "2 workers on MPI ranks 1..2" "$T/a.out"
check_search_log "mpirun -np 3" "$T/a/events.jsonl" "$EVALS" "$POP" 2
check "mpirun -np 3: children inherited weights" grep -qE '"inherited":[1-9]' "$T/a/events.jsonl"
check "mpirun -np 3: weights of the living are in the run folder" [ "$(ls "$T/a/weights" | wc -l)" -ge 2 ]
check "mpirun -np 3: no crash or sanitizer report" no_crash "$T/a.err"
run a_resume "$DN" evolve -resume "$T/a" -evals $((EVALS + 4))
check "the MPI run folder resumes without MPI (rc=$rc)" [ "$rc" -eq 0 -a "$(lines "$T/a/events.jsonl")" -eq $((EVALS + 4)) ]

# ------------------------------------------------------------------ b. kill -9 a worker rank, then resume
SLOW=$EVALS   # long enough to be killed mid-run (6 events in), short enough to finish on one rank
( "${MPIRUN[@]}" -np 3 "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/b" "${SMALL[@]}" -evals "$SLOW" \
    -steps $((STEPS * 2)) -mpi > "$T/b.out" 2> "$T/b.err"; echo $? > "$T/b.rc" ) &
for _ in $(seq 1 600); do [ "$(lines "$T/b/events.jsonl")" -ge 6 ] && break; sleep 0.05; done
victim=$(pid_of_rank 1)
check "found worker rank 1 to kill" [ -n "$victim" ]
[ -n "$victim" ] && kill -9 "$victim"
wait
before=$(lines "$T/b/events.jsonl")
check "the job stopped early after the kill ($before of $SLOW events, mpirun rc=$(cat "$T/b.rc"))" \
  [ "$before" -lt "$SLOW" -a "$(cat "$T/b.rc")" -ne 0 ]
head -n "$before" "$T/b/events.jsonl" > "$T/b.before"
run b_resume "${MPIRUN[@]}" -np 3 "$DNM" evolve -resume "$T/b" -mpi
check "mpirun -np 3 -resume after the kill exits 0 (rc=$rc: $(tail -n 2 "$T/b_resume.err"))" [ "$rc" -eq 0 ]
check "resume says so" grep -q "resuming after evaluation" "$T/b_resume.out"
check_search_log "kill + resume" "$T/b/events.jsonl" "$SLOW" "$POP" 2
check "every evaluation written before the kill is kept" cmp -s "$T/b.before" <(head -n "$before" "$T/b/events.jsonl")

# ------------------------------------------------------------------ e. kill -9 a worker rank, the job lives on
( DN_MPI_TIMEOUT=4 "${MPIRUN[@]}" --enable-recovery -np 3 "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg \
    -out "$T/e" "${SMALL[@]}" -evals "$SLOW" -steps $((STEPS * 2)) -mpi > "$T/e.out" 2> "$T/e.err"; echo $? > "$T/e.rc" ) &
for _ in $(seq 1 600); do [ "$(lines "$T/e/events.jsonl")" -ge 6 ] && break; sleep 0.05; done
victim=$(pid_of_rank 1)
check "found worker rank 1 to kill (recovery)" [ -n "$victim" ]
[ -n "$victim" ] && kill -9 "$victim"
wait
check "with --enable-recovery the search finishes after the kill (rc=$(cat "$T/e.rc"): $(tail -n 2 "$T/e.err"))" \
  [ "$(cat "$T/e.rc")" -eq 0 ]
check_search_log "kill under --enable-recovery" "$T/e/events.jsonl" "$SLOW" "$POP" 2
# the dead rank's evaluation: a failed child or promotion, or a promotion dropped because its individual died meanwhile
nlost=$(( $(grep -c '"outcome":"failed".*no message from rank 1' "$T/e/events.jsonl") + \
          $(grep -A1 'MPI rank 1: no message from rank 1' "$T/e.out" | grep -c 'promotion of [0-9]* is dropped') ))
check "the dead rank's evaluation is one failed (or dropped) evaluation ($nlost)" [ "$nlost" -eq 1 ]
check "rank 0 says rank 1 is gone" grep -q "MPI rank 1: no message from rank 1 for 4 s" "$T/e.out"

# rank 0 killed under --enable-recovery: the workers notice the silence, leave, and the folder resumes
( DN_MPI_TIMEOUT=3 "${MPIRUN[@]}" --enable-recovery -np 3 "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg \
    -out "$T/f" "${SMALL[@]}" -evals "$SLOW" -steps $((STEPS * 2)) -mpi > "$T/f.out" 2> "$T/f.err"; echo $? > "$T/f.rc" ) &
for _ in $(seq 1 600); do [ "$(lines "$T/f/events.jsonl")" -ge 6 ] && break; sleep 0.05; done
victim=$(pid_of_rank 0)
[ -n "$victim" ] && kill -9 "$victim"
t0=$(date +%s)
wait
check "rank 0 killed: the worker ranks leave by themselves ($(( $(date +%s) - t0 )) s)" [ $(( $(date +%s) - t0 )) -lt 60 ]
check "rank 0 killed: the workers say rank 0 is gone" grep -q "nothing from rank 0: no message from rank 0" "$T/f.err"
run f_resume "${MPIRUN[@]}" -np 3 "$DNM" evolve -resume "$T/f" -mpi
check "rank 0 killed: mpirun -resume finishes it (rc=$rc)" [ "$rc" -eq 0 -a "$(lines "$T/f/events.jsonl")" -eq "$SLOW" ]

# ------------------------------------------------------------------ c. a rank that sends a bad message is dropped
for mode in version truncated garbage; do
  run "c_$mode" "${MPIRUN[@]}" -np 2 "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/c_$mode" "${SMALL[@]}" \
    -evals 20 -mpi : -np 1 "$ROGUE" "$mode"
  check "rogue $mode: the search finishes (rc=$rc: $(tail -n 2 "$T/c_$mode.err"))" \
    [ "$rc" -eq 0 -a "$(lines "$T/c_$mode/events.jsonl")" -eq 20 ]
  check "rogue $mode: rank 2 dropped with a message" grep -q "MPI rank 2: .*the rank is dropped" "$T/c_$mode.out"
  check "rogue $mode: its child is one failed individual" \
    [ "$(grep -c '"outcome":"failed"' "$T/c_$mode/events.jsonl")" -eq 1 ]
  check "rogue $mode: the rogue was stopped at the end" grep -q "mpi_rogue: rank 2 stopped" "$T/c_$mode.err"
done
V=$(sed -nE 's/^#define EVO_WIRE_VERSION ([0-9]+).*/\1/p' evo/evo_internal.h)
check "wrong version named" grep -q "message version $((V + 1)), this build speaks version $V" "$T/c_version.out"
check "truncation named" grep -q "(truncated)" "$T/c_truncated.out"
check "foreign bytes named" grep -q "not a darknet evolve message" "$T/c_garbage.out"

# ------------------------------------------------------------------ d. usage
expect_error one_rank 2 'needs at least 2 ranks' "${MPIRUN[@]}" -np 1 "$DNM" evolve "$T/fashion.data" cfg/evo-trivial.cfg \
  -out "$T/d1" -evals 4 -mpi
expect_error no_mpi 2 'no MPI support' "$DN" evolve "$T/fashion.data" cfg/evo-trivial.cfg -out "$T/d2" -evals 4 -mpi
check "refused starts leave no run folder" [ ! -e "$T/d1" -a ! -e "$T/d2" ]

echo "test_evolve_mpi.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
