// SPDX-License-Identifier: Apache-2.0
/*
 * OzoneCeiling: the raw-Ozone ceiling probe of bench/run. It measures what the Hadoop FileSystem
 * API (the path libhdfs takes, ozone-filesystem-hadoop3 through ofs://) gets from the cluster with
 * nothing of ours in between, so bench/run can print product/ceiling ratios from one run.
 *
 * Owns:  one scratch directory <ofs uri><dir>/ceiling-<pid>-<time>/ (deleted at the end, also on
 *        failure), the JVM it runs in.
 * Never: touches other paths of the cluster, changes server configuration, asserts a speed (it
 *        exits non-zero only when a measurement could not be made or hsync is not durable).
 *
 * Compiled at run time by bench/ceiling.sh (javac against the client classpath, like
 * scripts/OzoneProbe.java); nothing binary is committed.
 *
 * Usage: java -cp CONF:CLASSES:CLIENT_CP OzoneCeiling ofs://HOST:PORT/ [options]
 *   --dir /vol/bucket     where the scratch directory goes (default /benchvol/ceiling); mkdirs
 *                         creates volume and bucket (FSO, RATIS/THREE from the cluster defaults)
 *   --time SECS           seconds per measurement (default 10)
 *   --streams 1,2,4       parallel hsync streams, one measurement each
 *   --group N             4 KiB records per hsync (default 32: the engine's group commit at QD 32)
 *   --read-threads N      pread threads (default 32), each with its own open handle
 *   --read-file-mb N      size of the file the preads hit (default 64)
 *   --read-warmup SECS    untimed preads on every thread before the timed ones (default 0; bench/run
 *                         gives the product's cold reads the same warm-up)
 *   --put-threads N       whole-chunk put/read threads (default 8)
 *   --chunks 4096,1024    chunk sizes in KiB for the put/read measurements
 *   --only hsync,pread,put  a subset
 * Output: one JSON object per measurement on stdout, progress on stderr.
 *   {"probe":"hsync","streams":S,"group":N,"records_per_s":..,"hsyncs_per_s":..,"avg_ms":..,
 *    "p50_ms":..,"p99_ms":..,"hsync_visible":true,"replication":3}
 *   {"probe":"pread","threads":T,"io_kib":4,"iops":..,"avg_us":..,"p50_us":..,"p99_us":..}
 *   {"probe":"put"|"get","chunk_kib":C,"threads":T,"mib_s":..,"ops_per_s":..,"avg_ms":..,"p50_ms":..,"p99_ms":..}
 * hsync is checked, not assumed: after the second (untimed) and the last hsync of every stream a fresh
 * FileSystem instance must read the last hsynced record back at its offset. If not, it prints
 * "HSYNC FAILURE" loudly, emits "hsync_visible":false and exits 3. (Seen on 2.2.1: after the
 * second hsync of a file, getFileStatus of a fresh client still reports the length of the first
 * one while its reader reads the new bytes; reported as "status_len_lags":true and a WARNING.)
 * Exit: 0 ok, 1 error, 2 usage, 3 hsync not visible.
 */
import java.io.IOException;
import java.lang.management.ManagementFactory;
import java.net.URI;
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Random;
import java.util.concurrent.CyclicBarrier;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.StreamCapabilities;

public class OzoneCeiling {
  static final int REC = 4096;
  static URI uri;
  static Configuration conf;
  static FileSystem fs;
  static Path base;
  static double secs = 10, readWarmup = 0;
  static int group = 32, readThreads = 32, readFileMb = 64, putThreads = 8;
  static int[] streams = {1, 2, 4};
  static int[] chunksKib = {4096, 1024};
  static List<String> only = Arrays.asList("hsync", "pread", "put");

