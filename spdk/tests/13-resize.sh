#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: online resize under an lvstore. The target (OZT_TARGET; "spdk_tgt" below) holds
# an ozone bdev with an lvstore and three lvols: lvol0 (exported over NVMe/TCP, where a
# bdevperf initiator runs -w verify for the whole test), keep (a pattern written by spdk_dd
# before the resize) and, after it, big. While the verify runs:
#   - bdev_ozone_resize to a smaller size is refused without force, and with force too (the
#     bdev is open: the lvstore), nothing changes;
#   - a thick lvol larger than the lvstore's free space is refused;
#   - bdev_ozone_resize grows the bdev (num_blocks and the module's info follow at once);
#   - bdev_lvol_grow_lvstore grows the lvstore (total_data_clusters grows);
#   - the thick lvol now fits, in the new space.
# Then bdevperf must report no failed I/O and no miscompare; spdk_dd writes a pattern at the
# end of the new lvol; the target restarts from save_config with the grown size and lvstore;
# both patterns read back identical.
# Env: OZT_VERIFY_TIME (verify run, default 60 s), OZT_NVMF_PORT (default 4420 + pid % 1000).
# Must never: listen on anything but 127.0.0.1.

OZT_NAME=resize
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_VERIFY_TIME:-60}
port=${OZT_NVMF_PORT:-$((4420 + $$ % 1000))}
nqn=nqn.2016-06.io.spdk:ozone-resize-$$
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
sock=$OZT_WORK/tgt.sock
old=$((256 << 20)) new=$((512 << 20)) bs=4096 checks=0

stop_and_exit() {
	ozt_summary
	exit 1
}

# Lvstore lvs0's total_data_clusters as the target at $sock sees it.
clusters() { ozt_rpc "$sock" bdev_lvol_get_lvstores -l lvs0 | jq -r '.[0].total_data_clusters'; }
# Write operations lvs0/lvol0 has completed.
lvol_writes() {
	local n
	n=$(ozt_rpc "$sock" bdev_get_iostat --names lvs0/lvol0 | jq -r '.bdevs[0].num_write_ops // 0')
	echo "${n:-0}"
}
writes_flow() { (($(lvol_writes) > ${1:-0})); }

ozt_log "phase 1: ozone bdev ($((old >> 20)) MiB, 1 MiB chunks), lvstore, lvols on $uri"
ozt_start_app tgt "$OZT_WORK/tgt-1.log" spdk_tgt --no-huge -s 1024 -u -r "$sock"
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; stop_and_exit; }
{
	ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri" -s "$old" -c 1M --timeout-ms "$OZT_TIMEOUT_MS" &&
		ozt_rpc "$sock" bdev_lvol_create_lvstore -c 4194304 Ozone0 lvs0 &&
		ozt_rpc "$sock" bdev_lvol_create -t -l lvs0 lvol0 96 &&
		ozt_rpc "$sock" bdev_lvol_create -t -l lvs0 keep 16
} > "$OZT_WORK/setup.log" 2>&1 || { cat "$OZT_WORK/setup.log"; ozt_fail "setup failed"; stop_and_exit; }
ozt_rpc "$sock" save_config > "$OZT_WORK/saved-1.json" || ozt_fail "save_config failed"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
jq '{subsystems: [.subsystems[] | select(.subsystem == "bdev")]}' "$OZT_WORK/saved-1.json" > "$OZT_WORK/bdev-1.json"

ozt_log "phase 2: spdk_dd writes an 8 MiB pattern into lvs0/keep (before the resize)"
head -c $((8 << 20)) /dev/urandom > "$OZT_WORK/keep.bin"
ozt_start_app dd "$OZT_WORK/dd-keep-w.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-1.json" --if "$OZT_WORK/keep.bin" --ob lvs0/keep --bs 1048576
wait "$dd" || ozt_fail "spdk_dd write to keep failed (log $OZT_WORK/dd-keep-w.log)"

