//! Inngest "time strings": Go durations plus `d` (24 h) and `w` (168 h),
//! e.g. `"1h30m"`, `"7d"`, `"500ms"`.

use std::time::Duration;

/// Longest time string accepted: 100 years. Sleeps, waits and timeouts are
/// capped far below this (Inngest's longest sleep is a year); the bound keeps
/// every conversion safe: it is 3.2e18 ns (fits `u64`) and 3.2e12 ms, so
/// `now_ms + d` cannot overflow an `i64` for any date before the year 290
/// million.
pub const MAX_DURATION: Duration = Duration::from_secs(100 * 365 * 86_400);

/// A time string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadDuration(pub String);

impl std::fmt::Display for BadDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown: String = self.0.chars().take(64).collect();
        let more = if shown.len() < self.0.len() { "..." } else { "" };
        if parse_nanos(&self.0) == Err(Refusal::TooLong) {
            write!(f, "invalid duration {shown:?}{more}: longer than the limit of 100 years")
        } else {
            write!(f, "invalid duration {shown:?}{more}: expected e.g. \"30s\", \"1h30m\", \"7d\"")
        }
    }
}

impl std::error::Error for BadDuration {}

#[derive(Debug, PartialEq, Eq)]
enum Refusal {
    Syntax,
    TooLong,
}

/// Parses an Inngest time string. Exact integer arithmetic: every product
/// and sum is checked, and anything past [`MAX_DURATION`] is refused.
pub fn parse_duration(input: &str) -> Result<Duration, BadDuration> {
    parse_nanos(input).map(|ns| Duration::from_nanos(ns as u64)).map_err(|_| BadDuration(input.to_string()))
}

fn parse_nanos(input: &str) -> Result<u128, Refusal> {
    let max = MAX_DURATION.as_nanos();
    let s = input.trim();
    if s.is_empty() {
        return Err(Refusal::Syntax);
    }
    if s == "0" {
        return Ok(0);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total: u128 = 0;
    while i < bytes.len() {
        // The number: digits, optionally `.` and more digits.
        let mut whole: u128 = 0;
        let mut frac: u128 = 0;
        let mut frac_scale: u128 = 1;
        let mut digits = 0;
        let mut too_big = false;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            match whole.checked_mul(10).and_then(|w| w.checked_add(u128::from(bytes[i] - b'0'))) {
                Some(w) if w <= max => whole = w,
                _ => too_big = true,
            }
            digits += 1;
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'.' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                // Digits past 18 are below a nanosecond even of a week,
                // and 1e18 times the largest unit still fits a u128.
                if frac_scale < 10u128.pow(18) {
                    frac = frac * 10 + u128::from(bytes[i] - b'0');
                    frac_scale *= 10;
                }
                digits += 1;
                i += 1;
            }
        }
        if digits == 0 {
            return Err(Refusal::Syntax);
        }
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit_ns: u128 = match &s[ustart..i] {
            "ns" => 1,
            "us" | "µs" | "μs" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            "d" => 86_400_000_000_000,
            "w" => 604_800_000_000_000,
            _ => return Err(Refusal::Syntax),
        };
        if too_big {
            return Err(Refusal::TooLong);
        }
        let part = whole.checked_mul(unit_ns).and_then(|w| w.checked_add(frac * unit_ns / frac_scale)).ok_or(Refusal::TooLong)?;
        total = total.checked_add(part).filter(|t| *t <= max).ok_or(Refusal::TooLong)?;
    }
    Ok(total)
}

/// A duration in whole milliseconds as an `i64`, saturating (a duration
/// from [`parse_duration`] always fits).
pub fn millis_i64(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// Writes a duration as an Inngest time string that [`parse_duration`] reads
/// back: whole hours, minutes and seconds (`"1h30m"`, `"2s"`), or
/// milliseconds when there is a sub-second part (`"1500ms"`). Zero is `"0s"`.
pub fn format_duration(d: Duration) -> String {
    if d.subsec_nanos() != 0 {
        if d.subsec_nanos().is_multiple_of(1_000_000) {
            return format!("{}ms", d.as_millis());
        }
        return format!("{}ns", d.as_nanos());
    }
    let secs = d.as_secs();
    if secs == 0 {
        return "0s".to_string();
    }
    let (h, m, s) = (secs / 3600, secs / 60 % 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inngest_time_strings() {
        let cases =
            [("2s", 2_000), ("1h30m", 5_400_000), ("7d", 604_800_000), ("1w", 604_800_000), ("500ms", 500), ("1.5s", 1_500), ("0", 0)];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s).unwrap().as_millis() as u64, ms, "{s}");
        }
        for s in ["", "abc", "5", "3x", "-1s", ".s", "1..5s", "s", "1s2"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
        assert_eq!(parse_duration(".5s").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("1.s").unwrap(), Duration::from_secs(1));
        assert_eq!(parse_duration("0.000000001s").unwrap(), Duration::from_nanos(1));
        assert_eq!(parse_duration("1.0000000000000000000000000000000001s").unwrap(), Duration::from_secs(1));
    }

    #[test]
    fn refuses_overflowing_durations_with_a_clear_error() {
        for s in [
            "9999999999999999h",
            "99999999999999999999999999999999999999999999s",
            "36500d1ns",
            "5300w",
            "876001h",
            "50000d50000d",
            &format!("{}s", "9".repeat(10_000)),
        ] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.to_string().contains("longer than the limit of 100 years"), "{s}: {e}");
            assert!(e.to_string().len() < 200);
        }
        assert_eq!(parse_duration("36500d").unwrap(), MAX_DURATION);
        assert_eq!(millis_i64(MAX_DURATION), 3_153_600_000_000);
        assert_eq!(millis_i64(Duration::MAX), i64::MAX);
        assert!(parse_duration("3x").unwrap_err().to_string().contains("expected e.g."));
    }

    #[test]
    fn formats_durations_that_parse_back() {
        let cases = [
            (Duration::from_secs(2), "2s"),
            (Duration::from_secs(5400), "1h30m"),
            (Duration::from_secs(86_400), "24h"),
            (Duration::from_millis(1500), "1500ms"),
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
        ];
        for (d, s) in cases {
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s).unwrap(), d, "{s}");
        }
    }
}