  public static void main(String[] args) throws Exception {
    if (args.length < 1) usage();
    uri = URI.create(args[0]);
    String dir = "/benchvol/ceiling";
    for (int i = 1; i < args.length; i++) {
      String a = args[i];
      if (i + 1 >= args.length) usage();
      String v = args[++i];
      switch (a) {
        case "--dir": dir = v; break;
        case "--time": secs = Double.parseDouble(v); break;
        case "--streams": streams = ints(v); break;
        case "--group": group = Integer.parseInt(v); break;
        case "--read-threads": readThreads = Integer.parseInt(v); break;
        case "--read-file-mb": readFileMb = Integer.parseInt(v); break;
        case "--read-warmup": readWarmup = Double.parseDouble(v); break;
        case "--put-threads": putThreads = Integer.parseInt(v); break;
        case "--chunks": chunksKib = ints(v); break;
        case "--only": only = Arrays.asList(v.split(",")); break;
        default: usage();
      }
    }
    conf = new Configuration();
    // The hsync client keys: set here, whatever the config dir says (without them hsync()
    // silently degrades to flush()). The OM side must have its two keys too (ozone-local does).
    conf.setBoolean("ozone.client.hbase.enhancements.allowed", true);
    conf.setBoolean("ozone.fs.hsync.enabled", true);
    // RATIS/THREE for every file we create (hsync refuses factor 1).
    conf.set("dfs.replication", "3");
    conf.set("ozone.replication", "3");
    conf.set("ozone.replication.type", "RATIS");
    conf.set("fs.ofs.impl", "org.apache.hadoop.fs.ozone.RootedOzoneFileSystem");
    fs = FileSystem.get(uri, conf);
    base = new Path(dir + "/ceiling-" + ProcessHandle.current().pid() + "-" + System.currentTimeMillis());
    fs.mkdirs(base);
    int rc = 0;
    try {
      if (only.contains("hsync")) {
        for (int s : streams) {
          if (!hsync(s)) rc = 3;
        }
      }
      if (only.contains("pread")) pread();
      if (only.contains("put")) {
        for (int c : chunksKib) putGet(c);
      }
    } catch (Throwable e) {
      System.err.println("ceiling: FAILED: " + e);
      e.printStackTrace();
      rc = 1;
    } finally {
      try {
        fs.delete(base, true);
      } catch (IOException e) {
        System.err.println("ceiling: could not delete " + base + ": " + e);
      }
    }
    System.out.flush();
    System.exit(rc);
  }

  static void usage() {
    System.err.println("usage: OzoneCeiling ofs://HOST:PORT/ [--dir D] [--time S] [--streams 1,2,4] [--group N]"
        + " [--read-threads N] [--read-file-mb N] [--put-threads N] [--chunks 4096,1024] [--only hsync,pread,put]");
    System.exit(2);
  }

  static int[] ints(String v) {
    return Arrays.stream(v.split(",")).mapToInt(Integer::parseInt).toArray();
  }

  static void progress(String fmt, Object... a) {
    System.err.printf("[ceiling %tT] %s%n", System.currentTimeMillis(), String.format(fmt, a));
  }

  static double pct(long[] sorted, double p) {
    if (sorted.length == 0) return 0;
    int i = (int) Math.ceil(p / 100.0 * sorted.length) - 1;
    return sorted[Math.max(0, Math.min(sorted.length - 1, i))];
  }

  static long[] merge(List<long[]> parts, int[] counts) {
    int n = 0;
    for (int c : counts) n += c;
    long[] all = new long[n];
    int o = 0;
    for (int i = 0; i < parts.size(); i++) {
      System.arraycopy(parts.get(i), 0, all, o, counts[i]);
      o += counts[i];
    }
    Arrays.sort(all);
    return all;
  }

  static double avg(long[] a) {
    double s = 0;
    for (long x : a) s += x;
    return a.length == 0 ? 0 : s / a.length;
  }

  static long cpuNs() {
    java.lang.management.OperatingSystemMXBean b = ManagementFactory.getOperatingSystemMXBean();
    if (b instanceof com.sun.management.OperatingSystemMXBean) {
      return ((com.sun.management.OperatingSystemMXBean) b).getProcessCpuTime();
    }
    return -1;
  }

  static byte[] record(long seq) {
    byte[] b = new byte[REC];
    new Random(seq * 2654435761L + 17).nextBytes(b);
    return b;
  }

  /** Per-thread latency log, growing. */
  static final class Lat {
    long[] v = new long[1 << 12];
    int n;

    void add(long ns) {
      if (n == v.length) v = Arrays.copyOf(v, n * 2);
      v[n++] = ns;
    }
  }

  /** The start line: every thread calls start() after its warm-up; it returns the deadline. */
  static final class Go {
    final CyclicBarrier barrier;
    volatile long t0, deadline;

    Go(int n) {
      barrier = new CyclicBarrier(n, () -> {
        t0 = System.nanoTime();
        deadline = t0 + (long) (secs * 1e9);
      });
    }

