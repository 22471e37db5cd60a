// SPDX-License-Identifier: Apache-2.0
//! The bdev_ozone engine: a block volume stored as fixed-size chunk files.
//!
//! Owns: the volume format, mapping block ranges to chunks, read-modify-write,
//! ordered parallel I/O over a backend, and connecting to a backend from a URI.
//! Must never: call into a front end (SPDK, nbdkit) or assume which thread it is
//! called from; every blocking call runs on the engine's own workers.
//! See docs/design.md for the update protocol and its crash-safety argument.

mod cache;
mod chunk_io;
pub mod connect;
pub mod defaults;
pub mod error;
pub mod fsck;
#[doc(hidden)]
pub mod fuzzing;
mod handles;
pub mod journal;
pub mod lease;
mod readahead;
mod retry;
mod scheduler;
pub mod sglist;
pub mod stats;
mod sum_cache;
mod sums;
pub mod superblock;
pub mod uri;
mod versions;
pub mod volume;

pub use chunk_io::Op;
pub use connect::{connect, ConnectOptions};
pub use defaults::{DEFAULT_RETRY, DEFAULT_WORKERS};
pub use error::{Error, Result};
pub use journal::JournalMode;
pub use scheduler::{Completion, Rejected};
pub use sglist::SgList;
pub use stats::{CacheStats, JournalStats, Stats};
pub use superblock::Superblock;
pub use uri::VolumeUri;
pub use volume::{ClientSettingView, CreateOptions, OpenOptions, Settings, Volume};
