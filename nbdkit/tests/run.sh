#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of nbdkit-ozbd-plugin with real NBD clients (nbdinfo, nbdcopy,
# nbdsh, qemu-img, qemu-io, fio) on a Unix socket, against a real Ozone cluster.
#
# Owns: one fresh volume under $OZBD_NBD_TEST_BASE (default
#   ofs://$OZONE_OM_ADDRESS/nbdtest/bkt), a temp dir, and the nbdkit processes it
#   starts (known by pid file). Deletes the volume and the temp dir at exit
#   (OZBD_NBD_KEEP=1 keeps them).
# Never: stops the cluster, touches other volumes, kills processes it did not start.
#
# Needs: eval "$(scripts/ozone-local env)" (OZONE_OM_ADDRESS, CLASSPATH, ...).
# Without OZONE_OM_ADDRESS it prints SKIPPED and exits 0, unless OZBD_REQUIRE_OZONE=1.
# Prints one PASS/FAIL line per check and ends with "N passed, N failed".
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NBDDIR=$(dirname "$HERE")
ROOT=$(dirname "$NBDDIR")
PLUGIN=${OZBD_NBD_PLUGIN:-$NBDDIR/nbdkit-ozbd-plugin.so}
OZBD_CLI=${OZBD_CLI:-$ROOT/target/release/ozbd}

if [[ -z "${OZONE_OM_ADDRESS:-}" ]]; then
  cat >&2 <<'EOF'
########################################################################
###  SKIPPED: nbdkit/tests/run.sh needs a running Ozone cluster.      ###
###  Run: scripts/ozone-local start; eval "$(scripts/ozone-local env)"###
########################################################################
EOF
  [[ "${OZBD_REQUIRE_OZONE:-0}" == 1 ]] && { echo "OZBD_REQUIRE_OZONE=1: failing" >&2; exit 1; }
  exit 0
fi

for tool in nbdkit nbdinfo nbdcopy qemu-img qemu-io sha256sum python3; do
  command -v "$tool" >/dev/null || { echo "FAIL: $tool not installed" >&2; echo "0 passed, 1 failed"; exit 1; }
done
if [[ ! -f "$PLUGIN" ]]; then
  make -C "$NBDDIR" >&2 || { echo "FAIL: cannot build the plugin"; echo "0 passed, 1 failed"; exit 1; }
fi

PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
# check NAME CMD...: PASS if CMD succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
note() { echo "      $*"; }

