//! ISO date and time text (`2024-02-29`, `23:59:59.000005`, `2024-02-29 23:59:59.000005`), the
//! form both databases read and write, by hand.
//!
//! chrono's `format` and `parse_from_str` interpret their pattern on every call, which was a
//! tenth of a resync's CPU. These write and read the one fixed form directly; anything outside
//! it (a year beyond 0..=9999, a leap second, a BC date, `infinity`) goes through chrono as
//! before, so the results are the same for every value.

use chrono::{Datelike, NaiveDate, NaiveDateTime, NaiveTime, Timelike};

/// `YYYY-MM-DD`.
pub fn date(d: &NaiveDate) -> String {
    let mut s = String::with_capacity(10);
    if !push_date(&mut s, d) {
        return d.format("%Y-%m-%d").to_string();
    }
    s
}

/// `HH:MM:SS.ffffff` (always six fraction digits).
pub fn time(t: &NaiveTime) -> String {
    let mut s = String::with_capacity(15);
    if !push_time(&mut s, t) {
        return t.format("%H:%M:%S%.6f").to_string();
    }
    s
}

/// `YYYY-MM-DD HH:MM:SS.ffffff`.
pub fn datetime(ts: &NaiveDateTime) -> String {
    let mut s = String::with_capacity(26);
    if !(push_date(&mut s, &ts.date()) && {
        s.push(' ');
        push_time(&mut s, &ts.time())
    }) {
        return ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string();
    }
    s
}

fn push_digits(s: &mut String, v: u32, width: u32) {
    for i in (0..width).rev() {
        s.push(char::from(b'0' + (v / 10u32.pow(i) % 10) as u8));
    }
}

fn push_date(s: &mut String, d: &NaiveDate) -> bool {
    let Ok(year) = u32::try_from(d.year()) else {
        return false;
    };
    if year > 9999 {
        return false;
    }
    push_digits(s, year, 4);
    s.push('-');
    push_digits(s, d.month(), 2);
    s.push('-');
    push_digits(s, d.day(), 2);
    true
}

fn push_time(s: &mut String, t: &NaiveTime) -> bool {
    let nanos = t.nanosecond();
    if nanos >= 1_000_000_000 {
        return false; // leap second: chrono's own spelling
    }
    push_digits(s, t.hour(), 2);
    s.push(':');
    push_digits(s, t.minute(), 2);
    s.push(':');
    push_digits(s, t.second(), 2);
    s.push('.');
    push_digits(s, nanos / 1000, 6);
    true
}

/// Read `YYYY-MM-DD`; None for any other spelling (the caller then asks chrono).
pub fn parse_date(text: &str) -> Option<NaiveDate> {
    let b = text.as_bytes();
    if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
        return None;
    }
    NaiveDate::from_ymd_opt(num(&b[0..4])? as i32, num(&b[5..7])?, num(&b[8..10])?)
}

/// Read `HH:MM:SS` with an optional `.f` of 1 to 9 digits.
pub fn parse_time(text: &str) -> Option<NaiveTime> {
    let b = text.as_bytes();
    if b.len() < 8 || b[2] != b':' || b[5] != b':' {
        return None;
    }
    let nanos = match &b[8..] {
        [] => 0,
        [b'.', frac @ ..] if (1..=9).contains(&frac.len()) => {
            num(frac)? * 10u32.pow(9 - frac.len() as u32)
        }
        _ => return None,
    };
    NaiveTime::from_hms_nano_opt(num(&b[0..2])?, num(&b[3..5])?, num(&b[6..8])?, nanos)
}

/// Read `YYYY-MM-DD HH:MM:SS[.f]`.
pub fn parse_datetime(text: &str) -> Option<NaiveDateTime> {
    if text.len() < 19 || text.as_bytes()[10] != b' ' {
        return None;
    }
    Some(parse_date(&text[..10])?.and_time(parse_time(&text[11..])?))
}

fn num(digits: &[u8]) -> Option<u32> {
    digits.iter().try_fold(0u32, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u32::from(c - b'0'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_exactly_as_chrono_writes_them() {
        let days = [
            (1, 1, 1),
            (999, 12, 31),
            (2024, 2, 29),
            (9999, 12, 31),
            (0, 1, 1),
        ];
        let times = [
            (0, 0, 0, 0),
            (23, 59, 59, 999_999_999),
            (12, 5, 7, 5_000),
            (1, 2, 3, 999),
        ];
        for (y, m, d) in days {
            let day = NaiveDate::from_ymd_opt(y, m, d).unwrap();
            assert_eq!(date(&day), day.format("%Y-%m-%d").to_string());
            for (h, mi, s, n) in times {
                let t = NaiveTime::from_hms_nano_opt(h, mi, s, n).unwrap();
                assert_eq!(time(&t), t.format("%H:%M:%S%.6f").to_string());
                let ts = day.and_time(t);
                assert_eq!(
                    datetime(&ts),
                    ts.format("%Y-%m-%d %H:%M:%S%.6f").to_string()
                );
            }
        }
        // Outside the fixed form: chrono's spelling, unchanged.
        let far = NaiveDate::from_ymd_opt(12345, 6, 7).unwrap();
        assert_eq!(date(&far), far.format("%Y-%m-%d").to_string());
        let bc = NaiveDate::from_ymd_opt(-44, 3, 15).unwrap();
        assert_eq!(date(&bc), bc.format("%Y-%m-%d").to_string());
        let leap = NaiveTime::from_hms_nano_opt(23, 59, 59, 1_500_000_000).unwrap();
        assert_eq!(time(&leap), leap.format("%H:%M:%S%.6f").to_string());
    }

    #[test]
    fn read_exactly_as_chrono_reads_them() {
        for text in ["2024-02-29", "0001-01-01", "9999-12-31"] {
            assert_eq!(
                parse_date(text),
                NaiveDate::parse_from_str(text, "%Y-%m-%d").ok()
            );
        }
        for text in [
            "00:00:00",
            "23:59:59.999999",
            "12:00:00.5",
            "01:02:03.123456789",
        ] {
            assert_eq!(
                parse_time(text),
                NaiveTime::parse_from_str(text, "%H:%M:%S%.f").ok(),
                "{text}"
            );
        }
        let ts = "2024-12-31 23:59:59.123456";
        assert_eq!(
            parse_datetime(ts),
            NaiveDateTime::parse_from_str(ts, "%Y-%m-%d %H:%M:%S%.f").ok()
        );
        for bad in [
            "2024-02-30",
            "2024-2-29",
            "24:00:00",
            "12:00",
            "12:00:00.",
            "12:00:00.1234567890",
            "2024-01-01T00:00:00",
            "infinity",
            "12:0a:00",
        ] {
            assert!(
                parse_date(bad).is_none()
                    && parse_time(bad).is_none()
                    && parse_datetime(bad).is_none(),
                "{bad}"
            );
        }
    }
}
