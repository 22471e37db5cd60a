#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: iSCSI export checked with libiscsi's iscsi-test-cu. One target (OZT_TARGET)
# exports two LUN-0 targets on 127.0.0.1: a Malloc bdev (the baseline) and an ozone bdev,
# same size and block size. The same SCSI families run against both; the ozone bdev must
# pass every test the Malloc bdev passes. Both lists and the difference are printed.
# Needs: iscsi-test-cu (Debian: apt-get install libiscsi-bin).
# Env: OZT_ISCSI_FAMILIES (space-separated, default below), OZT_ISCSI_PORT.

OZT_NAME=iscsi
source "$(dirname "$0")/lib.sh"
if ! command -v iscsi-test-cu > /dev/null; then
	ozt_skip_banner "iscsi-test-cu not installed (apt-get install libiscsi-bin)"
	echo "FAIL: iscsi (iscsi-test-cu missing)"
	exit 1
fi
ozt_setup

# One CDB size per family by default (10 and 16 differ only in CDB decoding in SPDK's SCSI
# layer, not in what reaches the bdev); OZT_ISCSI_FAMILIES=all adds Read6/12/16, Write12/16,
# Verify12/16, WriteVerify*, WriteSame16, Prefetch16.
families=${OZT_ISCSI_FAMILIES:-"TestUnitReady Inquiry ReadCapacity10 ReadCapacity16 Read10 Write10 Verify10 WriteSame10 Unmap Prefetch10 OrWrite CompareAndWrite"}
[[ $families == all ]] && families="TestUnitReady Inquiry ReadCapacity10 ReadCapacity16 Read6 Read10 Read12 Read16 Write10 Write12 Write16 Verify10 Verify12 Verify16 WriteVerify10 WriteVerify12 WriteVerify16 WriteSame10 WriteSame16 Unmap Prefetch10 Prefetch16 OrWrite CompareAndWrite"
port=${OZT_ISCSI_PORT:-$((3260 + 100 + $$ % 1000))}
# 512-byte blocks: the Write tests send 1..256 blocks per command, so bytes moved (and the
# run time on Ozone, where each partial-chunk write is a chunk read-modify-write) scale with
# the block size. 64 KiB chunks: SPDK's iSCSI target submits writes as <= 64 KiB bdev writes.
bs=512
chunk=65536
size_mb=64
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
sock=$OZT_WORK/tgt.sock
iqn_base=iqn.2016-06.io.spdk

ozt_log "target: spdk_tgt with Malloc0 and Ozone0 ($size_mb MiB, $bs B blocks, chunk $chunk) on 127.0.0.1:$port"
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 2048 -u -r "$sock" -m 0x1
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; ozt_summary; exit 1; }
{
	ozt_rpc "$sock" bdev_malloc_create -b Malloc0 "$size_mb" "$bs" &&
		ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri" -s "${size_mb}M" -b "$bs" -c "$chunk" --timeout-ms "$OZT_TIMEOUT_MS" &&
		ozt_rpc "$sock" iscsi_create_portal_group 1 "127.0.0.1:$port" &&
		ozt_rpc "$sock" iscsi_create_initiator_group 2 ANY 127.0.0.1/32 &&
		ozt_rpc "$sock" iscsi_create_target_node malloc0 "Malloc baseline" Malloc0:0 1:2 64 -d &&
		ozt_rpc "$sock" iscsi_create_target_node ozone0 "Ozone disk" Ozone0:0 1:2 64 -d
} > "$OZT_WORK/setup.log" 2>&1 || { cat "$OZT_WORK/setup.log"; ozt_fail "target setup failed"; ozt_summary; exit 1; }

# run_families <target> -> $OZT_WORK/<target>.results ("<test> passed|FAILED" lines)
run_families() {
	local tgtname=$1 fam out=$OZT_WORK/$1.log
	: > "$out"
	for fam in $families; do
		ozt_log "  $tgtname: SCSI.$fam"
		timeout "${OZT_ISCSI_FAMILY_TIMEOUT:-1800}" iscsi-test-cu -d -v -t "SCSI.$fam" \
			"iscsi://127.0.0.1:$port/$iqn_base:$tgtname/0" >> "$out" 2>&1 ||
			echo "iscsi-test-cu SCSI.$fam exited with $?" >> "$out"
	done
	tr '\r' '\n' < "$out" | awk -f "$OZT_DIR/iscsi_parse.awk" | sort -u > "$OZT_WORK/$tgtname.results"
}

run_families malloc0
run_families ozone0
kill -0 "$tgt" 2> /dev/null || ozt_fail "spdk_tgt died (log $OZT_WORK/tgt.log)"

m_pass=$(awk '$2 == "passed" {print $1}' "$OZT_WORK/malloc0.results" | sort)
o_pass=$(awk '$2 == "passed" {print $1}' "$OZT_WORK/ozone0.results" | sort)
echo "== Malloc0: $(wc -l < "$OZT_WORK/malloc0.results") tests, $(grep -c . <<< "$m_pass") passed"
sed 's/^/  malloc /' "$OZT_WORK/malloc0.results"
echo "== Ozone0: $(wc -l < "$OZT_WORK/ozone0.results") tests, $(grep -c . <<< "$o_pass") passed"
sed 's/^/  ozone  /' "$OZT_WORK/ozone0.results"
missing=$(comm -23 <(echo "$m_pass") <(echo "$o_pass") | grep .)
extra=$(comm -13 <(echo "$m_pass") <(echo "$o_pass") | grep .)
echo "== passed on Malloc0 but not on Ozone0: ${missing:-none}"
echo "== passed on Ozone0 but not on Malloc0: ${extra:-none}"
[[ -z $missing ]] || ozt_fail "ozone fails tests that Malloc passes: $(echo $missing)"
(($(grep -c . <<< "$m_pass") > 0)) || ozt_fail "no test passed on Malloc0: the harness is broken"
ozt_rpc "$sock" bdev_get_bdevs -b Ozone0 | jq -c '.[0].driver_specific.ozone.statistics' | sed 's/^/  ozone stats: /'
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
ozt_summary "Malloc0 $(grep -c . <<< "$m_pass")/$(wc -l < "$OZT_WORK/malloc0.results") passed, Ozone0 $(grep -c . <<< "$o_pass")/$(wc -l < "$OZT_WORK/ozone0.results") passed"
