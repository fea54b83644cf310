//! `switchboard-raw-peer`: the raw reference hub of the fan-out benchmarks (see the library).

use clap::Parser;
use switchboard_peer::Cli;
use switchboard_raw_peer::Publishing;

/// The raw reference hub: each publish framed once, one vectored write per writer wake-up.
#[derive(Debug, Parser)]
#[command(name = "switchboard-raw-peer", version)]
#[command(mut_arg("listen", |a| a.required(false).default_value("127.0.0.1:8100")))]
struct Command {
    #[command(flatten)]
    cli: Cli,
    /// Where a publish is queued for the room's members: in the HTTP handler (the reference),
    /// or in one hub task the handler hands it to and waits for.
    #[arg(long, value_enum, default_value_t = Publishing::Inline)]
    publishing: Publishing,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Command { cli, publishing } = Command::parse();
    let listener = switchboard_peer::bind("switchboard-raw-peer", cli.listen).await?;
    let shutdown = switchboard_peer::interrupted();
    switchboard_raw_peer::serve(listener, cli.secrets, publishing, shutdown).await
}
