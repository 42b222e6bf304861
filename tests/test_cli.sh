#!/usr/bin/env bash
# test_cli.sh — end-to-end tests of `darknet classifier` through the binary:
#   1. bad input of every kind gives a non-zero exit and a clear message, never a crash
#      (FIFOs and devices in every file position are refused at once, without blocking);
#   2. train / valid / predict on a tiny generated PNG dataset (two trivially
#      separable classes): upstream's output lines, backup file names, exit codes,
#      resuming, -clear, SIGINT, flags anywhere, predict from stdin, NaN weights refused,
#      a backup saved when an image goes missing mid-run, and a 1-channel network
#      reading the red plane of an RGB image exactly as upstream /usr/bin/darknet does;
#   3. cfg/cifar10-small.cfg trains a few batches on fake CIFAR-10 .bin files;
#   4. a short Fashion-MNIST run (3000 training images) must beat chance by far
#      on 2000 held-out test images (scaled down under the sanitizer build).
# Env: BIN (where darknet lives, default bin), BUILD (build-san => sanitizer scale).
# Prints "N passed, M failed"; exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
. tests/lib.sh dn_cli
matches() { [[ "$1" =~ $2 ]]; }   # matches STRING REGEX (for check)

need_darknet

# ------------------------------------------------------------------ tiny dataset
tiny_pngs 20
sed -i -e "s#^backup=.*#backup=$T/backup/nested#" "$T/tiny.data"   # a folder train must create
# the base name is cut at the first '.': tiny.v1.cfg saves as tiny_*.weights
cp "$FIXTURES/tiny.cfg" "$T/tiny.v1.cfg"
sed -e 's/filters=8/filters=6/' "$T/tiny.v1.cfg" > "$T/other.cfg"
sed -e 's/output=2/output=3/' "$T/tiny.v1.cfg" > "$T/three.cfg"
printf '[net]\nbatch=1\nwidth=16\nheight=16\nchannels=3\n\n[bogus]\nsize=3\n' > "$T/bogus.cfg"
printf 'size=3\n[net]\nbatch=1\n' > "$T/nonet.cfg"
cp "$FIXTURES/not-a-number.cfg" "$T/nan.cfg"
sed -e "s#^train=.*#train=$T/empty.list#" "$T/tiny.data" > "$T/empty.data"; : > "$T/empty.list"
sed -e "s#^valid=.*#valid=$T/nothere.list#" "$T/tiny.data" > "$T/novalid.data"
: > "$T/afile"; sed -e "s#^backup=.*#backup=$T/afile/sub#" "$T/tiny.data" > "$T/badbackup.data"
head -c 300 /dev/urandom > "$T/corrupt.png"
echo "$T/corrupt.png" > "$T/nolabel.list"; sed -e "s#^train=.*#train=$T/nolabel.list#" "$T/tiny.data" > "$T/nolabel.data"
echo "$T/train/nothere_bright.png" > "$T/gone.list"; sed -e "s#^train=.*#train=$T/gone.list#" "$T/tiny.data" > "$T/gone.data"
IMG="$T/test/0_bright.png"

# ------------------------------------------------------------------ usage and bad input
run help "$DN" -h;                        check "darknet -h exits 0 with usage" [ "$rc" -eq 0 ]
check "darknet -h prints usage" grep -q 'usage: darknet' "$T/help.out"
check "darknet -h says this is a CPU build and ignores nothing" \
  bash -c "grep -q 'This is a CPU build' '$T/help.out' && ! grep -qi 'ignored' '$T/help.out'"
