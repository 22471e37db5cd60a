// SPDX-License-Identifier: Apache-2.0
//! Scatter-gather lists over caller-owned memory.
//!
//! Owns: copying between a request's buffers (an iovec array owned by the caller
//! of the C ABI, or a Rust slice) and the engine's chunk buffers.
//! Must never: outlive the request it belongs to; the caller guarantees the
//! memory stays valid until the request's completion runs, and nothing else.

#[derive(Debug, Clone, Copy)]
struct Seg {
    ptr: *mut u8,
    len: usize,
}

/// A list of memory segments making up one request's data, in order.
#[derive(Debug)]
pub struct SgList {
    segs: Vec<Seg>,
    total: usize,
}

// SAFETY: an SgList only carries pointers the submitter promised stay valid and
// unaliased by the submitter until completion; the engine touches each byte
// range from one worker at a time (pieces of one request never overlap).
unsafe impl Send for SgList {}
unsafe impl Sync for SgList {}

impl SgList {
    /// An empty list (for requests without data: unmap, write-zeroes, flush).
    pub fn empty() -> Self {
        SgList {
            segs: Vec::new(),
            total: 0,
        }
    }

    /// # Safety
    /// Every (ptr, len) must be valid for reads and writes of `len` bytes until
    /// the request using this list completes, and must not overlap each other.
    pub unsafe fn from_raw(segs: impl IntoIterator<Item = (*mut u8, usize)>) -> Self {
        let segs: Vec<Seg> = segs
            .into_iter()
            .filter(|(_, len)| *len > 0)
            .map(|(ptr, len)| Seg { ptr, len })
            .collect();
        let total = segs.iter().map(|s| s.len).sum();
        SgList { segs, total }
    }

    /// # Safety
    /// `buf` must stay valid until the request completes.
    pub unsafe fn from_slice(buf: &mut [u8]) -> Self {
        SgList::from_raw([(buf.as_mut_ptr(), buf.len())])
    }

    /// # Safety
    /// `buf` must stay valid until the request completes; the engine only reads it
    /// (the list must be used for a write).
    pub unsafe fn from_const_slice(buf: &[u8]) -> Self {
        SgList::from_raw([(buf.as_ptr() as *mut u8, buf.len())])
    }

    /// A second list over the same memory, for a layer that must write into
    /// the caller's buffer after a lower layer has filled it.
    ///
    /// # Safety
    /// The caller must not let both lists touch the same bytes at the same
    /// time, and must drop the alias before the request's completion returns.
    pub(crate) unsafe fn alias(&self) -> SgList {
        SgList {
            segs: self.segs.clone(),
            total: self.total,
        }
    }

    /// The (ptr, len) segments, to build a list over several requests'
    /// buffers (`from_raw`).
    pub(crate) fn raw_segments(&self) -> impl Iterator<Item = (*mut u8, usize)> + '_ {
        self.segs.iter().map(|s| (s.ptr, s.len))
    }

    pub fn len(&self) -> usize {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Visit the segments covering [offset, offset + len) as (segment part, position in range).
    fn for_range(&self, offset: usize, len: usize, mut f: impl FnMut(*mut u8, usize, usize)) {
        let mut skip = offset;
        let mut done = 0;
        for s in &self.segs {
            if done == len {
                break;
            }
            if skip >= s.len {
                skip -= s.len;
                continue;
            }
            let n = (s.len - skip).min(len - done);
            // SAFETY: skip < s.len and skip + n <= s.len, within the segment.
            f(unsafe { s.ptr.add(skip) }, n, done);
            done += n;
            skip = 0;
        }
        debug_assert_eq!(done, len, "range beyond the scatter-gather list");
    }

    /// Copy list bytes [offset, offset + dst.len()) into `dst`.
    pub fn copy_out(&self, offset: usize, dst: &mut [u8]) {
        self.for_range(offset, dst.len(), |p, n, at| {
            // SAFETY: p is valid for n bytes (for_range) and dst has n bytes at `at`.
            unsafe { std::ptr::copy_nonoverlapping(p, dst[at..].as_mut_ptr(), n) }
        });
    }

    /// Copy `src` into list bytes [offset, offset + src.len()).
    pub fn copy_in(&self, offset: usize, src: &[u8]) {
        self.for_range(offset, src.len(), |p, n, at| {
            // SAFETY: as in copy_out, reversed.
            unsafe { std::ptr::copy_nonoverlapping(src[at..].as_ptr(), p, n) }
        });
    }

    /// Run `f` on list bytes [offset, offset + len) as one slice when they lie
    /// in one segment (so a read can land in the caller's buffer without a
    /// bounce copy); None when they span segments.
    pub fn with_contiguous<R>(
        &self,
        offset: usize,
        len: usize,
        f: impl FnOnce(&mut [u8]) -> R,
    ) -> Option<R> {
        let mut skip = offset;
        for s in &self.segs {
            if skip >= s.len {
                skip -= s.len;
                continue;
            }
            if s.len - skip < len {
                return None;
            }
            // SAFETY: [skip, skip + len) lies in the segment, which the
            // submitter keeps valid and unaliased until completion; pieces of
            // one request never overlap, so no other slice of it exists now.
            return Some(f(unsafe {
                std::slice::from_raw_parts_mut(s.ptr.add(skip), len)
            }));
        }
        None
    }

    /// Zero list bytes [offset, offset + len).
    pub fn zero(&self, offset: usize, len: usize) {
        self.for_range(offset, len, |p, n, _| {
            // SAFETY: p is valid for n bytes.
            unsafe { std::ptr::write_bytes(p, 0, n) }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_across_segments() {
        let mut a = [0u8; 3];
        let mut b = [0u8; 5];
        let sg = unsafe { SgList::from_raw([(a.as_mut_ptr(), 3), (b.as_mut_ptr(), 5)]) };
        assert_eq!(sg.len(), 8);
        sg.copy_in(1, b"abcdef");
        let mut out = [0u8; 8];
        sg.copy_out(0, &mut out);
        assert_eq!(&out, b"\0abcdef\0");
        sg.zero(2, 3);
        sg.copy_out(0, &mut out);
        assert_eq!(&out, b"\0a\0\0\0ef\0");
        drop(sg);
        assert_eq!(&a, b"\0a\0");
    }

    #[test]
    fn contiguous_only_within_one_segment() {
        let mut a = [0u8; 4];
        let mut b = [0u8; 4];
        let sg = unsafe { SgList::from_raw([(a.as_mut_ptr(), 4), (b.as_mut_ptr(), 4)]) };
        assert_eq!(sg.with_contiguous(4, 3, |s| s.fill(7)), Some(()));
        assert_eq!(sg.with_contiguous(3, 2, |_| ()), None);
        assert_eq!(sg.with_contiguous(8, 1, |_| ()), None);
        drop(sg);
        assert_eq!(b, [7, 7, 7, 0]);
    }
}
