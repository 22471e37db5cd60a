#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# s3backer.sh: the peer for bench/run. s3backer (Debian package, FUSE mode) over the Ozone S3
# gateway, 4 MiB blocks, fio on its `file` with bench/run's workloads, in one mode:
#   writeback  s3backer's defaults: write-back block cache, acknowledged BEFORE the upload
#              (NOT durable when acknowledged)
#   durable    --blockCacheWriteDelay=0 --blockCacheSync: durable when acknowledged
#   nocache    --blockCacheSize=0: no block cache, so every read goes to S3: the peer of the
#              module's cold rows (cache_mb=0); meant for the read workloads (S3B_WORKLOADS)
#   smallcache durable, with a block cache of S3B_CACHE_BLOCKS blocks (default 16: 64 MiB), less
#              than the volume: the peer of the module with a cache_mb smaller than the volume
#              (a volume larger than the local cache, as most are); meant for the read workloads
# Pure read workloads start on a fresh mount (empty block cache, like the module's cache_mb=0);
# every block is written once before the workloads (s3backer reads absent blocks as zeros locally).
# One JSON object per workload on stdout; progress on stderr.
# Owns:  its work dir ($S3B_WORK: mount point, fio files, s3backer log), the s3backer process it
#        starts in the foreground (known by its pid), the FUSE mount it makes (unmounted at exit,
#        also on failure or Ctrl-C), one S3 bucket on the gateway (its blocks are left; bucket
#        names carry the pid and time, they land in Ozone's s3v volume).
# Never: starts or stops the gateway or the cluster, unmounts anything it did not mount, kills a
#        process it did not start, installs anything except `apt-get install s3backer` when the
#        binary is missing (S3B_NO_INSTALL=1 turns that off).
# Usage: bench/s3backer.sh writeback|durable|nocache|smallcache
# Env:   OZONE_S3_ENDPOINT (scripts/ozone-local env prints it while s3g runs), S3B_SIZE_MB (volume
#        size, default 256), S3B_TIME (s per workload, default 20), S3B_WORK (default a mktemp dir),
#        S3B_WORKLOADS ("name rw bs qd [rwmixread]" lines, default: bench/run's list),
#        S3B_CPU_PIDS (extra pids whose CPU counts, e.g. the gateway JVM), S3B_CACHE_BLOCKS
#        (smallcache's block cache, in 4 MiB blocks, default 16).
set -euo pipefail
mode=${1:?usage: $0 writeback|durable|nocache|smallcache}
case $mode in writeback | durable | nocache | smallcache) ;; *) echo "usage: $0 writeback|durable|nocache|smallcache" >&2; exit 2 ;; esac
cache_blocks=${S3B_CACHE_BLOCKS:-16}
[[ $cache_blocks =~ ^[1-9][0-9]*$ ]] || { echo "S3B_CACHE_BLOCKS must be a positive number of 4 MiB blocks, not '$cache_blocks'" >&2; exit 2; }
ep=${OZONE_S3_ENDPOINT:?no OZONE_S3_ENDPOINT: start the gateway (scripts/ozone-local s3g start) and eval its env}
size_mb=${S3B_SIZE_MB:-256}
t=${S3B_TIME:-20}
own_work=0
if [[ -z ${S3B_WORK:-} ]]; then S3B_WORK=$(mktemp -d /tmp/bench-s3b.XXXXXX); own_work=1; fi
mkdir -p "$S3B_WORK"
mnt=$S3B_WORK/mnt-$mode
log() { echo "[s3backer $(date +%T)] $*" >&2; }
default_workloads="write-1m write 1048576 8
read-1m read 1048576 8
randread-qd32 randread 4096 32
randwrite-qd1 randwrite 4096 1
randwrite-qd32 randwrite 4096 32
randrw-qd32 randrw 4096 32 70"
workloads=${S3B_WORKLOADS:-$default_workloads}

