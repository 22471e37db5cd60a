#!/usr/bin/env bash
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Validation: OpenStack Cinder's SPDK volume driver (SPDKDriver from the PyPI package
# cinder==29.0.0) on an ozone bdev. The target (OZT_TARGET; "spdk_tgt" below) gets an ozone bdev,
# an lvstore on it and a TCP transport (pre-created: Cinder's target helper only creates RDMA);
# ozbd-gateway serves its JSON-RPC over HTTP with Basic auth; deploy/openstack/cinder_harness.py
# loads the driver with a real cinder.conf (deploy/openstack/cinder.conf.example, addresses and
# password filled in) and makes every driver call, writing a pattern through the source volume's
# NVMe/TCP export and reading it back, through NVMe/TCP (spdk_dd), from the volume made from
# the snapshot, from the clone and from the source.
# A negative check first: the same harness through SPDK's own rpc_http_proxy.py (no size
# translation) must fail at create_volume (SPDK >= 24.05 refuses "size" in bytes).
# Owns: the Cinder venv (OZT_CINDER_VENV, default ~/.cache/bdev_ozone/venv-cinder, outside the clone so CI's fresh clones reuse it: made once with pip),
# the target, the gateway and the proxy it starts, its cinder.conf, the sizing table.
# Must never: listen on anything but 127.0.0.1 (ports OZT_CINDER_PORT..+2), leave its volumes
# in Ozone (they live under ofs://<om>/cindertest/bkt and are deleted at the end), or count
# something that did not run as passed: each thing that cannot run prints
# "SKIPPED: cinder: <reason>".
# Env: OZT_CINDER_GIB="1": volume sizes (GiB) to snapshot and clone, one harness run each,
#      smallest first; the smallest must pass; the larger ones measure which sizes fit Cinder's
#      30 s per request, and the first that does not fit ends the sizing.
#      OZT_CINDER_FILL_MIB=0: MiB of data written to each source volume before its snapshot, so
#      that the copies move real data (default: only the 9 MiB pattern is stored; a full volume is
#      the worst case, and every copy of it is written to Ozone 3 times over: mind the disk).
#      OZT_CINDER_PORT (default 19200): gateway; +1 NVMe/TCP listener; +2 the negative check's
#      proxy. OZT_CINDER_CLUSTER (lvstore cluster size, default 64M), OZT_CINDER_OZONE_OPTS (more
#      bdev_ozone_create options, e.g. "--journal none"), OZT_CINDER_VENV, OZT_CINDER_PIP_SPEC
#      (default cinder==29.0.0).

OZT_NAME=cinder
source "$(dirname "$0")/lib.sh"

skip() {
	echo "SKIPPED: cinder: $*"
	exit 0
}

# ---- what this suite needs, checked before anything starts ----------------------------------------
if ! ozt_find_spdk; then
	ozt_skip_banner "no SPDK found (no SPDK_ROOT, no pkg-config spdk_bdev, no /opt/spdk)"
	skip "no SPDK found (no SPDK_ROOT, no pkg-config spdk_bdev, no /opt/spdk)"
fi
[[ -x $SPDK_BIN/spdk_dd ]] || skip "no spdk_dd in $SPDK_BIN (the NVMe/TCP initiator of the data check)"
sizes=${OZT_CINDER_GIB:-1}
for g in $sizes; do
	[[ $g =~ ^[0-9]+$ ]] && ((g >= 1)) ||
		{ echo "FAIL: cinder (OZT_CINDER_GIB: '$g' is not a whole number of GiB >= 1)"; exit 1; }
done
fill_mib=${OZT_CINDER_FILL_MIB:-0}
sizes=$(tr ' ' '\n' <<< "$sizes" | sort -n | tr '\n' ' ')
max_gib=$(awk '{print $NF}' <<< "$sizes")
port=${OZT_CINDER_PORT:-19200}
gw_port=$port nvmf_port=$((port + 1)) proxy_port=$((port + 2))
OZT_WORK=${OZT_WORK:-$(mktemp -d /tmp/cinder-ozt.XXXXXX)}
mkdir -p "$OZT_WORK"

