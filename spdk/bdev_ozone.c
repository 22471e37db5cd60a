/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone: an SPDK bdev backed by a bdev_ozone engine volume (a chunk store in an
 * Apache Ozone FSO bucket), reached only through the engine's C ABI (ozbd.h).
 * Owns: the bdev module registration, the registry of open (and opening/closing) volumes,
 * the I/O path (submit to the engine, forward each completion to the submitting SPDK
 * thread), the blocking helper pthreads, dump_info_json and write_config_json.
 * Must never: make a JNI/JVM call (ozbd_open, ozbd_close, ozbd_destroy) on an SPDK
 * reactor thread; complete an spdk_bdev_io on any thread but the one that submitted it;
 * wait on Ozone on the app thread; block in write_config_json.
 */

#include "spdk/stdinc.h"

#include "bdev_ozone.h"
#include "spdk/bdev_module.h"
#include "spdk/env.h"
#include "spdk/json.h"
#include "spdk/log.h"
#include "spdk/string.h"
#include "spdk/thread.h"
#include "spdk/util.h"
#include "spdk/uuid.h"

#include "ozbd.h"

#define BDEV_OZONE_ERRLEN 512

enum bdev_ozone_state {
	BDEV_OZONE_OPENING,
	BDEV_OZONE_OPEN,
	BDEV_OZONE_CLOSING,
};

struct bdev_ozone {
	struct spdk_bdev		bdev;
	struct ozbd_volume		*vol;
	struct ozbd_info		info;
	enum bdev_ozone_state		state;

	/* Parameters as requested (kept for write_config_json). */
	char				*name;
	char				*uri;
	char				*uuid_param;
	uint64_t			size;
	uint32_t			block_size;
	uint64_t			chunk_size;
	uint32_t			timeout_ms;
	uint32_t			workers;
	uint32_t			retry_ms;

	/* Result of the last blocking job (open, close/destroy). */
	int				rc;
	int				created;
	char				errmsg[BDEV_OZONE_ERRLEN];

	bdev_ozone_create_cb		create_cb;
	void				*create_cb_arg;

	bool				destroy_data;
	struct bdev_ozone_delete_ctx	*delete_ctx;
	struct spdk_thread		*destruct_thread;

	TAILQ_ENTRY(bdev_ozone)		link;
};

struct bdev_ozone_delete_ctx {
	bdev_ozone_delete_cb	cb;
	void			*cb_arg;
	char			errmsg[BDEV_OZONE_ERRLEN];
};

/* Per-I/O context (spdk_bdev_io->driver_ctx). */
struct bdev_ozone_io {
	struct spdk_thread	*thread;
	int			status;
};

/* Per-thread channel: nothing to keep, the engine is thread-safe. */
struct bdev_ozone_ch {
	struct bdev_ozone	*disk;
};

/* Every volume this module holds, in any state; touched only on the app thread. */
static TAILQ_HEAD(, bdev_ozone) g_disks = TAILQ_HEAD_INITIALIZER(g_disks);
static bool g_fini_started;

static int bdev_ozone_init(void);
static void bdev_ozone_fini(void);
static int bdev_ozone_get_ctx_size(void);

static struct spdk_bdev_module ozone_if = {
	.name = "ozone",
	.module_init = bdev_ozone_init,
	.module_fini = bdev_ozone_fini,
	.get_ctx_size = bdev_ozone_get_ctx_size,
	.async_fini = true,
};

SPDK_BDEV_MODULE_REGISTER(ozone, &ozone_if)

SPDK_LOG_REGISTER_COMPONENT(bdev_ozone)

/*
 * When this module is loaded with LD_PRELOAD, drop it from LD_PRELOAD for child processes:
 * the JVM started by the engine runs helpers (jspawnhelper, `id`, ...) that must not load
 * SPDK. The dynamic loader has already read the variable for this process.
 */
