//! Handler state: values given to a function ([`crate::FunctionBuilder::with_state`])
//! or to the whole endpoint ([`crate::Handler::with_state`]), one per type,
//! read in handlers with [`crate::Ctx::state`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::sync::Arc;

/// Values by type. Cheap to clone (the values are shared).
#[derive(Clone, Default)]
pub(crate) struct StateMap(HashMap<TypeId, Arc<dyn Any + Send + Sync>>);

impl StateMap {
    /// Sets the value of type `S`, replacing any earlier one.
    pub(crate) fn insert<S: Send + Sync + 'static>(&mut self, value: Arc<S>) {
        self.0.insert(TypeId::of::<S>(), value);
    }

    fn get<S: Send + Sync + 'static>(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.0.get(&TypeId::of::<S>())
    }
}

/// What one call's handler can read: the function's values first, then the
/// endpoint's.
#[derive(Clone, Default)]
pub(crate) struct States {
    pub(crate) function: Arc<StateMap>,
    pub(crate) app: Arc<StateMap>,
}

impl States {
    fn find<S: Send + Sync + 'static>(&self) -> Option<&Arc<dyn Any + Send + Sync>> {
        self.function.get::<S>().or_else(|| self.app.get::<S>())
    }

    pub(crate) fn get<S: Send + Sync + 'static>(&self) -> Option<&S> {
        self.find::<S>().and_then(|v| v.downcast_ref::<S>())
    }

    pub(crate) fn get_arc<S: Send + Sync + 'static>(&self) -> Option<Arc<S>> {
        self.find::<S>().cloned().and_then(|v| v.downcast::<S>().ok())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_function_value_wins_over_the_app_value() {
        let mut function = StateMap::default();
        function.insert(Arc::new(1u32));
        let mut app = StateMap::default();
        app.insert(Arc::new(2u32));
        app.insert(Arc::new("app".to_string()));
        let states = States { function: Arc::new(function), app: Arc::new(app) };
        assert_eq!(states.get::<u32>(), Some(&1));
        assert_eq!(states.get::<String>().map(String::as_str), Some("app"));
        assert_eq!(states.get_arc::<String>().as_deref().map(String::as_str), Some("app"));
        assert!(states.get::<u64>().is_none());
    }
}
