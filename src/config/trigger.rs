//! OSS triggers and the bridge endpoint (docs/oss-bridge.md, docs/configuration.md): the seed's `triggerConfig` (inline or the
//! seed's own `ossTrigger.yml` through `config_file:`), event names and wildcards, literal key
//! filters, and the overlap check that S3 applies to notification configurations.

use super::file::{EventsFile, OssBridgeFile, OssTriggerFile, TriggerConfigFile, TriggerDocFile};
use super::validate::{at_span, parse_problem};
use super::{Delivery, OssBridge, OssTrigger, Problem, Secret};
use serde_saphyr::Spanned;
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

/// The event types a trigger can name, in bit order.
pub const EVENT_NAMES: [&str; 6] = [
    "s3:ObjectCreated:Put",
    "s3:ObjectCreated:Post",
    "s3:ObjectCreated:Copy",
    "s3:ObjectCreated:CompleteMultipartUpload",
    "s3:ObjectRemoved:Delete",
    "s3:ObjectRemoved:DeleteMarkerCreated",
];
const CREATED: u8 = 0b00_1111;
const REMOVED: u8 = 0b11_0000;

/// A set of event types. `s3:ObjectCreated:*` is Put, Post, Copy and CompleteMultipartUpload
/// only — not every name with that prefix (MinIO's `s3:ObjectCreated:PutTagging` must not fire
/// it); `s3:ObjectRemoved:*` is Delete and DeleteMarkerCreated, as on S3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EventSet(u8);

impl EventSet {
    pub fn parse(name: &str) -> Option<EventSet> {
        match name {
            "s3:ObjectCreated:*" => Some(EventSet(CREATED)),
            "s3:ObjectRemoved:*" => Some(EventSet(REMOVED)),
            _ => EVENT_NAMES
                .iter()
                .position(|n| *n == name)
                .map(|i| EventSet(1 << i)),
        }
    }

    /// Whether a (normalised) event name is in the set; unknown names never are.
    pub fn contains(self, name: &str) -> bool {
        EVENT_NAMES
            .iter()
            .position(|n| *n == name)
            .is_some_and(|i| self.0 & (1 << i) != 0)
    }

    pub fn intersects(self, other: EventSet) -> bool {
        self.0 & other.0 != 0
    }

    pub fn names(self) -> impl Iterator<Item = &'static str> {
        (0..EVENT_NAMES.len())
            .filter(move |i| self.0 & (1 << i) != 0)
            .map(|i| EVENT_NAMES[i])
    }
}

/// S3's limit on a filter rule value.
const MAX_FILTER_BYTES: usize = 1024;