__attribute__((constructor)) static void
bdev_ozone_scrub_ld_preload(void)
{
	const char *pre = getenv("LD_PRELOAD");
	char *copy, *tok, *save = NULL, *out;
	size_t n;

	if (pre == NULL || strstr(pre, "libspdk_bdev_ozone") == NULL) {
		return;
	}
	copy = strdup(pre);
	out = calloc(1, strlen(pre) + 1);
	if (copy == NULL || out == NULL) {
		free(copy);
		free(out);
		return;
	}
	for (tok = strtok_r(copy, ": ", &save); tok != NULL; tok = strtok_r(NULL, ": ", &save)) {
		if (strstr(tok, "libspdk_bdev_ozone") != NULL) {
			continue;
		}
		n = strlen(out);
		snprintf(out + n, strlen(pre) + 1 - n, "%s%s", n ? ":" : "", tok);
	}
	if (out[0] == '\0') {
		unsetenv("LD_PRELOAD");
	} else {
		setenv("LD_PRELOAD", out, 1);
	}
	free(copy);
	free(out);
}

/* ---------------------------------------------------------------------------------------- */
/* Helper pthreads: every blocking engine call (JVM, Ozone) runs on one of these. */

typedef void (*bdev_ozone_fn)(struct bdev_ozone *disk);

struct bdev_ozone_job {
	struct bdev_ozone	*disk;
	bdev_ozone_fn		work;	/* runs on the helper pthread */
	spdk_msg_fn		done;	/* then runs on `thread` with the disk */
	struct spdk_thread	*thread;
};

/* Send a message from a non-SPDK thread; retries while the message pool is empty. */
static void
bdev_ozone_send_msg(struct spdk_thread *thread, spdk_msg_fn fn, void *ctx)
{
	int rc;

	while ((rc = spdk_thread_send_msg(thread, fn, ctx)) != 0) {
		SPDK_WARNLOG("spdk_thread_send_msg: %s; retrying\n", spdk_strerror(-rc));
		usleep(100);
	}
}

static void *
bdev_ozone_job_main(void *arg)
{
	struct bdev_ozone_job *job = arg;

	job->work(job->disk);
	bdev_ozone_send_msg(job->thread, job->done, job->disk);
	free(job);
	return NULL;
}

/*
 * Start `work` on a detached pthread that may run on every CPU: threads inherit their
 * creator's affinity, and the engine's workers and the JVM's threads are created from
 * this one, so they must not inherit a reactor's single core.
 */
static int
bdev_ozone_run_job(struct bdev_ozone *disk, bdev_ozone_fn work, spdk_msg_fn done)
{
	struct bdev_ozone_job *job;
	pthread_attr_t attr;
	pthread_t tid;
	cpu_set_t cpus;
	long i, ncpu;
	int rc;

	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		return -ENOMEM;
	}
	job->disk = disk;
	job->work = work;
	job->done = done;
	job->thread = spdk_get_thread();

	CPU_ZERO(&cpus);
	ncpu = sysconf(_SC_NPROCESSORS_CONF);
	for (i = 0; i < ncpu && i < CPU_SETSIZE; i++) {
		CPU_SET(i, &cpus);
	}
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setaffinity_np(&attr, sizeof(cpus), &cpus);
	rc = pthread_create(&tid, &attr, bdev_ozone_job_main, job);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(job);
		return -rc;
	}
	pthread_setname_np(tid, "ozbd_spdk_job");
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Registry */

static void
bdev_ozone_free(struct bdev_ozone *disk)
{
	free(disk->name);
	free(disk->uri);
	free(disk->uuid_param);
	free(disk);
}

static struct bdev_ozone *
bdev_ozone_find_by_name(const char *name)
{
	struct bdev_ozone *disk;

	TAILQ_FOREACH(disk, &g_disks, link) {
		if (strcmp(disk->name, name) == 0) {
			return disk;
		}
	}
	return NULL;
}

static struct bdev_ozone *
bdev_ozone_find_by_uri(const char *uri)
{
	struct bdev_ozone *disk;

	TAILQ_FOREACH(disk, &g_disks, link) {
		if (strcmp(disk->uri, uri) == 0) {
			return disk;
		}
	}
	return NULL;
}

static void
bdev_ozone_remove(struct bdev_ozone *disk)
{
	TAILQ_REMOVE(&g_disks, disk, link);
	if (g_fini_started && TAILQ_EMPTY(&g_disks)) {
		spdk_bdev_module_fini_done();
	}
}

