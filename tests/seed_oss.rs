//! The seed scenario for real: a real S3-compatible server (moto's server mode, installed into a
//! virtualenv this test creates), the seed's downloadOSS code started by the gateway, a trigger
//! on bucket `downloadfunction` for `s3:ObjectCreated:*`. An object is uploaded with boto3, the
//! notification a MinIO webhook (then AWS via SNS) would send is POSTed to the bridge, and the
//! function must have downloaded exactly the uploaded bytes to /tmp/test.

mod support;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use support::*;

/// The seed's code writes /tmp/test, so its tests take turns.
static TMP_TEST: Mutex<()> = Mutex::new(());

const TOKEN: &str = "seed-token-0123456789";

/// A virtualenv with moto's server and boto3, made once per target directory.
fn venv_python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let packages = ["moto[server]>=5,<6", "boto3"];
            venv("seed-venv", &packages, "import moto.server, boto3, flask")
        })
        .clone()
}

struct Moto {
    child: Child,
    endpoint: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_moto(python: &PathBuf) -> Moto {
    let port = free_port();
    let child = Command::new(python)
        .args([
            "-m",
            "moto.server",
            "-H",
            "127.0.0.1",
            "-p",
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
    Moto {
        child,
        endpoint: format!("http://127.0.0.1:{port}"),
    }
}

/// Uploads `content` as `key` with boto3; returns (etag, size).
fn upload(python: &PathBuf, endpoint: &str, key: &str, content: &[u8]) -> (String, usize) {
    let script = "import sys, boto3\ns3 = boto3.client('s3', endpoint_url=sys.argv[1], aws_access_key_id='testing', aws_secret_access_key='testing', region_name='us-east-1')\ntry:\n    s3.create_bucket(Bucket='downloadfunction')\nexcept s3.exceptions.BucketAlreadyOwnedByYou:\n    pass\nr = s3.put_object(Bucket='downloadfunction', Key=sys.argv[2], Body=sys.stdin.buffer.read())\nprint(r['ETag'].strip('\"'))\n";
    let mut child = Command::new(python)
        .args(["-c", script, endpoint, key])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(content).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "upload failed");
    (
        String::from_utf8(out.stdout).unwrap().trim().to_owned(),
        content.len(),
    )
}

fn minio_body(key: &str, etag: &str, size: usize) -> String {
    let encoded: String = url_query_escape(key);
    json!({"EventName": "s3:ObjectCreated:Put", "Key": format!("downloadfunction/{key}"),
        "Records": [{"eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "",
            "eventTime": "2026-11-21T10:00:00.000Z", "eventName": "s3:ObjectCreated:Put",
            "userIdentity": {"principalId": "minioadmin"},
            "requestParameters": {"principalId": "minioadmin", "region": "", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "17A76FF48418FD2E"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": "downloadfunction", "ownerIdentity": {"principalId": "minioadmin"}, "arn": "arn:aws:s3:::downloadfunction"},
                "object": {"key": encoded, "size": size, "eTag": etag, "contentType": "text/plain", "sequencer": "17A76FF4843A978E"}},
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO"}}]})
    .to_string()
}

fn sns_body(key: &str, etag: &str, size: usize) -> String {
    let s3 = json!({"Records": [{"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "cn-north-1",
        "eventTime": "2026-11-21T10:00:01.000Z", "eventName": "ObjectCreated:Put",
        "userIdentity": {"principalId": "AWS:AIDAEXAMPLE"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
        "responseElements": {"x-amz-request-id": "C3D13FE58DE4C810", "x-amz-id-2": "x"},
        "s3": {"s3SchemaVersion": "1.0", "configurationId": "cfg",
            "bucket": {"name": "downloadfunction", "ownerIdentity": {"principalId": "A3NL1KOZZKExample"}, "arn": "arn:aws:s3:::downloadfunction"},
            "object": {"key": url_query_escape(key).replace("%2F", "/"), "size": size, "eTag": etag, "sequencer": "0055AED6DCD90281E5"}}}]});
    json!({"Type": "Notification", "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:cn-north-1:123456789012:uploads", "Subject": "Amazon S3 Notification",
        "Message": s3.to_string(), "Timestamp": "2026-11-21T10:00:01.500Z", "SignatureVersion": "1",
        "Signature": "x", "SigningCertURL": "https://sns.cn-north-1.amazonaws.com/x.pem",
        "UnsubscribeURL": "https://sns.cn-north-1.amazonaws.com/?Action=Unsubscribe"})
    .to_string()
}

/// Go's url.QueryEscape, which MinIO uses for record keys (and AWS's form encoding).
fn url_query_escape(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// An object key, the notification body a sender would POST for it, and the sender's headers.
type Sender = (
    &'static str,
    fn(&str, &str, usize) -> String,
    &'static [(&'static str, &'static str)],
);

#[test]
fn uploading_to_the_bucket_makes_the_seed_function_download_the_object() {
    let _turn = TMP_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let python = venv_python();
    let moto = start_moto(&python);
    let python_arg = python.display().to_string();
    let g = Gateway::start(&format!(
        "gateway:\n  region: cn-north-1\n  account_id: \"594035263019\"\n  owner_pin: \"594035263019\"\nfunctions:\n  downloadOSS:\n    command: [\"{python_arg}\", \"runtime/python/fngate_runtime.py\", \"--code\", \"examples/functions/download_oss\", \"--handler\", \"index.handler\"]\n    timeout: 100s\n    memory_mb: 128\n    env: {{S3_ENDPOINT: \"{}\", S3_ACCESS_KEY_ID: testing, S3_SECRET_ACCESS_KEY: testing}}\ntriggers:\n  oss:\n    - name: download-trigger\n      function: downloadOSS\n      bucket: downloadfunction\n      triggerConfig:\n        events: [s3:ObjectCreated:*]\n        filter: {{key: {{prefix: \"\", suffix: \"\"}}}}\noss_bridge:\n  path: /oss/notify\n  token: {TOKEN}\n  delivery: sync\n",
        moto.endpoint
    ));
    let senders: [Sender; 2] = [
        (
            "test.txt",
            minio_body,
            &[("Content-Type", "application/json")],
        ),
        (
            "dir/my file+1.txt",
            sns_body,
            &[
                ("x-amz-sns-message-type", "Notification"),
                ("Content-Type", "text/plain; charset=UTF-8"),
            ],
        ),
    ];
    for (key, body, headers) in senders {
        let content = format!("seed scenario {} {}\n", key, uuid::Uuid::new_v4()).into_bytes();
        let (etag, size) = upload(&python, &moto.endpoint, key, &content);
        let _ = std::fs::remove_file("/tmp/test");
        let auth = format!("Bearer {TOKEN}");
        let mut all = vec![("Authorization", auth.as_str())];
        all.extend_from_slice(headers);
        let r = g.client().request(
            "POST",
            "/oss/notify",
            &all,
            body(key, &etag, size).as_bytes(),
        );
        assert_eq!(r.status, 200, "{key}: {}", r.text());
        assert_eq!(r.json()["delivered"], 1, "{key}: {}", r.text());
        let downloaded = std::fs::read("/tmp/test").unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&downloaded),
            String::from_utf8_lossy(&content),
            "{key}"
        );
    }
    // A notification for an object that is not there: the seed code returns "download file
    // failed" — a 2xx answer, so the bridge counts it delivered; the file is not written.
    let _ = std::fs::remove_file("/tmp/test");
    let auth = format!("Bearer {TOKEN}");
    let r = g.client().request(
        "POST",
        "/oss/notify",
        &[("Authorization", &auth)],
        minio_body("missing.txt", "x", 1).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(std::fs::read("/tmp/test").is_err());
}

/// A child process killed on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `${NAME:-default}` as compose reads it, with nothing set.
fn compose_default(value: &Value) -> String {
    let text = value.as_str().unwrap_or_default();
    match text.strip_prefix("${").and_then(|t| t.split_once(":-")) {
        Some((_, default)) => default.trim_end_matches('}').to_owned(),
        None => text.to_owned(),
    }
}

/// docker/compose.yaml without Docker: fngate runs docker/seed.yaml (ports and the queue
/// volume moved), the function is started with the runtime image's CMD and the compose file's
/// environment for it (its S3 endpoint moved to moto, standing in for MinIO), and the body a
/// MinIO webhook posts arrives with the token as MinIO sends it.
#[test]
fn the_compose_scenario_runs_its_config_and_function_command() {
    let _turn = TMP_TEST.lock().unwrap_or_else(|e| e.into_inner());
    let python = venv_python();
    let moto = start_moto(&python);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let compose: Value =
        serde_saphyr::from_str(&std::fs::read_to_string(root.join("docker/compose.yaml")).unwrap())
            .unwrap();

    // The function, as docker/runtime-python/Dockerfile starts it (its paths mapped here).
    let lines = dockerfile(
        root.join("docker/runtime-python/Dockerfile")
            .to_str()
            .unwrap(),
    );
    let cmd_line = lines.iter().rfind(|(i, _)| i == "CMD").unwrap();
    let code = root.join("examples/functions/download_oss");
    let cmd: Vec<String> = exec_form(&cmd_line.1)
        .into_iter()
        .map(|a| {
            a.replace("exec python3 ", &format!("exec {} ", python.display()))
                .replace(
                    "/opt/fngate/fngate_runtime.py",
                    root.join("runtime/python/fngate_runtime.py")
                        .to_str()
                        .unwrap(),
                )
                .replace("--code /code", &format!("--code {}", code.display()))
        })
        .collect();
    let port = free_port();
    let service = &compose["services"]["download-oss"];
    let mut env: Vec<(String, String)> = service["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), compose_default(v)))
        .collect();
    env.retain(|(k, _)| k != "S3_ENDPOINT");
    env.push(("S3_ENDPOINT".into(), moto.endpoint.clone()));
    env.push(("PORT".into(), port.to_string()));
    env.push(("FNGATE_HANDLER".into(), "index.handler".into()));
    let _function = Running(
        Command::new(&cmd[0])
            .args(&cmd[1..])
            .envs(env)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    wait_listening(format!("127.0.0.1:{port}").parse().unwrap());

    // fngate with the seed config, its URL and token from the environment as compose sets them.
    let (api, admin) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("fngate-compose-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let seed = std::fs::read_to_string(root.join("docker/seed.yaml"))
        .unwrap()
        .replace("0.0.0.0:8080", &format!("127.0.0.1:{api}"))
        .replace("0.0.0.0:9901", &format!("127.0.0.1:{admin}"))
        .replace(
            "/var/lib/fngate/oss-queue",
            dir.join("queue").to_str().unwrap(),
        );
    std::fs::write(dir.join("seed.yaml"), seed).unwrap();
    let fngate_env = &compose["services"]["fngate"]["environment"];
    let url = fngate_env["DOWNLOAD_OSS_URL"]
        .as_str()
        .unwrap()
        .replace("download-oss:9000", &format!("127.0.0.1:{port}"));
    let env = [
        ("DOWNLOAD_OSS_URL", url.as_str()),
        ("FNGATE_OSS_TOKEN", TOKEN),
    ];
    let _gateway = FngateProcess::start(&dir.join("seed.yaml"), &env);
    let addr = format!("127.0.0.1:{api}").parse().unwrap();
    wait_listening(addr);

    let content = format!("compose scenario {}\n", uuid::Uuid::new_v4()).into_bytes();
    let (etag, size) = upload(&python, &moto.endpoint, "test.txt", &content);
    let _ = std::fs::remove_file("/tmp/test");
    // MinIO sends a bare auth_token as "Bearer <token>".
    let auth = format!("Bearer {TOKEN}");
    let r = Client::connect(addr).request(
        "POST",
        "/oss/notify",
        &[
            ("Authorization", &auth),
            ("Content-Type", "application/json"),
        ],
        minio_body("test.txt", &etag, size).as_bytes(),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    // delivery: async — stored, then delivered by the workers.
    let until = Instant::now() + Duration::from_secs(15);
    loop {
        if std::fs::read("/tmp/test").is_ok_and(|d| d == content) {
            break;
        }
        assert!(
            Instant::now() < until,
            "the function did not download test.txt"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::fs::remove_dir_all(&dir);
}
