#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: the build and install layout, and the module as a preloaded library.
#  1. `make install PREFIX=<tmp>` at the top level (engine, SPDK module, ozone_tgt, nbdkit
#     plugin, header, rpc plugin) puts every file where the top-level Makefile says, and the
#     installed ozone_tgt starts and answers RPCs with the ozone RPCs registered (its
#     deprecated aliases too);
#  2. the module loads into a process that is not an SPDK app (as the JVM's children
#     inherit LD_PRELOAD) and leaves the environment as it found it: LD_PRELOAD still
#     names it (it used to rewrite LD_PRELOAD for the whole process).
# Env: OZT_MAKE_ARGS: extra make arguments (e.g. NBDKIT=no: then no nbdkit plugin is
# expected).
# Must never: install outside its temporary prefix, or build SPDK.

OZT_NAME=make
source "$(dirname "$0")/lib.sh"
ozt_setup

prefix=$OZT_WORK/prefix
ozt_log "make install PREFIX=$prefix"
# shellcheck disable=SC2086 # OZT_MAKE_ARGS is a list of words
if nice make -C "$OZ_TOP" install PREFIX="$prefix" SPDK_ROOT="$SPDK_PREFIX" ${OZT_MAKE_ARGS:-} > "$OZT_WORK/install.log" 2>&1; then
	echo "  make install: ok"
else
	tail -20 "$OZT_WORK/install.log"
	ozt_fail "make install failed (log $OZT_WORK/install.log)"
fi
want=(bin/ozbd bin/ozone_tgt lib/libspdk_bdev_ozone.so include/ozbd.h
	share/bdev_ozone/rpc_plugin/bdev_ozone_rpc.py)
if pkg-config --exists nbdkit && [[ " ${OZT_MAKE_ARGS:-} " != *" NBDKIT=no "* ]]; then
	want+=(lib/nbdkit/plugins/nbdkit-ozbd-plugin.so)
else
	echo "  (no nbdkit headers, or NBDKIT=no: the nbdkit plugin is not expected)"
fi
for f in "${want[@]}"; do
	if [[ -s $prefix/$f ]]; then
		echo "  installed: $f"
	else
		ozt_fail "make install did not install $f"
	fi
done
for f in bin/ozbd bin/ozone_tgt; do
	[[ -x $prefix/$f ]] || ozt_fail "$f is not executable"
done
grep -q 'SPDK NOT FOUND' "$OZT_WORK/install.log" && ozt_fail "make install said SPDK was not found"
extra=$(cd "$prefix" && find . -type f | sed 's#^\./##' | grep -vxF -f <(printf '%s\n' "${want[@]}"))
[[ -z $extra ]] || echo "  also installed: $(echo $extra)"

ozt_log "the installed ozone_tgt answers, with the ozone RPCs"
sock=$OZT_WORK/tgt.sock
nice -n 5 "$prefix/bin/ozone_tgt" --no-huge -s 1024 -u -r "$sock" --disable-cpumask-locks > "$OZT_WORK/tgt.log" 2>&1 &
tgt=$!
OZT_PIDS+=("$tgt")
if ozt_wait_sock "$sock" "$tgt" 60; then
	methods=$(python3 "$OZT_DIR/rpc_raw.py" "$sock" rpc_get_methods '{"include_aliases": true}' | jq -r '.result[]')
	for m in bdev_ozone_create bdev_ozone_delete ozone_bdev_create ozone_bdev_delete \
		nvmf_create_transport iscsi_create_portal_group bdev_lvol_create_lvstore bdev_malloc_create; do
		grep -qx "$m" <<< "$methods" || ozt_fail "installed ozone_tgt lacks RPC $m"
	done
	echo "  ozone_tgt: $(python3 "$OZT_DIR/rpc_raw.py" "$sock" spdk_get_version '' | jq -r .result.version), $(grep -c . <<< "$methods") RPCs"
	ozt_stop_app "$tgt" 60 || ozt_fail "ozone_tgt did not stop cleanly"
else
	ozt_fail "installed ozone_tgt did not start (log $OZT_WORK/tgt.log)"
fi

ozt_log "the module in a non-SPDK process"
mod=$prefix/lib/libspdk_bdev_ozone.so
out=$(LD_PRELOAD=$mod python3 -c 'import os; print(os.environ.get("LD_PRELOAD", "<unset>"))' 2>&1)
if [[ $out == "$mod" ]]; then
	echo "  python3 with the module preloaded starts, and sees LD_PRELOAD=$out"
else
	ozt_fail "with the module preloaded, a plain process saw LD_PRELOAD=$out (expected $mod, untouched)"
fi
out=$(LD_PRELOAD=$mod /bin/sh -c 'id -u' 2>&1)
[[ $out =~ ^[0-9]+$ ]] || ozt_fail "a shell and id with the module preloaded failed: $out"
ozt_summary "${#want[@]} files installed; ozone_tgt runs; the module loads anywhere"
