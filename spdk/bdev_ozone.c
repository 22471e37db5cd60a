/*   SPDX-License-Identifier: BSD-3-Clause
 *   Copyright (C) 2026 The bdev_ozone authors.
 *   All rights reserved.
 */

/*
 * bdev_ozone: an SPDK bdev backed by a bdev_ozone engine volume (a chunk store in an
 * Apache Ozone FSO bucket), reached only through the engine's C ABI (ozbd.h, v2).
 * Owns: the bdev module registration, the registry of open (and opening/closing) volumes,
 * the I/O path (submit to the engine; each completion goes onto its channel's lock-free
 * completion list, which the channel's SPDK thread drains), the blocking helper pthreads
 * (close, destroy, resize), resizing (the engine on a helper pthread, the block count on
 * the app thread), the translation of the create options into ozbd_params, and
 * dump_info_json / write_config_json.
 * Must never: make a blocking engine call (ozbd_open, ozbd_close, ozbd_destroy, ozbd_resize)
 * on an SPDK reactor thread; close a volume while a resize still uses it; let the engine
 * cut blocks the bdev layer still offers; complete an spdk_bdev_io on any thread but the
 * one that submitted it;
 * keep an engine default or a list of engine statistics of its own (ozbd_params_init and
 * ozbd_stats_json own those); validate what ozbd_check_params validates; wait on Ozone on
 * the app thread; block in write_config_json; change the process's environment.
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

/*
 * Largest UNMAP / WRITE_ZEROES handed to the engine at once. The engine turns a request
 * into one piece per chunk, allocated in ozbd_submit on the submitting reactor, so an
 * unbounded request (one UNMAP of a whole 10 TiB volume is 2.6 million 4 MiB chunks) would
 * allocate millions of pieces on a reactor and hold them until the last chunk is done.
 * With these bounds the bdev layer splits such a request into children of at most
 * 256 chunks and at most 1 GiB (the two agree for the default 4 MiB chunk), and runs at
 * most SPDK_BDEV_MAX_CHILDREN_UNMAP_WRITE_ZEROES_REQS (8) of them at a time: a few
 * thousand pieces in flight, whatever the volume's size. 1 GiB keeps one child's work
 * (at most 256 chunk deletes or rewrites) short for large chunks; 256 chunks keeps the
 * pieces few for small ones.
 */
#define BDEV_OZONE_MAX_DISCARD_CHUNKS	256
#define BDEV_OZONE_MAX_DISCARD_BYTES	(1ULL << 30)

/* How long a non-SPDK thread retries spdk_thread_send_msg before giving up (ms). */
#define BDEV_OZONE_SEND_RETRY_MS	1000

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

	/* The options as requested (owned copies; kept for write_config_json). The URI has
	 * its trailing slashes removed. */
	struct bdev_ozone_create_opts	opts;

	/* Result of the last asynchronous step (open, close/destroy). */
	int				rc;
	int				created;
	char				errmsg[BDEV_OZONE_ERRLEN];

	bdev_ozone_create_cb		create_cb;
	void				*create_cb_arg;

	bool				destroy_data;
	struct bdev_ozone_delete_ctx	*delete_ctx;
	struct spdk_thread		*destruct_thread;

	/* The resize in flight (its helper pthread uses vol), and a close that waits for its
	 * end. Touched only on the app thread, like the registry. */
	struct bdev_ozone_resize_ctx	*resize;
	bool				close_pending;

	TAILQ_ENTRY(bdev_ozone)		link;
};

struct bdev_ozone_resize_ctx {
	uint64_t		old_size;
	uint64_t		new_size;
	bool			force;
	/* A shrink the bdev layer was told of before the engine (it refuses to shrink an
	 * open bdev): undone when the engine refuses. */
	bool			notified;
	int			rc;
	char			errmsg[BDEV_OZONE_ERRLEN];
	bdev_ozone_resize_cb	cb;
	void			*cb_arg;
};

struct bdev_ozone_delete_ctx {
	bdev_ozone_delete_cb	cb;
	void			*cb_arg;
	char			errmsg[BDEV_OZONE_ERRLEN];
};

struct bdev_ozone_ch;

/* Per-I/O context (spdk_bdev_io->driver_ctx). */
struct bdev_ozone_io {
	struct bdev_ozone_io	*next;	/* on the channel's completion list */
	struct bdev_ozone_ch	*ch;
	int			status;
};

/*
 * Per-thread channel. `done` is a lock-free list (a Treiber stack: engine threads push,
 * the channel's thread takes the whole list at once) of I/Os the engine has completed.
 * Whoever pushes onto an empty list sends the channel's thread one message to drain it,
 * so at most two drain messages per channel exist at any time (one running, one queued),
 * however many I/Os complete: the I/O path cannot exhaust SPDK's message pool, and never
 * retries or spins.
 */
