//! The README's demo, verified: `conf/fngate.yaml` starts its example functions itself, and the
//! README's curl commands, run against it, print what the README shows (ids and dates aside).

mod support;
use std::path::Path;
use support::*;

const README_ADDR: &str = "127.0.0.1:8080";

/// The `$ command` lines of the README's console block, each with the output shown under it.
fn readme_demo() -> Vec<(String, String)> {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let block = readme
        .split("```console\n")
        .nth(1)
        .and_then(|rest| rest.split("\n```").next())
        .expect("README.md has a ```console block");
    let mut demo: Vec<(String, String)> = Vec::new();
    for line in block.lines() {
        match line.strip_prefix("$ ") {
            Some(command) => demo.push((command.to_owned(), String::new())),
            None => {
                let (_, out) = demo.last_mut().expect("output follows a command");
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    demo
}

/// Ids (UUIDs) and Date headers differ from run to run.
fn normalise(text: &str) -> String {
    let text = text.replace("\r\n", "\n");
    let mut out = String::with_capacity(text.len());
    for line in text.trim_end().lines() {
        if line.starts_with("Date: ") {
            out.push_str("Date: <date>\n");
        } else {
            out.push_str(&mask_uuids(line));
            out.push('\n');
        }
    }
    out
}

fn mask_uuids(line: &str) -> String {
    let is_uuid = |s: &[u8]| {
        s.len() == 36
            && s.iter().enumerate().all(|(i, c)| match i {
                8 | 13 | 18 | 23 => *c == b'-',
                _ => c.is_ascii_hexdigit(),
            })
    };
    let bytes = line.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        if i + 36 <= bytes.len() && is_uuid(&bytes[i..i + 36]) {
            out.push_str("<uuid>");
            i += 36;
        } else {
            let ch = line[i..].chars().next().unwrap();
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[test]
fn the_readme_demo_prints_what_the_readme_shows() {
    let conf_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf");
    let yaml = std::fs::read_to_string(conf_dir.join("fngate.yaml")).unwrap();
    assert!(
        yaml.contains(README_ADDR),
        "the example config listens on {README_ADDR}"
    );
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    // The admin port and pid file are the operator's, not the demo's.
    let yaml: String = yaml
        .replace(README_ADDR, &addr)
        .lines()
        .filter(|l| !l.starts_with("  admin_listen:") && !l.starts_with("  pid_file:"))
        .flat_map(|l| [l, "\n"])
        .collect();
    let g = Gateway::from_yaml(&yaml, &conf_dir, port);

    let demo = readme_demo();
    assert!(demo.len() >= 3, "{demo:?}");
    for (command, shown) in demo {
        assert!(command.starts_with("curl "), "{command}");
        let out = std::process::Command::new("sh")
            .args(["-c", &command.replace(README_ADDR, &addr)])
            .output()
            .expect("sh and curl run");
        assert!(out.status.success(), "{command}: {out:?}");
        let got = String::from_utf8_lossy(&out.stdout);
        assert_eq!(normalise(&got), normalise(&shown), "{command}");
    }
    drop(g);
}

#[test]
fn masking_keeps_everything_but_ids() {
    assert_eq!(
        mask_uuids("id: 2a9a070d-48a9-46ec-a3d2-2daab4c356e5, 世界 2a9a070d"),
        "id: <uuid>, 世界 2a9a070d"
    );
}
