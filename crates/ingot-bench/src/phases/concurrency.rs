//! Phase `concurrency` ([3b]): throughput under a keyed concurrency limit,
//! and the per-key calls in flight at the SDK endpoint.

use crate::client::Bench;
use crate::phases::throughput::{drive, throughput, Rates, LIMITED, UNLIMITED};
use crate::sdk;
use crate::stats::line;
use crate::Counts;

/// The most calls of `function` for one key in the SDK handler at once.
fn max_line(b: &Bench, label: &str, function: &str, check: bool) {
    let limit = sdk::CONC_LIMIT;
    let (max, reached) = b.sdk.max_in_flight(function, limit);
    let value = format!("{max}  ({reached} of {} keys reached {limit})", sdk::CONC_KEYS);
    if check {
        line(label, &value, &format!("≤ {limit}"), Some(max <= limit));
    } else {
        line(label, &value, "", None);
    }
}

/// Throughput of [`LIMITED`] beside the unlimited phase, and the per-key
/// in-flight calls at the SDK endpoint: on the fast endpoint, then with
/// every call taking `check_sleep_ms` so the limit binds (with the unlimited
/// function under the same load as the control).
pub async fn concurrency(b: &Bench, c: &Counts, unlimited: Option<Rates>) -> anyhow::Result<()> {
    b.sdk.reset_max_in_flight(LIMITED.0);
    let rates = throughput(b, c, LIMITED).await?;
    match unlimited {
        Some(u) => line(
            "ratio to the unlimited phase [3] (steps/s, runs/s)",
            &format!("{:.2}× ({:.0} vs {:.0} steps/s), {:.2}×", rates.steps / u.steps, rates.steps, u.steps, rates.runs / u.runs),
            "",
            None,
        ),
        None => line("ratio to the unlimited phase [3]", "n/a (phase throughput not run)", "", None),
    }
    max_line(b, "max SDK calls in flight for one key (fast endpoint)", LIMITED.0, true);

    let (runs, sleep) = (c.check_runs, c.check_sleep_ms);
    let per_key = runs.div_ceil(sdk::CONC_KEYS);
    // 4 calls per run, `CONC_LIMIT` at a time per key.
    let floor = (per_key * 4) as f64 * sleep as f64 / 1000.0 / sdk::CONC_LIMIT as f64;
    println!("  with every SDK call taking {sleep} ms ({runs} runs, {per_key} per key):");
    b.sdk.reset_max_in_flight(LIMITED.0);
    let d = drive(b, LIMITED, runs, c.tput_batch, sleep).await?;
    line(
        &format!("  {} to all Completed", LIMITED.0),
        &format!("{:.2} s  (≥ {floor:.2} s at {} per key)", d.all_done.as_secs_f64(), sdk::CONC_LIMIT),
        "",
        None,
    );
    max_line(b, "  max SDK calls in flight for one key", LIMITED.0, true);
    b.sdk.reset_max_in_flight(UNLIMITED.0);
    let d = drive(b, UNLIMITED, runs, c.tput_batch, sleep).await?;
    line(&format!("  control: {} (no limit) to all Completed", UNLIMITED.0), &format!("{:.2} s", d.all_done.as_secs_f64()), "", None);
    max_line(b, "  control: max SDK calls in flight for one key", UNLIMITED.0, false);
    Ok(())
}
