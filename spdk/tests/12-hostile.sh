#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: hostile JSON-RPC input. rpc_fuzz.py sends OZT_FUZZ_COUNT (default 500, CI-sized)
# generated bdev_ozone_create / bdev_ozone_delete / bdev_ozone_resize requests (seed OZT_FUZZ_SEED) to a running
# target: wrong types, huge and negative numbers, empty and 10,000-character strings, URIs with
# "..", "%00", NULs, unknown schemes and paths outside the test's directories, names SPDK would
# truncate. Every request must be answered (an error with a message, or a bdev inside the test's
# directory, which is deleted again), the target must stay up, and no file:// URI may escape.
# The hand-written cases with exact messages are in 03-rpc-config.sh.
# Owns: one target, its work dir, volumes under the test's volume root.
# Must never: create anything outside $OZT_WORK and the test's volume root.

OZT_NAME=hostile
source "$(dirname "$0")/lib.sh"
ozt_setup

sock=$OZT_WORK/tgt.sock
count=${OZT_FUZZ_COUNT:-500}
seed=${OZT_FUZZ_SEED:-$(date +%s)}
root=$(ozt_uri fz)
ozt_log "target with $count hostile requests, seed $seed (rerun with OZT_FUZZ_SEED=$seed), volumes under $root"
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 1024 -u -r "$sock" -m 0x1
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "the target did not start"; ozt_summary; exit 1; }
if ! python3 "$OZT_DIR/rpc_fuzz.py" "$sock" "$root" "$OZT_WORK" "$count" "$seed"; then
	ozt_fail "hostile input (see above; seed $seed)"
fi
kill -0 "$tgt" 2> /dev/null || ozt_fail "the target died"
grep -qiE 'segmentation|core dumped|panicked|Aborted' "$OZT_WORK/tgt.log" && ozt_fail "the target crashed or panicked"
ozt_summary "$count hostile requests, seed $seed"
