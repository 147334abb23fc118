//! The `fngate` binary: `-t` config checks with line and column, the example config, a busy
//! port as a clear startup error, and SIGTERM honouring `server.grace_period`.

mod support;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use support::*;

fn fngate() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fngate"))
}

fn write_config(name: &str, yaml: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("fngate-cli-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, yaml).unwrap();
    path
}

/// Runs `fngate -c FILE -t`; returns (exit code, stderr).
fn check(yaml: &str) -> (i32, String) {
    let path = write_config("c.yaml", yaml);
    let out = fngate().arg("-c").arg(&path).arg("-t").output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

const HEAD: &str = "server:\n  listen: [\"127.0.0.1:8080\"]\n";

#[test]
fn the_example_config_is_valid() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/fngate.yaml");
    succeeded(fngate().args(["-c", conf, "-t"]));
}

#[test]
fn the_oss_example_config_is_valid_with_its_environment() {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/conf/oss.yaml");
    let env = [
        ("S3_ENDPOINT", "http://127.0.0.1:9000"),
        ("S3_ACCESS_KEY_ID", "k"),
        ("S3_SECRET_ACCESS_KEY", "s"),
    ];
    succeeded(
        fngate()
            .args(["-c", conf, "-t"])
            .envs(env)
            .env("FNGATE_OSS_TOKEN", "t"),
    );
    // Without the token the file says which variable is missing, and where.
    let out = fngate()
        .args(["-c", conf, "-t"])
        .envs(env)
        .env_remove("FNGATE_OSS_TOKEN")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("FNGATE_OSS_TOKEN is not set"),
        "{err}"
    );
}

#[test]
fn each_class_of_config_error_has_line_and_column() {
    let f = "functions:\n  hello:\n    endpoints: [\"http://127.0.0.1:9000/invoke\"]\n";
    let cases: Vec<(String, &str, &str)> = vec![
        (format!("{HEAD}bogus: 1\n"), ":3:1:", "unknown field"),
        (format!("{HEAD}{f}apis:\n  - id: a\n    routes:\n      - path: /x\n        methodz: [GET]\n        function: hello\n"), ":10:9:", "methodz"),
        (format!("{HEAD}server:\n  listen: []\n"), ":3:1:", "duplicate"),
        (format!("{HEAD}{f}    timeout: 3 parsecs\n"), ":6:14:", "invalid duration"),
        (format!("{HEAD}{f}    timeout: ${{FNGATE_TEST_UNSET_VARIABLE}}\n"), ":6:14:", "FNGATE_TEST_UNSET_VARIABLE is not set"),
        (format!("{HEAD}functions:\n  hello:\n    endpoints: [\"ftp://x/y\"]\n"), ":5:17:", "not an http:// URL"),
        (format!("{HEAD}functions:\n  hello:\n    endpoints: []\n"), ":5:5:", "`endpoints` is empty"),
        (format!("{HEAD}{f}apis:\n  - id: a\n    routes:\n      - path: /x\n        function: nope\n"), ":10:19:", "unknown function \"nope\""),
        (format!("{HEAD}{f}apis:\n  - id: a\n    routes:\n      - path: /u/{{id}}\n        methods: [GET]\n        function: hello\n      - path: /u/{{name}}\n        methods: [GET]\n        function: hello\n"), ":12:15:", "conflicts"),
        (format!("{HEAD}{f}apis:\n  - id: a\n    routes:\n      - path: /u\n        methods: [GET]\n        function: hello\n      - path: /u\n        methods: [POST, GET]\n        function: hello\n"), ":12:15:", "declared twice for GET"),
        (format!("{HEAD}{f}apis:\n  - id: a\n    routes:\n      - path: /u\n        upstream: \"http://127.0.0.1:1/p\"\n"), ":10:19:", "takes no path"),
        ("server:\n  listen: [\"not an address\"]\n".into(), ":2:12:", "not an address"),
        ("server: [unclosed\n".into(), ":1:9:", "expected"),
        (format!("{HEAD}functions:\n  hello:\n    command: [\"no-such-program-xyz\"]\n"), ":5:14:", "program \"no-such-program-xyz\" is not found in PATH"),
        (format!("{HEAD}functions:\n  hello:\n    command: [\"./missing.sh\"]\n"), ":5:14:", "missing.sh does not exist"),
        (format!("{HEAD}functions:\n  hello:\n    command: [\"python3\"]\n    workdir: nowhere\n"), ":6:14:", "is not a directory"),
        (format!("{HEAD}functions:\n  hello:\n    command: [\"python3\"]\n    env: {{PORT: \"1\"}}\n"), ":6:10:", "env PORT is set by the gateway"),
        (format!("{HEAD}functions:\n  hello:\n    command: [\"python3\"]\n    instances: 0\n"), ":6:16:", "instances must be at least 1"),
        (format!("{HEAD}{f}    instances: 2\n"), ":6:16:", "`instances` applies only to `command` functions"),
    ];
    for (yaml, position, message) in cases {
        assert_rejected(&yaml, position, message);
    }
}

