#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Schema check of the Kubernetes manifests in deploy/kubernetes with kubernetes-validate
# (PyPI; it ships the Kubernetes OpenAPI schemas, so it needs no cluster and no network at
# run time), strict (unknown fields are errors), against the oldest and newest Kubernetes
# versions we claim. CRDs it has no schema for (VolumeSnapshotClass) are parsed as YAML only,
# and said so. A broken copy of the DaemonSet must be refused (the check can fail).
# Owns: the venv ~/.cache/bdev_ozone/venv-k8s (made when absent, outside the clone so CI reuses it). Must never: talk to a cluster.
# Ends with "k8s-manifests: N passed, N failed".
set -uo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
top=$(cd "$here/../.." && pwd)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/bdev_ozone/venv-k8s
passed=0 failed=0
ok() { echo "PASS: $*"; passed=$((passed + 1)); }
bad() { echo "FAIL: $*"; failed=$((failed + 1)); }
if [[ ! -x $venv/bin/kubernetes-validate ]]; then
	python3 -m venv "$venv" && "$venv/bin/pip" install -q kubernetes-validate==1.37.0 ||
		{ echo "SKIPPED: k8s-manifests: cannot install kubernetes-validate from PyPI"; echo "k8s-manifests: 0 passed, 0 failed, 1 skipped"; exit 0; }
fi
kv=$venv/bin/kubernetes-validate
for v in 1.30.0 1.37.0; do
	for f in "$here"/*.yaml; do
		if out=$("$kv" --strict -k "$v" "$f" 2>&1) && ! grep -q "^ERROR" <<< "$out"; then
			if grep -q "Couldn't find schema" <<< "$out"; then
				python3 -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" 2> /dev/null ||
					"$venv/bin/python" -c 'import sys, yaml; list(yaml.safe_load_all(open(sys.argv[1])))' "$f" &&
					ok "$(basename "$f") (k8s $v): YAML only, no schema for $(grep -o 'kind [A-Za-z]*' <<< "$out" | sort -u | tr '\n' ' ')" ||
					bad "$(basename "$f"): not valid YAML"
			else
				ok "$(basename "$f") (k8s $v): $(grep -c passed <<< "$out") resources valid"
			fi
		else
			bad "$(basename "$f") (k8s $v): $out"
		fi
	done
done
broken=$(mktemp --suffix=.yaml)
sed 's/hostNetwork: true/hostNetwrok: true/' "$here/target.yaml" > "$broken"
if "$kv" --strict --quiet "$broken" > /dev/null 2>&1; then
	bad "a misspelled DaemonSet field was accepted: the check cannot fail"
else
	ok "a misspelled DaemonSet field (hostNetwrok) is refused"
fi
rm -f "$broken"
echo "k8s-manifests: $passed passed, $failed failed"
((failed == 0))
