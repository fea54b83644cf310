//! `switchboard-socketio-peer`: the Socket.IO hub of the fan-out benchmarks (see the library).

use clap::Parser;
use switchboard_peer::Cli;

/// The Socket.IO hub (socketioxide): every publish a room broadcast.
#[derive(Debug, Parser)]
#[command(name = "switchboard-socketio-peer", version)]
#[command(mut_arg("listen", |a| a.required(false).default_value("127.0.0.1:8110")))]
struct Command {
    #[command(flatten)]
    cli: Cli,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Command { cli } = Command::parse();
    let listener = switchboard_peer::bind("switchboard-socketio-peer", cli.listen).await?;
    switchboard_socketio_peer::serve(listener, cli.secrets, switchboard_peer::interrupted()).await
}
