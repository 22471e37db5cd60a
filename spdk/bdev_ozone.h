/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone: the interface between the bdev module (bdev_ozone.c) and its RPCs
 * (bdev_ozone_rpc.c).
 * Owns: the create/delete entry points and their options.
 * Must never: expose engine (ozbd_*) types to the RPC layer, or promise a synchronous
 * answer: create and delete always report through their callback, on the app thread.
 */

#ifndef SPDK_BDEV_OZONE_H
#define SPDK_BDEV_OZONE_H

#include "spdk/stdinc.h"

/* Default time (ms) an open/destroy may wait for the Ozone Manager. Shorter than rpc.py's
 * default 60 s client timeout so the JSON-RPC caller sees our error, not its own. */
#define BDEV_OZONE_DEFAULT_TIMEOUT_MS 30000

struct bdev_ozone_create_opts {
	/* Name of the new bdev (required). */
	char *name;
	/* The volume's directory: ofs://om[:port]/volume/bucket/path or file:///dir (required). */
	char *uri;
	/* Size in bytes; needed only to create; 0 = "whatever the volume has". */
	uint64_t size;
	/* 512 or 4096; 0 = default (create) / whatever the volume has (open). */
	uint32_t block_size;
	/* Power of two, 64 KiB..256 MiB; 0 = default (create) / whatever the volume has (open). */
	uint64_t chunk_size;
	/* Optional UUID string: given to a new volume, checked against an existing one. */
	char *uuid;
	/* Bound on contacting the Ozone Manager, in ms (0 = BDEV_OZONE_DEFAULT_TIMEOUT_MS). */
	uint32_t timeout_ms;
	/* Engine worker threads (0 = the engine's default). */
	uint32_t workers;
	/* How long an I/O retries a transient Ozone failure, in ms (0 = engine default, 30 s;
	 * 1 = fail at the first error). */
	uint32_t retry_ms;
};

/*
 * Called once on the app thread. On success rc is 0, bdev_name the registered bdev,
 * created true when a new volume was made, uuid its UUID. Otherwise rc is a negative
 * errno and errmsg says why.
 */
typedef void (*bdev_ozone_create_cb)(void *cb_arg, int rc, const char *bdev_name, bool created,
				     const char *uuid, const char *errmsg);

/* Open the volume at opts->uri, or create it when it does not exist and opts->size is set.
 * Must be called on the app thread; opts is copied. */
void bdev_ozone_create(const struct bdev_ozone_create_opts *opts, bdev_ozone_create_cb cb,
		       void *cb_arg);

/* Called once on the app thread: rc is 0 or a negative errno with errmsg. */
typedef void (*bdev_ozone_delete_cb)(void *cb_arg, int rc, const char *errmsg);

/* Unregister an ozone bdev and close its volume; with destroy_data also remove the
 * volume's data from Ozone. Must be called on the app thread. */
void bdev_ozone_delete(const char *name, bool destroy_data, bdev_ozone_delete_cb cb,
		       void *cb_arg);

#endif /* SPDK_BDEV_OZONE_H */
