// SPDX-License-Identifier: Apache-2.0
//! Bucket layout: JNI calls on the Ozone client the ofs `FileSystem` already has.
//!
//! Owns: asking the OM for the layout of a bucket (FILE_SYSTEM_OPTIMIZED,
//! LEGACY, OBJECT_STORE), following bucket links to their source.
//! Must never: open a new Ozone client or connection; report a layout it could
//! not read (an unexpected class or failed call means None, "unknown").
//!
//! fs.getAdapter()                  BasicRootedOzoneFileSystem -> OzoneClientAdapter
//!   .getObjectStore()              BasicRootedOzoneClientAdapterImpl -> ObjectStore
//!   .getClientProxy()              -> ClientProtocol (the RpcClient)
//!   .getBucketDetails(vol, bucket) -> OzoneBucket: one OM round trip
//!   .getBucketLayout().name()      "FILE_SYSTEM_OPTIMIZED", "LEGACY", "OBJECT_STORE"
//!
//! No new client, no new connection. A link bucket is followed to its source (a
//! few hops at most; one more round trip per link). Ozone 2.2 already reports
//! the source's layout for a link, but following it also makes a dangling link
//! NotFound, as ofs sees it. Methods are looked up on the objects' own classes,
//! so an unexpected class only makes the lookup fail (NoSuchMethodError,
//! cleared): the layout is then unknown (None). All JNI calls run inside one
//! local frame (every local reference goes at its end), and each is followed by
//! an exception check that clears what it finds. The thread's JNIEnv comes from
//! libhdfs's `getJNIEnv` (exported by the static libhdfs that hdfs-sys builds).

use jni_sys as jni;

use super::jni::{JavaError, Jni};
use super::LibhdfsBackend;
use crate::{BackendError, Result};

/// How many link buckets to follow to the real one.
const MAX_LINK_HOPS: usize = 8;

impl Jni {
    /// The layout name of `volume/bucket`, through the ofs FileSystem `fs`.
    unsafe fn bucket_layout(
        &self,
        fs: jni::jobject,
        volume: &str,
        bucket: &str,
    ) -> std::result::Result<String, JavaError> {
        let adapter = self.call(
            fs,
            c"getAdapter",
            c"()Lorg/apache/hadoop/fs/ozone/OzoneClientAdapter;",
            &[],
        )?;
        let store = self.call(
            adapter,
            c"getObjectStore",
            c"()Lorg/apache/hadoop/ozone/client/ObjectStore;",
            &[],
        )?;
        let proxy = self.call(
            store,
            c"getClientProxy",
            c"()Lorg/apache/hadoop/ozone/client/protocol/ClientProtocol;",
            &[],
        )?;
        let (mut vol, mut bkt) = (volume.to_string(), bucket.to_string());
        for _ in 0..=MAX_LINK_HOPS {
            let args = [
                jni::jvalue {
                    l: self.new_string(&vol)?,
                },
                jni::jvalue {
                    l: self.new_string(&bkt)?,
                },
            ];
            let details = self.call(
                proxy,
                c"getBucketDetails",
                c"(Ljava/lang/String;Ljava/lang/String;)Lorg/apache/hadoop/ozone/client/OzoneBucket;",
                &args,
            )?;
            let src_vol = self.call_string(details, c"getSourceVolume");
            let src_bkt = self.call_string(details, c"getSourceBucket");
            if let (Some(v), Some(b)) = (src_vol, src_bkt) {
                (vol, bkt) = (v, b);
                continue;
            }
            let layout = self.call(
                details,
                c"getBucketLayout",
                c"()Lorg/apache/hadoop/ozone/om/helpers/BucketLayout;",
                &[],
            )?;
            return self
                .call_string(layout, c"name")
                .ok_or_else(|| JavaError::msg("BucketLayout.name() failed"));
        }
        Err(JavaError::msg(format!(
            "more than {MAX_LINK_HOPS} bucket links from /{volume}/{bucket}"
        )))
    }
}

impl LibhdfsBackend {
    pub(super) fn ofs_bucket_layout(&self, volume: &str, bucket: &str) -> Result<Option<String>> {
        let path = format!("/{volume}/{bucket}");
        for name in [volume, bucket] {
            if name.is_empty() || name.contains('/') || name.contains('\0') {
                return Err(BackendError::io(
                    "bucket layout",
                    &path,
                    libc::EINVAL,
                    "volume and bucket must be single, non-empty path components",
                ));
            }
        }
        let jni = match Jni::this_thread() {
            Ok(j) => j,
            Err(e) => {
                log::warn!("{}: bucket layout of {path}: {e}", self.uri);
                return Ok(None);
            }
        };
        // SAFETY: `env` is this thread's; `fs` is a global reference to the live
        // FileSystem (see the Send/Sync note); all local references die with the
        // frame and every exception is cleared.
        let res = unsafe {
            jni.in_local_frame(|j| j.bucket_layout(self.fs.cast::<jni::_jobject>(), volume, bucket))
        };
        match res {
            Ok(layout) => Ok(Some(layout)),
            Err(e) if e.is_not_found() => Err(BackendError::NotFound { path }),
            Err(e) => {
                log::warn!("{}: cannot read the layout of bucket {path}: {e}", self.uri);
                Ok(None)
            }
        }
    }
}
