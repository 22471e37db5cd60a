#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: the control plane. JSON-RPC errors (missing/bad/unknown parameters named by
# the module's decoder, geometry/URI/option errors in the engine's own words, an
# unreachable OM within a bounded time while the app keeps answering, a volume already
# open, a name taken, an unknown bdev), create vs open reporting, bdev_get_bdevs driver
# info (the engine's statistics and settings, raw), delete with and without destroy_data,
# the quick start's deprecated spellings (ozone_bdev_create --ozone-uri on a bucket's root,
# ozone_bdev_delete), the journal and cache options (bad values refused in the engine's
# words, creating nothing; given through rpc.py's flags; shown in bdev_get_bdevs with the
# journal and cache statistics), and save_config (with cpumask, retry_ms 0, journal none,
# journal_mb 32, cache_mb 0) -> restart from that config -> the same volume comes back
# with the same UUID, options and data (checked with spdk_dd).
# No sleeps: every wait polls its condition with a bound.
# Must never: leave a volume behind (the last step destroys it through the RPC).

OZT_NAME=rpc_config
source "$(dirname "$0")/lib.sh"
ozt_setup

RAW="python3 $OZT_DIR/rpc_raw.py"
sock=$OZT_WORK/t.sock
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
checks=0

start_tgt() {
	ozt_start_app tgt "$OZT_WORK/tgt-$1.log" spdk_tgt --no-huge -s 1024 -u -r "$sock" ${2:+--json "$2"}
	ozt_wait_sock "$sock" "$tgt" 300 || { ozt_fail "spdk_tgt ($1) did not come up"; ozt_summary; exit 1; }
}

to=$OZT_TIMEOUT_MS
ozt_log "part 1: parameter errors and create/open"
start_tgt 1
P=-32602 # JSON-RPC "invalid params"
ozt_expect_error "no params" bdev_ozone_create '' 'missing parameters' $P
ozt_expect_error "missing name" bdev_ozone_create '{"uri": "'"$uri"'"}' "missing required parameter 'name'" $P
ozt_expect_error "missing uri" bdev_ozone_create '{"name": "oz0"}' "missing required parameter 'uri'" $P
ozt_expect_error "uri and ozone_uri" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "ozone_uri": "'"$uri"'"}' "not both" $P
ozt_expect_error "unknown key" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "bogus": 1}' "unknown parameter 'bogus'" $P
ozt_expect_error "size not a number" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": "big"}' "parameter 'size'" $P
ozt_expect_error "negative size" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": -1}' "parameter 'size'" $P
ozt_expect_error "key given twice" bdev_ozone_create '{"name": "oz0", "name": "oz1", "uri": "'"$uri"'"}' "'name' given twice" $P
# The engine's own checks (ozbd_check_params), with its messages: the module has no copy.
ozt_expect_error "bad block_size" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": 1048576, "block_size": 1000}' "block.size" $P
ozt_expect_error "bad chunk_size" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": 1048576, "chunk_size": 100000}' "chunk.size" $P
ozt_expect_error "bad uuid" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "uuid": "nope"}' "not a UUID" $P
# Hostile input found by 12-hostile: a size past the chunk bound (it once took the target's
# memory), and a message cut inside a UTF-8 character (it once left the answer unterminated).
ozt_expect_error "size 2^63" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": 9223372036854775808}' "use a larger chunk size" $P
ozt_expect_error "non-ASCII uuid cut" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": 1048576, "uuid": "'"$(printf 'é%.0s' $(seq 300))"'"}' "uuid '(é)+\.\.\.' is not a UUID" $P
ozt_expect_error "bad scheme" bdev_ozone_create '{"name": "oz0", "uri": "http://x/y"}' "ofs://" $P
ozt_expect_error "no bucket in uri" bdev_ozone_create '{"name": "oz0", "uri": "ofs://'"$OZONE_OM_ADDRESS"'/spdktest"}' "bucket" $P
ozt_expect_error "bad cpumask" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "cpumask": "zz"}' "cpumask" $P
ozt_expect_error "cpumask beyond the CPUs" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "cpumask": "[1000]"}' "cpumask" $P
ozt_expect_error "timeout_ms 0" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "timeout_ms": 0}' "timeout_ms" $P
ozt_expect_error "workers 0" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "workers": 0}' "worker" $P
# The journal and the cache: the engine parses the mode and checks the ranges (its words
# name the parameter). Each carries a size: were it not refused, it would create a volume.
sz='"size": 67108864, "chunk_size": 262144'
ozt_expect_error "bad journal" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", '"$sz"', "journal": "bogus"}' "journal 'bogus' is not known: use \"ozone\".* or \"none\"" $P
ozt_expect_error "journal not a string" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", '"$sz"', "journal": 1}' "parameter 'journal'" $P
ozt_expect_error "journal_mb below the minimum" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", '"$sz"', "journal_mb": 8}' "journal_mb 8 is out of range: use [0-9]+ to [0-9]+" $P
ozt_expect_error "journal_mb negative" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", '"$sz"', "journal_mb": -1}' "parameter 'journal_mb'" $P
ozt_expect_error "cache_mb above the maximum" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", '"$sz"', "cache_mb": 100000000}' "cache_mb 100000000 is out of range: use 0 \\(no cache\\) to" $P
ozt_expect_error "alias takes the journal through the same checks" ozone_bdev_create '{"name": "oz0", "ozone_uri": "'"$uri"'", '"$sz"', "journal": "bogus"}' "journal 'bogus' is not known" $P
checks=$((checks + 1))
if out=$(ozt_rpc "$sock" bdev_ozone_create oz0 "$uri" -s 64M --journal bogus 2>&1); then
	ozt_fail "rpc.py bdev_ozone_create --journal bogus succeeded: $out"
