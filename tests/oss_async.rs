//! `delivery: async`: 2xx only once events are durably stored; delivery from workers with
//! retries, back-off and a dead-letter store that the admin endpoint lists and replays;
//! duplicates within the window delivered once; a bounded queue; API routes unaffected; and
//! nothing lost across `kill -9` of the gateway.

mod support;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::oss::*;
use support::*;

/// `bridge_extra` goes under `oss_bridge:`; returns the gateway and its admin address.
fn gateway(
    store: &Store,
    function_url: &str,
    bridge_extra: &str,
) -> (Gateway, std::net::SocketAddr) {
    let admin_port = free_port();
    let g = Gateway::start_with_server(
        &format!("  admin_listen: \"127.0.0.1:{admin_port}\"\n"),
        &format!(
            "functions:\n  fn:\n    endpoints: [\"{function_url}\"]\n    timeout: 1s\n  fast:\n    endpoints: [\"{function_url}\"]\napis:\n  - id: a\n    routes:\n      - path: /api/{{x}}\n        function: fast\n        timeout: 5s\ntriggers:\n  oss:\n    - name: t\n      function: fn\n      bucket: b\n      triggerConfig:\n        events: s3:ObjectCreated:*\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: async\n{}{bridge_extra}",
            store.yaml()
        ),
    );
    let admin = format!("127.0.0.1:{admin_port}").parse().unwrap();
    wait_listening(admin);
    (g, admin)
}

/// User + system CPU time of this test process.
fn process_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .unwrap()
        .1
        .split_whitespace()
        .collect();
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    // SAFETY: sysconf has no memory arguments.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
    Duration::from_millis(ticks * 1000 / hz)
}

fn events_are_stored_then_delivered_and_duplicates_are_delivered_once(store: &Store) {
    let f = FakeFunction::replying(json!("ok"));
    let (g, admin) = gateway(store, &f.url(), "");
    let r = post(g.addr, &notification("a.txt"));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.json(),
        json!({"records": 1, "matched": 1, "unmappable": 0, "queued": 1, "duplicates": 0})
    );
    wait_until("delivery", Duration::from_secs(5), || f.events().len() == 1);
    // The sender retries the same notification: acknowledged, not delivered again.
    let r = post(g.addr, &notification("a.txt"));
    assert_eq!(r.json()["duplicates"], 1);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(f.events().len(), 1);
    assert_eq!(metric(admin, "fngate_oss_delivered_total"), 1);
    assert_eq!(metric(admin, "fngate_oss_duplicates_total"), 1);
    wait_until("an empty queue", Duration::from_secs(3), || {
        metric(admin, "fngate_oss_queue_pending") == 0
    });
    assert_eq!(admin_get(admin, "/healthz").status, 200);
}