run chelp "$DN" classifier -h;            check "classifier -h exits 0" [ "$rc" -eq 0 ]
check "classifier -h lists the commands" grep -q 'predict <data> <cfg> <weights>' "$T/chelp.out"
expect_error noargs 2 'usage' "$DN"
expect_error unknown_cmd 2 "unknown command 'frobnicate'" "$DN" frobnicate
expect_error unknown_sub 2 "unknown command 'tarin'" "$DN" classifier tarin "$T/tiny.data" "$T/tiny.v1.cfg"
expect_error no_cfg_arg 2 'needs <data> and <cfg>' "$DN" classifier train "$T/tiny.data"
expect_error unknown_flag 2 "unknown option '-frob'" "$DN" classifier train "$T/tiny.data" "$T/tiny.v1.cfg" -frob
expect_error flag_no_value 2 '-t needs a value' "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" -t
expect_error flag_bad_value 2 "-seed wants an integer" "$DN" classifier train "$T/tiny.data" "$T/tiny.v1.cfg" -seed x1
expect_error extra_arg 2 "unexpected argument" "$DN" classifier train "$T/tiny.data" "$T/tiny.v1.cfg" w x
expect_error predict_no_weights 2 'needs <data> <cfg> <weights>' "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg"
expect_error missing_data 1 'missing\.data' "$DN" classifier train "$T/missing.data" "$T/tiny.v1.cfg"
expect_error missing_cfg 1 'missing\.cfg' "$DN" classifier train "$T/tiny.data" "$T/missing.cfg"
expect_error unknown_section 1 'bogus\.cfg:7.*\[bogus\]' "$DN" classifier train "$T/tiny.data" "$T/bogus.cfg"
expect_error option_before_net 1 'nonet\.cfg' "$DN" classifier valid "$T/tiny.data" "$T/nonet.cfg"
expect_error not_a_number 1 'nan\.cfg:7' "$DN" classifier valid "$T/tiny.data" "$T/nan.cfg"
expect_error classes_mismatch 1 'classes=2 but .*three\.cfg outputs 3' "$DN" classifier train "$T/tiny.data" "$T/three.cfg"
expect_error empty_list 1 'empty' "$DN" classifier train "$T/empty.data" "$T/tiny.v1.cfg"
expect_error no_label 1 'label' "$DN" classifier train "$T/nolabel.data" "$T/tiny.v1.cfg"
expect_error image_in_list_missing 1 'nothere_bright\.png' "$DN" classifier train "$T/gone.data" "$T/tiny.v1.cfg"
expect_error missing_valid 1 'nothere\.list' "$DN" classifier valid "$T/novalid.data" "$T/tiny.v1.cfg"
expect_error bad_backup 1 'afile' "$DN" classifier train "$T/badbackup.data" "$T/tiny.v1.cfg" -max_batches 1
expect_error missing_weights 1 'nothere\.weights' "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" "$T/nothere.weights"

