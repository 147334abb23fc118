//! Supervised `command:` functions: started on a port the gateway chooses with the documented
//! environment, load-balanced over instances, restarted with back-off when they die (requests in
//! the meantime fail fast), and gone when the gateway stops — also when it is killed.

mod support;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn gateway_with(function_yaml: &str) -> Gateway {
    Gateway::start(&format!(
        "functions:\n  probe:\n{function_yaml}apis:\n  - id: testsvc\n    stage: test\n    routes:\n      - path: /probe/{{kind}}\n        function: probe\n"
    ))
}

fn probe_gateway(extra: &str) -> Gateway {
    let command = runtime_command("tests/functions/probe", "index.handler");
    gateway_with(&format!("    command: {command}\n{extra}"))
}

fn pid_of(c: &mut Client) -> u32 {
    let r = c.get("/probe/pid");
    assert_eq!(r.status, 200, "{}", r.text());
    r.json()["pid"].as_u64().unwrap() as u32
}

#[test]
fn a_command_gets_its_port_env_and_workdir() {
    let g = gateway_with(
        "    command: [\"python3\", \"plain_server.py\", \"--port\", \"{port}\"]\n    workdir: tests/functions\n    env: {GREETING: hi}\n    timeout: 7s\n    memory_mb: 512\n",
    );
    let r = g.client().get("/probe/x");
    assert_eq!(r.status, 200, "{}", r.text());
    let seen: Value = r.json();
    let port = seen["env"]["PORT"].as_str().unwrap().to_owned();
    assert_eq!(seen["argv"], serde_json::json!(["--port", port]));
    assert!(port.parse::<u16>().unwrap() > 0);
    assert_eq!(seen["env"]["FNGATE_FUNCTION_NAME"], "probe");
    assert_eq!(seen["env"]["FNGATE_FUNCTION_TIMEOUT_MS"], "7000");
    assert_eq!(seen["env"]["FNGATE_FUNCTION_MEMORY_MB"], "512");
    assert_eq!(seen["env"]["FNGATE_INSTANCE"], "0");
    assert_eq!(seen["env"]["GREETING"], "hi");
    let cwd = std::fs::canonicalize("tests/functions").unwrap();
    assert_eq!(seen["cwd"], cwd.to_str().unwrap());
}

#[test]
fn instances_are_separate_processes_sharing_the_load() {
    let g = probe_gateway("    instances: 3\n");
    let mut c = g.client();
    let pids: std::collections::BTreeSet<u32> = (0..12).map(|_| pid_of(&mut c)).collect();
    assert_eq!(pids.len(), 3, "{pids:?}");
}

