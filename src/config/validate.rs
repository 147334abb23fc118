//! Semantic checks after parsing: every problem is collected with its line and column, so one
//! `fngate -t` run lists them all.

use super::file::{ApiFile, FileConfig, FunctionFile, RouteFile};
use super::value::Text;
use super::*;
use base64::Engine;
use serde_saphyr::{Location, Spanned};
use std::collections::{HashMap, HashSet};
use std::net::ToSocketAddrs;

type Problems = Vec<Problem>;

pub(super) fn at(loc: &Location, message: impl Into<String>) -> Problem {
    Problem {
        line: loc.line(),
        column: loc.column(),
        message: message.into(),
    }
}

pub(super) fn at_span<T>(s: &Spanned<T>, message: impl Into<String>) -> Problem {
    at(&s.referenced, message)
}

/// A parse error (syntax, unknown key, wrong type, bad scalar) as one positioned problem.
pub(super) fn parse_problem(e: &serde_saphyr::Error) -> Problem {
    let (line, column) = e.location().map_or((0, 0), |l| (l.line(), l.column()));
    // The message without saphyr's source snippet or position: the position is printed first.
    let text = e.without_snippet().to_string();
    let message = match text.rfind(" at line ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    };
    Problem {
        line,
        column,
        message,
    }
}

pub(super) fn validate(file: FileConfig, base_dir: &Path) -> Result<Config, Problems> {
    let mut problems = Vec::new();
    let server = server(&file, base_dir, &mut problems);
    let gateway = gateway(&file, &mut problems);
    let max_body = file
        .limits
        .max_body_bytes
        .map_or(DEFAULT_MAX_BODY_BYTES, |v| v.0);
    let max_reply = file
        .limits
        .max_reply_bytes
        .map_or(DEFAULT_MAX_REPLY_BYTES, |v| v.0);

    let mut functions = Vec::new();
    let mut function_ids = HashMap::new();
    for (name, f) in &file.functions {
        function_ids.insert(name.clone(), functions.len());
        functions.push(function(name, f, max_reply, base_dir, &mut problems));
    }

    let mut apis = Vec::new();
    let mut routes = Vec::new();
    let mut route_spans = Vec::new();
    let mut api_ids = HashSet::new();
    for api in &file.apis {
        if !api_ids.insert(api.value.id.value.0.clone()) {
            problems.push(at_span(
                &api.value.id,
                format!("duplicate api id {:?}", api.value.id.value.0),
            ));
        }
        let index = apis.len();
        let (settings, api_auth) = api_settings(&api.value, &gateway, &mut problems);
        apis.push(settings);
        for route in &api.value.routes {
            let checked = route_settings(
                (index, api_auth),
                &route.value,
                &file.functions,
                &function_ids,
                &functions,
                max_body,
                &mut problems,
            );
            if let Some(r) = checked {
                routes.push(r);
                route_spans.push(route.value.path.referenced);
            }
        }
    }
    if let Err(conflicts) = crate::routing::RouteTable::build(&routes) {
        for c in conflicts {
            problems.push(at(&route_spans[c.route], c.message));
        }
    }
    let known = super::access::Known {
        apis: apis.iter().map(|a| a.id.as_str()).collect(),
        routes: routes.iter().map(|r| r.path.as_str()).collect(),
    };
    let api_keys =
        super::access::api_keys(file.auth.apikey.as_ref(), base_dir, &known, &mut problems);
    let jdcloud = super::access::jdcloud(file.auth.jdcloud.as_ref(), &mut problems);
    super::access::check_key_use(&api_keys, &jdcloud, &routes, &route_spans, &mut problems);
    let cluster = super::access::cluster(&file, &mut problems);
    let trigger_files = file.triggers.as_ref().map_or(&[][..], |t| &t.oss[..]);
    let triggers = super::trigger::triggers(trigger_files, &function_ids, base_dir, &mut problems);
    let oss_bridge = file.oss_bridge.as_ref().map(|b| {
        let bridge = super::trigger::bridge(b, base_dir, !triggers.is_empty(), &mut problems);
        let table = crate::routing::RouteTable::build(&routes);
        let shadowed = table.ok().is_some_and(|t| {
            !matches!(
                t.lookup(&http::Method::POST, &bridge.path),
                crate::routing::Lookup::NotFound
            )
        });
        if shadowed {
            problems.push(at_span(
                &b.path,
                format!(
                    "oss_bridge.path {:?} is also matched by a route; the bridge would hide it",
                    bridge.path
                ),
            ));
        }
        bridge
    });

    if problems.is_empty() {
        Ok(Config {
            base_dir: base_dir.to_path_buf(),
            source: None,
            server,
            gateway,
            expose_details: file.errors.expose_details.is_none_or(|v| v.0),
            functions,
            apis,
            routes,
            triggers,
            oss_bridge,
            cluster,
            api_keys,
            jdcloud,
        })
    } else {
        problems.sort_by_key(|p| (p.line, p.column));
        Err(problems)
    }
}

fn socket_addr(text: &Spanned<Text>, what: &str, problems: &mut Problems) -> Option<SocketAddr> {
    let raw = text.value.0.trim();
    match raw.to_socket_addrs().map(|mut a| a.next()) {
        Ok(Some(addr)) => Some(addr),
        _ => {
            problems.push(at_span(
                text,
                format!("{what}: {raw:?} is not an address like 127.0.0.1:8080"),
            ));
            None
        }
    }
}

fn server(file: &FileConfig, base_dir: &Path, problems: &mut Problems) -> ServerSettings {
    let s = &file.server;
    let listen: Vec<_> = s
        .listen
        .iter()
        .filter_map(|l| socket_addr(l, "server.listen", problems))
        .collect();
    if s.listen.is_empty() {
        problems.push(Problem {
            line: 1,
            column: 1,
            message: "server.listen needs at least one address".into(),
        });
    }
    let threads = s.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| n.get()),
        |t| t.0,
    );
    if threads == 0 {
        problems.push(Problem {
            line: 1,
            column: 1,
            message: "server.threads must be at least 1".into(),
        });
    }
    let max_connections = s
        .max_connections
        .map_or_else(default_max_connections, |m| m.0);
    if max_connections == 0 {
        problems.push(Problem {
            line: 1,
            column: 1,
            message: "server.max_connections must be at least 1".into(),
        });
    }
    ServerSettings {
        listen,
        admin_listen: s
            .admin_listen
            .as_ref()
            .and_then(|a| socket_addr(a, "server.admin_listen", problems)),
        threads: threads.max(1),
        grace_period: s.grace_period.map_or(Duration::from_secs(5), |d| d.0),
        keepalive_timeout: s.keepalive_timeout.map_or(Duration::from_secs(60), |d| d.0),
        keepalive_requests: s.keepalive_requests.map(|v| v.0),
        read_timeout: s.read_timeout.map_or(Duration::from_secs(60), |d| d.0),
        send_timeout: s.send_timeout.map_or(Duration::from_secs(60), |d| d.0),
        max_connections,
        pid_file: s.pid_file.as_ref().map(|p| base_dir.join(&p.0)),
        access_log: access_log(s.access_log.as_ref(), base_dir, problems),
        tls: s.tls.iter().map(|t| tls(t, base_dir, problems)).collect(),
    }
}