# ------------------------------------------------------------------ FIFOs and devices: refused before reading
# (opening a FIFO blocks until a writer comes, /dev/zero never ends: each must fail at once)
not_regular() { local name=$1; shift; expect_error "$name" 1 'not a regular file' timeout -k 2 10 "$@"; }
mkfifo "$T/fifo" "$T/fifo.bin" "$T/fifo_bright.png" "$T/f-images-idx3-ubyte"
with() { sed -e "s#^$2=.*#$2=$3#" "$T/tiny.data" > "$T/$1.data"; }   # with NAME KEY VALUE: a .data variant
with fifo_train train "$T/fifo"; with fifo_valid valid "$T/fifo"; with fifo_labels labels "$T/fifo"
echo "$T/fifo_bright.png" > "$T/fifo_img.list"; with fifo_img train "$T/fifo_img.list"; with fifo_valid_img valid "$T/fifo_img.list"
with fifo_cifar train "$T/fifo.bin"; sed -i -e 's/^classes=.*/classes=10/' "$T/fifo_cifar.data"; with fifo_idx train "$T/f-images-idx3-ubyte"
# a real IDX images file (2 images of 16x16) whose labels file is a FIFO
{ printf '\x00\x00\x08\x03\x00\x00\x00\x02\x00\x00\x00\x10\x00\x00\x00\x10'; head -c 512 /dev/zero; } > "$T/g-images-idx3-ubyte"
with fifo_idxlab train "$T/g-images-idx3-ubyte"; echo "train_labels=$T/fifo" >> "$T/fifo_idxlab.data"
not_regular fifo_data "$DN" classifier train "$T/fifo" "$T/tiny.v1.cfg"
not_regular fifo_cfg "$DN" classifier valid "$T/tiny.data" "$T/fifo"
not_regular fifo_weights "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" "$T/fifo"
not_regular fifo_train_list "$DN" classifier train "$T/fifo_train.data" "$T/tiny.v1.cfg"
not_regular fifo_valid_list "$DN" classifier valid "$T/fifo_valid.data" "$T/tiny.v1.cfg"
not_regular fifo_labels "$DN" classifier valid "$T/fifo_labels.data" "$T/tiny.v1.cfg"
not_regular fifo_list_image "$DN" classifier train "$T/fifo_img.data" "$T/tiny.v1.cfg" -max_batches 1
sed -e 's/output=2/output=10/' "$T/tiny.v1.cfg" > "$T/ten.cfg"
not_regular fifo_cifar "$DN" classifier train "$T/fifo_cifar.data" "$T/ten.cfg"
not_regular fifo_idx_images "$DN" classifier train "$T/fifo_idx.data" "$T/tiny.v1.cfg"
not_regular fifo_idx_labels "$DN" classifier train "$T/fifo_idxlab.data" "$T/tiny.v1.cfg"
not_regular zero_cfg "$DN" classifier valid "$T/tiny.data" /dev/zero
not_regular zero_weights "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" /dev/zero
not_regular zero_data "$DN" classifier valid /dev/zero "$T/tiny.v1.cfg"
not_regular dir_cfg "$DN" classifier valid "$T/tiny.data" "$T"
# text files are read whole up to 1 GiB: a larger (sparse) cfg is refused before reading
truncate -s 1025M "$T/huge.cfg"
expect_error huge_cfg 1 'huge\.cfg: too large to read: 1074790400 bytes' timeout -k 2 10 "$DN" classifier valid "$T/tiny.data" "$T/huge.cfg"
rm -f "$T/huge.cfg"

# ------------------------------------------------------------------ train on the tiny set
run train "$DN" classifier train "$T/tiny.data" "$T/tiny.v1.cfg"
check "train exits 0 (rc=$rc: $(tail -n 2 "$T/train.err"))" [ "$rc" -eq 0 ]
mapfile -t L < "$T/train.out"
check "train line 1 is the cfg base name" [ "${L[0]:-}" = "tiny" ]
check "train line 2 is the device count" [ "${L[1]:-}" = "1" ]
check "train line 3 is the optimiser" matches "${L[2]:-}" '^Learning Rate: 0\.05, Momentum: 0\.9, Decay: 0\.0005$'
check "train line 4 is the image count" [ "${L[3]:-}" = "80" ]
check "train line 5 is the crop bounds" matches "${L[4]:-}" '^16 32$'
BATCH_RE='^[0-9]+, [0-9]+\.[0-9]{3}: [0-9]+\.[0-9]{6}, [0-9]+\.[0-9]{6} avg, [0-9]+\.[0-9]{6} rate, [0-9]+\.[0-9]{6} seconds, [0-9]+ images$'
check "100 'Loaded:' lines" [ "$(grep -cE '^Loaded: [0-9]+\.[0-9]{6} seconds$' "$T/train.out")" -eq 100 ]
check "100 batch lines" [ "$(grep -cE "$BATCH_RE" "$T/train.out")" -eq 100 ]
check "first batch line" grep -qE '^1, 0\.100: [0-9.]+, [0-9.]+ avg, 0\.050000 rate, [0-9.]+ seconds, 8 images$' "$T/train.out"
check "rate steps down at 60" grep -qE '^60, 6\.000: .* 0\.005000 rate, .* 480 images$' "$T/train.out"
check "last batch line" grep -qE '^100, 10\.000: .* 800 images$' "$T/train.out"
check "layer table on stderr" grep -q 'layer *filters *size *input *output' "$T/train.err"
check "saving lines on stderr" grep -q "Saving weights to $T/backup/nested/tiny.weights" "$T/train.err"
check "the loss falls" awk -F'[:,]' '/^1, /{a=$3} /^100, /{b=$4} END{exit !(b < a)}' "$T/train.out"
for f in tiny_1.weights tiny_5.weights tiny_10.weights tiny.backup tiny.weights; do
  check "backup file $f" [ -s "$T/backup/nested/$f" ]
