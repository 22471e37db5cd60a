#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# ceiling.sh: the raw-Ozone ceiling probe (bench/OzoneCeiling.java) against the cluster in the
# client environment: group-committed 4 KiB appends + hsync (1, 2, 4 streams), random 4 KiB
# preads on open handles (32 threads), whole-chunk puts and reads (4 MiB and 1 MiB, 8 threads).
# One JSON object per measurement on stdout; progress on stderr.
# Owns:  the compiled classes in $CEILING_WORK (default a mktemp dir, removed at exit) and the
#        probe's scratch directory in Ozone (the probe deletes it).
# Never: starts or stops a cluster, commits anything compiled, asserts a speed.
# Usage: eval "$(scripts/ozone-local env)"; bench/ceiling.sh [OzoneCeiling options, e.g. --time 5]
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
: "${OZONE_OFS_URI:?run: eval \"\$(scripts/ozone-local env)\" first}"
: "${CLASSPATH:?no CLASSPATH (scripts/ozone-local env sets it)}"
JAVA=${JAVA_HOME:+$JAVA_HOME/bin/}java
JAVAC=${JAVA_HOME:+$JAVA_HOME/bin/}javac
own=0
if [[ -z ${CEILING_WORK:-} ]]; then
  CEILING_WORK=$(mktemp -d /tmp/bench-ceiling.XXXXXX)
  own=1
fi
trap '((own)) && rm -rf "$CEILING_WORK"' EXIT
cls=$CEILING_WORK/classes
if [[ ! -f $cls/OzoneCeiling.class || $HERE/OzoneCeiling.java -nt $cls/OzoneCeiling.class ]]; then
  mkdir -p "$cls"
  "$JAVAC" -nowarn -d "$cls" -cp "$CLASSPATH" "$HERE/OzoneCeiling.java"
fi
# LIBHDFS_OPTS carries the JDK 17 module flags and the client log4j config.
# shellcheck disable=SC2086
# (not exec: the EXIT trap removes a work dir of our own)
rc=0
"$JAVA" ${LIBHDFS_OPTS:-} -Xmx2g -cp "$cls:$CLASSPATH" OzoneCeiling "$OZONE_OFS_URI" "$@" || rc=$?
exit "$rc"