fn tls(t: &super::file::TlsFile, base_dir: &Path, problems: &mut Problems) -> super::TlsListeners {
    if t.listen.is_empty() {
        problems.push(at_span(
            &t.cert,
            "server.tls: listen needs at least one address",
        ));
    }
    let listen = t
        .listen
        .iter()
        .filter_map(|l| socket_addr(l, "server.tls.listen", problems))
        .collect();
    let cert = base_dir.join(&t.cert.value.0);
    let key = base_dir.join(&t.key.value.0);
    if let Err(e) = crate::tls::server_config(&cert, &key) {
        problems.push(at_span(&t.cert, format!("server.tls: {e}")));
    }
    super::TlsListeners { listen, cert, key }
}

fn access_log(
    file: Option<&super::file::AccessLogFile>,
    base_dir: &Path,
    problems: &mut Problems,
) -> Option<super::AccessLogSettings> {
    let path = file.and_then(|f| f.path.as_ref());
    let path = match path.map(|p| p.value.0.as_str()) {
        Some("off") => return None,
        None | Some("stdout") => None,
        Some(p) => Some(base_dir.join(p)),
    };
    let format = file.and_then(|f| f.format.as_ref());
    let json = match format.map(|f| f.value.0.as_str()) {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            if let Some(f) = format {
                problems.push(at_span(
                    f,
                    format!("access_log.format {other:?}: expected text or json"),
                ));
            }
            false
        }
    };
    Some(super::AccessLogSettings {
        path,
        json,
        buffer: file
            .and_then(|f| f.buffer)
            .map_or(64 * 1024, |b| b.0.max(1)),
        flush: file
            .and_then(|f| f.flush)
            .map_or(Duration::from_secs(1), |d| d.0),
    })
}

