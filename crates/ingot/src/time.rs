//! Periods given to steps and options ([`TimeSpec`]): a [`Duration`] or an
//! Inngest time string (`"2s"`, `"1h30m"`, `"7d"`), as every official SDK
//! accepts. A string is read once, where it is given; a bad one becomes a
//! clear error (the step fails, or the function reports it when built),
//! never a panic.

use std::fmt;
use std::time::Duration;

use ingot_protocol::timestr::{format_duration, parse_duration};

/// A period: a [`Duration`] or an Inngest time string. Every step tool and
/// option with a period takes `impl Into<TimeSpec>`.
///
/// ```
/// use std::time::Duration;
/// use ingot::TimeSpec;
///
/// assert_eq!(TimeSpec::from("1h30m").duration(), Ok(Duration::from_secs(5400)));
/// assert_eq!(TimeSpec::from(Duration::from_secs(2)), TimeSpec::from("2s"));
/// assert_eq!(TimeSpec::from("2d").to_string(), "48h");
/// let bad = TimeSpec::from("soon").duration().unwrap_err();
/// assert!(bad.to_string().contains("\"soon\""), "{bad}");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct TimeSpec(Result<Duration, BadTimeSpec>);

/// A time string that does not read as a period.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BadTimeSpec(String);

impl TimeSpec {
    /// The period, or why the string given is not one.
    pub fn duration(&self) -> Result<Duration, BadTimeSpec> {
        self.0.clone()
    }

    /// The wire form (an Inngest time string), or why there is none.
    pub(crate) fn wire(&self) -> Result<String, BadTimeSpec> {
        self.0.as_ref().map(|d| format_duration(*d)).map_err(Clone::clone)
    }
}

impl fmt::Debug for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(d) => write!(f, "TimeSpec({})", format_duration(*d)),
            Err(e) => write!(f, "TimeSpec(<{e}>)"),
        }
    }
}

/// The wire form, e.g. `1h30m`; a bad string shows its error.
impl fmt::Display for TimeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Ok(d) => f.write_str(&format_duration(*d)),
            Err(e) => write!(f, "<{e}>"),
        }
    }
}

impl From<Duration> for TimeSpec {
    fn from(d: Duration) -> TimeSpec {
        TimeSpec(Ok(d))
    }
}

impl From<&str> for TimeSpec {
    fn from(s: &str) -> TimeSpec {
        TimeSpec(parse_duration(s).map_err(|e| BadTimeSpec(e.to_string())))
    }
}

impl From<String> for TimeSpec {
    fn from(s: String) -> TimeSpec {
        TimeSpec::from(s.as_str())
    }
}

impl From<&String> for TimeSpec {
    fn from(s: &String) -> TimeSpec {
        TimeSpec::from(s.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_and_durations_are_the_same_period() {
        for (text, secs) in [("2s", 2), ("1h30m", 5400), ("2d", 172_800), ("1w", 604_800), ("90s", 90)] {
            assert_eq!(TimeSpec::from(text).duration(), Ok(Duration::from_secs(secs)), "{text}");
            assert_eq!(TimeSpec::from(text.to_string()), TimeSpec::from(Duration::from_secs(secs)));
        }
        assert_eq!(TimeSpec::from("1h30m").wire().unwrap(), "1h30m");
        assert_eq!(TimeSpec::from(Duration::from_millis(1500)).wire().unwrap(), "1500ms");
    }

    #[test]
    fn bad_strings_are_errors_that_name_the_string() {
        for bad in ["", "soon", "5 parsecs", "-1s", "1000000000000h"] {
            let e = TimeSpec::from(bad).wire().unwrap_err();
            assert!(e.to_string().contains("invalid duration"), "{bad}: {e}");
        }
    }
}
