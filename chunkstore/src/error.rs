// SPDX-License-Identifier: Apache-2.0
//! Engine errors.
//!
//! Owns: the one error type every engine API returns, with messages that say
//! what to do. Must never: lose the backend's own message or errno.

use ozbd_backend::BackendError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    NotAVolume(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    Mismatch(String),
    #[error("{0}")]
    Corrupt(String),
    #[error("{0}")]
    Timeout(String),
    #[error("the volume is closed; open it again")]
    Closed,
    /// The in-flight bound is reached: submit again after a completion.
    #[error("busy: {0}")]
    Busy(String),
    /// The volume is held by another opener (its lease is fresh or needs force).
    #[error("{0}")]
    Held(String),
    /// A change asked of a read-only open.
    #[error("{0}")]
    ReadOnly(String),
    /// A resize refused because of what lies where it would cut (data past
    /// a shrink's new end, journaled writes not yet applied there).
    #[error("{0}")]
    InUse(String),
    /// A bug caught inside the engine (a panic); the request failed, the engine goes on.
    #[error("internal error: {0}; this is a bug in bdev_ozone, please report it")]
    Internal(String),
}

impl Error {
    /// A positive POSIX errno for C callers.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Backend(b) => b.errno(),
            Error::InvalidArgument(_) => 22, // EINVAL
            Error::NotFound(_) => 2,         // ENOENT
            Error::NotAVolume(_) => 19,      // ENODEV
            Error::AlreadyExists(_) => 17,   // EEXIST
            Error::Mismatch(_) => 22,        // EINVAL
            Error::Corrupt(_) => 117,        // EUCLEAN
            Error::Timeout(_) => 110,        // ETIMEDOUT
            Error::Closed => 9,              // EBADF
            Error::Busy(_) => 11,            // EAGAIN
            Error::Held(_) => 16,            // EBUSY
            Error::ReadOnly(_) => 30,        // EROFS
            Error::InUse(_) => 16,           // EBUSY
            Error::Internal(_) => 5,         // EIO
        }
    }
}

pub type Result<T> = std::result::Result<T, Error>;
