#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
# Copyright (C) 2026 The bdev_ozone authors.
#
# Cinder's SPDK volume driver (cinder.volume.drivers.spdk.SPDKDriver, from the PyPI package)
# against a real SPDK target with an ozone bdev and an lvstore, reached through ozbd-gateway.
# No database and no message bus: the driver is loaded the way cinder-volume loads it (oslo.config
# reads a real cinder.conf; Configuration(volume_backend_opts, config_group=<backend>); the class
# named by volume_driver), and it is handed Volume/Snapshot objects built in memory.
#
# Owns: the sequence of driver calls (setup, get_volume_stats, create_volume, create_export,
# initialize_connection, terminate_connection, remove_export, create_snapshot,
# create_volume_from_snapshot, create_cloned_volume, extend_volume, delete_snapshot,
# delete_volume), one "PASS: <step> (<s> s) ..." / "FAIL: ..." / "SKIP: ..." line per step (with
# the driver's requests over 1 s: Cinder gives each 30 s), the data check (a pattern written
# through the source's NVMe/TCP export before the snapshot must read back, through NVMe/TCP, from
# the volume made from the snapshot, from the clone, and from the source after the copies and
# extend_volume, whose new space must take a write), the ozone bdev's statistics per copy, and
# the last line "cinder: N passed, N failed[, N skipped]".
# Must never: patch or work around the driver (its sharp edges are reported as they are: a step
# that fails in Cinder's code fails here), talk to anything but the configured gateway and the
# NVMe/TCP listener the driver exported, or leave a volume behind that it could delete.
#
# Usage: cinder_harness.py --config-file cinder.conf [--backend spdk-ozone] --spdk-dd PATH
#        [--gib 1] [--extend-gib 2] [--fill-mib 0] [--ozone-bdev Ozone0] [--work DIR]
#        [--steps setup,get_volume_stats,create_volume] (stop after those; for negative checks)
# Exit status: 0 when every step passed, 1 otherwise, 2 on a usage error.

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
import warnings

warnings.filterwarnings("ignore")  # eventlet's and oslo's deprecation notices, once per import

MIB = 1 << 20
GIB = 1 << 30
# Statistics of the ozone bdev that are levels, not counters: left out of the per-step deltas.
GAUGES = {"dirty_bytes", "journal_bytes", "destage_rate", "bytes", "capacity", "inflight",
          "inflight_bytes", "allocated_chunks", "segments", "records_per_hsync"}


def parse_args():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--config-file", required=True, help="cinder.conf with the backend section")
    p.add_argument("--backend", help="backend section (default: the first of enabled_backends)")
    p.add_argument("--spdk-dd", required=True, help="SPDK's spdk_dd (the NVMe/TCP initiator)")
    p.add_argument("--gib", type=int, default=1,
                   help="create_volume size (GiB): the size every snapshot and clone copies")
    p.add_argument("--extend-gib", type=int,
                   help="extend_volume size for the source, after the copies (default: --gib + 1)")
    p.add_argument("--fill-mib", type=int, default=0,
                   help="MiB of data written from offset 0 before the pattern, so that the copies "
                        "move that much real data (default 0: only the 9 MiB pattern is stored)")
    p.add_argument("--ozone-bdev", help="the ozone bdev under the lvstore: print its statistics "
                                        "(what each copy did in Ozone)")
    p.add_argument("--work", help="scratch directory (default: a new one under /tmp)")
    p.add_argument("--dd-timeout", type=int, default=300, help="bound on one spdk_dd run (s)")
    p.add_argument("--cleanup-wait", type=int, default=180,
                   help="how long to retry deleting what a failed step left (s)")
    p.add_argument("--steps", help="comma-separated step names: run only up to the last of these")
    a = p.parse_args()
    a.extend_gib = a.extend_gib or a.gib + 1
    if a.gib < 1 or a.extend_gib <= a.gib:
        p.error("need 1 <= --gib < --extend-gib")
    if not 0 <= a.fill_mib <= a.gib * 1024 or a.fill_mib % 4:
        p.error("--fill-mib: a multiple of 4, at most the volume's size")
    return a


