//! The local store of `delivery: async` (`queue: {kind: redb}`, docs/oss-bridge.md): accepted
//! events wait here until delivered, failed ones are dead-lettered, and recently accepted ids are
//! remembered to drop duplicates.
//!
//! redb (an embedded, crash-safe B-tree store) rather than a hand-written log: a commit returns
//! only after fsync, a `kill -9` leaves exactly the last committed state, and updates (attempt
//! counts, moves to the dead-letter table) are transactions, not log compaction to get right.
//! Every method blocks on disk; async callers run them on the blocking pool.

use super::queue::{Dead, Queued};
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

/// Sequence number → [`Queued`] (JSON).
const PENDING: TableDefinition<u64, &[u8]> = TableDefinition::new("pending");
/// Sequence number → [`Dead`] (JSON).
const DEAD: TableDefinition<u64, &[u8]> = TableDefinition::new("dead");
/// Event id → when it was accepted (Unix ms).
const SEEN: TableDefinition<&str, u64> = TableDefinition::new("seen");

#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Stored (with their sequence numbers); `duplicates` were accepted before, within the window.
    Stored { seqs: Vec<u64>, duplicates: usize },
    /// Storing them would pass the capacity.
    Full,
}

pub struct Store {
    db: Database,
    next_seq: AtomicU64,
    pending: AtomicUsize,
    /// Rows in the dead-letter table, bounded by `dead_capacity`.
    dead: AtomicUsize,
    dead_capacity: usize,
}

fn fail<E: std::fmt::Display>(e: E) -> String {
    format!("the OSS queue store failed: {e}")
}

impl Store {
    /// Opens (or creates) `dir/queue.redb`; after a crash redb recovers the last commit. At
    /// most `dead_capacity` dead letters are kept.
    pub fn open(dir: &Path, dead_capacity: usize) -> Result<Store, String> {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create queue_dir {}: {e}", dir.display()))?;
        let path = dir.join("queue.redb");
        let db = Database::create(&path)
            .map_err(|e| format!("cannot open the OSS queue {}: {e}", path.display()))?;
        let tx = db.begin_write().map_err(fail)?;
        let (last, pending, dead) = {
            let pending = tx.open_table(PENDING).map_err(fail)?;
            let dead = tx.open_table(DEAD).map_err(fail)?;
            tx.open_table(SEEN).map_err(fail)?;
            let last_of = |t: &redb::Table<u64, &[u8]>| -> Result<u64, String> {
                Ok(t.last().map_err(fail)?.map_or(0, |(k, _)| k.value()))
            };
            let last = last_of(&pending)?.max(last_of(&dead)?);
            let count = |t: &redb::Table<u64, &[u8]>| t.len().map_err(fail);
            (last, count(&pending)? as usize, count(&dead)? as usize)
        };
        tx.commit().map_err(fail)?;
        Ok(Store {
            db,
            next_seq: AtomicU64::new(last + 1),
            pending: AtomicUsize::new(pending),
            dead: AtomicUsize::new(dead),
            dead_capacity,
        })
    }

