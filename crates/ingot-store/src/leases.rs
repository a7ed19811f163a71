//! Leases held in the process, for the stores one engine owns (memory and
//! SQLite): which claimed items are out, under which token. A claim never
//! returns an item that is out; an ack or release must name the current
//! token.

use std::collections::HashMap;

use crate::{Lease, QueueItemId, Result, StoreError, WriteOp};

/// The items this process holds, by their current token.
#[derive(Debug, Default)]
pub(crate) struct LocalLeases {
    held: HashMap<QueueItemId, u64>,
    next: u64,
}

impl LocalLeases {
    pub(crate) fn holds(&self, id: &QueueItemId) -> bool {
        self.held.contains_key(id)
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// Leases `id` under a fresh token.
    pub(crate) fn take(&mut self, id: &QueueItemId) -> Lease {
        self.next += 1;
        self.held.insert(id.clone(), self.next);
        Lease { item: id.clone(), token: self.next }
    }

    /// Whether `lease` is the current lease of its item.
    pub(crate) fn is_current(&self, lease: &Lease) -> bool {
        self.held.get(&lease.item) == Some(&lease.token)
    }

    /// Ends `lease` if it is current (an ack that committed).
    pub(crate) fn end(&mut self, lease: &Lease) {
        if self.is_current(lease) {
            self.held.remove(&lease.item);
        }
    }

    /// Gives the item back, if `lease` is still its lease.
    pub(crate) fn release(&mut self, lease: &Lease) -> Result<()> {
        if !self.is_current(lease) {
            return Err(lost(lease));
        }
        self.held.remove(&lease.item);
        Ok(())
    }

    /// Fails with [`StoreError::LeaseLost`] if an ack in `ops` names a lease
    /// that is not current while its item is still queued (`queued` tells).
    pub(crate) fn check_acks(&self, ops: &[WriteOp], mut queued: impl FnMut(&QueueItemId) -> Result<bool>) -> Result<()> {
        for lease in acks(ops) {
            if !self.is_current(lease) && queued(&lease.item)? {
                return Err(lost(lease));
            }
        }
        Ok(())
    }
}

/// Every lease acked in `ops`, inside guards too.
pub(crate) fn acks(ops: &[WriteOp]) -> Vec<&Lease> {
    let mut out = Vec::new();
    for op in ops {
        match op {
            WriteOp::Ack(lease) => out.push(lease),
            WriteOp::Guarded { then, otherwise, .. } => {
                out.extend(acks(then));
                out.extend(acks(otherwise));
            }
            _ => {}
        }
    }
    out
}

pub(crate) fn lost(lease: &Lease) -> StoreError {
    StoreError::LeaseLost(format!("queue item {} is no longer held under lease {}", lease.item.0, lease.token))
}
