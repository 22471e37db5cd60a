#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# End-to-end tests of nbdkit-ozbd-plugin with real NBD clients (nbdinfo, nbdcopy,
# nbdsh, qemu-img, qemu-io, fio, nbdfuse + e2fsprogs) on a Unix socket, against a
# real Ozone cluster.
#
# Owns: one fresh volume under $OZBD_NBD_TEST_BASE (default
#   ofs://$OZONE_OM_ADDRESS/nbdtest/bkt), a temp dir (with the FUSE mount point
#   of the nbdfuse check), and the nbdkit and nbdfuse processes it starts (known
#   by pid file or $!). Deletes the volume and the temp dir at exit
#   (OZBD_NBD_KEEP=1 keeps them).
# Never: stops the cluster, touches other volumes, kills processes it did not
#   start, listens on TCP (Unix sockets only), sleeps to synchronise (every wait
#   polls for its condition with a bound), counts a check that could not run as
#   passed.
#
# Needs: eval "$(scripts/ozone-local env)" (OZONE_OM_ADDRESS, CLASSPATH, ...).
# Without OZONE_OM_ADDRESS it prints SKIPPED and exits 0, unless OZBD_REQUIRE_OZONE=1.
# Prints one PASS/FAIL line per check, "SKIPPED: nbdkit-<check>: <reason>" for a
# check that cannot run here (a missing tool, no /dev/fuse), and ends with
# "nbdkit: N passed, N failed" plus ", N skipped" when any were skipped. Exit
# status: 1 if any failed (or, with OZBD_NBD_NO_SKIP=1, if any were skipped).
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NBDDIR=$(dirname "$HERE")
ROOT=$(dirname "$NBDDIR")
PLUGIN=${OZBD_NBD_PLUGIN:-$NBDDIR/nbdkit-ozbd-plugin.so}
OZBD_CLI=${OZBD_CLI:-$ROOT/target/release/ozbd}

PASSED=0
FAILED=0
SKIPPED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }
# skip SLUG REASON: a check that cannot run here; never counted as passed.
skip() { SKIPPED=$((SKIPPED + 1)); echo "SKIPPED: nbdkit-$1: $2"; }
# check NAME CMD...: PASS if CMD succeeds.
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
note() { echo "      $*"; }
summary() {
  local s="nbdkit: $PASSED passed, $FAILED failed"
  [[ $SKIPPED -gt 0 ]] && s+=", $SKIPPED skipped"
  echo "$s"
  [[ $FAILED -eq 0 ]] || return 1
  [[ $SKIPPED -eq 0 || "${OZBD_NBD_NO_SKIP:-0}" != 1 ]]
}
# requires "SLUG..." TOOL...: 0 if every TOOL is installed; otherwise one
# SKIPPED line per SLUG (the checks that need the tool) and 1.
requires() {
  local slugs=$1 tool slug; shift
  for tool in "$@"; do
    if ! command -v "$tool" >/dev/null; then
      for slug in $slugs; do skip "$slug" "$tool is not installed"; done
      return 1
    fi
  done
  return 0
}

if [[ -z "${OZONE_OM_ADDRESS:-}" ]]; then
  cat >&2 <<'EOF2'
########################################################################
###  SKIPPED: nbdkit/tests/run.sh needs a running Ozone cluster.      ###
###  Run: scripts/ozone-local start; eval "$(scripts/ozone-local env)"###
########################################################################
EOF2
  skip all "no Ozone cluster (OZONE_OM_ADDRESS is not set)"
  summary
  [[ "${OZBD_REQUIRE_OZONE:-0}" == 1 ]] && { echo "OZBD_REQUIRE_OZONE=1: failing" >&2; exit 1; }
  exit 0
fi

# Without these nothing here can run.
for tool in nbdkit nbdinfo sha256sum python3; do
  if ! command -v "$tool" >/dev/null; then
    skip all "$tool is not installed (apt-get install nbdkit libnbd-bin python3)"
    summary; exit $?
  fi
done
if [[ ! -f "$PLUGIN" ]]; then
  make -C "$NBDDIR" >&2 || { fail "build the plugin (make -C $NBDDIR)"; summary; exit 1; }
fi

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

