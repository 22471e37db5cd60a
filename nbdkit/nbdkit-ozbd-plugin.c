/* SPDX-License-Identifier: Apache-2.0
 *
 * nbdkit-ozbd-plugin: serves a bdev_ozone volume (a chunk store in an Apache
 * Ozone FSO bucket) over NBD through nbdkit.
 *
 * Owns: turning nbdkit's key=value parameters (uri=, size=, block_size=,
 *   chunk_size=, uuid=, create=, workers=, timeout=, retry=, cpumask=,
 *   max_inflight_requests=, max_inflight_bytes=, journal=, journal_mb=,
 *   cache_mb=) into numbers and strings in
 *   a struct ozbd_params that ozbd_params_init filled with the engine's
 *   defaults; refusing bad configuration before the fork with the engine's own
 *   words (ozbd_check_params); opening ONE engine volume after nbdkit has
 *   forked and sharing it across all connections (thread model PARALLEL),
 *   for as long as nbdkit runs (so it holds the writer lease that long: an
 *   `ozbd resize` elsewhere is refused; after one made while nbdkit was
 *   stopped, the next nbdkit serves the new size); the export size each
 *   connection sees (get_size: the engine's size at that moment);
 *   turning each NBD request into one ozbd_submit() call, waiting for room when
 *   the engine answers -EAGAIN and then for the completion; the NBD capability
 *   answers (block size constraints, flush, native FUA, trim, zero,
 *   multi-conn, extents from chunk presence); logging (nbdkit -v) the
 *   engine's settings JSON after open and its statistics JSON at cleanup.
 *
 * Must never: contain logic of chunking, caching, batching, journaling or the
 *   volume format (everything goes through the engine's C ABI, capi/include/
 *   ozbd.h, exactly as the SPDK module does); keep a default, a range rule or a
 *   URI/geometry check of its own (the engine owns them: ozbd_params_init,
 *   ozbd_check_params, ozbd_open); keep a list of the engine's counters; start
 *   the JVM before nbdkit's fork (the engine is opened in .after_fork only);
 *   fail an NBD request because the engine's in-flight bound is reached; report
 *   a write, zero, trim or flush as done before the engine has completed it
 *   (the engine's completion means durable in Ozone, which is why FUA is
 *   native).
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
#include <sys/uio.h>
#include <time.h>

#include <nbdkit-plugin.h>

#include "ozbd.h"

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

/* Largest data request we advertise (nbdkit itself caps requests at 64 MiB). */
#define OZBD_MAX_REQUEST (32u * 1024 * 1024)

/* ---------------------------------------------------------------- parameters */

/* Filled with the engine's defaults in .load, then changed by .config. */
static struct ozbd_params params;
static int params_init_status;  /* ozbd_params_init's answer */
static char *uri;               /* required */
static char *uuid;              /* params.uuid points here */
static char *cpumask;           /* params.cpumask points here */
static char *journal;           /* params.journal points here once given */
static int create_key = -1;     /* create=: -1 auto (create iff size= given) */

/* ---------------------------------------------------------------- the volume */

static struct ozbd_volume *vol; /* one per nbdkit process, opened in after_fork */
static struct ozbd_info info;

/* --help text, with the engine's defaults (filled in .load, which nbdkit
 * calls before it prints the help). */
static char config_help[4096];

