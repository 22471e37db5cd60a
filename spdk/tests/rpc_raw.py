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


def call(sock_path, method, params, timeout=300.0, sent_flag=None):
    """Send one request (`params`: JSON text, sent verbatim, or "" for none) and return the
    decoded answer with "elapsed_s", {"malformed": text} for an answer that is not JSON, or
    None when the socket closed or `timeout` passed first."""
    # The params text goes on the wire verbatim (after a syntax check), so a test can send
    # what json.dumps would never produce (a key given twice).
    json.loads(params or "null")
    wire = '{"jsonrpc": "2.0", "method": %s, "id": 1%s}' % (
        json.dumps(method), ', "params": ' + params if params else "")
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(sock_path)
    s.sendall(wire.encode())
    if sent_flag:
        open(sent_flag, "w").close()
    s.settimeout(timeout)
    buf = b""
    dec = json.JSONDecoder()
    start = time.time()
    try:
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return None
            buf += chunk
            try:
                obj, _ = dec.raw_decode(buf.decode())
                break
            except ValueError:
                # SPDK ends each answer with a newline and puts none inside one: an answer
                # that is complete but does not parse is broken, not short. Say so now.
                if buf.endswith(b"\n"):
                    obj = {"malformed": buf.decode(errors="replace")}
                    break
                continue
    except socket.timeout:
        return None
    finally:
        s.close()
    obj["elapsed_s"] = round(time.time() - start, 2)
    return obj


if __name__ == "__main__":
    ans = call(sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 300.0,
               os.environ.get("RPC_RAW_SENT"))
    print(json.dumps(ans if ans is not None else {"error": {"code": -1, "message": "no answer"}}))
