//! `switchboard-socketio-peer`: the Socket.IO hub of the fan-out benchmarks (see the library).

use clap::Parser;
use std::net::SocketAddr;
use switchboard_peer::Secrets;

/// The Socket.IO hub (socketioxide): every publish a room broadcast.
#[derive(Debug, Parser)]
#[command(name = "switchboard-socketio-peer", version)]
struct Cli {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8110")]
    listen: SocketAddr,
    #[command(flatten)]
    secrets: Secrets,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let cli = Cli::parse();
    let listener = switchboard_peer::bind("switchboard-socketio-peer", cli.listen).await?;
    switchboard_socketio_peer::serve(listener, cli.secrets, switchboard_peer::interrupted()).await
}
