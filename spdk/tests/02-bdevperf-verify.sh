#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation 2: bdevperf -w verify at 4 KiB and 64 KiB, queue depth 32, on an ozone bdev, and
# at 1 MiB on a volume with 4 MiB chunks. Each run writes a pattern and reads it back; any
# miscompare or failed I/O fails the test. At 1 MiB the pass is sequential with 32 MiB in
# flight, so the journal gathers whole chunks: at least one gathered chunk put must show
# (OZBD_GATHER=0 makes this fail).
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
# A second volume with the default 4 MiB chunks, for a sequential 1 MiB pass the journal gathers.
uri_big=$(ozt_uri vb)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri; ozt_destroy_volume $uri_big"
ozt_bdev_config "$(ozt_create_json Ozone0 "$uri" $((256 << 20)) "$chunk")" > "$OZT_WORK/bp.json"
ozt_bdev_config "$(ozt_create_json Ozone0 "$uri_big" $((256 << 20)) $((4 << 20)))" > "$OZT_WORK/bp-big.json"

results=()
# io size, config, chunk (for the log), run time
for run in "4096 bp $chunk $t" "65536 bp $chunk $t" "1048576 bp-big $((4 << 20)) $(((t + 1) / 2))"; do
	read -r io cfg ck secs <<< "$run"
	log=$OZT_WORK/bdevperf-$io.log
	ozt_log "bdevperf verify -o $io -q 32 -t $secs on the volume of $cfg.json (chunk $ck)"
	ozt_start_app pid "$log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" \
		--json "$OZT_WORK/$cfg.json" -q 32 -o "$io" -w verify -t "$secs"
	# The journal's counters while it runs (the last sample before bdevperf exits). At 1 MiB
	# x 32 in flight into 4 MiB chunks, the sequential verify pass fills whole chunks, so
	# gathered chunk puts must show (the path verify then reads back); 256 KiB chunks are not
	# gathered (docs/performance.md "Gathering sequential writes").
	journal=""
	while kill -0 "$pid" 2> /dev/null; do
		j=$(python3 "$SPDK_RPC_PY" -s "$OZT_WORK/bp.sock" -t 10 bdev_get_bdevs -b Ozone0 2> /dev/null |
			jq -r '.[0].driver_specific.ozone.statistics.journal | "\(.records) \(.gathered_chunks) \(.gather_misses)"' 2> /dev/null)
		[[ $j =~ ^[0-9]+\ [0-9]+\ [0-9]+$ ]] && journal=$j
		sleep 2
	done
	wait "$pid"
	ozt_check_bdevperf "bdevperf -o $io" "$log" $?
	read -r recs gathered misses <<< "${journal:-? ? ?}"
	results+=("${io}B: ${OZT_IOPS:-?} IOPS, fail/s ${OZT_FAILPS:-?}, miscompares $OZT_MISCOMPARES, journal records $recs, gathered chunks $gathered, gather misses $misses")
	if ((io == 1048576)) && ! [[ $gathered =~ ^[0-9]+$ && $gathered -gt 0 ]]; then
		ozt_fail "bdevperf -o $io: no gathered chunk put (journal records/gathered/misses: ${journal:-none sampled})"
	fi
done
ozt_summary "$(IFS=';'; echo "${results[*]}")"
