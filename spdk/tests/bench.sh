#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Measurement (not a pass/fail gate on speed): bdevperf IOPS and latency through the module
# for 4 KiB random read/write (QD32) and 1 MiB sequential read/write (QD4), side by side with
# an SPDK aio bdev on a local file, in the same run; prints a table with ozone/aio ratios.
# Then the idle CPU of nvmf_tgt in --interrupt-mode with an ozone bdev exported over
# NVMe/TCP (after a short verify through it, to show the interrupt-mode I/O path works),
# against the same target polling.
# Order per bdev: 1 MiB write first (it fills the volume, so reads hit stored chunks), then
# 1 MiB read, 4 KiB randread, 4 KiB randwrite. bdevperf runs with -U (unique, non-zero data in
# every write): with its default zero-filled buffers the engine would skip all-zero chunks
# and reads of never-written chunks, and the figures would not measure Ozone at all.
# Env: OZT_BENCH_TIME (s per workload, default 20), OZT_IDLE_SECS (default 30),
#      OZT_BENCH_DIR (where the aio file goes, default /var/tmp).

OZT_NAME=bench
source "$(dirname "$0")/lib.sh"
ozt_setup

t=${OZT_BENCH_TIME:-20}
idle=${OZT_IDLE_SECS:-30}
size_mb=64
chunk=$((256 << 10))
uri=$(ozt_uri v)
aio_file=${OZT_BENCH_DIR:-/var/tmp}/ozt-bench-aio-$$.img
OZT_CLEANUP_EXTRA="rm -f $aio_file; ozt_destroy_volume $uri; ozt_destroy_volume $uri-idle"
truncate -s $((size_mb << 20)) "$aio_file"
BDEVPERF_PY=${BDEVPERF_PY:-$(dirname "$SPDK_RPC_PY")/../examples/bdev/bdevperf/bdevperf.py}
[[ -f $BDEVPERF_PY ]] || { echo "FAIL: bench (bdevperf.py not found; set BDEVPERF_PY)"; exit 1; }

workloads=("write 1048576 4" "read 1048576 4" "randread 4096 32" "randwrite 4096 32")
declare -A RES

# bench_bdev <label> <bdev> <config json>
bench_bdev() {
	local label=$1 bdev=$2 cfg=$3 bsock=$OZT_WORK/bp-$1.sock w io qd out
	ozt_start_app bp "$OZT_WORK/bdevperf-$label.log" bdevperf --no-huge -s 1024 -u -r "$bsock" \
		--json "$cfg" -T "$bdev" -z -U -q 32 -o 4096 -w randread -t "$t"
	ozt_wait_sock "$bsock" "$bp" 300 || { ozt_fail "bdevperf ($label) did not start"; return; }
	for w in "${workloads[@]}"; do
		read -r w io qd <<< "$w"
		ozt_log "$label: $w -o $io -q $qd -t $t"
		out=$(python3 "$BDEVPERF_PY" -s "$bsock" -t $((t * 3 + 60)) perform_tests -w "$w" -o "$io" -q "$qd" -t "$t" 2>&1)
		RES[$label,$w]=$(jq -r '.results[0] | "\(.iops) \(.avg_latency_us) \(.max_latency_us) \(.io_failed // 0)"' <<< "$out" 2> /dev/null)
		[[ -n ${RES[$label,$w]} ]] || { ozt_fail "$label $w: no result: $out"; RES[$label,$w]="0 0 0 ?"; }
	done
	if [[ $label == ozone ]]; then
		python3 "$SPDK_RPC_PY" -s "$bsock" bdev_get_bdevs -b "$bdev" |
			jq -c '.[0].driver_specific.ozone.statistics' | tee "$OZT_WORK/ozone-stats.json" | sed 's/^/  ozone stats: /'
		jq -e '.chunk_puts > 0 and .chunk_reads > 0' "$OZT_WORK/ozone-stats.json" > /dev/null ||
			ozt_fail "the ozone runs did not reach Ozone (no chunk puts/reads): figures are meaningless"
	fi
	ozt_stop_app "$bp"
}

ozt_bdev_config "$(ozt_create_json Ozone0 "$uri" $((size_mb << 20)) $chunk)" > "$OZT_WORK/ozone.json"
ozt_bdev_config '{"method": "bdev_aio_create", "params": {"name": "AIO0", "filename": "'"$aio_file"'", "block_size": 4096}}' > "$OZT_WORK/aio.json"
bench_bdev aio AIO0 "$OZT_WORK/aio.json"
bench_bdev ozone Ozone0 "$OZT_WORK/ozone.json"

