#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Optional: the Linux kernel NBD client for real, in a qemu TCG guest (Debian
# kernel + busybox + a tiny static ioctl client, nbdc.c), against nbdkit-ozbd-plugin
# on 127.0.0.1 (the guest reaches it through qemu's user-mode network at 10.0.2.2).
# In the guest: mkfs.ext4, mount, write files, umount, e2fsck -fn. On the host
# afterwards: nbdcopy the volume out, e2fsck -fn it, and compare the files'
# checksums with debugfs.
#
# Owns: one fresh volume under $OZBD_NBD_TEST_BASE, a temp dir, the nbdkit and
#   qemu processes it starts. Never touches anything else.
# Needs: qemu-system-x86, busybox-static, e2fsprogs, a Debian linux-image .deb
#   (OZBD_GUEST_KERNEL_DEB=path, else `apt-get download linux-image-amd64`'s target).
set -uo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
NBDDIR=$(dirname "$(dirname "$HERE")")
ROOT=$(dirname "$NBDDIR")
PLUGIN=${OZBD_NBD_PLUGIN:-$NBDDIR/nbdkit-ozbd-plugin.so}
[[ -n "${OZONE_OM_ADDRESS:-}" ]] || { echo "SKIPPED: no OZONE_OM_ADDRESS"; exit 0; }
for t in qemu-system-x86_64 busybox mke2fs e2fsck debugfs gcc nbdkit nbdcopy; do
  command -v $t >/dev/null || { echo "SKIPPED: $t missing"; exit 0; }
done

PASSED=0 FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "PASS: $*"; }
fail() { FAILED=$((FAILED + 1)); echo "FAIL: $*"; }