# ---- results -----------------------------------------------------------------------------------
class Tally:
    def __init__(self, only):
        self.passed = self.failed = self.skipped = 0
        self.only = only  # None or a list of step names; run through the last one named
        self.stop = False

    def step(self, name, fn, needs=()):
        """Run fn() as one step; returns its result, or None when it failed or was not run.
        needs: results of earlier steps (a None among them means: not run)."""
        if self.stop:
            return None
        if any(n is None for n in needs):
            self.skipped += 1
            print(f"SKIP: {name} (an earlier step it needs failed)", flush=True)
            return None
        t0 = time.monotonic()
        n0 = len(CALLS)
        try:
            res = fn()
            note = ""
            if isinstance(res, tuple) and len(res) == 2 and isinstance(res[1], str):
                res, note = res
            self.passed += 1
            if self.slow_note(n0):
                note = (note + "; " if note else "") + self.slow_note(n0)
            print(f"PASS: {name} ({time.monotonic() - t0:.2f} s){' ' + note if note else ''}",
                  flush=True)
            res = True if res is None else res
        except Exception as e:  # every failure is a step result, with the driver's own exception
            self.failed += 1
            kind = type(e).__name__
            slow = self.slow_note(n0)
            print(f"FAIL: {name} ({time.monotonic() - t0:.2f} s) {kind}: {e}"
                  f"{' [' + slow + ']' if slow else ''}", flush=True)
            tb = [ln for ln in traceback.format_exc().strip().splitlines()
                  if ln.strip().strip("^~") != ""]
            for line in tb[-6:]:
                print(f"      {line}", flush=True)
            res = None
        if self.only is not None and name == self.only[-1]:
            self.stop = True
        return res

    @staticmethod
    def slow_note(n0):
        """For steps whose slowest request took over 1 s: which, and how long (Cinder gives
        each request 30 s)."""
        calls = CALLS[n0:]
        if calls and max(c[1] for c in calls) > 1.0:
            return slowest_since(n0)
        return ""

    def line(self):
        s = f"cinder: {self.passed} passed, {self.failed} failed"
        return s + (f", {self.skipped} skipped" if self.skipped else "")


# ---- the driver's JSON-RPC calls, timed (observed, never changed) ---------------------------------
CALLS = []  # (method, seconds, outcome) of every HTTP request the driver and the harness make


def time_rpc_calls():
    import requests.sessions
    orig = requests.sessions.Session.request

    def timed(self, method, url, *args, **kwargs):
        try:
            rpc_method = json.loads(kwargs.get("data") or "{}").get("method", "?")
        except (TypeError, ValueError):
            rpc_method = "?"
        t0 = time.monotonic()
        try:
            r = orig(self, method, url, *args, **kwargs)
        except Exception as e:
            CALLS.append((rpc_method, time.monotonic() - t0, type(e).__name__))
            raise
        CALLS.append((rpc_method, time.monotonic() - t0, r.status_code))
        return r

    requests.sessions.Session.request = timed


def slowest_since(n):
    """The requests since CALLS had n entries that took over 1 s, as a note."""
    slow = [f"{m} {s:.1f} s" + ("" if how == 200 else f" ({how})")
            for m, s, how in CALLS[n:] if s > 1.0]
    return f"{len(CALLS) - n} RPCs; over 1 s: {', '.join(slow)}" if slow else ""