fn failures_are_retried_then_dead_lettered_and_replay_delivers_them(store: &Store) {
    let (f, healthy) =
        failing_until_healthy(json!({"errorType": "OSError", "errorMessage": "disk full"}));
    let (g, admin) = gateway(
        store,
        &f.url(),
        "  max_attempts: 3\n  retry_backoff: 50ms\n",
    );
    let started = Instant::now();
    assert_eq!(post(g.addr, &notification("fail.txt")).status, 200);
    wait_until("the dead letter", Duration::from_secs(5), || {
        metric(admin, "fngate_oss_dead_letters") == 1
    });
    let took = started.elapsed();
    let attempts = f.events();
    assert_eq!(attempts.len(), 3, "max_attempts");
    let ids: BTreeSet<_> = attempts
        .iter()
        .map(|a| a.header("x-jdcloud-request-id").unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every attempt carries the same event id");
    // Back-off of 50 ms then 100 ms, each jittered to at least half.
    assert!(took >= Duration::from_millis(75), "{took:?}");
    let list = admin_get(admin, "/oss/dead-letters").json();
    let dead = &list["deadLetters"][0];
    assert_eq!(
        (
            dead["attempts"].clone(),
            dead["trigger"].clone(),
            dead["function"].clone()
        ),
        (json!(3), json!("t"), json!("fn"))
    );
    assert!(
        dead["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 3 attempts"),
        "{dead}"
    );
    assert!(
        dead["lastError"]
            .as_str()
            .unwrap()
            .contains("OSError: disk full"),
        "{dead}"
    );
    assert_eq!(metric(admin, "fngate_oss_retried_total"), 2);
    assert_eq!(metric(admin, "fngate_oss_dead_lettered_total"), 1);

    healthy.store(true, Ordering::SeqCst);
    let r = Client::connect(admin).request("POST", "/oss/dead-letters/replay", &[], b"");
    assert_eq!(
        r.json()["replayed"].as_array().unwrap().len(),
        1,
        "{}",
        r.text()
    );
    wait_until("the replayed delivery", Duration::from_secs(5), || {
        f.events().len() == 4
    });
    wait_until("an empty dead-letter store", Duration::from_secs(5), || {
        metric(admin, "fngate_oss_dead_letters") == 0
    });
    assert_eq!(
        f.events()[3].header("x-jdcloud-request-id"),
        ids.iter().next().map(String::as_str)
    );
    wait_until("the delivered counter", Duration::from_secs(2), || {
        metric(admin, "fngate_oss_delivered_total") == 1
    });
}

fn events_older_than_max_event_age_are_given_up(store: &Store) {
    let port = free_port(); // nothing listens: every attempt fails at once
    let (g, admin) = gateway(
        store,
        &format!("http://127.0.0.1:{port}/"),
        "  max_attempts: 1000\n  retry_backoff: 20ms\n  max_event_age: 300ms\n",
    );
    assert_eq!(post(g.addr, &notification("old.txt")).status, 200);
    wait_until("the dead letter", Duration::from_secs(5), || {
        metric(admin, "fngate_oss_dead_letters") == 1
    });
    let dead = admin_get(admin, "/oss/dead-letters").json();
    assert!(
        dead["deadLetters"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("older than max_event_age"),
        "{dead}"
    );
}

fn a_full_queue_answers_503_with_retry_after_and_api_routes_keep_serving(store: &Store) {
    // The function holds every event for 3 s: the queue fills while workers wait on it.
    let f = FakeFunction::start(|r| {
        let slow = r.path == "/invoke" && r.json().get("Records").is_some();
        Scripted {
            delay: Duration::from_millis(if slow { 3000 } else { 0 }),
            ..Scripted::json(json!({"statusCode": 200, "body": "api"}))
        }
    });
    let (g, _admin) = gateway(store, &f.url(), "  queue_capacity: 3\n  workers: 1\n");
    for i in 0..3 {
        assert_eq!(post(g.addr, &notification(&format!("k{i}"))).status, 200);
    }
    let r = post(g.addr, &notification("k3"));
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("QUEUE_FULL"))
    );
    assert_eq!(r.header("retry-after"), Some("5"));
    // The backlog waits without spinning: the process burns well under a core meanwhile.
    let cpu = process_cpu();
    std::thread::sleep(Duration::from_millis(1000));
    let burnt = process_cpu() - cpu;
    assert!(
        burnt < Duration::from_millis(400),
        "{burnt:?} of CPU in 1 s while waiting"
    );
    // Meanwhile an API route answers at once.
    let started = Instant::now();
    let r = g.client().get("/api/1");
    assert_eq!((r.status, r.text().as_str()), (200, "api"));
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );
}

fn unmappable_notifications_are_kept_as_dead_letters_and_acknowledged(store: &Store) {
    let f = FakeFunction::replying(json!("ok"));
    let (g, admin) = gateway(store, &f.url(), "");
    let r = post(g.addr, "this is not a notification");
    assert_eq!(r.status, 202, "{}", r.text());
    let list = admin_get(admin, "/oss/dead-letters").json();
    let dead = &list["deadLetters"][0];
    assert_eq!(dead["event"], "this is not a notification");
    assert!(
        dead["reason"].as_str().unwrap().starts_with("not mappable"),
        "{dead}"
    );
    let r = Client::connect(admin).request("POST", "/oss/dead-letters/replay", &[], b"");
    assert_eq!(r.json()["replayed"], json!([]), "nothing to invoke");
    assert!(f.events().is_empty());
}