    long start() throws Exception {
      barrier.await(600, TimeUnit.SECONDS);
      return deadline;
    }
  }

  interface Body {
    void run(int thread, Lat lat, Go go) throws Exception;
  }

  static long lastT0; // when the timed part of the last parallel() began

  /** Runs body on n threads; each warms up, then go.start(), then runs until the deadline. */
  static List<Lat> parallel(int n, Body body) throws Exception {
    List<Lat> lats = new ArrayList<>();
    List<Thread> ts = new ArrayList<>();
    AtomicReference<Throwable> err = new AtomicReference<>();
    Go go = new Go(n);
    for (int t = 0; t < n; t++) {
      Lat lat = new Lat();
      lats.add(lat);
      final int id = t;
      Thread th = new Thread(() -> {
        try {
          body.run(id, lat, go);
        } catch (Throwable e) {
          err.compareAndSet(null, e);
          go.barrier.reset(); // release the others
        }
      }, "bench-" + t);
      ts.add(th);
      th.start();
    }
    for (Thread th : ts) th.join();
    lastT0 = go.t0;
    if (err.get() != null) throw new IOException("worker failed: " + err.get(), err.get());
    return lats;
  }

  static long[] sorted(List<Lat> lats) {
    List<long[]> parts = new ArrayList<>();
    int[] counts = new int[lats.size()];
    for (int i = 0; i < lats.size(); i++) {
      parts.add(lats.get(i).v);
      counts[i] = lats.get(i).n;
    }
    return merge(parts, counts);
  }

  // ------------------------------------------------------------------ hsync group commit
  static final AtomicBoolean statusLag = new AtomicBoolean(); // getFileStatus behind an hsync
  static final AtomicReference<String> statusLagWhy = new AtomicReference<>();

  /**
   * A fresh FileSystem must read the record that ends at len (the hsynced length). What
   * getFileStatus says is recorded apart (statusLag): Ozone may serve an hsynced file's
   * length from the datanode to readers while the OM's key length lags.
   */
  static String visible(Path p, long len, byte[] last) {
    try (FileSystem fresh = FileSystem.newInstance(uri, conf)) {
      FileStatus st = fresh.getFileStatus(p);
      byte[] got = new byte[REC];
      try (FSDataInputStream in = fresh.open(p)) {
        in.readFully(len - REC, got);
      } catch (IOException e) {
        return "a fresh reader cannot read the 4 KiB before the hsynced length " + len
            + " (getFileStatus says " + st.getLen() + "): " + e;
      }
      if (!Arrays.equals(got, last)) return "record before offset " + len + " reads back different bytes";
      if (st.getLen() < len) {
        statusLag.set(true);
        statusLagWhy.compareAndSet(null, "getFileStatus length " + st.getLen() + " < hsynced " + len
            + " (a fresh reader still read the hsynced bytes)");
      }
      return null;
    } catch (Exception e) {
      return "fresh reader failed: " + e;
    }
  }

