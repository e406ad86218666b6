//! `jwt-factory`: see the library docs (`cargo doc -p jwt-factory`) or `--help`.

use std::path::Path;

use anyhow::Context as _;
use clap::Parser as _;
use jwt_factory::{AppState, Config};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<_> = std::env::args_os().collect();
    let explicit = s2s_auth::env_file::flag_in_args(&args);
    let loaded =
        s2s_auth::env_file::load(explicit.as_deref(), Some(Path::new("env/jwt-factory.env")))?;
    let config = Config::parse_from(args);
    s2s_auth::telemetry::init();
    if let Some(file) = loaded {
        tracing::info!("loaded settings from {}", file.display());
    }

    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    jwt_factory::run(
        listener,
        AppState::load(config),
        s2s_auth::shutdown::signal(),
    )
    .await?;
    Ok(())
}
