//! What can be checked of docker/ on a machine without a Docker engine (docker/README.md says
//! which parts were built and run here): every path the Dockerfiles copy exists and is not
//! left out by .dockerignore; the configs in the image pass `fngate -t`; the image's user,
//! ports and stop timing agree with those configs; the HEALTHCHECK commands, run as Docker
//! runs them, tell a live process from a dead one; docker-compose accepts the compose file and
//! its services point at each other. tests/seed_oss.rs runs the compose scenario's config and
//! function command for real.

mod support;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use support::*;

const DOCKERFILES: [&str; 2] = ["docker/Dockerfile", "docker/runtime-python/Dockerfile"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml(path: &str) -> Value {
    let text = std::fs::read_to_string(root().join(path)).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// `ARG NAME=default` lines of a Dockerfile.
fn arg_defaults(lines: &[(String, String)]) -> HashMap<String, String> {
    lines
        .iter()
        .filter(|(ins, _)| ins == "ARG")
        .filter_map(|(_, rest)| rest.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn instruction<'a>(lines: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    lines
        .iter()
        .filter(|(ins, _)| ins == name)
        .map(|(_, rest)| rest.as_str())
        .collect()
}

#[test]
fn every_path_the_dockerfiles_copy_exists_in_the_build_context() {
    let ignore = std::fs::read_to_string(root().join(".dockerignore")).unwrap();
    let patterns: Vec<&str> = ignore
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    assert!(
        patterns.contains(&"target/"),
        "target/ stays out of the context"
    );
    let mut copied = 0;
    for file in DOCKERFILES {
        let lines = dockerfile(root().join(file).to_str().unwrap());
        let args = arg_defaults(&lines);
        for rest in instruction(&lines, "COPY") {
            if rest.starts_with("--from") {
                continue;
            }
            let words: Vec<&str> = rest.split_whitespace().collect();
            for source in &words[..words.len() - 1] {
                let mut path = source.to_string();
                for (name, value) in &args {
                    path = path.replace(&format!("${{{name}}}"), value);
                }
                assert!(root().join(&path).exists(), "{file}: COPY {path}: missing");
                for p in &patterns {
                    let p = p.trim_end_matches('/');
                    assert!(
                        path != p && !path.starts_with(&format!("{p}/")),
                        "{file}: COPY {path} is left out by .dockerignore's {p}"
                    );
                }
                copied += 1;
            }
        }
    }
    assert!(copied >= 8, "the COPY lines were read: {copied}");
}

#[test]
fn the_configs_in_the_image_pass_the_check() {
    let fngate = env!("CARGO_BIN_EXE_fngate");
    let check = |config: &str, env: &[(&str, &str)]| {
        Command::new(fngate)
            .args(["-c", config, "-t"])
            .current_dir(root())
            .env_remove("DOWNLOAD_OSS_URL")
            .env_remove("FNGATE_OSS_TOKEN")
            .envs(env.iter().copied())
            .output()
            .unwrap()
    };
    let out = check("docker/fngate.yaml", &[]);
    assert!(out.status.success(), "{out:?}");
    let env = [
        ("DOWNLOAD_OSS_URL", "http://127.0.0.1:9/invoke"),
        ("FNGATE_OSS_TOKEN", "x"),
    ];
    let out = check("docker/seed.yaml", &env);
    assert!(out.status.success(), "{out:?}");
    // The compose file has to provide both: without them the check names what is missing.
    let out = check("docker/seed.yaml", &[]);
    assert!(!out.status.success());
    let said = [out.stdout, out.stderr].concat();
    assert!(String::from_utf8_lossy(&said).contains("DOWNLOAD_OSS_URL"));
}

#[test]
fn the_images_run_as_users_expose_the_configured_ports_and_stop_in_time() {
    let lines = dockerfile(root().join("docker/Dockerfile").to_str().unwrap());
    let user = instruction(&lines, "USER");
    assert!(
        user.last().is_some_and(|u| *u != "root" && *u != "0"),
        "{user:?}"
    );
    let exposed: Vec<&str> = instruction(&lines, "EXPOSE")
        .iter()
        .flat_map(|e| e.split_whitespace())
        .collect();
    for config in ["docker/fngate.yaml", "docker/seed.yaml"] {
        let server = &yaml(config)["server"];
        let api = server["listen"][0].as_str().unwrap();
        let admin = server["admin_listen"].as_str().unwrap();
        for addr in [api, admin] {
            let (host, port) = addr.rsplit_once(':').unwrap();
            assert_eq!(
                host, "0.0.0.0",
                "{config}: reachable from outside the container"
            );
            assert!(exposed.contains(&port), "{config}: {port} is not EXPOSEd");
        }
        let health = instruction(&lines, "HEALTHCHECK").join(" ");
        let (_, admin_port) = admin.rsplit_once(':').unwrap();
        assert!(
            health.contains(&format!(":{admin_port}/healthz")),
            "{health}"
        );
        assert_eq!(server["grace_period"], "5s", "{config}");
    }
    assert_eq!(instruction(&lines, "STOPSIGNAL"), ["SIGTERM"]);
    // compose gives fngate more than its grace period plus the 3 s its functions get.
    let compose = yaml("docker/compose.yaml");
    let stop = compose["services"]["fngate"]["stop_grace_period"]
        .as_str()
        .unwrap();
    let stop = humantime::parse_duration(stop).unwrap();
    assert!(stop >= Duration::from_secs(5 + 3 + 2), "{stop:?}");

    let lines = dockerfile(
        root()
            .join("docker/runtime-python/Dockerfile")
            .to_str()
            .unwrap(),
    );
    let user = instruction(&lines, "USER");
    assert!(user.last().is_some_and(|u| *u != "root"), "{user:?}");
    let env = instruction(&lines, "ENV").join(" ");
    assert!(env.contains("PORT=9000"), "{env}");
    assert_eq!(instruction(&lines, "EXPOSE"), ["9000"]);
}

/// A copy of the repository's layout in a temporary directory (`runtime`, `examples` linked),
/// with `config` rewritten by `edit`: relative paths resolve as they do in the image.
fn staged_config(name: &str, config: &str, edit: impl Fn(String) -> String) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("fngate-docker-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("docker")).unwrap();
    for linked in ["runtime", "examples"] {
        std::os::unix::fs::symlink(root().join(linked), dir.join(linked)).unwrap();
    }
    let text = std::fs::read_to_string(root().join(config)).unwrap();
    let staged = dir.join(config);
    std::fs::write(&staged, edit(text)).unwrap();
    staged
}

/// Runs a HEALTHCHECK's exec form as Docker does; true when it exits 0.
fn healthy(command: &[String], env: &[(&str, String)]) -> bool {
    Command::new(&command[0])
        .args(&command[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap()
        .success()
}

#[test]
fn the_healthchecks_tell_a_live_process_from_a_dead_one() {
    // The gateway with the image's default config, on free ports.
    let (api, admin) = (free_port(), free_port());
    let config = staged_config("health", "docker/fngate.yaml", |t| {
        t.replace("0.0.0.0:8080", &format!("127.0.0.1:{api}"))
            .replace("0.0.0.0:9901", &format!("127.0.0.1:{admin}"))
    });
    let gateway = FngateProcess::start(&config, &[]);
    wait_listening(format!("127.0.0.1:{api}").parse().unwrap());
    let lines = dockerfile(root().join("docker/Dockerfile").to_str().unwrap());
    let check: Vec<String> = exec_form(instruction(&lines, "HEALTHCHECK")[0])
        .into_iter()
        .map(|a| a.replace(":9901", &format!(":{admin}")))
        .collect();
    assert!(healthy(&check, &[]), "{check:?} against a running gateway");
    let r = Client::connect(format!("127.0.0.1:{api}").parse().unwrap()).get("/hello/docker");
    assert_eq!(
        r.status,
        200,
        "the image's example function runs: {}",
        r.text()
    );
    drop(gateway);
    assert!(!healthy(&check, &[]), "{check:?} after the gateway is gone");
    let _ = std::fs::remove_dir_all(config.parent().unwrap().parent().unwrap());

    // The function runtime as its image starts it: CMD with the image's paths mapped here.
    let lines = dockerfile(
        root()
            .join("docker/runtime-python/Dockerfile")
            .to_str()
            .unwrap(),
    );
    let runtime = root().join("runtime/python/fngate_runtime.py");
    let code = root().join("examples/functions/hello");
    let cmd: Vec<String> = exec_form(instruction(&lines, "CMD")[0])
        .into_iter()
        .map(|a| {
            a.replace("/opt/fngate/fngate_runtime.py", runtime.to_str().unwrap())
                .replace("--code /code", &format!("--code {}", code.display()))
        })
        .collect();
    let port = free_port();
    let env = vec![
        ("PORT", port.to_string()),
        ("FNGATE_HANDLER", "index.handler".to_owned()),
    ];
    let mut function = Command::new(&cmd[0])
        .args(&cmd[1..])
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_listening(format!("127.0.0.1:{port}").parse().unwrap());
    let check = exec_form(instruction(&lines, "HEALTHCHECK")[0]);
    assert!(
        healthy(&check, &env),
        "{check:?} against a running function"
    );
    let _ = function.kill();
    let _ = function.wait();
    assert!(
        !healthy(&check, &env),
        "{check:?} after the function is gone"
    );
}

#[test]
fn docker_compose_accepts_the_compose_file_and_its_services_meet() {
    let compose = |env: &[(&str, &str)]| {
        Command::new("docker-compose")
            .args(["-f", "docker/compose.yaml", "config"])
            .current_dir(root())
            .env_remove("FNGATE_OSS_TOKEN")
            .envs(env.iter().copied())
            .output()
    };
    let out = match compose(&[("FNGATE_OSS_TOKEN", "compose-token")]) {
        Ok(out) => out,
        Err(e) => {
            // .ci/run installs Debian's docker-compose, so CI always runs this.
            eprintln!(
                "skipped: docker-compose cannot run here ({e}); apt-get install docker-compose"
            );
            return;
        }
    };
    assert_succeeded(&out);
    let resolved: Value = serde_saphyr::from_str(&String::from_utf8_lossy(&out.stdout)).unwrap();
    let services = &resolved["services"];
    for name in ["download-oss", "fngate", "minio", "minio-init"] {
        assert!(services.get(name).is_some(), "service {name}");
    }
    // fngate runs the seed config the image carries, and reaches the function by its name.
    let fngate = &services["fngate"];
    assert_eq!(fngate["command"][1], "/opt/fngate/docker/seed.yaml");
    let url = fngate["environment"]["DOWNLOAD_OSS_URL"].as_str().unwrap();
    assert!(url.starts_with("http://download-oss:9000/"), "{url}");
    assert_eq!(fngate["environment"]["FNGATE_OSS_TOKEN"], "compose-token");
    // MinIO notifies the bridge's path with the same token, through a target the init enables.
    let seed = yaml("docker/seed.yaml");
    let minio = &services["minio"]["environment"];
    let path = seed["oss_bridge"]["path"].as_str().unwrap();
    assert_eq!(
        minio["MINIO_NOTIFY_WEBHOOK_ENDPOINT_FNGATE"],
        format!("http://fngate:8080{path}").as_str()
    );
    assert_eq!(
        minio["MINIO_NOTIFY_WEBHOOK_AUTH_TOKEN_FNGATE"],
        "compose-token"
    );
    assert_eq!(minio["MINIO_NOTIFY_WEBHOOK_ENABLE_FNGATE"], "on");
    let init = services["minio-init"]["command"].to_string();
    assert!(init.contains("arn:minio:sqs::FNGATE:webhook"), "{init}");
    let bucket = seed["triggers"]["oss"][0]["bucket"].as_str().unwrap();
    assert!(init.contains(&format!("local/{bucket}")), "{init}");
    // The function downloads from the MinIO service.
    let function = &services["download-oss"]["environment"];
    assert_eq!(function["S3_ENDPOINT"], "http://minio:9000");

    let out = compose(&[]).unwrap();
    assert!(!out.status.success(), "a missing token is refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("FNGATE_OSS_TOKEN"));
}

#[test]
fn the_image_layout_matches_the_repository_layout() {
    // The configs' relative paths (../runtime, ../examples) hold in the image because its last
    // stage keeps the repository's layout under /opt/fngate.
    let lines = dockerfile(root().join("docker/Dockerfile").to_str().unwrap());
    let last_stage = lines.iter().rposition(|(ins, _)| ins == "FROM").unwrap();
    for rest in instruction(&lines[last_stage..], "COPY") {
        if rest.starts_with("--from") {
            continue;
        }
        let words: Vec<&str> = rest.split_whitespace().collect();
        let target = Path::new(words[words.len() - 1]);
        for source in &words[..words.len() - 1] {
            let expected = match target.to_str().unwrap().ends_with('/') {
                true => target.join(Path::new(source).file_name().unwrap()),
                false => target.to_path_buf(),
            };
            assert_eq!(
                expected,
                Path::new("/opt/fngate").join(source),
                "COPY {source} keeps its place"
            );
        }
    }
}
