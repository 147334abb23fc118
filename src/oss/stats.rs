//! Counters of the bridge: what was received, matched, delivered,
//! retried, dead-lettered. Shared by the request path and the delivery workers.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Debug, Default)]
pub struct Stats {
    /// Notification bodies accepted past the credential check.
    pub notifications: AtomicU64,
    /// Object records in them.
    pub records: AtomicU64,
    /// Records no sender mapping could read.
    pub unmappable: AtomicU64,
    /// Events produced (one per record per matching trigger).
    pub matched: AtomicU64,
    /// Records that matched no trigger (acknowledged, logged).
    pub unmatched: AtomicU64,
    /// Events already accepted within the dedup window.
    pub duplicates: AtomicU64,
    /// Events the function answered 2xx.
    pub delivered: AtomicU64,
    /// Failed attempts that will be tried again.
    pub retried: AtomicU64,
    /// Events given up on (attempts or age) and moved to the dead-letter store.
    pub dead_lettered: AtomicU64,
    /// Events or bodies the full dead-letter store could not take (events stay pending;
    /// bodies are refused with 503).
    pub dead_letters_full: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `name value` pairs, for the admin endpoint.
    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("notifications", get(&self.notifications)),
            ("records", get(&self.records)),
            ("unmappable", get(&self.unmappable)),
            ("matched", get(&self.matched)),
            ("unmatched", get(&self.unmatched)),
            ("duplicates", get(&self.duplicates)),
            ("delivered", get(&self.delivered)),
            ("retried", get(&self.retried)),
            ("dead_lettered", get(&self.dead_lettered)),
            ("dead_letters_full", get(&self.dead_letters_full)),
        ]
    }
}
