#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# The SPDK part of scripts/demo: serve an existing volume from spdk_tgt (module preloaded)
# over NVMe-oF TCP on 127.0.0.1, read the whole namespace back through SPDK's own NVMe/TCP
# initiator (spdk_dd + bdev_nvme), and compare it with `ozbd export` of the same volume.
# Use: demo-nvmf.sh <volume uri>     (the volume must exist; it is left as it was)
# Must never: write to the volume, or fail the demo when SPDK is not installed (loud skip).

OZT_NAME=demo_nvmf
source "$(dirname "$0")/lib.sh"
[[ -n ${1:-} ]] || { echo "usage: $0 <volume uri>" >&2; exit 2; }
uri=$1
ozt_setup

port=$((4420 + 700 + $$ % 200))
nqn=nqn.2016-06.io.spdk:ozone-demo-$$
sock=$OZT_WORK/tgt.sock
ozt_log "spdk_tgt: bdev_ozone_create Demo0 $uri, export over NVMe/TCP 127.0.0.1:$port"
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 1024 -u -r "$sock" -m 0x1
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; ozt_summary; exit 1; }
if ! {
	ozt_rpc "$sock" bdev_ozone_create Demo0 "$uri" --timeout-ms "$OZT_TIMEOUT_MS" &&
		ozt_nvmf_export "$sock" "$nqn" Demo0 "$port"
} > "$OZT_WORK/setup.log" 2>&1; then
	cat "$OZT_WORK/setup.log"
	ozt_fail "target setup failed"
	ozt_summary
	exit 1
fi
grep -E '"(action|uuid)"' "$OZT_WORK/setup.log" | sed 's/^ */  /'

ozt_nvmf_initiator_json "$port" "$nqn" > "$OZT_WORK/ini.json"
ozt_log "spdk_dd: read NVMe0n1 (NVMe/TCP) into a file"
ozt_start_app dd "$OZT_WORK/dd.log" spdk_dd --no-huge -s 1024 -u -r "$OZT_WORK/dd.sock" -m 0x2 \
	--json "$OZT_WORK/ini.json" --ib NVMe0n1 --of "$OZT_WORK/via-nvmf.img" --bs 1048576
wait "$dd" || ozt_fail "spdk_dd failed (log $OZT_WORK/dd.log)"
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"

ozt_log "ozbd export of the same volume, and compare"
"$OZ_TOP/target/release/ozbd" export "$uri" "$OZT_WORK/via-ozbd.img" > "$OZT_WORK/export.log" 2>&1 ||
	{ cat "$OZT_WORK/export.log"; ozt_fail "ozbd export failed"; }
if cmp "$OZT_WORK/via-nvmf.img" "$OZT_WORK/via-ozbd.img"; then
	ozt_log "OK: $(stat -c %s "$OZT_WORK/via-nvmf.img") bytes read through SPDK NVMe/TCP equal the volume"
else
	ozt_fail "data read through NVMe/TCP differs from ozbd export"
fi
rm -f "$OZT_WORK/via-nvmf.img" "$OZT_WORK/via-ozbd.img"
ozt_summary "NVMe-oF/TCP export of $uri read back through SPDK"
