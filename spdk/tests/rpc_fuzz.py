#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Hostile parameters for bdev_ozone_create, bdev_ozone_delete and bdev_ozone_resize (on one
# live bdev), generated from a seed: each
# request starts from a valid one and has one or more fields replaced by a wrong type, a huge or
# negative number, an empty or 10,000-character string, a URI with "..", "%00", a NUL, an
# unknown scheme or a path outside the test's directory, or a bdev name SPDK would truncate.
# Each must get a JSON-RPC answer within a bound, the target must stay up, and an accepted
# create must name a volume inside the test's own directory (then it is deleted again).
# Afterwards nothing exists outside the test's directories: the file:// escape targets are
# checked on disk.
# Owns: the requests it sends and the bdevs they create (deleted as it goes).
# Never: sends anything but JSON-RPC to the socket it is given.
# Use: rpc_fuzz.py <rpc socket> <ofs volume root> <file work dir> <count> <seed>
# Prints "  ok ..." per category, FAIL lines, and "rpc-fuzz: N inputs, N refused, N accepted".
import json
import os
import random
import sys

import rpc_raw

sock_path, ofs_root, work, count, seed = sys.argv[1:6]
count, seed = int(count), int(seed)
rng = random.Random(seed)
fails = 0


def call(method, params, timeout=180.0):
    """One request; the decoded answer, or None when none came in time."""
    return rpc_raw.call(sock_path, method, json.dumps(params) if params is not None else "", timeout)


def fail(msg):
    global fails
    fails += 1
    print(f"FAIL: rpc-fuzz: {msg}", flush=True)


files = os.path.join(work, "files")
os.makedirs(files, exist_ok=True)
escape = os.path.join(work, "escaped")
HOSTILE_NUMBERS = [-1, -2**63, 0, 1, 2**31, 2**32 + 1, 2**63, 2**64, 2**64 + 7, 10**30, 1.5, -0.0, 1e308]
LONG = "x" * 10000
HOSTILE_STRINGS = [
    "", " ", LONG, "a" * 255, "a" * 256, "é" * 300, "\u0000", "nul\u0000byte", "%00", "..", "../..",
    "bad\nline", "\"quoted\"", "{}", "[]", "null", "-1",
]
HOSTILE_URIS = [
    "", LONG, "ofs://", "ofs:///", "http://127.0.0.1/v/b/d", "s3://bucket/key", "o3fs://b.v/d",
    "hdfs://127.0.0.1:1/v/b", f"{ofs_root}/../escape", f"{ofs_root}/a/../../x", f"{ofs_root}/%00",
    f"{ofs_root}/nul\u0000byte", f"{ofs_root}/{LONG}", f"{ofs_root}/ sp ace", "ofs://127.0.0.1:1/v/b/d",
    "ofs://127.0.0.1:notaport/v/b/d", "ofs://[::1/v/b", f"file://{files}/../escaped",
    f"file://{files}/a/../../escaped", "file://relative/path", "file:///", f"file://{files}/%2e%2e/escaped",
    "mem://x/v/b/d",
]
TYPES = [None, True, [], {}, [1, 2], {"a": 1}, 3.25]


def hostile(key):
    r = rng.random()
    if r < 0.2:
        return rng.choice(TYPES)
    if key in ("size", "new_size", "block_size", "chunk_size", "timeout_ms", "workers", "retry_ms",
               "max_inflight_requests", "max_inflight_bytes", "journal_mb", "cache_mb") and r < 0.8:
        return rng.choice(HOSTILE_NUMBERS)
    if key in ("uri", "ozone_uri") and r < 0.9:
        return rng.choice(HOSTILE_URIS)
    if key in ("force", "readonly", "destroy_data") and r < 0.6:
        return rng.choice([0, 1, "true", "yes", None])
    return rng.choice(HOSTILE_STRINGS + HOSTILE_NUMBERS)


KEYS = ["name", "uri", "size", "block_size", "chunk_size", "uuid", "cpumask", "timeout_ms",
        "workers", "retry_ms", "max_inflight_requests", "max_inflight_bytes", "journal",
        "journal_mb", "cache_mb", "force", "readonly", "ozone_uri", "no_such_key"]
