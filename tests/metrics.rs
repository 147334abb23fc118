//! `GET /metrics` on the admin listener: after a scripted mix of 200, 404, 503 and 504 answers
//! the counters are exactly what was sent, the histograms count every request and every
//! function call, the pool's opened + reused connections add up to the calls made, a killed
//! supervised function counts a restart, and the whole exposition passes `promtool check
//! metrics` (Debian's `prometheus` package; `.ci/run` installs it).

mod support;
use serde_json::json;
use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

/// `name{labels}` → value, for every sample line.
fn samples(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("a sample has a value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

fn get(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    *samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:#?}"))
}

fn scrape(admin: u16) -> String {
    let r = Client::connect(format!("127.0.0.1:{admin}").parse().unwrap()).get("/metrics");
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    r.text()
}

/// `promtool check metrics` on the text: exit 0 and nothing to say.
fn promtool_accepts(text: &str) {
    let promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut promtool) = promtool else {
        panic!("promtool is not installed: apt-get install prometheus (.ci/run does)");
    };
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "promtool: {said}\n{text}"
    );
}

#[test]
fn a_scripted_mix_is_counted_exactly_and_promtool_accepts_it() {
    let ok = FakeFunction::replying(json!({"statusCode": 200, "body": "fine"}));
    let invalid = FakeFunction::replying(json!({"statusCode": "200"}));
    let slow = FakeFunction::start(|_| Scripted {
        delay: Duration::from_millis(400),
        ..Scripted::json(json!({"statusCode": 200}))
    });
    let admin = free_port();
    let g = Gateway::start_with_server(
        &format!("  admin_listen: \"127.0.0.1:{admin}\"\n"),
        &format!(
            "functions:\n  ok:\n    endpoints: [\"{}\"]\n  invalid:\n    endpoints: [\"{}\"]\n  slow:\n    endpoints: [\"{}\"]\napis:\n  - id: shop\n    stage: test\n    routes:\n      - path: /ok/{{id}}\n        function: ok\n      - path: /invalid\n        function: invalid\n      - path: /slow\n        function: slow\n        timeout: 100ms\n",
            ok.url(),
            invalid.url(),
            slow.url()
        ),
    );
    let mut c = g.client();
    for i in 0..7 {
        assert_eq!(c.get(&format!("/ok/{i}")).status, 200);
    }
    assert_eq!(c.request("POST", "/ok/x", &[], b"{}").status, 200);
    for _ in 0..3 {
        assert_eq!(c.get("/nowhere").status, 404);
    }
    for _ in 0..4 {
        assert_eq!(c.get("/invalid").status, 503);
    }
    for _ in 0..2 {
        assert_eq!(c.get("/slow").status, 504);
    }

    // A request is counted just after its answer is written: wait for the last one.
    let total = |s: &BTreeMap<String, f64>| -> f64 {
        s.iter()
            .filter(|(k, _)| k.starts_with("fngate_requests_total{"))
            .map(|(_, v)| v)
            .sum()
    };
    let until = std::time::Instant::now() + Duration::from_secs(5);
    let text = loop {
        let text = scrape(admin);
        if total(&samples(&text)) >= 17.0 || std::time::Instant::now() > until {
            break text;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let s = samples(&text);
    let requests = |route: &str, method: &str, class: &str| {
        let api = if route == "-" { "-" } else { "shop" };
        get(
            &s,
            &format!("fngate_requests_total{{api=\"{api}\",route=\"{route}\",method=\"{method}\",status_class=\"{class}\"}}"),
        )
    };
    assert_eq!(requests("/ok/{id}", "GET", "2xx"), 7.0);
    assert_eq!(requests("/ok/{id}", "POST", "2xx"), 1.0);
    assert_eq!(requests("-", "GET", "4xx"), 3.0);
    assert_eq!(requests("/invalid", "GET", "5xx"), 4.0);
    assert_eq!(requests("/slow", "GET", "5xx"), 2.0);
    assert_eq!(total(&s), 17.0, "no other series: {text}");

    let errors = |code: &str| {
        get(
            &s,
            &format!("fngate_gateway_errors_total{{code=\"{code}\"}}"),
        )
    };
    assert_eq!(errors("ROUTE_NOT_FOUND"), 3.0);
    assert_eq!(errors("FUNCTION_RESPONSE_INVALID"), 4.0);
    assert_eq!(errors("FUNCTION_TIMEOUT"), 2.0);

    let count = |name: &str, labels: &str| get(&s, &format!("{name}_count{{{labels}}}"));
    let seconds = "fngate_request_duration_seconds";
    assert_eq!(count(seconds, "api=\"shop\",route=\"/ok/{id}\""), 8.0);
    assert_eq!(count(seconds, "api=\"-\",route=\"-\""), 3.0);
    assert_eq!(count(seconds, "api=\"shop\",route=\"/slow\""), 2.0);
    let function = "fngate_function_duration_seconds";
    assert_eq!(
        count(function, "api=\"shop\",route=\"/ok/{id}\",function=\"ok\""),
        8.0
    );
    // The two timed-out calls took the route's 100 ms, not less; they are in no bucket under it.
    let slow_labels = "api=\"shop\",route=\"/slow\",function=\"slow\"";
    assert_eq!(count(function, slow_labels), 2.0);
    let under = |le: &str| {
        get(
            &s,
            &format!("{function}_bucket{{{slow_labels},le=\"{le}\"}}"),
        )
    };
    assert_eq!(under("0.05"), 0.0);
    assert_eq!(under("0.25"), 2.0);
    assert!(get(&s, &format!("{function}_sum{{{slow_labels}}}")) >= 0.2);

    let opened = get(&s, "fngate_backend_connections_opened_total");
    let reused = get(&s, "fngate_backend_connections_reused_total");
    assert_eq!(
        opened + reused,
        14.0,
        "one connection per call: {opened} + {reused}"
    );
    assert!(opened >= 3.0 && reused >= 8.0, "{opened} {reused}");
    assert_eq!(get(&s, "fngate_oss_notifications_total"), 0.0);
    assert_eq!(get(&s, "fngate_access_log_dropped_lines_total"), 0.0);
    promtool_accepts(&text);
}

#[test]
fn a_supervised_function_that_exits_counts_a_restart() {
    let admin = free_port();
    let command = runtime_command("tests/functions/probe", "index.handler");
    let g = Gateway::start_with_server(
        &format!("  admin_listen: \"127.0.0.1:{admin}\"\n"),
        &format!("functions:\n  probe:\n    command: {command}\napis:\n  - id: t\n    stage: test\n    routes:\n      - path: /probe/{{kind}}\n        function: probe\n"),
    );
    let restarts = "fngate_function_restarts_total{function=\"probe\"}";
    assert_eq!(get(&samples(&scrape(admin)), restarts), 0.0);
    let r = g.client().get("/probe/pid");
    assert_eq!(r.status, 200, "{}", r.text());
    let pid = r.json()["pid"].as_u64().unwrap();
    // SAFETY: kill has no memory arguments.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    let until = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let s = samples(&scrape(admin));
        if s.get(restarts) == Some(&1.0) {
            break;
        }
        assert!(std::time::Instant::now() < until, "{s:#?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    promtool_accepts(&scrape(admin));
}