/* ---------------------------------------------------------------------------------------- */
/* I/O path */

static int
bdev_ozone_get_ctx_size(void)
{
	return sizeof(struct bdev_ozone_io);
}

/* On the submitting thread. */
static void
bdev_ozone_io_complete_msg(void *ctx)
{
	struct spdk_bdev_io *bdev_io = ctx;
	struct bdev_ozone_io *io = (struct bdev_ozone_io *)bdev_io->driver_ctx;

	if (io->status != 0) {
		SPDK_DEBUGLOG(bdev_ozone, "%s: I/O type %d failed: %s\n", bdev_io->bdev->name,
			      bdev_io->type, spdk_strerror(-io->status));
	}
	spdk_bdev_io_complete(bdev_io, io->status == 0 ? SPDK_BDEV_IO_STATUS_SUCCESS :
			      SPDK_BDEV_IO_STATUS_FAILED);
}

/* Engine callback: on an engine thread, or on the submitting thread for requests the
 * engine rejects or finishes at once. Always hand the completion to the submitting
 * thread through its message queue (this also wakes it in interrupt mode). */
static void
bdev_ozone_io_done(void *cb_arg, int status)
{
	struct spdk_bdev_io *bdev_io = cb_arg;
	struct bdev_ozone_io *io = (struct bdev_ozone_io *)bdev_io->driver_ctx;

	io->status = status;
	if (spdk_get_thread() == io->thread) {
		/* Synchronous completion inside ozbd_submit: defer, never block a reactor. */
		if (spdk_thread_send_msg(io->thread, bdev_ozone_io_complete_msg, bdev_io) != 0) {
			bdev_ozone_io_complete_msg(bdev_io);
		}
		return;
	}
	bdev_ozone_send_msg(io->thread, bdev_ozone_io_complete_msg, bdev_io);
}

static void
bdev_ozone_submit(struct bdev_ozone *disk, struct spdk_bdev_io *bdev_io, enum ozbd_op op,
		  const struct iovec *iov, int iovcnt)
{
	uint64_t bs = disk->bdev.blocklen;
	uint64_t offset = 0, len = 0;

	if (op != OZBD_OP_FLUSH) {
		offset = bdev_io->u.bdev.offset_blocks * bs;
		len = bdev_io->u.bdev.num_blocks * bs;
	}
	ozbd_submit(disk->vol, op, offset, len, iov, iovcnt, bdev_ozone_io_done, bdev_io);
}

static void
bdev_ozone_get_buf_cb(struct spdk_io_channel *ch, struct spdk_bdev_io *bdev_io, bool success)
{
	struct bdev_ozone *disk = bdev_io->bdev->ctxt;

	if (!success) {
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
		return;
	}
	bdev_ozone_submit(disk, bdev_io, OZBD_OP_READ, bdev_io->u.bdev.iovs,
			  bdev_io->u.bdev.iovcnt);
}

static void
bdev_ozone_submit_request(struct spdk_io_channel *ch, struct spdk_bdev_io *bdev_io)
{
	struct bdev_ozone *disk = bdev_io->bdev->ctxt;
	struct bdev_ozone_io *io = (struct bdev_ozone_io *)bdev_io->driver_ctx;

	io->thread = spdk_get_thread();
	io->status = 0;

	switch (bdev_io->type) {
	case SPDK_BDEV_IO_TYPE_READ:
		spdk_bdev_io_get_buf(bdev_io, bdev_ozone_get_buf_cb,
				     bdev_io->u.bdev.num_blocks * bdev_io->bdev->blocklen);
		break;
	case SPDK_BDEV_IO_TYPE_WRITE:
		bdev_ozone_submit(disk, bdev_io, OZBD_OP_WRITE, bdev_io->u.bdev.iovs,
				  bdev_io->u.bdev.iovcnt);
		break;
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
		bdev_ozone_submit(disk, bdev_io, OZBD_OP_WRITE_ZEROES, NULL, 0);
		break;
	case SPDK_BDEV_IO_TYPE_UNMAP:
		bdev_ozone_submit(disk, bdev_io, OZBD_OP_UNMAP, NULL, 0);
		break;
	case SPDK_BDEV_IO_TYPE_FLUSH:
	/* RESET: the engine's FLUSH completes once everything submitted before it has
	 * completed, which is exactly "wait for in-flight I/O". */
	case SPDK_BDEV_IO_TYPE_RESET:
		bdev_ozone_submit(disk, bdev_io, OZBD_OP_FLUSH, NULL, 0);
		break;
	default:
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_FAILED);
		break;
	}
}

