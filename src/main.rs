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