done
check "one file per epoch" [ "$(ls "$T/backup/nested" | grep -cE '^tiny_[0-9]+\.weights$')" -eq 10 ]
check "backup and final weights are the same size" [ "$(stat -c %s "$T/backup/nested/tiny.backup")" -eq "$(stat -c %s "$T/backup/nested/tiny.weights")" ]
W="$T/backup/nested/tiny.weights"

# resume: seen comes from the weights; -clear starts again at 0; -quiet drops batch lines
# (these runs save into $T/scratch, leaving $W as trained above)
sed -e "s#^backup=.*#backup=$T/scratch#" "$T/tiny.data" > "$T/scratch.data"
run resume "$DN" classifier train "$T/scratch.data" "$T/tiny.v1.cfg" "$W" -max_batches 102
check "resume exits 0" [ "$rc" -eq 0 ]
check "resume says it loads" grep -q "Loading weights from $W...Done!" "$T/resume.err"
check "resume continues at batch 101" [ "$(grep -E "$BATCH_RE" "$T/resume.out" | head -n 1 | cut -d, -f1)" = "101" ]
run clear "$DN" classifier -quiet train -max_batches 2 "$T/scratch.data" -clear "$T/tiny.v1.cfg" "$W"
check "-clear anywhere exits 0" [ "$rc" -eq 0 ]
check "-quiet prints no batch lines" [ "$(grep -cE "$BATCH_RE|^Loaded:" "$T/clear.out")" -eq 0 ]
check "-clear restarts at batch 1 (progress line)" grep -qE '^\[train\] epoch 0\.20, batch 2/2' "$T/clear.err"
run gpus "$DN" -nogpu classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -gpus 0,1 -i 0 -max_batches 1 -quiet
check "-gpus/-i/-nogpu accepted (rc=$rc)" [ "$rc" -eq 0 ]
check "-gpus: says CPU once" [ "$(grep -c 'CPU build' "$T/gpus.err")" -eq 1 ]
# upstream's global -i N and -nogpu reach classifier train, before or after the command
run dev_i "$DN" -i 1 classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -max_batches 1 -quiet
check "-i 1 before the command is accepted (rc=$rc)" [ "$rc" -eq 0 ]
check "-i 1: says this CPU build trains on the CPU" grep -q -- '-i given, but this is a CPU build: training on the CPU' "$T/dev_i.err"
run dev_nogpu "$DN" classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -max_batches 1 -quiet -nogpu
check "-nogpu after the command is accepted (rc=$rc)" [ "$rc" -eq 0 ]
check "-nogpu: says it trains on the CPU" grep -q -- '-nogpu: training on the CPU' "$T/dev_nogpu.err"
expect_error dev_negative 2 '-i -1: a device number is >= 0' "$DN" -i -1 classifier train "$T/scratch.data" "$T/tiny.v1.cfg"
expect_error dev_evolve 2 '-i and -nogpu are for classifier train' "$DN" -nogpu evolve "$T/tiny.data" "$T/tiny.v1.cfg" -out "$T/ev"
expect_error gpus_garbage 2 'gpus 0,x: expected device numbers' "$DN" classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -gpus 0,x
expect_error gpus_twice 2 'device 1 listed twice' "$DN" classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -gpus 1,0,1
expect_error gpus_negative 2 'expected device numbers' "$DN" classifier train "$T/scratch.data" "$T/tiny.v1.cfg" -gpus -1
for r in a b; do
  sed -e "s#^backup=.*#backup=$T/seed_$r#" "$T/tiny.data" > "$T/seed_$r.data"
  timeout 60 "$DN" classifier train "$T/seed_$r.data" "$T/tiny.v1.cfg" -seed 5 -max_batches 5 -quiet >/dev/null 2>&1
