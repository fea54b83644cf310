//! `switchboard-raw-peer`: the raw reference hub of the fan-out benchmarks (see the library).

use clap::Parser;
use std::net::SocketAddr;
use switchboard_raw_peer::{serve, Config};

/// The development secret and API key of `switchboard serve`, so that the same tokens work.
const DEVELOPMENT_SECRET: &str = "switchboard-development-secret-do-not-use-in-production";
const DEVELOPMENT_API_KEY: &str = "switchboard-development-api-key";

/// The raw reference hub: each publish framed once, one vectored write per writer wake-up.
#[derive(Debug, Parser)]
#[command(name = "switchboard-raw-peer", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8100")]
    listen: SocketAddr,
    /// HS256 secret of client tokens.
    #[arg(long, env = "SWITCHBOARD_AUTH_SECRET", default_value = DEVELOPMENT_SECRET, hide_default_value = true, hide_env_values = true)]
    secret: String,
    /// Bearer key of `POST /api/publish`.
    #[arg(long, env = "SWITCHBOARD_API_KEY", default_value = DEVELOPMENT_API_KEY, hide_default_value = true, hide_env_values = true)]
    api_key: String,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let listener = tokio::net::TcpListener::bind(cli.listen).await?;
    eprintln!(
        "switchboard-raw-peer listening on http://{}",
        listener.local_addr()?
    );
    let config = Config {
        secret: cli.secret,
        api_key: cli.api_key,
    };
    serve(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await
}