elif grep -q "journal 'bogus' is not known" <<< "$out"; then
	echo "  ok   rpc.py bdev_ozone_create --journal bogus: the engine's message"
else
	ozt_fail "rpc.py bdev_ozone_create --journal bogus: $out"
fi
ozt_expect_error "refused journal options registered no bdev" bdev_get_bdevs '{"name": "oz0"}' "no such device|does not exist|not found"
ozt_expect_error "params not an object" bdev_ozone_create '[1, 2]' "must be a JSON object" $P
ozt_expect_error "no volume, no size" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "timeout_ms": '$to'}' "no size|pass a size" -22

# Unreachable OM (nothing listens on port 9): bounded by timeout_ms, app stays responsive.
t0=$(date +%s)
rm -f "$OZT_WORK/dead.sent"
RPC_RAW_SENT=$OZT_WORK/dead.sent $RAW "$sock" bdev_ozone_create '{"name": "ozdead", "uri": "ofs://127.0.0.1:9/vol/bkt/x", "size": 1048576, "timeout_ms": 5000}' > "$OZT_WORK/dead.json" &
rawpid=$!
ozt_wait_for 30 test -e "$OZT_WORK/dead.sent" || ozt_fail "the create request was not sent within 30 s"
out=$($RAW "$sock" spdk_get_version '' 10)
checks=$((checks + 1))
if jq -e '.result' <<< "$out" > /dev/null && kill -0 "$rawpid" 2> /dev/null; then
	echo "  ok   app thread answers while an open is pending ($(jq -r .elapsed_s <<< "$out") s)"
elif jq -e '.result' <<< "$out" > /dev/null; then
	ozt_fail "the pending create had already finished when spdk_get_version answered: $(cat "$OZT_WORK/dead.json")"
else
	ozt_fail "app did not answer spdk_get_version while an open was pending: $out"
fi
wait "$rawpid"
dt=$(($(date +%s) - t0))
checks=$((checks + 1))
if jq -e '.error' "$OZT_WORK/dead.json" > /dev/null && ((dt < 60)); then
	echo "  ok   unreachable OM: error after ${dt}s: $(jq -c .error "$OZT_WORK/dead.json")"
else
	ozt_fail "unreachable OM: after ${dt}s got $(cat "$OZT_WORK/dead.json")"
fi