static bool
bdev_ozone_io_type_supported(void *ctx, enum spdk_bdev_io_type io_type)
{
	switch (io_type) {
	case SPDK_BDEV_IO_TYPE_READ:
	case SPDK_BDEV_IO_TYPE_WRITE:
	case SPDK_BDEV_IO_TYPE_WRITE_ZEROES:
	case SPDK_BDEV_IO_TYPE_UNMAP:
	case SPDK_BDEV_IO_TYPE_FLUSH:
	case SPDK_BDEV_IO_TYPE_RESET:
		return true;
	default:
		return false;
	}
}

static int
bdev_ozone_ch_create(void *io_device, void *ctx_buf)
{
	struct bdev_ozone_ch *ch = ctx_buf;

	ch->disk = io_device;
	return 0;
}

static void
bdev_ozone_ch_destroy(void *io_device, void *ctx_buf)
{
}

static struct spdk_io_channel *
bdev_ozone_get_io_channel(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	return spdk_get_io_channel(disk);
}

/* ---------------------------------------------------------------------------------------- */
/* Info and config */

static int
bdev_ozone_dump_info_json(void *ctx, struct spdk_json_write_ctx *w)
{
	struct bdev_ozone *disk = ctx;
	struct ozbd_stats st = {};

	ozbd_get_stats(disk->vol, &st);

	spdk_json_write_named_object_begin(w, "ozone");
	spdk_json_write_named_string(w, "uri", disk->uri);
	spdk_json_write_named_string(w, "uuid", disk->info.uuid);
	spdk_json_write_named_uint64(w, "size", disk->info.size);
	spdk_json_write_named_uint32(w, "block_size", disk->info.block_size);
	spdk_json_write_named_uint64(w, "chunk_size", disk->info.chunk_size);
	spdk_json_write_named_uint64(w, "chunk_count", disk->info.chunk_count);
	/* What the bdev advertises (bdev_get_bdevs does not print it). */
	spdk_json_write_named_uint32(w, "optimal_io_boundary", disk->bdev.optimal_io_boundary);
	spdk_json_write_named_bool(w, "split_on_optimal_io_boundary",
				   disk->bdev.split_on_optimal_io_boundary);
	spdk_json_write_named_object_begin(w, "statistics");
	spdk_json_write_named_uint64(w, "reads", st.reads);
	spdk_json_write_named_uint64(w, "writes", st.writes);
	spdk_json_write_named_uint64(w, "write_zeroes", st.write_zeroes);
	spdk_json_write_named_uint64(w, "unmaps", st.unmaps);
	spdk_json_write_named_uint64(w, "flushes", st.flushes);
	spdk_json_write_named_uint64(w, "bytes_read", st.bytes_read);
	spdk_json_write_named_uint64(w, "bytes_written", st.bytes_written);
	spdk_json_write_named_uint64(w, "errors", st.errors);
	spdk_json_write_named_uint64(w, "chunk_reads", st.chunk_reads);
	spdk_json_write_named_uint64(w, "chunk_puts", st.chunk_puts);
	spdk_json_write_named_uint64(w, "chunk_deletes", st.chunk_deletes);
	spdk_json_write_named_uint64(w, "rmw", st.rmw);
	spdk_json_write_named_uint64(w, "merged", st.merged);
	spdk_json_write_named_uint64(w, "allocated_chunks", st.allocated_chunks);
	spdk_json_write_named_uint64(w, "inflight", st.inflight);
	spdk_json_write_named_uint64(w, "retries", st.retries);
	spdk_json_write_object_end(w);
	spdk_json_write_object_end(w);
	return 0;
}

/* Never blocks: everything comes from memory. `size` is left out on purpose, so that
 * loading the config can only reopen the volume, never silently create an empty one. */
