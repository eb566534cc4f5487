//! Exact-or-refused checks shared by the sinks: pure functions that decide whether a value fits
//! a target column's limits without the database altering it.
//!
//! Both databases round a decimal with too many fractional digits into the column's scale
//! without an error (MariaDB even in strict mode), and MariaDB rounds fractional seconds, so the
//! sink has to decide before it writes. The reasons returned here name limits and counts, never
//! the value: they end up in dead letters and logs.

/// The digits of a plain decimal number (`-0012.3400`, `.5`, `7.`), or None when the text is
/// not one (an exponent, `NaN`, `Infinity`, anything else).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Digits<'a> {
    pub negative: bool,
    /// Integer part without leading zeros (empty for zero).
    pub int: &'a str,
    /// Fractional part without trailing zeros (empty when integral).
    pub frac: &'a str,
}

pub fn digits(text: &str) -> Option<Digits<'_>> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (int, frac) = body.split_once('.').unwrap_or((body, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int.is_empty() && frac.is_empty()) || !all_digits(int) || !all_digits(frac) {
        return None;
    }
    Some(Digits {
        negative,
        int: int.trim_start_matches('0'),
        frac: frac.trim_end_matches('0'),
    })
}

impl Digits<'_> {
    pub fn is_zero(&self) -> bool {
        self.int.is_empty() && self.frac.is_empty()
    }

    /// The value as an integer, when it is one and fits an i128.
    pub fn integer(&self) -> Option<i128> {
        if !self.frac.is_empty() || self.int.len() > 38 {
            return None;
        }
        let magnitude: i128 = if self.int.is_empty() {
            0
        } else {
            self.int.parse().ok()?
        };
        Some(if self.negative { -magnitude } else { magnitude })
    }
}

/// Does the decimal `text` fit `decimal(precision, scale)` exactly (unsigned: no negatives)?
pub fn fits_decimal(text: &str, precision: u32, scale: u32, unsigned: bool) -> Result<(), String> {
    let d = digits(text).ok_or("not a finite decimal number")?;
    if d.frac.len() > scale as usize {
        return Err(format!(
            "{} fractional digits, the column keeps {scale}",
            d.frac.len()
        ));
    }
    let int_room = precision.saturating_sub(scale) as usize;
    if d.int.len() > int_room {
        return Err(format!(
            "{} integer digits, the column keeps {int_room}",
            d.int.len()
        ));
    }
    if unsigned && d.negative && !d.is_zero() {
        return Err("negative, the column is unsigned".into());
    }
    Ok(())
}

/// Does `i` fit an integer column of `bits` bits?
pub fn fits_int(i: i128, bits: u32, unsigned: bool) -> Result<(), String> {
    let (lo, hi) = if unsigned {
        (0i128, (1i128 << bits) - 1)
    } else {
        (-(1i128 << (bits - 1)), (1i128 << (bits - 1)) - 1)
    };
    if i < lo || i > hi {
        return Err("out of the column's range".into());
    }
    Ok(())
}

/// Do two plain decimal texts denote the same number (`1.50` and `01.5`, `-0` and `0`)?
pub fn same_number(a: &str, b: &str) -> bool {
    match (digits(a), digits(b)) {
        (Some(x), Some(y)) if x.is_zero() && y.is_zero() => true,
        (Some(x), Some(y)) => x == y,
        _ => false,
    }
}

/// An integer as an f64, when the conversion is exact.
pub fn exact_f64(i: i128) -> Option<f64> {
    let f = i as f64;
    (f.is_finite() && f as i128 == i && f.abs() < 2f64.powi(127)).then_some(f)
}

/// A float as an integer, when it is one (no fraction, within i128).
pub fn float_integer(f: f64) -> Option<i128> {
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 2f64.powi(100)).then_some(f as i128)
}

/// Is `f` held exactly by a single-precision column (its shortest f32 digits read back as the
/// same f64)? A value that came from a `real` column is; one with more digits is not.
pub fn fits_f32(f: f64) -> bool {
    let single = f as f32;
    single.is_finite() && single.to_string().parse::<f64>() == Ok(f)
}

/// Digits of fractional seconds `nanos` needs (0..=9).
pub fn second_digits(nanos: u32) -> u32 {
    if nanos == 0 {
        return 0;
    }
    9 - (0..9)
        .take_while(|k| nanos.is_multiple_of(10u32.pow(k + 1)))
        .count() as u32
}

