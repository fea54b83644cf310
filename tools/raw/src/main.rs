//! `switchboard-raw-peer`: the raw reference hub of the fan-out benchmarks (see the library).

use clap::Parser;
use switchboard_peer::Cli;

/// The raw reference hub: each publish framed once, one vectored write per writer wake-up.
#[derive(Debug, Parser)]
#[command(name = "switchboard-raw-peer", version)]
#[command(mut_arg("listen", |a| a.required(false).default_value("127.0.0.1:8100")))]
struct Command {
    #[command(flatten)]
    cli: Cli,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let Command { cli } = Command::parse();
    let listener = switchboard_peer::bind("switchboard-raw-peer", cli.listen).await?;
    switchboard_raw_peer::serve(listener, cli.secrets, switchboard_peer::interrupted()).await
}