    pub fn pending_count(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// Stores `events` in one durable commit, skipping ids accepted less than `window_ms` ago.
    pub fn enqueue(
        &self,
        events: Vec<Queued>,
        window_ms: u64,
        capacity: usize,
        now_ms: u64,
    ) -> Result<Enqueued, String> {
        if self.pending_count() + events.len() > capacity {
            return Ok(Enqueued::Full);
        }
        let tx = self.db.begin_write().map_err(fail)?;
        let mut seqs = Vec::with_capacity(events.len());
        let mut duplicates = 0;
        {
            let mut pending = tx.open_table(PENDING).map_err(fail)?;
            let mut seen = tx.open_table(SEEN).map_err(fail)?;
            for e in events {
                let before = seen.get(e.id.as_str()).map_err(fail)?.map(|v| v.value());
                if before.is_some_and(|at| now_ms.saturating_sub(at) < window_ms) {
                    duplicates += 1;
                    continue;
                }
                seen.insert(e.id.as_str(), now_ms).map_err(fail)?;
                let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
                let json = serde_json::to_vec(&e).map_err(fail)?;
                pending.insert(seq, json.as_slice()).map_err(fail)?;
                seqs.push(seq);
            }
        }
        tx.commit().map_err(fail)?;
        self.pending.fetch_add(seqs.len(), Ordering::Relaxed);
        Ok(Enqueued::Stored { seqs, duplicates })
    }

    /// Every pending sequence number, oldest first.
    pub fn pending_seqs(&self) -> Result<Vec<u64>, String> {
        let tx = self.db.begin_read().map_err(fail)?;
        let table = tx.open_table(PENDING).map_err(fail)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(fail)? {
            out.push(row.map_err(fail)?.0.value());
        }
        Ok(out)
    }

    pub fn get(&self, seq: u64) -> Result<Option<Queued>, String> {
        let tx = self.db.begin_read().map_err(fail)?;
        let table = tx.open_table(PENDING).map_err(fail)?;
        let row = table.get(seq).map_err(fail)?;
        row.map(|v| serde_json::from_slice(v.value()).map_err(fail))
            .transpose()
    }

    /// The event was delivered: forget it.
    pub fn delivered(&self, seq: u64) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(fail)?;
        let removed = tx
            .open_table(PENDING)
            .map_err(fail)?
            .remove(seq)
            .map_err(fail)?
            .is_some();
        tx.commit().map_err(fail)?;
        if removed {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Records a failed attempt that will be retried.
    pub fn update(&self, seq: u64, entry: &Queued) -> Result<(), String> {
        let tx = self.db.begin_write().map_err(fail)?;
        let json = serde_json::to_vec(entry).map_err(fail)?;
        tx.open_table(PENDING)
            .map_err(fail)?
            .insert(seq, json.as_slice())
            .map_err(fail)?;
        tx.commit().map_err(fail)
    }

    /// Rows in the dead-letter table, as counted on every change (no read of the table).
    pub fn dead_count(&self) -> usize {
        self.dead.load(Ordering::Relaxed)
    }

    /// Whether the dead-letter table holds its capacity.
    pub fn dead_full(&self) -> bool {
        self.dead_count() >= self.dead_capacity
    }

    /// Moves a pending event to the dead-letter table; `Ok(false)` (and it stays pending) when
    /// the table is full.
    pub fn dead_letter(
        &self,
        seq: u64,
        entry: Queued,
        reason: &str,
        now_ms: u64,
    ) -> Result<bool, String> {
        if self.dead_full() {
            return Ok(false);
        }
        let dead = Dead {
            entry,
            reason: reason.to_owned(),
            dead_ms: now_ms,
        };
        let json = serde_json::to_vec(&dead).map_err(fail)?;
        let tx = self.db.begin_write().map_err(fail)?;
        let removed = {
            tx.open_table(DEAD)
                .map_err(fail)?
                .insert(seq, json.as_slice())
                .map_err(fail)?;
            let mut pending = tx.open_table(PENDING).map_err(fail)?;
            let removed = pending.remove(seq).map_err(fail)?.is_some();
            removed
        };
        tx.commit().map_err(fail)?;
        self.dead.fetch_add(1, Ordering::Relaxed);
        if removed {
            self.pending.fetch_sub(1, Ordering::Relaxed);
        }
        Ok(true)
    }

    /// Keeps a notification that could not be mapped, so that nothing is lost; `Ok(None)` when
    /// the dead-letter table is full (the sender is told to retry).
    pub fn dead_letter_body(&self, dead: Dead) -> Result<Option<u64>, String> {
        if self.dead_full() {
            return Ok(None);
        }
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        let json = serde_json::to_vec(&dead).map_err(fail)?;
        let tx = self.db.begin_write().map_err(fail)?;
        tx.open_table(DEAD)
            .map_err(fail)?
            .insert(seq, json.as_slice())
            .map_err(fail)?;
        tx.commit().map_err(fail)?;
        self.dead.fetch_add(1, Ordering::Relaxed);
        Ok(Some(seq))
    }

    pub fn dead(&self) -> Result<Vec<(u64, Dead)>, String> {
        let tx = self.db.begin_read().map_err(fail)?;
        let table = tx.open_table(DEAD).map_err(fail)?;
        let mut out = Vec::new();
        for row in table.iter().map_err(fail)? {
            let (k, v) = row.map_err(fail)?;
            out.push((k.value(), serde_json::from_slice(v.value()).map_err(fail)?));
        }
        Ok(out)
    }

    /// Moves dead-lettered events (all, or the one with sequence `only`) back to pending with
    /// a fresh attempt count and age. Unmapped notifications stay: there is nothing to invoke.
    pub fn replay(&self, only: Option<u64>, now_ms: u64) -> Result<Vec<u64>, String> {
        let dead = self.dead()?;
        let tx = self.db.begin_write().map_err(fail)?;
        let mut seqs = Vec::new();
        {
            let mut dead_table = tx.open_table(DEAD).map_err(fail)?;
            let mut pending = tx.open_table(PENDING).map_err(fail)?;
            for (seq, d) in dead {
                if only.is_some_and(|o| o != seq) || d.entry.function.is_empty() {
                    continue;
                }
                let entry = Queued {
                    attempts: 0,
                    accepted_ms: now_ms,
                    ..d.entry
                };
                let json = serde_json::to_vec(&entry).map_err(fail)?;
                dead_table.remove(seq).map_err(fail)?;
                pending.insert(seq, json.as_slice()).map_err(fail)?;
                seqs.push(seq);
            }
        }
        tx.commit().map_err(fail)?;
        self.pending.fetch_add(seqs.len(), Ordering::Relaxed);
        self.dead.fetch_sub(seqs.len(), Ordering::Relaxed);
        Ok(seqs)
    }

    /// Forgets ids accepted before `cutoff_ms`; they are no longer duplicates.
    pub fn prune_seen(&self, cutoff_ms: u64) -> Result<usize, String> {
        let tx = self.db.begin_write().map_err(fail)?;
        let removed = {
            let mut seen = tx.open_table(SEEN).map_err(fail)?;
            let before = seen.len().map_err(fail)?;
            seen.retain(|_, at| at >= cutoff_ms).map_err(fail)?;
            (before - seen.len().map_err(fail)?) as usize
        };
        tx.commit().map_err(fail)?;
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(id: &str) -> Queued {
        Queued {
            id: id.into(),
            trigger: "t".into(),
            function: "f".into(),
            event: "{}".into(),
            attempts: 0,
            accepted_ms: 1,
            last_error: String::new(),
        }
    }

    #[test]
    fn events_survive_reopening_and_move_between_tables() {
        let dir = std::env::temp_dir().join(format!("fngate-queue-{}", uuid::Uuid::new_v4()));
        let store = Store::open(&dir, 10).unwrap();
        let stored = store
            .enqueue(vec![entry("a"), entry("b"), entry("a")], 1000, 10, 5000)
            .unwrap();
        assert_eq!(
            stored,
            Enqueued::Stored {
                seqs: vec![1, 2],
                duplicates: 1
            }
        );
        assert_eq!(
            store.enqueue(vec![entry("a")], 1000, 10, 5500).unwrap(),
            Enqueued::Stored {
                seqs: vec![],
                duplicates: 1
            }
        );
        assert_eq!(
            store.enqueue(vec![entry("a")], 1000, 10, 6000).unwrap(),
            Enqueued::Stored {
                seqs: vec![3],
                duplicates: 0
            },
            "outside the window"
        );
        assert_eq!(
            store.enqueue(vec![entry("x"); 8], 1000, 10, 6000).unwrap(),
            Enqueued::Full
        );
        store.delivered(1).unwrap();
        let mut e = store.get(2).unwrap().unwrap();
        e.attempts = 3;
        store.dead_letter(2, e.clone(), "gave up", 7000).unwrap();
        drop(store);

        // Reopened with room for two dead letters: the one there counts.
        let store = Store::open(&dir, 2).unwrap();
        assert_eq!(store.pending_seqs().unwrap(), vec![3]);
        assert_eq!(store.pending_count(), 1);
        let dead = store.dead().unwrap();
        assert_eq!(dead.len(), 1);
        assert_eq!(
            (
                dead[0].0,
                dead[0].1.reason.as_str(),
                dead[0].1.entry.attempts
            ),
            (2, "gave up", 3)
        );
        let body = |event: &str| Dead {
            entry: Queued {
                function: String::new(),
                event: event.into(),
                ..entry("u")
            },
            reason: "unrecognised".into(),
            dead_ms: 8000,
        };
        let kept = store.dead_letter_body(body("junk"));
        assert_eq!(kept, Ok(Some(4)));
        assert!(store.dead_full());
        assert_eq!(store.dead_letter_body(body("more")), Ok(None));
        let e3 = store.get(3).unwrap().unwrap();
        assert_eq!(store.dead_letter(3, e3, "gave up", 8000), Ok(false));
        assert_eq!(
            store.pending_seqs().unwrap(),
            vec![3],
            "kept pending when full"
        );
        assert_eq!(
            store.replay(None, 9000).unwrap(),
            vec![2],
            "the unmapped body stays"
        );
        assert_eq!(store.get(2).unwrap().unwrap().attempts, 0);
        assert_eq!(store.dead().unwrap().len(), 1);
        assert!(!store.dead_full(), "a replay makes room");
        assert_eq!(
            store.enqueue(vec![entry("new")], 1000, 10, 9000).unwrap(),
            Enqueued::Stored {
                seqs: vec![5],
                duplicates: 0
            },
            "sequence numbers are never reused"
        );
        assert_eq!(
            store.prune_seen(8500).unwrap(),
            2,
            "a and b were accepted before"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