  static boolean hsync(int nStreams) throws Exception {
    progress("hsync: %d stream(s), %d x 4 KiB records per hsync, %.0f s", nStreams, group, secs);
    statusLag.set(false);
    statusLagWhy.set(null);
    AtomicBoolean ok = new AtomicBoolean(true);
    AtomicReference<String> why = new AtomicReference<>();
    int[] repl = new int[1];
    long[] records = new long[nStreams];
    boolean[] cap = new boolean[nStreams];
    long[] endNs = new long[nStreams];
    List<Lat> lats = parallel(nStreams, (id, lat, go) -> {
      Path p = new Path(base, "journal-" + nStreams + "-" + id);
      byte[][] recs = new byte[group][];
      for (int i = 0; i < group; i++) recs[i] = record(id * 1000003L + i);
      long written = 0, n = 0;
      try (FSDataOutputStream out = fs.create(p, true, 64 * 1024, (short) 3, 256L << 20)) {
        cap[id] = out.hasCapability(StreamCapabilities.HSYNC);
        // warm-up, untimed: block allocation and the pipeline's first round trip, then a
        // second hsync and the visibility check (a fresh client costs seconds: not timed)
        for (int k = 0; k < 2; k++) {
          for (int i = 0; i < group; i++) out.write(recs[i]);
          out.hsync();
          written += (long) group * REC;
        }
        String w = visible(p, written, recs[group - 1]);
        if (w != null) {
          ok.set(false);
          why.compareAndSet(null, "stream " + id + " after the second hsync: " + w);
        }
        long deadline = go.start();
        while (System.nanoTime() < deadline) {
          long a = System.nanoTime();
          for (int i = 0; i < group; i++) out.write(recs[i]);
          out.hsync();
          lat.add(System.nanoTime() - a);
          written += (long) group * REC;
          n += group;
        }
        endNs[id] = System.nanoTime();
        w = visible(p, written, recs[group - 1]);
        if (w != null) {
          ok.set(false);
          why.compareAndSet(null, "stream " + id + " after last hsync: " + w);
        }
        records[id] = n;
      }
      repl[0] = fs.getFileStatus(p).getReplication();
    });
    double el = (Arrays.stream(endNs).max().getAsLong() - lastT0) / 1e9;
    long[] s = sorted(lats);
    long total = Arrays.stream(records).sum();
    boolean capAll = true;
    for (boolean c : cap) capAll &= c;
    if (!ok.get()) {
      System.err.println("##############################################################");
      System.err.println("# HSYNC FAILURE: data acknowledged by hsync() is not visible to a fresh reader");
      System.err.println("# " + why.get());
      System.err.println("# hasCapability(hsync)=" + capAll + "; check ozone.hbase.enhancements.allowed and");
      System.err.println("# ozone.fs.hsync.enabled on the OM and RATIS/THREE replication");
      System.err.println("##############################################################");
    }
    if (statusLag.get()) {
      progress("WARNING: %s", statusLagWhy.get());
    }
    System.out.printf("{\"probe\":\"hsync\",\"streams\":%d,\"group\":%d,\"record_kib\":4,\"records_per_s\":%.1f,"
        + "\"hsyncs_per_s\":%.1f,\"avg_ms\":%.2f,\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"hsync_visible\":%s,"
        + "\"status_len_lags\":%s,\"hsync_capability\":%s,\"replication\":%d,\"secs\":%.1f}%n",
        nStreams, group, total / el, s.length / el, avg(s) / 1e6, pct(s, 50) / 1e6, pct(s, 99) / 1e6,
        ok.get(), statusLag.get(), capAll, repl[0], el);
    System.out.flush();
    return ok.get();
  }

  // ------------------------------------------------------------------ random 4 KiB preads
  static void pread() throws Exception {
    Path p = new Path(base, "pread-file");
    long size = (long) readFileMb << 20;
    progress("pread: writing a %d MiB file (replication 3)", readFileMb);
    byte[] buf = new byte[1 << 20];
    new Random(7).nextBytes(buf);
    try (FSDataOutputStream out = fs.create(p, true, 64 * 1024, (short) 3, 256L << 20)) {
      for (long o = 0; o < size; o += buf.length) out.write(buf);
    }
    progress("pread: %d threads, each its own open handle, random aligned 4 KiB ByteBuffer preads, %.0f s"
        + " (after %.0f s untimed)", readThreads, secs, readWarmup);
    FSDataInputStream[] ins = new FSDataInputStream[readThreads];
    for (int t = 0; t < readThreads; t++) ins[t] = fs.open(p);
    long blocks = size / REC;
    long[] c0 = new long[1];
    List<Lat> lats;
    try {
      lats = parallel(readThreads, (id, lat, go) -> {
        FSDataInputStream in = ins[id];
        ByteBuffer bb = ByteBuffer.allocateDirect(REC); // libhdfs hdfsPread passes a direct buffer
        Random r = new Random(id + 99);
        in.read(0, bb); // warm-up: the handle's block location lookup and first connection
        long warm = System.nanoTime() + (long) (readWarmup * 1e9);
        while (System.nanoTime() < warm) { // untimed, like the product's warm-up pass
          bb.clear();
          in.read((long) (r.nextDouble() * blocks) * REC, bb);
        }
        long deadline = go.start();
        if (id == 0) c0[0] = cpuNs();
        while (System.nanoTime() < deadline) {
          long off = (long) (r.nextDouble() * blocks) * REC;
          bb.clear();
          long a = System.nanoTime();
          while (bb.hasRemaining()) {
            int k = in.read(off + bb.position(), bb);
            if (k < 0) throw new IOException("EOF at " + (off + bb.position()));
          }
          lat.add(System.nanoTime() - a);
        }
      });
    } finally {
      for (FSDataInputStream in : ins) in.close();
    }
    double el = (System.nanoTime() - lastT0) / 1e9;
    long cpu = cpuNs() - c0[0];
    long[] s = sorted(lats);
    System.out.printf("{\"probe\":\"pread\",\"threads\":%d,\"io_kib\":4,\"file_mib\":%d,\"iops\":%.1f,"
        + "\"avg_us\":%.0f,\"p50_us\":%.0f,\"p99_us\":%.0f,\"client_cpu_s_per_gib\":%.1f,\"secs\":%.1f}%n",
        readThreads, readFileMb, s.length / el, avg(s) / 1e3, pct(s, 50) / 1e3, pct(s, 99) / 1e3,
        cpuPerGib(cpu, (long) s.length * REC), el);
    System.out.flush();
  }

