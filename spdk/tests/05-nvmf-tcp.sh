#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: NVMe-oF/TCP export. The target (OZT_TARGET: ozone_tgt, or spdk_tgt with the
# module preloaded) exports an ozone bdev on 127.0.0.1; a second SPDK app (bdevperf)
# attaches with bdev_nvme_attach_controller -t tcp and runs -w verify through it.
# Env: OZT_VERIFY_TIME (default 30), OZT_NVMF_PORT (default 4420 + pid % 1000).
# Must never: listen on anything but 127.0.0.1.

OZT_NAME=nvmf_tcp
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_VERIFY_TIME:-30}
port=${OZT_NVMF_PORT:-$((4420 + $$ % 1000))}
nqn=nqn.2016-06.io.spdk:ozone-$$
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
sock=$OZT_WORK/tgt.sock

ozt_log "target: spdk_tgt exporting $uri on 127.0.0.1:$port ($nqn)"
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 2048 -u -r "$sock" -m 0x1
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; ozt_summary; exit 1; }
{
	ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri" -s 256M -c 256K --timeout-ms "$OZT_TIMEOUT_MS" &&
		ozt_nvmf_export "$sock" "$nqn" Ozone0 "$port"
} > "$OZT_WORK/setup.log" 2>&1 || { cat "$OZT_WORK/setup.log"; ozt_fail "target setup failed"; ozt_summary; exit 1; }

ozt_nvmf_initiator_json "$port" "$nqn" > "$OZT_WORK/initiator.json"

results=()
for io in 4096 65536; do
	log=$OZT_WORK/bdevperf-$io.log
	ozt_log "initiator: bdevperf verify -o $io -q 32 -t $t on NVMe0n1 (NVMe/TCP)"
	ozt_start_app bp "$log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" -m 0x2 \
		--json "$OZT_WORK/initiator.json" -q 32 -o "$io" -w verify -t "$t"
	wait "$bp"
	ozt_check_bdevperf "bdevperf -o $io" "$log" $?
	grep -q 'NVMe0n1' "$log" || ozt_fail "bdevperf did not run on NVMe0n1 (log $log)"
	results+=("${io}B: ${OZT_IOPS:-?} IOPS")
done
kill -0 "$tgt" 2> /dev/null || ozt_fail "spdk_tgt died (log $OZT_WORK/tgt.log)"
ozt_rpc "$sock" bdev_get_bdevs -b Ozone0 | jq -c '.[0].driver_specific.ozone.statistics' | sed 's/^/  target stats: /'
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
ozt_summary "$(IFS=';'; echo "${results[*]}")"
