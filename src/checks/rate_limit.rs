//! `rate_limit:` — a token bucket (GCRA, governor) per client IP, per admitted API key, or one for
//! the whole route or API. Answers 429 with `Retry-After`; every answer of a limited route
//! carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (the IETF draft's
//! names, as Kong sends them).
//!
//! Memory stays bounded: above `max_keys` tracked keys, the keys that are back to a full bucket
//! are dropped; if the live ones are still too many (a flood of distinct addresses), requests
//! share 1,024 buckets by hash of their key until the table has room again, which limits
//! those clients more strictly than configured, never less.

use super::cluster_limit::{ClusterLimiter, ClusterSync, Decision};
use super::{Admitted, Check, Request, Verdict};
use crate::config::{LimitKey, LimitScope, RateLimit};
use crate::errors::GatewayError;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// Buckets shared by hash when the table is full.
const OVERFLOW_BUCKETS: u64 = 1024;

#[derive(Clone, PartialEq, Eq, Hash)]
pub(super) enum Key {
    Ip(IpAddr),
    /// A hash of the admitted key: no copy of it per request.
    Credential(u64),
    All,
    /// One of the shared buckets used while the table is full.
    Overflow(u64),
}

type Keyed =
    RateLimiter<Key, DefaultKeyedStateStore<Key>, DefaultClock, StateInformationMiddleware>;

/// One limit's buckets; an API-wide limit is shared by the API's routes.
pub struct Limiter {
    limiter: Keyed,
    by: LimitKey,
    requests: u32,
    /// Time to earn one request back.
    per_request: Duration,
    max_keys: usize,
    hasher: foldhash::fast::RandomState,
    /// `scope: cluster`: counted across the gateways; the buckets above stand in while Redis
    /// cannot be reached.
    cluster: Option<Arc<ClusterLimiter>>,
}

impl Limiter {
    /// `cluster`: the sync and this limit's name in Redis, for `scope: cluster`.
    pub fn new(limit: &RateLimit, cluster: Option<(&ClusterSync, &str)>) -> Limiter {
        let per_request = (limit.per / limit.requests).max(Duration::from_nanos(1));
        let burst = NonZeroU32::new(limit.burst).unwrap_or(NonZeroU32::MIN);
        // `with_period` fails only for a zero period, excluded above.
        let quota = Quota::with_period(per_request)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
            .allow_burst(burst);
        Limiter {
            limiter: RateLimiter::dashmap(quota).with_middleware::<StateInformationMiddleware>(),
            by: limit.key,
            requests: limit.requests,
            per_request,
            max_keys: limit.max_keys,
            hasher: foldhash::fast::RandomState::default(),
            cluster: cluster
                .filter(|_| limit.scope == LimitScope::Cluster)
                .map(|(sync, name)| {
                    ClusterLimiter::new(limit.requests, limit.per, limit.max_keys, name, sync)
                }),
        }
    }

    fn key(&self, req: &Request<'_>, admitted: &Admitted) -> Key {
        let ip = || req.source_ip.map_or(Key::All, Key::Ip);
        let key = match self.by {
            LimitKey::Route => Key::All,
            LimitKey::Ip => ip(),
            // A route without API keys is limited by address.
            LimitKey::ApiKey => admitted
                .identity
                .as_ref()
                .map_or_else(ip, |i| Key::Credential(self.hasher.hash_one(&i.api_key))),
        };
        if self.limiter.len() < self.max_keys || key == Key::All {
            return key;
        }
        self.limiter.retain_recent();
        if self.limiter.len() < self.max_keys {
            return key;
        }
        Key::Overflow(self.hasher.hash_one(&key) % OVERFLOW_BUCKETS)
    }
}

pub struct RateLimitCheck {
    limiter: Arc<Limiter>,
}

impl RateLimitCheck {
    pub fn new(limiter: Arc<Limiter>) -> RateLimitCheck {
        RateLimitCheck { limiter }
    }
}

fn decimal(n: u64) -> Vec<u8> {
    itoa::Buffer::new().format(n).as_bytes().to_vec()
}

/// Whole seconds, rounded up.
fn seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

impl RateLimitCheck {
    /// A limit per key on a signed route waits for the signature (checked with the body): a
    /// key that is only claimed must not spend its owner's bucket.
    fn waits_for_signature(&self, admitted: &Admitted) -> bool {
        self.limiter.by == LimitKey::ApiKey && admitted.pending.is_some()
    }
}

