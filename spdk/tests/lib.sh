# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Shared helpers for the SPDK validation scripts (sourced, not run).
# Owns: finding SPDK and its tools, building the module and ozone_tgt, the Ozone client
# environment, starting/stopping SPDK apps (the target as ozone_tgt or as spdk_tgt with the
# module preloaded, per OZT_TARGET; stock tools always preloaded), per-run volume names,
# JSON configs, bounded waits.
# Must never: build SPDK, stop or restart the shared Ozone cluster, or kill a process it
# did not start (every app is tracked by its pid).
#
# Env: OZT_TARGET=ozone_tgt (default) | preload: how a script's target ("spdk_tgt") runs:
#      our ozone_tgt binary, or SPDK's stock spdk_tgt with LD_PRELOAD of the module.
#      bdevperf, bdevio and spdk_dd are stock tools: they always get the module preloaded.

set -o pipefail

OZT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
OZ_SPDK_DIR=$(cd "$OZT_DIR/.." && pwd)
OZ_TOP=$(cd "$OZ_SPDK_DIR/.." && pwd)

# ---- SPDK discovery -------------------------------------------------------------------
# Sets SPDK_PREFIX (install prefix with bin/ and lib/) or returns 1.
# OZT_NO_DEFAULT_SPDK=1 ignores /opt/spdk (to check the "skipped" path).
ozt_find_spdk() {
	local pc
	if [[ -n ${SPDK_ROOT:-} ]]; then
		SPDK_PREFIX=$SPDK_ROOT
	elif pc=$(pkg-config --variable=prefix spdk_bdev 2> /dev/null) && [[ -n $pc ]]; then
		SPDK_PREFIX=$pc
	elif [[ -z ${OZT_NO_DEFAULT_SPDK:-} && -f /opt/spdk/lib/pkgconfig/spdk_bdev.pc ]]; then
		SPDK_PREFIX=/opt/spdk
	else
		return 1
	fi
	SPDK_BIN=${SPDK_BIN:-$SPDK_PREFIX/bin}
	[[ -x $SPDK_BIN/spdk_tgt ]] || SPDK_BIN=$SPDK_PREFIX/build/bin
	export LD_LIBRARY_PATH=$SPDK_PREFIX/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
	export PKG_CONFIG_PATH=$SPDK_PREFIX/lib/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
	# rpc.py: explicit, a source tree next to the prefix, or the installed spdk-rpc.
	if [[ -z ${SPDK_RPC_PY:-} ]]; then
		local c
		for c in "$SPDK_PREFIX/scripts/rpc.py" /opt/spdk-src/spdk/scripts/rpc.py; do
			[[ -f $c ]] && SPDK_RPC_PY=$c && break
		done
		if [[ -z ${SPDK_RPC_PY:-} && -x $SPDK_PREFIX/bin/spdk-rpc ]]; then
			SPDK_RPC_PY=$SPDK_PREFIX/bin/spdk-rpc
			export PYTHONPATH=$(echo "$SPDK_PREFIX"/lib/python3*/site-packages)${PYTHONPATH:+:$PYTHONPATH}
		fi
	fi
	export PYTHONPATH=$OZ_SPDK_DIR/rpc_plugin${PYTHONPATH:+:$PYTHONPATH}
	return 0
}

ozt_skip_banner() {
	echo "##################################################################"
	echo "# SPDK TESTS SKIPPED: $*"
	echo "# Install SPDK (see docs/spdk-module.md) and set SPDK_ROOT=<prefix>"
	echo "# or PKG_CONFIG_PATH so that 'pkg-config spdk_bdev' works."
	echo "##################################################################"
}

# ---- results ------------------------------------------------------------------------------
OZT_TARGET=${OZT_TARGET:-ozone_tgt}
OZT_NAME=${OZT_NAME:-$(basename "$0" .sh)}
OZT_FAILS=0
ozt_log() { echo "[$OZT_NAME $(date +%H:%M:%S)] $*"; }
ozt_fail() {
	echo "[$OZT_NAME] FAIL: $*"
	OZT_FAILS=$((OZT_FAILS + 1))
}
ozt_summary() {
	if ((OZT_FAILS == 0)); then
		echo "PASS: $OZT_NAME${1:+ ($1)}"
		return 0
	fi
	echo "FAIL: $OZT_NAME ($OZT_FAILS failure(s))${1:+ ($1)}"
	return 1
}

