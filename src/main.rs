use clap::Parser;
use fngate::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

/// fngate: serverless functions behind HTTP (JD Cloud API-gateway trigger), on pingora.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// The YAML config file.
    #[arg(short = 'c', long = "conf", value_name = "FILE")]
    conf: PathBuf,
    /// Check the config file and exit: 0 when valid, 1 with each problem and its line:column.
    #[arg(short = 't', long = "test")]
    test: bool,
    /// Signal the gateway running with this config (its `server.pid_file`), as nginx's `-s`:
    /// reload (SIGHUP), quit (graceful stop, SIGTERM) or stop (fast stop, SIGINT).
    #[arg(short = 's', long = "signal", value_name = "SIGNAL")]
    signal: Option<Signal>,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Signal {
    Reload,
    Quit,
    Stop,
}

/// Sends `signal` to the process named in `server.pid_file`.
fn send(config: &Config, signal: Signal) -> Result<(), String> {
    let path = config.server.pid_file.as_deref().ok_or(
        "server.pid_file is not set in this config, so the running gateway cannot be found",
    )?;
    let text = std::fs::read_to_string(path).map_err(|e| {
        format!(
            "cannot read {}: {e} (is the gateway running?)",
            path.display()
        )
    })?;
    let pid: libc::pid_t = text
        .trim()
        .parse()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{} does not hold a process id", path.display()))?;
    let number = match signal {
        Signal::Reload => libc::SIGHUP,
        Signal::Quit => libc::SIGTERM,
        Signal::Stop => libc::SIGINT,
    };
    // SAFETY: kill has no memory arguments.
    if unsafe { libc::kill(pid, number) } != 0 {
        let e = std::io::Error::last_os_error();
        return Err(format!(
            "cannot signal process {pid} (from {}): {e}",
            path.display()
        ));
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let config = match Config::load(&cli.conf) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.test {
        println!("{}: configuration is valid", cli.conf.display());
        return ExitCode::SUCCESS;
    }
    if let Some(signal) = cli.signal {
        return match send(&config, signal) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fngate: {e}");
                ExitCode::FAILURE
            }
        };
    }
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,pingora_core=warn".into()),
        )
        .init();
    match fngate::server::run_forever(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("fngate: {e}");
            ExitCode::FAILURE
        }
    }
}