fn a_full_dead_letter_store_refuses_unmappable_bodies_with_503(store: &Store) {
    let f = FakeFunction::replying(json!("ok"));
    let (g, admin) = gateway(store, &f.url(), "  dead_letter_capacity: 2\n");
    for i in 0..2 {
        assert_eq!(post(g.addr, &format!("junk {i}")).status, 202);
    }
    let r = post(g.addr, "junk 2");
    assert_eq!(
        (r.status, r.header("x-fngate-error")),
        (503, Some("DEAD_LETTERS_FULL")),
        "{}",
        r.text()
    );
    assert_eq!(r.header("retry-after"), Some("60"));
    let list = admin_get(admin, "/oss/dead-letters").json();
    assert_eq!(list["deadLetters"].as_array().unwrap().len(), 2);
    assert_eq!(metric(admin, "fngate_oss_dead_letters_full_total"), 1);
}

/// Each behaviour above, once with the local redb store and once with a Redis stream.
macro_rules! on_each_store {
    ($($name:ident),* $(,)?) => {
        mod redb {
            $(#[test]
            fn $name() {
                super::$name(&super::Store::redb());
            })*
        }
        mod redis {
            $(#[test]
            fn $name() {
                super::$name(&super::Store::redis());
            })*
        }
    };
}

on_each_store!(
    events_are_stored_then_delivered_and_duplicates_are_delivered_once,
    failures_are_retried_then_dead_lettered_and_replay_delivers_them,
    events_older_than_max_event_age_are_given_up,
    a_full_queue_answers_503_with_retry_after_and_api_routes_keep_serving,
    unmappable_notifications_are_kept_as_dead_letters_and_acknowledged,
    a_full_dead_letter_store_refuses_unmappable_bodies_with_503
);

