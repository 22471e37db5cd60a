#  SPDX-License-Identifier: BSD-3-Clause
#  Copyright (C) 2026 The bdev_ozone authors.
#  All rights reserved.
#
# rpc.py plugin for the ozone bdev module: bdev_ozone_create, bdev_ozone_delete and
# bdev_ozone_resize, and the project's original quick-start spellings ozone_bdev_create /
# ozone_bdev_delete (deprecated aliases of the same RPCs; the target logs a deprecation
# warning when they are used).
# Owns: the command-line shape of the RPCs and size parsing (K/M/G/T suffixes).
# Must never: add parameters the module does not know (the module rejects unknown keys), or
# supply defaults: what is not given is not sent, and the engine's defaults apply.
#
# Use:  PYTHONPATH=/path/to/spdk/rpc_plugin rpc.py --plugin bdev_ozone_rpc bdev_ozone_create ...

import json

UNITS = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}

# (parameter, command-line flag attribute) of bdev_ozone_create's optional parameters.
OPTIONAL = ('size', 'block_size', 'chunk_size', 'uuid', 'cpumask', 'timeout_ms', 'workers',
            'retry_ms', 'max_inflight_requests', 'max_inflight_bytes', 'journal', 'journal_mb',
            'cache_mb', 'force', 'readonly')


def _bytes(text):
    """A byte count, with an optional K/M/G/T (powers of 1024) suffix."""
    t = text.strip().upper()
    if t.endswith('IB'):
        t = t[:-2]
    elif t.endswith('B'):
        t = t[:-1]
    unit = t[-1] if t and t[-1] in UNITS else ''
    num = t[:-1] if unit else t
    try:
        return int(num) * UNITS[unit]
    except ValueError:
        raise ValueError(f"'{text}' is not a size (a number with an optional K/M/G/T suffix)")


def bdev_ozone_create(client, name, uri, method='bdev_ozone_create', uri_key='uri', **opts):
    """Open the ozone volume at uri (or create it when size is given and it does not exist)
    as bdev `name`. Returns {"name", "action": "created"|"opened", "uuid"}."""
    params = {'name': name, uri_key: uri}
    for key in OPTIONAL:
        if opts.get(key) is not None:
            params[key] = opts[key]
    return client.call(method, params)


def bdev_ozone_delete(client, name, destroy_data=False, method='bdev_ozone_delete'):
    """Unregister ozone bdev `name` and close its volume; destroy_data also removes the
    volume's data from Ozone."""
    params = {'name': name}
    if destroy_data:
        params['destroy_data'] = True
    return client.call(method, params)


def bdev_ozone_resize(client, name, new_size, force=False):
    """Grow ozone bdev `name` to new_size bytes while it serves I/O; with force, shrink it
    (only over space that holds no data, and only while nobody has the bdev open)."""
    params = {'name': name, 'new_size': new_size}
    if force:
        params['force'] = True
    return client.call('bdev_ozone_resize', params)


def _add_create_options(p):
    p.add_argument('-b', '--block-size', type=int, help='512 or 4096 (engine default on create)')
    p.add_argument('-c', '--chunk-size', type=_bytes,
                   help='chunk size, power of two, 64K..256M (engine default on create)')
    p.add_argument('-u', '--uuid', help='UUID: given to a new volume, checked on an existing one')
    p.add_argument('--cpumask',
                   help="CPUs for the engine's and the JVM's threads: hex mask (0x3) or list ([0,1])")
    p.add_argument('--timeout-ms', type=int, help='bound on reaching the Ozone Manager')
    p.add_argument('--workers', type=int, help='engine worker threads')
    p.add_argument('--retry-ms', type=int,
                   help='how long an I/O retries a transient Ozone failure (0: never)')
    p.add_argument('--max-inflight-requests', type=int,
                   help='requests in the engine before new ones are queued by SPDK')
    p.add_argument('--max-inflight-bytes', type=_bytes,
                   help='bytes in the engine before new requests are queued by SPDK')
    # No choices= here: the engine parses the mode and names the valid ones.
    p.add_argument('--journal',
                   help="write-ahead journal for small writes: ozone (engine default) or none")
    p.add_argument('--journal-mb', type=int,
                   help='journal space (and the dirty data it holds in memory), in MiB')
    p.add_argument('--cache-mb', type=int, help='read cache, in MiB (0: no cache)')
    # store_const None: a flag not given is not sent.
    p.add_argument('--force', action='store_const', const=True,
                   help='take over a volume whose writer lease expired (its holder is fenced)')
    p.add_argument('--readonly', action='store_const', const=True,
                   help='open without the writer lease; writes fail with EROFS')