ozt_expect_ok "create" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "size": 67108864, "chunk_size": 262144, "timeout_ms": '$to'}' '.result.action == "created"'
uuid=$(jq -r .result.uuid <<< "$LAST")
ozt_expect_error "same uri again" bdev_ozone_create '{"name": "oz1", "uri": "'"$uri"'", "timeout_ms": '$to'}' "already open"
ozt_expect_error "same uri, trailing slash" bdev_ozone_create '{"name": "oz1", "uri": "'"$uri"'/", "timeout_ms": '$to'}' "already open"
ozt_expect_ok "malloc for name clash" bdev_malloc_create '{"name": "m0", "num_blocks": 256, "block_size": 4096}'
ozt_expect_error "name taken" bdev_ozone_create '{"name": "m0", "uri": "'"$uri"'-other", "size": 1048576, "timeout_ms": '$to'}' "already exists"
ozt_expect_ok "driver info" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone | (.uri != null and .chunk_size == 262144 and .statistics.reads >= 0)'
ozt_expect_ok "engine settings: its defaults" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.settings | type == "object" and length > 0'
ozt_expect_ok "engine settings: journal and cache" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.settings | (.journal | type == "string") and (.journal_mb | type == "number") and (.cache_mb | type == "number")'
ozt_expect_ok "statistics: journal and cache" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.statistics | (.journal.mode | type == "string") and (.journal.dirty_bytes | type == "number") and (.cache.hits | type == "number") and (.cache.capacity | type == "number")'
ozt_expect_ok "uuid of bdev" bdev_get_bdevs '{"name": "oz0"}' ".result[0].uuid == \"$uuid\""
ozt_expect_ok "optimal_io_boundary" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.optimal_io_boundary == 64'
ozt_expect_error "delete unknown" bdev_ozone_delete '{"name": "nosuch"}' "no such ozone bdev"
ozt_expect_error "delete non-ozone" bdev_ozone_delete '{"name": "m0"}' "not an ozone bdev"
ozt_expect_error "delete bad flag" bdev_ozone_delete '{"name": "oz0", "destroy_data": "yes"}' "destroy_data"
ozt_expect_ok "delete (keep data)" bdev_ozone_delete '{"name": "oz0"}'
ozt_expect_ok "reopen" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "timeout_ms": '$to'}' ".result.action == \"opened\" and .result.uuid == \"$uuid\""
ozt_expect_ok "delete again" bdev_ozone_delete '{"name": "oz0"}'
ozt_expect_error "open with another uuid" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "uuid": "00000000-0000-4000-8000-000000000001", "timeout_ms": '$to'}' "uuid|UUID"
ozt_expect_error "open with another chunk size" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "chunk_size": 1048576, "timeout_ms": '$to'}' "chunk"
# Through the rpc.py plugin's flags; cache_mb 0 means "no cache", not "default".
checks=$((checks + 1))
if out=$(ozt_rpc "$sock" bdev_ozone_create oz0 "$uri" --timeout-ms "$to" --retry-ms 0 --cpumask 0x1 \
	--journal none --journal-mb 32 --cache-mb 0 2>&1) && jq -e '.action == "opened"' <<< "$out" > /dev/null; then
	echo "  ok   reopen for save_config (rpc.py): retry_ms 0, cpumask 0x1, journal none, journal_mb 32, cache_mb 0"
else
	ozt_fail "reopen for save_config through rpc.py: $out"
fi
jn='.journal == "none" and .journal_mb == 32 and .cache_mb == 0'
ozt_expect_ok "settings: journal none, journal_mb 32, cache_mb 0" bdev_get_bdevs '{"name": "oz0"}' ".result[0].driver_specific.ozone.settings | $jn"
ozt_expect_ok "statistics include retries" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.statistics.retries == 0'
ozt_expect_ok "malloc delete" bdev_malloc_delete '{"name": "m0"}'
ozt_rpc "$sock" save_config > "$OZT_WORK/saved.json" || ozt_fail "save_config failed"
jq -c '.subsystems[] | select(.subsystem == "bdev") | .config[] | select(.method == "bdev_ozone_create")' "$OZT_WORK/saved.json" | sed 's/^/  saved: /'
checks=$((checks + 1))
jq -e ".subsystems[] | select(.subsystem == \"bdev\") | .config[] | select(.method == \"bdev_ozone_create\") | .params.uuid == \"$uuid\"" "$OZT_WORK/saved.json" > /dev/null ||
	ozt_fail "saved config lacks bdev_ozone_create with uuid $uuid"
checks=$((checks + 1))
jq -e '.subsystems[] | select(.subsystem == "bdev") | .config[] | select(.method == "bdev_ozone_create") | .params.retry_ms == 0' "$OZT_WORK/saved.json" > /dev/null ||
	ozt_fail "saved config lacks retry_ms 0 (0 means: no retry, it is not 'default')"
checks=$((checks + 1))
jq -e '.subsystems[] | select(.subsystem == "bdev") | .config[] | select(.method == "bdev_ozone_create") | .params.cpumask == "0x1"' "$OZT_WORK/saved.json" > /dev/null ||
	ozt_fail "saved config lacks cpumask 0x1"
checks=$((checks + 1))
jq -e ".subsystems[] | select(.subsystem == \"bdev\") | .config[] | select(.method == \"bdev_ozone_create\") | .params | $jn" "$OZT_WORK/saved.json" > /dev/null ||
	ozt_fail "saved config lacks journal none, journal_mb 32 and cache_mb 0 (0 means: no cache)"
checks=$((checks + 1))
jq -e '.subsystems[] | select(.subsystem == "bdev") | .config[] | select(.method == "bdev_ozone_create") | .params | has("workers") | not' "$OZT_WORK/saved.json" > /dev/null ||
	ozt_fail "saved config has workers, which was never given (the engine's default must stay the engine's)"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"

