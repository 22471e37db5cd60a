#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: faults under load. bdevperf -w verify runs on an ozone bdev while
#  dn-kill: one of the three datanodes is killed (SIGKILL) and stays down for OZT_FAULT_SECS,
#           then is restarted with `scripts/ozone-local start`: I/O must go on throughout,
#           with no failed I/O and no miscompare;
#  dn-stop: one datanode hangs (SIGSTOP) for OZT_FAULT_SECS: no failed I/O and no miscompare;
#           the slowdown is measured and printed, not required (a hung Ratis leader holds
#           writes for the Ozone client's timeouts);
#  om:      the Ozone Manager hangs (SIGSTOP) for OZT_FAULT_SECS, past every client timeout:
#           I/O may fail or wait, but must resume within OZT_RESUME_SECS of SIGCONT;
#  om-restart: the Ozone Manager is killed (SIGKILL), stays down for OZT_FAULT_SECS and is
#           restarted with `scripts/ozone-local start` (a real restart: RocksDB and Ratis log
#           recovery): I/O may fail or wait while it is down, but must resume within
#           OZT_RESUME_SECS of the restart, with no miscompare.
# Before a fault, the test waits for the journal's steady state (the destager's first pass
# drained it; bounded by OZT_SETTLE_SECS), so the "before" rate is one the volume sustains.
# Once I/O goes on after the fault, bdevperf runs 5 s more and is stopped with SIGINT.
# In every case the app must never crash. OZT_FAULT_CASES picks cases (default: dn-kill, om and
# om-restart; OZT_FULL=1: all four).
# Progress is sampled with bdev_get_iostat (completed ops) every few seconds.
# Must never: leave a daemon stopped or dead (a trap sends SIGCONT and restarts a killed
# datanode or OM), or touch a daemon other than dn3 and the OM.

OZT_NAME=faults
source "$(dirname "$0")/lib.sh"
ozt_setup

fault_secs=${OZT_FAULT_SECS:-30}
settle_secs=${OZT_SETTLE_SECS:-90} # bound on waiting for the journal's steady state
resume_secs=${OZT_RESUME_SECS:-120}
status=$("$OZ_TOP/scripts/ozone-local" status)
dn_pid=$(awk '$1 == "dn3" && $2 == "running" {print $4}' <<< "$status")
om_pid=$(awk '$1 == "om" && $2 == "running" {print $4}' <<< "$status")
if [[ -z $dn_pid || -z $om_pid ]]; then
	echo "$status"
	echo "FAIL: faults (cluster not fully running: need om and dn3)"
	exit 1
fi
STOPPED="" KILLED=0
cont_all() {
	[[ -n $STOPPED ]] && kill -CONT $STOPPED 2> /dev/null
	STOPPED=""
	if ((KILLED)); then
		KILLED=0
		"$OZ_TOP/scripts/ozone-local" start > "$OZT_WORK/restart-cleanup.log" 2>&1 ||
			echo "[$OZT_NAME] WARNING: could not restart the killed daemon (see $OZT_WORK/restart-cleanup.log)"
	fi
}
uri=$(ozt_uri v)

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
journal_state() { # "<destaged chunks> <dirty bytes>" of Ozone0's journal
	python3 "$SPDK_RPC_PY" -s "$1" -t 10 bdev_get_bdevs -b Ozone0 2> /dev/null |
		jq -r '.[0].driver_specific.ozone.statistics.journal | "\(.destaged_chunks) \(.dirty_bytes)"' 2> /dev/null || echo "? ?"
}
dn3_pid() { "$OZ_TOP/scripts/ozone-local" status | awk '$1 == "dn3" && $2 == "running" {print $4}'; }

