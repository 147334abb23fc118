//! Who may call what (docs/security.md): `auth:` on APIs and routes, the API-key table,
//! `rate_limit:` and `cors:`. Each problem is reported at its place.

use super::file::{ApiKeyFile, ApiKeysFile, CorsFile, RateLimitFile};
use super::validate::at_span;
use super::value::Text;
use super::{
    ApiKey, ApiKeys, Auth, ClusterSettings, Cors, LimitKey, LimitScope, Problem, RateLimit, Secret,
};
use serde_saphyr::Spanned;
use std::path::Path;

type Problems = Vec<Problem>;

/// Where API keys are sent unless `auth.apikey.header` says otherwise.
const DEFAULT_KEY_HEADER: &str = "x-api-key";

/// Distinct keys a rate limit tracks at once unless `max_keys` says otherwise.
const DEFAULT_MAX_KEYS: usize = 100_000;

pub(super) fn auth(a: Option<&Spanned<Text>>, problems: &mut Problems) -> Option<Auth> {
    let a = a?;
    Some(match a.value.0.as_str() {
        "none" => Auth::None,
        "apikey" => Auth::ApiKey,
        "jdcloud" => Auth::Jdcloud,
        other => {
            problems.push(at_span(
                a,
                format!("auth {other:?}: expected none, apikey or jdcloud"),
            ));
            Auth::None
        }
    })
}

/// What a key's scope may name.
pub(super) struct Known<'a> {
    pub apis: Vec<&'a str>,
    pub routes: Vec<&'a str>,
}

pub(super) fn api_keys(
    file: Option<&ApiKeysFile>,
    base_dir: &Path,
    known: &Known,
    problems: &mut Problems,
) -> ApiKeys {
    let Some(file) = file else {
        return ApiKeys {
            header: DEFAULT_KEY_HEADER.into(),
            ..ApiKeys::default()
        };
    };
    let header = file
        .header
        .as_ref()
        .map_or(DEFAULT_KEY_HEADER.to_owned(), |h| {
            let name = h.value.0.to_ascii_lowercase();
            if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                problems.push(at_span(
                    h,
                    format!("auth.apikey.header {name:?} is not a header name"),
                ));
            }
            name
        });
    let mut keys: Vec<ApiKey> = file
        .keys
        .iter()
        .map(|k| api_key(k, known, problems))
        .collect();
    if let Some(path) = &file.keys_file {
        let full = base_dir.join(&path.value.0);
        let read = std::fs::read_to_string(&full)
            .map_err(|e| format!("cannot read {}: {e}", full.display()))
            .and_then(|text| {
                serde_saphyr::from_str::<Vec<Spanned<ApiKeyFile>>>(&text)
                    .map_err(|e| format!("{}: {e}", full.display()))
            });
        match read {
            Ok(list) => keys.extend(list.iter().map(|k| api_key(k, known, problems))),
            Err(e) => problems.push(at_span(path, format!("auth.apikey.keys_file: {e}"))),
        }
    }
    let mut seen = std::collections::HashSet::new();
    for (i, k) in keys.iter().enumerate() {
        if !seen.insert(k.key.0.clone()) {
            let message = "auth.apikey: the same key is listed twice";
            match (file.keys.get(i), &file.keys_file) {
                (Some(inline), _) => problems.push(at_span(&inline.value.key, message)),
                (None, Some(path)) => problems.push(at_span(path, message)),
                (None, None) => {}
            }
        }
    }
    ApiKeys {
        header,
        query: file.query.as_ref().map(|q| q.value.0.clone()),
        keys,
    }
}

fn api_key(k: &Spanned<ApiKeyFile>, known: &Known, problems: &mut Problems) -> ApiKey {
    let key = &k.value.key;
    // Short keys can be guessed; the header value must be sendable as it is.
    if key.value.0.len() < 16 || !key.value.0.bytes().all(|b| b.is_ascii_graphic()) {
        problems.push(at_span(
            key,
            "auth.apikey: a key needs at least 16 visible ASCII characters",
        ));
    }
    let mut list = |l: &Option<Vec<Spanned<Text>>>, what: &str, names: &[&str]| {
        l.as_ref().map(|v| {
            v.iter()
                .map(|s| {
                    if !names.contains(&s.value.0.as_str()) {
                        let m = format!("auth.apikey: {what} {:?} does not exist", s.value.0);
                        problems.push(at_span(s, m));
                    }
                    s.value.0.clone()
                })
                .collect()
        })
    };
    let apis = list(&k.value.apis, "api", &known.apis);
    let routes = list(&k.value.routes, "route", &known.routes);
    ApiKey {
        key: Secret(key.value.0.clone()),
        user: k.value.user.clone().map_or_else(String::new, |u| u.0),
        account_id: k.value.account_id.clone().map_or_else(String::new, |a| a.0),
        apis,
        routes,
    }
}

