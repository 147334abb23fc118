//! Text helpers of the request path. UTF-8 checks for the short, almost always ASCII strings
//! of a request (header names and values, the target): `std::str::from_utf8` costs about 100
//! instructions a call on them (measured with callgrind, 14 calls a request), an ASCII scan a
//! fraction of that. The event's timestamp, written without `core::fmt` (800 instructions
//! through humantime's `Display`, about 60 here).

use std::ops::Range;
use std::str::Utf8Error;
use std::time::{SystemTime, UNIX_EPOCH};

/// Milliseconds since the Unix epoch (0 for a time before it).
pub fn unix_ms(time: SystemTime) -> u64 {
    time.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The wall clock in Unix ms: what stored events, retries and cluster windows are timed by.
pub fn now_ms() -> u64 {
    unix_ms(SystemTime::now())
}

/// `std::str::from_utf8`, with a fast path for ASCII.
#[inline]
pub fn utf8(bytes: &[u8]) -> Result<&str, Utf8Error> {
    if bytes.is_ascii() {
        // SAFETY: ASCII bytes are valid UTF-8; checked on the line above.
        Ok(unsafe { std::str::from_utf8_unchecked(bytes) })
    } else {
        std::str::from_utf8(bytes)
    }
}

/// Where `part` — a slice of `whole`, as parsers (httparse, matchit) hand them out — lies in
/// `whole`, so it can be kept as offsets while `whole` is borrowed elsewhere; empty when `part`
/// is empty or not inside `whole` (a static empty slice, say).
pub fn span(whole: &[u8], part: &[u8]) -> Range<usize> {
    let start = (part.as_ptr() as usize).wrapping_sub(whole.as_ptr() as usize);
    match start.checked_add(part.len()) {
        Some(end) if !part.is_empty() && end <= whole.len() => start..end,
        _ => 0..0,
    }
}

/// Appends `time` as RFC 3339 UTC with milliseconds, `2026-11-22T15:04:05.123Z`, as
/// `humantime::format_rfc3339_millis` writes it (times before 1970 are written as 1970).
pub fn push_rfc3339_millis(out: &mut Vec<u8>, time: SystemTime) {
    let since = time.duration_since(UNIX_EPOCH).unwrap_or_default();
    let secs = since.as_secs();
    let (year, month, day) = civil_from_days(secs / 86_400);
    let of_day = secs % 86_400;
    let ms = u64::from(since.subsec_millis());
    // Filled in place, then appended at once.
    let mut text = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, n: u64, digits: usize| {
        let mut n = n;
        for i in (at..at + digits).rev() {
            text[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
    };
    put(0, year, 4);
    put(5, month, 2);
    put(8, day, 2);
    put(11, of_day / 3600, 2);
    put(14, of_day / 60 % 60, 2);
    put(17, of_day % 60, 2);
    put(20, ms, 3);
    out.extend_from_slice(&text);
}

/// (year, month, day) of a day counted from 1970-01-01, in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::{push_rfc3339_millis, span, utf8};
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn timestamps_as_humantime_writes_them() {
        // Every day from 1970 to 2200 at a moving time of day, and the edges of leap days.
        let mut cases: Vec<Duration> = (0..84_000u64)
            .map(|d| Duration::from_millis(d * 86_400_000 + (d * 7_777_777) % 86_400_000))
            .collect();
        cases.extend(
            [0, 951_782_400_999, 951_868_799_999, 4_107_542_399_999].map(Duration::from_millis),
        );
        for since in cases {
            let t = UNIX_EPOCH + since;
            let mut out = Vec::new();
            push_rfc3339_millis(&mut out, t);
            let want = humantime::format_rfc3339_millis(t).to_string();
            assert_eq!(String::from_utf8(out).unwrap(), want);
        }
    }

    #[test]
    fn spans_of_slices_and_of_strangers() {
        let whole = b"GET /a HTTP/1.1";
        assert_eq!(span(whole, &whole[4..6]), 4..6);
        assert_eq!(span(whole, b"other"), 0..0);
        assert_eq!(span(whole, &whole[3..3]), 0..0);
    }

    #[test]
    fn same_answers_as_std() {
        let cases: [&[u8]; 6] = [
            b"",
            b"plain",
            "中文".as_bytes(),
            b"\xff",
            b"ab\xc3",
            b"a\x00",
        ];
        for c in cases {
            assert_eq!(utf8(c).ok(), std::str::from_utf8(c).ok(), "{c:?}");
        }
    }
}