# The gateway: built with the rest of the workspace by ozt_setup (below).
gw=$OZ_TOP/target/release/ozbd-gateway

# Cinder in a venv of its own (Cinder 29 needs Python >= 3.11), made once and reused.
venv=${OZT_CINDER_VENV:-${XDG_CACHE_HOME:-$HOME/.cache}/bdev_ozone/venv-cinder}
spec=${OZT_CINDER_PIP_SPEC:-cinder==29.0.0}
if ! "$venv/bin/python" -c 'from cinder.volume.drivers import spdk' > /dev/null 2>&1; then
	py=""
	for c in python3.12 python3.11 python3.13 python3; do
		command -v "$c" > /dev/null &&
			"$c" -c 'import sys, venv, ensurepip; sys.exit(not (3, 11) <= sys.version_info[:2] <= (3, 13))' 2> /dev/null &&
			py=$c && break
	done
	[[ -n $py ]] || skip "no Python 3.11..3.13 with venv/ensurepip for Cinder 29 (python3 is $(python3 --version 2>&1))"
	ozt_log "making $venv with $($py --version) and pip install $spec (once; a few minutes)"
	rm -rf "$venv"
	{ "$py" -m venv "$venv" && "$venv/bin/pip" install -q "$spec"; } > "$OZT_WORK/pip.log" 2>&1 || {
		tail -5 "$OZT_WORK/pip.log"
		rm -rf "$venv"
		# No index reachable: pip lists no versions at all, or says why it could not connect.
		if grep -qiE 'from versions: none|NewConnectionError|Max retries exceeded|Network is unreachable|Temporary failure in name resolution|Read timed out' "$OZT_WORK/pip.log"; then
			skip "pip install $spec failed: no package index reachable (log $OZT_WORK/pip.log)"
		fi
		echo "FAIL: cinder (pip install $spec failed, log $OZT_WORK/pip.log)"
		exit 1
	}
fi
cinder_ver=$("$venv/bin/python" -c 'from importlib.metadata import version; print(version("cinder"))')