echo
echo "bdevperf, ${t}s per workload, $size_mb MiB volume, ozone chunk $((chunk >> 10)) KiB, aio on $(dirname "$aio_file") ($(df -T "$(dirname "$aio_file")" | awk 'NR==2 {print $2}'))"
printf '| %-22s | %12s | %12s | %9s | %14s | %14s | %9s |\n' workload "ozone IOPS" "aio IOPS" "IOPS o/a" "ozone avg us" "aio avg us" "lat o/a"
printf '|%s|\n' "------------------------|--------------|--------------|-----------|----------------|----------------|-----------"
for w in "${workloads[@]}"; do
	read -r w io qd <<< "$w"
	read -r oi ol om of <<< "${RES[ozone,$w]}"
	read -r ai al am af <<< "${RES[aio,$w]}"
	awk -v w="$w $((io >> 10))KiB QD$qd" -v oi="$oi" -v ai="$ai" -v ol="$ol" -v al="$al" 'BEGIN {
		printf "| %-22s | %12.1f | %12.1f | %9.4f | %14.0f | %14.0f | %9.1f |\n", w, oi, ai, (ai > 0 ? oi / ai : 0), ol, al, (al > 0 ? ol / al : 0) }'
done
echo

# ---- interrupt mode: I/O through NVMe/TCP, then idle CPU ----------------------------------
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
measure_idle() { # <pid> <secs> -> percent of one CPU
	local a b hz
	hz=$(getconf CLK_TCK)
	a=$(cpu_ticks "$1")
	sleep "$2"
	b=$(cpu_ticks "$1")
	awk -v a="$a" -v b="$b" -v s="$2" -v hz="$hz" 'BEGIN {printf "%.1f", (b - a) * 100 / hz / s}'
}
port=$((4420 + 500 + $$ % 400))
nqn=nqn.2016-06.io.spdk:ozone-bench-$$
declare -A IDLE
for mode in interrupt polling; do
	sock=$OZT_WORK/idle-$mode.sock
	flag=""
	[[ $mode == interrupt ]] && flag=--interrupt-mode
	# nvmf_tgt, not spdk_tgt: spdk_tgt also starts the iSCSI target, whose poll group keeps an
	# active poller that has no interrupt support (SPDK v26.05): even a stock spdk_tgt with
	# no bdev at all burns ~85 % of a CPU in --interrupt-mode, while nvmf_tgt idles at ~1 %.
	ozt_start_app tgt "$OZT_WORK/tgt-$mode.log" nvmf_tgt --no-huge -s 1024 -u -r "$sock" -m 0x1 $flag
	ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt $mode did not start"; continue; }
	{
		ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri-idle" -s 64M -c 256K --timeout-ms "$OZT_TIMEOUT_MS" &&
			ozt_nvmf_export "$sock" "$nqn" Ozone0 "$port"
	} > "$OZT_WORK/idle-$mode-setup.log" 2>&1 || { cat "$OZT_WORK/idle-$mode-setup.log"; ozt_fail "$mode target setup"; }
	if [[ $mode == interrupt ]]; then
		ozt_nvmf_initiator_json "$port" "$nqn" > "$OZT_WORK/ini.json"
		ozt_log "interrupt-mode target: bdevperf verify 10 s through NVMe/TCP"
		ozt_start_app ini "$OZT_WORK/ini.log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/ini.sock" -m 0x2 \
			--json "$OZT_WORK/ini.json" -q 8 -o 4096 -w verify -t 10
		wait "$ini" || ozt_fail "verify through the interrupt-mode target failed (log $OZT_WORK/ini.log)"
		tr '\r' '\n' < "$OZT_WORK/ini.log" | grep -E '^ *Total *:' | tail -1 | sed 's/^/  /'
	fi
	sleep 5
	ozt_log "$mode: idle CPU of nvmf_tgt (whole process, JVM included) over ${idle}s"
	IDLE[$mode]=$(measure_idle "$tgt" "$idle")
	ozt_stop_app "$tgt"
done
echo "idle nvmf_tgt with one ozone bdev exported over NVMe/TCP, ${idle}s: interrupt mode ${IDLE[interrupt]:-?}% of one CPU, polling ${IDLE[polling]:-?}%"
if [[ -n ${IDLE[interrupt]:-} ]] && awk -v c="${IDLE[interrupt]}" 'BEGIN {exit !(c > 10)}'; then
	ozt_fail "interrupt-mode idle CPU ${IDLE[interrupt]}% is not close to zero"
fi
ozt_summary "table above; idle interrupt ${IDLE[interrupt]:-?}% vs polling ${IDLE[polling]:-?}%"
