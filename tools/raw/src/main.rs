//! `switchboard-raw-peer`: the raw reference hub of the fan-out benchmarks (see the library).

use clap::Parser;
use std::net::SocketAddr;
use switchboard_peer::Secrets;

/// The raw reference hub: each publish framed once, one vectored write per writer wake-up.
#[derive(Debug, Parser)]
#[command(name = "switchboard-raw-peer", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8100")]
    listen: SocketAddr,
    #[command(flatten)]
    secrets: Secrets,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let listener = switchboard_peer::bind("switchboard-raw-peer", cli.listen).await?;
    switchboard_raw_peer::serve(listener, cli.secrets, switchboard_peer::interrupted()).await
}
