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
        for s in ["", "abc", "5", "3x", "-1s"] {
            assert!(parse_duration(s).is_err(), "{s}");
        }
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
