/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone: the interface between the bdev module (bdev_ozone.c) and its RPCs
 * (bdev_ozone_rpc.c).
 * Owns: the create/delete/resize entry points, their options, and the check of those
 * options.
 * Must never: expose engine (ozbd_*) types to the RPC layer, hold a default of its own
 * (an option the user did not give is left to the engine's ozbd_params_init), or promise
 * a synchronous answer: create, delete and resize always report through their callback,
 * on the app thread.
 */

#ifndef SPDK_BDEV_OZONE_H
#define SPDK_BDEV_OZONE_H

#include "spdk/stdinc.h"

/* An option that is either given (set) or left to the engine's default. */
struct bdev_ozone_opt_u32 {
	bool		set;
	uint32_t	val;
};

struct bdev_ozone_opt_u64 {
	bool		set;
	uint64_t	val;
};

struct bdev_ozone_create_opts {
	/* Name of the new bdev (required). */
	char *name;
	/* The volume's directory: ofs://om[:port]/volume/bucket[/path] or file:///dir (required). */
	char *uri;
	/* Size in bytes; needed only to create; 0 = "whatever the volume has" (the engine's
	 * meaning of 0, see ozbd.h). */
	uint64_t size;
	/* 512 or 4096; 0 = the engine's create default / whatever the volume has. */
	uint32_t block_size;
	/* Power of two, 64 KiB..256 MiB; 0 = the engine's create default / the volume's. */
	uint64_t chunk_size;
	/* Optional UUID string: given to a new volume, checked against an existing one. */
	char *uuid;
	/* CPUs for the engine's and the JVM's threads ("0x3" or "[0,1]"); NULL = engine default. */
	char *cpumask;
	/* Write-ahead journal: "ozone" or "none" (the engine parses it); NULL = engine default. */
	char *journal;
	/* Each of these is passed to the engine only when set. */
	struct bdev_ozone_opt_u32 timeout_ms;
	struct bdev_ozone_opt_u32 workers;
	struct bdev_ozone_opt_u32 retry_ms;
	struct bdev_ozone_opt_u32 max_inflight_requests;
	struct bdev_ozone_opt_u64 max_inflight_bytes;
	struct bdev_ozone_opt_u64 journal_mb;
	struct bdev_ozone_opt_u64 cache_mb;
	/* Take over a volume whose writer lease expired (never saved in the config). */
	bool force;
	/* Open without the writer lease; writes fail with -EROFS. */
	bool readonly;
};

/*
 * Check the options the way the engine will (URI, geometry, ranges, CPU mask), without
 * contacting Ozone. Returns 0, or a negative errno with the engine's message in msg.
 * Never blocks.
 */
int bdev_ozone_check_opts(const struct bdev_ozone_create_opts *opts, char *msg, size_t msglen);

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

/* Called once on the app thread: rc is 0 (the bdev has its new size) or a negative errno
 * with errmsg. */
typedef void (*bdev_ozone_resize_cb)(void *cb_arg, int rc, const char *errmsg);

/* Grow ozone bdev `name` to new_size bytes while it serves I/O, or with force shrink it
 * (the engine cuts only space that holds no data; SPDK refuses to shrink a bdev someone has
 * open). The engine call runs on a helper pthread; the block count changes on the app
 * thread. Must be called on the app thread. */
void bdev_ozone_resize(const char *name, uint64_t new_size, bool force,
		       bdev_ozone_resize_cb cb, void *cb_arg);

#endif /* SPDK_BDEV_OZONE_H */