done
check "the same -seed gives the same weights" cmp -s "$T/seed_a/tiny.weights" "$T/seed_b/tiny.weights"
expect_error weights_mismatch 1 'does not match|truncated' "$DN" classifier valid "$T/tiny.data" "$T/other.cfg" "$W"

# valid
run valid "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" "$W"
check "valid exits 0" [ "$rc" -eq 0 ]
check "valid running line" grep -qE '^19: top 1: [0-9]+\.[0-9]{6}, top 2: 1\.000000$' "$T/valid.out"
check "valid summary, top-1 >= 0.9" awk '/^valid: 20 images, top 1: /{ok = ($5+0 >= 0.9)} END{exit !ok}' "$T/valid.out"
run valid_v "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" "$W" -verbose -t 1
check "valid -verbose prints every image" [ "$(grep -cE '^[0-9]+: top 1: [0-9.]+, top 1: [0-9.]+$' "$T/valid_v.out")" -eq 20 ]

# predict
run predict "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg" "$W" "$IMG"
check "predict exits 0" [ "$rc" -eq 0 ]
check "predict prints top-2 lines" [ "$(grep -cE '^ ?[0-9]{1,3}\.[0-9]{2}%: (bright|dark)$' "$T/predict.out")" -eq 2 ]
check "predict gets it right" matches "$(head -n 1 "$T/predict.out")" '%: bright$'
check "predict timing on stderr" grep -qE "^$IMG: Predicted in [0-9]+\.[0-9]+ seconds\.$" "$T/predict.err"
printf '%s\n\n%s\n' "$T/test/1_dark.png" "$T/test/2_bright.png" | timeout 60 "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg" "$W" -t 1 >"$T/stdin.out" 2>"$T/stdin.err"; rc=$?
check "predict from stdin exits 0" [ "$rc" -eq 0 ]
check "predict prompts until EOF" [ "$(grep -o 'Enter Image Path: ' "$T/stdin.out" | wc -l)" -eq 4 ]
check "predict from stdin answers" [ "$(grep -oE '[0-9.]+%: (bright|dark)' "$T/stdin.out" | cut -d' ' -f2 | tr '\n' ' ')" = "dark bright " ]
expect_error missing_image 1 'nothere\.png' "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg" "$W" "$T/nothere.png"
expect_error corrupt_image 1 'corrupt\.png' "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg" "$W" "$T/corrupt.png"
not_regular fifo_predict_image "$DN" classifier predict "$T/tiny.data" "$T/tiny.v1.cfg" "$W" "$T/fifo"
not_regular fifo_valid_image "$DN" classifier valid "$T/fifo_valid_img.data" "$T/tiny.v1.cfg" "$W"

# NaN weights: valid and predict fail (no accuracies, no "nan%") with a numeric error naming the file
# .weights: int32 major 0, minor 2, revision 0, uint64 seen 0, then float32s
WHEADER='\x00\x00\x00\x00\x02\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00'
printf '[net]\nbatch=1\nwidth=16\nheight=16\nchannels=3\n\n[avgpool]\n\n[connected]\noutput=2\nactivation=linear\n\n[softmax]\n' > "$T/avg.cfg"
{ printf "$WHEADER"; for _ in 1 2 3 4 5 6 7 8; do printf '\x00\x00\xc0\x7f'; done; } > "$T/nan.weights"   # 2 biases + 2x3 weights
NOT_FINITE="nan\.weights: the network's outputs are not finite"
expect_error nan_valid 1 "$NOT_FINITE" "$DN" classifier valid "$T/tiny.data" "$T/avg.cfg" "$T/nan.weights"
check "NaN valid prints no accuracy" [ "$(grep -c 'top 1' "$T/nan_valid.out")" -eq 0 ]
expect_error nan_predict 1 "$NOT_FINITE" "$DN" classifier predict "$T/tiny.data" "$T/avg.cfg" "$T/nan.weights" "$IMG"
check "NaN predict prints no nan%" [ "$(grep -ci 'nan' "$T/nan_predict.out")" -eq 0 ]