ozt_log "part 2: data through spdk_dd with the saved config, restart spdk_tgt from it"
jq '{subsystems: [.subsystems[] | select(.subsystem == "bdev")]}' "$OZT_WORK/saved.json" > "$OZT_WORK/bdev-only.json"
head -c $((4 << 20)) /dev/urandom > "$OZT_WORK/pattern.bin"
ozt_start_app dd "$OZT_WORK/dd-write.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-only.json" --if "$OZT_WORK/pattern.bin" --ob oz0 --bs 1048576
wait "$dd" || ozt_fail "spdk_dd write failed (log $OZT_WORK/dd-write.log)"
start_tgt 2 "$OZT_WORK/saved.json"
ozt_expect_ok "restarted: same uuid" bdev_get_bdevs '{"name": "oz0"}' ".result[0].uuid == \"$uuid\""
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
ozt_start_app dd "$OZT_WORK/dd-read.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" \
	--json "$OZT_WORK/bdev-only.json" --ib oz0 --of "$OZT_WORK/readback.bin" --bs 1048576 --count 4
wait "$dd" || ozt_fail "spdk_dd read failed (log $OZT_WORK/dd-read.log)"
checks=$((checks + 1))
if cmp "$OZT_WORK/pattern.bin" "$OZT_WORK/readback.bin"; then
	echo "  ok   4 MiB pattern written before the restart reads back identical"
else
	ozt_fail "pattern read back differs"
fi

ozt_log "part 3: the restarted target runs the saved cpumask; delete with destroy_data"
start_tgt 3 "$OZT_WORK/saved.json"
ozt_expect_ok "restarted: cpumask kept" bdev_get_bdevs '{"name": "oz0"}' '.result[0].driver_specific.ozone.cpumask == "0x1"'
ozt_expect_ok "restarted: journal none, journal_mb 32, cache_mb 0 kept" bdev_get_bdevs '{"name": "oz0"}' ".result[0].driver_specific.ozone.settings | $jn"
ozt_expect_ok "delete destroy_data" bdev_ozone_delete '{"name": "oz0", "destroy_data": true}'
ozt_expect_error "gone after destroy" bdev_ozone_create '{"name": "oz0", "uri": "'"$uri"'", "timeout_ms": '$to'}' "no size|pass a size|no volume"

ozt_log "part 4: the original quick start (deprecated aliases, --size in bytes, a bucket's root)"
qs_uri=ofs://$OZONE_OM_ADDRESS/spdktest/qs-$OZT_RUN_ID
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri; ozt_destroy_volume $qs_uri"
checks=$((checks + 1))
if out=$(ozt_rpc "$sock" ozone_bdev_create --name ozone0 --size 1073741824 --ozone-uri "$qs_uri" --block-size 4096 2>&1) &&
	jq -e '.action == "created"' <<< "$out" > /dev/null; then
	echo "  ok   rpc.py ozone_bdev_create --name ozone0 --size 1073741824 --ozone-uri $qs_uri --block-size 4096: $(jq -c . <<< "$out")"
else
	ozt_fail "quick start ozone_bdev_create: $out"
fi
ozt_expect_ok "quick start bdev: 1 GiB, 4096-byte blocks, at the bucket's root" bdev_get_bdevs '{"name": "ozone0"}' ".result[0] | .block_size == 4096 and .num_blocks * .block_size == 1073741824 and .driver_specific.ozone.uri == \"$qs_uri\""
checks=$((checks + 1))
grep -q 'ozone_bdev_create is deprecated' "$OZT_WORK/tgt-3.log" ||
	ozt_fail "the target did not log the alias as deprecated (SPDK's alias mechanism not used?)"
ozt_expect_error "alias takes the same decoder" ozone_bdev_create '{"name": "x", "ozone_uri": "'"$qs_uri"'", "bogus": 1}' "unknown parameter 'bogus'" $P
checks=$((checks + 1))
if out=$(ozt_rpc "$sock" ozone_bdev_delete --name ozone0 --destroy-data 2>&1); then
	echo "  ok   rpc.py ozone_bdev_delete --name ozone0 --destroy-data"
else
	ozt_fail "quick start ozone_bdev_delete: $out"
fi
ozt_expect_error "quick start volume gone" bdev_ozone_create '{"name": "ozone0", "uri": "'"$qs_uri"'", "timeout_ms": '$to'}' "no size|pass a size|no volume"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
ozt_summary "$checks checks"