static void
bdev_ozone_write_config_json(struct spdk_bdev *bdev, struct spdk_json_write_ctx *w)
{
	struct bdev_ozone *disk = bdev->ctxt;

	spdk_json_write_object_begin(w);
	spdk_json_write_named_string(w, "method", "bdev_ozone_create");
	spdk_json_write_named_object_begin(w, "params");
	spdk_json_write_named_string(w, "name", bdev->name);
	spdk_json_write_named_string(w, "uri", disk->uri);
	spdk_json_write_named_uint32(w, "block_size", disk->info.block_size);
	spdk_json_write_named_uint64(w, "chunk_size", disk->info.chunk_size);
	spdk_json_write_named_string(w, "uuid", disk->info.uuid);
	if (disk->timeout_ms != 0) {
		spdk_json_write_named_uint32(w, "timeout_ms", disk->timeout_ms);
	}
	if (disk->workers != 0) {
		spdk_json_write_named_uint32(w, "workers", disk->workers);
	}
	if (disk->retry_ms != 0) {
		spdk_json_write_named_uint32(w, "retry_ms", disk->retry_ms);
	}
	spdk_json_write_object_end(w);
	spdk_json_write_object_end(w);
}

/* ---------------------------------------------------------------------------------------- */
/* Close and destruct */

/* Helper pthread: close the volume, and destroy its data when asked. */
static void
bdev_ozone_close_work(struct bdev_ozone *disk)
{
	ozbd_close(disk->vol);
	disk->vol = NULL;
	disk->rc = 0;
	disk->errmsg[0] = '\0';
	if (disk->destroy_data) {
		disk->rc = ozbd_destroy(disk->uri, 0, disk->timeout_ms ? disk->timeout_ms :
					BDEV_OZONE_DEFAULT_TIMEOUT_MS, disk->errmsg,
					sizeof(disk->errmsg));
		if (disk->rc == 0) {
			SPDK_NOTICELOG("%s: destroyed the volume's data at %s\n", disk->name, disk->uri);
		} else {
			SPDK_ERRLOG("%s: closed, but destroying %s failed: %s\n", disk->name, disk->uri,
				    disk->errmsg);
		}
	}
}

/* Back on the thread that ran destruct. */
static void
bdev_ozone_destruct_closed(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	SPDK_NOTICELOG("%s: closed %s\n", disk->name, disk->uri);
	if (disk->delete_ctx != NULL) {
		snprintf(disk->delete_ctx->errmsg, sizeof(disk->delete_ctx->errmsg), "%s",
			 disk->errmsg);
	}
	spdk_bdev_destruct_done(&disk->bdev, disk->rc);
	bdev_ozone_remove(disk);
	bdev_ozone_free(disk);
}

static void
bdev_ozone_io_device_unregistered(void *io_device)
{
	struct bdev_ozone *disk = io_device;
	int rc;

	rc = bdev_ozone_run_job(disk, bdev_ozone_close_work, bdev_ozone_destruct_closed);
	if (rc != 0) {
		/* Cannot close without blocking this thread: leak the volume, say so. */
		SPDK_ERRLOG("%s: cannot start a thread to close %s (%s); the volume stays open\n",
			    disk->name, disk->uri, spdk_strerror(-rc));
		disk->rc = rc;
		snprintf(disk->errmsg, sizeof(disk->errmsg), "cannot start a close thread: %s",
			 spdk_strerror(-rc));
		bdev_ozone_destruct_closed(disk);
	}
}

static int
bdev_ozone_destruct(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	disk->state = BDEV_OZONE_CLOSING;
	disk->destruct_thread = spdk_get_thread();
	spdk_io_device_unregister(disk, bdev_ozone_io_device_unregistered);
	return 1; /* asynchronous: spdk_bdev_destruct_done() follows */
}

static const struct spdk_bdev_fn_table ozone_fn_table = {
	.destruct		= bdev_ozone_destruct,
	.submit_request		= bdev_ozone_submit_request,
	.io_type_supported	= bdev_ozone_io_type_supported,
	.get_io_channel		= bdev_ozone_get_io_channel,
	.dump_info_json		= bdev_ozone_dump_info_json,
	.write_config_json	= bdev_ozone_write_config_json,
};