struct bdev_ozone_ch {
	struct bdev_ozone	*disk;
	struct spdk_thread	*thread;
	struct bdev_ozone_io	*done;
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

/* ---------------------------------------------------------------------------------------- */
/* Messages from engine threads and helper pthreads */

/*
 * Send `fn(ctx)` to an SPDK thread from any thread. spdk_thread_send_msg is allowed from a
 * non-SPDK thread and fails only when SPDK's message pool is empty (SPDK v26.05 even
 * aborts by itself then). A non-SPDK thread retries for at most BDEV_OZONE_SEND_RETRY_MS;
 * an SPDK thread never waits. If the message still cannot be sent, an I/O or a
 * create/delete would never complete: say why and abort rather than hang.
 */
static void
bdev_ozone_send_msg(struct spdk_thread *thread, spdk_msg_fn fn, void *ctx, const char *what)
{
	int rc, waited;

	for (waited = 0;; waited++) {
		rc = spdk_thread_send_msg(thread, fn, ctx);
		if (spdk_likely(rc == 0)) {
			return;
		}
		if (waited >= BDEV_OZONE_SEND_RETRY_MS || spdk_get_thread() != NULL) {
			break;
		}
		usleep(1000);
	}
	SPDK_ERRLOG("cannot send %s to SPDK thread %s: %s (after %d ms); aborting, since it "
		    "could never complete. Raise the app's --msg-mempool-size.\n", what,
		    spdk_thread_get_name(thread), spdk_strerror(-rc), waited);
	abort();
}

/* ---------------------------------------------------------------------------------------- */
/* Helper pthreads: the blocking engine calls ozbd_close, ozbd_destroy and ozbd_resize run on
 * these. */

typedef void (*bdev_ozone_fn)(struct bdev_ozone *disk);

struct bdev_ozone_job {
	struct bdev_ozone	*disk;
	bdev_ozone_fn		work;	/* runs on the helper pthread */
	spdk_msg_fn		done;	/* then runs on `thread` with the disk */
	struct spdk_thread	*thread;
};

static void *
bdev_ozone_job_main(void *arg)
{
	struct bdev_ozone_job *job = arg;

	job->work(job->disk);
	bdev_ozone_send_msg(job->thread, job->done, job->disk, "a close/destroy result");
	free(job);
	return NULL;
}

/*
 * Start `work` on a detached pthread, then run `done` on the calling SPDK thread. The
 * pthread inherits the caller's CPU affinity: it only waits (for in-flight I/O, for
 * Ozone); the engine places the threads it starts itself (params.cpumask).
 */
static int
bdev_ozone_run_job(struct bdev_ozone *disk, bdev_ozone_fn work, spdk_msg_fn done)
{
	struct bdev_ozone_job *job;
	pthread_t tid;
	int rc;

	job = calloc(1, sizeof(*job));
	if (job == NULL) {
		return -ENOMEM;
	}
	job->disk = disk;
	job->work = work;
	job->done = done;
	job->thread = spdk_get_thread();

	rc = pthread_create(&tid, NULL, bdev_ozone_job_main, job);
	if (rc != 0) {
		free(job);
		return -rc;
	}
	pthread_detach(tid);
	pthread_setname_np(tid, "ozbd_spdk_job");
	return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* Options */

static void
bdev_ozone_opts_free(struct bdev_ozone_create_opts *o)
{
	free(o->name);
	free(o->uri);
	free(o->uuid);
	free(o->cpumask);
	free(o->journal);
	memset(o, 0, sizeof(*o));
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

static int
bdev_ozone_opts_copy(struct bdev_ozone_create_opts *dst, const struct bdev_ozone_create_opts *src)
{
	*dst = *src;
	dst->name = strdup(src->name);
	dst->uri = bdev_ozone_normalize_uri(src->uri);
	dst->uuid = src->uuid ? strdup(src->uuid) : NULL;
	dst->cpumask = src->cpumask ? strdup(src->cpumask) : NULL;
	dst->journal = src->journal ? strdup(src->journal) : NULL;
	if (dst->name == NULL || dst->uri == NULL || (src->uuid && dst->uuid == NULL) ||
	    (src->cpumask && dst->cpumask == NULL) || (src->journal && dst->journal == NULL)) {
		bdev_ozone_opts_free(dst);
		return -ENOMEM;
	}
	return 0;
}

/* The engine's defaults (ozbd_params_init), overridden by what the user gave. Pointers in
 * `p` point into `o`. */
static void
bdev_ozone_opts_to_params(const struct bdev_ozone_create_opts *o, struct ozbd_params *p)
{
	ozbd_params_init(p, sizeof(*p));
	p->mode = OZBD_OPEN_OR_CREATE;
	p->size = o->size;
	p->block_size = o->block_size;
	p->chunk_size = o->chunk_size;
	p->uuid = o->uuid;
	p->cpumask = o->cpumask;
	if (o->timeout_ms.set) {
		p->timeout_ms = o->timeout_ms.val;
	}
	if (o->workers.set) {
		p->workers = o->workers.val;
	}
	if (o->retry_ms.set) {
		p->retry_ms = o->retry_ms.val;
	}
	if (o->max_inflight_requests.set) {
		p->max_inflight_requests = o->max_inflight_requests.val;
	}
	if (o->max_inflight_bytes.set) {
		p->max_inflight_bytes = o->max_inflight_bytes.val;
	}
	if (o->journal != NULL) {
		p->journal = o->journal;
	}
	if (o->journal_mb.set) {
		p->journal_mb = o->journal_mb.val;
	}
	if (o->cache_mb.set) {
		p->cache_mb = o->cache_mb.val;
	}
	/* Written into the lease: what a second opener's error and `ozbd info` name. */
	p->holder_frontend = "spdk";
	p->holder_name = o->name;
	p->force = o->force;
	p->readonly = o->readonly;
}

int
bdev_ozone_check_opts(const struct bdev_ozone_create_opts *opts, char *msg, size_t msglen)
{
	struct ozbd_params p;

	if (opts->name == NULL || opts->name[0] == '\0') {
		snprintf(msg, msglen, "the bdev name must not be empty");
		return -EINVAL;
	}
	if (opts->uri == NULL) {
		snprintf(msg, msglen, "no volume URI given");
		return -EINVAL;
	}
	bdev_ozone_opts_to_params(opts, &p);
	return ozbd_check_params(opts->uri, &p, msg, msglen);
}

/* ---------------------------------------------------------------------------------------- */
/* Registry */

static void
bdev_ozone_free(struct bdev_ozone *disk)
{
	bdev_ozone_opts_free(&disk->opts);
	free(disk);
}

static struct bdev_ozone *
bdev_ozone_find_by_name(const char *name)
{
	struct bdev_ozone *disk;

	TAILQ_FOREACH(disk, &g_disks, link) {
		if (strcmp(disk->opts.name, name) == 0) {
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
		if (strcmp(disk->opts.uri, uri) == 0) {
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

/* On the submitting thread: the engine's status, with its errno. */
static void
bdev_ozone_io_complete(struct bdev_ozone_io *io)
{
	struct spdk_bdev_io *bdev_io = spdk_bdev_io_from_ctx(io);

	if (spdk_likely(io->status == 0)) {
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_SUCCESS);
		return;
	}
	SPDK_DEBUGLOG(bdev_ozone, "%s: I/O type %d at block %" PRIu64 " failed: %s\n",
		      bdev_io->bdev->name, bdev_io->type, bdev_io->u.bdev.offset_blocks,
		      spdk_strerror(-io->status));
	spdk_bdev_io_complete_aio_status(bdev_io, io->status);
}

/* On the channel's thread: complete everything on the completion list, oldest first. */
static void
bdev_ozone_ch_drain(void *ctx)
{
	struct bdev_ozone_ch *ch = ctx;
	struct bdev_ozone_io *list, *fifo = NULL, *io;

	list = __atomic_exchange_n(&ch->done, NULL, __ATOMIC_ACQUIRE);
	while (list != NULL) {
		io = list;
		list = io->next;
		io->next = fifo;
		fifo = io;
	}
	/* `ch` is not touched below: completing the last I/O may let the channel go. */
	while (fifo != NULL) {
		io = fifo;
		fifo = io->next;
		bdev_ozone_io_complete(io);
	}
}

/* Engine callback: on an engine thread, or on the submitting thread inside ozbd_submit
 * (a request with nothing to do). Either way the completion is deferred to the channel's
 * thread through its completion list; never completed inside submit_request. */
static void
bdev_ozone_io_done(void *cb_arg, int status)
{
	struct bdev_ozone_io *io = cb_arg;
	struct bdev_ozone_ch *ch = io->ch;
	struct bdev_ozone_io *head;

	io->status = status;
	head = __atomic_load_n(&ch->done, __ATOMIC_RELAXED);
	do {
		io->next = head;
	} while (!__atomic_compare_exchange_n(&ch->done, &head, io, true, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	if (head == NULL) {
		bdev_ozone_send_msg(ch->thread, bdev_ozone_ch_drain, ch, "I/O completions");
	}
}

static void
bdev_ozone_submit(struct bdev_ozone *disk, struct spdk_bdev_io *bdev_io, int op,
		  const struct iovec *iov, int iovcnt)
{
	struct bdev_ozone_io *io = (struct bdev_ozone_io *)bdev_io->driver_ctx;
	uint64_t bs = disk->bdev.blocklen;
	uint64_t offset = 0, len = 0;
	int rc;

	if (op != OZBD_OP_FLUSH) {
		offset = bdev_io->u.bdev.offset_blocks * bs;
		len = bdev_io->u.bdev.num_blocks * bs;
	}
	rc = ozbd_submit(disk->vol, op, offset, len, iov, iovcnt, bdev_ozone_io_done, io);
	if (spdk_likely(rc == 0)) {
		return;
	}
	/* Not accepted, and the callback will never run. */
	if (rc == -EAGAIN) {
		/* The engine's in-flight bound: the bdev layer queues the I/O and retries it
		 * when another I/O completes (or from its own poller when none is left). */
		spdk_bdev_io_complete(bdev_io, SPDK_BDEV_IO_STATUS_NOMEM);
		return;
	}
	SPDK_ERRLOG("%s: the engine refused I/O type %d at block %" PRIu64 " (%" PRIu64
		    " blocks): %s\n", disk->bdev.name, bdev_io->type, bdev_io->u.bdev.offset_blocks,
		    bdev_io->u.bdev.num_blocks, spdk_strerror(-rc));
	spdk_bdev_io_complete_aio_status(bdev_io, rc);
}

static void
bdev_ozone_get_buf_cb(struct spdk_io_channel *ch, struct spdk_bdev_io *bdev_io, bool success)
{
	struct bdev_ozone *disk = bdev_io->bdev->ctxt;

	if (!success) {
		spdk_bdev_io_complete_aio_status(bdev_io, -ENOMEM);
		return;
	}
	bdev_ozone_submit(disk, bdev_io, OZBD_OP_READ, bdev_io->u.bdev.iovs,
			  bdev_io->u.bdev.iovcnt);
}

static void
bdev_ozone_submit_request(struct spdk_io_channel *_ch, struct spdk_bdev_io *bdev_io)
{
	struct bdev_ozone *disk = bdev_io->bdev->ctxt;
	struct bdev_ozone_io *io = (struct bdev_ozone_io *)bdev_io->driver_ctx;

	io->ch = spdk_io_channel_get_ctx(_ch);
	io->next = NULL;
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
		spdk_bdev_io_complete_aio_status(bdev_io, -ENOTSUP);
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
	ch->thread = spdk_get_thread();
	ch->done = NULL;
	return 0;
}

static void
bdev_ozone_ch_destroy(void *io_device, void *ctx_buf)
{
	struct bdev_ozone_ch *ch = ctx_buf;

	/* The bdev layer releases a channel only when no I/O submitted on it is left. */
	assert(__atomic_load_n(&ch->done, __ATOMIC_ACQUIRE) == NULL);
	(void)ch;
}

static struct spdk_io_channel *
bdev_ozone_get_io_channel(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	return spdk_get_io_channel(disk);
}

/* ---------------------------------------------------------------------------------------- */
/* Info and config */

typedef int (*bdev_ozone_json_fn)(const struct ozbd_volume *vol, char *buf, size_t len);

/* Write the engine's JSON object (statistics or settings) as the value of `name`, as it
 * comes: the module keeps no list of the engine's counters. */
static void
bdev_ozone_write_engine_json(struct spdk_json_write_ctx *w, const char *name,
			     bdev_ozone_json_fn fn, const struct ozbd_volume *vol)
{
	char stackbuf[4096], *buf = stackbuf;
	int n;

	n = fn(vol, buf, sizeof(stackbuf));
	if (n >= (int)sizeof(stackbuf)) {
		buf = malloc((size_t)n + 1);
		n = buf ? fn(vol, buf, (size_t)n + 1) : -ENOMEM;
	}
	if (n < 0) {
		spdk_json_write_named_string(w, name, spdk_strerror(-n));
	} else {
		spdk_json_write_name(w, name);
		spdk_json_write_val_raw(w, buf, (size_t)n);
	}
	if (buf != stackbuf) {
		free(buf);
	}
}

static int
bdev_ozone_dump_info_json(void *ctx, struct spdk_json_write_ctx *w)
{
	struct bdev_ozone *disk = ctx;

	spdk_json_write_named_object_begin(w, "ozone");
	spdk_json_write_named_string(w, "uri", disk->opts.uri);
	spdk_json_write_named_string(w, "uuid", disk->info.uuid);
	spdk_json_write_named_uint64(w, "size", disk->info.size);
	spdk_json_write_named_uint32(w, "block_size", disk->info.block_size);
	spdk_json_write_named_uint64(w, "chunk_size", disk->info.chunk_size);
	spdk_json_write_named_uint64(w, "chunk_count", disk->info.chunk_count);
	if (disk->opts.cpumask != NULL) {
		spdk_json_write_named_string(w, "cpumask", disk->opts.cpumask);
	}
	/* What the bdev advertises (bdev_get_bdevs does not print these). */
	spdk_json_write_named_uint32(w, "optimal_io_boundary", disk->bdev.optimal_io_boundary);
	spdk_json_write_named_bool(w, "split_on_optimal_io_boundary",
				   disk->bdev.split_on_optimal_io_boundary);
	spdk_json_write_named_uint32(w, "max_unmap", disk->bdev.max_unmap);
	spdk_json_write_named_uint32(w, "max_unmap_segments", disk->bdev.max_unmap_segments);
	spdk_json_write_named_uint32(w, "max_write_zeroes", disk->bdev.max_write_zeroes);
	bdev_ozone_write_engine_json(w, "statistics", ozbd_stats_json, disk->vol);
	bdev_ozone_write_engine_json(w, "settings", ozbd_settings_json, disk->vol);
	spdk_json_write_object_end(w);
	return 0;
}

/* Never blocks: everything comes from memory. `size` is left out on purpose, so that
 * loading the config can only reopen the volume, never silently create an empty one.
 * Options are saved only when the user gave them: the rest stay the engine's defaults. */
static void
bdev_ozone_write_config_json(struct spdk_bdev *bdev, struct spdk_json_write_ctx *w)
{
	struct bdev_ozone *disk = bdev->ctxt;
	const struct bdev_ozone_create_opts *o = &disk->opts;

	spdk_json_write_object_begin(w);
	spdk_json_write_named_string(w, "method", "bdev_ozone_create");
	spdk_json_write_named_object_begin(w, "params");
	spdk_json_write_named_string(w, "name", bdev->name);
	spdk_json_write_named_string(w, "uri", o->uri);
	spdk_json_write_named_uint32(w, "block_size", disk->info.block_size);
	spdk_json_write_named_uint64(w, "chunk_size", disk->info.chunk_size);
	spdk_json_write_named_string(w, "uuid", disk->info.uuid);
	if (o->cpumask != NULL) {
		spdk_json_write_named_string(w, "cpumask", o->cpumask);
	}
	if (o->timeout_ms.set) {
		spdk_json_write_named_uint32(w, "timeout_ms", o->timeout_ms.val);
	}
	if (o->workers.set) {
		spdk_json_write_named_uint32(w, "workers", o->workers.val);
	}
	if (o->retry_ms.set) {
		spdk_json_write_named_uint32(w, "retry_ms", o->retry_ms.val);
	}
	if (o->max_inflight_requests.set) {
		spdk_json_write_named_uint32(w, "max_inflight_requests", o->max_inflight_requests.val);
	}
	if (o->max_inflight_bytes.set) {
		spdk_json_write_named_uint64(w, "max_inflight_bytes", o->max_inflight_bytes.val);
	}
	if (o->journal != NULL) {
		spdk_json_write_named_string(w, "journal", o->journal);
	}
	if (o->journal_mb.set) {
		spdk_json_write_named_uint64(w, "journal_mb", o->journal_mb.val);
	}
	if (o->cache_mb.set) {
		spdk_json_write_named_uint64(w, "cache_mb", o->cache_mb.val);
	}
	if (o->readonly) {
		spdk_json_write_named_bool(w, "readonly", true);
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
		/* 0 = the engine's connect timeout, unless the user gave one. */
		disk->rc = ozbd_destroy(disk->opts.uri, 0, disk->opts.timeout_ms.set ?
					disk->opts.timeout_ms.val : 0, disk->errmsg,
					sizeof(disk->errmsg));
		if (disk->rc == 0) {
			SPDK_NOTICELOG("%s: destroyed the volume's data at %s\n", disk->opts.name,
				       disk->opts.uri);
		} else {
			SPDK_ERRLOG("%s: closed, but destroying %s failed: %s\n", disk->opts.name,
				    disk->opts.uri, disk->errmsg);
		}
	}
}

/* Back on the thread that ran destruct. */
static void
bdev_ozone_destruct_closed(void *ctx)
{
	struct bdev_ozone *disk = ctx;

	SPDK_NOTICELOG("%s: closed %s\n", disk->opts.name, disk->opts.uri);
	if (disk->delete_ctx != NULL) {
		snprintf(disk->delete_ctx->errmsg, sizeof(disk->delete_ctx->errmsg), "%s",
			 disk->errmsg);
	}
	spdk_bdev_destruct_done(&disk->bdev, disk->rc);
	free(disk->bdev.name);
	disk->bdev.name = NULL;
	bdev_ozone_remove(disk);
	bdev_ozone_free(disk);
}

static void
bdev_ozone_start_close(void *ctx)
{
	struct bdev_ozone *disk = ctx;
	int rc;

	rc = bdev_ozone_run_job(disk, bdev_ozone_close_work, bdev_ozone_destruct_closed);
	if (rc != 0) {
		/* Cannot close without blocking this thread: leak the volume, say so. */
		SPDK_ERRLOG("%s: cannot start a thread to close %s (%s); the volume stays open\n",
			    disk->opts.name, disk->opts.uri, spdk_strerror(-rc));
		disk->rc = rc;
		snprintf(disk->errmsg, sizeof(disk->errmsg), "cannot start a close thread: %s",
			 spdk_strerror(-rc));
		bdev_ozone_destruct_closed(disk);
	}
}

static void
bdev_ozone_io_device_unregistered(void *io_device)
{
	struct bdev_ozone *disk = io_device;

	if (disk->resize != NULL) {
		/* A resize still uses the volume on its helper pthread: its end closes it. */
		disk->close_pending = true;
		return;
	}
	bdev_ozone_start_close(disk);
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
	SPDK_ERRLOG("bdev_ozone_create %s (%s): %s\n", disk->opts.name, disk->opts.uri, msg);
	disk->create_cb(disk->create_cb_arg, rc, NULL, false, NULL, msg);
	bdev_ozone_abandon(disk);
}

/* The largest UNMAP / WRITE_ZEROES in blocks: see BDEV_OZONE_MAX_DISCARD_*. */
static uint32_t
bdev_ozone_max_discard_blocks(const struct ozbd_info *info)
{
	uint64_t bytes = spdk_min(BDEV_OZONE_MAX_DISCARD_BYTES,
				  BDEV_OZONE_MAX_DISCARD_CHUNKS * info->chunk_size);
	uint64_t blocks = spdk_max(bytes / info->block_size, 1);

	return (uint32_t)spdk_min(blocks, UINT32_MAX);
}

/* App thread, after the engine opened (or failed to open) the volume. */
static void
bdev_ozone_open_done(void *ctx)
{
	struct bdev_ozone *disk = ctx;
	struct bdev_ozone *other;
	int rc;

	if (disk->rc != 0) {
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
					       disk->opts.uri, disk->info.uuid, other->opts.name);
			return;
		}
	}
	if (spdk_bdev_get_by_name(disk->opts.name) != NULL) {
		bdev_ozone_create_fail(disk, -EEXIST, "a bdev named '%s' already exists",
				       disk->opts.name);
		return;
	}

	disk->bdev.name = strdup(disk->opts.name);
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
	/* One range per UNMAP (the engine's op takes one); both must be set for the bdev
	 * layer to split. */
	disk->bdev.max_unmap = bdev_ozone_max_discard_blocks(&disk->info);
	disk->bdev.max_unmap_segments = 1;
	disk->bdev.max_write_zeroes = bdev_ozone_max_discard_blocks(&disk->info);
	rc = spdk_uuid_parse(&disk->bdev.uuid, disk->info.uuid);
	if (rc != 0) {
		free(disk->bdev.name);
		disk->bdev.name = NULL;
		bdev_ozone_create_fail(disk, -EINVAL, "the volume's uuid '%s' does not parse",
				       disk->info.uuid);
		return;
	}

	spdk_io_device_register(disk, bdev_ozone_ch_create, bdev_ozone_ch_destroy,
				sizeof(struct bdev_ozone_ch), disk->opts.name);
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
		       "%s%s)\n", disk->opts.name, disk->created ? "created" : "opened",
		       disk->opts.uri, disk->info.uuid, disk->info.size, disk->info.block_size,
		       disk->info.chunk_size, disk->opts.cpumask ? ", cpumask " : "",
		       disk->opts.cpumask ? disk->opts.cpumask : "");
	disk->create_cb(disk->create_cb_arg, 0, disk->bdev.name, disk->created != 0,
			disk->info.uuid, NULL);
}

/* ozbd_open_async's callback, on the engine's open thread: record, hand to the app thread. */
static void
bdev_ozone_open_cb(void *cb_arg, struct ozbd_volume *vol, int status, int created,
		   const char *errmsg)
{
	struct bdev_ozone *disk = cb_arg;

	disk->vol = vol;
	disk->rc = status;
	disk->created = created;
	snprintf(disk->errmsg, sizeof(disk->errmsg), "%s", errmsg ? errmsg : "");
	if (status == 0 && ozbd_get_info(vol, &disk->info) != 0) {
		disk->rc = -EIO;
		snprintf(disk->errmsg, sizeof(disk->errmsg), "ozbd_get_info failed");
	}
	bdev_ozone_send_msg(spdk_thread_get_app_thread(), bdev_ozone_open_done, disk,
			    "an open result");
}

void
bdev_ozone_create(const struct bdev_ozone_create_opts *opts, bdev_ozone_create_cb cb,
		  void *cb_arg)
{
	struct bdev_ozone *disk, *other;
	struct ozbd_params p;
	char msg[BDEV_OZONE_ERRLEN];
	int rc;

	assert(spdk_get_thread() == spdk_thread_get_app_thread());

	if (g_fini_started) {
		cb(cb_arg, -ESHUTDOWN, NULL, false, NULL, "the application is shutting down");
		return;
	}
	rc = bdev_ozone_check_opts(opts, msg, sizeof(msg));
	if (rc != 0) {
		cb(cb_arg, rc, NULL, false, NULL, msg);
		return;
	}
	disk = calloc(1, sizeof(*disk));
	if (disk == NULL || bdev_ozone_opts_copy(&disk->opts, opts) != 0) {
		free(disk);
		cb(cb_arg, -ENOMEM, NULL, false, NULL, "out of memory");
		return;
	}
	disk->create_cb = cb;
	disk->create_cb_arg = cb_arg;
	disk->state = BDEV_OZONE_OPENING;

	other = bdev_ozone_find_by_uri(disk->opts.uri);
	if (other != NULL) {
		snprintf(msg, sizeof(msg), "volume %s is already %s as bdev '%s'", disk->opts.uri,
			 other->state == BDEV_OZONE_OPENING ? "being opened" :
			 other->state == BDEV_OZONE_OPEN ? "open" : "being closed", other->opts.name);
		bdev_ozone_free(disk);
		cb(cb_arg, -EEXIST, NULL, false, NULL, msg);
		return;
	}
	if (bdev_ozone_find_by_name(disk->opts.name) != NULL ||
	    spdk_bdev_get_by_name(disk->opts.name)) {
		snprintf(msg, sizeof(msg), "a bdev named '%s' already exists", disk->opts.name);
		bdev_ozone_free(disk);
		cb(cb_arg, -EEXIST, NULL, false, NULL, msg);
		return;
	}

	TAILQ_INSERT_TAIL(&g_disks, disk, link);
	/* The engine opens on its own thread, placed on opts->cpumask (or every CPU the
	 * process may use), not on this reactor's core; bdev_ozone_open_cb reports. */
	bdev_ozone_opts_to_params(&disk->opts, &p);
	rc = ozbd_open_async(disk->opts.uri, &p, bdev_ozone_open_cb, disk);
	if (rc != 0) {
		TAILQ_REMOVE(&g_disks, disk, link);
		snprintf(msg, sizeof(msg), "cannot start the engine's open thread: %s",
			 spdk_strerror(-rc));
		bdev_ozone_free(disk);
		cb(cb_arg, rc, NULL, false, NULL, msg);
		return;
	}
	SPDK_DEBUGLOG(bdev_ozone, "%s: opening %s\n", disk->opts.name, disk->opts.uri);
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

/*
 * The open ozone bdev `name` with no resize running, or NULL after telling `cb` why not
 * (-ENODEV: no such ozone bdev; -EBUSY: still opening or closing, or being resized).
 */
static struct bdev_ozone *
bdev_ozone_find_idle(const char *name, bdev_ozone_delete_cb cb, void *cb_arg)
{
	struct bdev_ozone *disk;
	char msg[BDEV_OZONE_ERRLEN];

	disk = bdev_ozone_find_by_name(name);
	if (disk == NULL) {
		snprintf(msg, sizeof(msg), "%s '%s'", spdk_bdev_get_by_name(name) ?
			 "not an ozone bdev:" : "no such ozone bdev:", name);
		cb(cb_arg, -ENODEV, msg);
		return NULL;
	}
	if (disk->state != BDEV_OZONE_OPEN) {
		snprintf(msg, sizeof(msg), "ozone bdev '%s' is still being %s", name,
			 disk->state == BDEV_OZONE_OPENING ? "opened" : "closed");
		cb(cb_arg, -EBUSY, msg);
		return NULL;
	}
	if (disk->resize != NULL) {
		snprintf(msg, sizeof(msg), "ozone bdev '%s' is being resized to %" PRIu64
			 " bytes: try again when that is done", name, disk->resize->new_size);
		cb(cb_arg, -EBUSY, msg);
		return NULL;
	}
	return disk;
}

void
bdev_ozone_delete(const char *name, bool destroy_data, bdev_ozone_delete_cb cb, void *cb_arg)
{
	struct bdev_ozone_delete_ctx *ctx;
	struct bdev_ozone *disk;
	char msg[BDEV_OZONE_ERRLEN];
	int rc;

	disk = bdev_ozone_find_idle(name, cb, cb_arg);
	if (disk == NULL) {
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
/* Resize */

/* Helper pthread: the engine resizes (Ozone I/O; a shrink drains the I/O in flight). */
static void
bdev_ozone_resize_work(struct bdev_ozone *disk)
{
	struct bdev_ozone_resize_ctx *r = disk->resize;

	r->errmsg[0] = '\0';
	r->rc = ozbd_resize(disk->vol, r->new_size, r->force ? 1 : 0, r->errmsg,
			    sizeof(r->errmsg));
}

/* App thread, after the engine's answer: the bdev layer's block count follows it. */
static void
bdev_ozone_resize_done(void *ctx)
{
	struct bdev_ozone *disk = ctx;
	struct bdev_ozone_resize_ctx *r = disk->resize;
	uint64_t bs = disk->bdev.blocklen;
	int rc = r->rc;

	if (disk->state == BDEV_OZONE_OPEN) {
		if (r->rc == 0 && !r->notified) {
			/* Grown: the new blocks are offered now, to every open descriptor (an
			 * lvstore gets a resize event; bdev_lvol_grow_lvstore takes them). */
			rc = spdk_bdev_notify_blockcnt_change(&disk->bdev, r->new_size / bs);
			if (rc != 0) {
				snprintf(r->errmsg, sizeof(r->errmsg), "the volume grew to %" PRIu64
					 " bytes, but the bdev layer kept %" PRIu64 " blocks: %s",
					 r->new_size, disk->bdev.blockcnt, spdk_strerror(-rc));
			}
		} else if (r->rc != 0 && r->notified) {
			/* The engine kept its size: give the bdev its blocks back. */
			spdk_bdev_notify_blockcnt_change(&disk->bdev, r->old_size / bs);
		}
	}
	if (r->rc == 0 && ozbd_get_info(disk->vol, &disk->info) != 0) {
		disk->info.size = r->new_size;
	}
	if (rc == 0) {
		SPDK_NOTICELOG("%s: resized from %" PRIu64 " to %" PRIu64 " bytes\n",
			       disk->opts.name, r->old_size, r->new_size);
	} else {
		SPDK_ERRLOG("%s: resize to %" PRIu64 " bytes failed: %s\n", disk->opts.name,
			    r->new_size, r->errmsg[0] ? r->errmsg : spdk_strerror(-rc));
	}
	r->cb(r->cb_arg, rc, rc == 0 ? NULL : r->errmsg[0] ? r->errmsg : spdk_strerror(-rc));
	disk->resize = NULL;
	free(r);
	if (disk->close_pending) {
		/* The bdev was destructed meanwhile: close the volume now. */
		disk->close_pending = false;
		bdev_ozone_send_msg(disk->destruct_thread, bdev_ozone_start_close, disk, "a close");
	}
}

void
bdev_ozone_resize(const char *name, uint64_t new_size, bool force, bdev_ozone_resize_cb cb,
		  void *cb_arg)
{
	struct bdev_ozone_resize_ctx *r;
	struct bdev_ozone *disk;
	char msg[BDEV_OZONE_ERRLEN];
	uint64_t bs;
	int rc;

	assert(spdk_get_thread() == spdk_thread_get_app_thread());

	disk = bdev_ozone_find_idle(name, cb, cb_arg);
	if (disk == NULL) {
		return;
	}
	r = calloc(1, sizeof(*r));
	if (r == NULL) {
		cb(cb_arg, -ENOMEM, "out of memory");
		return;
	}
	r->old_size = disk->info.size;
	r->new_size = new_size;
	r->force = force;
	r->cb = cb;
	r->cb_arg = cb_arg;
	bs = disk->bdev.blocklen;
	/* A shrink the engine may do (forced, whole blocks): the bdev layer refuses to shrink a
	 * bdev anyone has open, so ask it first. Anything else the engine refuses itself, with
	 * its own message. */
	if (force && new_size < r->old_size && new_size > 0 && new_size % bs == 0) {
		rc = spdk_bdev_notify_blockcnt_change(&disk->bdev, new_size / bs);
		if (rc != 0) {
			snprintf(msg, sizeof(msg), "cannot shrink '%s' to %" PRIu64 " bytes: the bdev "
				 "layer refuses (%s): a shrink needs the bdev closed by every user (an "
				 "lvstore, an NVMe-oF namespace, ...); nothing was changed", name,
				 new_size, spdk_strerror(-rc));
			free(r);
			cb(cb_arg, rc, msg);
			return;
		}
		r->notified = true;
	}
	disk->resize = r;
	rc = bdev_ozone_run_job(disk, bdev_ozone_resize_work, bdev_ozone_resize_done);
	if (rc != 0) {
		disk->resize = NULL;
		if (r->notified) {
			spdk_bdev_notify_blockcnt_change(&disk->bdev, r->old_size / bs);
		}
		free(r);
		snprintf(msg, sizeof(msg), "cannot start a resize thread: %s", spdk_strerror(-rc));
		cb(cb_arg, rc, msg);
		return;
	}
	SPDK_DEBUGLOG(bdev_ozone, "%s: resizing from %" PRIu64 " to %" PRIu64 " bytes\n", name,
		      r->old_size, new_size);
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
			       TAILQ_FIRST(&g_disks)->opts.uri);
	}
}
