//! Percentiles, process figures, and the printed lines.

use std::time::Duration;

/// Sorted samples.
pub struct Samples(Vec<Duration>);

impl Samples {
    pub fn new(mut v: Vec<Duration>) -> Samples {
        v.sort_unstable();
        Samples(v)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q`-quantile (0..=1), nearest rank; zero when empty.
    pub fn pct(&self, q: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        let rank = (q * self.0.len() as f64).ceil() as usize;
        self.0[rank.clamp(1, self.0.len()) - 1]
    }

    pub fn p50(&self) -> Duration {
        self.pct(0.50)
    }

    pub fn p99(&self) -> Duration {
        self.pct(0.99)
    }

    pub fn max(&self) -> Duration {
        self.0.last().copied().unwrap_or_default()
    }
}

pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// A field of `/proc/self/status` in kB (e.g. `VmRSS`, `VmHWM`).
pub fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| {
        let rest = l.strip_prefix(field)?.strip_prefix(':')?;
        rest.split_whitespace().next()?.parse().ok()
    })
}

pub fn mb(kb: Option<u64>) -> String {
    kb.map(|k| format!("{:.1} MB", k as f64 / 1024.0)).unwrap_or_else(|| "n/a".into())
}

/// User + system CPU time of this process so far.
pub fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return Duration::ZERO;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|s| s.parse::<u64>().ok()).unwrap_or(0);
    // `rest` starts at field 3 (state), so field n is at index n - 3.
    let total = ticks(14 - 3) + ticks(15 - 3);
    Duration::from_millis(total * 1000 / clock_ticks())
}

fn clock_ticks() -> u64 {
    // USER_HZ is 100 on every Linux the engine targets.
    100
}

/// Context switches (voluntary + involuntary) of every thread of this process so far.
pub fn ctx_switches() -> u64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    dir.filter_map(|t| t.ok())
        .filter_map(|t| std::fs::read_to_string(t.path().join("status")).ok())
        .flat_map(|s| {
            s.lines()
                .filter(|l| l.starts_with("voluntary_ctxt_switches") || l.starts_with("nonvoluntary_ctxt_switches"))
                .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
                .collect::<Vec<_>>()
        })
        .sum()
}

/// Process CPU and context switches at the start of a phase.
#[derive(Clone, Copy)]
pub struct Usage {
    cpu: Duration,
    switches: u64,
}

impl Usage {
    pub fn now() -> Usage {
        Usage { cpu: cpu_time(), switches: ctx_switches() }
    }

    /// Context switches since `self`.
    pub fn switches(&self) -> u64 {
        ctx_switches().saturating_sub(self.switches)
    }

    /// CPU used since `self` over `wall`, as a share of all cores, and context switches.
    pub fn line(&self, wall: Duration, cores: usize) -> String {
        let used = cpu_time().saturating_sub(self.cpu);
        format!(
            "process CPU {:.2} s over {:.2} s wall = {:.0}% of {cores} cores; {} context switches",
            used.as_secs_f64(),
            wall.as_secs_f64(),
            100.0 * used.as_secs_f64() / (wall.as_secs_f64() * cores as f64).max(1e-9),
            self.switches()
        )
    }
}

/// `OK` / `MISS` against a target.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "OK"
    } else {
        "MISS"
    }
}

/// One result line: label, value, target, verdict.
pub fn line(label: &str, value: &str, target: &str, ok: Option<bool>) {
    let v = ok.map(verdict).unwrap_or("");
    if target.is_empty() {
        println!("  {label:<58} {value}");
    } else {
        println!("  {label:<58} {value:<34} [target {target}] {v}");
    }
}
