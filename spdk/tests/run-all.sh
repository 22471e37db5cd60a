#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Runs every SPDK validation in order and prints one summary line per script and a total.
# Owns: ordering and the final verdict. Must never: build SPDK. When no SPDK is installed it
# prints a loud "SPDK TESTS SKIPPED" banner and exits 0 (CI without SPDK stays green, loudly).
# Env: OZT_ONLY="01 03" runs a subset; the scripts' own variables (OZT_VERIFY_TIME, ...) pass through.

here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"
if ! ozt_find_spdk; then
	ozt_skip_banner "no SPDK found (no SPDK_ROOT, no pkg-config spdk_bdev, no /opt/spdk)"
	exit 0
fi

scripts=(01-bdevio.sh 02-bdevperf-verify.sh 03-rpc-config.sh 04-lvs.sh 05-nvmf-tcp.sh 06-iscsi.sh 07-faults.sh)
summary=()
failed=0
for s in "${scripts[@]}"; do
	if [[ -n ${OZT_ONLY:-} ]] && ! grep -qw "${s%%-*}" <<< "$OZT_ONLY"; then
		continue
	fi
	echo "=================== $s ==================="
	"$here/$s" 2>&1 | tee "/tmp/ozt-run-all-${s%.sh}.log"
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^(PASS|FAIL): ' "/tmp/ozt-run-all-${s%.sh}.log" | tail -1)
	((rc == 0)) || failed=$((failed + 1))
	summary+=("${line:-FAIL: $s (no summary line, rc $rc)}")
done
echo "=================== summary ==================="
printf '%s\n' "${summary[@]}"
if ((failed == 0)); then
	echo "ALL SPDK TESTS PASSED (${#summary[@]} scripts)"
else
	echo "SPDK TESTS FAILED: $failed of ${#summary[@]} scripts"
	exit 1
fi