/// `fngate -t` refuses `yaml` with `message` at `position` (`:line:column:`), and never repeats
/// the test configs' one password.
fn assert_rejected(yaml: &str, position: &str, message: &str) {
    let (code, err) = check(yaml);
    assert_eq!(code, 1, "should be rejected:\n{yaml}");
    assert!(
        err.contains(position) && err.contains(message) && !err.contains("hunter2"),
        "{err:?} should contain {position} and {message:?}\n{yaml}"
    );
}

#[test]
fn each_oss_queue_setting_error_is_named_at_its_place() {
    let bridge = "functions:\n  fn:\n    endpoints: [\"http://127.0.0.1:9000/invoke\"]\ntriggers:\n  oss:\n    - name: t\n      function: fn\n      bucket: b\n      triggerConfig:\n        events: s3:ObjectCreated:*\noss_bridge:\n  path: /oss/notify\n  token: t0k3n\n  delivery: async\n";
    let cases = [
        ("", ":14:9:", "delivery async needs a queue"),
        (
            "  queue_dir: q\n  queue: {kind: redb, dir: q}\n",
            ":17:14:",
            "queue_dir is the shorthand of queue",
        ),
        (
            "  queue: {kind: kafka}\n",
            ":17:17:",
            "queue.kind \"kafka\": expected redb or redis",
        ),
        ("  queue: {kind: redb}\n", ":17:10:", "kind redb needs dir"),
        (
            "  queue: {kind: redb, dir: q, url: \"redis://h\"}\n",
            ":17:10:",
            "queue.url does not apply to kind redb",
        ),
        (
            "  queue: {kind: redis}\n",
            ":17:10:",
            "kind redis needs url",
        ),
        // The URL carries a password: the message names the key, not the value.
        (
            "  queue: {kind: redis, url: \"redis://:hunter2@h:notaport\"}\n",
            ":17:29:",
            "queue.url is not a Redis URL",
        ),
        (
            "  queue: {kind: redis, url: \"redis://h\", visibility_timeout: 10ms}\n",
            ":17:10:",
            "visibility_timeout must be at least 1s",
        ),
        (
            "  queue: {kind: redis, url: \"redis://h\", group: \"\"}\n",
            ":17:49:",
            "queue.group must not be empty",
        ),
    ];
    for (queue, position, message) in cases {
        assert_rejected(&format!("{HEAD}{bridge}{queue}"), position, message);
    }
    let redis = format!("{HEAD}{bridge}  queue: {{kind: redis, url: \"redis://h:6379/0\"}}\n");
    assert_eq!(check(&redis).0, 0, "{}", check(&redis).1);
}

#[test]
fn each_cluster_setting_error_is_named_at_its_place() {
    let f = "functions:\n  fn:\n    endpoints: [\"http://127.0.0.1:9000/invoke\"]\n";
    let api = |scope: &str| {
        format!("apis:\n  - id: a\n    rate_limit: {{requests: 5, per: 1s, scope: {scope}}}\n    routes:\n      - path: /x\n        function: fn\n")
    };
    let cases = [
        (
            String::new(),
            api("cluster"),
            ":8:47:",
            "scope cluster needs cluster.redis",
        ),
        (
            String::new(),
            api("galaxy"),
            ":8:47:",
            "rate_limit.scope \"galaxy\": expected local or cluster",
        ),
        (
            "cluster:\n  redis: \"redis://:hunter2@h:nope\"\n".into(),
            api("cluster"),
            ":7:10:",
            "cluster.redis is not a Redis URL",
        ),
        (
            "cluster:\n  redis: \"redis://h\"\n  sync: 1ms\n".into(),
            api("cluster"),
            ":8:9:",
            "cluster.sync must be at least 10ms",
        ),
    ];
    for (cluster, api, position, message) in cases {
        assert_rejected(&format!("{HEAD}{f}{cluster}{api}"), position, message);
    }
    let valid = format!(
        "{HEAD}{f}cluster:\n  redis: \"redis://h\"\n{}",
        api("cluster")
    );
    assert_eq!(check(&valid).0, 0, "{}", check(&valid).1);
}

