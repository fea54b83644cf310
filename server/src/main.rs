//! `switchboard`: run the server, or mint a development token.

use clap::{Parser, Subcommand};
use std::process::ExitCode;
use std::time::Duration;
use switchboard_server::auth::{unix_now, Claims, TokenKeys};
use switchboard_server::logging;
use switchboard_server::settings::{
    LogFormat, Overrides, Settings, DEVELOPMENT_API_KEY, DEVELOPMENT_SECRET,
};

/// Switchboard: a WebSocket hub for users, rooms, threads and AI-agent runs.
#[derive(Debug, Parser)]
#[command(name = "switchboard", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server (listens on 127.0.0.1:8080 unless told otherwise).
    Serve {
        #[command(flatten)]
        overrides: Overrides,
    },
    /// Print a signed client token for USER (for development and tests).
    Token {
        /// The user id the token names.
        user: String,
        /// Rooms the token may join (exact names or prefixes ending in `*`); the server's
        /// default if absent.
        #[arg(long, value_delimiter = ',')]
        rooms: Option<Vec<String>>,
        /// Rooms the token may publish to (patterns as `--rooms`); the server's default if
        /// absent.
        #[arg(long, value_delimiter = ',')]
        publish: Option<Vec<String>>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
        #[command(flatten)]
        overrides: Overrides,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { overrides } => serve(&overrides),
        Command::Token {
            user,
            rooms,
            publish,
            ttl,
            overrides,
        } => match Settings::from_overrides(&overrides) {
            Ok(settings) => {
                let Some(secret) = &settings.auth.secret else {
                    eprintln!("error: no HS256 secret is configured to sign with");
                    return ExitCode::FAILURE;
                };
                if settings.development_credentials {
                    eprintln!("warning: signing with the development secret");
                }
                let iat = unix_now();
                let claims = Claims {
                    sub: user,
                    exp: iat + Duration::from_secs(ttl).as_secs(),
                    iat: Some(iat),
                    rooms,
                    publish,
                    ..Claims::default()
                };
                println!("{}", TokenKeys::new(secret.expose()).sign(&claims));
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn serve(overrides: &Overrides) -> ExitCode {
    let settings = match Settings::from_overrides(overrides) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let logs = logging::init(settings.log);
    if settings.development_credentials {
        tracing::warn!(
            secret = DEVELOPMENT_SECRET,
            api_key = DEVELOPMENT_API_KEY,
            "running with the public DEVELOPMENT credentials: anyone can mint tokens and call \
             the API. Set SWITCHBOARD_AUTH_SECRET and SWITCHBOARD_API_KEY for anything else."
        );
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if settings.workers > 0 {
        runtime.worker_threads(settings.workers);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let settings_log = settings.log;
    let logs = &logs;
    runtime.block_on(async move {
        // Handle SIGTERM and Ctrl-C from before the address is announced: a signal that came
        // earlier would kill the process without a graceful close.
        let signalled = match shutdown_signal() {
            Ok(signalled) => signalled,
            Err(e) => {
                eprintln!("error: cannot handle signals: {e}");
                return ExitCode::FAILURE;
            }
        };
        let running = match switchboard_server::start(settings).await {
            Ok(r) => r,
            Err(e) => {
                eprintln!("error: cannot listen: {e}");
                return ExitCode::FAILURE;
            }
        };
        // The line tests and scripts wait for; JSON logs carry the address in the
        // "switchboard listening" event instead, so that every line is JSON.
        if settings_log == LogFormat::Text {
            logs.plain(&format!("switchboard listening on http://{}", running.addr));
        }
        signalled.await;
        tracing::info!("shutting down");
        match running.shutdown().await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error during shutdown: {e}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Resolves on SIGTERM or Ctrl-C; the handlers are in place once this returns.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
        }
    })
}

/// Resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