#[test]
fn a_killed_runtime_is_restarted_and_requests_meanwhile_fail_fast() {
    let g = probe_gateway("");
    let mut c = g.client();
    let first = pid_of(&mut c);
    unsafe { libc::kill(first as i32, libc::SIGKILL) };
    let until = Instant::now() + Duration::from_secs(10);
    let mut failures = 0;
    let second = loop {
        assert!(Instant::now() < until, "not restarted within 10 s");
        let started = Instant::now();
        let r = Client::connect(g.addr).get("/probe/pid");
        assert!(started.elapsed() < Duration::from_secs(1), "a request hung");
        match r.status {
            200 => break r.json()["pid"].as_u64().unwrap() as u32,
            502 => {
                assert_eq!(r.header("x-fngate-error"), Some("FUNCTION_UNREACHABLE"));
                failures += 1;
            }
            other => panic!("unexpected {other}: {}", r.text()),
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_ne!(first, second);
    assert!(gone_within(first, Duration::from_secs(1)));
    // The restart waited for the back-off, so some requests saw it down.
    assert!(failures > 0);
    // And it keeps serving on the same pooled client connection.
    assert_eq!(pid_of(&mut c), second);
}

#[test]
fn a_crashing_command_is_restarted_with_back_off_and_never_hangs_requests() {
    let dir = std::env::temp_dir().join(format!("fngate-crash-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let starts = dir.join("starts");
    let started = Instant::now();
    let g = gateway_with(&format!(
        "    command: [\"python3\", \"-c\", \"import sys; open(sys.argv[1], 'a').write('x'); sys.exit(3)\", \"{}\"]\n",
        starts.display()
    ));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "start-up waited for a crashing command"
    );
    let r = g.client().get("/probe/x");
    assert_eq!(r.status, 502);
    std::thread::sleep(Duration::from_secs(2));
    let count = std::fs::read_to_string(&starts).unwrap().len();
    // Back-off of 100, 200, 400, 800 ms… gives about 5 starts in 2 s; a hot loop gives dozens.
    assert!((3..=8).contains(&count), "{count} starts in 2 s");
}

#[test]
fn a_command_that_never_listens_delays_start_up_only_by_its_start_timeout() {
    let started = Instant::now();
    let g = gateway_with(
        "    command: [\"python3\", \"-c\", \"import time; time.sleep(60)\"]\n    start_timeout: 300ms\n",
    );
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let started = Instant::now();
    assert_eq!(g.client().get("/probe/x").status, 502);
    assert!(started.elapsed() < Duration::from_secs(1));
}

#[test]
fn stopping_the_gateway_stops_every_instance() {
    let g = probe_gateway("    instances: 2\n");
    let mut c = g.client();
    let pids: std::collections::BTreeSet<u32> = (0..8).map(|_| pid_of(&mut c)).collect();
    assert_eq!(pids.len(), 2);
    drop(c);
    drop(g);
    for pid in pids {
        assert!(
            gone_within(pid, Duration::from_secs(1)),
            "{pid} outlived the gateway"
        );
    }
}

/// The binary with a probe function; its stdout (the log) is collected.
struct Binary {
    child: std::process::Child,
    log: Lines,
    addr: std::net::SocketAddr,
}

fn start_binary() -> Binary {
    let port = free_port();
    let root = env!("CARGO_MANIFEST_DIR");
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 1s\nfunctions:\n  probe:\n    command: [\"python3\", \"{root}/runtime/python/fngate_runtime.py\", \"--code\", \"{root}/tests/functions/probe\", \"--handler\", \"index.handler\"]\napis:\n  - id: t\n    routes:\n      - path: /probe/{{kind}}\n        function: probe\n"
    );
    let dir = std::env::temp_dir().join(format!("fngate-bin-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("fngate.yaml"), yaml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(dir.join("fngate.yaml"))
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = Lines::collect(child.stdout.take().unwrap());
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    Binary { child, log, addr }
}

#[test]
fn the_binary_logs_handler_output_and_leaves_nothing_behind_on_sigterm() {
    let mut b = start_binary();
    let mut c = Client::connect(b.addr);
    let pid = pid_of(&mut c);
    let r = c.get("/probe/print?tag=t7");
    let id = r.header("x-jdcloud-request-id").unwrap().to_owned();
    for text in ["to stdout t7", "to stderr t7"] {
        let tagged = format!("[probe {id}] {text}");
        let line = b.log.wait_for(&[&tagged, "function=probe"]);
        assert!(line.is_some(), "no {tagged:?} in {:#?}", b.log.all());
    }
    drop(c);
    unsafe { libc::kill(b.child.id() as i32, libc::SIGTERM) };
    let status = b.child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(!pid_alive(pid), "the runtime outlived the gateway");
    assert!(b.log.wait_for(&["stopped", "function=probe"]).is_some());
}

#[test]
fn a_killed_gateway_takes_its_functions_with_it() {
    let mut b = start_binary();
    let pid = pid_of(&mut Client::connect(b.addr));
    b.child.kill().unwrap(); // SIGKILL: no chance to clean up
    b.child.wait().unwrap();
    assert!(
        gone_within(pid, Duration::from_secs(2)),
        "the runtime outlived a killed gateway"
    );
}