#[test]
fn environment_variables_are_substituted() {
    let path = write_config("env.yaml", &format!("{HEAD}functions:\n  hello:\n    endpoints: [\"http://127.0.0.1:${{FNGATE_TEST_PORT}}/invoke\"]\n    timeout: ${{FNGATE_TEST_TIMEOUT}}\n"));
    let ok = fngate()
        .arg("-c")
        .arg(&path)
        .arg("-t")
        .env("FNGATE_TEST_PORT", "9000")
        .env("FNGATE_TEST_TIMEOUT", "2s")
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let bad = fngate()
        .arg("-c")
        .arg(&path)
        .arg("-t")
        .env("FNGATE_TEST_PORT", "9000")
        .env("FNGATE_TEST_TIMEOUT", "soon")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1));
}

#[test]
fn a_busy_port_is_a_clear_startup_error() {
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port();
    let path = write_config(
        "busy.yaml",
        &format!("server:\n  listen: [\"127.0.0.1:{port}\"]\n"),
    );
    let started = Instant::now();
    let out = fngate()
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(started.elapsed() < Duration::from_secs(5));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("cannot listen on 127.0.0.1:{port}")) && err.contains("in use"),
        "{err}"
    );
}

#[test]
fn sigterm_drains_for_the_grace_period_then_exits() {
    let port = free_port();
    let path = write_config(
        "term.yaml",
        &format!("server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 1s\n  threads: 1\n"),
    );
    let mut child = fngate()
        .arg("-c")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
    let sent = Instant::now();
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let until = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < until, "still running 10 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    let took = sent.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(5),
        "exit after {took:?}"
    );
}

/// Runs the binary on `yaml` (its `server:` section ends with `access_log:` set by `log`),
/// sends one GET for `path`, stops it with SIGTERM and returns the status and the log file.
fn one_request_logged(yaml: &str, log: &str, port: u16, path: &str) -> (u16, Option<String>) {
    let conf = write_config(
        "log.yaml",
        &yaml.replace("  threads: 1\n", &format!("  threads: 1\n{log}")),
    );
    let log_file = conf.with_file_name("access.log");
    let mut child = fngate()
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    let status = Client::connect(addr).get(path).status;
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    assert!(child.wait().unwrap().success());
    (status, std::fs::read_to_string(log_file).ok())
}

fn slow_function_config(url: &str, port: u16) -> String {
    format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 0s\n  threads: 1\n{}",
        function_config(url, "", "      - path: /users/{id}\n        function: fn\n")
    )
}

#[test]
fn the_access_log_times_the_function_and_the_gateway_apart() {
    let slow = FakeFunction::start(|_| Scripted {
        delay: Duration::from_millis(120),
        ..Scripted::json(serde_json::json!({"statusCode": 201, "body": "made"}))
    });
    let port = free_port();
    let yaml = slow_function_config(&slow.url(), port);
    // Written by the log's own thread, and all of it by the time the process has exited.
    let (status, log) = one_request_logged(
        &yaml,
        "  access_log: {path: access.log}\n",
        port,
        "/users/7",
    );
    assert_eq!(status, 201);
    let log = log.expect("the access log file exists");
    let lines: Vec<&str> = log.lines().collect();
    assert_eq!(lines.len(), 1, "{log}");
    let line = lines[0];
    let field = |name: &str| -> u64 {
        let at = line
            .find(&format!(" {name}="))
            .unwrap_or_else(|| panic!("{name} in {line}"));
        let digits: String = line[at + name.len() + 2..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits
            .parse()
            .unwrap_or_else(|_| panic!("{name} in {line}"))
    };
    assert!(line.starts_with("time=20"), "{line}");
    assert_eq!(field("status"), 201, "{line}");
    assert!(
        line.contains(" peer=127.0.0.1 method=GET path=\"/users/7\" route=\"/users/{id}\" "),
        "{line}"
    );
    assert!(line.contains(" error=- bytes_in=0 "), "{line}");
    let function_us = field("function_us");
    assert!((120_000..5_000_000).contains(&function_us), "{line}");
    assert!(field("gateway_us") < function_us, "{line}");

    // JSON lines carry the same fields.
    let port = free_port();
    let yaml = slow_function_config(&slow.url(), port);
    let json = "  access_log: {path: access.log, format: json}\n";
    let (status, log) = one_request_logged(&yaml, json, port, "/nowhere");
    assert_eq!(status, 404);
    let v: serde_json::Value = serde_json::from_str(log.unwrap().trim()).unwrap();
    assert_eq!(v["status"], 404);
    assert_eq!(v["error"], "ROUTE_NOT_FOUND");
    assert_eq!(v["route"], "-");
    assert_eq!(v["path"], "/nowhere");

    // `path: off`: no access log at all.
    let port = free_port();
    let yaml = slow_function_config(&slow.url(), port);
    let (status, log) =
        one_request_logged(&yaml, "  access_log: {path: \"off\"}\n", port, "/users/7");
    assert_eq!(status, 201);
    assert_eq!(log, None);
}
