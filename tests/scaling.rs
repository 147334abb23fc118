//! Beyond one machine (docs/scaling.md). Several gateways on one OSS queue in Redis: a gateway
//! killed with SIGKILL mid-way and never restarted loses nothing (the others take its events
//! over), Redis itself restarted mid-run loses nothing it acknowledged while senders are told
//! 503 meanwhile, one notification posted to two gateways is delivered once. And one rate limit
//! for the whole cluster, falling back to each gateway's own buckets while Redis is away. Real
//! processes throughout: the fngate binary, redis-server, function backends, senders on threads.

mod support;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::oss::*;
use support::redis_server::RedisServer;
use support::*;

/// One gateway process on the shared queue, with its listener and admin addresses.
struct Member {
    process: FngateProcess,
    addr: SocketAddr,
    admin: SocketAddr,
    _dir: TempDir,
}

struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn member(redis: &RedisServer, function_url: &str) -> Member {
    let retries = "  max_attempts: 1000\n  retry_backoff: 100ms\n";
    member_with(
        function_url,
        &format!("{}{retries}", Store::yaml_for(redis)),
    )
}

/// A gateway whose further `oss_bridge` lines (the queue among them) are `bridge`.
fn member_with(function_url: &str, bridge: &str) -> Member {
    let dir = queue_dir();
    std::fs::create_dir_all(&dir).unwrap();
    let (port, admin_port) = (free_port(), free_port());
    let yaml = format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  admin_listen: \"127.0.0.1:{admin_port}\"\n  grace_period: 0s\nfunctions:\n  fn:\n    endpoints: [\"{function_url}\"]\n    timeout: 5s\napis:\n  - id: a\n    routes:\n      - path: /api/{{x}}\n        function: fn\ntriggers:\n  oss:\n    - name: t\n      function: fn\n      bucket: b\n      triggerConfig:\n        events: s3:ObjectCreated:*\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: async\n{bridge}"
    );
    let config = dir.join("fngate.yaml");
    std::fs::write(&config, yaml).unwrap();
    let process = FngateProcess::start(&config, &[]);
    let (addr, admin) = (
        SocketAddr::from(([127, 0, 0, 1], port)),
        SocketAddr::from(([127, 0, 0, 1], admin_port)),
    );
    wait_listening(addr);
    wait_listening(admin);
    Member {
        process,
        addr,
        admin,
        _dir: TempDir(dir),
    }
}

