#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: faults under load. bdevperf -w verify runs on an ozone bdev while
#  1. one datanode is frozen (SIGSTOP) for OZT_FAULT_SECS: I/O must go on, no miscompare
#     (not met on a 3-datanode cluster: reported as KNOWN FAILURE unless OZT_DN_FAULT_STRICT=1;
#     resumption, no miscompare and no crash are enforced);
#  2. the Ozone Manager is frozen (SIGSTOP) for OZT_FAULT_SECS: I/O may fail or wait, but
#     must resume within OZT_RESUME_SECS of SIGCONT, and the app must never crash.
# Progress is sampled with bdev_get_iostat (completed ops) every few seconds.
# Must never: SIGKILL a shared daemon, or leave one stopped (a trap sends SIGCONT).

OZT_NAME=faults
source "$(dirname "$0")/lib.sh"
ozt_setup

fault_secs=${OZT_FAULT_SECS:-30}
resume_secs=${OZT_RESUME_SECS:-120}
status=$("$OZ_TOP/scripts/ozone-local" status)
dn_pid=$(awk '$1 == "dn3" && $2 == "running" {print $4}' <<< "$status")
om_pid=$(awk '$1 == "om" && $2 == "running" {print $4}' <<< "$status")
if [[ -z $dn_pid || -z $om_pid ]]; then
	echo "$status"
	echo "FAIL: faults (cluster not fully running: need om and dn3)"
	exit 1
fi
STOPPED=""
cont_all() { [[ -n $STOPPED ]] && kill -CONT $STOPPED 2> /dev/null; STOPPED=""; }
OZT_CLEANUP_EXTRA="cont_all"
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="cont_all; ozt_destroy_volume $uri"

ops() { # completed read+write ops of Ozone0 in the bdevperf app
	local o
	o=$(python3 "$SPDK_RPC_PY" -s "$1" -t 10 bdev_get_iostat --names Ozone0 2> /dev/null |
		jq -r '.bdevs[0] | (.num_read_ops + .num_write_ops)' 2> /dev/null)
	echo "${o:-?}"
}
rw() { # "reads/writes" completed, for the log
	python3 "$SPDK_RPC_PY" -s "$1" -t 10 bdev_get_iostat --names Ozone0 2> /dev/null |
		jq -r '.bdevs[0] | "\(.num_read_ops)r/\(.num_write_ops)w"' 2> /dev/null || echo "?"
}