# a 1-channel network fed an RGB image reads its red plane, as upstream (which loads
# every classifier image as RGB): global average -> connected -> softmax, with known
# weights: p(bright) = softmax(10 m - 5, 5 - 10 m) of the mean m of the plane it sees.
# Red 230 (m = 0.9) says bright; the luma (0.33) would say dark.
"$T/gen" -rgb "$T/red_bright.png" 16 230 20 20
sed -e 's/^channels=3/channels=1/' "$T/avg.cfg" > "$T/gray.cfg"
{ printf "$WHEADER"; printf '\x00\x00\xa0\xc0\x00\x00\xa0\x40\x00\x00\x20\x41\x00\x00\x20\xc1'; } > "$T/gray.weights"
run red "$DN" classifier predict "$T/tiny.data" "$T/gray.cfg" "$T/gray.weights" "$T/red_bright.png"
check "1-channel predict reads the red plane (rc=$rc: $(head -n 1 "$T/red.out"))" grep -qx '99.97%: bright' "$T/red.out"
echo "$T/red_bright.png" > "$T/red.list"; with red valid "$T/red.list"
run red_valid "$DN" classifier valid "$T/red.data" "$T/gray.cfg" "$T/gray.weights"
check "1-channel valid reads the red plane" grep -qE '^valid: 1 images, top 1: 1\.0000' "$T/red_valid.out"
if [ -x "$UPSTREAM" ]; then
  (cd "$T" && timeout 60 "$UPSTREAM" classifier predict tiny.data gray.cfg gray.weights red_bright.png >"$T/red_up.out" 2>"$T/red_up.err")
  check "1-channel predict prints what upstream prints ($(tr '\n' ' ' < "$T/red_up.out"))" cmp -s "$T/red.out" "$T/red_up.out"
else
  echo "skipping the upstream channel check: $UPSTREAM not installed (scripts/setup installs it)"
fi

# SIGINT saves <base>.backup and exits 130; training forever (-max_batches 0) until then
sed -e "s#^backup=.*#backup=$T/sig#" "$T/tiny.data" > "$T/sig.data"
# (signalled directly, not through timeout(1), which would pass the signal on
# to the whole process group as well: a second SIGINT kills at once, by design)
"$DN" classifier train "$T/sig.data" "$T/tiny.v1.cfg" -max_batches 0 -quiet >"$T/sig.out" 2>"$T/sig.err" &
pid=$!
( sleep 60; kill -9 $pid 2>/dev/null ) & watchdog=$!
for _ in $(seq 300); do [ -s "$T/sig/tiny_1.weights" ] && break; sleep 0.1; done
kill -INT $pid; wait $pid; rc=$?
kill $watchdog 2>/dev/null; wait $watchdog 2>/dev/null
check "SIGINT exits 130 (rc=$rc)" [ "$rc" -eq 130 ]
check "SIGINT saves the backup" [ -s "$T/sig/tiny.backup" ]
check "SIGINT says so" grep -q 'stopped by SIGINT' "$T/sig.err"

# divergence: a huge learning rate gives NaN/Inf, a clear message and exit 1
sed -e 's/^learning_rate=.*/learning_rate=1e30/' "$T/tiny.v1.cfg" > "$T/diverge.cfg"
expect_error diverge 1 'diverged' "$DN" classifier train "$T/sig.data" "$T/diverge.cfg" -quiet

# an image of the list goes missing mid-run: exit 1, but the steps trained so far are
# saved as <base>.backup (the periodic backup's name) and that file loads
{ head -n 20 "$T/train.list"; echo "$T/train/gone_bright.png"; tail -n 20 "$T/train.list"; } > "$T/midgone.list"
sed -e "s#^train=.*#train=$T/midgone.list#" -e "s#^backup=.*#backup=$T/midgone#" "$T/tiny.data" > "$T/midgone.data"
expect_error midgone 1 "saved the weights trained so far to $T/midgone/tiny\.backup" \
  "$DN" classifier train "$T/midgone.data" "$T/tiny.v1.cfg" -quiet