/// Can MariaDB's `latin1` (Windows-1252, with the five undefined bytes mapped to the C1
/// controls of the same number) hold `c`?
pub fn in_latin1(c: char) -> bool {
    const CP1252: &str = "€‚ƒ„…†‡ˆ‰Š‹ŒŽ‘’“”•–—˜™š›œžŸ\u{81}\u{8d}\u{8f}\u{90}\u{9d}";
    (c as u32) < 0x80 || (0xA0..=0xFF).contains(&(c as u32)) || CP1252.contains(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_fit_or_say_why() {
        assert_eq!(fits_decimal("1.00", 10, 2, false), Ok(()));
        assert_eq!(fits_decimal("-99999999.99", 10, 2, false), Ok(()));
        assert_eq!(fits_decimal("1.2300000", 10, 2, false), Ok(()));
        assert_eq!(
            fits_decimal("1.005", 10, 2, false),
            Err("3 fractional digits, the column keeps 2".into())
        );
        assert_eq!(
            fits_decimal("12345678.1234", 10, 2, false),
            Err("4 fractional digits, the column keeps 2".into())
        );
        assert_eq!(
            fits_decimal("123456789", 10, 2, false),
            Err("9 integer digits, the column keeps 8".into())
        );
        assert_eq!(fits_decimal("000012.5", 3, 1, false), Ok(()));
        assert!(fits_decimal("-1", 10, 2, true).is_err());
        assert_eq!(fits_decimal("-0.00", 10, 2, true), Ok(()));
        for bad in ["NaN", "Infinity", "1e5", "", "-", ".", "1.2.3", "12a"] {
            assert!(fits_decimal(bad, 10, 2, false).is_err(), "{bad}");
        }
        assert_eq!(fits_decimal(".5", 1, 1, false), Ok(()));
    }

    #[test]
    fn integers_by_width() {
        assert_eq!(fits_int(127, 8, false), Ok(()));
        assert!(fits_int(128, 8, false).is_err());
        assert!(fits_int(-129, 8, false).is_err());
        assert_eq!(fits_int(255, 8, true), Ok(()));
        assert!(fits_int(-1, 8, true).is_err());
        assert_eq!(fits_int(u64::MAX as i128, 64, true), Ok(()));
        assert!(fits_int(u64::MAX as i128 + 1, 64, true).is_err());
        assert_eq!(fits_int(i64::MIN as i128, 64, false), Ok(()));
        assert!(fits_int(8_388_608, 24, false).is_err());
        assert_eq!(digits("-0012.500").unwrap().integer(), None);
        assert_eq!(digits("-0012.000").unwrap().integer(), Some(-12));
        assert_eq!(digits("0").unwrap().integer(), Some(0));
    }

    #[test]
    fn numbers_floats_and_fractions() {
        assert!(same_number("1.50", "01.5"));
        assert!(same_number("-0", "0.000"));
        assert!(!same_number("1.5", "1.50001"));
        assert!(!same_number("NaN", "NaN"));
        assert!(fits_f32(1.5));
        assert!(fits_f32(
            "1.1".parse::<f32>().unwrap().to_string().parse().unwrap()
        ));
        assert!(!fits_f32(1.000_000_123_4));
        assert!(!fits_f32(1e300));
        assert_eq!(exact_f64(1 << 53), Some(9007199254740992.0));
        assert_eq!(exact_f64((1 << 53) + 1), None);
        assert_eq!(float_integer(3.0), Some(3));
        assert_eq!(float_integer(3.5), None);
        assert_eq!(float_integer(f64::NAN), None);
        assert_eq!(second_digits(0), 0);
        assert_eq!(second_digits(500_000_000), 1);
        assert_eq!(second_digits(123_456_000), 6);
        assert_eq!(second_digits(5_000), 6);
        assert_eq!(second_digits(1), 9);
    }

    #[test]
    fn latin1_is_windows_1252() {
        for c in "abc ÿ é € Ÿ ‰ \u{81}".chars() {
            assert!(in_latin1(c), "{c:?}");
        }
        for c in "ع🎉Ā\u{80}中".chars() {
            assert!(!in_latin1(c), "{c:?}");
        }
    }
}