  static double cpuPerGib(long cpuNs, long bytes) {
    if (cpuNs < 0 || bytes == 0) return -1;
    return (cpuNs / 1e9) / (bytes / (double) (1L << 30));
  }

  // ------------------------------------------------------------------ whole-chunk put / get
  static void putGet(int chunkKib) throws Exception {
    int chunk = chunkKib << 10;
    progress("put: %d threads, create+write %d KiB+close, %.0f s", putThreads, chunkKib, secs);
    byte[] data = new byte[chunk];
    new Random(chunkKib).nextBytes(data);
    int[] made = new int[putThreads];
    long[] c0 = new long[1];
    List<Lat> lats = parallel(putThreads, (id, lat, go) -> {
      int i = 0;
      long deadline = go.start();
      if (id == 0) c0[0] = cpuNs();
      while (System.nanoTime() < deadline) {
        Path p = new Path(base, "chunk-" + chunkKib + "-" + id + "-" + i);
        long a = System.nanoTime();
        try (FSDataOutputStream out = fs.create(p, true, 64 * 1024, (short) 3, 256L << 20)) {
          out.write(data);
        }
        lat.add(System.nanoTime() - a);
        i++;
      }
      made[id] = i;
    });
    emitChunk("put", chunkKib, lats, (System.nanoTime() - lastT0) / 1e9, cpuNs() - c0[0], chunk);

    progress("get: %d threads, open+read %d KiB+close of the chunks just put, %.0f s", putThreads, chunkKib, secs);
    lats = parallel(putThreads, (id, lat, go) -> {
      ByteBuffer bb = ByteBuffer.allocateDirect(chunk);
      Random r = new Random(id);
      long deadline = go.start();
      if (id == 0) c0[0] = cpuNs();
      while (System.nanoTime() < deadline) {
        int owner = r.nextInt(putThreads);
        if (made[owner] == 0) owner = id;
        int i = made[owner] == 0 ? 0 : r.nextInt(made[owner]);
        Path p = new Path(base, "chunk-" + chunkKib + "-" + owner + "-" + i);
        bb.clear();
        long a = System.nanoTime();
        try (FSDataInputStream in = fs.open(p)) {
          while (bb.hasRemaining()) {
            int k = in.read(bb);
            if (k < 0) throw new IOException("short chunk " + p);
          }
        }
        lat.add(System.nanoTime() - a);
      }
    });
    emitChunk("get", chunkKib, lats, (System.nanoTime() - lastT0) / 1e9, cpuNs() - c0[0], chunk);
  }

  static void emitChunk(String what, int chunkKib, List<Lat> lats, double el, long cpu, int chunk) {
    long[] s = sorted(lats);
    long bytes = (long) s.length * chunk;
    System.out.printf("{\"probe\":\"%s\",\"chunk_kib\":%d,\"threads\":%d,\"mib_s\":%.1f,\"ops_per_s\":%.1f,"
        + "\"avg_ms\":%.1f,\"p50_ms\":%.1f,\"p99_ms\":%.1f,\"client_cpu_s_per_gib\":%.1f,\"secs\":%.1f}%n",
        what, chunkKib, putThreads, bytes / 1048576.0 / el, s.length / el, avg(s) / 1e6, pct(s, 50) / 1e6,
        pct(s, 99) / 1e6, cpuPerGib(cpu, bytes), el);
    System.out.flush();
  }
}
