//! A real redis-server for the tests that need one: its own loopback port and data directory,
//! the append-only file fsync'd on every write (`appendfsync always`, what docs/scaling.md
//! recommends), killed when dropped. Debian's `redis-server` package is installed when missing
//! (`.ci/run` installs it up front).

use super::{free_port, wait_listening};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;

pub struct RedisServer {
    pub port: u16,
    pub dir: PathBuf,
    child: Option<Child>,
}

/// The redis-server binary; installed from Debian's packages the first time it is missing.
fn binary() -> &'static str {
    static FOUND: OnceLock<()> = OnceLock::new();
    FOUND.get_or_init(|| {
        let present = || {
            Command::new("redis-server")
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        };
        if present() {
            return;
        }
        let installed = Command::new("sh")
            .args(["-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends redis-server"])
            .status();
        assert!(
            installed.is_ok_and(|s| s.success()) && present(),
            "redis-server is missing and could not be installed: apt-get install redis-server (.ci/run does)"
        );
        // Debian's package may start a server of its own; the tests start theirs.
        let _ = Command::new("sh")
            .args(["-c", "service redis-server stop 2>/dev/null; true"])
            .status();
    });
    "redis-server"
}

impl RedisServer {
    pub fn start() -> RedisServer {
        let dir = std::env::temp_dir().join(format!("fngate-redis-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut server = RedisServer {
            port: free_port(),
            dir,
            child: None,
        };
        server.restart();
        server
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Starts it (again) on the same port and data: what was acknowledged is still there.
    pub fn restart(&mut self) {
        let child = Command::new(binary())
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .arg("--dir")
            .arg(&self.dir)
            .args([
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--save",
                "",
            ])
            .args([
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--loglevel",
                "warning",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        self.child = Some(child);
        wait_listening(self.addr());
    }

    /// SIGKILL: no chance to write anything more.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Runs redis-cli against it; returns what it printed.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli runs");
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