pub(super) fn triggers(
    files: &[Spanned<OssTriggerFile>],
    function_ids: &HashMap<String, usize>,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Vec<OssTrigger> {
    let mut out: Vec<(OssTrigger, &Spanned<OssTriggerFile>)> = Vec::new();
    for t in files {
        let spec = &t.value;
        let name = spec.name.value.0.clone();
        if name.is_empty() {
            problems.push(at_span(&spec.name, "trigger name must not be empty"));
        }
        if out.iter().any(|(o, _)| o.name == name) {
            problems.push(at_span(
                &spec.name,
                format!("duplicate trigger name {name:?}"),
            ));
        }
        let function = match function_ids.get(&spec.function.value.0) {
            Some(&i) => i,
            None => {
                let f = &spec.function.value.0;
                problems.push(at_span(
                    &spec.function,
                    format!("trigger {name:?} names unknown function {f:?}"),
                ));
                0
            }
        };
        if spec.bucket.value.0.is_empty() {
            problems.push(at_span(
                &spec.bucket,
                format!("trigger {name:?}: bucket must not be empty"),
            ));
        }
        let (events, prefix, suffix) = match (&spec.trigger_config, &spec.config_file) {
            (Some(inline), None) => trigger_config(&name, inline, problems),
            (None, Some(file)) => match load_config_file(&file.value.0, base_dir) {
                Ok(doc) => {
                    // Positions inside the included file are reported with its name.
                    let mut inner = Vec::new();
                    let parsed = trigger_config(&name, &doc.trigger_config, &mut inner);
                    for p in inner {
                        let at = format!("{}:{}:{}", file.value.0, p.line, p.column);
                        problems.push(at_span(file, format!("in {at}: {}", p.message)));
                    }
                    parsed
                }
                Err(why) => {
                    problems.push(at_span(file, format!("trigger {name:?}: {why}")));
                    (EventSet::default(), String::new(), String::new())
                }
            },
            _ => {
                problems.push(at_span(
                    t,
                    format!(
                        "trigger {name:?} needs exactly one of `triggerConfig` and `config_file`"
                    ),
                ));
                (EventSet::default(), String::new(), String::new())
            }
        };
        let trigger = OssTrigger {
            name,
            function,
            bucket: spec.bucket.value.0.clone(),
            events,
            prefix,
            suffix,
        };
        out.push((trigger, t));
    }
    for (i, (a, _)) in out.iter().enumerate() {
        for (b, b_span) in &out[i + 1..] {
            if overlap(a, b) {
                problems.push(at_span(
                    b_span,
                    format!(
                        "triggers {:?} and {:?} overlap: both take {} events on bucket {:?} for keys matching both filters (S3: \"Configurations on the same bucket cannot share a common event type\"); make their events or their prefix/suffix disjoint",
                        a.name,
                        b.name,
                        EventSet(a.events.0 & b.events.0).names().collect::<Vec<_>>().join(", "),
                        a.bucket
                    ),
                ));
            }
        }
    }
    out.into_iter().map(|(t, _)| t).collect()
}

/// S3's rule: same bucket, a common event type, and prefixes and suffixes that can both match
/// one key (an empty one overlaps everything).
pub fn overlap(a: &OssTrigger, b: &OssTrigger) -> bool {
    a.bucket == b.bucket
        && a.events.intersects(b.events)
        && (a.prefix.starts_with(&b.prefix) || b.prefix.starts_with(&a.prefix))
        && (a.suffix.ends_with(&b.suffix) || b.suffix.ends_with(&a.suffix))
}

fn load_config_file(path: &str, base_dir: &Path) -> Result<TriggerDocFile, String> {
    let full = base_dir.join(path);
    let text = std::fs::read_to_string(&full)
        .map_err(|e| format!("cannot read config_file {}: {e}", full.display()))?;
    serde_saphyr::from_str(&text).map_err(|e| {
        let p = parse_problem(&e);
        format!("config_file {path}:{}:{}: {}", p.line, p.column, p.message)
    })
}

fn trigger_config(
    name: &str,
    c: &TriggerConfigFile,
    problems: &mut Vec<Problem>,
) -> (EventSet, String, String) {
    let words: Vec<&str> = match &c.events.value {
        EventsFile::List(list) => list.iter().flat_map(|s| s.split_whitespace()).collect(),
        EventsFile::Words(text) => text.split_whitespace().collect(),
    };
    let mut events = EventSet::default();
    for word in &words {
        match EventSet::parse(word) {
            Some(set) => events.0 |= set.0,
            None => problems.push(at_span(&c.events, unknown_event(name, word))),
        }
    }
    if words.is_empty() {
        problems.push(at_span(
            &c.events,
            format!("trigger {name:?}: events is empty"),
        ));
    }
    let key = c.filter.as_ref().and_then(|f| f.key.as_ref());
    let mut rule = |v: Option<&Spanned<super::value::Text>>, what: &str| {
        let v = v.map_or(String::new(), |s| {
            if s.value.0.len() > MAX_FILTER_BYTES {
                problems.push(at_span(
                    s,
                    format!("trigger {name:?}: {what} is longer than {MAX_FILTER_BYTES} bytes"),
                ));
            }
            s.value.0.clone()
        });
        v
    };
    let prefix = rule(key.and_then(|k| k.prefix.as_ref()), "prefix");
    let suffix = rule(key.and_then(|k| k.suffix.as_ref()), "suffix");
    (events, prefix, suffix)
}

fn unknown_event(trigger: &str, word: &str) -> String {
    let hint = match EventSet::parse(&format!("s3:{word}")) {
        Some(_) => format!(" (did you mean s3:{word}?)"),
        None => String::new(),
    };
    format!(
        "trigger {trigger:?}: unknown event {word:?}{hint}; expected s3:ObjectCreated:* or :Put, :Post, :Copy, :CompleteMultipartUpload, s3:ObjectRemoved:* or :Delete, :DeleteMarkerCreated"
    )
}

pub(super) fn bridge(
    b: &OssBridgeFile,
    base_dir: &Path,
    has_triggers: bool,
    problems: &mut Vec<Problem>,
) -> OssBridge {
    let path = b.path.value.0.clone();
    if !path.starts_with('/') {
        problems.push(at_span(&b.path, "oss_bridge.path must start with '/'"));
    }
    if b.token.value.0.is_empty() {
        problems.push(at_span(&b.token, "oss_bridge.token must not be empty"));
    }
    let delivery = match b.delivery.as_ref().map(|d| d.value.0.as_str()) {
        None | Some("async") => Delivery::Async,
        Some("sync") => Delivery::Sync,
        Some(other) => {
            if let Some(d) = &b.delivery {
                problems.push(at_span(
                    d,
                    format!("oss_bridge.delivery {other:?}: expected sync or async"),
                ));
            }
            Delivery::Sync
        }
    };
    let queue = super::queue::queue(b, delivery, base_dir, problems);
    if let Some(v) = b.verify_sns_signatures.as_ref().filter(|v| v.value.0) {
        problems.push(at_span(v, "oss_bridge.verify_sns_signatures: checking needs AWS's signing certificates, which this build cannot fetch yet; leave it false and keep the bridge token secret"));
    }
    let positive = |v: &Option<Spanned<super::value::Scalar<usize>>>,
                    what: &str,
                    default: usize,
                    problems: &mut Vec<Problem>| match v {
        Some(s) if s.value.0 == 0 => {
            problems.push(at_span(s, format!("oss_bridge.{what} must be at least 1")));
            default
        }
        Some(s) => s.value.0,
        None => default,
    };
    let queue_capacity = positive(&b.queue_capacity, "queue_capacity", 100_000, problems);
    let dead_letter_capacity = positive(
        &b.dead_letter_capacity,
        "dead_letter_capacity",
        10_000,
        problems,
    );
    let workers = positive(&b.workers, "workers", 8, problems);
    let max_attempts = match &b.max_attempts {
        Some(s) if s.value.0 == 0 => {
            problems.push(at_span(s, "oss_bridge.max_attempts must be at least 1"));
            1
        }
        Some(s) => s.value.0,
        None => 3,
    };
    if !has_triggers {
        problems.push(at_span(
            &b.path,
            "oss_bridge without triggers.oss: no notification could invoke anything",
        ));
    }
    OssBridge {
        path,
        token: Secret(b.token.value.0.clone()),
        delivery,
        queue,
        max_attempts,
        max_event_age: b
            .max_event_age
            .map_or(Duration::from_secs(6 * 3600), |d| d.0),
        confirm_subscriptions: b.confirm_subscriptions.is_some_and(|v| v.0),
        subscription_hosts: b.subscription_hosts.iter().map(|h| h.0.clone()).collect(),
        max_body_bytes: b.max_body_bytes.map_or(1024 * 1024, |v| v.0),
        queue_capacity,
        dead_letter_capacity,
        workers,
        dedup_window: b.dedup_window.map_or(Duration::from_secs(600), |d| d.0),
        retry_backoff: b.retry_backoff.map_or(Duration::from_secs(1), |d| d.0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(bucket: &str, events: &str, prefix: &str, suffix: &str) -> OssTrigger {
        OssTrigger {
            name: "t".into(),
            function: 0,
            bucket: bucket.into(),
            events: events.split_whitespace().fold(EventSet::default(), |s, e| {
                EventSet(s.0 | EventSet::parse(e).unwrap().0)
            }),
            prefix: prefix.into(),
            suffix: suffix.into(),
        }
    }

    #[test]
    fn wildcards_expand_to_the_documented_members_only() {
        let created = EventSet::parse("s3:ObjectCreated:*").unwrap();
        let names: Vec<_> = created.names().collect();
        assert_eq!(
            names,
            [
                "s3:ObjectCreated:Put",
                "s3:ObjectCreated:Post",
                "s3:ObjectCreated:Copy",
                "s3:ObjectCreated:CompleteMultipartUpload"
            ]
        );
        assert!(!created.contains("s3:ObjectCreated:PutTagging"));
        assert!(!created.contains("s3:ObjectRemoved:Delete"));
        let removed = EventSet::parse("s3:ObjectRemoved:*").unwrap();
        assert_eq!(
            removed.names().collect::<Vec<_>>(),
            [
                "s3:ObjectRemoved:Delete",
                "s3:ObjectRemoved:DeleteMarkerCreated"
            ]
        );
        assert!(
            EventSet::parse("ObjectCreated:Put").is_none(),
            "names carry the s3: prefix"
        );
        assert!(
            EventSet::parse("s3:objectcreated:put").is_none(),
            "case-sensitive"
        );
        assert!(EventSet::parse("s3:ObjectCreated:PutTagging").is_none());
    }

    #[test]
    fn overlap_follows_s3s_rule() {
        let all = "s3:ObjectCreated:*";
        assert!(overlap(
            &t("b", all, "", ""),
            &t("b", "s3:ObjectCreated:Put", "x/", ".gif")
        ));
        assert!(
            !overlap(&t("b", all, "", ""), &t("c", all, "", "")),
            "other bucket"
        );
        assert!(!overlap(
            &t("b", "s3:ObjectCreated:Put", "", ""),
            &t("b", "s3:ObjectCreated:Post", "", "")
        ));
        assert!(
            !overlap(&t("b", all, "a/", ""), &t("b", all, "b/", "")),
            "disjoint prefixes"
        );
        assert!(
            overlap(&t("b", all, "a/", ""), &t("b", all, "a/b/", "")),
            "nested prefixes"
        );
        assert!(
            !overlap(&t("b", all, "", ".jpg"), &t("b", all, "", ".gif")),
            "disjoint suffixes"
        );
        assert!(overlap(&t("b", all, "", "x.gif"), &t("b", all, "", ".gif")));
        assert!(
            overlap(&t("b", all, "a/", ""), &t("b", all, "", ".gif")),
            "a/x.gif matches both"
        );
        assert!(overlap(
            &t("b", "s3:ObjectRemoved:*", "", ""),
            &t("b", "s3:ObjectRemoved:DeleteMarkerCreated", "", "")
        ));
    }
}
