//! TLS on listeners (`server.tls`), with certificates made here (rcgen) and curl as the client:
//! a route over HTTPS with ALPN http/1.1 and keep-alive, failed and stalled handshakes that
//! disturb no other connection, bad certificate files refused with their place, and a reload
//! that picks up a renewed certificate on the same listener.

mod support;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};
use support::*;

/// A self-signed certificate for localhost and 127.0.0.1, written as `<name>.pem` and
/// `<name>-key.pem` in `dir`.
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let made =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key, made.signing_key.serialize_pem()).unwrap();
    (cert, key)
}

fn temp_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fngate-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// curl over TLS trusting `ca`; `urls` go over one connection when curl can keep it.
fn curl(ca: &Path, args: &[&str], urls: &[String]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(ca)
        .args(args)
        .args(urls)
        .output()
        .expect("curl runs")
}

fn tls_config(port: u16, tls_port: u16, cert: &Path, key: &Path, url: &str, extra: &str) -> String {
    format!(
        "server:\n  listen: [\"127.0.0.1:{port}\"]\n  threads: 2\n  grace_period: 0s\n  read_timeout: 1s\n  access_log: {{path: \"off\"}}\n  tls:\n    - listen: [\"127.0.0.1:{tls_port}\"]\n      cert: {}\n      key: {}\n{extra}{}",
        cert.display(),
        key.display(),
        function_config(url, "", "      - path: /users/{id}\n        function: fn\n")
    )
}

#[test]
fn a_route_over_https_with_keep_alive_and_alpn() {
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "secure"}));
    let dir = temp_dir();
    let (cert, key) = certificate(&dir, "server");
    let (port, tls_port) = (free_port(), free_port());
    let yaml = tls_config(port, tls_port, &cert, &key, &f.url(), "");
    let _g = Gateway::from_yaml(&yaml, &dir, port);
    wait_listening(format!("127.0.0.1:{tls_port}").parse().unwrap());

    let urls: Vec<String> = (1..=3)
        .map(|i| format!("https://localhost:{tls_port}/users/{i}"))
        .collect();
    let resolve = format!("localhost:{tls_port}:127.0.0.1");
    let out = curl(&cert, &["-v", "--resolve", &resolve], &urls);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "securesecuresecure");
    assert!(said.contains("ALPN: server accepted http/1.1"), "{said}");
    assert!(
        said.contains("Re-using existing connection"),
        "keep-alive over TLS: {said}"
    );
    // The event says what the function saw: the path, as on plain HTTP.
    assert_eq!(f.last_event().json()["detail"]["path"], "/users/3");
    // Plain HTTP still answers on the plain listener.
    assert_eq!(
        Client::connect(format!("127.0.0.1:{port}").parse().unwrap())
            .get("/users/1")
            .status,
        200
    );
    // A client offering h2 first is given http/1.1.
    let out = curl(&cert, &["-v", "--http2", "--resolve", &resolve], &urls[..1]);
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(said.contains("ALPN: server accepted http/1.1"), "{said}");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "secure");
}

#[test]
fn failed_and_stalled_handshakes_disturb_no_one() {
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let dir = temp_dir();
    let (cert, key) = certificate(&dir, "server");
    let (port, tls_port) = (free_port(), free_port());
    let admin = free_port();
    let extra = format!("  admin_listen: \"127.0.0.1:{admin}\"\n");
    let yaml = tls_config(port, tls_port, &cert, &key, &f.url(), &extra);
    let _g = Gateway::from_yaml(&yaml, &dir, port);
    let tls_addr: std::net::SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    wait_listening(tls_addr);

    // Ten connections that never finish a handshake, and ten that speak plain HTTP to TLS.
    let stalled: Vec<_> = (0..10)
        .map(|_| std::net::TcpStream::connect(tls_addr).unwrap())
        .collect();
    let garbage = std::thread::spawn(move || {
        for _ in 0..10 {
            let mut c = Client::connect(tls_addr);
            c.send_raw(b"GET /users/1 HTTP/1.1\r\nHost: x\r\n\r\n");
            // The gateway answers with a TLS alert at most, then closes.
            let rest = c.read_until_close();
            assert!(!rest.starts_with(b"HTTP/"), "{rest:?}");
        }
    });
    // Meanwhile twenty HTTPS requests over one connection all succeed.
    let urls: Vec<String> = (0..20)
        .map(|i| format!("https://127.0.0.1:{tls_port}/users/{i}"))
        .collect();
    let started = Instant::now();
    let out = curl(&cert, &[], &urls);
    assert_succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok".repeat(20));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    garbage.join().unwrap();

    // The stalled ones are closed after read_timeout (1 s); each counts as a failed handshake.
    for mut s in stalled {
        use std::io::Read;
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            matches!(s.read(&mut buf), Ok(0) | Err(_)),
            "closed by the gateway"
        );
    }
    let until = Instant::now() + Duration::from_secs(5);
    loop {
        let text = Client::connect(format!("127.0.0.1:{admin}").parse().unwrap())
            .get("/metrics")
            .text();
        let failures = text
            .lines()
            .find_map(|l| l.strip_prefix("fngate_tls_handshake_failures_total "))
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0);
        // 21: `wait_listening`'s probe, which connected and left, failed a handshake too.
        if failures == 21 {
            break;
        }
        assert!(
            Instant::now() < until,
            "{failures} handshake failures counted, not 21"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn certificate_files_are_checked_with_their_place() {
    let dir = temp_dir();
    let (cert, _) = certificate(&dir, "one");
    let (_, other_key) = certificate(&dir, "two");
    let not_pem = dir.join("not.pem");
    std::fs::write(&not_pem, "hello").unwrap();
    for (cert, key, says) in [
        (
            &cert,
            &other_key,
            "do not make a usable certificate and key",
        ),
        (&not_pem, &other_key, "no certificate in the file"),
        (&dir.join("missing.pem"), &other_key, "cannot read"),
    ] {
        let yaml = tls_config(1, 2, cert, key, "http://127.0.0.1:1/", "");
        let err = fngate::config::Config::from_yaml(&yaml, &dir, "t.yaml").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("t.yaml:9:13: server.tls: "), "{text}");
        assert!(text.contains(says), "{text}");
    }
}

