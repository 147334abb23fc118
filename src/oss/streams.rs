//! The OSS queue on a Redis stream (`queue: {kind: redis}`, docs/scaling.md), shared by every
//! gateway of one consumer group. Keys, all beginning with the stream's name `S`:
//! - `S`: accepted events, one entry each (field `e`: a [`Queued`] as JSON), read through the
//!   group; an entry is acknowledged and deleted once its function answered 2xx;
//! - `S:retry`: a sorted set of events waiting for their next attempt, scored by when;
//! - `S:dead`: a stream of dead letters (field `d`: a [`Dead`] as JSON);
//! - `S:seen:ID`: an event id accepted within the dedup window (`SET NX PX`).
//!
//! Each change that moves an event between them is one Lua script, so Redis applies it whole:
//! an event is never in two places, nor in none.

use super::queue::{Accepted, Dead, Queued};
use crate::config::RedisQueue;
use crate::remote::within;
use redis::aio::ConnectionManager;
use redis::{Script, Value};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Stores a notification's events: refused whole when the queue would pass its capacity; an
/// id seen within the window is counted as a duplicate and not stored again.
const ENQUEUE: &str = r"
local n = (#ARGV - 3) / 2
if redis.call('XLEN', KEYS[1]) + redis.call('ZCARD', KEYS[2]) + n > tonumber(ARGV[1]) then
  return -1
end
local queued, dups = 0, 0
for i = 4, #ARGV, 2 do
  local fresh = true
  if tonumber(ARGV[2]) > 0 then
    fresh = redis.call('SET', ARGV[3] .. ARGV[i], '1', 'NX', 'PX', ARGV[2])
  end
  if fresh then
    redis.call('XADD', KEYS[1], '*', 'e', ARGV[i + 1])
    queued = queued + 1
  else
    dups = dups + 1
  end
end
return {queued, dups}
";

/// Delivered: acknowledged and deleted.
const DONE: &str = r"
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
";

/// A failed attempt: the entry leaves the stream for the retry set, unless another gateway has
/// already settled it.
const RETRY: &str = r"
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
redis.call('XDEL', KEYS[1], ARGV[2])
redis.call('ZADD', KEYS[2], ARGV[3], ARGV[4])
return 1
";

/// Retries that are due go back to the stream.
const PROMOTE: &str = r"
local due = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
for _, e in ipairs(due) do
  redis.call('XADD', KEYS[1], '*', 'e', e)
  redis.call('ZREM', KEYS[2], e)
end
return #due
";

/// Given up on (ARGV[2] an entry id) or never mappable (ARGV[2] empty): into the dead-letter
/// stream unless it holds its capacity (then `false`, and the entry stays where it was).
const DEAD: &str = r"
if redis.call('XLEN', KEYS[2]) >= tonumber(ARGV[3]) then return false end
local id = redis.call('XADD', KEYS[2], '*', 'd', ARGV[4])
if ARGV[2] ~= '' then
  redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
  redis.call('XDEL', KEYS[1], ARGV[2])
end
return id
";

/// A dead letter back to the stream, once, even when two gateways replay it at the same time.
const REPLAY: &str = r"
if redis.call('XDEL', KEYS[2], ARGV[1]) == 0 then return 0 end
redis.call('XADD', KEYS[1], '*', 'e', ARGV[2])
return 1
";

/// Consumers (other than ARGV[3]) that hold nothing and have not read for ARGV[2] ms leave the
/// group: gateways that stopped for good. Checked and removed in one script, so a consumer that
/// reads an entry meanwhile is never removed with it (`XGROUP DELCONSUMER` drops what it holds).
/// A live gateway removed while idle is added back by its next read.
const FORGET: &str = r"
local forgotten = {}
for _, c in ipairs(redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])) do
  local f = {}
  for i = 1, #c, 2 do f[c[i]] = c[i + 1] end
  if f['name'] ~= ARGV[3] and f['pending'] == 0 and f['idle'] >= tonumber(ARGV[2]) then
    redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], f['name'])
    forgotten[#forgotten + 1] = f['name']
  end
end
return forgotten
";

pub struct Streams {
    pub(super) con: ConnectionManager,
    pub(super) stream: String,
    retry: String,
    dead: String,
    seen: String,
    pub(super) group: String,
    dead_capacity: usize,
    scripts: Scripts,
    /// As last counted by the consumer, for `/metrics`.
    pending: AtomicUsize,
    dead_count: AtomicUsize,
}

struct Scripts {
    enqueue: Script,
    done: Script,
    retry: Script,
    promote: Script,
    dead: Script,
    replay: Script,
    forget: Script,
}

fn fail(e: impl std::fmt::Display) -> String {
    format!("the OSS queue on Redis failed: {e}")
}

/// Whether `id` looks like a stream entry id (`<ms>-<seq>`).
pub fn is_entry_id(id: &str) -> bool {
    id.split_once('-').is_some_and(|(ms, seq)| {
        [ms, seq]
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
    })
}

impl Streams {
    pub(super) fn new(
        settings: &RedisQueue,
        con: ConnectionManager,
        dead_capacity: usize,
    ) -> Streams {
        let s = &settings.stream;
        Streams {
            con,
            stream: s.clone(),
            retry: format!("{s}:retry"),
            dead: format!("{s}:dead"),
            seen: format!("{s}:seen:"),
            group: settings.group.clone(),
            dead_capacity,
            scripts: Scripts {
                enqueue: Script::new(ENQUEUE),
                done: Script::new(DONE),
                retry: Script::new(RETRY),
                promote: Script::new(PROMOTE),
                dead: Script::new(DEAD),
                replay: Script::new(REPLAY),
                forget: Script::new(FORGET),
            },
            pending: AtomicUsize::new(0),
            dead_count: AtomicUsize::new(0),
        }
    }

    pub(super) async fn enqueue(
        &self,
        events: &[Queued],
        window_ms: u64,
        capacity: usize,
    ) -> Result<Accepted, String> {
        let mut call = self.scripts.enqueue.key(&self.stream);
        call.key(&self.retry)
            .arg(capacity)
            .arg(window_ms)
            .arg(&self.seen);
        for e in events {
            call.arg(&e.id).arg(serde_json::to_string(e).map_err(fail)?);
        }
        let mut con = self.con.clone();
        match within(call.invoke_async::<Value>(&mut con)).await? {
            Value::Int(-1) => Ok(Accepted::Full),
            Value::Array(counts) => match counts.as_slice() {
                [Value::Int(q), Value::Int(d)] => Ok(Accepted::Stored {
                    queued: *q as usize,
                    duplicates: *d as usize,
                }),
                _ => Err(fail("unexpected answer to the enqueue script")),
            },
            _ => Err(fail("unexpected answer to the enqueue script")),
        }
    }

    /// The event was delivered.
    pub(super) async fn done(&self, id: &str) -> Result<(), String> {
        let mut call = self.scripts.done.key(&self.stream);
        call.arg(&self.group).arg(id);
        let mut con = self.con.clone();
        within(call.invoke_async::<Value>(&mut con)).await.map(drop)
    }

    /// Attempt again at `due_ms` (Unix ms), wherever a gateway is free then.
    pub(super) async fn retry(&self, id: &str, due_ms: u64, entry: &Queued) -> Result<(), String> {
        let mut call = self.scripts.retry.key(&self.stream);
        call.key(&self.retry)
            .arg(&self.group)
            .arg(id)
            .arg(due_ms)
            .arg(serde_json::to_string(entry).map_err(fail)?);
        let mut con = self.con.clone();
        within(call.invoke_async::<Value>(&mut con)).await.map(drop)
    }

    /// Due retries back into the stream (at most `limit`); how many.
    pub(super) async fn promote(&self, now_ms: u64, limit: usize) -> Result<usize, String> {
        let mut call = self.scripts.promote.key(&self.stream);
        call.key(&self.retry).arg(now_ms).arg(limit);
        let mut con = self.con.clone();
        within(call.invoke_async::<usize>(&mut con)).await
    }

    /// Into the dead-letter stream: the entry `id` given up on, or (`None`) a notification kept
    /// as received. `Ok(None)` when the dead letters hold their capacity.
    pub(super) async fn dead_letter(
        &self,
        id: Option<&str>,
        dead: &Dead,
    ) -> Result<Option<String>, String> {
        let mut call = self.scripts.dead.key(&self.stream);
        call.key(&self.dead)
            .arg(&self.group)
            .arg(id.unwrap_or(""))
            .arg(self.dead_capacity)
            .arg(serde_json::to_string(dead).map_err(fail)?);
        let mut con = self.con.clone();
        within(call.invoke_async::<Option<String>>(&mut con)).await
    }

    pub(super) async fn dead(&self) -> Result<Vec<(String, Dead)>, String> {
        let mut con = self.con.clone();
        let range = redis::cmd("XRANGE")
            .arg(&self.dead)
            .arg("-")
            .arg("+")
            .to_owned();
        let entries: Value = within(range.query_async(&mut con)).await?;
        Ok(entries_of(entries, "d")
            .into_iter()
            .filter_map(|(id, json)| match serde_json::from_slice(&json) {
                Ok(d) => Some((id, d)),
                Err(e) => {
                    tracing::warn!(target: "fngate::oss", id, "a dead letter that is not fngate's: {e}");
                    None
                }
            })
            .collect())
    }

    /// Dead letters (all, or the one with id `only`) back for delivery with a fresh attempt
    /// count and age; notifications that were never mapped stay. Returns the ids moved.
    pub(super) async fn replay(&self, only: Option<&str>) -> Result<Vec<String>, String> {
        let now = crate::text::now_ms();
        let mut moved = Vec::new();
        for (id, dead) in self.dead().await? {
            if only.is_some_and(|o| o != id) || dead.entry.function.is_empty() {
                continue;
            }
            let entry = Queued {
                attempts: 0,
                accepted_ms: now,
                ..dead.entry
            };
            let mut call = self.scripts.replay.key(&self.stream);
            call.key(&self.dead)
                .arg(&id)
                .arg(serde_json::to_string(&entry).map_err(fail)?);
            let mut con = self.con.clone();
            if within(call.invoke_async::<i64>(&mut con)).await? == 1 {
                moved.push(id);
            }
        }
        Ok(moved)
    }

    /// Removes the group's consumers, other than `own`, that hold nothing and have been idle
    /// for `idle_ms`; their names.
    pub(super) async fn forget(&self, idle_ms: u64, own: &str) -> Result<Vec<String>, String> {
        let mut call = self.scripts.forget.key(&self.stream);
        call.arg(&self.group).arg(idle_ms).arg(own);
        let mut con = self.con.clone();
        within(call.invoke_async::<Vec<String>>(&mut con)).await
    }

    /// Counts what waits and what is dead, for `/metrics`.
    pub(super) async fn count(&self) -> Result<(), String> {
        let mut pipe = redis::pipe();
        pipe.cmd("XLEN").arg(&self.stream);
        pipe.cmd("ZCARD").arg(&self.retry);
        pipe.cmd("XLEN").arg(&self.dead);
        let mut con = self.con.clone();
        let (stream, retry, dead): (usize, usize, usize) =
            within(pipe.query_async(&mut con)).await?;
        self.pending.store(stream + retry, Ordering::Relaxed);
        self.dead_count.store(dead, Ordering::Relaxed);
        Ok(())
    }

    pub(super) fn depths(&self) -> (usize, usize) {
        (
            self.pending.load(Ordering::Relaxed),
            self.dead_count.load(Ordering::Relaxed),
        )
    }
}

/// `[[id, [field, value, ...]], ...]` (XRANGE, XREADGROUP's per-stream list, XAUTOCLAIM's
/// second element) → `(id, value of field)`; a deleted entry (nil fields) is left out.
pub(super) fn entries_of(entries: Value, field: &str) -> Vec<(String, Vec<u8>)> {
    let Value::Array(entries) = entries else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(entries.len());
    for entry in entries {
        let Value::Array(mut parts) = entry else {
            continue;
        };
        if parts.len() != 2 {
            continue;
        }
        let (fields, id) = (parts.pop(), parts.pop());
        let (Some(Value::BulkString(id)), Some(Value::Array(fields))) = (id, fields) else {
            continue;
        };
        let mut fields = fields.into_iter();
        while let (Some(name), Some(value)) = (fields.next(), fields.next()) {
            if let (Value::BulkString(name), Value::BulkString(value)) = (name, value) {
                if name == field.as_bytes() {
                    out.push((String::from_utf8_lossy(&id).into_owned(), value));
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entry_ids_are_milliseconds_and_a_sequence() {
        for ok in ["1733356800000-0", "0-1", "12-345"] {
            assert!(is_entry_id(ok), "{ok}");
        }
        for bad in [
            "",
            "1733356800000",
            "-0",
            "1-",
            "1-a",
            "a-1",
            "1-2-3",
            "1 -2",
            "+",
        ] {
            assert!(!is_entry_id(bad), "{bad}");
        }
    }

    #[test]
    fn entries_are_read_by_field_and_deleted_ones_left_out() {
        let bulk = |s: &str| Value::BulkString(s.as_bytes().to_vec());
        let entries = Value::Array(vec![
            Value::Array(vec![bulk("1-0"), Value::Array(vec![bulk("e"), bulk("{}")])]),
            Value::Array(vec![bulk("2-0"), Value::Nil]),
            Value::Array(vec![
                bulk("3-0"),
                Value::Array(vec![bulk("x"), bulk("1"), bulk("e"), bulk("[]")]),
            ]),
        ]);
        let got = entries_of(entries, "e");
        assert_eq!(
            got,
            vec![
                ("1-0".into(), b"{}".to_vec()),
                ("3-0".into(), b"[]".to_vec())
            ]
        );
    }
}