def _create_opts(args):
    return {k: getattr(args, k) for k in OPTIONAL}


def spdk_rpc_plugin_initialize(subparsers):
    def create(args):
        print(json.dumps(bdev_ozone_create(args.client, name=args.name, uri=args.uri,
                                           **_create_opts(args)), indent=2))

    p = subparsers.add_parser('bdev_ozone_create',
                              help='Open (or create) an Ozone volume as a bdev')
    p.add_argument('name', help='bdev name')
    p.add_argument('uri', help='volume directory: ofs://<om>[:port]/<volume>/<bucket>[/<path>]')
    p.add_argument('-s', '--size', type=_bytes,
                   help='size in bytes (K/M/G/T suffix allowed); only needed to create')
    _add_create_options(p)
    p.set_defaults(func=create)

    def delete(args):
        bdev_ozone_delete(args.client, name=args.name, destroy_data=args.destroy_data)

    p = subparsers.add_parser('bdev_ozone_delete', help='Close an ozone bdev')
    p.add_argument('name', help='bdev name')
    p.add_argument('--destroy-data', action='store_true',
                   help="also remove the volume's data from Ozone (irreversible)")
    p.set_defaults(func=delete)

    def resize(args):
        print(json.dumps(bdev_ozone_resize(args.client, name=args.name, new_size=args.new_size,
                                           force=args.force), indent=2))

    p = subparsers.add_parser('bdev_ozone_resize',
                              help='Grow an ozone bdev (or shrink it with --force)')
    p.add_argument('name', help='bdev name')
    p.add_argument('new_size', type=_bytes,
                   help='new size in bytes (K/M/G/T suffix allowed), a multiple of the block size')
    p.add_argument('--force', action='store_true',
                   help='allow shrinking: only space that holds no data is cut, and only while '
                        'nobody has the bdev open')
    p.set_defaults(func=resize)

    # The original quick start: flags only, --size in bytes, the URI as --ozone-uri.
    def old_create(args):
        print(json.dumps(bdev_ozone_create(args.client, name=args.name, uri=args.ozone_uri,
                                           method='ozone_bdev_create', uri_key='ozone_uri',
                                           **_create_opts(args)), indent=2))

    p = subparsers.add_parser('ozone_bdev_create',
                              help='Deprecated spelling of bdev_ozone_create (flags only)')
    p.add_argument('--name', required=True, help='bdev name')
    p.add_argument('--ozone-uri', required=True,
                   help='ofs://<om>[:port]/<volume>/<bucket>[/<path>] (a bucket alone: its root)')
    p.add_argument('-s', '--size', type=_bytes, help='size in bytes; only needed to create')
    _add_create_options(p)
    p.set_defaults(func=old_create)

    def old_delete(args):
        bdev_ozone_delete(args.client, name=args.name, destroy_data=args.destroy_data,
                          method='ozone_bdev_delete')

    p = subparsers.add_parser('ozone_bdev_delete',
                              help='Deprecated spelling of bdev_ozone_delete')
    p.add_argument('--name', required=True, help='bdev name')
    p.add_argument('--destroy-data', action='store_true',
                   help="also remove the volume's data from Ozone (irreversible)")
    p.set_defaults(func=old_delete)
