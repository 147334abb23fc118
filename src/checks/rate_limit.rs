//! `rate_limit:` — a token bucket (GCRA, governor) per client IP, per admitted API key, or one for
//! the whole route or API. Answers 429 with `Retry-After`; every answer of a limited route
//! carries `RateLimit-Limit`, `RateLimit-Remaining` and `RateLimit-Reset` (the IETF draft's
//! names, as Kong sends them).
//!
//! Memory stays bounded: above `max_keys` tracked keys, the keys that are back to a full bucket
//! are dropped; if the live ones are still too many (a flood of distinct addresses), requests
//! share 1,024 buckets by hash of their key until the table has room again, which limits
//! those clients more strictly than configured, never less.

use super::{Admitted, Check, Request, Verdict};
use crate::config::{LimitKey, RateLimit};
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
enum Key {
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
}

impl Limiter {
    pub fn new(limit: &RateLimit) -> Limiter {
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
        let key = l.key(req, admitted);
        let limit = ("RateLimit-Limit", decimal(l.requests.into()));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(max_keys: usize) -> Limiter {
        Limiter::new(&RateLimit {
            requests: 1,
            per: Duration::from_secs(3600),
            burst: 1,
            key: LimitKey::Ip,
            max_keys,
        })
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
