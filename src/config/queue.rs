//! `oss_bridge.queue` (docs/configuration.md): redb in a directory (the default, one gateway) or a
//! Redis stream shared by several gateways (docs/scaling.md). `queue_dir: D` is kept as the
//! shorthand of `queue: {kind: redb, dir: D}`.

use super::file::OssBridgeFile;
use super::validate::at_span;
use super::{Delivery, Problem, QueueSettings, RedisQueue, Secret};
use std::path::Path;
use std::time::Duration;

/// How long a consumer that stopped renewing its events keeps them, unless set.
const VISIBILITY_TIMEOUT: Duration = Duration::from_secs(60);

/// A Redis URL (`key` names it in the message), checked as the client will parse it. It may
/// carry a password: the message does not repeat it.
pub(super) fn redis_url(
    url: &serde_saphyr::Spanned<super::value::Text>,
    key: &str,
    problems: &mut Vec<Problem>,
) -> Secret {
    if redis::Client::open(url.value.0.as_str()).is_err() {
        problems.push(at_span(
            url,
            format!("{key} is not a Redis URL (redis://[user:password@]host:port[/db])"),
        ));
    }
    Secret(url.value.0.clone())
}

pub(super) fn queue(
    b: &OssBridgeFile,
    delivery: Delivery,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<QueueSettings> {
    let settings = match (&b.queue_dir, &b.queue) {
        (Some(dir), Some(_)) => {
            problems.push(at_span(
                dir,
                "oss_bridge: queue_dir is the shorthand of queue: {kind: redb, dir: ...}; set one of them",
            ));
            None
        }
        (Some(dir), None) => Some(QueueSettings::Redb {
            dir: base_dir.join(&dir.value.0),
        }),
        (None, Some(q)) => settings(q, base_dir, problems),
        (None, None) => None,
    };
    if delivery == Delivery::Async && b.queue_dir.is_none() && b.queue.is_none() {
        problems.push(at_span(&b.path, "oss_bridge: delivery async needs a queue (queue: {kind: redb, dir: ...} or {kind: redis, url: ...}) where accepted events are kept until delivered"));
    }
    settings
}

fn settings(
    q: &serde_saphyr::Spanned<super::file::QueueFile>,
    base_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<QueueSettings> {
    let f = &q.value;
    // Keys that belong to the other kind are errors, not silently ignored.
    let stray = |keys: &[(&str, bool)], kind: &str, problems: &mut Vec<Problem>| {
        for (key, set) in keys {
            if *set {
                problems.push(at_span(
                    q,
                    format!("oss_bridge.queue.{key} does not apply to kind {kind}"),
                ));
            }
        }
    };
    match f.kind.value.0.as_str() {
        "redb" => {
            stray(
                &[
                    ("url", f.url.is_some()),
                    ("stream", f.stream.is_some()),
                    ("group", f.group.is_some()),
                    ("consumer", f.consumer.is_some()),
                    ("visibility_timeout", f.visibility_timeout.is_some()),
                ],
                "redb",
                problems,
            );
            let Some(dir) = &f.dir else {
                problems.push(at_span(q, "oss_bridge.queue: kind redb needs dir"));
                return None;
            };
            Some(QueueSettings::Redb {
                dir: base_dir.join(&dir.value.0),
            })
        }
        "redis" => {
            stray(&[("dir", f.dir.is_some())], "redis", problems);
            let Some(url) = &f.url else {
                problems.push(at_span(
                    q,
                    "oss_bridge.queue: kind redis needs url (redis://host:port)",
                ));
                return None;
            };
            let url = redis_url(url, "oss_bridge.queue.url", problems);
            let named = |v: &Option<serde_saphyr::Spanned<super::value::Text>>,
                         key: &str,
                         default: &str,
                         problems: &mut Vec<Problem>| {
                match v {
                    Some(s) if s.value.0.is_empty() => {
                        problems.push(at_span(
                            s,
                            format!("oss_bridge.queue.{key} must not be empty"),
                        ));
                        default.to_owned()
                    }
                    Some(s) => s.value.0.clone(),
                    None => default.to_owned(),
                }
            };
            let visibility_timeout = f.visibility_timeout.map_or(VISIBILITY_TIMEOUT, |d| d.0);
            if visibility_timeout < Duration::from_secs(1) {
                problems.push(at_span(
                    q,
                    "oss_bridge.queue.visibility_timeout must be at least 1s",
                ));
            }
            Some(QueueSettings::Redis(RedisQueue {
                url,
                stream: named(&f.stream, "stream", "fngate:oss", problems),
                group: named(&f.group, "group", "fngate", problems),
                consumer: f
                    .consumer
                    .as_ref()
                    .map(|_| named(&f.consumer, "consumer", "", problems)),
                visibility_timeout,
            }))
        }
        other => {
            problems.push(at_span(
                &f.kind,
                format!("oss_bridge.queue.kind {other:?}: expected redb or redis"),
            ));
            None
        }
    }
}
