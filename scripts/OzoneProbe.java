/*
 * OzoneProbe: end-to-end readiness check of the local Ozone cluster through ofs://,
 * the same client path (ozone-filesystem-hadoop3 + hadoop-common) libhdfs uses.
 *
 * Run as a single-file source program (JDK 11+), with the client config dir first on the classpath:
 *   java -cp "$CLIENT_CONF:$CLIENT_CP" scripts/OzoneProbe.java ofs://127.0.0.1:29810/ [--wait SECS]
 *
 * One round: mkdirs /probevol/probebucket, create a file (replication 3), write 1 MiB, hsync(),
 * open a second reader and check the hsynced length and content, close, read back, rename,
 * list, delete.
 * With --wait SECS it retries failed rounds until SECS have passed (1 s apart).
 * Exit 0 on success, 1 on failure (last error on stderr), 2 on bad usage.
 */
import java.net.URI;
import java.util.Arrays;
import java.util.Random;

import org.apache.hadoop.conf.Configuration;
import org.apache.hadoop.fs.FSDataInputStream;
import org.apache.hadoop.fs.FSDataOutputStream;
import org.apache.hadoop.fs.FileStatus;
import org.apache.hadoop.fs.FileSystem;
import org.apache.hadoop.fs.Path;
import org.apache.hadoop.fs.StreamCapabilities;

public class OzoneProbe {
  static final int SIZE = 1 << 20;

  public static void main(String[] args) throws Exception {
    if (args.length < 1) {
      System.err.println("usage: OzoneProbe ofs://HOST:PORT/ [--wait SECS]");
      System.exit(2);
    }
    URI uri = URI.create(args[0]);
    long waitMs = 0;
    for (int i = 1; i < args.length; i++) {
      if (args[i].equals("--wait") && i + 1 < args.length) {
        waitMs = (long) (Double.parseDouble(args[++i]) * 1000);
      } else {
        System.err.println("unknown argument: " + args[i]);
        System.exit(2);
      }
    }
    long t0 = System.nanoTime();
    long deadline = t0 + waitMs * 1_000_000L;
    int attempt = 0;
    String lastErr = null;
    while (true) {
      attempt++;
      long a0 = System.nanoTime();
      try {
        String detail = round(uri);
        System.out.printf("probe ok (attempt %d, %d ms round, %.1f s total): %s%n", attempt,
            (System.nanoTime() - a0) / 1_000_000, (System.nanoTime() - t0) / 1e9, detail);
        System.exit(0);
      } catch (LinkageError e) {
        // a missing class or jar: retrying cannot help
        System.err.println("probe FAILED (classpath problem): " + e);
        System.exit(1);
      } catch (Throwable e) {
        Throwable root = e;
        while (root.getCause() != null && root.getCause() != root) {
          root = root.getCause();
        }
        String msg = e + (root != e ? " [cause: " + root + "]" : "");
        msg = msg.replace('\n', ' ');
        if (msg.length() > 400) {
          msg = msg.substring(0, 400) + "...";
        }
        if (!msg.equals(lastErr)) {
          System.err.printf("probe attempt %d failed after %.1f s: %s%n", attempt,
              (System.nanoTime() - a0) / 1e9, msg);
          lastErr = msg;
        }
        if (System.nanoTime() + 1_000_000_000L >= deadline) {
          System.err.printf("probe FAILED after %d attempt(s), %.1f s%n", attempt,
              (System.nanoTime() - t0) / 1e9);
          System.exit(1);
        }
        Thread.sleep(1000);
      }
    }
  }

  static String round(URI uri) throws Exception {
    Configuration conf = new Configuration();
    FileSystem fs = FileSystem.get(uri, conf);
    Path dir = new Path("/probevol/probebucket");
    Path file = new Path(dir, "probe-" + ProcessHandle.current().pid() + "-" + System.nanoTime());
    byte[] data = new byte[SIZE];
    new Random(42).nextBytes(data);
    if (!fs.mkdirs(dir)) {
      throw new IllegalStateException("mkdirs " + dir + " returned false");
    }
    boolean hsyncCap;
    try (FSDataOutputStream out = fs.create(file, true, 64 * 1024, (short) 3, 256L << 20)) {
      hsyncCap = out.hasCapability(StreamCapabilities.HSYNC);
      out.write(data);
      out.hsync();
      // A second, independent reader must see the hsynced length and bytes while the writer is open.
      FileStatus st = fs.getFileStatus(file);
      if (st.getLen() != SIZE) {
        throw new IllegalStateException("after hsync, length seen by a reader is " + st.getLen()
            + ", expected " + SIZE + " (is hsync enabled on OM and client? hasCapability(hsync)="
            + hsyncCap + ")");
      }
      byte[] seen = new byte[SIZE];
      try (FSDataInputStream in = fs.open(file)) {
        in.readFully(0, seen);
      }
      if (!Arrays.equals(data, seen)) {
        throw new IllegalStateException("hsynced content read by a second reader differs");
      }
    }
    FileStatus st = fs.getFileStatus(file);
    byte[] back = new byte[SIZE];
    try (FSDataInputStream in = fs.open(file)) {
      in.readFully(0, back);
    }
    if (st.getLen() != SIZE || !Arrays.equals(data, back)) {
      throw new IllegalStateException("read back after close differs (len " + st.getLen() + ")");
    }
    Path renamed = new Path(file.toString() + ".renamed");
    if (!fs.rename(file, renamed)) {
      throw new IllegalStateException("rename " + file + " returned false");
    }
    boolean listed = false;
    for (FileStatus s : fs.listStatus(dir)) {
      listed |= s.getPath().getName().equals(renamed.getName());
    }
    if (!listed) {
      throw new IllegalStateException("listStatus " + dir + " misses " + renamed.getName());
    }
    if (!fs.delete(renamed, false)) {
      throw new IllegalStateException("delete " + renamed + " returned false");
    }
    return String.format("1 MiB written, hsynced (reader saw %d bytes), read back, renamed,"
        + " listed, deleted;"
        + " replication=%d, hsync capability=%s", SIZE, st.getReplication(), hsyncCap);
  }
}