refused = accepted = 0
kinds = {}
# One live bdev for resize requests to act on (a hostile name misses it, a valid one grows or,
# with force, shrinks it; both are fine as long as the answer comes and the target stays up).
RESIZE_NAME = "fzresize"
made = call("bdev_ozone_create", {"name": RESIZE_NAME, "uri": f"{ofs_root}/fz-{seed}-resize",
                                  "size": 1 << 20, "timeout_ms": 10000})
if not made or "result" not in made:
    fail(f"could not create the bdev for resize requests: {made}")
for i in range(count):
    r = rng.random()
    method = "bdev_ozone_create" if r < 0.7 else "bdev_ozone_delete" if r < 0.85 else "bdev_ozone_resize"
    if method == "bdev_ozone_resize":
        params = {"name": RESIZE_NAME, "new_size": rng.choice([1 << 20, 2 << 20, 8 << 20])}
        for k in rng.sample(["name", "new_size", "force", "no_such_key"], rng.randint(1, 2)):
            params[k] = hostile(k)
    elif method == "bdev_ozone_create":
        params = {"name": f"fz{i}", "uri": f"{ofs_root}/fz-{seed}-{i}", "size": 1 << 20,
                  "timeout_ms": 10000}
        for k in rng.sample(KEYS, rng.randint(1, 3)):
            params[k] = hostile(k)
    else:
        params = {"name": hostile("name") if rng.random() < 0.7 else f"fz{i}"}
        if rng.random() < 0.5:
            params["destroy_data"] = hostile("destroy_data")
    if rng.random() < 0.05:
        params = rng.choice([[], [1], "str", 7, None])
    ans = call(method, params)
    if ans is None:
        fail(f"no answer within 180 s to {method} {json.dumps(params)[:300]}")
        break
    if "malformed" in ans:
        fail(f"an answer that is not JSON to {method} {json.dumps(params)[:200]}: {ans['malformed'][:200]}")
        break
    alive = call("spdk_get_version", None, 30)
    if not alive or "result" not in alive:
        fail(f"the target is down after {method} {json.dumps(params)[:300]}")
        break
    if "error" in ans:
        refused += 1
        msg = ans["error"].get("message", "")
        if not msg or len(msg) < 8:
            fail(f"an error without a clear message: {ans} for {json.dumps(params)[:200]}")
        kinds[msg[:50]] = kinds.get(msg[:50], 0) + 1
        continue
    accepted += 1
    if method == "bdev_ozone_resize":
        continue
    if method == "bdev_ozone_create":
        uri = params.get("uri") if isinstance(params, dict) else None
        uri = uri if isinstance(uri, str) else params.get("ozone_uri")
        # mem:// is the engine's in-memory backend (a RAM disk, gone at delete): no storage.
        if not (isinstance(uri, str) and (uri.startswith(ofs_root + "/") or uri.startswith(f"file://{files}/")
                                          or uri.startswith("mem://"))):
            fail(f"accepted a volume outside the test's directories: {json.dumps(params)[:300]}")
        res = ans.get("result")
        name = res.get("name") if isinstance(res, dict) else res
        d = call("bdev_ozone_delete", {"name": name, "destroy_data": True})
        if not d or "error" in d:
            fail(f"could not delete the accepted bdev {name}: {d}")
d = call("bdev_ozone_delete", {"name": RESIZE_NAME, "destroy_data": True})
if made and "result" in made and (not d or "error" in d):
    fail(f"could not delete the resize bdev {RESIZE_NAME}: {d}")
if os.path.exists(escape) or os.path.exists(os.path.join(os.path.dirname(work), "escaped")):
    fail("a file:// URI escaped the test's directory")
print(f"  ok   {len(kinds)} distinct refusals; the most common:")
for m, n in sorted(kinds.items(), key=lambda kv: -kv[1])[:8]:
    print(f"         {n:4d}  {m}")
print(f"rpc-fuzz: {count} inputs, {refused} refused with a JSON-RPC error, {accepted} accepted "
      f"(inside the test's directory, then deleted), {fails} failures")
sys.exit(1 if fails else 0)