# ---- setup --------------------------------------------------------------------------------
# Builds what is missing and exports the Ozone client environment.
ozt_setup() {
	if ! ozt_find_spdk; then
		ozt_skip_banner "no SPDK found (no SPDK_ROOT, no pkg-config spdk_bdev, no /opt/spdk)"
		exit 0
	fi
	OZT_WORK=${OZT_WORK:-$(mktemp -d /tmp/ozt-$OZT_NAME.XXXXXX)}
	mkdir -p "$OZT_WORK"
	# Always: cargo does nothing when the library is current, and a stale one would test old code.
	(cd "$OZ_TOP" && nice cargo build --release --workspace --all-targets) > "$OZT_WORK/cargo.log" 2>&1 ||
		{ cat "$OZT_WORK/cargo.log"; echo "FAIL: $OZT_NAME (cargo build failed)"; exit 1; }
	make -s -C "$OZ_SPDK_DIR" > "$OZT_WORK/make.log" 2>&1 ||
		{ cat "$OZT_WORK/make.log"; echo "FAIL: $OZT_NAME (module build failed)"; exit 1; }
	OZ_MODULE=$OZ_SPDK_DIR/libspdk_bdev_ozone.so
	OZ_TGT=$OZ_SPDK_DIR/ozone_tgt
	case $OZT_TARGET in
		ozone_tgt | preload) ;;
		*) echo "FAIL: $OZT_NAME (OZT_TARGET must be ozone_tgt or preload, not '$OZT_TARGET')"; exit 1 ;;
	esac
	if [[ -z ${OZONE_OM_ADDRESS:-} ]]; then
		eval "$("$OZ_TOP/scripts/ozone-local" env)" ||
			{ echo "FAIL: $OZT_NAME (no Ozone client environment)"; exit 1; }
	fi
	OZT_VOLROOT=${OZT_VOLROOT:-ofs://$OZONE_OM_ADDRESS/spdktest/bkt}
	OZT_RUN_ID=${OZT_RUN_ID:-$(date +%m%d%H%M%S)$$}
	# Bound (ms) on reaching the OM in configs; generous because the JVM starts inside the app.
	OZT_TIMEOUT_MS=${OZT_TIMEOUT_MS:-120000}
	OZT_PIDS=()
	trap ozt_cleanup EXIT
	ozt_log "SPDK at $SPDK_PREFIX, target route $OZT_TARGET, work dir $OZT_WORK, volumes under $OZT_VOLROOT"
}

# A fresh volume URI for this run: ozt_uri <tag>
ozt_uri() { echo "$OZT_VOLROOT/${OZT_NAME//_/-}-$1-$OZT_RUN_ID"; }

# rpc <socket> <method> [args]: rpc.py with the plugin and a long client timeout.
ozt_rpc() {
	local sock=$1
	shift
	python3 "$SPDK_RPC_PY" -s "$sock" -t "${OZT_RPC_TIMEOUT:-300}" --plugin bdev_ozone_rpc "$@"
}

# ozt_start_app <var> <log> <binary> <args...>: start in the background; stores the pid in
# <var> and tracks it for cleanup. <binary> "spdk_tgt" is the target: ozone_tgt, or spdk_tgt
# with the module preloaded (OZT_TARGET). Any other SPDK app gets the module preloaded.
ozt_start_app() {
	local __var=$1 log=$2 bin=$3
	shift 3
	# --disable-cpumask-locks: several apps (ours and other users') share the two CPUs.
	if [[ $bin == spdk_tgt && $OZT_TARGET == ozone_tgt ]]; then
		nice -n 5 "$OZ_TGT" --disable-cpumask-locks "$@" > "$log" 2>&1 &
	else
		nice -n 5 env LD_PRELOAD="$OZ_MODULE" "$SPDK_BIN/$bin" --disable-cpumask-locks "$@" > "$log" 2>&1 &
	fi
	local __pid=$!
	OZT_PIDS+=("$__pid")
	printf -v "$__var" '%s' "$__pid"
}

