//! The timed phases, one module each, in the order `main` runs them
//! (`retention`, run only when asked, has its own module beside this one).

pub mod baseline;
pub mod concurrency;
pub mod first_call;
pub mod ingest;
pub mod lists;
pub mod nodes;
pub mod steps;
pub mod throughput;
pub mod traces;