static void
ozbd_load (void)
{
  struct ozbd_params d;

  params_init_status = ozbd_params_init (&params, sizeof params);
  params.holder_frontend = "nbdkit";
  if (ozbd_params_init (&d, sizeof d) != 0)
    memset (&d, 0, sizeof d);
  snprintf (config_help, sizeof config_help,
"uri=<URI>            (required) ofs://<om>[:port]/<vol>/<bucket>/<path>\n"
"size=<SIZE>          size (K/M/G/T suffixes); only needed to create\n"
"block_size=512|4096  logical block size (create; checked on open)\n"
"chunk_size=<SIZE>    chunk size, a power of two (create; checked on open)\n"
"uuid=<UUID>          volume UUID (create; checked on open)\n"
"create=auto|yes|never|new  auto (default): create iff size= is given\n"
"workers=<N>          engine worker threads (default %" PRIu32 ")\n"
"timeout=<SECS>       give up reaching Ozone after SECS (default %" PRIu32 ")\n"
"retry=<SECS>         retry a transient Ozone failure of an I/O for SECS\n"
"                     before failing it (default %" PRIu32 "; 0: fail at once)\n"
"cpumask=<MASK>       CPUs for the engine's and the JVM's threads, \"0x3\" or\n"
"                     \"[0,1]\" (default: every CPU nbdkit may use)\n"
"max_inflight_requests=<N>  requests in flight in the engine before new\n"
"                     ones wait (default %" PRIu32 ")\n"
"max_inflight_bytes=<SIZE>  bytes in flight in the engine before new ones\n"
"                     wait (default %" PRIu64 ")\n"
"journal=ozone|none   ozone: small writes are made durable in a journal in\n"
"                     the volume's Ozone directory; none: every write\n"
"                     rewrites its chunk (default %s)\n"
"journal_mb=<N>       journal space (and dirty data held in memory) in MiB;\n"
"                     writers wait when it is full (default %" PRIu64 ")\n"
"cache_mb=<N>         read cache in MiB, 0: none (default %" PRIu64 ")\n"
"takeover=1           take over a volume whose writer lease has expired\n"
"                     (its holder is presumed dead, and is fenced); a\n"
"                     volume held by a live writer is always refused\n"
"readonly=1           open without the writer lease and never write\n"
"                     (writes fail with EROFS)",
            d.workers, d.timeout_ms / 1000, d.retry_ms / 1000,
            d.max_inflight_requests, d.max_inflight_bytes,
            d.journal ? d.journal : "the engine's", d.journal_mb, d.cache_mb);
}

static void
ozbd_unload (void)
{
  free (uri);
  free (uuid);
  free (cpumask);
  free (journal);
}

