#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: exclusive open. bdevperf holds an ozone bdev (verify, 4 KiB, QD 8) while a second
# SPDK target, ozbd and nbdkit try to open the same volume: each is refused at once with an
# error naming the holder (spdk 'Ozone0', its pid) and the lease's age; `force` does not take
# a live lease; a read-only open (`readonly: true`) is allowed; `ozbd info` shows the holder;
# bdevperf finishes with no failed I/O and no miscompare (the first holder kept working). Then
# the released volume opens without force, and after SIGKILL of the target holding it, a new
# target on this host takes it over without force and reads back what the first one wrote.
# No sleeps: every wait polls its condition with a bound.
# Must never: leave a volume behind (cleanup destroys it).

OZT_NAME=lease
source "$(dirname "$0")/lib.sh"
ozt_setup

uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
ozbd=$OZ_TOP/target/release/ozbd
checks=0

ozt_bdev_config "$(ozt_create_json Ozone0 "$uri" $((64 << 20)) 262144)" > "$OZT_WORK/bp.json"
# -t is only an upper bound: bdevperf is stopped with SIGINT once the checks are done (it
# drains its jobs and prints its totals, as at the end of -t).
ozt_log "holder: bdevperf verify -o 4096 -q 8 on $uri, until the checks are done"
ozt_start_app bp "$OZT_WORK/bdevperf.log" bdevperf --no-huge -s 1024 -u -r "$OZT_WORK/bp.sock" \
	--json "$OZT_WORK/bp.json" -q 8 -o 4096 -w verify -t 900
ozt_wait_sock "$OZT_WORK/bp.sock" "$bp" 300 &&
	ozt_wait_for 300 sh -c "python3 '$SPDK_RPC_PY' -s '$OZT_WORK/bp.sock' bdev_get_bdevs -b Ozone0 > /dev/null 2>&1" ||
	{ ozt_fail "bdevperf did not open the volume (log $OZT_WORK/bdevperf.log)"; ozt_summary; exit 1; }
checks=$((checks + 1))
if out=$("$ozbd" info "$uri" 2>&1) && grep -q "holder: .*held by spdk 'Ozone0', pid $bp " <<< "$out"; then
	echo "  ok   ozbd info shows the holder: $(grep 'holder:' <<< "$out" | cut -c1-200)"
else
	ozt_fail "ozbd info does not show spdk 'Ozone0' (pid $bp) as the holder: $out"
fi

sock=$OZT_WORK/t.sock
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 1024 -u -r "$sock"
ozt_wait_sock "$sock" "$tgt" 300 || { ozt_fail "spdk_tgt did not come up"; ozt_summary; exit 1; }
to=$OZT_TIMEOUT_MS
held="is in use: held by spdk 'Ozone0', pid $bp on .*renewed [0-9.]+ s ago"
ozt_expect_error "a second target is refused, naming the holder" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "timeout_ms": '$to'}' "$held" -16
ozt_expect_error "force does not take a live lease" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "force": true, "timeout_ms": '$to'}' "$held" -16
ozt_expect_error "force must be a boolean" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "force": "yes"}' "parameter 'force'" -32602
ozt_expect_ok "a read-only open is allowed" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "readonly": true, "timeout_ms": '$to'}'
ozt_expect_ok "and closed" bdev_ozone_delete '{"name": "Oz1"}'

checks=$((checks + 1))
if out=$("$ozbd" import /dev/null "$uri" 2>&1); then
	ozt_fail "ozbd import opened a held volume: $out"
elif grep -qE "$held" <<< "$out"; then
	echo "  ok   ozbd is refused: $(tail -1 <<< "$out" | cut -c1-200)"
else
	ozt_fail "ozbd import: expected /$held/, got: $out"
fi
plugin=$OZ_TOP/nbdkit/nbdkit-ozbd-plugin.so
if command -v nbdkit > /dev/null && [[ -f $plugin ]]; then
	checks=$((checks + 1))
	# nbdkit starts --run's command while the plugin opens the volume, and kills it when the
	# open fails: "served" means a client got the export.
	out=$(timeout 120 nbdkit -f -U "$OZT_WORK/nbd.sock" "$plugin" uri="$uri" \
		--run 'nbdinfo --size "$uri" > /dev/null 2>&1 && echo SERVED' 2>&1)
	if grep -q SERVED <<< "$out"; then
		ozt_fail "nbdkit opened a held volume: $out"
	elif grep -qE "$held" <<< "$out"; then
		echo "  ok   nbdkit is refused: $(grep -E "$held" <<< "$out" | head -1 | cut -c1-200)"
	else
		ozt_fail "nbdkit: expected /$held/, got: $out"
	fi
else
	echo "  (nbdkit or its plugin is not built here: the nbdkit refusal is checked by nbdkit/tests/run.sh)"
fi

kill -0 "$bp" 2> /dev/null || ozt_fail "bdevperf ended before the checks were done"
kill -INT "$bp" 2> /dev/null
wait "$bp"
ozt_check_bdevperf "the holder kept working" "$OZT_WORK/bdevperf.log" $?
results="bdevperf ${OZT_IOPS:-?} IOPS, fail/s ${OZT_FAILPS:-?}, miscompares $OZT_MISCOMPARES"

ozt_expect_ok "released at close: opens without force" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "timeout_ms": '$to'}'
ozt_log "SIGKILL of the target holding the volume; a new target on this host takes it over"
# The holder's pid as its lease names it (the target process itself).
holder=$("$ozbd" info --json "$uri" 2> /dev/null | jq -r '.holder.pid // empty')
checks=$((checks + 1))
if [[ -n $holder ]] && kill -0 "$holder" 2> /dev/null; then
	echo "  ok   ozbd info --json names the holder's pid: $holder"
else
	ozt_fail "ozbd info --json names no live holder pid: '$holder'"
fi
kill -KILL "$holder" 2> /dev/null
ozt_wait_for 60 sh -c "! kill -0 $holder 2> /dev/null" || ozt_fail "pid $holder survived SIGKILL"
wait "$tgt" 2> /dev/null
ozt_start_app tgt2 "$OZT_WORK/tgt2.log" spdk_tgt --no-huge -s 1024 -u -r "$sock"
ozt_wait_sock "$sock" "$tgt2" 300 || { ozt_fail "the second spdk_tgt did not come up"; ozt_summary; exit 1; }
ozt_expect_ok "a killed holder on this host is taken over without force" bdev_ozone_create \
	'{"name": "Oz1", "uri": "'"$uri"'", "timeout_ms": '$to'}'
checks=$((checks + 1))
if grep -q "its holder is gone from this host" "$OZT_WORK/tgt2.log"; then
	echo "  ok   the takeover is logged"
else
	ozt_fail "no takeover log line in $OZT_WORK/tgt2.log"
fi
ozt_expect_ok "closed" bdev_ozone_delete '{"name": "Oz1"}'
ozt_stop_app "$tgt2"
ozt_summary "$checks checks; $results"