if ! command -v s3backer > /dev/null; then
  [[ ${S3B_NO_INSTALL:-0} == 1 ]] && { echo "s3backer not installed" >&2; exit 1; }
  log "installing s3backer (apt-get)"
  apt-get install -y s3backer > "$S3B_WORK/apt.log" 2>&1 ||
    { apt-get update > /dev/null 2>&1 && apt-get install -y s3backer >> "$S3B_WORK/apt.log" 2>&1; } ||
    { tail "$S3B_WORK/apt.log" >&2; exit 1; }
fi
command -v fio > /dev/null || { echo "fio not installed (apt-get install fio)" >&2; exit 1; }
[[ -c /dev/fuse ]] || { echo "no /dev/fuse" >&2; exit 1; }

# ---- the bucket (SigV4 signed; any key works with security off) -------------------------
bucket=s3b-$mode-$$-$(date +%H%M%S)
code=$(curl -s -o "$S3B_WORK/mkbucket.out" -w '%{http_code}' -m 60 --aws-sigv4 "aws:amz:us-east-1:s3" \
  --user x:y -H 'x-amz-content-sha256: UNSIGNED-PAYLOAD' -X PUT "${ep%/}/$bucket")
[[ $code == 200 ]] || { echo "cannot create bucket $bucket at $ep: HTTP $code $(cat "$S3B_WORK/mkbucket.out")" >&2; exit 1; }

# ---- mount ---------------------------------------------------------------------------------
flags=(--blockSize=4M "--size=${size_mb}M" "--baseURL=${ep%/}/" --accessId=x --accessKey=y
  --listBlocks --force --prefix=vol/)