# Volumes under cindertest/ (lib.sh's default is spdktest/): needs the OM address first.
[[ -n ${OZONE_OM_ADDRESS:-} ]] || eval "$("$OZ_TOP/scripts/ozone-local" env 2> /dev/null)"
[[ -n ${OZONE_OM_ADDRESS:-} ]] && OZT_VOLROOT=${OZT_VOLROOT:-ofs://$OZONE_OM_ADDRESS/cindertest/bkt}
ozt_setup
uri=$(ozt_uri v)
OZT_CLEANUP_EXTRA="ozt_destroy_volume $uri"
sock=$OZT_WORK/tgt.sock
harness=$OZ_TOP/deploy/openstack/cinder_harness.py

# ---- the target: ozone bdev, lvstore, TCP transport ------------------------------------------------
# Cinder's volumes are thick and every snapshot or clone is a full copy; create_cloned_volume
# wants 2x the source + the clone free while the source, its snapshot and the volume made from
# it hold 3x: 6x the largest size, plus the lvstore's metadata. The ozone volume is thin: its
# size costs nothing until written.
cluster=${OZT_CINDER_CLUSTER:-64M}
oz_gib=$((6 * max_gib + 2))
ozt_log "target: ozone bdev ${oz_gib}G on $uri, lvstore (cluster $cluster), TCP transport"
ozt_start_app tgt "$OZT_WORK/tgt.log" spdk_tgt --no-huge -s 2048 -u -r "$sock" -m 0x1
ozt_wait_sock "$sock" "$tgt" 120 || { ozt_fail "spdk_tgt did not start"; ozt_summary; exit 1; }
read -ra oz_opts <<< "${OZT_CINDER_OZONE_OPTS:-}"
{
	ozt_rpc "$sock" bdev_ozone_create Ozone0 "$uri" -s "${oz_gib}G" -c 4M --timeout-ms "$OZT_TIMEOUT_MS" "${oz_opts[@]}" &&
		ozt_rpc "$sock" bdev_lvol_create_lvstore -c "$(numfmt --from=iec "$cluster")" Ozone0 lvs0 &&
		ozt_rpc "$sock" nvmf_create_transport -t TCP
} > "$OZT_WORK/setup.log" 2>&1 || { cat "$OZT_WORK/setup.log"; ozt_fail "target setup failed"; ozt_summary; exit 1; }

# ---- cinder.conf: the documented example, with this run's addresses, ports and password ------------
password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
mkconf() { # mkconf <file> <rpc port>
	sed -e "s|^target_ip_address = .*|target_ip_address = 127.0.0.1|" \
		-e "s|^target_port = .*|target_port = $nvmf_port|" \
		-e "s|^spdk_rpc_ip = .*|spdk_rpc_ip = 127.0.0.1|" \
		-e "s|^spdk_rpc_port = .*|spdk_rpc_port = $2|" \
		-e "s|^spdk_rpc_password = .*|spdk_rpc_password = $password|" \
		-e "s|^\[DEFAULT\]|[DEFAULT]\ndebug = true\nlog_file = ${1%.conf}.log|" \
		"$OZ_TOP/deploy/openstack/cinder.conf.example" > "$1"
	chmod 600 "$1"
}
harness_args=(--spdk-dd "$SPDK_BIN/spdk_dd" --ozone-bdev Ozone0)
port_open() { (: < "/dev/tcp/127.0.0.1/$1") 2> /dev/null; }

# ---- negative check: SPDK's own HTTP proxy passes "size" in bytes on, and SPDK refuses it ----------
proxy=""
for c in "$SPDK_PREFIX/scripts/rpc_http_proxy.py" /opt/spdk-src/spdk/scripts/rpc_http_proxy.py; do
	[[ -f $c ]] && proxy=$c && break
done
neg="not run"
if [[ -z $proxy ]]; then
	echo "SKIPPED: cinder: negative check (no rpc_http_proxy.py in an SPDK source tree)"
else
	ozt_log "negative check: the harness through SPDK's rpc_http_proxy.py (no translation) on :$proxy_port"
	python3 "$proxy" -s "$sock" 127.0.0.1 "$proxy_port" cinder "$password" > "$OZT_WORK/proxy.log" 2>&1 &
	proxy_pid=$!
	OZT_PIDS+=("$proxy_pid")
	if ! ozt_wait_for 30 port_open "$proxy_port"; then
		ozt_fail "rpc_http_proxy.py did not listen on 127.0.0.1:$proxy_port (log $OZT_WORK/proxy.log)"
	else
		mkconf "$OZT_WORK/cinder-proxy.conf" "$proxy_port"
		"$venv/bin/python" "$harness" --config-file "$OZT_WORK/cinder-proxy.conf" "${harness_args[@]}" \
			--work "$OZT_WORK/neg" --steps setup,get_volume_stats,create_volume > "$OZT_WORK/neg.log" 2>&1
		rc=$?
		sed 's/^/  | /' "$OZT_WORK/neg.log" | grep -vE '^\s*\|\s{6}' | head -8
		if ((rc != 0)) && grep -q '^PASS: setup' "$OZT_WORK/neg.log" &&
			grep -qE "^FAIL: create_volume .*KeyError: 'result'" "$OZT_WORK/neg.log"; then
			neg="without the gateway create_volume fails (KeyError 'result': SPDK refused size in bytes)"
			echo "  ok   $neg"
		else
			ozt_fail "negative check: expected setup to pass and create_volume to fail with KeyError 'result' through rpc_http_proxy.py (rc $rc, log $OZT_WORK/neg.log)"
		fi
	fi
	ozt_stop_app "$proxy_pid" 10
fi

# ---- the gateway, and the harness through it ----------------------------------------------------
ozt_log "gateway: $gw on 127.0.0.1:$gw_port -> $sock"
OZBD_GATEWAY_AUTH="cinder:$password" nice -n 5 "$gw" --listen "127.0.0.1:$gw_port" --spdk-socket "$sock" \
	> "$OZT_WORK/gateway.log" 2>&1 &
gw_pid=$!
OZT_PIDS+=("$gw_pid")
ozt_wait_for 30 port_open "$gw_port" ||
	{ cat "$OZT_WORK/gateway.log"; ozt_fail "ozbd-gateway did not listen on 127.0.0.1:$gw_port"; ozt_summary; exit 1; }
mkconf "$OZT_WORK/cinder.conf" "$gw_port"

steptime() { # steptime <step>: "PASS 11.0 s (inflate 10.1 s)" from $log: the step, and its inflate requests
	local line inf
	line=$(grep -E "^(PASS|FAIL): $1 \(" "$log" | head -1)
	[[ -n $line ]] || { echo "not run"; return; }
	inf=$(grep -oE 'bdev_lvol_inflate [0-9.]+ s( \([A-Za-z]+\))?' <<< "$line" | sed 's/bdev_lvol_inflate //' | paste -sd+ -)
	echo "$(sed -E 's/^(PASS|FAIL): [^(]*\(([0-9.]+) s\).*/\1 \2 s/' <<< "$line")${inf:+ (inflate $inf)}"
}
first=1 fits="" table=()
for g in $sizes; do
	log=$OZT_WORK/harness-${g}g.log
	f=$((fill_mib > g * 1024 ? g * 1024 : fill_mib))
	ozt_log "harness: cinder $cinder_ver, $g GiB volumes ($f MiB of data); log $log"
	"$venv/bin/python" "$harness" --config-file "$OZT_WORK/cinder.conf" "${harness_args[@]}" \
		--gib "$g" --fill-mib "$f" --work "$OZT_WORK/h$g" 2>&1 | tee "$log" | sed 's/^/  /'
	rc=${PIPESTATUS[0]}
	row="$g GiB ($f MiB data): snapshot $(steptime create_snapshot), from-snapshot $(steptime create_volume_from_snapshot), clone $(steptime create_cloned_volume)"
	table+=("$row")
	tally=$(grep -E '^cinder: [0-9]+ passed' "$log" | tail -1)
	if ((rc == 0)); then
		fits=$g
	elif ((first)); then
		ozt_fail "harness at $g GiB: ${tally:-no tally line} (rc $rc, log $log)"
		break
	else
		grep -q 'pattern differs' "$log" && ozt_fail "harness at $g GiB: data differs (log $log)"
		grep -E '^FAIL: ' "$log" | grep -vE 'ReadTimeout|timed out' | grep -q . &&
			ozt_log "note: at $g GiB steps failed for other reasons than the 30 s timeout (see $log)"
		ozt_log "$g GiB does not fit ($tally); not trying larger sizes"
		break
	fi
	first=0
done
kill -0 "$tgt" 2> /dev/null || ozt_fail "spdk_tgt died (log $OZT_WORK/tgt.log)"
echo "  copies (Cinder's limit is 30 s per call):"
printf '    %s\n' "${table[@]}"
ozt_rpc "$sock" bdev_get_bdevs -b Ozone0 | jq -c '.[0].driver_specific.ozone.statistics' | sed 's/^/  ozone bdev stats: /'
ozt_stop_app "$tgt" || ozt_fail "spdk_tgt did not stop cleanly"
ozt_summary "cinder $cinder_ver; sizes ${sizes% } GiB, largest that fit: ${fits:-none} GiB (lvstore cluster $cluster); negative check: $neg"
