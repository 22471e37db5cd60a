#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Bounded fuzzing of the engine's parsers of outside bytes (chunkstore/src/fuzzing.rs): the
# volume URI, the superblock, journal segments and chunk checksum trailers. libFuzzer through
# cargo fuzz on nightly Rust with AddressSanitizer, OZBD_FUZZ_SECS seconds per target (10 by
# default, CI-sized; a long run sets more), from the seeds in seeds/<target>/.
# Owns: a corpus dir under $OZBD_FUZZ_WORK (default a mktemp dir, removed at exit unless a
#       crash was found) and cargo fuzz's build in chunkstore/fuzz/target.
# Never: counts a target that did not run as passed (no nightly or no cargo-fuzz: SKIPPED).
# Prints PASS/FAIL per target with the inputs tried, then "fuzz: N passed, N failed".
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
SECS=${OZBD_FUZZ_SECS:-10}
TARGETS=${OZBD_FUZZ_TARGETS:-uri superblock journal_segment chunk_trailer}
if ! rustup run nightly rustc --version > /dev/null 2>&1; then
	echo "SKIPPED: fuzz: no nightly Rust toolchain (rustup toolchain install nightly)"
	echo "fuzz: 0 passed, 0 failed, 1 skipped"
	exit 0
fi
if ! cargo fuzz --version > /dev/null 2>&1; then
	echo "# installing cargo-fuzz (cargo install cargo-fuzz --locked)"
	cargo install --quiet --locked cargo-fuzz > /dev/null 2>&1 || {
		echo "SKIPPED: fuzz: cargo install cargo-fuzz failed"
		echo "fuzz: 0 passed, 0 failed, 1 skipped"
		exit 0
	}
fi
WORK=${OZBD_FUZZ_WORK:-$(mktemp -d /tmp/ozbd-fuzz.XXXXXX)}
keep=0
trap '((keep)) || rm -rf "$WORK"' EXIT
cd "$HERE/.." || exit 1
passed=0 failed=0
for t in $TARGETS; do
	mkdir -p "$WORK/corpus/$t" "$WORK/artifacts/$t"
	cp "$HERE/seeds/$t/"* "$WORK/corpus/$t/" 2> /dev/null
	log=$WORK/$t.log
	cargo +nightly fuzz run --fuzz-dir "$HERE" "$t" "$WORK/corpus/$t" -- \
		-max_total_time="$SECS" -rss_limit_mb=2048 -artifact_prefix="$WORK/artifacts/$t/" > "$log" 2>&1
	rc=$?
	runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | grep -Eo '[0-9]+' | tail -1)
	if ((rc == 0)) && [[ -n $runs ]]; then
		passed=$((passed + 1))
		echo "PASS: fuzz $t: $runs inputs in ${SECS}s, no crash, no failed check ($(ls "$WORK/corpus/$t" | wc -l) in the corpus)"
	else
		failed=$((failed + 1))
		keep=1
		echo "FAIL: fuzz $t (exit $rc; log $log, crashing input in $WORK/artifacts/$t/)"
		grep -E 'panicked|ERROR|SUMMARY|error' "$log" | head -5 | sed 's/^/      /'
	fi
done
echo "fuzz: $passed passed, $failed failed"
((failed == 0))
