// SPDX-License-Identifier: Apache-2.0
//! Open read handles: the additive, optional part of the backend API for
//! repeated positional reads of one file without reopening it.
//!
//! Owns: the `ReadHandle` trait (see `Backend::open_read`).
//! Must never: be used by two threads at once (a handle is `&mut` for every
//! read; the libhdfs one wraps an `hdfsFile`, whose positional read is not
//! thread-safe; it may move between threads, hence `Send`), or promise to see a later `put` of its file: a handle
//! reads the version that was current when it was opened (on Ozone it holds
//! the old key version's block list, which may fail once those blocks are
//! deleted), so callers reopen after an update.

use crate::Result;

/// A file open for positional reads, closed on drop. See `Backend::open_read`.
pub trait ReadHandle: Send {
    /// Read into `buf` from `offset` of the file as it was when opened.
    /// Returns the bytes read, short only at end of file.
    fn read_at(&mut self, offset: u64, buf: &mut [u8]) -> Result<usize>;
}