pub(super) fn rate_limit(r: Option<&RateLimitFile>, problems: &mut Problems) -> Option<RateLimit> {
    let r = r?;
    let requests = r.requests.value.0;
    let per = r.per.value.0;
    if requests == 0 {
        problems.push(at_span(
            &r.requests,
            "rate_limit.requests must be at least 1",
        ));
    }
    if per.is_zero() {
        problems.push(at_span(&r.per, "rate_limit.per must be longer than 0"));
    }
    let burst = r.burst.as_ref().map_or(requests, |b| b.value.0);
    if let Some(b) = r.burst.as_ref().filter(|b| b.value.0 == 0) {
        problems.push(at_span(b, "rate_limit.burst must be at least 1"));
    }
    let key = match r.key.as_ref().map(|k| k.value.0.as_str()) {
        None | Some("ip") => LimitKey::Ip,
        Some("api_key") => LimitKey::ApiKey,
        Some("route") => LimitKey::Route,
        Some(other) => {
            if let Some(k) = &r.key {
                problems.push(at_span(
                    k,
                    format!("rate_limit.key {other:?}: expected ip, api_key or route"),
                ));
            }
            LimitKey::Ip
        }
    };
    Some(RateLimit {
        requests: requests.max(1),
        per: if per.is_zero() {
            std::time::Duration::from_secs(1)
        } else {
            per
        },
        burst: burst.max(1),
        key,
        max_keys: r.max_keys.map_or(DEFAULT_MAX_KEYS, |m| m.0.max(1)),
        scope: match r.scope.as_ref().map(|s| s.value.0.as_str()) {
            None | Some("local") => LimitScope::Local,
            Some("cluster") => LimitScope::Cluster,
            Some(other) => {
                if let Some(s) = &r.scope {
                    problems.push(at_span(
                        s,
                        format!("rate_limit.scope {other:?}: expected local or cluster"),
                    ));
                }
                LimitScope::Local
            }
        },
    })
}

/// How often gateways sync cluster-wide counts unless `cluster.sync` says otherwise.
const DEFAULT_SYNC: std::time::Duration = std::time::Duration::from_millis(100);

/// `cluster:`; a `scope: cluster` limit needs it.
pub(super) fn cluster(
    file: &super::file::FileConfig,
    problems: &mut Problems,
) -> Option<ClusterSettings> {
    let limits = file.apis.iter().flat_map(|a| {
        let routes = a.value.routes.iter().map(|r| r.value.rate_limit.as_ref());
        std::iter::once(a.value.rate_limit.as_ref()).chain(routes)
    });
    let cluster_scopes = limits
        .flatten()
        .filter_map(|l| l.scope.as_ref())
        .filter(|s| s.value.0 == "cluster");
    let Some(c) = &file.cluster else {
        for s in cluster_scopes {
            problems.push(at_span(
                s,
                "rate_limit.scope cluster needs cluster.redis (the Redis the gateways share)",
            ));
        }
        return None;
    };
    let redis = super::queue::redis_url(&c.value.redis, "cluster.redis", problems);
    let sync = c.value.sync.as_ref().map_or(DEFAULT_SYNC, |s| s.value.0);
    if let Some(s) = c
        .value
        .sync
        .as_ref()
        .filter(|s| s.value.0 < std::time::Duration::from_millis(10))
    {
        problems.push(at_span(s, "cluster.sync must be at least 10ms"));
    }
    Some(ClusterSettings {
        redis,
        sync,
        key_prefix: c
            .value
            .key_prefix
            .as_ref()
            .map_or_else(|| "fngate:rl".to_owned(), |p| p.0.clone()),
    })
}