# wait_until SECS CMD...: poll CMD (every 0.2 s) until it succeeds; 1 after SECS.
wait_until() {
  local deadline=$((SECONDS + $1)); shift
  until "$@"; do
    ((SECONDS < deadline)) || return 1
    sleep 0.2
  done
}
server_answers() { [[ -S $SOCK ]] && nbdinfo --size "$NBD" >/dev/null 2>&1; }
# True while the server is starting: no pid file yet, or its process alive.
server_starting() { local pid; pid=$(server_pid) || return 0; kill -0 "$pid" 2>/dev/null; }
server_ready_or_dead() { server_answers || ! server_starting; }
pid_gone() { ! kill -0 "$1" 2>/dev/null; }

# start_server ARGS...: start nbdkit in the background (it forks; the engine and
# its JVM start in .after_fork) and wait until it answers (nbdinfo succeeds).
# -v: the plugin's debug lines (engine settings after open, stats at cleanup).
start_server() {
  rm -f "$PIDF" "$SOCK"
  echo "=== nbdkit $* ($(date +%T))" >>"$LOG"
  nbdkit -v -U "$SOCK" -P "$PIDF" --log=stderr "$PLUGIN" uri="$URI" "$@" 2>>"$LOG" || return 1
  wait_until 120 server_ready_or_dead && server_answers
}

# stop_server [SIGNAL]: signal our nbdkit and wait (60 s at most) for it to exit.
stop_server() {
  local sig=${1:-TERM} pid
  pid=$(server_pid) || return 0
  kill -"$sig" "$pid" 2>/dev/null || return 0
  wait_until 60 pid_gone "$pid" || return 1
  rm -f "$PIDF"
}

