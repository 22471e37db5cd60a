#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: the module's I/O path under the engine's limits. One target (OZT_TARGET
# route) exports ozone bdevs over NVMe/TCP on 127.0.0.1; a stock bdevperf attaches as the
# initiator and drives them.
#  nomem:  an in-memory volume with max_inflight_requests 2, verify at queue depth 64: the
#          engine refuses most submits (-EAGAIN); the module must complete them with NOMEM
#          so the bdev layer retries them: no failed I/O, no miscompare, the engine's
#          `busy` counter > 0, and no I/O error in the target's bdev_get_iostat.
#  errno:  a file:// volume (retry_ms 0) whose chunks/ directory is replaced by a file:
#          writes fail, and the target's bdev_get_iostat must count them as aio_error (the
#          engine's errno carried with spdk_bdev_io_complete_aio_status), not as a bare
#          "failed".
#  split:  an in-memory 10 TiB volume: creating an lvstore on it sends one UNMAP of the
#          whole bdev. With max_unmap set, the bdev layer splits it into <= 1 GiB children
#          (the engine counts > 10000 unmaps); without, the engine gets one UNMAP of 2.6
#          million chunks, allocated on the reactor.
#  msgpool: the target runs with a message pool barely larger than its threads' caches;
#          verify at queue depth 128 on an in-memory volume must not exhaust it (the module
#          sends one message per batch of completions, not one per I/O; SPDK aborts the
#          process when the pool is empty).
# Env: OZT_NVMF_PORT (default 4420 + pid % 1000), OZT_IO_TIME (seconds per run, default 10),
# OZT_IO_CASES (default "nomem errno split msgpool").
# Must never: listen on anything but 127.0.0.1.

OZT_NAME=io_path
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_IO_TIME:-10}
cases=${OZT_IO_CASES:-"nomem errno split msgpool"}
port=${OZT_NVMF_PORT:-$((4420 + $$ % 1000))}
sock=$OZT_WORK/tgt.sock
filedir=$OZT_WORK/filevol
OZT_CLEANUP_EXTRA="chmod -R u+rwX $filedir 2> /dev/null; rm -rf $filedir"
tgt=""
results=()

# start_target <label> [extra app args]: a target with NVMe/TCP ready on $port.
start_target() {
	local label=$1
	shift
	ozt_start_app tgt "$OZT_WORK/tgt-$label.log" spdk_tgt --no-huge -s 2048 -u -r "$sock" -m 0x1 "$@"
	ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "[$label] target did not start (log $OZT_WORK/tgt-$label.log)"; return 1; }
	ozt_rpc "$sock" nvmf_create_transport -t tcp > /dev/null
}
stop_target() {
	[[ -n $tgt ]] || return 0
	ozt_stop_app "$tgt" || ozt_fail "target did not stop cleanly"
	tgt=""
}
# export <label> <bdev> <nqn suffix>
export_bdev() {
	local nqn=nqn.2016-06.io.spdk:ozio-$3-$$
	ozt_rpc "$sock" nvmf_create_subsystem "$nqn" -a -s OZIO0001 -d bdev_ozone > /dev/null &&
		ozt_rpc "$sock" nvmf_subsystem_add_ns "$nqn" "$2" > /dev/null &&
		ozt_rpc "$sock" nvmf_subsystem_add_listener "$nqn" -t tcp -a 127.0.0.1 -s "$port" -f ipv4 > /dev/null ||
		{ ozt_fail "[$1] NVMe/TCP export of $2 failed"; return 1; }
	ozt_nvmf_initiator_json "$port" "$nqn" > "$OZT_WORK/ini-$1.json"
}
# initiator <label> <bdevperf args...>: bdevperf on NVMe0n1; sets bp_rc, bp_log
initiator() {
	local label=$1 bp
	shift
	bp_log=$OZT_WORK/bdevperf-$label.log
	ozt_start_app bp "$bp_log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" -m 0x2 \
		--json "$OZT_WORK/ini-$label.json" "$@"
	wait "$bp"
	bp_rc=$?
}
stats() { ozt_rpc "$sock" bdev_get_bdevs -b "$1" | jq -c '.[0].driver_specific.ozone.statistics'; }
io_errors() { ozt_rpc "$sock" bdev_get_iostat --names "$1" | jq -c '.bdevs[0].io_error // {}'; }
create() { # create <label> <json params>
	local out
	out=$(python3 "$OZT_DIR/rpc_raw.py" "$sock" bdev_ozone_create "$2")
	jq -e '.result' <<< "$out" > /dev/null || { ozt_fail "[$1] bdev_ozone_create: $out"; return 1; }
}

case_nomem() {
	ozt_log "[nomem] max_inflight_requests 2, verify -q 64 -o 4096 -t $t over NVMe/TCP"
	start_target nomem || return
	create nomem '{"name": "Oz0", "uri": "mem://ozio-'$$'/nomem", "size": 67108864, "chunk_size": 262144, "max_inflight_requests": 2}' || return
	export_bdev nomem Oz0 nomem || return
	initiator nomem -q 64 -o 4096 -w verify -t "$t"
	ozt_check_bdevperf "[nomem] bdevperf verify" "$bp_log" "$bp_rc"
	local st err busy
	st=$(stats Oz0)
	err=$(io_errors Oz0)
	busy=$(jq -r .busy <<< "$st")
	echo "  engine: $st"
	echo "  target io_error: $err"
	((busy > 0)) || ozt_fail "[nomem] the engine never answered busy (statistics.busy = $busy): the bound was not exercised"
	[[ $err == "{}" ]] || ozt_fail "[nomem] the target completed I/O with errors: $err (busy submits must be retried, not failed)"
	results+=("nomem: ${OZT_IOPS:-?} IOPS, $busy busy submits retried")
	stop_target
}