/* ---------------------------------------------------------------------------------------- */
/* Create */

/* Helper pthread. */
static void
bdev_ozone_open_work(struct bdev_ozone *disk)
{
	struct ozbd_params p = {
		.size = disk->size,
		.block_size = disk->block_size,
		.chunk_size = disk->chunk_size,
		.uuid = disk->uuid_param,
		.mode = OZBD_OPEN_OR_CREATE,
		.workers = disk->workers,
		.timeout_ms = disk->timeout_ms ? disk->timeout_ms : BDEV_OZONE_DEFAULT_TIMEOUT_MS,
		.retry_ms = disk->retry_ms,
	};

	disk->errmsg[0] = '\0';
	disk->rc = ozbd_open(disk->uri, &p, &disk->vol, &disk->created, disk->errmsg,
			     sizeof(disk->errmsg));
	if (disk->rc == 0) {
		disk->rc = ozbd_get_info(disk->vol, &disk->info);
		if (disk->rc != 0) {
			snprintf(disk->errmsg, sizeof(disk->errmsg), "ozbd_get_info failed");
		}
	}
}

/* App thread: a volume opened but not registered is closed again. */
static void
bdev_ozone_abandon_closed(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	bdev_ozone_remove(disk);
	bdev_ozone_free(disk);
}

static void
bdev_ozone_abandon(struct bdev_ozone *disk)
{
	disk->destroy_data = false;
	if (disk->vol == NULL || bdev_ozone_run_job(disk, bdev_ozone_close_work,
			bdev_ozone_abandon_closed) != 0) {
		bdev_ozone_abandon_closed(disk);
	}
}