base_flags=("${flags[@]}")
[[ $mode == durable || $mode == smallcache ]] && flags+=(--blockCacheWriteDelay=0 --blockCacheSync)
[[ $mode == nocache ]] && flags+=(--blockCacheSize=0)
[[ $mode == smallcache ]] && flags+=("--blockCacheSize=$cache_blocks")
mkdir -p "$mnt"
s3b_pid=""
unmount_s3b() { # unmount ours and wait for our s3backer to finish flushing and exit
  if [[ -n $s3b_pid ]] && kill -0 "$s3b_pid" 2> /dev/null; then
    if mountpoint -q "$mnt"; then
      log "unmounting $mnt"
      fusermount3 -u "$mnt" 2> /dev/null || umount "$mnt" 2> /dev/null || true
    fi
    # s3backer keeps flushing after the unmount returns: wait for it (bounded), then TERM
    local i
    for ((i = 0; i < 240; i++)); do kill -0 "$s3b_pid" 2> /dev/null || break; sleep 0.5; done
    if kill -0 "$s3b_pid" 2> /dev/null; then
      log "s3backer $s3b_pid still running after unmount; SIGTERM"
      kill -TERM "$s3b_pid" 2> /dev/null || true
      sleep 2
    fi
  fi
  s3b_pid=""
}
cleanup() {
  unmount_s3b
  if mountpoint -q "$mnt" 2> /dev/null; then
    log "WARNING: $mnt still mounted; lazy unmount"
    fusermount3 -uz "$mnt" 2> /dev/null || umount -l "$mnt" 2> /dev/null || true
  fi
  rmdir "$mnt" 2> /dev/null || true
  ((own_work)) && rm -rf "$S3B_WORK"
  return 0
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mount_s3b() { # mount (s3backer in the foreground, our child) and wait for its `file`
  log "$mode: mounting $ep$bucket on $mnt (${size_mb} MiB, 4 MiB blocks, $mode)"
  s3backer -f "${flags[@]}" "$bucket" "$mnt" >> "$S3B_WORK/s3backer-$mode.log" 2>&1 &
  s3b_pid=$!
  local i
  for ((i = 0; i < 120; i++)); do
    [[ -e $mnt/file ]] && mountpoint -q "$mnt" && break
    kill -0 "$s3b_pid" 2> /dev/null || { cat "$S3B_WORK/s3backer-$mode.log" >&2; echo "s3backer exited" >&2; exit 1; }
    sleep 0.5
  done
  [[ -e $mnt/file ]] || { cat "$S3B_WORK/s3backer-$mode.log" >&2; echo "s3backer did not mount" >&2; exit 1; }
}
# Every block written once first, like the module's volumes before its reads: s3backer answers
# reads of blocks that do not exist with zeros without asking S3, which would flatter its reads.
# A write-back mount (fast), 4 MiB direct writes, flushed by the unmount; not reported.
mode_flags=("${flags[@]}")
flags=("${base_flags[@]}")
log "$mode: filling all ${size_mb} MiB once (write-back mount, dd 4 MiB blocks; not reported)"
mount_s3b
dd if=/dev/urandom of="$mnt/file" bs=4M count=$((size_mb / 4)) oflag=direct conv=notrunc status=none ||
  { echo "fill of $mnt/file failed" >&2; exit 1; }
unmount_s3b
flags=("${mode_flags[@]}")
mount_s3b

cpu_ticks() { # sum of utime+stime of the given pids (gone pids count 0)
  local p s=0
  for p in "$@"; do
    [[ -r /proc/$p/stat ]] && s=$((s + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "$s"
}
hz=$(getconf CLK_TCK)

# ---- fio -----------------------------------------------------------------------------------
# psync with N jobs (libaio is effectively synchronous on FUSE); direct=1 works there.
while read -r name rw bs qd mix; do
  [[ -n $name ]] || continue
  jobargs=(--name="$name" --filename="$mnt/file" --rw="$rw" --bs="$bs" --direct=1 --ioengine=psync
    --numjobs="$qd" --group_reporting=1 --time_based=1 --runtime="$t"
    --randrepeat=0 --refill_buffers=1 --output-format=json)
  [[ -n ${mix:-} ]] && jobargs+=(--rwmixread="$mix")
  if [[ $rw == read || $rw == write ]]; then # sequential: each job its own slice
    jobargs+=(--size=$((size_mb / qd))M --offset_increment=$((size_mb / qd))M)
  else
    jobargs+=(--size="${size_mb}M")
  fi
  # pure reads start with an empty block cache (a fresh mount), like the module's cache_mb=0:
  # otherwise they would be served from what the writes before them left in s3backer's cache
  if [[ $rw == read || $rw == randread ]]; then
    log "$mode: remounting for an empty block cache before $name"
    unmount_s3b
    mount_s3b
  fi
  # shellcheck disable=SC2206
  cpu_pids=($s3b_pid ${S3B_CPU_PIDS:-})
  log "$mode: fio $name ($rw bs=$bs jobs=$qd${mix:+ rwmixread=$mix}, ${t}s)"
  c0=$(cpu_ticks "${cpu_pids[@]}")
  fio "${jobargs[@]}" > "$S3B_WORK/fio-$mode-$name.json" 2> "$S3B_WORK/fio-$mode-$name.err" ||
    { cat "$S3B_WORK/fio-$mode-$name.err" >&2; echo "{\"peer\":\"s3backer\",\"mode\":\"$mode\",\"workload\":\"$name\",\"error\":\"fio failed\"}"; continue; }
  c1=$(cpu_ticks "${cpu_pids[@]}")
  jq -c --arg mode "$mode" --arg name "$name" --argjson cpu "$(awk -v a="$c0" -v b="$c1" -v hz="$hz" 'BEGIN {print (b - a) / hz}')" '
    .jobs[0] as $j
    | ($j.read.io_bytes + $j.write.io_bytes) as $bytes
    | ($j.read.total_ios + $j.write.total_ios) as $ios
    | {peer: "s3backer", mode: $mode, workload: $name,
       iops: ($j.read.iops + $j.write.iops),
       mib_s: (($j.read.bw_bytes + $j.write.bw_bytes) / 1048576),
       avg_us: (if $ios > 0 then (($j.read.clat_ns.mean * $j.read.total_ios) + ($j.write.clat_ns.mean * $j.write.total_ios)) / $ios / 1000 else 0 end),
       p99_us: ([($j.read.clat_ns.percentile["99.000000"] // 0), ($j.write.clat_ns.percentile["99.000000"] // 0)] | max / 1000),
       bytes: $bytes, cpu_s: $cpu,
       cpu_s_per_gib: (if $bytes > 0 then $cpu / ($bytes / 1073741824) else null end),
       errors: ($j.error)}' "$S3B_WORK/fio-$mode-$name.json"
done <<< "$workloads"
log "$mode: done"
