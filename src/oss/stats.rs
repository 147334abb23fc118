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
    /// Events taken over from another gateway that held them without renewing (Redis queue).
    pub taken_over: AtomicU64,
}

impl Stats {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// `(name, help, value)` for each counter, for the metrics.
    pub fn snapshot(&self) -> Vec<(&'static str, &'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            (
                "notifications",
                "Notification bodies accepted past the credential check",
                get(&self.notifications),
            ),
            ("records", "Object records in them", get(&self.records)),
            (
                "unmappable",
                "Records no sender mapping could read",
                get(&self.unmappable),
            ),
            (
                "matched",
                "Events produced, one per record per matching trigger",
                get(&self.matched),
            ),
            (
                "unmatched",
                "Records that matched no trigger",
                get(&self.unmatched),
            ),
            (
                "duplicates",
                "Events already accepted within the dedup window",
                get(&self.duplicates),
            ),
            (
                "delivered",
                "Events the function answered 2xx",
                get(&self.delivered),
            ),
            (
                "retried",
                "Failed attempts that will be tried again",
                get(&self.retried),
            ),
            (
                "dead_lettered",
                "Events given up on and moved to the dead-letter store",
                get(&self.dead_lettered),
            ),
            (
                "dead_letters_full",
                "Events or bodies the full dead-letter store could not take",
                get(&self.dead_letters_full),
            ),
            (
                "taken_over",
                "Events taken over from a gateway that stopped renewing them (Redis queue)",
                get(&self.taken_over),
            ),
        ]
    }
}