WORK=$(mktemp -d /tmp/ozbd-guest.XXXXXX); cd "$WORK" || exit 1
URI=${OZBD_NBD_TEST_BASE:-ofs://$OZONE_OM_ADDRESS/nbdtest/bkt}/guest-$(date +%s)-$$
PORT=${OZBD_GUEST_PORT:-$((20000 + $$ % 10000))}
cleanup() {
  [[ -s nbdkit.pid ]] && kill "$(cat nbdkit.pid)" 2>/dev/null && sleep 3
  "$ROOT/target/release/ozbd" delete "$URI" >/dev/null 2>&1
  [[ "${OZBD_NBD_KEEP:-0}" == 1 ]] || rm -rf "$WORK"
}
trap cleanup EXIT

# ---- kernel and initramfs
DEB=${OZBD_GUEST_KERNEL_DEB:-}
if [[ -z $DEB ]]; then
  KPKG=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/{print $2; exit}')
  apt-get download "$KPKG" >/dev/null 2>&1 || { echo "SKIPPED: cannot download $KPKG"; exit 0; }
  DEB=$(ls "$WORK"/linux-image-*.deb)
fi
dpkg-deb -x "$DEB" kroot
KVER=$(ls kroot/lib/modules)
MODS="crc16 crc32c_generic mbcache jbd2 ext4 virtio_ring virtio virtio_pci_legacy_dev
      virtio_pci_modern_dev virtio_pci failover net_failover virtio_net nbd"
mkdir -p ir/{bin,sbin,lib/modules,lib64,proc,sys,dev,mnt,tmp,usr/lib/x86_64-linux-gnu,lib/x86_64-linux-gnu}
cp "$(command -v busybox)" ir/bin/busybox
gcc -O2 -static -o ir/bin/nbdc "$HERE/nbdc.c" || exit 1
for m in $MODS; do cp "$(find kroot/lib/modules -name "$m.ko" | head -1)" ir/lib/modules/; done
for b in mke2fs e2fsck; do
  cp "$(command -v $b)" ir/sbin/
  for l in $(ldd "$(command -v $b)" | awk '/=>/{print $3} /ld-linux/{print $1}'); do cp -L "$l" "ir$l" 2>/dev/null || { mkdir -p "ir$(dirname "$l")"; cp -L "$l" "ir$l"; }; done
done
cat > ir/init <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev
for m in MODS; do insmod /lib/modules/$m.ko || echo "GUEST: insmod $m failed"; done
ip link set lo up; ip link set eth0 up; ip addr add 10.0.2.15/24 dev eth0
r() { if "$@" > /tmp/out 2>&1; then echo "GUEST: PASS: $*"; else echo "GUEST: FAIL: $*"; cat /tmp/out; fi; }
r nbdc 10.0.2.2 PORT /dev/nbd0
sleep 1
echo "GUEST: nbd0 size $(cat /sys/block/nbd0/size) sectors, lbs $(cat /sys/block/nbd0/queue/logical_block_size), discard $(cat /sys/block/nbd0/queue/discard_max_bytes)"
r /sbin/mke2fs -F -q -t ext4 /dev/nbd0
r mount -t ext4 /dev/nbd0 /mnt
mkdir -p /mnt/data
i=0; while [ $i -lt 8 ]; do dd if=/dev/urandom of=/mnt/data/f$i bs=64k count=$((i * 16 + 1)) 2>/dev/null; i=$((i + 1)); done
r cp -a /bin /mnt/bin-copy
(cd /mnt/data && md5sum f*) | sed 's/^/GUEST: MD5 /'
r sync
r umount /mnt
r /sbin/e2fsck -fn /dev/nbd0
r nbdc -d /dev/nbd0
echo "GUEST: DONE"
poweroff -f
INIT
sed -i "s/MODS/$(echo $MODS)/; s/PORT/$PORT/" ir/init
chmod +x ir/init
(cd ir && find . | busybox cpio -o -H newc 2>/dev/null | gzip -1) > initrd.gz

# ---- serve and boot
nbdkit -i 127.0.0.1 -p "$PORT" -P nbdkit.pid --log=stderr "$PLUGIN" uri="$URI" size=256M chunk_size=1M 2>nbdkit.log
for i in $(seq 120); do nbdinfo --size "nbd://127.0.0.1:$PORT" >/dev/null 2>&1 && break; sleep 0.5; done
t0=$(date +%s)
timeout 900 qemu-system-x86_64 -accel tcg -m 512 -nographic -no-reboot -kernel kroot/boot/vmlinuz-$KVER \
  -initrd initrd.gz -append "console=ttyS0 quiet panic=-1" \
  -netdev user,id=n0 -device virtio-net-pci,netdev=n0 >guest.log 2>&1
echo "# guest ran $(( $(date +%s) - t0 ))s"
grep "^GUEST:" guest.log | tr -d '\r'
grep -q "GUEST: DONE" guest.log && pass "guest booted and finished" || { fail "guest did not finish"; tail -30 guest.log; }
for step in "nbdc 10.0.2.2" "/sbin/mke2fs" "mount -t ext4" "umount" "/sbin/e2fsck -fn" "nbdc -d"; do
  grep -q "GUEST: PASS: $step" guest.log && pass "guest: $step" || fail "guest: $step"
done
# ---- host-side check of what the kernel wrote
nbdcopy "nbd://127.0.0.1:$PORT" disk.img
e2fsck -fn disk.img >fsck.out 2>&1 && pass "host: e2fsck -fn of the volume copied out is clean" || { fail "host: e2fsck"; tail fsck.out; }
ok=1
while read -r _ _ sum name; do
  debugfs -R "dump /data/$name $name" disk.img >/dev/null 2>&1
  [[ "$(md5sum < "$name" | cut -d' ' -f1)" == "$sum" ]] || ok=0
done < <(grep "^GUEST: MD5" guest.log | tr -d '\r')
[[ $ok == 1 && -n "$(grep '^GUEST: MD5' guest.log)" ]] && pass "host: files written by the guest have the same md5 on the volume" || fail "host: file md5"
echo "$PASSED passed, $FAILED failed"
[[ $FAILED -eq 0 ]]