# run_fault <case>: dn-kill | dn-stop | om
run_fault() {
	local label=$1 log=$OZT_WORK/bdevperf-$1.log bsock=$OZT_WORK/bp-$1.sock victim
	local runtime=$((settle_secs + 20 + fault_secs + resume_secs + 20)) i before during after_cont resumed=""
	case $label in
		dn-kill | dn-stop) victim=$(dn3_pid) ;;
		om | om-restart) victim=$("$OZ_TOP/scripts/ozone-local" status | awk '$1 == "om" && $2 == "running" {print $4}') ;;
	esac
	if [[ -z $victim ]]; then
		ozt_fail "[$label] the daemon to fault is not running"
		return
	fi
	ozt_bdev_config "$(ozt_create_json Ozone0 "$uri-$label" $((256 << 20)) $((256 << 10)))" > "$OZT_WORK/$label.json"
	OZT_CLEANUP_EXTRA="cont_all; ozt_destroy_volume $uri-$label"
	# -f keeps the job going after a failed I/O, so that resumption shows; failures still
	# count (Fail/s, rc) and fail the datanode cases.
	ozt_log "[$label] bdevperf verify -o 4096 -q 32 -t $runtime -f"
	ozt_start_app bp "$log" bdevperf --no-huge -s 1024 -u -r "$bsock" --json "$OZT_WORK/$label.json" \
		-q 32 -o 4096 -w verify -t "$runtime" -f
	for ((i = 0; i < 300; i++)); do
		grep -q 'Running I/O' "$log" 2> /dev/null && break
		kill -0 "$bp" 2> /dev/null || break
		sleep 1
	done
	# The rate before the fault is the journal's steady state: until the destager's first
	# pass has drained the journal, writes only append to it, 2-5x faster than the sustained
	# rate with destaging (measured with no fault at all: docs/spdk-module.md, "Faults").
	local t_s=$(date +%s) js="? ?"
	while (($(date +%s) - t_s < settle_secs)); do
		js=$(journal_state "$bsock")
		read -r dc db <<< "$js"
		[[ $dc =~ ^[0-9]+$ && $db =~ ^[0-9]+$ ]] && ((dc > 0 && db < (16 << 20))) && break
		sleep 2
	done
	ozt_log "[$label] journal after $(($(date +%s) - t_s))s: destaged chunks/dirty bytes $js"
	local p0 t_p0=$(date +%s)
	p0=$(ops "$bsock")
	sleep 15
	before=$(ops "$bsock")
	local base_secs=$(($(date +%s) - t_p0))
	if [[ $label == dn-kill || $label == om-restart ]]; then
		ozt_log "[$label] ops before: $before ($(rw "$bsock")); SIGKILL ${label%%-*} (pid $victim), down for ${fault_secs}s"
		KILLED=1
		kill -KILL "$victim"
	else
		ozt_log "[$label] ops before: $before ($(rw "$bsock")); SIGSTOP $label (pid $victim) for ${fault_secs}s"
		STOPPED=$victim
		kill -STOP "$victim"
	fi
	local t0=$(date +%s) samples="" mid="" t_mid=0 o last_ops=$before t_last=$(date +%s)
	stall_all=0 stall_late=0
	while (($(date +%s) - t0 < fault_secs)); do
		sleep 5
		samples+=" $(rw "$bsock")"
		# The longest time with no completed I/O: over the whole fault, and from 10 s into
		# it (once in-flight work has drained and the client has moved off the dead node).
		o=$(ops "$bsock")
		if [[ $o != "?" && $last_ops != "?" ]] && ((o > last_ops)); then
			last_ops=$o t_last=$(date +%s)
		fi
		local st=$(($(date +%s) - t_last))
		((st > stall_all)) && stall_all=$st
		(($(date +%s) - t0 >= 10 && st > stall_late)) && stall_late=$st
		# ops completed once the fault has had 10 s to bite (in-flight work drained)
		[[ -z $mid ]] && (($(date +%s) - t0 >= 10)) && mid=$o && t_mid=$(date +%s)
	done
	during=$(ops "$bsock")
	local win_secs=$(($(date +%s) - t_mid))
	ozt_log "[$label] ops sampled during the fault:$samples"
	if [[ $label == dn-kill || $label == om-restart ]]; then
		local r0=$(date +%s)
		if "$OZ_TOP/scripts/ozone-local" start > "$OZT_WORK/restart-$label.log" 2>&1; then
			KILLED=0
			ozt_log "[$label] ${label%%-*} restarted and the cluster probe passed in $(($(date +%s) - r0))s; ops now $(rw "$bsock")"
		else
			ozt_fail "[$label] ${label%%-*} did not restart (see $OZT_WORK/restart-$label.log)"
		fi
	else
		cont_all
		ozt_log "[$label] SIGCONT"
	fi
	t0=$(date +%s)
	while (($(date +%s) - t0 < resume_secs)); do
		after_cont=$(ops "$bsock")
		if [[ $after_cont != "?" && $during != "?" ]] && ((after_cont > during)); then
			resumed=$(($(date +%s) - t0))
			break
		fi
		sleep 5
	done
	# -t is only an upper bound: once I/O goes on, let it run 5 s more, then stop bdevperf
	# with SIGINT (it drains its jobs and prints its totals, as at the end of -t).
	if [[ -n $resumed ]]; then
		sleep 5
		kill -INT "$bp" 2> /dev/null
	fi
	wait "$bp"
	local rc=$?
	local total=$(tr '\r' '\n' < "$log" | grep -E '^ *Total *:' | tail -1)
	local fails=$(awk '{print $5}' <<< "$total")
	echo "  $total"
	echo "  [$label] ops: before $before, 10 s into the fault $mid, end of the fault $during, going again ${resumed:-never}s after it ended; bdevperf rc $rc"
	tr '\r' '\n' < "$log" | grep -E 'ERROR|WARN' | grep -v json_config | sed -E 's/^\[?[0-9]{4}-[0-9-]+ [0-9:.,]+\]? *//' |
		cut -c1-220 | sort | uniq -c | sort -rn | head -4 | sed 's/^/    /'
	if [[ $label == dn-* ]]; then
		# With one of three datanodes down or hung, I/O goes on: Raft majority writes
		# (scripts/ozone-local sets MAJORITY_COMMITTED) and reads from the other replicas.
		# "Goes on" = from 10 s into the fault to its end, no 5 s sample without completed
		# I/O twice in a row (stall under 15 s) and more done at the end than at 10 s. The
		# rate is printed against the 15 s before the fault, not required: on this shared
		# 2-core machine it fell to 1/6 in one CI run with no I/O failed or stalled.
		local rate_before=? rate_during=?
		if [[ $p0 != "?" && $before != "?" && $mid != "?" && -n $mid && $during != "?" ]] &&
			((base_secs > 0 && win_secs > 0)); then
			rate_before=$(((before - p0) / base_secs))
			rate_during=$(((during - mid) / win_secs))
		fi
		echo "  [$label] ops/s: ${rate_before} before the fault, ${rate_during} from 10 s into it to its end; longest stall ${stall_all}s (${stall_late}s after the first 10 s; sampled every ~5 s, 0 = progress in every sample)"
		if [[ $label == dn-kill ]]; then
			[[ $rate_during != "?" ]] && ((stall_late < 15 && during > mid)) ||
				ozt_fail "[$label] I/O stalled while a datanode was down (${stall_late}s without a completed I/O after the first 10 s; ${rate_during} ops/s vs ${rate_before} before)"
		else
			# A hung (not dead) Ratis leader holds writes until the Ozone client's RPC timeout
			# and retry policy move it to the new leader: 15-40 s in our runs. Measured and
			# reported here, not required (docs/spdk-module.md, "Faults").
			echo "  [$label] note: a hung datanode slows I/O to ${rate_during} ops/s (from ${rate_before}); no I/O may fail"
		fi
		((rc == 0)) || ozt_fail "[$label] bdevperf rc $rc"
		if [[ -n $fails ]] && awk -v f="$fails" 'BEGIN {exit !(f > 0)}'; then
			ozt_fail "[$label] I/O failed around the datanode fault (Fail/s $fails; see the errors above)"
		fi
	else
		((rc == 0)) || echo "  [$label] note: I/O failed during the outage (rc $rc, fail/s ${fails:-?}); allowed"
	fi
	[[ -n $resumed ]] || ozt_fail "[$label] I/O did not go on within ${resume_secs}s of the fault's end"
	grep -qiE 'miscompare|mismatch' "$log" && ozt_fail "[$label] miscompare (data corruption)"
	grep -qiE 'segmentation|core dumped|panicked|Aborted' "$log" && ozt_fail "[$label] the app crashed"
	RESULTS+=("$label: ops $before/$mid/$during (before/10s/end of fault), ${rate_before:-?} -> ${rate_during:-?} ops/s, longest stall in the fault ${stall_all}s, going ${resumed:-never}s after, fail/s ${fails:-?}")
}

RESULTS=()
# The CI-sized set leaves out dn-stop (measured, not required; OZT_FULL=1 or OZT_FAULT_CASES
# runs it) and says so in the summary.
cases=${OZT_FAULT_CASES:-dn-kill om om-restart}
[[ -z ${OZT_FAULT_CASES:-} && ${OZT_FULL:-0} == 1 ]] && cases="dn-kill dn-stop om om-restart"
grep -qw dn-stop <<< "$cases" || RESULTS+=("dn-stop: not run (not in the CI-sized set, OZT_FULL=1 runs it)")
for c in $cases; do
	case $c in
		dn-kill | dn-stop | om | om-restart) run_fault "$c" ;;
		*) ozt_fail "unknown fault case '$c' (OZT_FAULT_CASES takes dn-kill dn-stop om om-restart)" ;;
	esac
done
ozt_summary "$(IFS=';'; echo "${RESULTS[*]}")"
