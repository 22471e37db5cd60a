// SPDX-License-Identifier: Apache-2.0
//! Retrying transient failures: which failures may pass, the back-off between
//! attempts, and the timer queue that brings a waiting chunk back.
//!
//! Owns: the transient/permanent split of backend errors, the back-off
//! schedule (100 ms doubling to 2 s), and `TimerQueue`, one thread per volume
//! that sleeps until the earliest due item and hands it back.
//! Must never: sleep on an I/O worker (a chunk waiting for its retry holds no
//! thread), spin (the timer thread blocks until the next due time, so an idle
//! volume wakes nobody), or decide deadlines: each request carries its own,
//! set at submit (see scheduler.rs).

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use ozbd_backend::BackendError;

use crate::error::Error;

/// First and longest pause between two attempts of a failing chunk operation.
pub(crate) const RETRY_FIRST_PAUSE: Duration = Duration::from_millis(100);
pub(crate) const RETRY_MAX_PAUSE: Duration = Duration::from_secs(2);

/// Whether a failed backend call may succeed if tried again: the backend was
/// unreachable, or an I/O error of the kinds a restarting datanode or OM causes
/// (EIO, EAGAIN, connection reset/refused, timeouts, unreachable host or net).
/// Never NotFound, Unsupported, or errors such as EACCES, ENOSPC or EDQUOT
/// that only an operator can fix: those fail at once.
pub(crate) fn is_transient(e: &BackendError) -> bool {
    match e {
        BackendError::Unavailable { .. } => true,
        BackendError::Io { errno, .. } => {
            matches!(errno, 5 | 11 | 101 | 104 | 110 | 111 | 112 | 113)
        }
        BackendError::NotFound { .. }
        | BackendError::Unsupported { .. }
        | BackendError::Fenced { .. } => false,
    }
}

/// The engine-level form: only backend failures may be transient.
pub(crate) fn is_transient_error(e: &Error) -> bool {
    matches!(e, Error::Backend(b) if is_transient(b))
}

/// The pause before the next attempt, given how many attempts failed so far.
pub(crate) fn pause_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    (RETRY_FIRST_PAUSE * (1u32 << doublings)).min(RETRY_MAX_PAUSE)
}

struct TimerState<T> {
    heap: BinaryHeap<Reverse<(Instant, u64, T)>>,
    seq: u64,
    stopped: bool,
}

/// Items due at given instants, handed out in due order by `next_due`.
pub(crate) struct TimerQueue<T: Ord> {
    state: Mutex<TimerState<T>>,
    cv: Condvar,
}

impl<T: Ord> TimerQueue<T> {
    pub(crate) fn new() -> Self {
        TimerQueue {
            state: Mutex::new(TimerState {
                heap: BinaryHeap::new(),
                seq: 0,
                stopped: false,
            }),
            cv: Condvar::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TimerState<T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Hand `item` back from `next_due` at `at` (or at once if `at` is past).
    pub(crate) fn schedule(&self, at: Instant, item: T) {
        let mut st = self.lock();
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Reverse((at, seq, item)));
        drop(st);
        self.cv.notify_one();
    }

    /// Block until an item is due and return it; None once stopped (items
    /// still queued are then dropped: stop only when nothing can be waiting).
    pub(crate) fn next_due(&self) -> Option<T> {
        let mut st = self.lock();
        loop {
            if st.stopped {
                return None;
            }
            let now = Instant::now();
            match st.heap.peek() {
                Some(Reverse((at, _, _))) if *at <= now => {
                    return st.heap.pop().map(|Reverse((_, _, item))| item);
                }
                Some(Reverse((at, _, _))) => {
                    let wait = *at - now;
                    st = self
                        .cv
                        .wait_timeout(st, wait)
                        .map(|(g, _)| g)
                        .unwrap_or_else(|e| e.into_inner().0);
                }
                None => st = self.cv.wait(st).unwrap_or_else(|e| e.into_inner()),
            }
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.lock().heap.len()
    }

    pub(crate) fn stop(&self) {
        self.lock().stopped = true;
        self.cv.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn only_failures_that_may_pass_are_transient() {
        let io = |errno| BackendError::io("put", "/v/b/c", errno, "x");
        for errno in [5, 11, 101, 104, 110, 111, 112, 113] {
            assert!(is_transient(&io(errno)), "errno {errno}");
        }
        // EPERM, EACCES, EINVAL, ENOSPC, EROFS, EDQUOT fail at once.
        for errno in [1, 13, 22, 28, 30, 122] {
            assert!(!is_transient(&io(errno)), "errno {errno}");
        }
        assert!(is_transient(&BackendError::Unavailable {
            what: "om".into(),
            msg: "down".into()
        }));
        assert!(!is_transient(&BackendError::NotFound { path: "/x".into() }));
        assert!(!is_transient(&BackendError::Unsupported {
            path: "/x".into(),
            msg: "OBS".into()
        }));
        assert!(!is_transient_error(&Error::Corrupt("x".into())));
    }

    #[test]
    fn back_off_doubles_to_its_cap() {
        assert_eq!(pause_after(1), Duration::from_millis(100));
        assert_eq!(pause_after(2), Duration::from_millis(200));
        assert_eq!(pause_after(5), Duration::from_millis(1600));
        assert_eq!(pause_after(6), RETRY_MAX_PAUSE);
        assert_eq!(pause_after(1000), RETRY_MAX_PAUSE);
    }

    #[test]
    fn timer_hands_items_back_in_due_order_and_stops() {
        let q = Arc::new(TimerQueue::new());
        let t0 = Instant::now();
        q.schedule(t0 + Duration::from_millis(80), 2u64);
        q.schedule(t0 + Duration::from_millis(20), 1u64);
        q.schedule(t0, 0u64);
        assert_eq!(q.next_due(), Some(0));
        assert_eq!(q.next_due(), Some(1));
        assert!(t0.elapsed() >= Duration::from_millis(20));
        assert_eq!(q.next_due(), Some(2));
        assert!(t0.elapsed() >= Duration::from_millis(80));
        let q2 = q.clone();
        let h = std::thread::spawn(move || q2.next_due());
        q.stop();
        assert_eq!(h.join().unwrap(), None);
    }
}