static void
bdev_ozone_create_fail(struct bdev_ozone *disk, int rc, const char *fmt, ...)
{
	char msg[BDEV_OZONE_ERRLEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	SPDK_ERRLOG("bdev_ozone_create %s (%s): %s\n", disk->name, disk->uri, msg);
	disk->create_cb(disk->create_cb_arg, rc, NULL, false, NULL, msg);
	bdev_ozone_abandon(disk);
}

/* App thread, after the helper pthread opened (or failed to open) the volume. */
static void
bdev_ozone_open_done(void *ctx)
{
	struct bdev_ozone *disk = ctx;
	struct bdev_ozone *other;
	int rc;

	if (disk->rc != 0) {
		disk->vol = NULL;
		bdev_ozone_create_fail(disk, disk->rc, "%s", disk->errmsg[0] ? disk->errmsg :
				       spdk_strerror(-disk->rc));
		return;
	}
	if (g_fini_started) {
		bdev_ozone_create_fail(disk, -ESHUTDOWN, "the application is shutting down");
		return;
	}
	/* Same volume under another spelling of its URI? */
	TAILQ_FOREACH(other, &g_disks, link) {
		if (other != disk && other->state != BDEV_OZONE_OPENING &&
		    strcmp(other->info.uuid, disk->info.uuid) == 0) {
			bdev_ozone_create_fail(disk, -EEXIST,
					       "volume %s (uuid %s) is already open as bdev '%s'",
					       disk->uri, disk->info.uuid, other->name);
			return;
		}
	}
	if (spdk_bdev_get_by_name(disk->name) != NULL) {
		bdev_ozone_create_fail(disk, -EEXIST, "a bdev named '%s' already exists", disk->name);
		return;
	}
	if (disk->info.block_size == 0 || disk->info.size % disk->info.block_size != 0) {
		bdev_ozone_create_fail(disk, -EINVAL, "volume geometry is unusable (size %" PRIu64
				       ", block size %" PRIu32 ")", disk->info.size, disk->info.block_size);
		return;
	}

	disk->bdev.name = strdup(disk->name);
	if (disk->bdev.name == NULL) {
		bdev_ozone_create_fail(disk, -ENOMEM, "out of memory");
		return;
	}
	disk->bdev.product_name = "Ozone volume";
	disk->bdev.module = &ozone_if;
	disk->bdev.fn_table = &ozone_fn_table;
	disk->bdev.ctxt = disk;
	disk->bdev.write_cache = 0;
	disk->bdev.blocklen = disk->info.block_size;
	disk->bdev.blockcnt = disk->info.size / disk->info.block_size;
	disk->bdev.optimal_io_boundary = disk->info.chunk_size / disk->info.block_size;
	/* The engine splits requests into chunk pieces itself and runs the pieces of different
	 * chunks in parallel: splitting here as well would only add bdev_io overhead. */
	disk->bdev.split_on_optimal_io_boundary = false;
	rc = spdk_uuid_parse(&disk->bdev.uuid, disk->info.uuid);
	if (rc != 0) {
		free(disk->bdev.name);
		disk->bdev.name = NULL;
		bdev_ozone_create_fail(disk, -EINVAL, "the volume's uuid '%s' does not parse",
				       disk->info.uuid);
		return;
	}

	spdk_io_device_register(disk, bdev_ozone_ch_create, bdev_ozone_ch_destroy,
				sizeof(struct bdev_ozone_ch), disk->name);
	disk->state = BDEV_OZONE_OPEN;
	rc = spdk_bdev_register(&disk->bdev);
	if (rc != 0) {
		disk->state = BDEV_OZONE_OPENING;
		spdk_io_device_unregister(disk, NULL);
		free(disk->bdev.name);
		disk->bdev.name = NULL;
		bdev_ozone_create_fail(disk, rc, "spdk_bdev_register failed: %s", spdk_strerror(-rc));
		return;
	}
	SPDK_NOTICELOG("%s: %s %s (uuid %s, %" PRIu64 " bytes, block %" PRIu32 ", chunk %" PRIu64
		       ")\n", disk->name, disk->created ? "created" : "opened", disk->uri,
		       disk->info.uuid, disk->info.size, disk->info.block_size, disk->info.chunk_size);
	disk->create_cb(disk->create_cb_arg, 0, disk->bdev.name, disk->created != 0,
			disk->info.uuid, NULL);
}

/* Normalize a volume URI for the registry: no trailing slashes. */
static char *
bdev_ozone_normalize_uri(const char *uri)
{
	char *u = strdup(uri);
	size_t n;

	if (u == NULL) {
		return NULL;
	}
	n = strlen(u);
	while (n > 1 && u[n - 1] == '/' && u[n - 2] != '/') {
		u[--n] = '\0';
	}
	return u;
}

void
bdev_ozone_create(const struct bdev_ozone_create_opts *opts, bdev_ozone_create_cb cb,
		  void *cb_arg)
{
	struct bdev_ozone *disk, *other;
	char msg[BDEV_OZONE_ERRLEN];
	int rc;

	assert(spdk_get_thread() == spdk_thread_get_app_thread());

	if (g_fini_started) {
		cb(cb_arg, -ESHUTDOWN, NULL, false, NULL, "the application is shutting down");
		return;
	}
	if (opts->name == NULL || opts->name[0] == '\0' || opts->uri == NULL ||
	    opts->uri[0] == '\0') {
		cb(cb_arg, -EINVAL, NULL, false, NULL, "name and uri are required");
		return;
	}
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL) {
		cb(cb_arg, -ENOMEM, NULL, false, NULL, "out of memory");
		return;
	}
	disk->name = strdup(opts->name);
	disk->uri = bdev_ozone_normalize_uri(opts->uri);
	disk->uuid_param = opts->uuid ? strdup(opts->uuid) : NULL;
	if (disk->name == NULL || disk->uri == NULL || (opts->uuid && disk->uuid_param == NULL)) {
		bdev_ozone_free(disk);
		cb(cb_arg, -ENOMEM, NULL, false, NULL, "out of memory");
		return;
	}
	disk->size = opts->size;
	disk->block_size = opts->block_size;
	disk->chunk_size = opts->chunk_size;
	disk->timeout_ms = opts->timeout_ms;
	disk->workers = opts->workers;
	disk->retry_ms = opts->retry_ms;
	disk->create_cb = cb;
	disk->create_cb_arg = cb_arg;
	disk->state = BDEV_OZONE_OPENING;

	other = bdev_ozone_find_by_uri(disk->uri);
	if (other != NULL) {
		snprintf(msg, sizeof(msg), "volume %s is already %s as bdev '%s'", disk->uri,
			 other->state == BDEV_OZONE_OPENING ? "being opened" :
			 other->state == BDEV_OZONE_OPEN ? "open" : "being closed", other->name);
		bdev_ozone_free(disk);
		cb(cb_arg, -EEXIST, NULL, false, NULL, msg);
		return;
	}
	if (bdev_ozone_find_by_name(disk->name) != NULL || spdk_bdev_get_by_name(disk->name)) {
		snprintf(msg, sizeof(msg), "a bdev named '%s' already exists", disk->name);
		bdev_ozone_free(disk);
		cb(cb_arg, -EEXIST, NULL, false, NULL, msg);
		return;
	}

	TAILQ_INSERT_TAIL(&g_disks, disk, link);
	rc = bdev_ozone_run_job(disk, bdev_ozone_open_work, bdev_ozone_open_done);
	if (rc != 0) {
		TAILQ_REMOVE(&g_disks, disk, link);
		snprintf(msg, sizeof(msg), "cannot start an open thread: %s", spdk_strerror(-rc));
		bdev_ozone_free(disk);
		cb(cb_arg, rc, NULL, false, NULL, msg);
		return;
	}
	SPDK_DEBUGLOG(bdev_ozone, "%s: opening %s\n", disk->name, disk->uri);
}

