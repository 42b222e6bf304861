# tests/lib.sh — what the shell tests share, sourced from the repository root
# as `. tests/lib.sh NAME`: the binary under test ($DN, from $BIN, default
# bin; $BUILD says which build), Fashion-MNIST's folder, a temporary folder
# $T (/tmp/NAME.XXXXXX, removed at exit unless KEEP is set), the shared input
# files of tests/fixtures/ (see its README.md), the pass/fail counters and the
# checks below.
BIN=${BIN:-bin}
BUILD=${BUILD:-build}
case $BIN in /*) DN=$BIN/darknet ;; *) DN=$PWD/$BIN/darknet ;; esac
ROOT=$PWD
FIXTURES=$ROOT/tests/fixtures
FASHION=/usr/share/datasets/fashion-mnist
UPSTREAM=/usr/bin/darknet
T=$(mktemp -d "/tmp/$1.XXXXXX")
trap '[ -n "${KEEP:-}" ] || rm -rf "$T"' EXIT
passed=0; failed=0

ok()   { passed=$((passed + 1)); }
fail() { failed=$((failed + 1)); echo "FAIL: $*" >&2; }
# check WHAT CMD...: passes when CMD succeeds
check() { local what=$1; shift; if "$@"; then ok; else fail "$what"; fi; }
# no_crash FILE...: no sanitizer report or crash message in the files
no_crash() { ! grep -Eq 'AddressSanitizer|LeakSanitizer|runtime error|Segmentation|Aborted|core dumped' "$@"; }

# run NAME CMD...: runs with a time limit; sets rc; output in $T/NAME.out and $T/NAME.err
run() {
  local name=$1; shift
  timeout 300 "$@" >"$T/$name.out" 2>"$T/$name.err"; rc=$?
}

# expect_error NAME RC REGEX CMD...: exit code RC, stderr matching REGEX, no crash
expect_error() {
  local name=$1 want=$2 re=$3; shift 3
  run "$name" "$@"
  if [ "$rc" -ne "$want" ]; then fail "$name: exit $rc, wanted $want; stderr: $(tail -n 3 "$T/$name.err")"; return; fi
  if ! grep -Eq -e "$re" "$T/$name.err"; then fail "$name: stderr does not match /$re/: $(tail -n 3 "$T/$name.err")"; return; fi
  if ! no_crash "$T/$name.err"; then fail "$name: sanitizer report or crash"; return; fi
  ok
}

# fixture NAME [DEST]: tests/fixtures/NAME copied to $T/DEST (default NAME),
# with @T@, @ROOT@ and @FASHION@ replaced by $T, the repository and $FASHION
fixture() {
  sed -e "s#@T@#$T#g" -e "s#@ROOT@#$ROOT#g" -e "s#@FASHION@#$FASHION#g" "$FIXTURES/$1" > "$T/${2:-$1}"
}

# fashion_data: $T/fashion.data (Fashion-MNIST, backups in $T/backup)
fashion_data() { fixture fashion.data; }

# fashion_pngs N: the first N Fashion-MNIST test images as PNGs in $T/png/,
# listed in $T/png.list ("path label" lines; tests/idx_to_png.c)
fashion_pngs() {
  mkdir -p "$T/png"
  ${CC:-cc} -O1 -o "$T/idx_to_png" tests/idx_to_png.c -lz && "$T/idx_to_png" "$FASHION/t10k-images-idx3-ubyte.gz" \
    "$FASHION/t10k-labels-idx1-ubyte.gz" "$T/png" "$1" > "$T/png.list"
}

# tiny_pngs SIZE: two trivially separable classes of SIZE x SIZE PNGs from
# tests/gen_cli_data.c, 40 training images ($T/train.list) and 10 test images
# ($T/test.list), and $T/tiny.data for them (backups in $T/backup); stops the
# test when it cannot
tiny_pngs() {
  ${CC:-cc} -O1 -o "$T/gen" tests/gen_cli_data.c -lz || { echo "cannot build tests/gen_cli_data.c"; echo "0 passed, 1 failed"; exit 1; }
  mkdir -p "$T/train" "$T/test"
  "$T/gen" "$T/train" 40 "$1" 1 && "$T/gen" "$T/test" 10 "$1" 2 || { echo "data generation failed"; echo "0 passed, 1 failed"; exit 1; }
  fixture tiny.data
}

# lines FILE: its line count, 0 when it is not there (yet)
lines() { if [ -f "$1" ]; then wc -l < "$1"; else echo 0; fi; }

# need_darknet: stop with one failure when the binary is missing
# top1 FILE: the top-1 of a `classifier predict` output, "NAME PERCENT"
top1() { grep -E '^ *[0-9]+\.[0-9]+%: ' "$1" | head -n 1 | sed -E 's/^ *([0-9.]+)%: (.*)$/\2 \1/'; }
# agree A B: the same class, probabilities within 0.02 points (both print %5.2f)
agree() { [ -n "$1" ] && [ "${1% *}" = "${2% *}" ] && awk -v a="${1##* }" -v b="${2##* }" 'BEGIN{d = a - b; exit !(d < 0.02 && d > -0.02)}'; }

need_darknet() { [ -x "$DN" ] || { echo "no $DN (build it first)"; echo "0 passed, 1 failed"; exit 1; }; }

# check_search_log LABEL EVENTS N POP WORKERS: a finished search's event log
# is consistent: evaluations 1..N in order with no gap or duplicate, every
# child's id once, WORKERS distinct workers evaluated, every kill of a living
# individual and at most once, every promotion of a living one,
# alive + killed + failed = children, at most POP alive.
check_search_log() {
  local label=$1 ev=$2 n=$3 pop=$4 workers=$5 evals acct bad total nalive ndead nfail
  evals=$(grep -oE '"eval":[0-9]+' "$ev" | cut -d: -f2 | tr '\n' ' ')
  check "$label: evals 1..$n in order, no gap or duplicate" [ "$evals" = "$(seq -s ' ' 1 "$n") " ]
  check "$label: every id once" [ "$(grep -v '"event":"promotion"' "$ev" | grep -oE '"id":[0-9]+' | sort | uniq -d | wc -l)" -eq 0 ]
  check "$label: $workers workers evaluated" [ "$(grep -oE '"worker":[0-9]+' "$ev" | sort -u | wc -l)" -eq "$workers" ]
  acct=$(awk '
    { id = ""; if (match($0, /"id":[0-9]+/)) id = substr($0, RSTART + 5, RLENGTH - 5) + 0
      failed = ($0 ~ /"outcome":"failed"/)
      if ($0 ~ /"event":"promotion"/) { if (!(id in alive)) bad++; next }
      if (match($0, /"killed":\[[0-9,]*\]/)) { k = substr($0, RSTART + 10, RLENGTH - 11)
        if (k != "") { m = split(k, ks, ","); for (i = 1; i <= m; ++i) { if (!(ks[i] in alive)) bad++; delete alive[ks[i]]; dead++ } } }
      if (failed) nfail++; else alive[id] = 1; total++ }
    END { na = 0; for (a in alive) na++; printf "%d %d %d %d %d\n", bad + 0, total, na, dead + 0, nfail + 0 }' "$ev")
  read -r bad total nalive ndead nfail <<< "$acct"
  check "$label: kills only of living individuals ($bad wrong)" [ "$bad" -eq 0 ]
  check "$label: alive + killed + failed = evaluated ($nalive + $ndead + $nfail = $total)" \
    [ $((nalive + ndead + nfail)) -eq "$total" ]
  check "$label: the population stays at most P ($nalive <= $pop)" [ "$nalive" -le "$pop" ]
}
