//! Hot reload on the real binary: `fngate -s reload` (SIGHUP through `server.pid_file`) and
//! `POST /admin/reload` while 64 keep-alive connections send requests without a pause. No
//! request fails; each new route answers right after its reload; an invalid file is rejected
//! with every problem's line:column while the old routes go on; an unchanged supervised
//! function keeps its process, a changed one is restarted, a removed one stopped, a new one
//! serves from the first request that reaches it. Also `/readyz`, `/healthz`, `/admin/routes`.

mod support;
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::*;

struct Setup {
    dir: PathBuf,
    conf: PathBuf,
    port: u16,
    admin: u16,
    fake: String,
}

impl Setup {
    fn new() -> Setup {
        let dir = std::env::temp_dir().join(format!("fngate-reload-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Setup {
            conf: dir.join("fngate.yaml"),
            dir,
            port: free_port(),
            admin: free_port(),
            fake: String::new(),
        }
    }

    /// A supervised probe function; `env` tells versions apart.
    fn probe(name: &str, env: &str) -> String {
        let root = env!("CARGO_MANIFEST_DIR");
        format!(
            "  {name}:\n    command: {}\n    workdir: {root}\n    env: {{VERSION: \"{env}\"}}\n",
            runtime_command("tests/functions/probe", "index.handler")
        )
    }

    /// Writes the config: `functions` and `routes` are YAML under their keys.
    fn write(&self, functions: &str, routes: &str) {
        let yaml = format!(
            "server:\n  listen: [\"127.0.0.1:{}\"]\n  admin_listen: \"127.0.0.1:{}\"\n  threads: 2\n  grace_period: 1s\n  pid_file: fngate.pid\nfunctions:\n  fast:\n    endpoints: [\"{}\"]\n{functions}apis:\n  - id: testsvc\n    stage: test\n    routes:\n      - path: /stable\n        function: fast\n{routes}",
            self.port, self.admin, self.fake
        );
        std::fs::write(&self.conf, yaml).unwrap();
    }

    fn addr(&self) -> std::net::SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn admin(&self) -> Client {
        Client::connect(format!("127.0.0.1:{}", self.admin).parse().unwrap())
    }

    fn routes(&self) -> Value {
        let r = self.admin().get("/admin/routes");
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()
    }

    fn generation(&self) -> u64 {
        self.routes()["generation"].as_u64().unwrap()
    }

    /// `fngate -c FILE -s reload`, then waits for the generation to reach `expected`.
    fn signal_reload(&self, expected: u64) {
        succeeded(
            Command::new(env!("CARGO_BIN_EXE_fngate"))
                .arg("-c")
                .arg(&self.conf)
                .args(["-s", "reload"]),
        );
        let until = Instant::now() + Duration::from_secs(20);
        while self.generation() < expected {
            assert!(Instant::now() < until, "reload {expected} did not happen");
            std::thread::sleep(Duration::from_millis(10));
        }
        assert_eq!(self.generation(), expected);
    }

    fn pids(&self) -> Vec<(String, u64)> {
        let routes = self.routes();
        let mut pids: Vec<(String, u64)> = routes["instances"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| {
                let pid = i["pid"].as_u64().unwrap_or(0);
                (i["function"].as_str().unwrap().to_owned(), pid)
            })
            .collect();
        pids.sort();
        pids
    }
}

fn status(addr: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let r = Client::connect(addr).get(path);
    let body = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, body)
}

fn wait_ready(admin: std::net::SocketAddr) {
    let until = Instant::now() + Duration::from_secs(20);
    loop {
        if Client::connect(admin).get("/readyz").status == 200 {
            return;
        }
        assert!(Instant::now() < until, "never ready");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// 64 keep-alive connections sending GET /stable back to back until told to stop; counts
/// answers and failures (anything but 200, or a broken connection).
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: std::net::SocketAddr, connections: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let ok = Arc::new(AtomicUsize::new(0));
        let failed = Arc::new(AtomicUsize::new(0));
        let threads = (0..connections)
            .map(|_| {
                let (stop, ok, failed) = (stop.clone(), ok.clone(), failed.clone());
                std::thread::spawn(move || {
                    let mut c = Client::connect(addr);
                    while !stop.load(Ordering::Relaxed) {
                        let got = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            c.get("/stable").status
                        }));
                        match got {
                            Ok(200) => ok.fetch_add(1, Ordering::Relaxed),
                            Ok(_) | Err(_) => {
                                c = Client::connect(addr);
                                failed.fetch_add(1, Ordering::Relaxed)
                            }
                        };
                    }
                })
            })
            .collect();
        Load {
            stop,
            ok,
            failed,
            threads,
        }
    }

    fn finish(self) -> (usize, usize) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
        )
    }
}

fn post_reload(s: &Setup) -> Value {
    let r = s.admin().request("POST", "/admin/reload", &[], b"");
    let body = r.json();
    assert_eq!(r.status == 200, body["reloaded"] == true, "{body}");
    body
}

