//! Inngest "time strings": Go durations plus `d` (24 h) and `w` (168 h),
//! e.g. `"1h30m"`, `"7d"`, `"500ms"`.

use std::time::Duration;

/// A time string that could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {0:?}: expected e.g. \"30s\", \"1h30m\", \"7d\"")]
pub struct BadDuration(pub String);

/// Parses an Inngest time string.
pub fn parse_duration(input: &str) -> Result<Duration, BadDuration> {
    let bad = || BadDuration(input.to_string());
    let s = input.trim();
    if s.is_empty() {
        return Err(bad());
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    let bytes = s.as_bytes();
    let mut i = 0;
    let mut total_ns: f64 = 0.0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && (bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        if start == i {
            return Err(bad());
        }
        let num: f64 = s[start..i].parse().map_err(|_| bad())?;
        let ustart = i;
        while i < bytes.len() && !(bytes[i].is_ascii_digit() || bytes[i] == b'.') {
            i += 1;
        }
        let unit_ns: f64 = match &s[ustart..i] {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "d" => 86_400e9,
            "w" => 604_800e9,
            _ => return Err(bad()),
        };
        total_ns += num * unit_ns;
    }
    if !total_ns.is_finite() || !(0.0..=1e20).contains(&total_ns) {
        return Err(bad());
    }
    Ok(Duration::from_nanos(total_ns as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_inngest_time_strings() {
        let cases = [
            ("2s", 2_000),
            ("1h30m", 5_400_000),
            ("7d", 604_800_000),
            ("1w", 604_800_000),
            ("500ms", 500),
            ("1.5s", 1_500),
            ("0", 0),
        ];
        for (s, ms) in cases {
            assert_eq!(parse_duration(s).unwrap().as_millis() as u64, ms, "{s}");
        }
        for s in ["", "abc", "5", "3x", "-1s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
    }
}