static int
set_string (char **dst, const char *value)
{
  char *s = strdup (value);

  if (s == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  free (*dst);
  *dst = s;
  return 0;
}

static int
parse_size (const char *key, const char *value, uint64_t *out)
{
  int64_t v = nbdkit_parse_size (value);

  if (v == -1)
    return -1;
  *out = v;
  return 0;
}

/* SECS into milliseconds (the engine's unit); the range is the engine's. */
static int
parse_seconds (const char *key, const char *value, uint32_t *ms)
{
  uint32_t s;

  if (nbdkit_parse_uint32_t (key, value, &s) == -1)
    return -1;
  if (s > UINT32_MAX / 1000) {
    nbdkit_error ("%s=%s: too many seconds to hold in milliseconds", key, value);
    return -1;
  }
  *ms = s * 1000;
  return 0;
}

static int
ozbd_config (const char *key, const char *value)
{
  int r;

  if (strcmp (key, "uri") == 0)
    return set_string (&uri, value);
  else if (strcmp (key, "size") == 0)
    return parse_size (key, value, &params.size);
  else if (strcmp (key, "block_size") == 0) {
    uint64_t v;
    if (parse_size (key, value, &v) == -1)
      return -1;
    if (v > UINT32_MAX) {
      nbdkit_error ("block_size=%s: too large", value);
      return -1;
    }
    params.block_size = v;
  }
  else if (strcmp (key, "chunk_size") == 0)
    return parse_size (key, value, &params.chunk_size);
  else if (strcmp (key, "uuid") == 0) {
    if (set_string (&uuid, value) == -1)
      return -1;
    params.uuid = uuid;
  }
  else if (strcmp (key, "create") == 0) {
    if (strcmp (value, "auto") == 0)
      create_key = -1;
    else if (strcmp (value, "never") == 0 || strcmp (value, "no") == 0)
      create_key = OZBD_OPEN_EXISTING;
    else if (strcmp (value, "new") == 0)
      create_key = OZBD_CREATE_NEW;
    else if (strcmp (value, "yes") == 0)
      create_key = OZBD_OPEN_OR_CREATE;
    else {
      nbdkit_error ("create must be auto, yes, never or new, not '%s'", value);
      return -1;
    }
  }
  else if (strcmp (key, "workers") == 0)
    return nbdkit_parse_uint32_t (key, value, &params.workers);
  else if (strcmp (key, "timeout") == 0)
    return parse_seconds (key, value, &params.timeout_ms);
  else if (strcmp (key, "retry") == 0)
    return parse_seconds (key, value, &params.retry_ms);
  else if (strcmp (key, "cpumask") == 0) {
    if (set_string (&cpumask, value) == -1)
      return -1;
    params.cpumask = cpumask;
  }
  else if (strcmp (key, "max_inflight_requests") == 0)
    return nbdkit_parse_uint32_t (key, value, &params.max_inflight_requests);
  else if (strcmp (key, "max_inflight_bytes") == 0)
    return parse_size (key, value, &params.max_inflight_bytes);
  else if (strcmp (key, "journal") == 0) {
    /* The engine parses the mode (ozbd_check_params names the valid ones). */
    if (set_string (&journal, value) == -1)
      return -1;
    params.journal = journal;
  }
  else if (strcmp (key, "journal_mb") == 0)
    return nbdkit_parse_uint64_t (key, value, &params.journal_mb);
  else if (strcmp (key, "cache_mb") == 0)
    return nbdkit_parse_uint64_t (key, value, &params.cache_mb);
  else if (strcmp (key, "takeover") == 0) {
    r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    params.force = r;
  }
  else if (strcmp (key, "readonly") == 0) {
    r = nbdkit_parse_bool (value);
    if (r == -1)
      return -1;
    params.readonly = r;
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
  char err[1024] = "";
  int r;

  if (params_init_status != 0) {
    nbdkit_error ("ozbd: ozbd_params_init: %s: the engine library does not "
                  "match ozbd.h", strerror (-params_init_status));
    return -1;
  }
  if (uri == NULL) {
    nbdkit_error ("uri=ofs://<om-host>[:port]/<volume>/<bucket>/<path> "
                  "(or file:///<dir>) is required");
    return -1;
  }
  if (create_key == -1)
    params.mode = params.size > 0 ? OZBD_OPEN_OR_CREATE : OZBD_OPEN_EXISTING;
  else
    params.mode = create_key;
  /* The engine's own checks of the URI, geometry, options, a size to create
   * with and the CLASSPATH, before the fork and without contacting Ozone. */
  r = ozbd_check_params (uri, &params, err, sizeof err);
  if (r != 0) {
    nbdkit_error ("ozbd: %s", err[0] ? err : strerror (-r));
    return -1;
  }
  return 0;
}

/* Log one of the engine's JSON reports (its own words: the plugin keeps no
 * list of counters or settings). */
static void
log_json (const char *what,
          int (*report) (const struct ozbd_volume *, char *, size_t))
{
  char small[2048];
  char *buf = small;
  int n;

  n = report (vol, small, sizeof small);
  if (n < 0)
    return;
  if ((size_t) n >= sizeof small) {
    buf = malloc (n + 1);
    if (buf == NULL || report (vol, buf, n + 1) < 0) {
      free (buf);
      return;
    }
  }
  nbdkit_debug ("ozbd: %s: %s", what, buf);
  if (buf != small)
    free (buf);
}

static int
ozbd_after_fork (void)
{
  char err[1024] = "";
  int created = 0, r;

  r = ozbd_open (uri, &params, &vol, &created, err, sizeof err);
  if (r != 0) {
    nbdkit_error ("ozbd: cannot open %s: %s (%s)%s", uri, err, strerror (-r),
                  r == -ENOENT && params.size == 0
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
  log_json ("settings", ozbd_settings_json);
  return 0;
}

static void
ozbd_cleanup (void)
{
  if (vol) {
    log_json ("stats", ozbd_stats_json);
    ozbd_close (vol);           /* waits for in-flight I/O */
    vol = NULL;
  }
}

/* ---------------------------------------------------------------- I/O */

/* Room in the engine: every completion bumps 'completions' and wakes the
 * requests waiting after an -EAGAIN. The engine calls a completion before it
 * releases the request's place in its bound, so a request woken this way may
 * meet -EAGAIN once more with nothing left to complete: the wait is therefore
 * also bounded in time (1 ms, doubling to 64 ms), and the request resubmitted
 * after it. It never fails for want of room. */
static pthread_mutex_t room_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t room_cond = PTHREAD_COND_INITIALIZER;
static uint64_t completions;
static unsigned room_waiters;

#define ROOM_WAIT_MIN_NS (1000 * 1000)
#define ROOM_WAIT_MAX_NS (64 * 1000 * 1000)

static uint64_t
completions_now (void)
{
  uint64_t c;

  pthread_mutex_lock (&room_lock);
  c = completions;
  pthread_mutex_unlock (&room_lock);
  return c;
}

/* Wait until a completion after 'seen', or for at most 'ns'. */
static void
wait_for_room (uint64_t seen, long ns)
{
  struct timespec t;

  clock_gettime (CLOCK_REALTIME, &t);
  t.tv_nsec += ns;
  t.tv_sec += t.tv_nsec / 1000000000;
  t.tv_nsec %= 1000000000;
  pthread_mutex_lock (&room_lock);
  room_waiters++;
  while (completions == seen) {
    if (pthread_cond_timedwait (&room_cond, &room_lock, &t) == ETIMEDOUT)
      break;
  }
  room_waiters--;
  pthread_mutex_unlock (&room_lock);
}

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

  pthread_mutex_lock (&room_lock);
  completions++;
  if (room_waiters > 0)
    pthread_cond_broadcast (&room_cond);
  pthread_mutex_unlock (&room_lock);

  /* Last touch of *w: the waiting thread may free it once we unlock. */
  pthread_mutex_lock (&w->lock);
  w->status = status;
  w->done = true;
  pthread_cond_signal (&w->cond);
  pthread_mutex_unlock (&w->lock);
}

static const char *
op_name (int op)
{
  static const char *names[] = { "read", "write", "write-zeroes", "unmap",
                                 "flush" };
  return op >= 0 && op < 5 ? names[op] : "?";
}

/* Submit one request (any byte range: the engine covers partial blocks) and
 * wait for its completion. Returns 0 or -1 with the NBD error set. */
static int
do_io (int op, uint64_t offset, uint64_t len, void *buf)
{
  struct waiter w = { .done = false, .status = 0 };
  struct iovec iov = { .iov_base = buf, .iov_len = len };
  bool data = op == OZBD_OP_READ || op == OZBD_OP_WRITE;
  long backoff = ROOM_WAIT_MIN_NS;
  int r;

  pthread_mutex_init (&w.lock, NULL);
  pthread_cond_init (&w.cond, NULL);
  for (;;) {
    uint64_t seen = completions_now ();
    r = ozbd_submit (vol, op, offset, len, data ? &iov : NULL, data ? 1 : 0,
                     io_done, &w);
    if (r != -EAGAIN)
      break;
    wait_for_room (seen, backoff);
    if (backoff < ROOM_WAIT_MAX_NS)
      backoff *= 2;
  }
  if (r == 0) {
    pthread_mutex_lock (&w.lock);
    while (!w.done)
      pthread_cond_wait (&w.cond, &w.lock);
    pthread_mutex_unlock (&w.lock);
  }
  pthread_cond_destroy (&w.cond);
  pthread_mutex_destroy (&w.lock);

  if (r != 0) {
    /* Not accepted (the engine logged why); the callback never runs. */
    nbdkit_error ("ozbd: %s at %" PRIu64 "+%" PRIu64 " not accepted: %s",
                  op_name (op), offset, len, strerror (-r));
    nbdkit_set_error (-r);
    return -1;
  }
  if (w.status != 0) {
    nbdkit_error ("ozbd: %s at %" PRIu64 "+%" PRIu64 ": %s",
                  op_name (op), offset, len, strerror (-w.status));
    nbdkit_set_error (-w.status);
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

/* The volume's size now, from the engine (which owns it; see get_size). */
static uint64_t
current_size (void)
{
  struct ozbd_info now;

  if (ozbd_get_info (vol, &now) != 0)
    return info.size;
  return now.size;
}

/* Asked once per connection. The engine's size at that moment: the volume is
 * opened once per nbdkit process and kept open across connections, so this is
 * the size it was opened with unless the engine was resized meanwhile; a
 * resize from outside (`ozbd resize`, refused while nbdkit holds the writer
 * lease) shows on the next nbdkit start. */
static int64_t
ozbd_get_size (void *h)
{
  return current_size ();
}

/* Minimum 1: the engine takes any byte range (a partial block is part of its
 * chunk's read-modify-write), and a larger minimum makes strict clients such
 * as libnbd refuse the unaligned writes of nbdfuse's page cache. Preferred:
 * the chunk size (capped at the maximum), because the chunk, not the block,
 * is the engine's unit of cost: any write smaller than a chunk is a
 * read-modify-write of the whole chunk in Ozone, and only a trim or zero
 * covering whole chunks frees them. */
static int
ozbd_block_size (void *h, uint32_t *minimum, uint32_t *preferred,
                 uint32_t *maximum)
{
  *minimum = 1;
  *preferred = info.chunk_size < OZBD_MAX_REQUEST ? info.chunk_size
                                                  : OZBD_MAX_REQUEST;
  *maximum = OZBD_MAX_REQUEST;
  return 0;
}

static int ozbd_can_true (void *h) { return 1; }
static int ozbd_can_write (void *h) { return !params.readonly; }
static int ozbd_can_false (void *h) { return 0; }
static int ozbd_can_fua (void *h) { return NBDKIT_FUA_NATIVE; }

/* nbdkit has already checked the range against the export size; the engine
 * checks it again and answers -EINVAL. */
static int
ozbd_pread (void *h, void *buf, uint32_t count, uint64_t offset,
            uint32_t flags)
{
  return do_io (OZBD_OP_READ, offset, count, buf);
}

/* FUA needs nothing extra: a completed write is durable (engine contract). */
static int
ozbd_pwrite (void *h, const void *buf, uint32_t count, uint64_t offset,
             uint32_t flags)
{
  return do_io (OZBD_OP_WRITE, offset, count, (void *) buf);
}

static int
ozbd_zero (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
  if (flags & NBDKIT_FLAG_FAST_ZERO) {
    nbdkit_set_error (ENOTSUP);
    return -1;
  }
  return do_io (OZBD_OP_WRITE_ZEROES, offset, count, NULL);
}

/* Trim: the engine deletes the whole chunks inside the range and zeroes the
 * rest of it (so a trimmed range reads as zeros). */
static int
ozbd_trim (void *h, uint32_t count, uint64_t offset, uint32_t flags)
{
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
  uint64_t size = current_size ();
  uint64_t idx = offset / cs;
  uint64_t run_start = idx * cs;
  int run_type = -1;

  if (end > size)
    end = size;
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
    if (run_end > size)
      run_end = size;
    if (nbdkit_add_extent (extents, run_start, run_end - run_start,
                           run_type) == -1)
      return -1;
  }
  return 0;
}

static struct nbdkit_plugin plugin = {
  .name              = "ozbd",
  .longname          = "bdev_ozone volume in Apache Ozone",
  .version           = "0.2.0",
  .description       = "Serve a bdev_ozone chunk-store volume in an Ozone "
                       "FSO bucket",
  .load              = ozbd_load,
  .unload            = ozbd_unload,
  .config            = ozbd_config,
  .config_complete   = ozbd_config_complete,
  .config_help       = config_help,
  .magic_config_key  = "uri",
  .after_fork        = ozbd_after_fork,
  .cleanup           = ozbd_cleanup,
  .open              = ozbd_open_conn,
  .get_size          = ozbd_get_size,
  .block_size        = ozbd_block_size,
  .can_write         = ozbd_can_write,
  .can_flush         = ozbd_can_true,
  .can_trim          = ozbd_can_write,
  .can_zero          = ozbd_can_write,
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