impl Check for RateLimitCheck {
    fn check(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict {
        if self.waits_for_signature(admitted) {
            return Verdict::Continue;
        }
        self.take(req, admitted)
    }

    fn check_body(&self, req: &Request<'_>, _body: &[u8], admitted: &mut Admitted) -> Verdict {
        let signed = admitted
            .identity
            .as_ref()
            .is_some_and(|i| i.auth_type == "jdcloud");
        match self.limiter.by == LimitKey::ApiKey && signed {
            true => self.take(req, admitted),
            false => Verdict::Continue,
        }
    }
}

impl RateLimitCheck {
    fn take(&self, req: &Request<'_>, admitted: &mut Admitted) -> Verdict {
        let l = &*self.limiter;
        let limit = ("RateLimit-Limit", decimal(l.requests.into()));
        if let Some(cluster) = &l.cluster {
            let (key, name) = cluster_key(l.by, req, admitted);
            match cluster.take(key, name) {
                Decision::Admit { remaining, reset_s } => {
                    // The local bucket is spent too, so that a fall-back starts from it.
                    let _ = l.limiter.check_key(&l.key(req, admitted));
                    admitted.headers.extend([
                        limit,
                        ("RateLimit-Remaining", decimal(remaining)),
                        ("RateLimit-Reset", decimal(reset_s)),
                    ]);
                    return Verdict::Continue;
                }
                Decision::Refuse { reset_s } => {
                    let wait = reset_s.max(1);
                    admitted.headers.extend([
                        limit,
                        ("RateLimit-Remaining", b"0".to_vec()),
                        ("RateLimit-Reset", decimal(wait)),
                    ]);
                    return Verdict::Refuse(GatewayError::RateLimited { retry_after: wait });
                }
                Decision::Local => {}
            }
        }
        let key = l.key(req, admitted);
        match l.limiter.check_key(&key) {
            Ok(state) => {
                let remaining = state.remaining_burst_capacity();
                let used = state.quota().burst_size().get() - remaining;
                let reset = seconds(l.per_request * used);
                admitted.headers.extend([
                    limit,
                    ("RateLimit-Remaining", decimal(remaining.into())),
                    ("RateLimit-Reset", decimal(reset)),
                ]);
                Verdict::Continue
            }
            Err(not_until) => {
                let wait = seconds(not_until.wait_time_from(l.limiter.clock().now())).max(1);
                admitted.headers.extend([
                    limit,
                    ("RateLimit-Remaining", b"0".to_vec()),
                    ("RateLimit-Reset", decimal(wait)),
                ]);
                Verdict::Refuse(GatewayError::RateLimited { retry_after: wait })
            }
        }
    }
}

type Name<'a> = Box<dyn FnOnce() -> String + 'a>;

/// A request's key for a cluster-wide limit, and its name in Redis: the same on every gateway,
/// and for API keys a digest, never the credential.
fn cluster_key<'a>(by: LimitKey, req: &Request<'_>, admitted: &'a Admitted) -> (Key, Name<'a>) {
    let by_ip = || -> (Key, Name<'a>) {
        match req.source_ip {
            Some(ip) => (Key::Ip(ip), Box::new(move || ip.to_string())),
            None => (Key::All, Box::new(|| "all".to_owned())),
        }
    };
    match (by, admitted.identity.as_ref()) {
        (LimitKey::Route, _) => (Key::All, Box::new(|| "all".to_owned())),
        (LimitKey::ApiKey, Some(i)) => {
            let key = &i.api_key;
            let local = foldhash::fast::FixedState::with_seed(0).hash_one(key);
            let name = move || {
                let digest = ring::digest::digest(&ring::digest::SHA256, key.as_bytes());
                let hex: String = digest.as_ref()[..12]
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                format!("key-{hex}")
            };
            (Key::Credential(local), Box::new(name))
        }
        (LimitKey::Ip | LimitKey::ApiKey, _) => by_ip(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_keys: usize) -> Limiter {
        Limiter::new(
            &RateLimit {
                requests: 1,
                per: Duration::from_secs(3600),
                burst: 1,
                key: LimitKey::Ip,
                max_keys,
                scope: LimitScope::Local,
            },
            None,
        )
    }

    #[test]
    fn cluster_names_are_alike_on_every_gateway_and_never_the_credential() {
        let none = |_: &str| None;
        let req = Request {
            method: &http::Method::GET,
            path: "/",
            query: "",
            header: &none,
            source_ip: Some(IpAddr::from([192, 0, 2, 7])),
        };
        let admitted = Admitted {
            identity: Some(Arc::new(crate::checks::Identity {
                auth_type: "apikey",
                api_key: "sk-live-secret".into(),
                ..Default::default()
            })),
            ..Default::default()
        };
        let name = |by| cluster_key(by, &req, &admitted).1();
        let by_key = name(LimitKey::ApiKey);
        assert!(by_key.starts_with("key-") && by_key.len() == 28, "{by_key}");
        assert!(!by_key.contains("secret"));
        assert_eq!(by_key, name(LimitKey::ApiKey), "the same each time");
        assert_eq!(name(LimitKey::Ip), "192.0.2.7");
        assert_eq!(name(LimitKey::Route), "all");
        let anonymous = Admitted::default();
        assert_eq!(
            cluster_key(LimitKey::ApiKey, &req, &anonymous).1(),
            "192.0.2.7"
        );
    }

    #[test]
    fn a_flood_of_addresses_keeps_the_table_bounded() {
        let l = Arc::new(limit(100));
        let check = RateLimitCheck::new(l.clone());
        let none = |_: &str| None;
        let mut refused = 0;
        for i in 0..20_000u32 {
            let ip = IpAddr::from(i.to_be_bytes());
            let req = Request {
                method: &http::Method::GET,
                path: "/",
                query: "",
                header: &none,
                source_ip: Some(ip),
            };
            if let Verdict::Refuse(_) = check.check(&req, &mut Admitted::default()) {
                refused += 1;
            }
        }
        // 100 addresses had their own bucket, the rest shared 1,024: most of those were refused.
        assert!(
            l.limiter.len() <= 100 + OVERFLOW_BUCKETS as usize,
            "{}",
            l.limiter.len()
        );
        assert!(
            refused >= 20_000 - 100 - OVERFLOW_BUCKETS as usize,
            "{refused}"
        );
    }
}
