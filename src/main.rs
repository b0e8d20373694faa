//! The `chorus` command line.

use chorus::config::{Config, PortRange};
use clap::{Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "chorus", version, about = "Audio conference media server")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Answer SIP calls and mix them into conferences.
    Serve(ServeArgs),
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Config file; built-in defaults when absent.
    #[arg(long)]
    config: Option<PathBuf>,
    /// SIP address (UDP and TCP), overrides sip.listen.
    #[arg(long)]
    sip: Option<SocketAddr>,
    /// RTP port range LO-HI, overrides rtp.ports.
    #[arg(long)]
    rtp_ports: Option<PortRange>,
    /// REST API address, overrides api.listen.
    #[arg(long)]
    api: Option<SocketAddr>,
    /// Data directory, overrides data_dir.
    #[arg(long)]
    data: Option<PathBuf>,
}

impl ServeArgs {
    fn config(&self) -> anyhow::Result<Config> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(sip) = self.sip {
            config.sip.listen = sip;
        }
        if let Some(ports) = &self.rtp_ports {
            config.rtp.ports = ports.clone();
        }
        if let Some(api) = self.api {
            config.api.listen = api;
        }
        if let Some(data) = &self.data {
            config.data_dir = data.clone();
        }
        config.check()?;
        Ok(config)
    }
}

fn main() -> anyhow::Result<()> {
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    match Cli::parse().command {
        Command::Serve(args) => {
            let config = args.config()?;
            tokio::runtime::Runtime::new()?.block_on(chorus::server::run(config))
        }
    }
}
