// SPDX-License-Identifier: Apache-2.0
//! A window of requests in flight over one volume, with reusable buffers.
//!
//! Owns: keeping up to `depth` requests submitted at once and handing each
//! completed buffer back to the caller. Must never: reuse or free a buffer
//! while the engine may still touch it.

use std::sync::mpsc;

use ozbd_chunkstore::{Error, Op, Result, SgList, Volume};

pub struct Pipeline<'a> {
    vol: &'a Volume,
    bufs: Vec<Box<[u8]>>,
    /// Offset and length of the request each busy slot serves.
    meta: Vec<(Op, u64, usize)>,
    free: Vec<usize>,
    inflight: usize,
    tx: mpsc::Sender<(usize, Result<()>)>,
    rx: mpsc::Receiver<(usize, Result<()>)>,
    error: Option<Error>,
}

impl<'a> Pipeline<'a> {
    pub fn new(vol: &'a Volume, depth: usize, buf_size: usize) -> Self {
        let (tx, rx) = mpsc::channel();
        Pipeline {
            vol,
            bufs: (0..depth)
                .map(|_| vec![0u8; buf_size].into_boxed_slice())
                .collect(),
            meta: vec![(Op::Flush, 0, 0); depth],
            free: (0..depth).rev().collect(),
            inflight: 0,
            tx,
            rx,
            error: None,
        }
    }

    /// Wait for one completion; reads are handed to `on_read(data, offset)`.
    fn reap(&mut self, on_read: &mut impl FnMut(&[u8], u64) -> Result<()>) {
        let Ok((slot, r)) = self.rx.recv() else {
            return;
        };
        self.inflight -= 1;
        let (op, off, len) = self.meta[slot];
        let r = r.and_then(|()| {
            if op == Op::Read {
                on_read(&self.bufs[slot][..len], off)
            } else {
                Ok(())
            }
        });
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
        self.free.push(slot);
    }

    /// A free slot, waiting for a completion if needed. Fails once any request failed.
    pub fn slot(&mut self, mut on_read: impl FnMut(&[u8], u64) -> Result<()>) -> Result<usize> {
        while self.free.is_empty() {
            self.reap(&mut on_read);
        }
        if let Some(e) = self.error.take() {
            let _ = self.drain(on_read);
            return Err(e);
        }
        self.free.pop().ok_or(Error::Closed)
    }

    pub fn buf(&mut self, slot: usize) -> &mut [u8] {
        &mut self.bufs[slot]
    }

    pub fn submit(&mut self, slot: usize, op: Op, off: u64, len: usize) {
        self.meta[slot] = (op, off, len);
        let b = &mut self.bufs[slot][..len];
        // SAFETY: the slot's buffer is not touched again until its completion is reaped.
        let sg = unsafe { SgList::from_slice(b) };
        let tx = self.tx.clone();
        self.inflight += 1;
        // SAFETY: as above; `drain` (also run on drop) waits for every request.
        unsafe {
            self.vol.submit(
                op,
                off,
                len as u64,
                sg,
                Box::new(move |r| {
                    let _ = tx.send((slot, r));
                }),
            )
        };
    }

    /// Wait for everything in flight; the first error, if any.
    pub fn drain(&mut self, mut on_read: impl FnMut(&[u8], u64) -> Result<()>) -> Result<()> {
        while self.inflight > 0 {
            self.reap(&mut on_read);
        }
        match self.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

impl Drop for Pipeline<'_> {
    fn drop(&mut self) {
        while self.inflight > 0 {
            if self.rx.recv().is_err() {
                break;
            }
            self.inflight -= 1;
        }
    }
}
