//! `jwt-factory`: see the library docs (`cargo doc -p jwt-factory`) or `--help`.

use std::{path::Path, process::ExitCode};

use anyhow::Context as _;
use jwt_factory::{AppState, Config};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    let explicit = s2s_web::env_file::flag_in_args(&args);
    let loaded = match s2s_web::env_file::load(
        explicit.as_deref(),
        Some(Path::new("env/jwt-factory.env")),
    ) {
        Ok(loaded) => loaded,
        Err(err) => return s2s_web::cli::report(Err(err)),
    };
    let config: Config = s2s_web::cli::parse(args);
    let log = s2s_web::telemetry::init();
    if let Some(file) = loaded {
        tracing::info!("loaded settings from {}", file.display());
    }
    let result = config
        .listener
        .runtime()
        .context("cannot start the async runtime")
        .and_then(|runtime| runtime.block_on(serve(config)));
    drop(log);
    s2s_web::cli::report(result)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind((config.host, config.port))
        .await
        .with_context(|| format!("cannot listen on {}:{}", config.host, config.port))?;
    let https = match config.server_tls() {
        Some(tls) => {
            let rustls = s2s_web::tls::server_config(&tls).await?;
            let l = tokio::net::TcpListener::bind((config.host, config.https_port))
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on https port {}:{}",
                        config.host, config.https_port
                    )
                })?;
            Some((l, rustls))
        }
        None => None,
    };
    let state = AppState::open(config)
        .await
        .context("cannot start with KEY_BACKEND=openbao")?;
    jwt_factory::run_with_https(listener, https, state, s2s_web::shutdown::signal()).await?;
    Ok(())
}
