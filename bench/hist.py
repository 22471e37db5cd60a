#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# hist.py: summarise an SPDK bdev_get_histogram answer (stdin) as one JSON line:
#   {"count": N, "avg_us": .., "p50_us": .., "p99_us": .., "max_us": ..}
# Bucket bounds follow SPDK's scripts/histogram.py (tick units, tsc_rate ticks per second);
# avg uses each bucket's midpoint, percentiles the upper bound of the bucket they fall in.
# Owns: nothing (a filter). Never: talks to an SPDK app itself.
import base64
import json
import sys

h = json.load(sys.stdin)
data = base64.b64decode(h["histogram"])
g, lo, hi, tsc = h["granularity"], h["min_range"], h["max_range"], h["tsc_rate"]
buckets = []  # (start_ticks, end_ticks, count)
last = 0
for i in range(0, hi - lo):
    for j in range(0, 1 << g):
        idx = ((i << g) + j) * 8
        count = int.from_bytes(data[idx:idx + 8], "little")
        if i > 0:
            end = (1 << (i + g + lo - 1)) + ((j + 1) << (i + lo - 1))
        else:
            end = (j + 1) << lo
        buckets.append((last, end, count))
        last = end
total = sum(c for _, _, c in buckets)
us = 1e6 / tsc
out = {"count": total, "avg_us": 0, "p50_us": 0, "p99_us": 0, "max_us": 0}
if total:
    out["avg_us"] = round(sum((s + e) / 2 * c for s, e, c in buckets) / total * us, 1)
    for p, key in ((0.50, "p50_us"), (0.99, "p99_us")):
        need, seen = p * total, 0
        for s, e, c in buckets:
            seen += c
            if seen >= need:
                out[key] = round(e * us, 1)
                break
    out["max_us"] = round(max(e for s, e, c in buckets if c) * us, 1)
print(json.dumps(out))
