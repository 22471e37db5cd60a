#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Send one raw JSON-RPC request to an SPDK app and print the response object (one line).
# Owns: nothing but the wire: lets tests send malformed/unknown parameters that rpc.py's
# argument parser would refuse before they reach the module.
# Use: rpc_raw.py <socket> <method> '<params json or "">' [timeout_s]
# Env: RPC_RAW_SENT=<file>: create <file> once the request is sent (for tests that must
# know a request is pending before they go on).
import json
import os
import socket
import sys
import time

sock_path, method, params = sys.argv[1], sys.argv[2], sys.argv[3]
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
# The params text goes on the wire verbatim (after a syntax check), so a test can send
# what json.dumps would never produce (a key given twice).
json.loads(params or "null")
wire = '{"jsonrpc": "2.0", "method": %s, "id": 1%s}' % (
    json.dumps(method), ', "params": ' + params if params else "")
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
s.sendall(wire.encode())
if os.environ.get("RPC_RAW_SENT"):
    open(os.environ["RPC_RAW_SENT"], "w").close()
s.settimeout(timeout)
buf = b""
dec = json.JSONDecoder()
start = time.time()
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    buf += chunk
    try:
        obj, _ = dec.raw_decode(buf.decode())
        break
    except ValueError:
        continue
obj["elapsed_s"] = round(time.time() - start, 2)
print(json.dumps(obj))
