//! The repository stands alone and builds with what a fresh machine has: nothing outside it is
//! read or named, and the zlib that pingora asks for comes from the pure-Rust stand-in in
//! `patches/libz-ng-sys` (no cmake; `.ci/run` builds with `CMAKE=/bin/false` to prove it).

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let path = e.path();
        if path.is_dir() {
            // Caches a test run leaves behind (Python bytecode, virtualenvs) are not sources.
            if path.file_name().is_some_and(|n| n == "__pycache__") {
                continue;
            }
            files_under(&path, out);
        } else {
            out.push(path);
        }
    }
}

#[test]
fn no_file_reads_or_names_anything_outside_the_repository() {
    let mut files = vec![root().join("README.md"), root().join("Cargo.toml")];
    for dir in [
        "src", "tests", "benches", "docs", "conf", "docker", "runtime", "examples", "patches",
        ".ci",
    ] {
        files_under(&root().join(dir), &mut files);
    }
    assert!(
        files.len() > 50,
        "the walk found the sources: {}",
        files.len()
    );
    // Written in two halves so that this file does not name it either.
    let outside = format!("../{}", "shared");
    let offenders: Vec<String> = files
        .iter()
        .filter(|p| {
            std::fs::read(p)
                .map(|b| String::from_utf8_lossy(&b).contains(&outside))
                .unwrap_or(false)
        })
        .map(|p| p.strip_prefix(root()).unwrap_or(p).display().to_string())
        .collect();
    assert!(offenders.is_empty(), "{outside} named in {offenders:?}");
}

#[test]
fn zlib_comes_from_the_stand_in_and_round_trips() {
    let lock = std::fs::read_to_string(root().join("Cargo.lock")).unwrap();
    let entry = lock
        .split("[[package]]")
        .find(|p| p.contains("name = \"libz-ng-sys\""))
        .expect("libz-ng-sys is in the lock file");
    // A patched crate has no `source`: it is built from patches/, not from crates.io.
    assert!(!entry.contains("source ="), "{entry}");

    let text: Vec<u8> = (0..200_000u32)
        .flat_map(|i| (i % 251).to_le_bytes())
        .collect();
    let mut z = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(&text).unwrap();
    let packed = z.finish().unwrap();
    assert!(
        packed.len() < text.len() / 4,
        "{} of {}",
        packed.len(),
        text.len()
    );
    let mut back = Vec::new();
    flate2::read::GzDecoder::new(&packed[..])
        .read_to_end(&mut back)
        .unwrap();
    assert_eq!(back, text);
}