case_errno() {
	ozt_log "[errno] file:// volume, retry_ms 0, its e1/chunks/ directory replaced by a file, then write"
	rm -rf "$filedir"
	start_target errno || return
	create errno '{"name": "Oz1", "uri": "file://'"$filedir"'", "size": 16777216, "chunk_size": 65536, "retry_ms": 0, "timeout_ms": '"$OZT_TIMEOUT_MS"'}' || return
	export_bdev errno Oz1 errno || return
	# The data lives in the writer epoch's root: e1/ for a volume created by this target.
	[[ -f $filedir/e1/fence-1 ]] || { ozt_fail "[errno] no $filedir/e1/fence-1 (the epoch 1 data root)"; stop_target; return; }
	rm -rf "$filedir/e1/chunks" && echo "not a directory" > "$filedir/e1/chunks"
	# Unique data: all-zero writes are stored as nothing, and would not fail.
	initiator errno -q 8 -o 65536 -w write -U -t 2 -f
	local err st
	err=$(io_errors Oz1)
	st=$(stats Oz1)
	echo "  engine: $st"
	echo "  target io_error: $err"
	jq -e '.aio_error > 0' <<< "$err" > /dev/null ||
		ozt_fail "[errno] failed writes were not completed with their errno (no aio_error in $err)"
	jq -e 'has("failed") | not' <<< "$err" > /dev/null ||
		ozt_fail "[errno] failed writes were completed with a bare FAILED status: $err"
	results+=("errno: $(jq -r '.aio_error // 0' <<< "$err") failed writes completed with their errno")
	stop_target
}

case_split() {
	ozt_log "[split] 10 TiB in-memory volume, lvstore with 1 GiB clusters (one UNMAP of the whole bdev)"
	start_target split || return
	create split '{"name": "Oz2", "uri": "mem://ozio-'$$'/big", "size": 10995116277760}' || return
	local t0 dt st unmaps
	t0=$(date +%s)
	OZT_RPC_TIMEOUT=600 ozt_rpc "$sock" bdev_lvol_create_lvstore -c 1073741824 Oz2 lvsbig > "$OZT_WORK/lvs.log" 2>&1 ||
		ozt_fail "[split] bdev_lvol_create_lvstore failed: $(tail -3 "$OZT_WORK/lvs.log")"
	dt=$(($(date +%s) - t0))
	st=$(stats Oz2)
	unmaps=$(jq -r .unmaps <<< "$st")
	echo "  lvstore created in ${dt}s; engine: $st"
	echo "  advertised: $(ozt_rpc "$sock" bdev_get_bdevs -b Oz2 | jq -c '.[0].driver_specific.ozone | {max_unmap, max_unmap_segments, max_write_zeroes}')"
	((unmaps >= 10000)) || ozt_fail "[split] the engine saw $unmaps UNMAP(s) for a 10 TiB discard: the bdev layer did not split it (max_unmap)"
	results+=("split: 10 TiB UNMAP arrived as $unmaps requests in ${dt}s")
	stop_target
}

case_msgpool() {
	# A probe start counts the target's SPDK threads: each takes 1024 messages (its cache)
	# from the pool when it starts, so the pool left for messages from engine threads is
	# the size given minus threads x 1024.
	ozt_log "[msgpool] probe the target's threads"
	start_target msgpool-probe || return
	create msgpool '{"name": "Oz3", "uri": "mem://ozio-'$$'/pool", "size": 67108864, "chunk_size": 65536}' || return
	export_bdev msgpool Oz3 msgpool || return
	local nthreads pool spare=${OZT_MSGPOOL_SPARE:-32}
	nthreads=$(ozt_rpc "$sock" thread_get_stats | jq '.threads | length')
	stop_target
	pool=$((nthreads * 1024 + spare))
	ozt_log "[msgpool] $nthreads SPDK threads: --msg-mempool-size $pool; verify -q 128 -o 4096 -t $t"
	start_target msgpool --msg-mempool-size "$pool" || return
	create msgpool '{"name": "Oz3", "uri": "mem://ozio-'$$'/pool", "size": 67108864, "chunk_size": 65536}' || return
	export_bdev msgpool Oz3 msgpool || return
	initiator msgpool -q 128 -o 4096 -w verify -t "$t"
	ozt_check_bdevperf "[msgpool] bdevperf verify" "$bp_log" "$bp_rc"
	if ! kill -0 "$tgt" 2> /dev/null; then
		ozt_fail "[msgpool] the target died: $(grep -a 'msg could not\|abort\|cannot send' "$OZT_WORK/tgt-msgpool.log" | head -3)"
		tgt=""
		return
	fi
	echo "  engine: $(stats Oz3)"
	results+=("msgpool: ${OZT_IOPS:-?} IOPS with a pool of $pool messages")
	stop_target
}

for c in $cases; do
	"case_$c"
	stop_target
done
ozt_summary "$(IFS=';'; echo "${results[*]}")"