# ---- Cinder, loaded the way cinder-volume loads it ------------------------------------------------
def load_driver(conf_file, backend):
    from oslo_config import cfg
    from oslo_log import log as logging
    from oslo_utils import importutils

    from cinder import objects
    objects.register_all()
    from cinder.common import config  # noqa: F401  (registers enabled_backends, host, ...)
    from cinder.volume import configuration
    from cinder.volume import manager  # volume_backend_opts, as VolumeManager uses them

    CONF = cfg.CONF
    logging.register_options(CONF)
    CONF(["--config-file", conf_file], project="cinder", default_config_files=[])
    logging.setup(CONF, "cinder")
    backends = CONF.enabled_backends or []
    backend = backend or (backends[0] if backends else None)
    if not backend or backend not in backends:
        raise SystemExit(f"cinder_harness: backend {backend!r} is not in enabled_backends "
                         f"{backends} of {conf_file}")
    conf = configuration.Configuration(manager.volume_backend_opts, config_group=backend)
    drv = importutils.import_object(conf.volume_driver, configuration=conf,
                                    host=f"{CONF.host}@{backend}", cluster_name=None,
                                    is_vol_db_empty=True, active_backend_id=None)
    return drv, conf, backend


def new_volume(ctxt, size_gib, label):
    from cinder import objects
    return objects.Volume(context=ctxt, id=str(uuid.uuid4()), _name_id=None, size=size_gib,
                          display_name=label, provider_location=None, provider_auth=None,
                          status="creating", attach_status="detached", volume_type_id=None)


def new_snapshot(ctxt, vol):
    from cinder import objects
    return objects.Snapshot(context=ctxt, id=str(uuid.uuid4()), volume_id=vol.id,
                            volume_size=vol.size, volume=vol, status="creating",
                            display_name="harness-snap")


def rpc(drv, method, params=None):
    """A JSON-RPC call through the same gateway and credentials as the driver (not through the
    driver's _rpc_call, so that an error comes back whole instead of as KeyError('result'))."""
    import requests
    c = drv.configuration
    body = {"jsonrpc": "2.0", "id": 1, "method": method}
    if params is not None:
        body["params"] = params
    r = requests.post(drv.url, data=json.dumps(body),
                      auth=(c.spdk_rpc_username, c.spdk_rpc_password),
                      verify=c.driver_ssl_cert_verify, timeout=120)
    r.raise_for_status()
    j = r.json()
    if "error" in j:
        raise RuntimeError(f"{method}: {j['error']}")
    return j["result"]