check "missing image mid-run: the backup is there" [ -s "$T/midgone/tiny.backup" ]
check "missing image mid-run: names the image" grep -q "gone_bright\.png: cannot open image" "$T/midgone.err"
run midgone_valid "$DN" classifier valid "$T/tiny.data" "$T/tiny.v1.cfg" "$T/midgone/tiny.backup"
check "missing image mid-run: the backup loads (rc=$rc)" [ "$rc" -eq 0 ]

# ------------------------------------------------------------------ CIFAR-10 binary files
for i in 1 2; do "$T/gen" -cifar "$T/c$i.bin" 64 $i; done
"$T/gen" -cifar "$T/ct.bin" 20 3
cat > "$T/cifar.data" <<EOF
classes=10
train=$T/c1.bin,$T/c2.bin
valid=$T/ct.bin
labels=$PWD/cfg/cifar10.labels
backup=$T/cifar
EOF
sed -e 's/^batch=.*/batch=16/' cfg/cifar10-small.cfg > "$T/cifar10-small.cfg"   # the shipped net, smaller batch
run cifar "$DN" classifier train "$T/cifar.data" "$T/cifar10-small.cfg" -max_batches 2
check "cifar10-small.cfg trains on .bin files (rc=$rc: $(tail -n 1 "$T/cifar.err"))" [ "$rc" -eq 0 ]
check "cifar train counts both files" [ "$(sed -n 4p "$T/cifar.out")" = "128" ]
run cifar_valid "$DN" classifier valid "$T/cifar.data" "$T/cifar10-small.cfg" "$T/cifar/cifar10-small.weights"
check "cifar valid (rc=$rc)" grep -qE '^valid: 20 images, top 1: ' "$T/cifar_valid.out"

# ------------------------------------------------------------------ Fashion-MNIST subset
if [ -r "$FASHION/train-images-idx3-ubyte.gz" ] && [ -r "$FASHION/t10k-images-idx3-ubyte.gz" ]; then
  # no augmentation: it slows a run this short down
  sed -e "s#^backup=.*#backup=$T/fashion#" -e "s#^labels=.*#labels=$PWD/cfg/fashion.labels#" \
      -e '/^flip=/d' -e '/^crop_pad=/d' cfg/fashion.data > "$T/fashion.data"
  batches=400; [[ "$BUILD" == *san* ]] && batches=250
  cat > "$T/fmini.cfg" <<EOF
[net]
batch=32
width=28
height=28
channels=1
learning_rate=0.05
momentum=0.9
decay=0.0005
policy=poly
power=2
max_batches=$batches

[convolutional]
batch_normalize=1
filters=8
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[convolutional]
batch_normalize=1
filters=16
size=3
stride=1
pad=1
activation=leaky

[maxpool]
size=2
stride=2

[connected]
output=10
activation=linear

[softmax]
EOF
  t0=$(date +%s)
  run fashion "$DN" classifier train "$T/fashion.data" "$T/fmini.cfg" -max_rows 3000 -quiet
  check "fashion subset trains (rc=$rc: $(tail -n 1 "$T/fashion.err"))" [ "$rc" -eq 0 ]
  check "fashion subset uses 3000 images" [ "$(sed -n 4p "$T/fashion.out")" = "3000" ]
  run fashion_valid "$DN" classifier valid "$T/fashion.data" "$T/fmini.cfg" "$T/fashion/fmini.weights" -max_rows 2000
  acc=$(awk '/^valid: /{print $6}' "$T/fashion_valid.out" | tr -d ,)
  echo "fashion-mnist subset: $batches batches on 3000 images, test top-1 ${acc:-?} on 2000 images, $(( $(date +%s) - t0 )) s"
  check "fashion subset beats chance by far (top-1 ${acc:-none} > 0.6)" awk -v a="${acc:-0}" 'BEGIN{exit !(a > 0.6)}'
else
  echo "skipping the Fashion-MNIST run: $FASHION not installed (scripts/setup installs it)"
fi

echo "test_cli.sh: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
