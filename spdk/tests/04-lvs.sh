#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: an lvstore on an ozone bdev. The target (OZT_TARGET; "spdk_tgt" below) creates
# the ozone bdev, an lvstore and a thin lvol, then saves its config. bdevperf (verify) runs
# on the lvol; spdk_dd writes a pattern to it; the target restarts from the saved config and
# the lvstore and lvol come back (examine); spdk_dd reads the pattern back from the lvol and
# it matches.
# An lvstore never sends FLUSH: this checks that a completed WRITE is durable by itself.
# Env: OZT_VERIFY_TIME (default 30).

OZT_NAME=lvs
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_VERIFY_TIME:-30}
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
sock=$OZT_WORK/tgt.sock

ozt_log "create ozone bdev, lvstore, thin lvol on $uri"
ozt_start_app tgt "$OZT_WORK/tgt-1.log" spdk_tgt --no-huge -s 1024 -u -r "$sock"
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; ozt_summary; exit 1; }
{
	ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri" -s 512M -c 1M --timeout-ms "$OZT_TIMEOUT_MS" &&
		ozt_rpc "$sock" bdev_lvol_create_lvstore -c 4194304 Ozone0 lvs0 &&
		ozt_rpc "$sock" bdev_lvol_create -t -l lvs0 lvol0 256
} > "$OZT_WORK/setup.log" 2>&1 || { cat "$OZT_WORK/setup.log"; ozt_fail "lvstore setup failed"; ozt_summary; exit 1; }
cat "$OZT_WORK/setup.log" | grep -v '^{\|^}' | sed 's/^/  /' | head -5
lvs_uuid=$(ozt_rpc "$sock" bdev_lvol_get_lvstores -l lvs0 | jq -r '.[0].uuid')
lvol_uuid=$(ozt_rpc "$sock" bdev_get_bdevs -b lvs0/lvol0 | jq -r '.[0].uuid')
ozt_log "lvstore $lvs_uuid, lvol $lvol_uuid"
ozt_rpc "$sock" save_config > "$OZT_WORK/saved.json" || ozt_fail "save_config failed"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
jq '{subsystems: [.subsystems[] | select(.subsystem == "bdev")]}' "$OZT_WORK/saved.json" > "$OZT_WORK/bdev-only.json"

ozt_log "bdevperf verify -o 4096 -q 32 -t $t on lvs0/lvol0"
log=$OZT_WORK/bdevperf.log
ozt_start_app bp "$log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" \
	--json "$OZT_WORK/bdev-only.json" -T lvs0/lvol0 -q 32 -o 4096 -w verify -t "$t"
wait "$bp"
ozt_check_bdevperf "bdevperf on lvs0/lvol0" "$log" $?
iops=$OZT_IOPS
grep -qE "Job: ($lvol_uuid|lvs0/lvol0) " "$log" || ozt_fail "bdevperf did not run on the lvol (log $log)"

ozt_log "write a 4 MiB pattern at 64 MiB into the lvol with spdk_dd"
head -c $((4 << 20)) /dev/urandom > "$OZT_WORK/pattern.bin"
ozt_start_app dd "$OZT_WORK/dd-write.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-only.json" --if "$OZT_WORK/pattern.bin" --ob lvs0/lvol0 --bs 1048576 --seek 64
wait "$dd" || ozt_fail "spdk_dd write failed (log $OZT_WORK/dd-write.log)"

ozt_log "restart spdk_tgt from the saved config"
ozt_start_app tgt "$OZT_WORK/tgt-2.log" spdk_tgt --no-huge -s 1024 -u -r "$sock" --json "$OZT_WORK/saved.json"
ozt_wait_sock "$sock" "$tgt" 300 || { ozt_fail "spdk_tgt did not restart"; ozt_summary; exit 1; }
got_lvs=$(ozt_rpc "$sock" bdev_lvol_get_lvstores | jq -r '.[] | select(.name == "lvs0") | .uuid')
got_lvol=$(ozt_rpc "$sock" bdev_get_bdevs -b lvs0/lvol0 | jq -r '.[0].uuid')
thin=$(ozt_rpc "$sock" bdev_get_bdevs -b lvs0/lvol0 | jq -r '.[0].driver_specific.lvol.thin_provision')
echo "  after restart: lvstore $got_lvs, lvol $got_lvol, thin $thin"
[[ $got_lvs == "$lvs_uuid" ]] || ozt_fail "lvstore did not come back ($got_lvs != $lvs_uuid)"
[[ $got_lvol == "$lvol_uuid" ]] || ozt_fail "lvol did not come back ($got_lvol != $lvol_uuid)"
[[ $thin == true ]] || ozt_fail "lvol is not thin after restart"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"

ozt_log "read the pattern back from the lvol"
ozt_start_app dd "$OZT_WORK/dd-read.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-only.json" --ib lvs0/lvol0 --of "$OZT_WORK/readback.bin" --bs 1048576 --skip 64 --count 4
wait "$dd" || ozt_fail "spdk_dd read failed (log $OZT_WORK/dd-read.log)"
if cmp "$OZT_WORK/pattern.bin" "$OZT_WORK/readback.bin"; then
	echo "  pattern written before the restart reads back identical"
else
	ozt_fail "pattern read back from the lvol differs"
fi
ozt_summary "lvol verify ${iops:-?} IOPS; lvstore/lvol back after restart; pattern intact"