/// The binary, async delivery into a queue_dir, to a function on `function_port`.
fn start_binary(
    dir: &std::path::Path,
    port: u16,
    function_port: u16,
) -> (std::process::Child, std::net::SocketAddr) {
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  grace_period: 0s\nfunctions:\n  fn:\n    endpoints: [\"http://127.0.0.1:{function_port}/invoke\"]\n    timeout: 2s\ntriggers:\n  oss:\n    - name: t\n      function: fn\n      bucket: b\n      triggerConfig:\n        events: s3:ObjectCreated:*\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: async\n  queue_dir: queue\n  max_attempts: 1000\n  retry_backoff: 100ms\n"
    );
    std::fs::write(dir.join("fngate.yaml"), yaml).unwrap();
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_fngate"))
        .arg("-c")
        .arg(dir.join("fngate.yaml"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let addr = format!("127.0.0.1:{port}").parse().unwrap();
    wait_listening(addr);
    (child, addr)
}

#[test]
fn accepted_events_survive_kill_9_and_are_all_delivered_after_restart() {
    let dir = queue_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let function_port = free_port(); // down for now
    let (mut gw, addr) = start_binary(&dir, free_port(), function_port);
    let n = 40;
    for i in 0..n {
        let r = post(addr, &notification(&format!("object-{i}.txt")));
        assert_eq!(r.status, 200, "{}", r.text());
    }
    gw.kill().unwrap(); // SIGKILL, mid-retry
    gw.wait().unwrap();

    let f = FakeFunction::start_on(function_port, |_| Scripted::json(json!("ok")));
    let (mut gw, _) = start_binary(&dir, free_port(), function_port);
    let keys = |f: &FakeFunction| f.events().iter().map(key_of).collect::<BTreeSet<_>>();
    wait_until("every accepted event", Duration::from_secs(20), || {
        keys(&f).len() == n
    });
    std::thread::sleep(Duration::from_millis(500));
    let calls = f.events();
    let mut per_key: BTreeMap<String, usize> = BTreeMap::new();
    for c in &calls {
        *per_key.entry(key_of(c)).or_default() += 1;
    }
    let expected: BTreeSet<String> = (0..n).map(|i| format!("object-{i}.txt")).collect();
    assert_eq!(
        per_key.keys().cloned().collect::<BTreeSet<_>>(),
        expected,
        "none lost"
    );
    let repeats = calls.len() - n;
    println!("kill -9 durability: {n} accepted, {n} delivered, {repeats} delivered twice");
    assert_eq!(repeats, 0, "the store committed nothing as delivered before the kill, and after it each event went once");
    let _ = gw.kill();
    let _ = gw.wait();
    let body: Value = calls[0].json();
    assert_eq!(body["Records"][0]["detail"]["s3"]["bucket"]["name"], "b");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn sixteen_senders_through_two_kill_9s_lose_nothing_that_got_a_2xx() {
    let dir = queue_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let function_port = free_port();
    let f = FakeFunction::start_on(function_port, |_| Scripted::json(json!("ok")));
    let port = free_port();
    let (gw, addr) = start_binary(&dir, port, function_port);
    let gw = Arc::new(std::sync::Mutex::new(gw));
    let (senders, each) = (16, 32);
    let accepted = Arc::new(std::sync::Mutex::new(BTreeSet::new()));
    let posted = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let threads: Vec<_> = (0..senders)
        .map(|s| {
            let (accepted, posted) = (accepted.clone(), posted.clone());
            std::thread::spawn(move || {
                for i in 0..each {
                    let key = format!("sender-{s}/object-{i}.txt");
                    let body = notification(&key);
                    let until = Instant::now() + Duration::from_secs(60);
                    // Until a 2xx: refused, broken or 5xx answers are tried again.
                    loop {
                        assert!(Instant::now() < until, "{key} never accepted");
                        match try_post(addr, &body) {
                            Some(status) if (200..300).contains(&status) => break,
                            _ => std::thread::sleep(Duration::from_millis(20)),
                        }
                    }
                    accepted.lock().unwrap().insert(key);
                    posted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    let total = senders * each;
    // kill -9 at a third and at two thirds of the way, restarting on the same port each time.
    for thirds in [1, 2] {
        wait_until("senders' progress", Duration::from_secs(60), || {
            posted.load(Ordering::Relaxed) >= total * thirds / 3
        });
        let mut child = gw.lock().unwrap();
        child.kill().unwrap();
        child.wait().unwrap();
        *child = start_binary(&dir, port, function_port).0;
    }
    for t in threads {
        t.join().unwrap();
    }
    let accepted = accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), total);
    let delivered = |f: &FakeFunction| f.events().iter().map(key_of).collect::<BTreeSet<_>>();
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(30),
        || delivered(&f).is_superset(&accepted),
    );
    std::thread::sleep(Duration::from_millis(500));
    let calls = f.events().len();
    let duplicates = calls - delivered(&f).len();
    println!("kill -9 twice under 16 senders: {total} accepted, {} delivered, {duplicates} delivered more than once, 0 lost", delivered(&f).len());
    let mut child = gw.lock().unwrap();
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
}

/// A tmpfs of `size` mounted at `dir` (this machine's CI runs as root), unmounted on drop.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount tmpfs: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_path_buf())
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_queue_answers_503_and_loses_nothing_accepted() {
    let dir = queue_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let _disk = Tmpfs::mount(&dir.join("queue"), "2m");
    let function_port = free_port(); // down: events pile up
    let (mut gw, addr) = start_binary(&dir, free_port(), function_port);
    let mut accepted = BTreeSet::new();
    let mut refusal = None;
    // Large keys fill the disk sooner; stop at the first refusal.
    for i in 0..20_000 {
        let key = format!("{i:06}-{}", "k".repeat(900));
        let r = post(addr, &notification(&key));
        if r.status == 200 {
            accepted.insert(key);
            continue;
        }
        refusal = Some((
            r.status,
            r.header("x-fngate-error").map(str::to_owned),
            r.header("retry-after").map(str::to_owned),
        ));
        break;
    }
    let (status, code, retry) = refusal.expect("the disk filled up");
    assert_eq!(status, 503);
    assert!(
        matches!(
            code.as_deref(),
            Some("QUEUE_UNAVAILABLE") | Some("QUEUE_FULL")
        ),
        "{code:?}"
    );
    assert!(retry.is_some(), "the sender is told when to retry");
    assert!(
        accepted.len() > 100,
        "{} accepted before the disk was full",
        accepted.len()
    );

    // The function comes up: every accepted event is delivered, none lost.
    let f = FakeFunction::start_on(function_port, |_| Scripted::json(json!("ok")));
    let delivered = |f: &FakeFunction| f.events().iter().map(key_of).collect::<BTreeSet<_>>();
    wait_until(
        "every accepted event delivered",
        Duration::from_secs(60),
        || delivered(&f).is_superset(&accepted),
    );
    println!(
        "full disk: {} accepted, then {status} {code:?}; {} delivered, 0 lost",
        accepted.len(),
        delivered(&f).len()
    );
    let _ = gw.kill();
    let _ = gw.wait();
    drop(_disk);
    let _ = std::fs::remove_dir_all(dir);
}
