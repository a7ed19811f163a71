//! What the metrics and the dashboard's charts read: how much work is
//! queued, and how long a function's SDK calls took.

/// Queued items: due at the time asked about, and due later.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueDepth {
    pub due: u64,
    pub future: u64,
}

/// One SDK call of a function, from its `call` history line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallSample {
    pub at_ms: i64,
    pub duration_ms: i64,
}