/* ---------------------------------------------------------------------------------------- */
/* Delete */

static void
bdev_ozone_unregister_done(void *cb_arg, int bdeverrno)
{
	struct bdev_ozone_delete_ctx *ctx = cb_arg;

	if (bdeverrno != 0 && ctx->errmsg[0] == '\0') {
		snprintf(ctx->errmsg, sizeof(ctx->errmsg), "%s", spdk_strerror(-bdeverrno));
	}
	ctx->cb(ctx->cb_arg, bdeverrno, bdeverrno ? ctx->errmsg : NULL);
	free(ctx);
}

void
bdev_ozone_delete(const char *name, bool destroy_data, bdev_ozone_delete_cb cb, void *cb_arg)
{
	struct bdev_ozone_delete_ctx *ctx;
	struct bdev_ozone *disk;
	char msg[BDEV_OZONE_ERRLEN];
	int rc;

	disk = bdev_ozone_find_by_name(name);
	if (disk == NULL) {
		snprintf(msg, sizeof(msg), "%s '%s'", spdk_bdev_get_by_name(name) ?
			 "not an ozone bdev:" : "no such ozone bdev:", name);
		cb(cb_arg, -ENODEV, msg);
		return;
	}
	if (disk->state != BDEV_OZONE_OPEN) {
		snprintf(msg, sizeof(msg), "ozone bdev '%s' is still being %s", name,
			 disk->state == BDEV_OZONE_OPENING ? "opened" : "closed");
		cb(cb_arg, -EBUSY, msg);
		return;
	}
	ctx = calloc(1, sizeof(*ctx));
	if (ctx == NULL) {
		cb(cb_arg, -ENOMEM, "out of memory");
		return;
	}
	ctx->cb = cb;
	ctx->cb_arg = cb_arg;
	disk->destroy_data = destroy_data;
	disk->delete_ctx = ctx;
	rc = spdk_bdev_unregister_by_name(name, &ozone_if, bdev_ozone_unregister_done, ctx);
	if (rc != 0) {
		disk->destroy_data = false;
		disk->delete_ctx = NULL;
		free(ctx);
		snprintf(msg, sizeof(msg), "cannot unregister '%s': %s", name, spdk_strerror(-rc));
		cb(cb_arg, rc, msg);
	}
}

/* ---------------------------------------------------------------------------------------- */
/* Module */

static int
bdev_ozone_init(void)
{
	return 0;
}

/* Registered bdevs have all been destructed by now; wait only for opens (and their
 * abandon/close) still in flight. */
static void
bdev_ozone_fini(void)
{
	g_fini_started = true;
	if (TAILQ_EMPTY(&g_disks)) {
		spdk_bdev_module_fini_done();
	} else {
		SPDK_NOTICELOG("waiting for %s to finish opening or closing\n",
			       TAILQ_FIRST(&g_disks)->uri);
	}
}
