#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation 1: SPDK's bdevio CUnit suite on an ozone bdev (fresh volume, 64 MiB,
# 256 KiB chunks), loaded from a JSON config with the module LD_PRELOADed.
# Must never: reuse a volume another test writes.

OZT_NAME=bdevio
source "$(dirname "$0")/lib.sh"
ozt_setup

uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
ozt_bdev_config "$(ozt_create_json Ozone0 "$uri" $((64 << 20)) $((256 << 10)))" > "$OZT_WORK/bdevio.json"

ozt_log "bdevio on $uri"
# bdevio hard-codes core mask 0x7; on 2 CPUs map its 3 lcores onto the CPUs we have.
ncpu=$(nproc)
lcores="(0-2)@(0-$((ncpu > 1 ? 1 : 0)))"
ozt_start_app pid "$OZT_WORK/bdevio.log" bdevio --no-huge -s 1024 -u -r "$OZT_WORK/bdevio.sock" \
	--json "$OZT_WORK/bdevio.json" -m "--lcores=$lcores"
wait "$pid"
rc=$?
grep -E 'Suite:|Test:.*(passed|FAILED)|Run Summary|suites|tests|asserts|ERROR' "$OZT_WORK/bdevio.log" | tail -40
tests=$(awk '/^ *tests/ {print $3" of "$2" passed, "$5" failed"}' "$OZT_WORK/bdevio.log")
if ((rc != 0)); then
	ozt_fail "bdevio exited with $rc (log: $OZT_WORK/bdevio.log)"
fi
if ! grep -qE '^ *tests +[0-9]+ +[0-9]+ +[0-9]+ +0 ' "$OZT_WORK/bdevio.log"; then
	ozt_fail "bdevio reported failed tests"
fi
ozt_summary "bdevio tests: ${tests:-none run}"
