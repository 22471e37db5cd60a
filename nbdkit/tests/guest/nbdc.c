/* SPDX-License-Identifier: Apache-2.0
 * nbdc: a minimal kernel NBD client for the TCG guest test (busybox has none).
 * Owns: the fixed-newstyle handshake (NBD_OPT_EXPORT_NAME) and the nbd ioctls.
 * Must never: be used outside tests (no TLS, no reconnect, one connection).
 *   nbdc HOST PORT /dev/nbdX    connect (stays in the background, NBD_DO_IT)
 *   nbdc -d /dev/nbdX           disconnect */
#include <arpa/inet.h>
#include <endian.h>
#include <fcntl.h>
#include <linux/nbd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

static void die (const char *m) { perror (m); exit (1); }
static void rd (int s, void *b, size_t n)
{
  size_t g = 0;
  while (g < n) { ssize_t r = read (s, (char *) b + g, n - g); if (r <= 0) die ("read"); g += r; }
}
static void wr (int s, const void *b, size_t n) { if (write (s, b, n) != (ssize_t) n) die ("write"); }

int main (int argc, char **argv)
{
  if (argc == 3 && strcmp (argv[1], "-d") == 0) {
    int d = open (argv[2], O_RDWR);
    if (d < 0) die ("open");
    ioctl (d, NBD_DISCONNECT);
    ioctl (d, NBD_CLEAR_SOCK);
    return 0;
  }
  if (argc != 4) { fprintf (stderr, "usage: nbdc HOST PORT DEV | nbdc -d DEV\n"); return 2; }
  int s = socket (AF_INET, SOCK_STREAM, 0), one = 1;
  struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons (atoi (argv[2])) };
  inet_pton (AF_INET, argv[1], &a.sin_addr);
  if (connect (s, (struct sockaddr *) &a, sizeof a) < 0) die ("connect");
  setsockopt (s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  char magic[16]; uint16_t hflags; uint32_t cflags = htonl (3);
  rd (s, magic, 16);
  if (memcmp (magic, "NBDMAGICIHAVEOPT", 16)) { fprintf (stderr, "not fixed newstyle\n"); return 1; }
  rd (s, &hflags, 2);
  wr (s, &cflags, 4);
  struct { uint64_t magic; uint32_t opt, len; } __attribute__ ((packed)) o =
    { htobe64 (0x49484156454F5054ULL), htonl (1) /* NBD_OPT_EXPORT_NAME */, 0 };
  wr (s, &o, sizeof o);
  uint64_t size; uint16_t tflags;
  rd (s, &size, 8); rd (s, &tflags, 2);
  size = be64toh (size); tflags = ntohs (tflags);
  if (!(ntohs (hflags) & 2)) { char z[124]; rd (s, z, 124); }
  int d = open (argv[3], O_RDWR);
  if (d < 0) die ("open dev");
  if (ioctl (d, NBD_SET_BLKSIZE, 4096UL) < 0) die ("NBD_SET_BLKSIZE");
  if (ioctl (d, NBD_SET_SIZE_BLOCKS, (unsigned long) (size / 4096)) < 0) die ("NBD_SET_SIZE_BLOCKS");
  if (ioctl (d, NBD_SET_FLAGS, (unsigned long) tflags) < 0) die ("NBD_SET_FLAGS");
  if (ioctl (d, NBD_SET_SOCK, s) < 0) die ("NBD_SET_SOCK");
  fprintf (stderr, "nbdc: %s size %llu flags 0x%x\n", argv[3], (unsigned long long) size, tflags);
  if (fork () == 0) { ioctl (d, NBD_DO_IT); ioctl (d, NBD_CLEAR_QUE); ioctl (d, NBD_CLEAR_SOCK); _exit (0); }
  return 0;
}