/// Half the process's open-file limit: each client connection may hold a backend connection
/// too, and the rest is left for listeners, the queue and the supervised functions' pipes.
fn default_max_connections() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } == 0;
    let soft = if ok { limit.rlim_cur } else { 1024 };
    usize::try_from(soft / 2).unwrap_or(usize::MAX).max(1)
}

fn gateway(file: &FileConfig, problems: &mut Problems) -> GatewaySettings {
    let g = &file.gateway;
    let account_id = g.account_id.clone().unwrap_or_default().0;
    let owner_pin = g
        .owner_pin
        .clone()
        .map_or_else(|| account_id.clone(), |p| p.0);
    let mut trusted_proxies = Vec::new();
    for p in &g.trusted_proxies {
        let raw = p.value.0.trim();
        let net = raw
            .parse::<IpNet>()
            .or_else(|_| raw.parse::<std::net::IpAddr>().map(IpNet::from));
        match net {
            Ok(n) => trusted_proxies.push(n),
            Err(_) => problems.push(at_span(
                p,
                format!("trusted_proxies: {raw:?} is not an IP address or CIDR range"),
            )),
        }
    }
    GatewaySettings {
        region: g
            .region
            .clone()
            .map_or_else(|| "cn-north-1".to_owned(), |r| r.0),
        base64_owner_pin: base64::engine::general_purpose::STANDARD.encode(owner_pin),
        account_id,
        trust_request_id: g.trust_request_id.is_some_and(|v| v.0),
        trusted_proxies,
    }
}

