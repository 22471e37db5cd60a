#!/usr/bin/env python3
# SPDX-License-Identifier: BSD-3-Clause
# Copyright (C) 2026 The bdev_ozone authors.
#
# Send one raw JSON-RPC request to an SPDK app and print the response object (one line).
# Owns: nothing but the wire: lets tests send malformed/unknown parameters that rpc.py's
# argument parser would refuse before they reach the module.
# Use: rpc_raw.py <socket> <method> '<params json or "">' [timeout_s]
import json
import socket
import sys
import time

sock_path, method, params = sys.argv[1], sys.argv[2], sys.argv[3]
timeout = float(sys.argv[4]) if len(sys.argv) > 4 else 300.0
req = {"jsonrpc": "2.0", "method": method, "id": 1}
if params:
    req["params"] = json.loads(params)
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sock_path)
s.sendall(json.dumps(req).encode())
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
