#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Runs every SPDK validation, on both ways of loading the module, and prints one summary
# line per run and a tally.
#   ozone_tgt route: the target is our ozone_tgt (module linked in);
#   preload route:   the target is SPDK's stock spdk_tgt with LD_PRELOAD of the module.
# Scripts that start a target run on both routes (06-iscsi and the long 07-faults, whose
# load generator is a stock bdevperf, once); scripts that only use stock tools (bdevio,
# bdevperf, spdk_dd: always preloaded) and 08-make run once.
# Owns: ordering, the routes, and the final verdict. Must never: build SPDK.
# When no SPDK is installed it prints the loud banner, "SKIPPED: spdk: <reason>" and the
# tally, and exits 0 (CI without SPDK stays green, loudly).
# The last line is always "spdk: N passed, N failed[, N skipped]" (for scripts/test-all).
# Env: OZT_ONLY="01 03" runs a subset; OZT_ROUTES="ozone_tgt preload" picks routes; the
# scripts' own variables (OZT_VERIFY_TIME, OZT_NVMF_PORT, OZT_ISCSI_PORT, ...) pass through.
# OZT_FULL=1 also runs the runs marked ":full" (the preload route of scripts whose module
# code path the preloaded stock tools and 04-lvs already cover); without it they are
# reported as skipped, by name, to keep CI under its hour.

here=$(cd "$(dirname "$0")" && pwd)
source "$here/lib.sh"

# script:route ("-" = the script picks its tools itself; it runs once).
runs=(
	01-bdevio.sh:-
	02-bdevperf-verify.sh:-
	03-rpc-config.sh:ozone_tgt 03-rpc-config.sh:preload:full
	04-lvs.sh:ozone_tgt 04-lvs.sh:preload
	05-nvmf-tcp.sh:ozone_tgt 05-nvmf-tcp.sh:preload:full
	06-iscsi.sh:ozone_tgt
	07-faults.sh:-
	08-make.sh:-
	09-io-path.sh:ozone_tgt 09-io-path.sh:preload:full
	10-cpumask.sh:ozone_tgt 10-cpumask.sh:preload:full
	11-lease.sh:ozone_tgt
	12-hostile.sh:ozone_tgt
	13-resize.sh:ozone_tgt
	14-csi.sh:ozone_tgt
	15-cinder.sh:ozone_tgt
)
routes=${OZT_ROUTES:-"ozone_tgt preload"}

selected=() deferred=()
for r in "${runs[@]}"; do
	s=${r%%:*} route=${r#*:}
	route=${route%%:*}
	if [[ -n ${OZT_ONLY:-} ]] && ! grep -qw "${s%%-*}" <<< "$OZT_ONLY"; then
		continue
	fi
	if [[ $route != - ]] && ! grep -qw "$route" <<< "$routes"; then
		continue
	fi
	if [[ $r == *:full && ${OZT_FULL:-0} != 1 ]]; then
		deferred+=("$s:$route")
		continue
	fi
	selected+=("$s:$route")
done

if ! ozt_find_spdk; then
	reason="no SPDK found (no SPDK_ROOT, no pkg-config spdk_bdev, no /opt/spdk)"
	ozt_skip_banner "$reason"
	echo "SKIPPED: spdk: $reason"
	echo "spdk: 0 passed, 0 failed, $((${#selected[@]} + ${#deferred[@]})) skipped"
	exit 0
fi

logdir=${OZT_LOGDIR:-$(mktemp -d /tmp/ozt-run-all.XXXXXX)}
mkdir -p "$logdir"
summary=()
passed=0 failed=0 skipped=0
for r in "${selected[@]}"; do
	s=${r%%:*} route=${r##*:}
	if [[ $route == - ]]; then
		tag="" log=$logdir/${s%.sh}.log
	else
		tag=" [$route]" log=$logdir/${s%.sh}-$route.log
	fi
	echo "=================== $s$tag ==================="
	if [[ $route == - ]]; then
		"$here/$s" 2>&1 | tee "$log"
	else
		OZT_TARGET=$route "$here/$s" 2>&1 | tee "$log"
	fi
	rc=${PIPESTATUS[0]}
	line=$(grep -E '^(PASS|FAIL|SKIPPED): ' "$log" | tail -1)
	if ((rc != 0)); then
		failed=$((failed + 1))
		line=${line:-FAIL: $s (no summary line, rc $rc)}
	elif [[ $line == SKIPPED:* ]] || grep -q 'SPDK TESTS SKIPPED' "$log"; then
		skipped=$((skipped + 1))
		line="SKIPPED: $s${line:+ (${line#SKIPPED: })}"
	else
		passed=$((passed + 1))
		line=${line:-PASS: $s}
	fi
	summary+=("$line$tag")
done
for r in "${deferred[@]}"; do
	skipped=$((skipped + 1))
	summary+=("SKIPPED: ${r%%:*} (not in the CI-sized set; OZT_FULL=1 runs it) [${r##*:}]")
done
echo "=================== summary (logs: $logdir) ==================="
printf '%s\n' "${summary[@]}"
if ((failed == 0)); then
	echo "ALL SPDK TESTS PASSED ($passed runs$( ((skipped)) && echo "; $skipped not run, see above"))"
else
	echo "SPDK TESTS FAILED: $failed of ${#summary[@]} runs"
fi
echo "spdk: $passed passed, $failed failed$( ((skipped)) && echo ", $skipped skipped")"
((failed == 0))