# ozt_wait_for <seconds> <command...>: run the command every 0.2 s until it succeeds;
# returns 1 if it never did within the bound.
ozt_wait_for() {
	local t=$1 deadline
	shift
	deadline=$(($(date +%s%N) + t * 1000000000))
	until "$@"; do
		(($(date +%s%N) < deadline)) || return 1
		sleep 0.2
	done
}

# Wait until an app's RPC socket answers (bounded).
ozt_wait_sock() {
	local sock=$1 pid=$2 t=${3:-120}
	local i
	for ((i = 0; i < t * 2; i++)); do
		kill -0 "$pid" 2> /dev/null || return 1
		if [[ -S $sock ]] && python3 "$SPDK_RPC_PY" -s "$sock" -t 5 spdk_get_version > /dev/null 2>&1; then
			return 0
		fi
		sleep 0.5
	done
	return 1
}

# Stop an app we started: SIGTERM, then wait (bounded), then SIGKILL.
ozt_stop_app() {
	local pid=$1 t=${2:-120} i
	kill -0 "$pid" 2> /dev/null || return 0
	kill -TERM "$pid" 2> /dev/null
	for ((i = 0; i < t * 2; i++)); do
		kill -0 "$pid" 2> /dev/null || { wait "$pid" 2> /dev/null; return 0; }
		sleep 0.5
	done
	echo "warning: pid $pid did not exit after SIGTERM within ${t}s; SIGKILL" >&2
	kill -KILL "$pid" 2> /dev/null
	wait "$pid" 2> /dev/null
	return 1
}

ozt_cleanup() {
	local pid
	for pid in "${OZT_PIDS[@]}"; do
		kill -0 "$pid" 2> /dev/null && ozt_stop_app "$pid" 60
	done
	[[ -n ${OZT_CLEANUP_EXTRA:-} ]] && eval "$OZT_CLEANUP_EXTRA"
	return 0
}

# JSON for one bdev_ozone_create call: ozt_create_json <name> <uri> <size> <chunk> [bs]
# (OZT_WORKERS, when set, gives the engine's worker thread count.)
ozt_create_json() {
	local workers=""
	[[ -n ${OZT_WORKERS:-} ]] && workers=", \"workers\": $OZT_WORKERS"
	cat << EOF
{"method": "bdev_ozone_create", "params": {"name": "$1", "uri": "$2", "size": $3,
 "chunk_size": $4, "block_size": ${5:-4096}, "timeout_ms": $OZT_TIMEOUT_MS$workers}}
EOF
}

# A bdev subsystem config from JSON method objects: ozt_bdev_config <obj>...
ozt_bdev_config() {
	local IFS=,
	echo "{\"subsystems\": [{\"subsystem\": \"bdev\", \"config\": [$*, {\"method\": \"bdev_wait_for_examine\"}]}]}"
}

# ---- JSON-RPC checks ------------------------------------------------------------------------
# Raw JSON-RPC calls to the app at the caller's $sock (rpc_raw.py: errors come back as JSON, not
# as rpc.py exceptions); each call counts one check in the caller's $checks and prints ok or
# fails the test. ozt_expect_ok leaves the whole answer in $LAST.
# ozt_expect_error <desc> <method> <params> <regex on message> [code]
ozt_expect_error() {
	local out
	checks=$((checks + 1))
	out=$(python3 "$OZT_DIR/rpc_raw.py" "$sock" "$2" "$3")
	if jq -e '.error' <<< "$out" > /dev/null && jq -r '.error.message' <<< "$out" | grep -qiE "$4" &&
		{ [[ -z ${5:-} ]] || jq -e ".error.code == $5" <<< "$out" > /dev/null; }; then
		echo "  ok   $1: $(jq -c '{code: .error.code, message: .error.message, s: .elapsed_s}' <<< "$out")"
	else
		ozt_fail "$1: expected an error${5:+ with code $5} matching /$4/, got $out"
	fi
}
# ozt_expect_ok <desc> <method> <params> [jq filter that must be true]
ozt_expect_ok() {
	local out
	checks=$((checks + 1))
	out=$(python3 "$OZT_DIR/rpc_raw.py" "$sock" "$2" "$3")
	if jq -e '.error' <<< "$out" > /dev/null; then
		ozt_fail "$1: $out"
		return 1
	fi
	if [[ -n ${4:-} ]] && ! jq -e "$4" <<< "$out" > /dev/null; then
		ozt_fail "$1: result fails '$4': $out"
		return 1
	fi
	echo "  ok   $1: $(jq -c '.result' <<< "$out" | cut -c1-160)"
	LAST=$out
}