# ---- the data path: SPDK's userspace NVMe/TCP initiator ------------------------------------------
class Initiator:
    def __init__(self, spdk_dd, work, timeout):
        self.dd_bin = spdk_dd
        self.work = work
        self.timeout = timeout
        self.env = dict(os.environ)
        lib = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(spdk_dd))), "lib")
        if os.path.isdir(lib):
            self.env["LD_LIBRARY_PATH"] = lib + (
                ":" + self.env["LD_LIBRARY_PATH"] if self.env.get("LD_LIBRARY_PATH") else "")
        self.env.pop("LD_PRELOAD", None)  # the initiator needs no ozone module
        self.runs = 0

    def config(self, data):
        """A bdev config attaching the export that initialize_connection described."""
        if data.get("transport_type") != "tcp":
            raise RuntimeError(f"the export is {data.get('transport_type')!r}, not tcp: "
                               "set target_protocol = nvmet_tcp")
        cfg = {"subsystems": [{"subsystem": "bdev", "config": [
            {"method": "bdev_nvme_attach_controller", "params": {
                "name": "NVMe0", "trtype": "tcp", "adrfam": "ipv4",
                "traddr": data["target_portal"], "trsvcid": str(data["target_port"]),
                "subnqn": data["nqn"]}},
            {"method": "bdev_wait_for_examine"}]}]}
        path = os.path.join(self.work, f"initiator-{self.runs}.json")
        with open(path, "w") as f:
            json.dump(cfg, f)
        return path, f"NVMe0n{data['ns_id']}"

    def dd(self, data, args, label):
        cfgpath, bdev = self.config(data)
        self.runs += 1
        sock = f"/tmp/cinder-{os.getpid()}-dd.sock"
        log = os.path.join(self.work, f"dd-{self.runs}-{label}.log")
        argv = [self.dd_bin, "--no-huge", "-s", "1024", "-u", "--disable-cpumask-locks", "-r", sock,
                "--json", cfgpath] + [a.replace("@BDEV@", bdev) for a in args]
        with open(log, "w") as out:
            try:
                rc = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env,
                                    timeout=self.timeout).returncode
            except subprocess.TimeoutExpired:
                raise RuntimeError(f"spdk_dd ({label}) did not finish in {self.timeout} s; log {log}")
        if rc != 0:
            with open(log) as f:
                tail = [ln.rstrip() for ln in f if "error" in ln.lower()][-3:]
            raise RuntimeError(f"spdk_dd ({label}) exited {rc}: {' | '.join(tail)} (log {log})")

    def write(self, data, path, offset_mib, bs_mib=1):
        self.dd(data, ["--if", path, "--ob", "@BDEV@", "--bs", str(bs_mib * MIB),
                       "--seek", str(offset_mib // bs_mib)], "write")

    def read(self, data, path, offset_mib, length_mib):
        self.dd(data, ["--ib", "@BDEV@", "--of", path, "--bs", str(MIB),
                       "--skip", str(offset_mib), "--count", str(length_mib)], "read")


def pattern_bytes(seed, n):
    """n bytes, non-zero, different for every seed and every 32 bytes."""
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).digest() * 128  # 4 KiB per hash
        i += 1
    return bytes(out[:n])


# ---- the run ------------------------------------------------------------------------------------
def main():
    a = parse_args()
    work = a.work or tempfile.mkdtemp(prefix="cinder-harness.")
    os.makedirs(work, exist_ok=True)
    only = a.steps.split(",") if a.steps else None
    t = Tally(only)
    print(f"cinder harness: config {a.config_file}, volumes of {a.gib} GiB"
          f"{f' ({a.fill_mib} MiB of data)' if a.fill_mib else ''}, source extended to "
          f"{a.extend_gib} GiB after the copies, work {work}", flush=True)

    time_rpc_calls()
    drv, conf, backend = load_driver(a.config_file, a.backend)
    from cinder import context
    ctxt = context.get_admin_context()
    print(f"cinder {_cinder_version()}: backend "
          f"[{backend}] volume_driver {conf.volume_driver}, target_helper "
          f"{conf.target_helper}, target_protocol {conf.target_protocol}, rpc "
          f"{conf.spdk_rpc_protocol}://{conf.spdk_rpc_ip}:{conf.spdk_rpc_port}", flush=True)
    ini = Initiator(a.spdk_dd, work, a.dd_timeout)
    connector = {"nqn": f"nqn.2014-08.org.nvmexpress:uuid:{uuid.uuid4()}",
                 "host": "cinder-harness", "multipath": False}
    created = {}  # name -> object, for the final clean-up

    def stats():
        if not a.ozone_bdev:
            return None
        b = rpc(drv, "bdev_get_bdevs", {"name": a.ozone_bdev})[0]
        return b["driver_specific"]["ozone"]["statistics"]

    def stats_note(before):
        """What the ozone bdev did since `before` (numeric counters that moved)."""
        if before is None:
            return ""
        after = stats()
        moved = []
        for k, v in _flat(after).items():
            if k.rsplit(".", 1)[-1] in GAUGES:
                continue
            d = v - _flat(before).get(k, 0)
            if d:
                moved.append(f"{k} +{_human(k, d)}")
        return "ozone: " + (", ".join(moved) if moved else "no I/O")

    # -- setup: what cinder-volume does at start (do_setup, check_for_setup_error), plus the
    #    target's preconditions this driver cannot meet or check by itself.
    def setup():
        drv.do_setup(ctxt)
        drv.check_for_setup_error()
        drv.set_initialized()
        notes = []
        tr = [x.get("trtype", "").lower() for x in rpc(drv, "nvmf_get_transports")]
        if conf.target_protocol == "nvmet_tcp" and "tcp" not in tr:
            raise RuntimeError("the target has no TCP transport (it has %s): Cinder's target "
                               "helper only creates RDMA; run nvmf_create_transport -t TCP first"
                               % (tr or "none"))
        notes.append(f"transports {tr}")
        subs = rpc(drv, "nvmf_get_subsystems")
        odd = [s["nqn"] for s in subs[1:] if "cnode" not in s["nqn"]]
        if odd:
            raise RuntimeError(f"subsystems without 'cnode' in their NQN {odd}: Cinder's "
                               "_get_first_free_node would raise IndexError on every export")
        if not conf.target_prefix.startswith("nqn."):
            raise RuntimeError(f"target_prefix {conf.target_prefix!r} does not start with "
                               "'nqn.': SPDK refuses the NQN Cinder makes from it")
        return True, "; ".join(notes)

    ok = t.step("setup", setup)

    def volume_stats():
        s = drv.get_volume_stats(refresh=True)
        pools = s.get("pools") or []
        if not pools:
            raise RuntimeError(f"no pools (no lvstore on the target?): {s}")
        p = pools[0]
        return p, (f"{len(pools)} pool(s); {p['pool_name']}: total {p['total_capacity_gb']:.2f} "
                   f"GiB, free {p['free_capacity_gb']:.2f} GiB, protocol {p['storage_protocol']}")

    pool0 = t.step("get_volume_stats", volume_stats, [ok])

    src = new_volume(ctxt, a.gib, "harness-src")

    def create():
        created[src.name] = src
        drv.create_volume(src)
        b = _lvol(drv, src.name)
        return b, f"{src.name} -> {b['name']} ({_gib(b)} GiB)"

    v_src = t.step("create_volume", create, [pool0])

    def attach(vol, tag):
        """create_export + initialize_connection, as the volume manager does; returns data."""
        def exp():
            drv.validate_connector(connector)
            upd = drv.create_export(ctxt, vol, connector)
            vol.provider_location = upd["provider_location"]
            vol.provider_auth = upd.get("provider_auth")
            return True, f"{vol.name}: {upd['provider_location']}"

        e = t.step(f"create_export ({tag})", exp, [True])

        def init():
            ci = drv.initialize_connection(vol, connector)
            if ci.get("driver_volume_type") not in ("nvmeof", "NVMe-oF"):
                raise RuntimeError(f"driver_volume_type {ci.get('driver_volume_type')}")
            return ci["data"], json.dumps(ci["data"], sort_keys=True)

        return t.step(f"initialize_connection ({tag})", init, [e])

    def detach(vol, tag, data):
        t.step(f"terminate_connection ({tag})",
               lambda: drv.terminate_connection(vol, connector), [data])

        def rm():
            nqn = data["nqn"] if data else None
            drv.remove_export(ctxt, vol)
            left = [s["nqn"] for s in rpc(drv, "nvmf_get_subsystems") if s["nqn"] == nqn]
            if left:
                raise RuntimeError(f"subsystem {nqn} still exists after remove_export")
            vol.provider_location = None
            return True, f"{nqn} deleted"

        t.step(f"remove_export ({tag})", rm, [True])

    # The pattern: 3 MiB near the start, in the middle and at the end of the volume.
    size_mib = a.gib * 1024
    extents = [(1, 3), (size_mib // 2 + 5, 3), (size_mib - 4, 3)]
    grown = (a.extend_gib * 1024 - 4, 3)  # written after extend_volume, in the new space
    pats = {}
    for off, n in extents + [grown]:
        path = os.path.join(work, f"pattern-{off}.bin")
        with open(path, "wb") as f:
            f.write(pattern_bytes(f"harness:{off}", n * MIB))
        pats[off] = path

    def check_pattern(data, tag, exts):
        bad = []
        for off, n in exts:
            got = os.path.join(work, f"read-{tag}-{off}.bin")
            ini.read(data, got, off, n)
            with open(got, "rb") as f, open(pats[off], "rb") as g:
                if f.read() != g.read():
                    bad.append(f"{n} MiB at {off} MiB")
        if bad:
            raise RuntimeError(f"pattern differs in {tag}: {', '.join(bad)}")
        return True, (f"{', '.join(f'{n} MiB at {o} MiB' for o, n in exts)}"
                      f" read back identical over NVMe/TCP")

    # -- the source: export it, write through NVMe/TCP, detach.
    d_src = attach(src, "source") if v_src else None

    def write_data():
        notes = []
        if a.fill_mib:
            fill = os.path.join(work, "fill.bin")
            with open(fill, "wb") as f:
                block = pattern_bytes("fill", 4 * MIB)
                for i in range(a.fill_mib // 4):
                    f.write(i.to_bytes(8, "little") + block[8:])
            t0 = time.monotonic()
            ini.write(d_src, fill, 0, bs_mib=4)
            os.unlink(fill)
            notes.append(f"{a.fill_mib} MiB of data written in {time.monotonic() - t0:.1f} s")
        for off, n in extents:
            ini.write(d_src, pats[off], off)
        notes.append(f"pattern written: {', '.join(f'{n} MiB at {o} MiB' for o, n in extents)}")
        return True, "; ".join(notes)

    w = t.step("data: write pattern to source (NVMe/TCP)", write_data, [d_src])
    if d_src is not None:
        detach(src, "source", d_src)

    # -- the copies. create_snapshot inflates the source after snapshotting it,
    #    create_volume_from_snapshot inflates the new clone, create_cloned_volume does both.
    snap = new_snapshot(ctxt, src)

    def mk_snap():
        s0 = stats()
        created[snap.name] = snap
        drv.create_snapshot(snap)
        return True, f"{snap.name}; {stats_note(s0)}"

    v_snap = t.step("create_snapshot", mk_snap, [w])

    from_snap = new_volume(ctxt, a.gib, "harness-from-snap")

    def mk_from_snap():
        s0 = stats()
        created[from_snap.name] = from_snap
        drv.create_volume_from_snapshot(from_snap, snap)
        return True, f"{from_snap.name}; {stats_note(s0)}"

    v_fs = t.step("create_volume_from_snapshot", mk_from_snap, [v_snap])

    clone = new_volume(ctxt, a.gib, "harness-clone")

    def mk_clone():
        s0 = stats()
        created[clone.name] = clone
        drv.create_cloned_volume(clone, src)
        return True, f"{clone.name}; {stats_note(s0)}"

    v_cl = t.step("create_cloned_volume", mk_clone, [w])

    # -- read the pattern back from the copies, each through its own export.
    for vol, tag, needs in ((from_snap, "from-snapshot", v_fs), (clone, "clone", v_cl)):
        data = attach(vol, tag) if needs else None
        t.step(f"data: pattern in {tag} (NVMe/TCP)",
               lambda d=data, g=tag: check_pattern(d, g, extents), [data, w])
        if data is not None:
            detach(vol, tag, data)

    # -- extend the source (its copies done), then check its old data and its new space.
    def extend():
        drv.extend_volume(src, a.extend_gib)
        src.size = a.extend_gib
        b = _lvol(drv, src.name)
        if _gib(b) != a.extend_gib:
            raise RuntimeError(f"lvol is {_gib(b)} GiB after extend_volume({a.extend_gib})")
        return True, f"{src.name}: {a.gib} -> {_gib(b)} GiB"

    v_ext = t.step("extend_volume", extend, [v_src, v_snap])
    data = attach(src, "source, extended") if v_ext else None

    def src_check():
        ini.write(data, pats[grown[0]], grown[0])
        return check_pattern(data, "source", extents + [grown])

    t.step("data: pattern in source after the copies and extend (NVMe/TCP)", src_check, [data, w])
    if data is not None:
        detach(src, "source, extended", data)

    # -- delete everything, then check that the pool is as it was.
    def rm_snap():
        drv.delete_snapshot(snap)
        created.pop(snap.name, None)
        return True, _gone(drv, snap.name)

    t.step("delete_snapshot", rm_snap, [v_snap])

    def rm_vol(v):
        drv.delete_volume(v)
        created.pop(v.name, None)
        return True, _gone(drv, v.name)

    for vol, tag, needs in ((clone, "clone", v_cl), (from_snap, "from-snapshot", v_fs),
                            (src, "source", v_src)):
        t.step(f"delete_volume ({tag})", lambda v=vol: rm_vol(v), [needs])

    def stats_after():
        p, note = volume_stats()
        if pool0 and abs(p["free_capacity_gb"] - pool0["free_capacity_gb"]) > 1e-6:
            raise RuntimeError(f"free capacity {p['free_capacity_gb']:.3f} GiB, was "
                               f"{pool0['free_capacity_gb']:.3f} GiB before the run")
        return True, note + " (as before the run)"

    t.step("get_volume_stats (after deletes)", stats_after, [pool0])

    # Whatever a failed step left: remove it with the driver's own calls, then any lvol of this
    # run the driver does not know (create_cloned_volume's snp-volume-*), by RPC. A request that
    # timed out goes on in SPDK (an inflate keeps its lvols busy), so each is retried for a while.
    ids = [v.id for v in (src, from_snap, clone)] + [snap.id]
    if created:
        order = [o for o in (clone, from_snap, src, snap) if o.name in created]
        print(f"      clean-up: {', '.join(o.name for o in order)} (up to {a.cleanup_wait} s)",
              flush=True)
        deadline = time.monotonic() + a.cleanup_wait
        while True:
            errs = {}
            for obj in list(order):
                try:
                    if obj is snap:
                        drv.delete_snapshot(obj)
                    else:
                        try:
                            drv.remove_export(ctxt, obj)
                        except Exception:
                            pass
                        drv.delete_volume(obj)
                    _gone(drv, obj.name)
                    order.remove(obj)
                    print(f"      clean-up: {obj.name} gone", flush=True)
                except Exception as e:
                    errs[obj.name] = f"{type(e).__name__}: {e}"
            if not order or time.monotonic() > deadline:
                break
            time.sleep(5)
        for name, e in errs.items():
            print(f"      clean-up: could not delete {name}: {e}", flush=True)
    deadline = time.monotonic() + (a.cleanup_wait if created else 0)
    while True:
        try:
            left = [(b["name"], al) for b in rpc(drv, "bdev_get_bdevs")
                    for al in b.get("aliases", []) if any(i in al for i in ids)]
        except Exception as e:
            left = [("?", f"(could not list: {e})")]
            break
        if not left or time.monotonic() > deadline:
            break
        for name, al in left:
            try:
                rpc(drv, "bdev_lvol_delete", {"name": name})
                print(f"      clean-up: deleted {al} by RPC", flush=True)
            except Exception:
                pass
        time.sleep(2)
    if left:
        print(f"      left on the target: {', '.join(al for _, al in left)}", flush=True)
    if created and pool0:
        try:
            free = drv.get_volume_stats(refresh=True)["pools"][0]["free_capacity_gb"]
            print(f"      clean-up: pool free {free:.3f} GiB (before the run "
                  f"{pool0['free_capacity_gb']:.3f} GiB)", flush=True)
        except Exception as e:
            print(f"      clean-up: no volume stats: {type(e).__name__}: {e}", flush=True)
    print(t.line(), flush=True)
    return 0 if t.failed == 0 and t.skipped == 0 else 1


def _cinder_version():
    try:
        from importlib.metadata import version
        return version("cinder")
    except Exception:
        return "?"


def _lvol(drv, name):
    for b in rpc(drv, "bdev_get_bdevs"):
        if any(name in al for al in b.get("aliases", [])):
            return b
    raise RuntimeError(f"no lvol with alias */{name} on the target")


def _gone(drv, name):
    for b in rpc(drv, "bdev_get_bdevs"):
        if any(al.endswith("/" + name) for al in b.get("aliases", [])):
            raise RuntimeError(f"{name} still exists ({b['name']})")
    return f"{name} gone"


def _gib(b):
    return b["num_blocks"] * b["block_size"] / GIB


def _flat(d, pre=""):
    out = {}
    for k, v in (d or {}).items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{pre}{k}."))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{pre}{k}"] = v
    return out


def _human(k, d):
    if "bytes" in k and abs(d) >= MIB:
        return f"{d / MIB:.0f}MiB"
    return str(d)


if __name__ == "__main__":
    sys.exit(main())