#[test]
fn a_reload_picks_up_a_renewed_certificate() {
    let f = FakeFunction::replying(serde_json::json!({"statusCode": 200, "body": "ok"}));
    let dir = temp_dir();
    let (cert, key) = certificate(&dir, "server");
    let old_ca = dir.join("old-ca.pem");
    std::fs::copy(&cert, &old_ca).unwrap();
    let (port, tls_port, admin) = (free_port(), free_port(), free_port());
    let extra = format!("  admin_listen: \"127.0.0.1:{admin}\"\n");
    let conf = dir.join("fngate.yaml");
    std::fs::write(
        &conf,
        tls_config(port, tls_port, &cert, &key, &f.url(), &extra),
    )
    .unwrap();
    let _gw = FngateProcess::start(&conf, &[]);
    wait_listening(format!("127.0.0.1:{tls_port}").parse().unwrap());
    let url = vec![format!("https://127.0.0.1:{tls_port}/users/1")];
    assert!(curl(&old_ca, &[], &url).status.success());

    // The certificate is renewed in place (a new key too) and the gateway told to reload.
    certificate(&dir, "server");
    let r = Client::connect(format!("127.0.0.1:{admin}").parse().unwrap()).request(
        "POST",
        "/admin/reload",
        &[],
        b"",
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["restartNeeded"], serde_json::json!([]));
    let out = curl(&cert, &[], &url);
    assert_succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok");
    let out = curl(&old_ca, &[], &url);
    assert!(
        !out.status.success(),
        "the old certificate is no longer served"
    );
}

#[test]
fn big_bodies_cross_tls_whole() {
    // 3 MiB answers: far more than the socket and rustls's 64 KiB buffer take at once.
    let big = "x".repeat(3 << 20);
    let answer = big.clone();
    let f = FakeFunction::start(move |r| {
        let body = r.json()["detail"]["body"].as_str().unwrap_or("").len();
        Scripted::json(
            serde_json::json!({"statusCode": 200, "headers": {"x-got": body.to_string()}, "body": answer}),
        )
    });
    let dir = temp_dir();
    let (cert, key) = certificate(&dir, "server");
    let (port, tls_port) = (free_port(), free_port());
    let yaml = tls_config(port, tls_port, &cert, &key, &f.url(), "");
    let _g = Gateway::from_yaml(&yaml, &dir, port);
    wait_listening(format!("127.0.0.1:{tls_port}").parse().unwrap());
    let upload = dir.join("upload.txt");
    std::fs::write(&upload, "y".repeat(2 << 20)).unwrap();
    let url = format!("https://127.0.0.1:{tls_port}/users/1");
    let data = format!("@{}", upload.display());
    let urls = [url.clone(), url];
    let out = curl(
        &cert,
        &[
            "-D",
            "-",
            "-H",
            "Content-Type: text/plain",
            "--data-binary",
            &data,
        ],
        &urls,
    );
    assert_succeeded(&out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("x-got: 2097152").count(),
        2,
        "both uploads arrived whole"
    );
    assert_eq!(
        text.matches(big.as_str()).count(),
        2,
        "both answers arrived whole"
    );
}
