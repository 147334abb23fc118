//! The Python runtime (runtime/python): return values of every type, exceptions, the context
//! object, tagged handler output, start-up failures and real concurrency — both talking to the
//! runtime directly and through a gateway that supervises it.

mod support;
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::*;

const PROBE: &str = "tests/functions/probe";

fn probe_gateway(function_extra: &str, route_extra: &str) -> Gateway {
    let command = runtime_command(PROBE, "index.handler");
    Gateway::start(&format!(
        "functions:\n  probe:\n    command: {command}\n{function_extra}apis:\n  - id: testsvc\n    stage: test\n    routes:\n      - path: /probe/{{kind}}\n        function: probe\n{route_extra}"
    ))
}

#[test]
fn return_values_of_every_type_are_json_encoded() {
    let rt = PythonRuntime::start(PROBE, "index.handler", &[]);
    let values = [
        json!({"statusCode": 200, "body": "x"}),
        json!([1, "two", null]),
        json!("download file successfully"),
        json!(42),
        json!(2.5),
        json!(null),
        json!(true),
        json!("你好, \u{1F600}"),
    ];
    for v in values {
        let r = rt.invoke(&json!({"kind": "value", "value": v}), "rid-1", 3000);
        assert_eq!(r.status, 200, "{v}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("application/json"));
        assert_eq!(r.json(), v, "{}", r.text());
    }
    // The seed's bare string arrives as a JSON string, byte for byte.
    let r = rt.invoke(
        &json!({"kind": "value", "value": "download file successfully"}),
        "rid-2",
        3000,
    );
    assert_eq!(r.text(), "\"download file successfully\"");
    // What JSON cannot hold is a marshal error, not a crash.
    for kind in ["set", "nan"] {
        let r = rt.invoke(&json!({ "kind": kind }), "rid-3", 3000);
        assert_eq!(r.status, 500, "{kind}");
        assert_eq!(r.json()["errorType"], "Runtime.MarshalError", "{kind}");
    }
    // The runtime still serves after all of that.
    let r = rt.invoke(&json!({"kind": "value", "value": 1}), "rid-4", 3000);
    assert_eq!(r.text(), "1");
}

#[test]
fn an_exception_answers_500_with_type_message_and_traceback() {
    let rt = PythonRuntime::start(PROBE, "index.handler", &[]);
    for (kind, error_type, message) in [
        ("raise", "KeyError", "'no such thing'"),
        ("exit", "SystemExit", "3"),
    ] {
        let r = rt.invoke(&json!({ "kind": kind }), "rid-x", 3000);
        assert_eq!(r.status, 500, "{kind}");
        let body = r.json();
        assert_eq!(body["errorType"], error_type);
        assert_eq!(body["errorMessage"], message);
        let trace = body["stackTrace"].as_array().expect("a traceback");
        assert!(
            trace
                .iter()
                .any(|l| l.as_str().unwrap().contains("index.py")),
            "{trace:?}"
        );
    }
    // Logged with the function and the request id.
    assert!(rt
        .stderr
        .wait_for(&["[probe rid-x] KeyError: 'no such thing'"])
        .is_some());
    // sys.exit() in a handler did not stop the runtime.
    let r = rt.invoke(&json!({"kind": "value", "value": "alive"}), "rid-y", 3000);
    assert_eq!(r.json(), "alive");
}

#[test]
fn through_the_gateway_an_exception_is_503_function_error_naming_it() {
    let g = probe_gateway("", "");
    let r = g.client().get("/probe/raise");
    assert_eq!(r.status, 503);
    assert_eq!(r.header("x-fngate-error"), Some("FUNCTION_ERROR"));
    let message = r.json()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("KeyError: 'no such thing'") && message.contains("answered 500"),
        "{message}"
    );
}

#[test]
fn handler_output_is_tagged_with_function_and_request_id() {
    let rt = PythonRuntime::start(PROBE, "index.handler", &[]);
    let event = json!({"kind": "print", "queryParameters": {"tag": "t1"}});
    assert_eq!(rt.invoke(&event, "req-42", 3000).status, 200);
    assert!(rt
        .stdout
        .wait_for(&["[probe req-42] to stdout t1"])
        .is_some());
    assert!(rt
        .stderr
        .wait_for(&["[probe req-42] to stderr t1"])
        .is_some());
}