# run_fault <label> <pid to freeze>
run_fault() {
	local label=$1 victim=$2 log=$OZT_WORK/bdevperf-$1.log bsock=$OZT_WORK/bp-$1.sock
	local runtime=$((20 + fault_secs + resume_secs + 20)) i before during after_cont resumed=""
	ozt_bdev_config "$(ozt_create_json Ozone0 "$uri-$label" $((256 << 20)) $((256 << 10)))" > "$OZT_WORK/$label.json"
	OZT_CLEANUP_EXTRA="cont_all; ozt_destroy_volume $uri-$label"
	# -f keeps the job going after a failed I/O, so that resumption after SIGCONT shows;
	# failures still count (Fail/s, rc) and fail the datanode case.
	local cont=-f
	ozt_log "[$label] bdevperf verify -o 4096 -q 32 -t $runtime $cont"
	ozt_start_app bp "$log" bdevperf --no-huge -s 1024 -u -r "$bsock" --json "$OZT_WORK/$label.json" \
		-q 32 -o 4096 -w verify -t "$runtime" $cont
	for ((i = 0; i < 300; i++)); do
		grep -q 'Running I/O' "$log" 2> /dev/null && break
		kill -0 "$bp" 2> /dev/null || break
		sleep 1
	done
	sleep 15
	before=$(ops "$bsock")
	ozt_log "[$label] ops before: $before ($(rw "$bsock")); SIGSTOP $label (pid $victim) for ${fault_secs}s"
	STOPPED=$victim
	kill -STOP "$victim"
	local t0=$(date +%s) samples="" mid=""
	while (($(date +%s) - t0 < fault_secs)); do
		sleep 5
		samples+=" $(rw "$bsock")"
		# ops completed once the fault has had 10 s to bite (in-flight work drained)
		[[ -z $mid ]] && (($(date +%s) - t0 >= 10)) && mid=$(ops "$bsock")
	done
	during=$(ops "$bsock")
	cont_all
	ozt_log "[$label] SIGCONT; ops sampled while stopped:$samples"
	t0=$(date +%s)
	while (($(date +%s) - t0 < resume_secs)); do
		sleep 5
		after_cont=$(ops "$bsock")
		if [[ $after_cont != "?" && $during != "?" ]] && ((after_cont > during)); then
			resumed=$(($(date +%s) - t0))
			break
		fi
	done
	wait "$bp"
	local rc=$?
	local total=$(tr '\r' '\n' < "$log" | grep -E '^ *Total *:' | tail -1)
	local fails=$(awk '{print $5}' <<< "$total")
	echo "  $total"
	echo "  [$label] ops: before $before, 10 s into the stop $mid, end of stop $during, resumed ${resumed:-never}s after SIGCONT; bdevperf rc $rc"
	tr '\r' '\n' < "$log" | grep -E 'ERROR|WARN' | grep -v json_config | sed -E 's/^\[?[0-9]{4}-[0-9-]+ [0-9:.,]+\]? *//' |
		cut -c1-220 | sort | uniq -c | sort -rn | head -4 | sed 's/^/    /'
	if [[ $label == datanode ]]; then
		# "I/O goes on while a datanode is down" is NOT met yet: on a cluster of exactly three
		# datanodes, RATIS/THREE chunk writes fail while one is down (docs/spdk-module.md).
		# The checks stay as they are; they are reported as a loud KNOWN FAILURE (issue 3 open)
		# unless OZT_DN_FAULT_STRICT=1, which makes them fail the script.
		local dn_fail=ozt_fail
		[[ ${OZT_DN_FAULT_STRICT:-0} == 1 ]] || dn_fail=ozt_known_failure
		[[ $during != "?" && $mid != "?" && -n $mid ]] && ((during > mid)) ||
			$dn_fail "[$label] I/O stalled while a datanode was stopped (ops $mid -> $during in the last $((fault_secs - 10))s)"
		((rc == 0)) || $dn_fail "[$label] bdevperf rc $rc"
		if [[ -n $fails ]] && awk -v f="$fails" 'BEGIN {exit !(f > 0)}'; then
			$dn_fail "[$label] I/O failed around the datanode stop (Fail/s $fails; see the errors above)"
		fi
		[[ -n $resumed ]] || ozt_fail "[$label] I/O did not resume within ${resume_secs}s of SIGCONT"
	else
		[[ -n $resumed ]] || ozt_fail "[$label] I/O did not resume within ${resume_secs}s of SIGCONT"
		((rc == 0)) || echo "  [$label] note: I/O failed during the outage (rc $rc, fail/s ${fails:-?}); allowed"
	fi
	grep -qiE 'miscompare|mismatch' "$log" && ozt_fail "[$label] miscompare (data corruption)"
	grep -qiE 'segmentation|core dumped|panicked|Aborted' "$log" && ozt_fail "[$label] the app crashed"
	RESULTS+=("$label: ops $before/$mid/$during (before/10s/end of stop), resumed ${resumed:-never}s after SIGCONT, fail/s ${fails:-?}")
}

# A known failure is printed loudly and counted, but does not fail the script.
KNOWN=0
ozt_known_failure() {
	echo "[$OZT_NAME] KNOWN FAILURE (not fixed; issue 3 open): $*"
	KNOWN=$((KNOWN + 1))
}

RESULTS=()
run_fault datanode "$dn_pid"
run_fault om "$om_pid"
((KNOWN == 0)) || RESULTS+=("$KNOWN KNOWN FAILURE(S) in the datanode case: I/O does not go on with 1 of 3 datanodes down")
ozt_summary "$(IFS=';'; echo "${RESULTS[*]}")"
