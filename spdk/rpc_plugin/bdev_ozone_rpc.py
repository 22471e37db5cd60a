#  SPDX-License-Identifier: BSD-3-Clause
#  Copyright (C) 2026 The bdev_ozone authors.
#  All rights reserved.
#
# rpc.py plugin for the ozone bdev module: bdev_ozone_create and bdev_ozone_delete.
# Owns: the command-line shape of the two RPCs and size parsing (K/M/G/T suffixes).
# Must never: add parameters the module does not know (the module rejects unknown keys).
#
# Use:  PYTHONPATH=/path/to/spdk/rpc_plugin rpc.py --plugin bdev_ozone_rpc bdev_ozone_create ...

import json

UNITS = {'': 1, 'K': 1 << 10, 'M': 1 << 20, 'G': 1 << 30, 'T': 1 << 40}


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


def bdev_ozone_create(client, name, uri, size=None, block_size=None, chunk_size=None,
                      uuid=None, timeout_ms=None, workers=None, retry_ms=None):
    """Open the ozone volume at uri (or create it when size is given and it does not exist)
    as bdev `name`. Returns {"name", "action": "created"|"opened", "uuid"}."""
    params = {'name': name, 'uri': uri}
    for key, val in (('size', size), ('block_size', block_size), ('chunk_size', chunk_size),
                     ('uuid', uuid), ('timeout_ms', timeout_ms), ('workers', workers),
                     ('retry_ms', retry_ms)):
        if val is not None:
            params[key] = val
    return client.call('bdev_ozone_create', params)


def bdev_ozone_delete(client, name, destroy_data=False):
    """Unregister ozone bdev `name` and close its volume; destroy_data also removes the
    volume's data from Ozone."""
    params = {'name': name}
    if destroy_data:
        params['destroy_data'] = True
    return client.call('bdev_ozone_delete', params)


def spdk_rpc_plugin_initialize(subparsers):
    def create(args):
        print(json.dumps(bdev_ozone_create(args.client, name=args.name, uri=args.uri,
                                           size=args.size, block_size=args.block_size,
                                           chunk_size=args.chunk_size, uuid=args.uuid,
                                           timeout_ms=args.timeout_ms, workers=args.workers,
                                           retry_ms=args.retry_ms),
                         indent=2))

    p = subparsers.add_parser('bdev_ozone_create',
                              help='Open (or create) an Ozone volume as a bdev')
    p.add_argument('name', help='bdev name')
    p.add_argument('uri', help='volume directory: ofs://<om>[:port]/<volume>/<bucket>/<path>')
    p.add_argument('-s', '--size', type=_bytes,
                   help='size in bytes (K/M/G/T suffix allowed); only needed to create')
    p.add_argument('-b', '--block-size', type=int, help='512 or 4096 (default 4096 on create)')
    p.add_argument('-c', '--chunk-size', type=_bytes,
                   help='chunk size, power of two, 64K..256M (default 4M on create)')
    p.add_argument('-u', '--uuid', help='UUID: given to a new volume, checked on an existing one')
    p.add_argument('--timeout-ms', type=int,
                   help='bound on reaching the Ozone Manager (default 30000)')
    p.add_argument('--workers', type=int, help='engine worker threads (default 8)')
    p.add_argument('--retry-ms', type=int,
                   help='how long an I/O retries a transient Ozone failure (default 30000; 1: never)')
    p.set_defaults(func=create)

    def delete(args):
        bdev_ozone_delete(args.client, name=args.name, destroy_data=args.destroy_data)

    p = subparsers.add_parser('bdev_ozone_delete', help='Close an ozone bdev')
    p.add_argument('name', help='bdev name')
    p.add_argument('--destroy-data', action='store_true',
                   help="also remove the volume's data from Ozone (irreversible)")
    p.set_defaults(func=delete)