# ---- NVMe-oF/TCP --------------------------------------------------------------------------
# Export <bdev> from the app at <sock> over NVMe/TCP on 127.0.0.1:<port> as subsystem <nqn>:
# ozt_nvmf_export <sock> <nqn> <bdev> <port>. Only ever listens on 127.0.0.1.
ozt_nvmf_export() {
	local sock=$1 nqn=$2 bdev=$3 port=$4
	ozt_rpc "$sock" nvmf_create_transport -t tcp &&
		ozt_rpc "$sock" nvmf_create_subsystem "$nqn" -a -s OZONE0001 -d bdev_ozone &&
		ozt_rpc "$sock" nvmf_subsystem_add_ns "$nqn" "$bdev" &&
		ozt_rpc "$sock" nvmf_subsystem_add_listener "$nqn" -t tcp -a 127.0.0.1 -s "$port" -f ipv4
}

# A config for an initiator app that attaches that export as NVMe0 (bdev NVMe0n1):
# ozt_nvmf_initiator_json <port> <nqn>
ozt_nvmf_initiator_json() {
	ozt_bdev_config "{\"method\": \"bdev_nvme_attach_controller\", \"params\": {\"name\": \"NVMe0\",
 \"trtype\": \"tcp\", \"adrfam\": \"ipv4\", \"traddr\": \"127.0.0.1\", \"trsvcid\": \"$1\", \"subnqn\": \"$2\"}}"
}

# ---- bdevperf results -------------------------------------------------------------------
# Check a finished bdevperf run: ozt_check_bdevperf <label> <log> <rc>. Prints its Total line
# and fails on a non-zero rc, no Total line, failed I/O (Fail/s > 0) or a miscompare. Sets
# OZT_IOPS, OZT_FAILPS and OZT_MISCOMPARES (count of miscompare lines).
ozt_check_bdevperf() {
	local label=$1 log=$2 rc=$3 total
	total=$(tr '\r' '\n' < "$log" | grep -E '^ *Total *:' | tail -1)
	echo "  $total"
	OZT_IOPS=$(awk '{print $3}' <<< "$total")
	OZT_FAILPS=$(awk '{print $5}' <<< "$total")
	OZT_MISCOMPARES=$(grep -ciE 'miscompare|mismatch' "$log")
	if ((rc != 0)); then
		ozt_fail "$label: bdevperf exited with $rc (log $log)"
		grep -E 'ERROR' "$log" | head -5
	fi
	[[ -n $total ]] || ozt_fail "$label: no Total line (log $log)"
	if [[ -n $OZT_FAILPS ]] && awk -v f="$OZT_FAILPS" 'BEGIN {exit !(f > 0)}'; then
		ozt_fail "$label: Fail/s $OZT_FAILPS"
	fi
	((OZT_MISCOMPARES == 0)) || ozt_fail "$label: $OZT_MISCOMPARES miscompare lines (log $log)"
}

# Remove a test volume's data (through the engine's CLI, which runs outside SPDK).
ozt_destroy_volume() {
	local ozbd=$OZ_TOP/target/release/ozbd
	[[ -x $ozbd ]] || return 0
	"$ozbd" delete "$1" > /dev/null 2>&1 || true
}
