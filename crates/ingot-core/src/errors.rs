//! The errors the engine itself gives a run or a step (as opposed to the
//! errors an SDK reports), in Inngest's `{name, message}` shape. Built here
//! and nowhere else, so the shell and the core say the same thing.

use serde_json::{json, Value};

/// `{name, message}`.
pub fn error(name: &str, message: impl Into<String>) -> Value {
    json!({"name": name, "message": message.into()})
}

/// A failed step's memo: `{error}`.
pub fn failed_memo(error: Value) -> Value {
    json!({ "error": error })
}

/// Whether a memo records a failed step (`{error}` and nothing else).
pub fn memo_failed(memo: &Value) -> bool {
    memo.as_object().is_some_and(|m| m.len() == 1 && m.contains_key("error"))
}

/// The engine could not store the run's next state.
pub fn engine_failed(message: impl Into<String>) -> Value {
    error("EngineError", message)
}

/// An SDK reply the engine cannot read, or one that is not from an SDK.
pub fn invalid_response(reason: impl Into<String>) -> Value {
    error("InvalidResponseError", reason)
}

/// A reply that would leave the run with nothing to do.
pub fn no_progress(op_count: usize) -> Value {
    error(
        "NoProgressError",
        format!("the SDK's reply had {op_count} op(s) but none moved the run on (no new step result, sleep, wait or invoke)"),
    )
}

/// `what` ("step output", "the function's output", "the SDK's reply") is over `max` bytes.
pub fn output_too_large(what: &str, size: Option<usize>, max: usize) -> Value {
    let message = match size {
        Some(size) => format!("{what} is {size} bytes, over the limit of {max}"),
        None => format!("{what} is over the limit of {max} bytes"),
    };
    error("OutputTooLargeError", message)
}

/// The run's memoized state would pass its cap.
pub fn state_too_large(size: u64, max: usize) -> Value {
    error("StateTooLargeError", format!("the run's state would be {size} bytes, over the limit of {max} bytes"))
}

/// More steps than a run may have.
pub fn step_limit(max: usize) -> Value {
    error("StepLimitError", format!("a run may have at most {max} steps"))
}

/// The SDK could not find a step the engine asked for.
pub fn step_not_found(step: &str) -> Value {
    error("StepNotFoundError", format!("the SDK could not find step {step}"))
}

/// The run's function is gone (or has no HTTP URL).
pub fn function_not_found(function: &str) -> Value {
    error("FunctionNotFoundError", format!("function {function} is not synced (or has no HTTP URL)"))
}

/// `step.invoke` of a function that does not exist.
pub fn invoke_not_found(function: &str) -> Value {
    error("Error", format!("could not find function with ID {function:?} to invoke"))
}

/// `step.invoke` timed out.
pub fn invoke_timed_out() -> Value {
    error("InngestInvokeTimeoutError", "Timed out waiting for invoked function to complete")
}

/// `step.waitForSignal` with `onConflict: "fail"` while another run waits
/// for the same signal (Inngest's words).
pub fn signal_conflict(signal: &str) -> Value {
    error("Error", format!("Signal conflict; signal wait already exists for another run (signal {signal:?})"))
}