/// Parses `http://host:port/path` into a resolved address.
fn http_url(raw: &str) -> Result<(SocketAddr, String, String), String> {
    let uri: http::Uri = raw
        .parse()
        .map_err(|e| format!("{raw:?} is not a URL ({e})"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => return Err(format!("{raw:?}: https backends are not supported yet")),
        _ => return Err(format!("{raw:?} is not an http:// URL")),
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{raw:?} has no host"))?;
    let port = authority.port_u16().unwrap_or(80);
    let addr = (authority.host().trim_matches(['[', ']']), port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("{raw:?}: cannot resolve host {:?}", authority.host()))?;
    let path = uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    Ok((addr, authority.as_str().to_owned(), path))
}

fn function(
    name: &str,
    f: &Spanned<FunctionFile>,
    max_reply: usize,
    base_dir: &Path,
    problems: &mut Problems,
) -> Function {
    let spec = &f.value;
    let mut endpoints = Vec::new();
    // The name travels in a request header (x-fngate-function) and in logs.
    let name_ok = (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if !name_ok {
        problems.push(at_span(
            f,
            format!("function name {name:?}: use 1-64 letters, digits, '_', '-' or '.'"),
        ));
    }
    match (&spec.endpoints, &spec.command) {
        (Some(_), Some(_)) | (None, None) => problems.push(at_span(
            f,
            format!("function {name:?} needs exactly one of `endpoints` and `command`"),
        )),
        (Some(list), None) if list.is_empty() => problems.push(at_span(
            f,
            format!("function {name:?}: `endpoints` is empty"),
        )),
        _ => {}
    }
    for e in spec.endpoints.iter().flatten() {
        match http_url(e.value.0.trim()) {
            Ok((addr, authority, path_and_query)) => endpoints.push(Endpoint {
                url: e.value.0.trim().to_owned(),
                addr,
                authority,
                path_and_query,
            }),
            Err(m) => problems.push(at_span(e, format!("function {name:?}: {m}"))),
        }
    }
    let command = match &spec.command {
        Some(argv) => super::command::command(name, spec, argv, base_dir, problems),
        None => {
            super::command::reject_command_keys(name, spec, problems);
            None
        }
    };
    Function {
        name: name.to_owned(),
        endpoints,
        command,
        timeout: spec.timeout.map_or(DEFAULT_FUNCTION_TIMEOUT, |d| d.0),
        max_reply_bytes: spec.max_reply_bytes.map_or(max_reply, |v| v.0),
        memory_mb: spec.memory_mb.map_or(128, |v| v.0),
    }
}

fn api_settings(api: &ApiFile, gateway: &GatewaySettings, problems: &mut Problems) -> (Api, Auth) {
    let id = api.id.value.0.clone();
    if id.is_empty() {
        problems.push(at_span(&api.id, "api id must not be empty"));
    }
    let format = match api.format.as_ref().map(|f| f.value.0.as_str()) {
        None | Some("jdcloud") => EventFormat::Jdcloud,
        Some("jdcloud-detail") => EventFormat::JdcloudDetail,
        Some("aws-v1") => EventFormat::AwsV1,
        Some("aws-v2") => EventFormat::AwsV2,
        Some("aliyun") => EventFormat::Aliyun,
        Some(other) => {
            if let Some(f) = &api.format {
                problems.push(at_span(
                    f,
                    format!("format {other:?}: expected jdcloud, jdcloud-detail, aws-v1, aws-v2 or aliyun"),
                ));
            }
            EventFormat::Jdcloud
        }
    };
    let contract_errors = match api.contract_errors.as_ref().map(|f| f.value.0.as_str()) {
        None | Some("fngate") => ContractErrors::Fngate,
        Some("platform") => ContractErrors::Platform,
        Some(other) => {
            if let Some(f) = &api.contract_errors {
                problems.push(at_span(
                    f,
                    format!("contract_errors {other:?}: expected fngate or platform"),
                ));
            }
            ContractErrors::Fngate
        }
    };
    let auth = super::access::auth(api.auth.as_ref(), problems).unwrap_or(Auth::None);
    let settings = Api {
        resource: format!(
            "jrn:apigateway:{}:{}:api/{}",
            gateway.region, gateway.account_id, id
        ),
        stage: api.stage.clone().map_or_else(|| "test".to_owned(), |s| s.0),
        format,
        contract_errors,
        id,
        rate_limit: super::access::rate_limit(api.rate_limit.as_ref(), problems),
        cors: super::access::cors(api.cors.as_ref(), problems),
    };
    (settings, auth)
}

fn route_settings(
    (api, api_auth): (usize, Auth),
    r: &RouteFile,
    declared: &std::collections::BTreeMap<String, Spanned<FunctionFile>>,
    ids: &HashMap<String, usize>,
    functions: &[Function],
    max_body: usize,
    problems: &mut Problems,
) -> Option<Route> {
    let before = problems.len();
    let auth = super::access::auth(r.auth.as_ref(), problems).unwrap_or(api_auth);
    let rate_limit = super::access::rate_limit(r.rate_limit.as_ref(), problems);
    let path = r.path.value.0.clone();
    if !path.starts_with('/') {
        problems.push(at_span(
            &r.path,
            format!("route path {path:?} must start with '/'"),
        ));
    }
    let methods = r.methods.as_ref().map(|list| {
        list.iter()
            .filter_map(|m| {
                let upper = m.value.0.trim().to_ascii_uppercase();
                match http::Method::from_bytes(upper.as_bytes()) {
                    Ok(method) if !upper.is_empty() => Some(method),
                    _ => {
                        problems.push(at_span(m, format!("{:?} is not an HTTP method", m.value.0)));
                        None
                    }
                }
            })
            .collect::<Vec<_>>()
    });
    let binary = match &r.binary {
        None => false,
        Some(b) if b.value.0 == "base64" => true,
        Some(b) => {
            problems.push(at_span(
                b,
                format!("binary {:?}: the only mode is base64", b.value.0),
            ));
            false
        }
    };
    let target = match (&r.function, &r.upstream) {
        (Some(f), None) => match ids.get(&f.value.0) {
            Some(&id) => Some(Target::Function(id)),
            None => {
                let known: Vec<_> = declared.keys().map(String::as_str).collect();
                problems.push(at_span(
                    f,
                    format!(
                        "unknown function {:?} (declared: {})",
                        f.value.0,
                        known.join(", ")
                    ),
                ));
                None
            }
        },
        (None, Some(u)) => match http_url(u.value.0.trim()) {
            Ok((_, _, p)) if p != "/" => {
                problems.push(at_span(
                    u,
                    "an upstream URL takes no path: the request path is forwarded as-is",
                ));
                None
            }
            Ok((addr, _, _)) => Some(Target::Upstream(Upstream {
                url: u.value.0.trim().to_owned(),
                addr,
            })),
            Err(m) => {
                problems.push(at_span(u, format!("upstream: {m}")));
                None
            }
        },
        _ => {
            problems.push(at_span(
                &r.path,
                format!("route {path:?} needs exactly one of `function` and `upstream`"),
            ));
            None
        }
    };
    let target = target?;
    if problems.len() > before {
        return None;
    }
    let function_timeout = match &target {
        Target::Function(id) => functions[*id].timeout,
        Target::Upstream(_) => DEFAULT_FUNCTION_TIMEOUT,
    };
    Some(Route {
        api,
        path,
        methods,
        target,
        binary,
        max_body_bytes: r.max_body_bytes.map_or(max_body, |v| v.0),
        timeout: r.timeout.map_or(function_timeout, |d| d.0),
        auth,
        rate_limit,
    })
}
