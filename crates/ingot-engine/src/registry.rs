//! The functions the engine knows, with their triggers compiled, kept in
//! memory for matching events without a database read.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ingot_core::matching::EventTrigger;
use ingot_core::FunctionSlug;
use ingot_protocol::flow::FlowConfig;
use ingot_protocol::sync::FunctionConfig;
use ingot_store::{FunctionRecord, Store};
use serde_json::Value;

/// A function ready for matching and calling.
#[derive(Debug)]
pub struct Function {
    pub record: FunctionRecord,
    pub config: FunctionConfig,
    pub triggers: Vec<EventTrigger>,
    pub flow: FlowConfig,
}

impl Function {
    pub fn slug(&self) -> &FunctionSlug {
        &self.record.slug
    }
}

/// Active functions by slug.
#[derive(Default)]
pub struct Registry {
    functions: RwLock<Arc<HashMap<String, Arc<Function>>>>,
}

/// Compiles a function's config; an invalid trigger is an error for the sync.
pub fn compile(record: FunctionRecord) -> Result<Function, String> {
    let config: FunctionConfig = serde_json::from_value(record.config.clone()).map_err(|e| format!("function {}: {e}", record.slug))?;
    let mut triggers = Vec::new();
    for t in &config.triggers {
        if let Some(event) = &t.event {
            triggers.push(EventTrigger::new(event, t.expression.as_deref()).map_err(|e| format!("function {}: {e}", record.slug))?);
        }
    }
    let flow = FlowConfig::parse(&config.rest).map_err(|e| format!("function {}: {e}", record.slug))?;
    for src in flow_expressions(&flow, &config) {
        ingot_core::expr::Expr::compile(src).map_err(|e| format!("function {}: {e}", record.slug))?;
    }
    for t in &config.triggers {
        if let Some(cron) = &t.cron {
            crate::cron::Schedule::parse(cron).map_err(|e| format!("function {}: {e}", record.slug))?;
        }
    }
    Ok(Function { record, config, triggers, flow })
}

/// Every CEL expression of a function's flow control, to validate at sync.
fn flow_expressions<'a>(flow: &'a FlowConfig, config: &'a FunctionConfig) -> Vec<&'a str> {
    let mut v: Vec<&str> = Vec::new();
    v.extend(flow.concurrency.iter().filter_map(|c| c.key.as_deref()));
    v.extend(flow.throttle.as_ref().and_then(|t| t.key.as_deref()));
    v.extend(flow.rate_limit.as_ref().and_then(|t| t.key.as_deref()));
    v.extend(flow.debounce.as_ref().and_then(|t| t.key.as_deref()));
    v.extend(flow.batch.as_ref().and_then(|t| t.key.as_deref()));
    v.extend(flow.batch.as_ref().and_then(|t| t.if_exp.as_deref()));
    v.extend(flow.priority.as_ref().and_then(|t| t.run.as_deref()));
    v.extend(flow.idempotency.as_deref());
    v.extend(flow.singleton.as_ref().and_then(|t| t.key.as_deref()));
    v.extend(config.cancel.iter().flatten().filter_map(|c| c.if_exp.as_deref()));
    v.into_iter().filter(|s| !s.trim().is_empty()).collect()
}

/// What the core may ask while deciding: whether an invoked function exists.
impl ingot_core::Lookup for Registry {
    fn function_exists(&self, slug: &str) -> bool {
        self.get(slug).is_some()
    }
}

impl Registry {
    /// Reloads from the store.
    pub async fn reload(&self, store: &dyn Store) -> crate::error::Result<()> {
        let mut map = HashMap::new();
        for rec in store.functions(false).await? {
            match compile(rec) {
                Ok(f) => {
                    map.insert(f.record.slug.0.clone(), Arc::new(f));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping a stored function that no longer compiles")
                }
            }
        }
        *self.functions.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(map);
        Ok(())
    }

    fn snapshot(&self) -> Arc<HashMap<String, Arc<Function>>> {
        self.functions.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// What changes when a function is synced, added or archived: each
    /// function's slug and update time.
    pub fn fingerprint(&self) -> Vec<(String, i64)> {
        let mut v: Vec<_> = self.snapshot().values().map(|f| (f.record.slug.0.clone(), f.record.updated_at_ms)).collect();
        v.sort();
        v
    }

    pub fn get(&self, slug: &str) -> Option<Arc<Function>> {
        self.snapshot().get(slug).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Function>> {
        let mut v: Vec<_> = self.snapshot().values().cloned().collect();
        v.sort_by(|a, b| a.record.slug.cmp(&b.record.slug));
        v
    }

    /// Functions an event starts: any trigger matches (each function once).
    pub fn matching(&self, name: &str, event: &Value) -> Vec<Arc<Function>> {
        let mut v: Vec<_> = self.snapshot().values().filter(|f| f.triggers.iter().any(|t| t.matches(name, event))).cloned().collect();
        v.sort_by(|a, b| a.record.slug.cmp(&b.record.slug));
        v
    }
}
