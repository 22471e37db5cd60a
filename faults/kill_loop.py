#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""SIGKILL loop: the process serving a real Ozone volume (nbdkit, or an SPDK
target exporting it over iSCSI) is killed in the middle of random writes,
restarted, and the whole volume is checked against a model.

Usage: faults/kill_loop.py nbdkit | spdk
- nbdkit: nbdkit with the plugin on a Unix socket; the client is libnbd.
- spdk: ozone_tgt (the module linked in) exporting the volume over iSCSI on
  127.0.0.1, bridged to NBD by qemu-nbd (libiscsi inside qemu-nbd is the
  initiator; it acknowledges a write only when the target did). Both are
  killed at once; the SPDK target is SIGKILLed first.

Owns: one volume (created here, deleted at the end unless OZBD_KILL_KEEP=1), a
temp dir, and the processes it starts (children, known by their pid).
Never: kills a process it did not start, counts a cycle that did not run as
passed, or asserts a speed.

Model: every 4 KiB block written carries (write id, block index) and a fill
derived from them, and no two writes in flight overlap. After a restart each
block must hold its last acknowledged write (or zeros), or the one write to it
that was in flight at the kill; anything else (an older write, a torn block,
another block's data) is lost data, and fails the cycle.

Env: OZBD_KILL_CYCLES (default 4, CI-sized; the full run is 100 per front end),
OZBD_KILL_DEPTH (writes in flight, default 8), OZBD_KILL_SEED,
OZBD_NBD_PLUGIN, OZBD_CLI, OZBD_KILL_BASE (default
ofs://$OZONE_OM_ADDRESS/killloop/bkt); for spdk: OZBD_SPDK_TGT (default
spdk/ozone_tgt), OZBD_KILL_ISCSI_PORT (default 3260 + 200 + pid % 500).
Prints PASS/FAIL per cycle, the figures (writes acknowledged, lost, longest
write, longest restart), and "kill-<target>: N passed, N failed".
"""

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

TARGET = sys.argv[1] if len(sys.argv) > 1 else ""
if TARGET not in ("nbdkit", "spdk"):
    print("usage: faults/kill_loop.py nbdkit|spdk", file=sys.stderr)
    sys.exit(2)
TAG = f"kill-{TARGET}"

try:
    import nbd
except ImportError:
    print(f"SKIPPED: {TAG}: python3-libnbd is not installed (apt-get install python3-libnbd)")
    print(f"{TAG}: 0 passed, 0 failed, 1 skipped")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
PLUGIN = os.environ.get("OZBD_NBD_PLUGIN", os.path.join(ROOT, "nbdkit", "nbdkit-ozbd-plugin.so"))
SPDK_TGT = os.environ.get("OZBD_SPDK_TGT", os.path.join(ROOT, "spdk", "ozone_tgt"))
sys.path.insert(0, os.path.join(ROOT, "spdk", "tests"))
import rpc_raw  # noqa: E402 - the SPDK tests' JSON-RPC client
OZBD = os.environ.get("OZBD_CLI", os.path.join(ROOT, "target", "release", "ozbd"))
BS = 4096
VOL = 64 << 20
CHUNK = 1 << 20
BLOCKS = VOL // BS


def block(wid, blk):
    """The content of block `blk` as write `wid` wrote it."""
    return struct.pack("<QQ", wid, blk) + random.Random(wid * 1_000_003 + blk).randbytes(BS - 16)


def connect(sock, procs, t0, limit=180):
    """An NBD handle on `sock` once it answers; fails when a process exits."""
    while time.monotonic() - t0 < limit:
        for name, p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{name} exited with {p.returncode}")
        if os.path.exists(sock):
            h = nbd.NBD()
            try:
                h.connect_unix(sock)
                return h
            except nbd.Error:
                pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on {sock} in {limit} s")


class NbdkitServer:
    """nbdkit with the plugin, in the foreground (its pid is the child's)."""

    def __init__(self, uri, work):
        self.uri, self.work = uri, work
        self.sock = os.path.join(work, "nbd.sock")
        self.log = open(os.path.join(work, "nbdkit.log"), "ab")
        self.procs = []

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        t0 = time.monotonic()
        self.procs = [("nbdkit", subprocess.Popen(
            ["nbdkit", "-f", "-U", self.sock, "--log=stderr", PLUGIN, f"uri={self.uri}"],
            stdout=self.log, stderr=self.log))]
        h = connect(self.sock, self.procs, t0)
        return h, time.monotonic() - t0

    def kill(self, sig=signal.SIGKILL):
        for _, p in self.procs:
            if p.poll() is None:
                p.send_signal(sig)
                p.wait(timeout=120)


class SpdkServer(NbdkitServer):
    """ozone_tgt exporting the volume over iSCSI, and qemu-nbd as initiator."""

    IQN = "iqn.2016-06.io.spdk:ozone0"

    def __init__(self, uri, work):
        super().__init__(uri, work)
        self.port = int(os.environ.get("OZBD_KILL_ISCSI_PORT", str(3260 + 200 + os.getpid() % 500)))
        self.log = open(os.path.join(work, "tgt.log"), "ab")
        self.cfg = os.path.join(work, "tgt.json")
        with open(self.cfg, "w") as f:
            json.dump({"subsystems": [
                {"subsystem": "bdev", "config": [
                    {"method": "bdev_ozone_create",
                     "params": {"name": "Ozone0", "uri": uri, "timeout_ms": 120000}}]},
                {"subsystem": "iscsi", "config": [
                    {"method": "iscsi_create_portal_group",
                     "params": {"tag": 1, "portals": [{"host": "127.0.0.1", "port": str(self.port)}]}},
                    {"method": "iscsi_create_initiator_group",
                     "params": {"tag": 2, "initiators": ["ANY"], "netmasks": ["127.0.0.1/32"]}},
                    {"method": "iscsi_create_target_node",
                     "params": {"name": "ozone0", "alias_name": "Ozone disk",
                                "luns": [{"bdev_name": "Ozone0", "lun_id": 0}],
                                "pg_ig_maps": [{"pg_tag": 1, "ig_tag": 2}],
                                "queue_depth": 64, "disable_chap": True}}]}]}, f)

    def _exported(self):
        """The iSCSI target node exists (the portal listens before the
        config has created it, and the bdev opens asynchronously)."""
        rpc = os.path.join(self.work, "tgt.sock")
        if not os.path.exists(rpc):
            return False
        try:
            ans = rpc_raw.call(rpc, "iscsi_get_target_nodes", "", 10)
        except OSError:
            return False
        return bool(ans) and any(n.get("name", "").endswith(":ozone0") for n in ans.get("result", []))

    def start(self):
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        t0 = time.monotonic()
        tgt = subprocess.Popen(
            [SPDK_TGT, "--no-huge", "-s", "1024", "-m", "0x1", "--disable-cpumask-locks",
             "-r", os.path.join(self.work, "tgt.sock"), "--json", self.cfg],
            stdout=self.log, stderr=self.log)
        self.procs = [("ozone_tgt", tgt)]
        while not self._exported():
            if tgt.poll() is not None:
                raise RuntimeError(f"ozone_tgt exited with {tgt.returncode} (log {self.log.name})")
            if time.monotonic() - t0 > 180:
                raise RuntimeError("the iSCSI target node was not exported in 180 s")
            time.sleep(0.2)
        qn = subprocess.Popen(
            ["qemu-nbd", "-f", "raw", "-t", "--cache=none", "-k", self.sock,
             f"iscsi://127.0.0.1:{self.port}/{self.IQN}/0"],
            stdout=self.log, stderr=self.log)
        self.procs.append(("qemu-nbd", qn))
        h = connect(self.sock, self.procs, t0)
        return h, time.monotonic() - t0


def run_writes(h, rng, model, pending, next_wid, depth, kill_after, srv, stats):
    """Random non-overlapping writes, `depth` in flight; SIGKILL the server
    after `kill_after` acknowledgements, with writes still in flight."""
    inflight = {}  # cookie -> (wid, first block, count, buffer, submitted)
    busy = set()
    acked = 0
    while True:
        while len(inflight) < depth:
            n = rng.randint(1, 16)
            first = rng.randrange(0, BLOCKS - n + 1)
            span = set(range(first, first + n))
            if span & busy:
                continue
            wid = next_wid[0]
            next_wid[0] += 1
            data = b"".join(block(wid, b) for b in range(first, first + n))
            buf = nbd.Buffer.from_bytearray(bytearray(data))
            cookie = h.aio_pwrite(buf, first * BS)
            inflight[cookie] = (wid, first, n, buf, time.monotonic())
            busy |= span
            for b in span:
                pending[b] = wid
        h.poll(1)
        for cookie in list(inflight):
            try:
                done = h.aio_command_completed(cookie)
            except nbd.Error as e:
                raise RuntimeError(f"a write failed before the kill: {e}")
            if not done:
                continue
            wid, first, n, _, t = inflight.pop(cookie)
            stats["longest_write"] = max(stats["longest_write"], time.monotonic() - t)
            for b in range(first, first + n):
                model[b] = wid
                pending.pop(b, None)
                busy.discard(b)
            acked += 1
            stats["acked"] += 1
        if acked >= kill_after:
            stats["in_flight_at_kill"] += len(inflight)
            srv.kill()
            return


def check(h, model, pending):
    """Read the whole volume; return (problems, blocks that took the in-flight write)."""
    bad, landed = [], 0
    for off in range(0, VOL, CHUNK):
        data = h.pread(CHUNK, off)
        for i in range(CHUNK // BS):
            b = off // BS + i
            got = data[i * BS:(i + 1) * BS]
            wid, blk = struct.unpack("<QQ", got[:16])
            want = {model.get(b, 0)}
            if b in pending:
                want.add(pending[b])
            if got == bytes(BS):
                found = 0
            elif blk == b and got == block(wid, b):
                found = wid
            else:
                bad.append(f"block {b}: torn or foreign data (header wid {wid} blk {blk})")
                continue
            if found not in want:
                bad.append(f"block {b}: holds write {found}, want one of {sorted(want)}"
                           + (" (an acknowledged write was lost)" if found < model.get(b, 0) else ""))
                continue
            if found != model.get(b, 0):
                landed += 1
            model[b] = found
    pending.clear()
    return bad, landed


def main():
    om = os.environ.get("OZONE_OM_ADDRESS")
    if not om:
        print(f"SKIPPED: {TAG}: no Ozone cluster (OZONE_OM_ADDRESS is not set)")
        print(f"{TAG}: 0 passed, 0 failed, 1 skipped")
        return 1 if os.environ.get("OZBD_REQUIRE_OZONE") == "1" else 0
    cycles = int(os.environ.get("OZBD_KILL_CYCLES", "4"))
    depth = int(os.environ.get("OZBD_KILL_DEPTH", "8"))
    seed = int(os.environ.get("OZBD_KILL_SEED", str(int(time.time()))))
    if TARGET == "spdk":
        for tool, why in ((SPDK_TGT, "build SPDK and `make -C spdk` (docs/spdk-module.md)"),
                          ("qemu-nbd", "apt-get install qemu-utils qemu-block-extra")):
            if not (os.access(tool, os.X_OK) or subprocess.run(
                    ["sh", "-c", f"command -v {tool}"], capture_output=True).returncode == 0):
                print(f"SKIPPED: {TAG}: {tool} not found: {why}")
                print(f"{TAG}: 0 passed, 0 failed, 1 skipped")
                return 0
    base = os.environ.get("OZBD_KILL_BASE", f"ofs://{om}/killloop/bkt")
    uri = f"{base}/k{os.getpid()}"
    work = tempfile.mkdtemp(prefix="ozbd-kill-")
    print(f"# kill loop: {cycles} SIGKILLs of {TARGET}, {depth} writes in flight, seed {seed} "
          f"(rerun with OZBD_KILL_SEED={seed}), volume {uri}, work dir {work}", flush=True)
    r = subprocess.run([OZBD, "create", uri, "--size", str(VOL), "--chunk-size", str(CHUNK)],
                       capture_output=True, text=True)
    if r.returncode != 0:
        print(f"FAIL: create {uri}: {r.stderr.strip()}")
        print(f"{TAG}: 0 passed, 1 failed")
        return 1
    rng = random.Random(seed)
    model, pending, next_wid = {}, {}, [1]
    stats = {"acked": 0, "longest_write": 0.0, "in_flight_at_kill": 0, "landed": 0,
             "longest_restart": 0.0, "lost": 0}
    passed = failed = 0
    srv = (SpdkServer if TARGET == "spdk" else NbdkitServer)(uri, work)
    try:
        # Cycle k kills the server; start k + 1 checks what it left. The last
        # start only checks.
        for cyc in range(1, cycles + 2):
            try:
                h, took = srv.start()
                stats["longest_restart"] = max(stats["longest_restart"], took)
                if cyc > 1:
                    bad, landed = check(h, model, pending)
                    stats["landed"] += landed
                    if bad:
                        stats["lost"] += len(bad)
                        failed += 1
                        print(f"FAIL: cycle {cyc - 1}: {len(bad)} blocks wrong after SIGKILL and restart:")
                        for line in bad[:10]:
                            print(f"      {line}")
                    else:
                        passed += 1
                        print(f"PASS: cycle {cyc - 1}: after SIGKILL and restart ({took:.1f} s) every "
                              f"acknowledged write is there ({landed} blocks took an in-flight write)",
                              flush=True)
                if cyc > cycles:
                    h.shutdown()
                    srv.kill(signal.SIGTERM)
                    break
                run_writes(h, rng, model, pending, next_wid, depth, rng.randint(5, 80), srv, stats)
                del h  # its server is dead
            except Exception as e:  # noqa: BLE001 - a cycle that cannot run is a failure
                failed += 1
                print(f"FAIL: cycle {cyc}: {e}", flush=True)
                srv.kill()
    finally:
        srv.kill()
    print(f"# figures: {cycles} SIGKILLs survived {passed}, {stats['acked']} writes acknowledged, "
          f"{stats['in_flight_at_kill']} in flight at the kills ({stats['landed']} blocks of them landed), "
          f"blocks lost or wrong {stats['lost']}, longest write {stats['longest_write']:.2f} s, "
          f"longest restart {stats['longest_restart']:.1f} s")
    if os.environ.get("OZBD_KILL_KEEP") != "1":
        subprocess.run([OZBD, "delete", uri], capture_output=True)
        if failed == 0:
            shutil.rmtree(work, ignore_errors=True)
    print(f"{TAG}: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