ozt_log "phase 3: restart, export lvs0/lvol0 on 127.0.0.1:$port, bdevperf verify -t $t through it"
ozt_start_app tgt "$OZT_WORK/tgt-2.log" spdk_tgt --no-huge -s 2048 -u -r "$sock" -m 0x1 \
	--json "$OZT_WORK/saved-1.json"
ozt_wait_sock "$sock" "$tgt" 300 || { ozt_fail "spdk_tgt did not restart"; stop_and_exit; }
ozt_nvmf_export "$sock" "$nqn" lvs0/lvol0 "$port" > "$OZT_WORK/export.log" 2>&1 ||
	{ cat "$OZT_WORK/export.log"; ozt_fail "NVMe/TCP export failed"; stop_and_exit; }
ozt_nvmf_initiator_json "$port" "$nqn" > "$OZT_WORK/initiator.json"
bplog=$OZT_WORK/bdevperf.log
ozt_start_app bp "$bplog" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" -m 0x2 \
	--json "$OZT_WORK/initiator.json" -q 32 -o 4096 -w verify -t "$t"
ozt_wait_for 120 writes_flow || { ozt_fail "no writes reached lvs0/lvol0 (log $bplog)"; stop_and_exit; }
clusters0=$(clusters)
ozt_log "verify running ($(lvol_writes) writes so far); lvstore has $clusters0 data clusters"

ozt_log "shrinking is refused (no force; with force, the lvstore has the bdev open)"
ozt_expect_error "shrink without force" bdev_ozone_resize \
	"{\"name\": \"Ozone0\", \"new_size\": $((old / 2))}" "force" -22
ozt_expect_error "forced shrink of an open bdev" bdev_ozone_resize \
	"{\"name\": \"Ozone0\", \"new_size\": $((old / 2)), \"force\": true}" "bdev layer refuses|open" -16
ozt_expect_error "unknown bdev" bdev_ozone_resize "{\"name\": \"nope\", \"new_size\": $new}" \
	"no such ozone bdev" -19
ozt_expect_error "size not given" bdev_ozone_resize "{\"name\": \"Ozone0\"}" \
	"missing required parameter 'new_size'" -32602
ozt_expect_error "not a multiple of the block size" bdev_ozone_resize \
	"{\"name\": \"Ozone0\", \"new_size\": $((new + 100))}" "multiple of the block size" -22
ozt_expect_ok "size unchanged" bdev_get_bdevs '{"name": "Ozone0"}' ".result[0].num_blocks == $((old / bs))"
ozt_expect_error "a 300 MiB thick lvol does not fit yet" bdev_lvol_create \
	'{"lvs_name": "lvs0", "lvol_name": "big", "size_in_mib": 300}' "space"

ozt_log "grow Ozone0 to $((new >> 20)) MiB under I/O"
w0=$(lvol_writes)
ozt_expect_ok "bdev_ozone_resize to $new" bdev_ozone_resize "{\"name\": \"Ozone0\", \"new_size\": $new}" \
	'.result == true'
ozt_expect_ok "num_blocks follows" bdev_get_bdevs '{"name": "Ozone0"}' \
	".result[0].num_blocks == $((new / bs)) and .result[0].driver_specific.ozone.size == $new and .result[0].driver_specific.ozone.statistics.size == $new"
# The rpc.py plugin's spelling (size suffix): the size it has already, nothing to do.
[[ $(ozt_rpc "$sock" bdev_ozone_resize Ozone0 "$((new >> 20))M") == true ]] ||
	ozt_fail "rpc.py --plugin bdev_ozone_rpc bdev_ozone_resize Ozone0 $((new >> 20))M did not answer true"
ozt_expect_ok "bdev_lvol_grow_lvstore" bdev_lvol_grow_lvstore '{"lvs_name": "lvs0"}' '.result == true'
clusters1=$(clusters)
echo "  total_data_clusters $clusters0 -> $clusters1"
((clusters1 > clusters0 * 3 / 2)) || ozt_fail "the lvstore did not grow ($clusters0 -> $clusters1 clusters)"
ozt_expect_ok "a 300 MiB thick lvol in the new space" bdev_lvol_create \
	'{"lvs_name": "lvs0", "lvol_name": "big", "size_in_mib": 300}'
