// SPDX-License-Identifier: Apache-2.0
//! Log lines: one line per call, to stderr, prefixed with a UTC timestamp.
//!
//! Owns: the line format (`2026-05-01T12:00:00.123Z ozbd-gateway: ...`).
//! Must never: be handed credentials, Authorization headers or request
//! params (callers log method names, statuses and sizes only); buffer lines
//! (each line is written whole under stderr's lock, so concurrent workers'
//! lines never interleave).

use std::fmt;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Write one log line to stderr. Errors writing stderr are ignored: a log
/// line is never worth failing a request for.
pub fn line(args: fmt::Arguments<'_>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let stamp = utc_stamp(now.as_secs(), now.subsec_millis());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{stamp} ozbd-gateway: {args}");
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` for seconds since the Unix epoch.
pub fn utc_stamp(secs: u64, millis: u32) -> String {
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{millis:03}Z",
        rem / 3600,
        (rem % 3600) / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `glog!("format", args...)`: one log line (see [`line`]).
#[macro_export]
macro_rules! glog {
    ($($arg:tt)*) => {
        $crate::log::line(format_args!($($arg)*))
    };
}