FUSE_PID=
FUSE_MNT=$WORK/fuse
cleanup() {
  if [[ -n $FUSE_PID ]]; then
    fusermount3 -u "$FUSE_MNT" 2>/dev/null || umount "$FUSE_MNT" 2>/dev/null
    wait_until 30 pid_gone "$FUSE_PID" || kill "$FUSE_PID" 2>/dev/null
  fi
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
# log_json WHAT FIELD [SINCE_LINE]: FIELD of the last "ozbd: WHAT: {json}" debug
# line the plugin wrote to the log after line SINCE_LINE (default 0).
log_json() {
  tail -n +$((${3:-0} + 1)) "$LOG" | grep -a "ozbd: $1: {" | tail -1 |
    sed "s/.*ozbd: $1: //" | python3 -c '
import json, sys
print(json.dumps(json.load(sys.stdin).get(sys.argv[1])))' "$2"
}
log_lines() { if [[ -f $LOG ]]; then wc -l <"$LOG"; else echo 0; fi; }
vol_sha() { nbdcopy "$NBD" - | sha256sum | cut -d' ' -f1; }
now() { date +%s.%N; }
elapsed() { python3 -c "print(f'{$(now) - $1:.1f}')"; }
mibps() { python3 -c "print(f'{$1 / $MiB / ($(now) - $2):.1f}')"; }

# expect_error NAME PATTERN MAX_SECONDS ARGS...: nbdkit -f with ARGS must fail
# within MAX_SECONDS and say something matching PATTERN (the distinctive part
# of the expected message, never a bare word).
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

# expect_prefork_error NAME PATTERN ARGS...: nbdkit with ARGS, NOT in the
# foreground, must refuse them before it forks: a non-zero exit (after the fork
# the parent would exit 0 and the error would come from the child), no pid
# file, and a message matching PATTERN. Proves the check ran in config_complete.
# PREFORK_ENV: the env(1) command nbdkit runs under.
PREFORK_ENV=(env)
expect_prefork_error() {
  local name=$1 pat=$2; shift 2
  local out=$WORK/err.out pidf=$WORK/err.pid rc
  rm -f "$WORK/err.sock" "$pidf"
  timeout 60 "${PREFORK_ENV[@]}" nbdkit -U "$WORK/err.sock" -P "$pidf" --log=stderr "$PLUGIN" "$@" >"$out" 2>&1
  rc=$?
  if [[ -s $pidf ]]; then
    kill "$(cat "$pidf")" 2>/dev/null    # it forked: ours, stop it
    wait_until 30 pid_gone "$(cat "$pidf")"
  fi
  if [[ $rc -ne 0 && ! -e $pidf ]] && grep -Eq -- "$pat" "$out"; then
    pass "$name (refused before the fork, exit $rc)"
    note "$(grep -E -m1 -- "$pat" "$out")"
  else
    fail "$name (exit $rc, pid file $([[ -e $pidf ]] && echo written || echo none); want a pre-fork refusal matching /$pat/)"
    sed 's/^/      | /' "$out" | tail -5
  fi
}

echo "# nbdkit $(nbdkit --version | cut -d' ' -f2), volume $URI, work dir $WORK"

# ------------------------------------------------------------ parameter errors
# The plugin's own: key parsing and presence.
expect_prefork_error "error: uri= missing" "uri=ofs://.*is required" size=1M
expect_prefork_error "error: unparsable size" "could not parse size: unknown suffix 'Q'" uri="$URI" size=12Q
expect_prefork_error "error: unknown parameter" "unknown parameter 'bogus'" uri="$URI" bogus=1
expect_prefork_error "error: create=new without size" "no size given: creating a new volume at" uri="$URI" create=new
expect_prefork_error "error: timeout= too large for milliseconds" "timeout=4294968: too many seconds" uri="$URI" timeout=4294968
PREFORK_ENV=(env -u CLASSPATH)
expect_prefork_error "error: CLASSPATH unset in the environment" "CLASSPATH is not set: ofs://" uri="$URI"
PREFORK_ENV=(env)
# The engine's (ozbd_check_params in config_complete: its words, before the fork).
expect_prefork_error "error: bad block_size (engine)" "ozbd: invalid argument: block size 1000 is not supported: use 512 or 4096" \
  uri="$URI" block_size=1000
expect_prefork_error "error: bad chunk_size (engine)" "ozbd: invalid argument: chunk size 3145728 is not supported: use a power of two" \
  uri="$URI" chunk_size=3M
expect_prefork_error "error: size not a multiple of the block size (engine)" "size 1001 is not a positive multiple of the block size 4096" \
  uri="$URI" size=1001
expect_prefork_error "error: bad uri scheme (engine)" "malformed volume URI 'http://x/y': unsupported scheme 'http'" uri="http://x/y"
expect_prefork_error "error: bad Ozone bucket name (engine)" "malformed volume URI .*bucket name 'B_K' may hold only lowercase letters" \
  uri="ofs://$OZONE_OM_ADDRESS/nbdtest/B_K/x"
expect_prefork_error "error: retry out of range (engine)" "retry 7200000 ms is out of range: use 0 to" uri="$URI" retry=7200
expect_prefork_error "error: workers=0 (engine)" "workers 0 is out of range: use 1 to" uri="$URI" workers=0
expect_prefork_error "error: timeout=0 (engine)" "timeout_ms is 0: give the connect timeout" uri="$URI" timeout=0
expect_prefork_error "error: bad uuid (engine)" "uuid 'zz' is not a UUID" uri="$URI" uuid=zz
expect_prefork_error "error: cpumask names no CPU (engine)" "cpumask '0x0' names no CPU" uri="$URI" cpumask=0x0
expect_prefork_error "error: max_inflight_requests=0 (engine)" "the in-flight bounds must be at least 1" uri="$URI" max_inflight_requests=0
expect_prefork_error "error: max_inflight_bytes=0 (engine)" "the in-flight bounds must be at least 1" uri="$URI" max_inflight_bytes=0
expect_prefork_error "error: bad journal= (engine)" \
  "ozbd: invalid argument: journal 'bogus' is not known: use \"ozone\" \(the default: .*\) or \"none\"" uri="$URI" journal=bogus
expect_prefork_error "error: journal_mb below the minimum (engine)" "journal_mb 8 is out of range: use [0-9]+ to [0-9]+" uri="$URI" journal_mb=8
expect_prefork_error "error: cache_mb above the maximum (engine)" "cache_mb 100000000 is out of range: use 0 \(no cache\) to" \
  uri="$URI" cache_mb=100000000
# nbdkit's own integer parser (its wording differs across versions).
expect_prefork_error "error: journal_mb= not a number" "error: journal_mb: .*(parse|expected a) number" uri="$URI" journal_mb=lots
# After the fork: the engine's answers from Ozone.
expect_error "error: missing volume and no size" \
  "cannot open .*: (no volume at [^ ]*/missing-$NAME: create it with|Ozone volume '[^']+' does not exist on|bucket '[^']+' does not exist in Ozone volume).*\(No such file or directory\); or pass size= to create it here" \
  120 uri="$BASE/missing-$NAME"
expect_error "error: unreachable OM, timeout=5 (bounded)" \
  "cannot open ofs://127.0.0.1:1/nbdtest/bkt/$NAME: .*no answer within 5 s: is the Ozone Manager running and reachable" 60 \
  uri="ofs://127.0.0.1:1/nbdtest/bkt/$NAME" size=1M timeout=5

# ------------------------------------------------------------ create and describe
t0=$(now)
since=$(log_lines)
if start_server size=$VOLSIZE block_size=4096 chunk_size=$CHUNK; then
  pass "create volume and serve it (ready in $(elapsed "$t0")s, JVM started after fork)"
else
  fail "create volume and serve it"; tail -20 "$LOG"; summary; exit 1
fi
check "nbdkit forked into the background (pid file, daemon)" test -n "$(server_pid)"
check "nbdinfo: size = 256 MiB" test "$(info_field export-size)" = "$VOLSIZE"
# Minimum 1: the engine takes any byte range; with 4096, libnbd's strict mode
# refuses unaligned requests (nbdfuse's page cache sends them).
check "nbdinfo: block_size_minimum = 1" test "$(info_field block_size_minimum)" = 1
check "nbdinfo: block_size_preferred = chunk size (1 MiB)" test "$(info_field block_size_preferred)" = "$CHUNK"
check "nbdinfo: block_size_maximum = 32 MiB" test "$(info_field block_size_maximum)" = $((32 * MiB))
for cap in can_multi_conn can_flush can_fua can_trim can_zero; do
  check "nbdinfo: $cap" test "$(info_field $cap)" = true
done
check "nbdinfo --map: new volume is all hole,zero" test "$(alloc_bytes)" = 0
# No key given: the engine runs with its own defaults, the ones --help prints
# (both from ozbd_params_init; the plugin keeps none of its own).
help=$(nbdkit "$PLUGIN" --help 2>&1)
# help_default KEY: the number after "(default " in KEY's entry of the help.
help_default() {
  echo "$help" | python3 -c '
import re, sys
m = re.search(r"^" + sys.argv[1] + r"=(?:.|\n(?![a-z_]+=))*?\(default ([0-9a-z]+)", sys.stdin.read(), re.M)
print(m.group(1) if m else "")' "$1"
}
want="$(help_default workers) $(($(help_default retry) * 1000)) $(help_default max_inflight_requests)"
have="$(log_json settings workers "$since") $(log_json settings retry_ms "$since") $(log_json settings max_inflight_requests "$since")"
if [[ $want =~ ^[0-9]+\ [0-9]+\ [0-9]+$ && $have == "$want" ]]; then
  pass "defaults: engine settings after open (workers retry_ms max_inflight_requests: $have) = the defaults --help prints"
else fail "defaults: engine settings '$have' vs --help defaults '$want'"; fi
want="\"$(help_default journal)\" $(help_default journal_mb) $(help_default cache_mb)"
have="$(log_json settings journal "$since") $(log_json settings journal_mb "$since") $(log_json settings cache_mb "$since")"
if [[ $want =~ ^\"[a-z]+\"\ [0-9]+\ [0-9]+$ && $have == "$want" ]]; then
  pass "defaults: journal journal_mb cache_mb after open ($have) = the defaults --help prints"
else fail "defaults: engine settings journal journal_mb cache_mb '$have' vs --help defaults '$want'"; fi

# ------------------------------------------------------------ nbdcopy in/out
head -c $((64 * MiB)) /dev/urandom >"$WORK/rand.img"
if requires "nbdcopy-in nbdcopy-out nbdcopy-checksum nbdcopy-zeros nbdcopy-map multiconn-nbdcopy-in multiconn-nbdcopy-out" nbdcopy; then
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
fi

# multi-conn: two concurrent qemu-io clients, each writing and flushing its region
if requires "multiconn-qemu-io-writers multiconn-qemu-io-reader" qemu-io; then
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
fi

# ------------------------------------------------------------ qemu-img convert/compare
if requires "qemu-img-convert qemu-img-compare qemu-img-map-size qemu-img-map-layout" qemu-img; then
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
fi

# ------------------------------------------------------------ qemu-io at unaligned offsets
U=$((200 * MiB))
if requires "qemu-io-unaligned qemu-io-cross-boundary" qemu-io; then
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
fi

# ------------------------------------------------------------ nbdsh
# nbdsh is "python3 -m nbd" with whatever python3 is first on PATH: find one
# that has Debian's python3-libnbd.
NBDSH=()
for py in python3 /usr/bin/python3; do
  if "$py" -c 'import nbd' 2>/dev/null; then NBDSH=("$py" -m nbd); break; fi
done
if [[ ${#NBDSH[@]} -eq 0 ]]; then
  for slug in nbdsh-strict-unaligned nbdsh-unaligned nbdsh-out-of-range nbdsh-flush-fua; do
    skip "$slug" "python3-libnbd (nbdsh) is not installed (apt-get install python3-libnbd)"
  done
else
  # libnbd's default strict mode refuses a request that is not a multiple of
  # the advertised minimum block size: with minimum 1 these must reach the plugin.
  if "${NBDSH[@]}" -u "$NBD" -c "
B = $((205 * MiB))
h.pwrite(b'\x42' * 1000, B + 1024)
h.pwrite(b'\x43' * 3, B + 4095)
assert h.pread(4096, B) == bytes(1024) + b'\x42' * 1000 + bytes(2071) + b'\x43', 'read back'
assert h.pread(2, B + 4096) == b'\x43\x43'
h.zero(10, B + 1030)
assert h.pread(1000, B + 1024) == b'\x42' * 6 + bytes(10) + b'\x42' * 984
h.trim(7, B + 1100)
assert h.pread(7, B + 1100) == bytes(7)
assert h.get_block_size(nbd.SIZE_MINIMUM) == 1, h.get_block_size(nbd.SIZE_MINIMUM)
" >"$WORK/nbdsh0.out" 2>&1; then
    pass "nbdsh (default strict mode): unaligned pwrite/pread/zero/trim accepted by libnbd and served"
  else fail "nbdsh strict-mode unaligned requests"; cat "$WORK/nbdsh0.out"; fi
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
  # Out of range, with libnbd's own range check off so that the requests reach the
  # server: each must fail with an NBD error (nbdkit checks the range before the plugin),
  # the connection must stay usable, and the last bytes of the volume stay as they were.
  if "${NBDSH[@]}" -u "$NBD" -c "
h.set_strict_mode(0)
S = h.get_size()
h.pwrite(b'\x5a' * 4096, S - 4096)
for name, f in [('pread past the end', lambda: h.pread(8192, S - 4096)),
                ('pread at the end', lambda: h.pread(1, S)),
                ('pwrite past the end', lambda: h.pwrite(b'\x66' * 8192, S - 4096)),
                ('pwrite far past', lambda: h.pwrite(b'\x66' * 512, 2**62)),
                ('zero past the end', lambda: h.zero(8192, S - 4096)),
                ('trim past the end', lambda: h.trim(8192, S - 4096))]:
    try:
        f()
    except nbd.Error as e:
        print(name, 'refused:', e.string, 'errno', e.errno)
        continue
    raise AssertionError(name + ' was accepted')
assert h.pread(4096, S - 4096) == b'\x5a' * 4096, 'the last block is unchanged'
" >"$WORK/nbdsh-range.out" 2>&1; then
    pass "nbdsh (strict mode off): out-of-range pread/pwrite/zero/trim refused with an NBD error, data unchanged"
    note "$(head -1 "$WORK/nbdsh-range.out")"
  else fail "nbdsh out-of-range requests"; cat "$WORK/nbdsh-range.out"; fi
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
fi

# ------------------------------------------------------------ fio nbd engine
FIO_SLUGS="fio-randwrite-verify fio-randread fio-seqwrite"
if ! requires "$FIO_SLUGS" fio; then :
elif ! fio --enghelp=nbd >/dev/null 2>&1; then
  for slug in $FIO_SLUGS; do skip "$slug" "this fio has no nbd engine (--enghelp=nbd fails)"; done
else
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
  if fio --name=ozbd --ioengine=nbd --uri="$NBD" --rw=write --bs=1M --iodepth=8 \
       --offset=$((128 * MiB)) --size=$((16 * MiB)) --output-format=terse --terse-version=3 >"$WORK/fio3.out" 2>&1; then
    bw=$(grep '^3;' "$WORK/fio3.out" | awk -F';' '{print $48}')
    pass "fio nbd engine: sequential write 1M qd8 over 16 MiB (write $((bw / 1024)) MiB/s)"
  else fail "fio seq write"; tail -5 "$WORK/fio3.out"; fi
fi

# ------------------------------------------------------------ trim and zero
T=$((160 * MiB))
if requires "trim-zero-map-grows trim-zero-reads-zero trim-zero-map-shrinks trim-zero-partial" qemu-io; then
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
fi

# ------------------------------------------------------------ restart
# pwrites_since LINE N: the server has logged (nbdkit -v) at least N pwrite
# requests after log line LINE.
pwrites_since() { [[ $(tail -n +$(($1 + 1)) "$LOG" | grep -ac ': debug: ozbd: pwrite count=') -ge $2 ]]; }
cp_done() { ! kill -0 "$1" 2>/dev/null; }
RESTART_SLUGS="restart-sigterm restart-stats-logged restart-reopen restart-checksum restart-map restart-sigkill restart-sigkill-write-kept restart-sigkill-mid-copy"
if requires "$RESTART_SLUGS" nbdcopy qemu-io; then
  sha1=$(vol_sha)
  map1=$(nbdinfo --map "$NBD")
  since=$(log_lines)
  check "restart: nbdkit exits on SIGTERM (engine closed)" stop_server TERM
  stats_writes=$(log_json stats writes "$since")
  if [[ $stats_writes =~ ^[0-9]+$ && $stats_writes -gt 0 ]]; then
    pass "restart: the engine's stats JSON logged at cleanup (writes $stats_writes)"
  else fail "restart: no 'ozbd: stats: {...}' with writes > 0 in the log at cleanup"; tail -3 "$LOG"; fi
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

  # SIGKILL in the middle of a copy: once the server has logged 32 of its
  # 256 KiB writes (8 of 64 MiB) and nbdcopy is still running.
  since=$(log_lines)
  nbdcopy --flush "$WORK/rand.img" "$NBD" >/dev/null 2>&1 &
  cp_pid=$!
  if wait_until 120 pwrites_since "$since" 32 && ! cp_done $cp_pid; then
    note "killing nbdkit after $(tail -n +$((since + 1)) "$LOG" | grep -ac ': debug: ozbd: pwrite count=') writes of the copy"
    midcopy=yes
  else
    midcopy=no
  fi
  stop_server KILL
  wait $cp_pid 2>/dev/null
  if [[ $midcopy == yes ]] && start_server && nbdcopy --flush "$WORK/rand.img" "$NBD" &&
     test "$(nbdcopy "$NBD" - | head -c $((64 * MiB)) | sha256sum)" = "$(sha256sum <"$WORK/rand.img")"; then
    pass "restart: SIGKILL mid-nbdcopy, restart, copy again: checksum matches"
  else fail "restart: SIGKILL mid-copy and recopy (killed mid-copy: $midcopy)"; fi
fi

# ------------------------------------------------------------ in-flight bound
# With room for one request, the engine answers most submits -EAGAIN: the
# plugin must wait and resubmit, never fail (or lose) the NBD request.
INFL_SLUGS="inflight-settings inflight-nbdcopy-in inflight-nbdcopy-out inflight-busy-counted"
if requires "$INFL_SLUGS" nbdcopy; then
  stop_server TERM
  since=$(log_lines)
  if start_server max_inflight_requests=1 max_inflight_bytes=64K; then
    check "in-flight bound: the engine runs with max_inflight_requests=1, max_inflight_bytes=65536" \
      test "$(log_json settings max_inflight_requests "$since") $(log_json settings max_inflight_bytes "$since")" = "1 65536"
    head -c $((32 * MiB)) /dev/urandom >"$WORK/rand3.img"
    t0=$(now)
    if timeout 300 nbdcopy --connections=2 --requests=16 --request-size=262144 --flush "$WORK/rand3.img" "$NBD"; then
      pass "in-flight bound: nbdcopy 2 connections x 16 requests in, against a bound of 1 ($(mibps $((32 * MiB)) "$t0") MiB/s)"
    else fail "in-flight bound: nbdcopy in (failed or hung)"; tail -5 "$LOG"; fi
    check "in-flight bound: read back with 2 x 16 requests matches" \
      test "$(timeout 300 nbdcopy --connections=2 --requests=16 "$NBD" - | head -c $((32 * MiB)) | sha256sum)" = "$(sha256sum <"$WORK/rand3.img")"
    since=$(log_lines)
    stop_server TERM
    busy=$(log_json stats busy "$since")
    if [[ $busy =~ ^[0-9]+$ && $busy -gt 0 ]]; then
      pass "in-flight bound: the engine refused $busy submits with -EAGAIN (the bound was exercised)"
    else fail "in-flight bound: stats show no -EAGAIN refusals (busy=$busy): the bound was not exercised"; fi
  else
    fail "in-flight bound: start with max_inflight_requests=1"; tail -5 "$LOG"
    for slug in $INFL_SLUGS; do skip "$slug" "the server did not start"; done
  fi
fi

# ------------------------------------------------------------ keys reach the engine
stop_server TERM
since=$(log_lines)
# Threads of our nbdkit whose allowed CPUs are exactly "0".
threads_on_cpu0() {
  local pid=$1 n=0 f
  for f in /proc/"$pid"/task/*/status; do
    [[ $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' "$f" 2>/dev/null) == 0 ]] && n=$((n + 1))
  done
  echo $n
}
if start_server workers=3 retry=0 cpumask=0x1 journal=none journal_mb=32 cache_mb=0; then
  check "keys: workers=3 retry=0 reach the engine (settings: workers 3, retry_ms 0)" \
    test "$(log_json settings workers "$since") $(log_json settings retry_ms "$since")" = "3 0"
  check "keys: journal=none journal_mb=32 cache_mb=0 reach the engine" \
    test "$(log_json settings journal "$since") $(log_json settings journal_mb "$since") $(log_json settings cache_mb "$since")" = '"none" 32 0'
  if [[ $(nproc --all) -lt 2 || $(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/$$/status) == 0 ]]; then
    skip cpumask "one CPU only: cpumask=0x1 would not change anything"
  else
    pid=$(server_pid)
    n=$(threads_on_cpu0 "$pid")
    main=$(sed -n 's/^Cpus_allowed_list:[[:space:]]*//p' /proc/"$pid"/status)
    # At least the 3 workers (and the JVM's threads) on CPU 0; nbdkit's own
    # main thread keeps every CPU.
    if [[ $n -ge 3 && $main != 0 ]]; then
      pass "keys: cpumask=0x1: $n engine/JVM threads run on CPU 0 only, nbdkit's main thread on $main"
    else fail "keys: cpumask=0x1: $n threads on CPU 0 only (want >= 3), main thread on $main"; fi
  fi
else
  fail "keys: start with workers=3 retry=0 cpumask=0x1"; tail -5 "$LOG"
fi

# ------------------------------------------------------------ nbdfuse + ext4
# nbdfuse mounts the export as a file (no nbd kernel module needed); its page
# cache sends unaligned writes, which libnbd refuses unless the minimum block
# size is 1. mkfs.ext4 on it, a file written with debugfs, then a restarted
# nbdkit (nothing from a cache) and a fresh mount: e2fsck clean, file intact.
FUSE_SLUGS="nbdfuse-mkfs nbdfuse-debugfs-write nbdfuse-unmount nbdfuse-e2fsck nbdfuse-readback"
fuse_skip() { local slug; for slug in $FUSE_SLUGS; do skip "$slug" "$1"; done; }
fuse_ready() { [[ -s $WORK/fuse.pid && -f $FUSE_MNT/disk ]] || ! kill -0 "$FUSE_PID" 2>/dev/null; }
# fuse_mount URI [nbdfuse options]: mount URI at $FUSE_MNT/disk; 0 when the file is there.
fuse_mount() {
  local uri=$1; shift
  rm -f "$WORK/fuse.pid"
  nbdfuse "$@" -P "$WORK/fuse.pid" "$FUSE_MNT/disk" "$uri" >>"$WORK/fuse.log" 2>&1 &
  FUSE_PID=$!
  wait_until 60 fuse_ready && [[ -s $WORK/fuse.pid && -f $FUSE_MNT/disk ]]
}
# fuse_umount: unmount and wait for nbdfuse to exit (it flushes first).
fuse_umount() {
  [[ -n $FUSE_PID ]] || return 0
  fusermount3 -u "$FUSE_MNT" >>"$WORK/fuse.log" 2>&1 || return 1
  wait_until 120 pid_gone "$FUSE_PID" || return 1
  wait "$FUSE_PID" 2>/dev/null
  local rc=$?
  FUSE_PID=
  return $rc
}
if ! requires "$FUSE_SLUGS" nbdfuse fusermount3 mkfs.ext4 e2fsck debugfs; then :
elif [[ ! -c /dev/fuse ]]; then fuse_skip "/dev/fuse does not exist"
else
  mkdir -p "$FUSE_MNT"
  # Can FUSE mount here at all? Probe with nbdkit's memory plugin.
  probe_ok=no
  if nbdkit -U "$WORK/mem.sock" -P "$WORK/mem.pid" memory 1M 2>>"$WORK/fuse.log"; then
    if fuse_mount "nbd+unix:///?socket=$WORK/mem.sock" && fuse_umount; then probe_ok=yes; fi
    [[ -s $WORK/mem.pid ]] && kill "$(cat "$WORK/mem.pid")" 2>/dev/null
  fi
  if [[ $probe_ok != yes ]]; then
    fuse_skip "nbdfuse cannot mount in this environment: $(tail -1 "$WORK/fuse.log")"
    [[ -n $FUSE_PID ]] && { fusermount3 -u "$FUSE_MNT" 2>/dev/null; kill "$FUSE_PID" 2>/dev/null; FUSE_PID=; }
  else
    : >"$WORK/fuse.log"
    head -c 300000 /dev/urandom >"$WORK/small.bin"
    server_answers || start_server
    if fuse_mount "$NBD"; then
      if mkfs.ext4 -F -q "$FUSE_MNT/disk" >"$WORK/mkfs.out" 2>&1; then
        pass "nbdfuse: mkfs.ext4 on the FUSE file of the export"
      else fail "nbdfuse: mkfs.ext4 on the FUSE file"; tail -n 5 "$WORK/mkfs.out" "$WORK/fuse.log"; fi
      debugfs -w -R "write $WORK/small.bin small.bin" "$FUSE_MNT/disk" >"$WORK/dbg.out" 2>&1
      if debugfs -R "ls -l" "$FUSE_MNT/disk" 2>>"$WORK/dbg.out" | grep -q " 300000 .* small.bin"; then
        pass "nbdfuse: debugfs -w writes a 300000-byte file into the new ext4"
      else fail "nbdfuse: debugfs write"; tail -5 "$WORK/dbg.out"; fi
      check "nbdfuse: unmount (nbdfuse flushes and exits 0)" fuse_umount
    else
      fail "nbdfuse: mount the export"; tail -5 "$WORK/fuse.log"
    fi
    # Nothing from a cache: a new nbdkit, a new read-only mount.
    stop_server TERM
    if start_server && fuse_mount "$NBD" -r; then
      if e2fsck -fn "$FUSE_MNT/disk" >"$WORK/fsck.out" 2>&1; then
        pass "nbdfuse: after an nbdkit restart, e2fsck -fn is clean ($(grep -m1 'files' "$WORK/fsck.out"))"
      else fail "nbdfuse: e2fsck -fn after restart"; tail -8 "$WORK/fsck.out"; fi
      rm -f "$WORK/small.out"
      debugfs -R "dump small.bin $WORK/small.out" "$FUSE_MNT/disk" >"$WORK/dbg2.out" 2>&1
      check "nbdfuse: the file written with debugfs reads back identical" cmp -s "$WORK/small.bin" "$WORK/small.out"
      fuse_umount
    else
      fail "nbdfuse: restart and mount again"; tail -n 5 "$LOG" "$WORK/fuse.log"
    fi
  fi
fi

# ------------------------------------------------------------ resize
# nbdkit keeps the volume (and its writer lease) open for as long as it runs:
# `ozbd resize` is refused meanwhile, naming nbdkit; after a resize made while
# nbdkit was stopped, the next nbdkit serves the new size.
stop_server TERM
if [[ ! -x $OZBD_CLI ]]; then skip "resize" "$OZBD_CLI is not built (cargo build --release -p ozbd-cli)"
elif start_server; then
  out=$("$OZBD_CLI" resize "$URI" --size $((VOLSIZE + 64 * MiB)) 2>&1)
  check "resize: ozbd resize is refused while nbdkit holds the volume, naming it" \
    grep -q "in use: held by nbdkit" <<<"$out"
  stop_server TERM
  if "$OZBD_CLI" resize "$URI" --size $((VOLSIZE + 64 * MiB)) >"$WORK/resize.out" 2>&1 && start_server; then
    check "resize: after ozbd resize, a new nbdkit serves the new size" \
      test "$(info_field export-size)" = $((VOLSIZE + 64 * MiB))
    check "resize: the new space reads as zeros" \
      cmp -s <(nbdcopy "$NBD" - | tail -c $((64 * MiB))) <(head -c $((64 * MiB)) /dev/zero)
  else
    fail "resize: ozbd resize with nbdkit stopped, then restart"; tail -3 "$WORK/resize.out" "$LOG"
  fi
else
  fail "resize: start nbdkit"; tail -5 "$LOG"
fi

# ------------------------------------------------------------ open mismatches
stop_server TERM
expect_error "error: create=new on an existing volume" \
  "a volume already exists at [^ ]*/$NAME: open it, or remove it first" 120 uri="$URI" size=$VOLSIZE create=new
expect_error "error: chunk_size= not matching the volume" \
  "/$NAME has chunk size 1048576, but 4194304 was requested" 120 uri="$URI" chunk_size=4M
expect_error "error: block_size= not matching the volume" \
  "/$NAME has block size 4096, but 512 was requested" 120 uri="$URI" block_size=512
summary