ozt_wait_for 60 writes_flow "$w0" || ozt_fail "writes stopped after the resize"
kill -0 "$bp" 2> /dev/null || ozt_fail "bdevperf ended before the resize was done: raise OZT_VERIFY_TIME"
ozt_log "waiting for bdevperf ($(lvol_writes) writes so far)"
wait "$bp"
ozt_check_bdevperf "bdevperf verify on lvs0/lvol0 over NVMe/TCP" "$bplog" $?
iops=$OZT_IOPS
grep -q 'NVMe0n1' "$bplog" || ozt_fail "bdevperf did not run on NVMe0n1 (log $bplog)"
ozt_rpc "$sock" save_config > "$OZT_WORK/saved-2.json" || ozt_fail "save_config failed"
kill -0 "$tgt" 2> /dev/null || ozt_fail "spdk_tgt died (log $OZT_WORK/tgt-2.log)"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
jq '{subsystems: [.subsystems[] | select(.subsystem == "bdev")]}' "$OZT_WORK/saved-2.json" > "$OZT_WORK/bdev-2.json"

ozt_log "phase 4: spdk_dd writes 4 MiB at the end of lvs0/big"
head -c $((4 << 20)) /dev/urandom > "$OZT_WORK/big.bin"
ozt_start_app dd "$OZT_WORK/dd-big-w.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-2.json" --if "$OZT_WORK/big.bin" --ob lvs0/big --bs 1048576 --seek 296
wait "$dd" || ozt_fail "spdk_dd write to big failed (log $OZT_WORK/dd-big-w.log)"

ozt_log "phase 5: restart from the saved config: the grown size and lvstore are back"
ozt_start_app tgt "$OZT_WORK/tgt-3.log" spdk_tgt --no-huge -s 1024 -u -r "$sock" \
	--json "$OZT_WORK/saved-2.json"
ozt_wait_sock "$sock" "$tgt" 300 || { ozt_fail "spdk_tgt did not restart"; stop_and_exit; }
ozt_expect_ok "grown size after restart" bdev_get_bdevs '{"name": "Ozone0"}' \
	".result[0].num_blocks == $((new / bs))"
clusters2=$(clusters)
echo "  total_data_clusters after restart: $clusters2"
[[ $clusters2 == "$clusters1" ]] || ozt_fail "the lvstore has $clusters2 clusters after restart, not $clusters1"
ozt_expect_ok "lvs0/big is back" bdev_get_bdevs '{"name": "lvs0/big"}' \
	".result[0].num_blocks * .result[0].block_size == $((300 << 20))"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"

ozt_log "phase 6: both patterns read back"
intact=0
for p in keep:0:8 big:296:4; do
	IFS=: read -r lvol skip count <<< "$p"
	ozt_start_app dd "$OZT_WORK/dd-$lvol-r.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
		--json "$OZT_WORK/bdev-2.json" --ib "lvs0/$lvol" --of "$OZT_WORK/$lvol-back.bin" \
		--bs 1048576 --skip "$skip" --count "$count"
	wait "$dd" || ozt_fail "spdk_dd read of $lvol failed (log $OZT_WORK/dd-$lvol-r.log)"
	if cmp "$OZT_WORK/$lvol.bin" "$OZT_WORK/$lvol-back.bin"; then
		echo "  lvs0/$lvol: the pattern reads back identical"
		intact=$((intact + 1))
	else
		ozt_fail "lvs0/$lvol: the pattern read back differs"
	fi
done
ozt_summary "grown $((old >> 20)) -> $((new >> 20)) MiB under verify (${iops:-?} IOPS, $OZT_MISCOMPARES miscompares); lvstore $clusters0 -> $clusters1 clusters; $checks RPC checks; $intact of 2 patterns intact after restart"
