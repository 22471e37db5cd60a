# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
# Turns iscsi-test-cu verbose (CUnit basic) output into "<Suite>.<Test> passed|FAILED" lines.
# Test output may sit between a "Test: X ..." line and CUnit's verdict, so track the test
# until its verdict ("passed" at a line end, or a line "FAILED").
function flush(v) { if (cur != "") print cur, v; cur = "" }
/^Suite: / { flush("FAILED"); suite = $2; next }
/^ *Test: / {
	flush("FAILED")
	name = $0; sub(/^ *Test: /, "", name); sub(/ \.\.\..*/, "", name)
	cur = suite "." name
	if ($0 ~ /\.\.\.passed *$/) flush("passed")
	else if ($0 ~ /\.\.\.FAILED *$/) flush("FAILED")
	next
}
/^Run Summary/ { flush("FAILED"); next }
cur != "" && /passed *$/ { flush("passed"); next }
cur != "" && /(^|[^]])FAILED *$/ { flush("FAILED"); next }
END { flush("FAILED") }