/// `senders` threads post notifications for `keys` (a share each), each to the next gateway in
/// turn; a sender that gets no 2xx tries the next one, as behind a load balancer, until one
/// takes it. Returns the threads and the count of keys accepted so far.
fn senders(
    gateways: Vec<SocketAddr>,
    keys: Vec<String>,
    senders: usize,
    refused: Arc<AtomicUsize>,
) -> (Vec<std::thread::JoinHandle<()>>, Arc<AtomicUsize>) {
    let accepted = Arc::new(AtomicUsize::new(0));
    let keys = Arc::new(keys);
    let threads = (0..senders)
        .map(|s| {
            let (gateways, keys) = (gateways.clone(), keys.clone());
            let (accepted, refused) = (accepted.clone(), refused.clone());
            std::thread::spawn(move || {
                for (i, key) in keys.iter().enumerate().skip(s).step_by(senders) {
                    let body = notification(key);
                    let until = Instant::now() + Duration::from_secs(60);
                    let mut at = i;
                    loop {
                        assert!(Instant::now() < until, "{key} never accepted");
                        match try_post(gateways[at % gateways.len()], &body) {
                            Some(status) if (200..300).contains(&status) => break,
                            Some(503) => {
                                refused.fetch_add(1, Ordering::Relaxed);
                            }
                            _ => {}
                        }
                        at += 1;
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    accepted.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    (threads, accepted)
}

/// How many times the function received each key.
fn deliveries(f: &FakeFunction) -> BTreeMap<String, usize> {
    let mut per_key = BTreeMap::new();
    for e in f.events() {
        *per_key.entry(key_of(&e)).or_default() += 1;
    }
    per_key
}

fn wait_all_delivered(
    f: &FakeFunction,
    keys: &[String],
    within: Duration,
) -> BTreeMap<String, usize> {
    let want: BTreeSet<&str> = keys.iter().map(String::as_str).collect();
    wait_until("every accepted event delivered", within, || {
        let got = deliveries(f);
        want.iter().all(|k| got.contains_key(*k))
    });
    std::thread::sleep(Duration::from_millis(300));
    deliveries(f)
}

#[test]
fn three_gateways_lose_nothing_when_one_is_killed_and_not_restarted() {
    let redis = RedisServer::start();
    // Each event holds a worker for 50 ms: every gateway has events in flight at all times.
    let f = FakeFunction::start(|_| Scripted {
        delay: Duration::from_millis(50),
        ..Scripted::json(json!("ok"))
    });
    let mut gateways: Vec<Member> = (0..3).map(|_| member(&redis, &f.url())).collect();
    let keys: Vec<String> = (0..1000).map(|i| format!("object-{i:04}.txt")).collect();
    let addrs = gateways.iter().map(|g| g.addr).collect();
    let (threads, accepted) = senders(addrs, keys.clone(), 8, Arc::default());

    wait_until("a third accepted", Duration::from_secs(60), || {
        accepted.load(Ordering::Relaxed) >= 333
    });
    // Kill the second gateway while it holds events: its consumer has entries pending.
    let victim = gateways.remove(1);
    let pid = victim.process.child.id();
    let held = |redis: &RedisServer| {
        let listed = redis.cli(&["XPENDING", "events", "gateways"]);
        let mut lines = listed.lines().map(str::trim).skip(3);
        let mut held = 0;
        while let (Some(name), Some(count)) = (lines.next(), lines.next()) {
            if name.contains(&format!("-{pid}-")) {
                held = count.parse().unwrap_or(0);
            }
        }
        held
    };
    wait_until("the victim holding events", Duration::from_secs(10), || {
        held(&redis) > 0
    });
    let mut victim = victim;
    victim.process.child.kill().unwrap();
    victim.process.child.wait().unwrap();
    let orphaned = held(&redis);
    println!("SIGKILL with {orphaned} events held by the killed gateway");

    for t in threads {
        t.join().unwrap();
    }
    let per_key = wait_all_delivered(&f, &keys, Duration::from_secs(60));
    let calls: usize = per_key.values().sum();
    let duplicates = calls - keys.len();
    let extra: Vec<_> = per_key.keys().filter(|k| !keys.contains(k)).collect();
    assert!(extra.is_empty(), "{extra:?}");
    let taken_over: u64 = gateways
        .iter()
        .map(|g| metric(g.admin, "fngate_oss_taken_over_total"))
        .sum();
    println!(
        "three gateways, one killed: 1000 accepted, 1000 delivered, {duplicates} delivered twice, {taken_over} taken over, 0 lost"
    );
    assert!(
        taken_over >= orphaned as u64 && orphaned > 0,
        "the killed gateway's {orphaned} events were taken over ({taken_over})"
    );
    // Everything settled: nothing waits or is held.
    wait_until("an empty stream", Duration::from_secs(5), || {
        redis.cli(&["XLEN", "events"]) == "0"
    });
    assert_eq!(
        redis
            .cli(&["XPENDING", "events", "gateways"])
            .lines()
            .next(),
        Some("0")
    );
    // The killed gateway holds nothing now; idle for 5 visibility timeouts, it leaves the group,
    // and the live ones stay in it.
    let consumers = || {
        let listed = redis.cli(&["XINFO", "CONSUMERS", "events", "gateways"]);
        let mut lines = listed.lines().map(str::trim);
        let mut names = Vec::new();
        while let Some(line) = lines.next() {
            if line == "name" {
                names.extend(lines.next().map(str::to_owned));
            }
        }
        names
    };
    assert!(consumers().iter().any(|c| c.contains(&format!("-{pid}-"))));
    wait_until(
        "the killed gateway's consumer removed",
        Duration::from_secs(30),
        || consumers().len() == 2,
    );
    let live: Vec<String> = gateways
        .iter()
        .map(|g| format!("-{}-", g.process.child.id()))
        .collect();
    let left = consumers();
    assert!(
        live.iter()
            .all(|p| left.iter().any(|c| c.contains(p.as_str()))),
        "{left:?} should be the live gateways {live:?}"
    );
}

#[test]
fn redis_restarted_mid_run_answers_503_meanwhile_and_loses_nothing_it_acknowledged() {
    let mut redis = RedisServer::start();
    // Events take 50 ms each: accepted ones are still waiting in Redis when it is killed.
    let f = FakeFunction::start(|r| match r.json().get("Records") {
        Some(_) => Scripted {
            delay: Duration::from_millis(50),
            ..Scripted::json(json!("ok"))
        },
        None => Scripted::json(json!({"statusCode": 200, "body": "api"})),
    });
    let g = member(&redis, &f.url());
    let keys: Vec<String> = (0..300).map(|i| format!("restart-{i:03}.txt")).collect();
    let refused = Arc::new(AtomicUsize::new(0));
    let (threads, accepted) = senders(vec![g.addr], keys.clone(), 4, refused.clone());
    wait_until("a third accepted", Duration::from_secs(30), || {
        accepted.load(Ordering::Relaxed) >= 100
    });
    let waiting: usize = redis.cli(&["XLEN", "events"]).parse().unwrap();
    assert!(waiting > 0, "a backlog when Redis dies");
    redis.kill();
    // Answers already on their way when it died are counted before the watch starts.
    std::thread::sleep(Duration::from_millis(300));
    let down = accepted.load(Ordering::Relaxed);
    // While Redis is away: the bridge says 503 with Retry-After; API routes answer as before.
    let r = post(g.addr, &notification("while-down.txt"));
    assert_eq!(
        (
            r.status,
            r.header("x-fngate-error"),
            r.header("retry-after")
        ),
        (503, Some("QUEUE_UNAVAILABLE"), Some("5")),
        "{}",
        r.text()
    );
    let api = Client::connect(g.addr).get("/api/1");
    assert_eq!((api.status, api.text().as_str()), (200, "api"));
    std::thread::sleep(Duration::from_millis(1500));
    let during = accepted.load(Ordering::Relaxed);
    assert_eq!(during, down, "nothing is accepted while Redis is down");
    redis.restart();
    for t in threads {
        t.join().unwrap();
    }
    let per_key = wait_all_delivered(&f, &keys, Duration::from_secs(30));
    let calls: usize = per_key.values().sum();
    println!(
        "Redis killed with {waiting} events waiting, restarted: 300 accepted, {} answered 503 meanwhile, {} delivered twice, 0 lost",
        refused.load(Ordering::Relaxed),
        calls - keys.len()
    );
    assert!(refused.load(Ordering::Relaxed) > 0, "senders saw 503");
}

#[test]
fn one_notification_posted_to_two_gateways_is_delivered_once() {
    let redis = RedisServer::start();
    let f = FakeFunction::replying(json!("ok"));
    let (a, b) = (member(&redis, &f.url()), member(&redis, &f.url()));
    let body = notification("once.txt");
    let first = post(a.addr, &body);
    let second = post(b.addr, &body);
    assert_eq!(
        (first.status, first.json()["queued"].clone()),
        (200, json!(1))
    );
    assert_eq!(
        (second.status, second.json()["duplicates"].clone()),
        (200, json!(1)),
        "{}",
        second.text()
    );
    wait_until("the delivery", Duration::from_secs(5), || {
        f.events().len() == 1
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(f.events().len(), 1);
    assert_eq!(metric(b.admin, "fngate_oss_duplicates_total"), 1);
}

#[test]
fn a_gateway_restarted_under_its_consumer_name_resumes_the_events_it_held() {
    let redis = RedisServer::start();
    // At first the function holds every event for 30 s: the gateway is killed holding them.
    let slow = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let s = slow.clone();
    let f = FakeFunction::start(move |_| Scripted {
        delay: Duration::from_secs(if s.load(Ordering::SeqCst) { 30 } else { 0 }),
        ..Scripted::json(json!("ok"))
    });
    // A visibility timeout far longer than the test: only the gateway itself can resume them.
    let queue = format!(
        "  queue: {{kind: redis, url: \"{}\", stream: events, group: gateways, consumer: gw-1, visibility_timeout: 600s}}\n  max_attempts: 1000\n",
        redis.url()
    );
    let mut g = member_with(&f.url(), &queue);
    for i in 0..3 {
        assert_eq!(
            post(g.addr, &notification(&format!("held-{i}.txt"))).status,
            200
        );
    }
    wait_until("three events held by gw-1", Duration::from_secs(10), || {
        redis
            .cli(&["XPENDING", "events", "gateways"])
            .lines()
            .next()
            == Some("3")
    });
    g.process.child.kill().unwrap();
    g.process.child.wait().unwrap();
    let before = f.events().len();
    slow.store(false, Ordering::SeqCst);
    let g = member_with(&f.url(), &queue);
    wait_until(
        "the held events delivered again",
        Duration::from_secs(10),
        || f.events().len() >= before + 3,
    );
    let resumed: BTreeSet<String> = f.events()[before..].iter().map(key_of).collect();
    assert_eq!(resumed.len(), 3, "{resumed:?}");
    wait_until("nothing pending", Duration::from_secs(5), || {
        redis
            .cli(&["XPENDING", "events", "gateways"])
            .lines()
            .next()
            == Some("0")
    });
    drop(g);
}

#[test]
fn a_dead_letter_is_listed_and_replayed_by_another_gateway() {
    let redis = RedisServer::start();
    let (f, healthy) = failing_until_healthy(json!({"errorType": "Error", "errorMessage": "down"}));
    let bridge = format!("{}  max_attempts: 1\n", Store::yaml_for(&redis));
    let (a, b) = (
        member_with(&f.url(), &bridge),
        member_with(&f.url(), &bridge),
    );
    assert_eq!(post(a.addr, &notification("dead.txt")).status, 200);
    wait_until(
        "the dead letter, seen from the other gateway",
        Duration::from_secs(5),
        || {
            admin_get(b.admin, "/oss/dead-letters").json()["deadLetters"]
                .as_array()
                .is_some_and(|l| l.len() == 1)
        },
    );
    let list = admin_get(b.admin, "/oss/dead-letters").json();
    let seq = list["deadLetters"][0]["seq"].as_str().unwrap().to_owned();
    assert!(
        list["deadLetters"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("gave up after 1 attempts"),
        "{list}"
    );
    let replay = |admin, query: &str| {
        Client::connect(admin).request(
            "POST",
            &format!("/oss/dead-letters/replay{query}"),
            &[],
            b"",
        )
    };
    let bad = replay(b.admin, "?seq=42");
    assert_eq!(bad.status, 400, "{}", bad.text());
    healthy.store(true, Ordering::SeqCst);
    let r = replay(b.admin, &format!("?seq={seq}"));
    assert_eq!(r.json()["replayed"], json!([seq]), "{}", r.text());
    // Replayed once: the first gateway finds nothing left to replay.
    assert_eq!(replay(a.admin, "").json()["replayed"], json!([]));
    wait_until("the replayed delivery", Duration::from_secs(5), || {
        f.events().len() == 2
    });
    assert_eq!(key_of(&f.events()[1]), "dead.txt");
}

/// Waits until a fixed window of `per` has `room` left to run, so that a test's counts all
/// fall in one window.
fn inside_one_window(per: Duration, room: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_millis((now.as_millis() % per.as_millis()) as u64);
    if per - into < room {
        std::thread::sleep(per - into + Duration::from_millis(10));
    }
}

/// (admitted, refused) of `n` GETs of `path`; anything but 200 or 429 fails the test.
fn admitted_of(g: &Gateway, path: &str, n: usize) -> (usize, usize) {
    let mut counts = (0, 0);
    for _ in 0..n {
        let r = g.client().get(path);
        match r.status {
            200 => counts.0 += 1,
            429 => {
                assert!(
                    r.header("retry-after").is_some_and(|s| s != "0"),
                    "{:?}",
                    r.headers
                );
                counts.1 += 1;
            }
            other => panic!("{other}: {}", r.text()),
        }
    }
    counts
}

#[test]
fn a_cluster_wide_rate_limit_is_shared_by_gateways_and_falls_back_to_their_own_without_redis() {
    let mut redis = RedisServer::start();
    let f = FakeFunction::replying(json!({"statusCode": 200, "body": "ok"}));
    let yaml = format!(
        "cluster:\n  redis: \"{}\"\n  sync: 50ms\nfunctions:\n  fn:\n    endpoints: [\"{}\"]\napis:\n  - id: shop\n    rate_limit: {{requests: 20, per: 1h, key: route, scope: cluster}}\n    routes:\n      - path: /x\n        function: fn\n",
        redis.url(),
        f.url()
    );
    inside_one_window(Duration::from_secs(3600), Duration::from_secs(60));
    let (a, b) = (Gateway::start(&yaml), Gateway::start(&yaml));
    let sync = || std::thread::sleep(Duration::from_millis(300));
    sync(); // both have reached Redis once
    let first = a.client().get("/x");
    assert_eq!(first.header("ratelimit-limit"), Some("20"));
    assert_eq!(first.header("ratelimit-remaining"), Some("19"));
    assert_eq!(admitted_of(&a, "/x", 14), (14, 0));
    sync();
    // B learns the cluster's count with its first sync: one request, then the rest.
    assert_eq!(admitted_of(&b, "/x", 1), (1, 0));
    sync();
    assert_eq!(admitted_of(&b, "/x", 10), (4, 6), "20 for the cluster");
    sync();
    assert_eq!(
        admitted_of(&a, "/x", 3),
        (0, 3),
        "A has read the cluster's total back"
    );
    let keys = redis.cli(&["KEYS", "fngate:rl:*"]);
    assert!(
        keys.starts_with("fngate:rl:shop:") && keys.ends_with(":all"),
        "{keys}"
    );
    assert_eq!(redis.cli(&["GET", &keys]), "20");

    // Without Redis each gateway's own bucket decides, spent by what it admitted: A took 15
    // of its 20, B 5.
    redis.kill();
    std::thread::sleep(Duration::from_millis(1300));
    assert_eq!(admitted_of(&a, "/x", 10), (5, 5));
    assert_eq!(admitted_of(&b, "/x", 20), (15, 5));
    // Back: the cluster's window, kept by Redis, decides again.
    redis.restart();
    sync();
    assert_eq!(admitted_of(&a, "/x", 2), (0, 2));
    assert_eq!(redis.cli(&["GET", &keys]), "20");
}