WORK=$(mktemp -d /tmp/ozbd-nbd-test.XXXXXX)
cd "$WORK" || exit 1   # fio and friends drop state files in the cwd
BASE=${OZBD_NBD_TEST_BASE:-ofs://$OZONE_OM_ADDRESS/nbdtest/bkt}
NAME=t$(date +%s)-$$
URI=$BASE/$NAME
SOCK=$WORK/nbd.sock
PIDF=$WORK/nbdkit.pid
LOG=$WORK/nbdkit.log
NBD="nbd+unix:///?socket=$SOCK"
MiB=$((1024 * 1024))
VOLSIZE=$((256 * MiB))
CHUNK=$MiB

server_pid() { [[ -s $PIDF ]] && cat "$PIDF"; }

# start_server ARGS...: start nbdkit in the background (it forks; the engine and
# its JVM start in .after_fork) and wait until it answers.
start_server() {
  rm -f "$PIDF" "$SOCK"
  echo "=== nbdkit $* ($(date +%T))" >>"$LOG"
  nbdkit -U "$SOCK" -P "$PIDF" --log=stderr "$PLUGIN" uri="$URI" "$@" 2>>"$LOG" || return 1
  local i
  for ((i = 0; i < 240; i++)); do
    if [[ -S $SOCK ]] && nbdinfo --size "$NBD" >/dev/null 2>&1; then return 0; fi
    local pid; pid=$(server_pid)
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then return 1; fi
    sleep 0.5
  done
  return 1
}

# stop_server [SIGNAL]: signal our nbdkit and wait for it to exit.
stop_server() {
  local sig=${1:-TERM} pid i
  pid=$(server_pid) || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 240; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$PIDF"; return 0; }
    sleep 0.25
  done
  return 1
}

cleanup() {
  stop_server TERM
  if [[ "${OZBD_NBD_KEEP:-0}" == 1 ]]; then
    echo "kept: $URI and $WORK" >&2
  else
    [[ -x $OZBD_CLI ]] && "$OZBD_CLI" delete "$URI" >/dev/null 2>&1
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

# Bytes the server reports as allocated (extents that are not holes).
alloc_bytes() {
  nbdinfo --map --json "$NBD" | python3 -c '
import json, sys
print(sum(e["length"] for e in json.load(sys.stdin) if not e["type"] & 1))'
}
# nbdinfo --json field of the (only) export.
info_field() {
  nbdinfo --json "$NBD" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin)["exports"][0].get(sys.argv[1])))' "$1"
}
vol_sha() { nbdcopy "$NBD" - | sha256sum | cut -d' ' -f1; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
mibps() { python3 -c "print(f'{$1 / $MiB / ($(now) - $2):.1f}')"; }

# expect_error NAME PATTERN MAX_SECONDS ARGS...: nbdkit with ARGS must fail within
# MAX_SECONDS and say something matching PATTERN.
expect_error() {
  local name=$1 pat=$2 max=$3; shift 3
  local out=$WORK/err.out t0 rc
  t0=$(now)
  rm -f "$WORK/err.sock"
  # -f and no --run: with --run the exit status would be the command's.
  timeout $((max + 30)) nbdkit -f -U "$WORK/err.sock" "$PLUGIN" "$@" >"$out" 2>&1
  rc=$?
  local took; took=$(elapsed "$t0")
  if [[ $rc -ne 0 ]] && grep -Eq -- "$pat" "$out" &&
     python3 -c "import sys; sys.exit(0 if $took <= $max else 1)"; then
    pass "$name (exit $rc in ${took}s)"
    note "$(grep -E -m1 -- "$pat" "$out")"
  else
    fail "$name (exit $rc in ${took}s, want failure matching /$pat/ within ${max}s)"
    sed 's/^/      | /' "$out" | tail -5
  fi
}

echo "# nbdkit $(nbdkit --version | cut -d' ' -f2), volume $URI, work dir $WORK"

# ------------------------------------------------------------ parameter errors
expect_error "error: uri= missing" "uri=.*is required" 20 size=1M
expect_error "error: bad block_size" "block_size must be 512 or 4096" 20 uri="$URI" block_size=1000
expect_error "error: bad chunk_size" "chunk_size must be a power of two" 20 uri="$URI" chunk_size=3M
expect_error "error: bad size" "could not parse size|size" 20 uri="$URI" size=12Q
expect_error "error: unknown parameter" "unknown parameter 'bogus'" 20 uri="$URI" bogus=1
expect_error "error: bad uri scheme" "must start with ofs:// or file://" 20 uri="http://x/y"
expect_error "error: retry out of range" "retry must be 0 to 3600 seconds" 20 uri="$URI" retry=7200
out=$WORK/cp.out
if env -u CLASSPATH timeout 60 nbdkit -f -U "$WORK/cp.sock" "$PLUGIN" uri="$URI" >"$out" 2>&1; then
  fail "error: CLASSPATH unset in the environment"
elif grep -q "CLASSPATH is not set" "$out"; then
  pass "error: CLASSPATH unset in the environment"
else
  fail "error: CLASSPATH unset in the environment"; sed 's/^/      | /' "$out" | tail -3
fi
expect_error "error: missing volume and no size" "(no volume at|does not exist).*pass size= to create it" 120 uri="$BASE/missing-$NAME"
expect_error "error: unreachable OM, timeout=5 (bounded)" "cannot open" 60 \
  uri="ofs://127.0.0.1:1/nbdtest/bkt/$NAME" size=1M timeout=5
expect_error "error: create=new without size" "create=new needs size" 20 uri="$URI" create=new

# ------------------------------------------------------------ create and describe
t0=$(now)
if start_server size=$VOLSIZE block_size=4096 chunk_size=$CHUNK; then
  pass "create volume and serve it (ready in $(elapsed "$t0")s, JVM started after fork)"
else
  fail "create volume and serve it"; tail -20 "$LOG"; echo "$PASSED passed, $FAILED failed"; exit 1
fi
check "nbdkit forked into the background (pid file, daemon)" test -n "$(server_pid)"
check "nbdinfo: size = 256 MiB" test "$(info_field export-size)" = "$VOLSIZE"
check "nbdinfo: block_size_minimum = 4096" test "$(info_field block_size_minimum)" = 4096
check "nbdinfo: block_size_preferred = chunk size (1 MiB)" test "$(info_field block_size_preferred)" = "$CHUNK"
check "nbdinfo: block_size_maximum = 32 MiB" test "$(info_field block_size_maximum)" = $((32 * MiB))
for cap in can_multi_conn can_flush can_fua can_trim can_zero; do
  check "nbdinfo: $cap" test "$(info_field $cap)" = true
done
check "nbdinfo --map: new volume is all hole,zero" test "$(alloc_bytes)" = 0

# ------------------------------------------------------------ nbdcopy in/out
head -c $((64 * MiB)) /dev/urandom >"$WORK/rand.img"
t0=$(now)
if nbdcopy --flush "$WORK/rand.img" "$NBD"; then
  pass "nbdcopy 64 MiB random image in ($(mibps $((64 * MiB)) "$t0") MiB/s)"
else fail "nbdcopy in"; fi
t0=$(now)
if nbdcopy "$NBD" "$WORK/out.img"; then
  pass "nbdcopy whole volume out ($(mibps $VOLSIZE "$t0") MiB/s for 256 MiB, 64 MiB allocated)"
else fail "nbdcopy out"; fi
check "nbdcopy: checksum of the 64 MiB read back matches" \
  test "$(head -c $((64 * MiB)) "$WORK/out.img" | sha256sum)" = "$(sha256sum <"$WORK/rand.img")"
check "nbdcopy: the rest of the volume reads as zeros" \
  cmp -s <(tail -c +$((64 * MiB + 1)) "$WORK/out.img") <(head -c $((192 * MiB)) /dev/zero)
check "nbdinfo --map: exactly 64 MiB allocated after the copy" test "$(alloc_bytes)" = $((64 * MiB))

# multi-conn: nbdcopy with 2 connections, writing and flushing, read back with 2
head -c $((64 * MiB)) /dev/urandom >"$WORK/rand2.img"
t0=$(now)
if nbdcopy --connections=2 --flush "$WORK/rand2.img" "$NBD"; then
  pass "multi-conn: nbdcopy --connections=2 --flush 64 MiB in ($(mibps $((64 * MiB)) "$t0") MiB/s)"
else fail "multi-conn: nbdcopy --connections=2 in"; fi
check "multi-conn: 2-connection read back matches" \
  test "$(nbdcopy --connections=2 "$NBD" - | head -c $((64 * MiB)) | sha256sum)" = "$(sha256sum <"$WORK/rand2.img")"

# multi-conn: two concurrent qemu-io clients, each writing and flushing its region
qemu-io -f raw "$NBD" -c "write -P 0x11 $((70 * MiB)) $((3 * MiB + 512))" -c flush >"$WORK/q1" 2>&1 &
p1=$!
qemu-io -f raw "$NBD" -c "write -P 0x22 $((74 * MiB + 4096)) $((2 * MiB))" -c flush >"$WORK/q2" 2>&1 &
p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
check "multi-conn: two concurrent qemu-io writers + flush" test $r1 = 0 -a $r2 = 0
if qemu-io -f raw "$NBD" -c "read -P 0x11 $((70 * MiB)) $((3 * MiB + 512))" \
     -c "read -P 0x22 $((74 * MiB + 4096)) $((2 * MiB))" \
     -c "read -P 0 $((73 * MiB + 512)) $((MiB - 512))" >"$WORK/q3" 2>&1 &&
   ! grep -q "Pattern verification failed" "$WORK/q3"; then
  pass "multi-conn: a third connection sees both writers' data"
else fail "multi-conn: a third connection sees both writers' data"; cat "$WORK/q3"; fi

# ------------------------------------------------------------ qemu-img convert/compare
truncate -s $VOLSIZE "$WORK/sparse.img"
dd if=/dev/urandom of="$WORK/sparse.img" bs=1M count=16 conv=notrunc status=none
dd if=/dev/urandom of="$WORK/sparse.img" bs=1M count=1 seek=100 conv=notrunc status=none
t0=$(now)
if qemu-img convert -n -f raw -O raw "$WORK/sparse.img" "$NBD"; then
  pass "qemu-img convert -n raw image (16 MiB + 1 MiB data, rest zero) -> volume ($(elapsed "$t0")s)"
else fail "qemu-img convert"; fi
if out=$(qemu-img compare -f raw -F raw "$WORK/sparse.img" "$NBD" 2>&1) && [[ $out == *"identical"* ]]; then
  pass "qemu-img compare: $out"
else fail "qemu-img compare: $out"; fi
check "nbdinfo --map: extents shrank to the 17 data chunks (zeroed chunks dropped)" \
  test "$(alloc_bytes)" = $((17 * MiB))
map=$(nbdinfo --map "$NBD")
check "nbdinfo --map: data at 0..16M and 100M..101M, holes elsewhere" test "$(echo "$map" | awk '{print $1, $2, $3}' | tr '\n' ' ')" = \
  "0 16777216 0 16777216 88080384 3 104857600 1048576 0 105906176 162529280 3 "
echo "$map" | sed 's/^/      /'

# ------------------------------------------------------------ qemu-io at unaligned offsets
U=$((200 * MiB))
if qemu-io -f raw "$NBD" -c "write -P 0xab $((U + 1000)) 5000" -c "read -P 0xab $((U + 1000)) 5000" \
     -c "read -P 0 $U 1000" -c "read -P 0 $((U + 6000)) $((8192 - 6000))" >"$WORK/qio" 2>&1 &&
   ! grep -q "Pattern verification failed" "$WORK/qio"; then
  pass "qemu-io: write -P 0xab 1000 5000 (unaligned) reads back, neighbours still zero"
else fail "qemu-io unaligned write/read"; cat "$WORK/qio"; fi
if qemu-io -f raw "$NBD" -c "write -P 0xcd $((U + 4095)) 2" -c "read -P 0xcd $((U + 4095)) 2" \
     -c "read -P 0xab $((U + 1000)) 3095" -c "read -P 0xab $((U + 4097)) 1903" >"$WORK/qio2" 2>&1 &&
   ! grep -q "Pattern verification failed" "$WORK/qio2"; then
  pass "qemu-io: 2-byte write across a block boundary keeps the bytes around it"
else fail "qemu-io cross-boundary write"; cat "$WORK/qio2"; fi

# The same, bypassing the client's own read-modify-write: libnbd with strict
# alignment off sends the unaligned request to the plugin as is.
# nbdsh is "python3 -m nbd": find a python3 that has Debian's python3-libnbd.
NBDSH=()
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import nbd' 2>/dev/null; then NBDSH=("$py" -m nbd); break; fi
done
if [[ ${#NBDSH[@]} -gt 0 ]]; then
  if "${NBDSH[@]}" -u "$NBD" -c "
import threading
h.set_strict_mode(0)
B = $((210 * MiB))
h.pwrite(b'\xee' * 5000, B + 1000)
assert h.pread(5000, B + 1000) == b'\xee' * 5000
assert h.pread(1000, B) == bytes(1000)
assert h.pread(8192 - 6000, B + 6000) == bytes(8192 - 6000)
h.zero(3000, B + 2000)
assert h.pread(8192, B) == bytes(1000) + b'\xee' * 1000 + bytes(3000) + b'\xee' * 1000 + bytes(2192)
# two connections writing disjoint bytes of one block at once: both kept
import nbd
def writer(val, off):
    g = nbd.NBD(); g.set_strict_mode(0); g.connect_uri('$NBD')
    for i in range(50):
        g.pwrite(bytes([val]) * 7, B + 8192 + off + i * 16)
    g.shutdown()
ts = [threading.Thread(target=writer, args=(0x31, 0)), threading.Thread(target=writer, args=(0x32, 8))]
[t.start() for t in ts]; [t.join() for t in ts]
d = h.pread(800, B + 8192)
for i in range(50):
    assert d[i*16:i*16+7] == b'\x31' * 7 and d[i*16+8:i*16+15] == b'\x32' * 7, i
" >"$WORK/nbdsh.out" 2>&1; then
    pass "nbdsh (strict mode off): unaligned pwrite/pread/zero served by the plugin; 2 connections racing on one block keep both"
  else fail "nbdsh unaligned requests"; cat "$WORK/nbdsh.out"; fi
  if "${NBDSH[@]}" -u "$NBD" -c "
import nbd
a = nbd.NBD(); a.connect_uri('$NBD'); b = nbd.NBD(); b.connect_uri('$NBD')
a.pwrite(b'\x5a' * 65536, $((230 * MiB)))
b.flush()
c = nbd.NBD(); c.connect_uri('$NBD')
assert c.pread(65536, $((230 * MiB))) == b'\x5a' * 65536
a.pwrite(b'\x5b' * 4096, $((230 * MiB)), nbd.CMD_FLAG_FUA)
assert b.pread(4096, $((230 * MiB))) == b'\x5b' * 4096
" >"$WORK/nbdsh2.out" 2>&1; then
    pass "nbdsh: write on conn A, flush on conn B, read on conn C; FUA write visible to B"
  else fail "nbdsh cross-connection flush/FUA"; cat "$WORK/nbdsh2.out"; fi
else
  echo "SKIP: python3-libnbd (nbdsh) not installed (apt-get install python3-libnbd): plugin-side unaligned checks not run"
fi

# ------------------------------------------------------------ fio nbd engine
if fio --enghelp=nbd >/dev/null 2>&1; then
  if fio --name=ozbd --ioengine=nbd --uri="$NBD" --rw=randwrite --bs=4k --iodepth=16 \
       --offset=$((128 * MiB)) --size=$((2 * MiB)) --verify=crc32c --verify_fatal=1 \
       --do_verify=1 --verify_state_save=0 --output-format=terse --terse-version=3 >"$WORK/fio.out" 2>&1; then
    iops=$(grep '^3;' "$WORK/fio.out" | awk -F';' '{print $49}')
    pass "fio nbd engine: randwrite 4k qd16 over 2 MiB (1 MiB chunks: every 4k write is a chunk update) + crc32c verify (write IOPS $iops)"
  else fail "fio randwrite+verify"; tail -5 "$WORK/fio.out"; fi
  if fio --name=ozbd --ioengine=nbd --uri="$NBD" --rw=randread --bs=64k --iodepth=8 \
       --offset=$((128 * MiB)) --size=$((16 * MiB)) --output-format=terse --terse-version=3 >"$WORK/fio2.out" 2>&1; then
    bw=$(grep '^3;' "$WORK/fio2.out" | awk -F';' '{print $7}')
    pass "fio nbd engine: randread 64k qd8 (read $((bw / 1024)) MiB/s)"
  else fail "fio randread"; tail -5 "$WORK/fio2.out"; fi
  t0=$(now)
  if fio --name=ozbd --ioengine=nbd --uri="$NBD" --rw=write --bs=1M --iodepth=8 \
       --offset=$((128 * MiB)) --size=$((16 * MiB)) --output-format=terse --terse-version=3 >"$WORK/fio3.out" 2>&1; then
    bw=$(grep '^3;' "$WORK/fio3.out" | awk -F';' '{print $48}')
    pass "fio nbd engine: sequential write 1M qd8 over 16 MiB (write $((bw / 1024)) MiB/s)"
  else fail "fio seq write"; tail -5 "$WORK/fio3.out"; fi
else
  echo "SKIP: fio has no nbd engine"
fi

# ------------------------------------------------------------ trim and zero
T=$((160 * MiB))
before=$(alloc_bytes)
qemu-io -f raw "$NBD" -c "write -P 0x5a $T $((8 * MiB))" >/dev/null 2>&1
mid=$(alloc_bytes)
check "trim/zero: 8 MiB written adds 8 chunks to the map" test "$mid" = $((before + 8 * MiB))
if qemu-io -f raw "$NBD" -c "discard $T $((4 * MiB))" -c "write -z $((T + 4 * MiB)) $((4 * MiB))" \
     -c "read -P 0 $T $((8 * MiB))" >"$WORK/trim" 2>&1 && ! grep -q "Pattern verification failed" "$WORK/trim"; then
  pass "trim/zero: discard 4 MiB + write -z 4 MiB, then reads are zeros"
else fail "trim/zero read back"; cat "$WORK/trim"; fi
check "trim/zero: extents shrink back (allocated $before again)" test "$(alloc_bytes)" = "$before"
if qemu-io -f raw "$NBD" -c "write -P 0x5a $T $((MiB))" -c "write -z $((T + 4096)) 8192" \
     -c "read -P 0x5a $T 4096" -c "read -P 0 $((T + 4096)) 8192" -c "read -P 0x5a $((T + 12288)) 4096" \
     >"$WORK/zero2" 2>&1 && ! grep -q "Pattern verification failed" "$WORK/zero2"; then
  pass "trim/zero: partial-chunk write -z zeros only its blocks"
else fail "trim/zero partial"; cat "$WORK/zero2"; fi

# ------------------------------------------------------------ restart
sha1=$(vol_sha)
map1=$(nbdinfo --map "$NBD")
check "restart: nbdkit exits on SIGTERM (engine closed)" stop_server TERM
t0=$(now)
if start_server; then pass "restart: reopen without size= (ready in $(elapsed "$t0")s)"; else fail "restart: reopen"; tail -5 "$LOG"; fi
check "restart: whole-volume checksum unchanged" test "$(vol_sha)" = "$sha1"
check "restart: extent map unchanged" test "$(nbdinfo --map "$NBD")" = "$map1"

# Completed writes are durable: SIGKILL right after they complete, no flush.
qemu-io -f raw "$NBD" -c "write -P 0x77 $((220 * MiB + 512)) $((2 * MiB))" >/dev/null 2>&1
check "restart: SIGKILL nbdkit right after a completed (unflushed) write" stop_server KILL
start_server
if qemu-io -f raw "$NBD" -c "read -P 0x77 $((220 * MiB + 512)) $((2 * MiB))" >"$WORK/k" 2>&1 &&
   ! grep -q "Pattern verification failed" "$WORK/k"; then
  pass "restart: after SIGKILL the completed write is there"
else fail "restart: completed write lost after SIGKILL"; cat "$WORK/k"; fi

# SIGKILL in the middle of a copy, reconnect, finish the copy.
nbdcopy --flush "$WORK/rand.img" "$NBD" >/dev/null 2>&1 &
cp_pid=$!
sleep 2
stop_server KILL
wait $cp_pid 2>/dev/null
if start_server && nbdcopy --flush "$WORK/rand.img" "$NBD" &&
   test "$(nbdcopy "$NBD" - | head -c $((64 * MiB)) | sha256sum)" = "$(sha256sum <"$WORK/rand.img")"; then
  pass "restart: SIGKILL mid-nbdcopy, restart, copy again: checksum matches"
else fail "restart: SIGKILL mid-copy and recopy"; fi

stop_server TERM
expect_error "error: create=new on an existing volume" "exist" 120 uri="$URI" size=$VOLSIZE create=new
expect_error "error: chunk_size= not matching the volume" "chunk" 120 uri="$URI" chunk_size=4M
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