#[test]
fn a_handler_that_cannot_be_imported_fails_at_start_up_clearly() {
    let cases = [
        (
            "tests/functions/probe",
            "index.missing",
            "has no function 'missing'",
        ),
        (
            "tests/functions/probe",
            "nomodule.handler",
            "No module named 'nomodule'",
        ),
        (
            "tests/functions/probe",
            "handler",
            "must look like module.function",
        ),
        (
            "tests/functions/nowhere",
            "index.handler",
            "is not a directory",
        ),
    ];
    for (code, handler, expected) in cases {
        let started = Instant::now();
        let out = std::process::Command::new("python3")
            .args([
                "runtime/python/fngate_runtime.py",
                "--code",
                code,
                "--handler",
                handler,
            ])
            .args(["--listen", &format!("127.0.0.1:{}", free_port())])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{handler}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        let last = stderr.lines().last().unwrap_or("");
        assert!(
            last.starts_with("fngate-runtime: ") && last.contains(expected),
            "{handler}: {stderr}"
        );
        assert!(started.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn bad_invocations_get_clear_answers() {
    let rt = PythonRuntime::start(PROBE, "index.handler", &[]);
    let mut c = Client::connect(rt.addr);
    let r = c.request("POST", "/", &[], b"not json");
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["errorType"], "InvalidEvent");
    let r = c.get("/healthz");
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("ok")));
    let r = c.get("/other");
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    // Same keep-alive connection throughout.
    let r = c.request("POST", "/", &[], br#"{"kind":"value","value":7}"#);
    assert_eq!(r.text(), "7");
}

#[test]
fn the_context_carries_ids_limits_and_a_shrinking_remaining_time() {
    let g = probe_gateway(
        "    timeout: 5s\n    memory_mb: 256\n",
        "        timeout: 3s\n",
    );
    let r = g.client().get("/probe/context");
    assert_eq!(r.status, 200, "{}", r.text());
    let request_id = r.header("x-jdcloud-request-id").unwrap().to_owned();
    let ctx: Value = r.json();
    assert_eq!(ctx["request_id"], request_id.as_str());
    assert_eq!(ctx["function_name"], "probe");
    assert_eq!(ctx["memory_limit_in_mb"], 256);
    assert_eq!(ctx["timeout"], 5, "the function's timeout, in seconds");
    let first = ctx["remaining"][0].as_i64().unwrap();
    let second = ctx["remaining"][1].as_i64().unwrap();
    // Near the route's 3 s timeout, and 200 ms less after the handler slept 200 ms.
    assert!((2500..=3000).contains(&first), "{first}");
    assert!(
        (150..=600).contains(&(first - second)),
        "{first} → {second}"
    );
}

#[test]
fn concurrent_slow_invocations_run_in_parallel() {
    let g = probe_gateway("", "");
    let n = 8;
    let started = Instant::now();
    let threads: Vec<_> = (0..n)
        .map(|_| {
            let addr = g.addr;
            std::thread::spawn(move || Client::connect(addr).get("/probe/sleep?seconds=1").status)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    assert_eq!(statuses, vec![200; n]);
    // One after another they would take 8 s.
    assert!(
        took < Duration::from_millis(2500),
        "{n} calls of 1 s took {took:?}"
    );
}

#[test]
fn workers_bound_how_many_invocations_run_at_once() {
    let g = probe_gateway("    env: {FNGATE_WORKERS: \"2\"}\n", "");
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = g.addr;
            std::thread::spawn(move || Client::connect(addr).get("/probe/sleep?seconds=0.5").status)
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let took = started.elapsed();
    assert_eq!(statuses, vec![200; 4]);
    // Two at a time: two rounds of 0.5 s.
    assert!(took >= Duration::from_millis(950), "{took:?}");
}

#[test]
fn sigterm_lets_running_invocations_answer_then_exits() {
    let mut rt = PythonRuntime::start("tests/functions/probe", "index.handler", &[]);
    let addr = rt.addr;
    let slow = std::thread::spawn(move || {
        let mut c = Client::connect(addr);
        let event = serde_json::json!({"kind": "sleep", "queryParameters": {"seconds": "0.8"}});
        c.request(
            "POST",
            "/",
            &[("x-fngate-deadline-ms", "5000")],
            event.to_string().as_bytes(),
        )
    });
    // An idle keep-alive connection, as the gateway's pool holds.
    let mut pooled = Client::connect(addr);
    assert_eq!(
        rt.invoke(&serde_json::json!({"kind": "pid"}), "r1", 1000)
            .status,
        200
    );
    std::thread::sleep(Duration::from_millis(200));
    let sent = Instant::now();
    let kill = std::process::Command::new("kill")
        .args(["-TERM", &rt.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    // While the slow one still runs, a request on an open connection is told to go elsewhere.
    let late = pooled.request("POST", "/", &[], br#"{"kind": "pid"}"#);
    assert_eq!(late.status, 503);
    assert_eq!(late.json()["errorType"], "Stopping");
    let r = slow.join().unwrap();
    assert_eq!(
        r.status,
        200,
        "the running invocation answered: {}",
        r.text()
    );
    let until = Instant::now() + Duration::from_secs(5);
    let status = loop {
        if let Some(s) = rt.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "still running 5 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    assert!(
        sent.elapsed() < Duration::from_secs(3),
        "{:?}",
        sent.elapsed()
    );
    assert!(
        std::net::TcpStream::connect(addr).is_err(),
        "no longer listening"
    );
    assert!(rt.stderr.wait_for(&["stopped"]).is_some());
}
