/* SPDX-License-Identifier: Apache-2.0
 *
 * nbdkit-ozbd-plugin: serves a bdev_ozone volume (a chunk store in an Apache
 * Ozone FSO bucket) over NBD through nbdkit.
 *
 * Owns: nbdkit parameter parsing (uri=, size=, block_size=, chunk_size=, uuid=,
 *   create=, workers=, timeout=, retry=); opening ONE engine volume after nbdkit has
 *   forked and sharing it across all connections (thread model PARALLEL);
 *   turning each NBD request into ozbd_submit() calls and waiting for their
 *   completions; the NBD capability answers (block size constraints, flush,
 *   native FUA, trim, zero, multi-conn, extents from chunk presence). Byte
 *   ranges that ignore the advertised minimum block size go to the engine as
 *   they are (its chunk read-modify-write covers partial blocks, in order).
 *
 * Must never: contain logic of chunking, caching, batching, journaling or the
 *   volume format (everything goes through the engine's C ABI, capi/include/
 *   ozbd.h, exactly as the SPDK module does); start the JVM before nbdkit's fork
 *   (the engine is opened in .after_fork only); report a write, zero, trim or
 *   flush as done before the engine has completed it (the engine's completion
 *   means durable in Ozone, which is why FUA is native).
 */

#define NBDKIT_API_VERSION 2

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/uio.h>

#include <nbdkit-plugin.h>

#include "ozbd.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Largest data request we advertise (nbdkit itself caps requests at 64 MiB). */
#define OZBD_MAX_REQUEST (32u * 1024 * 1024)

/* ---------------------------------------------------------------- parameters */

static char *uri;               /* required */
static int64_t size;            /* 0: open only */
static uint32_t block_size;     /* 0: the volume's / engine default */
static int64_t chunk_size;      /* 0: the volume's / engine default */
static char *uuid;              /* NULL: any (open) or generate (create) */
static int create_mode = -1;    /* -1: derive from size= */
static uint32_t workers;        /* 0: engine default */
static uint32_t timeout_ms;     /* 0: engine default (60 s) */
static uint32_t retry_ms;       /* 0: engine default (30 s) */

/* ---------------------------------------------------------------- the volume */

static struct ozbd_volume *vol; /* one per nbdkit process, opened in after_fork */
static struct ozbd_info info;

static void
ozbd_unload (void)
{
  free (uri);
  free (uuid);
}

static int
parse_u32 (const char *key, const char *value, uint32_t *out)
{
  if (nbdkit_parse_uint32_t (key, value, out) == -1)
    return -1;
  return 0;
}