#[test]
fn reloads_under_load_drop_nothing_and_diff_the_functions() {
    let fake = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let mut s = Setup::new();
    s.fake = fake.url();
    let keep = Setup::probe("keep", "1");
    s.write(
        &format!("{keep}{}", Setup::probe("change", "1")),
        "      - path: /v0\n        function: fast\n      - path: /keep/{kind}\n        function: keep\n      - path: /change/{kind}\n        function: change\n",
    );
    let mut gw = FngateProcess::start(&s.conf, &[]);
    let admin = format!("127.0.0.1:{}", s.admin).parse().unwrap();
    wait_listening(s.addr());
    wait_ready(admin);
    assert_eq!(s.generation(), 1);
    let pid_file = std::fs::read_to_string(s.dir.join("fngate.pid")).unwrap();
    assert_eq!(pid_file.trim(), gw.child.id().to_string());
    let keep_pid = status(s.addr(), "/keep/pid").1["pid"].as_u64().unwrap();
    let change_pid = status(s.addr(), "/change/pid").1["pid"].as_u64().unwrap();

    let load = Load::start(s.addr(), 64);
    std::thread::sleep(Duration::from_millis(300));

    // 1. A new route through -s reload; the old one goes.
    let keep_route = "      - path: /keep/{kind}\n        function: keep\n";
    let change_route = "      - path: /change/{kind}\n        function: change\n";
    s.write(
        &format!("{keep}{}", Setup::probe("change", "1")),
        &format!("      - path: /v1\n        function: fast\n{keep_route}{change_route}"),
    );
    s.signal_reload(2);
    assert_eq!(status(s.addr(), "/v1").0, 200);
    assert_eq!(status(s.addr(), "/v0").0, 404);

    // 2. The `change` function's environment changes: restarted on a new process; `keep` is not.
    s.write(
        &format!("{keep}{}", Setup::probe("change", "2")),
        &format!("      - path: /v2\n        function: fast\n{keep_route}{change_route}"),
    );
    let done = post_reload(&s);
    assert_eq!(done["generation"], 3);
    assert_eq!(
        done["functions"]["restarted"],
        serde_json::json!(["change"])
    );
    assert_eq!(done["functions"]["unchanged"], serde_json::json!(["keep"]));
    assert_eq!(status(s.addr(), "/v2").0, 200);
    let (code, body) = status(s.addr(), "/change/pid");
    assert_eq!(code, 200, "{body}");
    let new_change_pid = body["pid"].as_u64().unwrap();
    assert_ne!(new_change_pid, change_pid);
    assert!(
        gone_within(change_pid as u32, Duration::from_secs(10)),
        "the old instance stops"
    );

    // 3. A new supervised function answers the first request routed to it.
    s.write(
        &format!("{keep}{}{}", Setup::probe("change", "2"), Setup::probe("added", "1")),
        &format!("      - path: /v3\n        function: fast\n{keep_route}{change_route}      - path: /added/{{kind}}\n        function: added\n"),
    );
    s.signal_reload(4);
    let (code, body) = status(s.addr(), "/added/pid");
    assert_eq!(code, 200, "{body}");
    let added_pid = body["pid"].as_u64().unwrap();

    // 4. An invalid file: rejected with line:column, by the admin endpoint and by SIGHUP alike.
    std::fs::write(
        &s.conf,
        std::fs::read_to_string(&s.conf).unwrap().replace(
            "      - path: /v3\n",
            "      - path: /v3\n        timeout: soon\n",
        ),
    )
    .unwrap();
    let refused = post_reload(&s);
    assert_eq!(refused["generation"], 4, "{refused}");
    let problem = refused["problems"][0].as_str().unwrap();
    let place = problem.strip_prefix(s.conf.to_str().unwrap()).unwrap_or("");
    let mut parts = place.splitn(4, ':');
    let (line, column) = (parts.nth(1).unwrap_or(""), parts.next().unwrap_or(""));
    assert!(
        line.parse::<u32>().is_ok() && column.parse::<u32>().is_ok(),
        "{problem}"
    );
    assert!(problem.contains("invalid duration \"soon\""), "{problem}");
    let kill = Command::new("kill")
        .args(["-HUP", &gw.child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.generation(), 4);
    assert_eq!(status(s.addr(), "/v3").0, 200, "the old routes go on");
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "SIGHUP does not stop it"
    );

    // 5. `added` removed, a server key changed (kept until a restart).
    s.write(
        &format!("{keep}{}", Setup::probe("change", "2")),
        &format!("      - path: /v5\n        function: fast\n{keep_route}{change_route}"),
    );
    std::fs::write(
        &s.conf,
        std::fs::read_to_string(&s.conf)
            .unwrap()
            .replace("  threads: 2\n", "  threads: 3\n"),
    )
    .unwrap();
    let done = post_reload(&s);
    assert_eq!(done["generation"], 5);
    assert_eq!(done["functions"]["stopped"], serde_json::json!(["added"]));
    assert_eq!(done["restartNeeded"], serde_json::json!(["server.threads"]));
    assert_eq!(status(s.addr(), "/v5").0, 200);
    assert_eq!(status(s.addr(), "/added/pid").0, 404);
    assert!(
        gone_within(added_pid as u32, Duration::from_secs(10)),
        "removed function stops"
    );

    // 6. Back to the first version's routes through -s reload.
    s.write(
        &format!("{keep}{}", Setup::probe("change", "2")),
        &format!("      - path: /v0\n        function: fast\n{keep_route}{change_route}"),
    );
    s.signal_reload(6);
    assert_eq!(status(s.addr(), "/v0").0, 200);
    assert_eq!(status(s.addr(), "/v5").0, 404);

    std::thread::sleep(Duration::from_millis(200));
    let (ok, failed) = load.finish();
    assert_eq!(failed, 0, "{failed} failed of {}", ok + failed);
    assert!(ok >= 640, "the load ran: {ok} answers");

    // Through all of it `keep` kept its process.
    assert_eq!(
        status(s.addr(), "/keep/pid").1["pid"].as_u64().unwrap(),
        keep_pid
    );
    let pids = s.pids();
    assert_eq!(
        pids.iter().map(|(f, _)| f.as_str()).collect::<Vec<_>>(),
        ["change", "keep"]
    );
    assert!(pids.contains(&("keep".to_owned(), keep_pid)), "{pids:?}");
    assert!(
        pids.contains(&("change".to_owned(), new_change_pid)),
        "{pids:?}"
    );

    gw.sigterm();
    assert!(gw.wait_exit(Duration::from_secs(10)).success());
    assert!(
        !s.dir.join("fngate.pid").exists(),
        "the pid file goes with the process"
    );
    eprintln!("reloads under load: {ok} requests answered, {failed} failed");
}

