#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation 2: bdevperf -w verify at 4 KiB and 64 KiB, queue depth 32, on an ozone bdev.
# Each run writes a pattern and reads it back; any miscompare or failed I/O fails the test.
# Volume: 256 MiB with 256 KiB chunks (a sub-chunk write is a read-modify-write of one chunk
# in Ozone, so smaller chunks mean less amplification for small writes).
# Env: OZT_VERIFY_TIME (seconds per run, default 30), OZT_CHUNK (bytes, default 262144).
# Must never: loosen verify (no -z tricks, no skipped compare).

OZT_NAME=bdevperf_verify
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_VERIFY_TIME:-30}
chunk=${OZT_CHUNK:-262144}
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
ozt_bdev_config "$(ozt_create_json Ozone0 "$uri" $((256 << 20)) "$chunk")" > "$OZT_WORK/bp.json"

results=()
for io in 4096 65536; do
	log=$OZT_WORK/bdevperf-$io.log
	ozt_log "bdevperf verify -o $io -q 32 -t $t on $uri (chunk $chunk)"
	ozt_start_app pid "$log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" \
		--json "$OZT_WORK/bp.json" -q 32 -o "$io" -w verify -t "$t"
	wait "$pid"
	ozt_check_bdevperf "bdevperf -o $io" "$log" $?
	results+=("${io}B: ${OZT_IOPS:-?} IOPS, fail/s ${OZT_FAILPS:-?}, miscompares $OZT_MISCOMPARES")
done
ozt_summary "$(IFS=';'; echo "${results[*]}")"