static int
ozbd_config (const char *key, const char *value)
{
  if (strcmp (key, "uri") == 0) {
    free (uri);
    uri = strdup (value);
    if (uri == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  else if (strcmp (key, "size") == 0) {
    size = nbdkit_parse_size (value);
    if (size == -1)
      return -1;
    if (size == 0) {
      nbdkit_error ("size must be greater than 0");
      return -1;
    }
  }
  else if (strcmp (key, "block_size") == 0) {
    int64_t v = nbdkit_parse_size (value);
    if (v == -1)
      return -1;
    if (v != 512 && v != 4096) {
      nbdkit_error ("block_size must be 512 or 4096, not %s", value);
      return -1;
    }
    block_size = v;
  }
  else if (strcmp (key, "chunk_size") == 0) {
    chunk_size = nbdkit_parse_size (value);
    if (chunk_size == -1)
      return -1;
    if (chunk_size < 65536 || chunk_size > 256 * 1024 * 1024 ||
        (chunk_size & (chunk_size - 1)) != 0) {
      nbdkit_error ("chunk_size must be a power of two from 64K to 256M, "
                    "not %s", value);
      return -1;
    }
  }
  else if (strcmp (key, "uuid") == 0) {
    free (uuid);
    uuid = strdup (value);
    if (uuid == NULL) {
      nbdkit_error ("strdup: %m");
      return -1;
    }
  }
  else if (strcmp (key, "create") == 0) {
    if (strcmp (value, "auto") == 0)
      create_mode = -1;
    else if (strcmp (value, "never") == 0 || strcmp (value, "no") == 0)
      create_mode = OZBD_OPEN_EXISTING;
    else if (strcmp (value, "new") == 0)
      create_mode = OZBD_CREATE_NEW;
    else if (strcmp (value, "yes") == 0)
      create_mode = OZBD_OPEN_OR_CREATE;
    else {
      nbdkit_error ("create must be auto, yes, never or new, not '%s'", value);
      return -1;
    }
  }
  else if (strcmp (key, "workers") == 0) {
    if (parse_u32 (key, value, &workers) == -1)
      return -1;
  }
  else if (strcmp (key, "timeout") == 0) {
    uint32_t s;
    if (parse_u32 (key, value, &s) == -1)
      return -1;
    if (s == 0 || s > 3600) {
      nbdkit_error ("timeout must be 1 to 3600 seconds, not %s", value);
      return -1;
    }
    timeout_ms = s * 1000;
  }
  else if (strcmp (key, "retry") == 0) {
    uint32_t s;
    if (parse_u32 (key, value, &s) == -1)
      return -1;
    if (s > 3600) {
      nbdkit_error ("retry must be 0 to 3600 seconds, not %s", value);
      return -1;
    }
    retry_ms = s == 0 ? 1 : s * 1000;   /* 0 s: fail at the first error */
  }
  else {
    nbdkit_error ("unknown parameter '%s' (see nbdkit-ozbd-plugin --help)",
                  key);
    return -1;
  }
  return 0;
}

static int
ozbd_config_complete (void)
{
  if (uri == NULL) {
    nbdkit_error ("uri=ofs://<om-host>[:port]/<volume>/<bucket>/<path> "
                  "(or file:///<dir>) is required");
    return -1;
  }
  if (strncmp (uri, "ofs://", 6) != 0 && strncmp (uri, "file://", 7) != 0) {
    nbdkit_error ("uri '%s' must start with ofs:// or file://", uri);
    return -1;
  }
  if (getenv ("CLASSPATH") == NULL || *getenv ("CLASSPATH") == '\0') {
    nbdkit_error ("CLASSPATH is not set: the engine needs the Hadoop/Ozone "
                  "client jars and config dir, e.g. "
                  "eval \"$(scripts/ozone-local env)\"");
    return -1;
  }
  if (create_mode == -1)
    create_mode = size > 0 ? OZBD_OPEN_OR_CREATE : OZBD_OPEN_EXISTING;
  if (create_mode == OZBD_CREATE_NEW && size == 0) {
    nbdkit_error ("create=new needs size=");
    return -1;
  }
  return 0;
}

#define ozbd_config_help \
  "uri=<URI>            (required) ofs://<om>[:port]/<vol>/<bucket>/<path>\n" \
  "size=<SIZE>          size (K/M/G/T suffixes); only needed to create\n" \
  "block_size=512|4096  logical block size (create; checked on open)\n" \
  "chunk_size=<SIZE>    chunk size, 64K..256M (create; checked on open)\n" \
  "uuid=<UUID>          volume UUID (create; checked on open)\n" \
  "create=auto|yes|never|new  auto (default): create iff size= is given\n" \
  "workers=<N>          engine worker threads (default: engine's)\n" \
  "timeout=<SECS>       give up reaching Ozone after SECS (default 60)\n" \
  "retry=<SECS>         retry a transient Ozone failure of an I/O for SECS\n" \
  "                     before failing it (default 30; 0: fail at once)"

static int
ozbd_after_fork (void)
{
  struct ozbd_params p;
  char err[1024] = "";
  int created = 0, r;

  memset (&p, 0, sizeof p);
  p.size = size;
  p.block_size = block_size;
  p.chunk_size = chunk_size;
  p.uuid = uuid;
  p.mode = create_mode;
  p.workers = workers;
  p.timeout_ms = timeout_ms;
  p.retry_ms = retry_ms;

  r = ozbd_open (uri, &p, &vol, &created, err, sizeof err);
  if (r != 0) {
    nbdkit_error ("ozbd: cannot open %s: %s (%s)%s", uri, err, strerror (-r),
                  r == -ENOENT && size == 0
                  ? "; or pass size= to create it here" : "");
    vol = NULL;
    return -1;
  }
  if (ozbd_get_info (vol, &info) != 0) {
    nbdkit_error ("ozbd: cannot get the geometry of %s", uri);
    ozbd_close (vol);
    vol = NULL;
    return -1;
  }
  nbdkit_debug ("ozbd: %s %s: size %" PRIu64 " block %" PRIu32
                " chunk %" PRIu64 " uuid %s",
                created ? "created" : "opened", uri, info.size,
                info.block_size, info.chunk_size, info.uuid);
  return 0;
}

static void
ozbd_cleanup (void)
{
  if (vol) {
    struct ozbd_stats s;
    if (ozbd_get_stats (vol, &s) == 0)
      nbdkit_debug ("ozbd: closing: reads %" PRIu64 " writes %" PRIu64
                    " zeroes %" PRIu64 " unmaps %" PRIu64 " flushes %" PRIu64
                    " errors %" PRIu64 " chunk_puts %" PRIu64
                    " rmw %" PRIu64 " merged %" PRIu64,
                    s.reads, s.writes, s.write_zeroes, s.unmaps, s.flushes,
                    s.errors, s.chunk_puts, s.rmw, s.merged);
    ozbd_close (vol);           /* waits for in-flight I/O */
    vol = NULL;
  }
}

/* ---------------------------------------------------------------- I/O */

struct waiter {
  pthread_mutex_t lock;
  pthread_cond_t cond;
  bool done;
  int status;
};

static void
io_done (void *arg, int status)
{
  struct waiter *w = arg;

  pthread_mutex_lock (&w->lock);
  w->status = status;
  w->done = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

/* Submit one aligned request and wait for its completion. Returns 0 or -1 with
 * the NBD error set. */
static int
do_io (enum ozbd_op op, uint64_t offset, uint64_t len, void *buf)
{
  struct waiter w = { .done = false, .status = 0 };
  struct iovec iov = { .iov_base = buf, .iov_len = len };
  bool data = op == OZBD_OP_READ || op == OZBD_OP_WRITE;

  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  ozbd_submit (vol, op, offset, len, data ? &iov : NULL, data ? 1 : 0,
               io_done, &w);
  pthread_mutex_lock (&w.lock);
  while (!w.done)
    pthread_cond_wait (&w.cond, &w.lock);
  pthread_mutex_unlock (&w.lock);
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.lock);

  if (w.status != 0) {
    static const char *names[] = { "read", "write", "write-zeroes", "unmap",
                                   "flush" };
    int e = -w.status;
    nbdkit_error ("ozbd: %s at %" PRIu64 "+%" PRIu64 ": %s",
                  (unsigned) op < 5 ? names[op] : "?", offset, len,
                  strerror (e));
    nbdkit_set_error (e);
    return -1;
  }
  return 0;
}

static int
check_range (uint32_t count, uint64_t offset)
{
  if (offset > info.size || count > info.size - offset) {
    nbdkit_error ("ozbd: request %" PRIu64 "+%" PRIu32 " beyond the end "
                  "(%" PRIu64 ")", offset, count, info.size);
    nbdkit_set_error (EINVAL);
    return -1;
  }
  return 0;
}

/* ---------------------------------------------------------------- callbacks */

static int handle_token;

static void *
ozbd_open_conn (int readonly)
{
  if (vol == NULL) {
    nbdkit_error ("ozbd: the volume is not open");
    return NULL;
  }
  return &handle_token;         /* all connections share the one volume */
}

static int64_t
ozbd_get_size (void *h)
{
  return info.size;
}

static int
ozbd_block_size (void *h, uint32_t *minimum, uint32_t *preferred,
                 uint32_t *maximum)
{
  *minimum = info.block_size;
  *preferred = info.chunk_size < OZBD_MAX_REQUEST ? info.chunk_size
                                                  : OZBD_MAX_REQUEST;
  *maximum = OZBD_MAX_REQUEST;
  return 0;
}

static int ozbd_can_true (void *h) { return 1; }
static int ozbd_can_false (void *h) { return 0; }
static int ozbd_can_fua (void *h) { return NBDKIT_FUA_NATIVE; }

/* NBD clients may send any byte range: the engine takes it as is and covers
 * partial blocks with the chunk's read-modify-write, ordered with every other
 * request on that chunk (so concurrent clients never lose each other's bytes). */
static int
ozbd_pread (void *h, void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  if (check_range (count, offset) == -1)
    return -1;
  return do_io (OZBD_OP_READ, offset, count, buf);
}

/* FUA needs nothing extra: a completed write is durable (engine contract). */
static int
ozbd_pwrite (void *h, const void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  if (check_range (count, offset) == -1)
    return -1;
  return do_io (OZBD_OP_WRITE, offset, count, (void *) buf);
}

static int
ozbd_zero (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    nbdkit_set_error (ENOTSUP);
    return -1;
  }
  if (check_range (count, offset) == -1)
    return -1;
  return do_io (OZBD_OP_WRITE_ZEROES, offset, count, NULL);
}

/* Trim: the engine discards whole chunks and zeroes the partial ones. */
static int
ozbd_trim (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (check_range (count, offset) == -1)
    return -1;
  return do_io (OZBD_OP_UNMAP, offset, count, NULL);
}

static int
ozbd_flush (void *h, uint32_t flags)
{
  return do_io (OZBD_OP_FLUSH, 0, 0, NULL);
}

/* Extents from chunk presence: a chunk never written or discarded reads as
 * zeros (HOLE|ZERO); a stored chunk is data (even if it happens to be zero). */
static int
ozbd_extents (void *h, uint32_t count, uint64_t offset, uint32_t flags,
              struct nbdkit_extents *extents)
{
  uint64_t end = offset + count;
  uint64_t cs = info.chunk_size;
  uint64_t idx = offset / cs;
  uint64_t run_start = idx * cs;
  int run_type = -1;

  if (end > info.size)
    end = info.size;
  for (; idx * cs < end; idx++) {
    int a = ozbd_chunk_allocated (vol, idx);
    int type = a == 1 ? 0 : NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO;
    if (a < 0)
      type = 0;                 /* unknown: say "data" */
    if (run_type != -1 && type != run_type) {
      if (nbdkit_add_extent (extents, run_start, idx * cs - run_start,
                             run_type) == -1)
        return -1;
      if (flags & NBDKIT_FLAG_REQ_ONE)
        return 0;
      run_start = idx * cs;
    }
    run_type = type;
  }
  {
    uint64_t run_end = idx * cs;
    if (run_end > info.size)
      run_end = info.size;
    if (nbdkit_add_extent (extents, run_start, run_end - run_start,
                           run_type) == -1)
      return -1;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name              = "ozbd",
  .longname          = "bdev_ozone volume in Apache Ozone",
  .version           = "0.1.0",
  .description       = "Serve a bdev_ozone chunk-store volume in an Ozone "
                       "FSO bucket",
  .unload            = ozbd_unload,
  .config            = ozbd_config,
  .config_complete   = ozbd_config_complete,
  .config_help       = ozbd_config_help,
  .magic_config_key  = "uri",
  .after_fork        = ozbd_after_fork,
  .cleanup           = ozbd_cleanup,
  .open              = ozbd_open_conn,
  .get_size          = ozbd_get_size,
  .block_size        = ozbd_block_size,
  .can_write         = ozbd_can_true,
  .can_flush         = ozbd_can_true,
  .can_trim          = ozbd_can_true,
  .can_zero          = ozbd_can_true,
  .can_extents       = ozbd_can_true,
  .can_multi_conn    = ozbd_can_true,
  .can_fua           = ozbd_can_fua,
  .can_fast_zero     = ozbd_can_false, /* partial chunks need RMW: not fast */
  .pread             = ozbd_pread,
  .pwrite            = ozbd_pwrite,
  .zero              = ozbd_zero,
  .trim              = ozbd_trim,
  .flush             = ozbd_flush,
  .extents           = ozbd_extents,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