pub(super) fn cors(c: Option<&Spanned<CorsFile>>, problems: &mut Problems) -> Option<Cors> {
    let spanned = c?;
    let c = &spanned.value;
    let texts = |l: &[Spanned<Text>]| {
        l.iter()
            .map(|s| s.value.0.trim().to_owned())
            .collect::<Vec<_>>()
    };
    let allow_origins = texts(&c.allow_origins);
    for o in &c.allow_origins {
        let v = o.value.0.trim();
        let ok = v == "*"
            || (v.starts_with("http://") || v.starts_with("https://")) && !v.ends_with('/');
        if !ok {
            problems.push(at_span(
                o,
                format!("cors.allow_origins: {v:?} is not * or an origin like https://example.com"),
            ));
        }
    }
    let allow_methods: Vec<String> = texts(&c.allow_methods)
        .into_iter()
        .map(|m| m.to_ascii_uppercase())
        .collect();
    for (m, s) in allow_methods.iter().zip(&c.allow_methods) {
        if m != "*" && http::Method::from_bytes(m.as_bytes()).is_err() {
            problems.push(at_span(
                s,
                format!("cors.allow_methods: {m:?} is not a method"),
            ));
        }
    }
    let headers = |l: &[Spanned<Text>], what: &str, problems: &mut Problems| {
        l.iter()
            .map(|h| {
                let name = h.value.0.trim().to_ascii_lowercase();
                if name != "*" && http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    problems.push(at_span(
                        h,
                        format!("cors.{what}: {name:?} is not a header name"),
                    ));
                }
                name
            })
            .collect::<Vec<_>>()
    };
    let allow_headers = headers(&c.allow_headers, "allow_headers", problems);
    let expose_headers = headers(&c.expose_headers, "expose_headers", problems);
    let allow_credentials = c.allow_credentials.as_ref().is_some_and(|b| b.value.0);
    if allow_credentials && allow_origins.iter().any(|o| o == "*") {
        let at = c
            .allow_credentials
            .as_ref()
            .map_or_else(|| at_span(spanned, ""), |b| at_span(b, ""));
        problems.push(Problem {
            message: "cors: allow_credentials cannot be used with allow_origins \"*\" (browsers refuse it); list the origins".into(),
            ..at
        });
    }
    if allow_origins.is_empty() {
        problems.push(at_span(
            spanned,
            "cors.allow_origins needs at least one origin (or *)",
        ));
    }
    Some(Cors {
        allow_origins,
        allow_methods,
        allow_headers,
        expose_headers,
        allow_credentials,
        max_age: c.max_age.map(|d| d.0),
    })
}

/// Routes that ask for API keys or signatures need some to check against.
pub(super) fn check_key_use(
    keys: &ApiKeys,
    jdcloud: &super::JdcloudAuth,
    routes: &[super::Route],
    route_spans: &[serde_saphyr::Location],
    problems: &mut Problems,
) {
    for (r, at) in routes.iter().zip(route_spans) {
        let missing = match r.auth {
            Auth::ApiKey if keys.keys.is_empty() => "auth apikey but auth.apikey lists no keys",
            Auth::Jdcloud if jdcloud.credentials.is_empty() => {
                "auth jdcloud but auth.jdcloud lists no credentials"
            }
            _ => continue,
        };
        problems.push(super::validate::at(
            at,
            format!("route {:?} has {missing}", r.path),
        ));
    }
}

pub(super) fn jdcloud(
    file: Option<&super::file::JdcloudFile>,
    problems: &mut Problems,
) -> super::JdcloudAuth {
    let credentials = file.map_or(&[][..], |f| &f.credentials[..]);
    let mut seen = std::collections::HashSet::new();
    let credentials = credentials
        .iter()
        .map(|c| {
            let c = &c.value;
            if c.access_key.value.0.is_empty() || !seen.insert(c.access_key.value.0.clone()) {
                problems.push(at_span(
                    &c.access_key,
                    "auth.jdcloud: access keys must be set and unique",
                ));
            }
            if c.secret_key.value.0.len() < 16 {
                problems.push(at_span(
                    &c.secret_key,
                    "auth.jdcloud: a secret key needs at least 16 characters",
                ));
            }
            super::JdcloudCredential {
                access_key: c.access_key.value.0.clone(),
                secret_key: Secret(c.secret_key.value.0.clone()),
                user: c.user.clone().map_or_else(String::new, |u| u.0),
                account_id: c.account_id.clone().map_or_else(String::new, |a| a.0),
            }
        })
        .collect();
    super::JdcloudAuth {
        credentials,
        max_skew: file
            .and_then(|f| f.max_skew)
            .map_or(std::time::Duration::from_secs(300), |d| d.0),
        max_nonces: file
            .and_then(|f| f.max_nonces)
            .map_or(1_000_000, |m| m.0.max(1)),
    }
}