#[test]
fn readyz_waits_for_supervised_functions_and_routes_lists_targets() {
    let fake = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let mut s = Setup::new();
    s.fake = fake.url();
    // A function that takes 1.5 s to open its port; start-up goes on without it after 200 ms.
    let slow = format!(
        "  slow:\n    command: [\"python3\", \"-c\", \"import time, runpy, sys; time.sleep(1.5); sys.argv = ['r', '--code', 'tests/functions/probe', '--handler', 'index.handler']; runpy.run_path('runtime/python/fngate_runtime.py', run_name='__main__')\"]\n    workdir: {}\n    start_timeout: 200ms\n",
        env!("CARGO_MANIFEST_DIR")
    );
    s.write(
        &slow,
        "      - path: /slow/{kind}\n        function: slow\n        methods: [GET]\n      - path: /old/{*rest}\n        upstream: http://127.0.0.1:9\n",
    );
    let _gw = FngateProcess::start(&s.conf, &[]);
    let admin: std::net::SocketAddr = format!("127.0.0.1:{}", s.admin).parse().unwrap();
    wait_listening(s.addr());
    assert_eq!(Client::connect(admin).get("/healthz").status, 200);
    let r = Client::connect(admin).get("/readyz");
    assert_eq!(r.status, 503, "{}", r.text());
    assert_eq!(r.json()["waiting"][0]["function"], "slow");
    wait_ready(admin);

    let routes = s.routes();
    let list = routes["routes"].as_array().unwrap();
    assert_eq!(list.len(), 3, "{routes}");
    assert_eq!(list[0]["path"], "/stable");
    assert_eq!(list[0]["function"], "fast");
    assert_eq!(list[0]["endpoints"], serde_json::json!([s.fake]));
    assert_eq!(list[0]["methods"], Value::Null);
    assert_eq!(list[1]["function"], "slow");
    assert_eq!(list[1]["methods"], serde_json::json!(["GET"]));
    let slow_endpoint = list[1]["endpoints"][0].as_str().unwrap().to_owned();
    assert_eq!(list[2]["upstream"], "http://127.0.0.1:9");
    let instance = &routes["instances"][0];
    assert_eq!(instance["function"], "slow");
    assert_eq!(instance["ready"], true);
    assert_eq!(
        format!("http://{}/", instance["addr"].as_str().unwrap()),
        slow_endpoint
    );
    let pid = status(s.addr(), "/slow/pid").1["pid"].as_u64().unwrap();
    assert_eq!(instance["pid"].as_u64().unwrap(), pid);
}

#[test]
fn signalling_needs_a_pid_file_and_a_valid_config() {
    let s = Setup::new();
    let no_pid = s.dir.join("no-pid.yaml");
    std::fs::write(&no_pid, "server:\n  listen: [\"127.0.0.1:1\"]\n").unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(&no_pid)
        .args(["-s", "reload"])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("server.pid_file is not set"));

    let not_running = s.dir.join("stale.yaml");
    std::fs::write(
        &not_running,
        "server:\n  listen: [\"127.0.0.1:1\"]\n  pid_file: nobody.pid\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(&not_running)
        .args(["-s", "reload"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("nobody.pid") && err.contains("is the gateway running"),
        "{err}"
    );
}
