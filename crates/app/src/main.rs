//! `app`: see the library docs (`cargo doc -p app`) or `app --help`.

use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Parser as _;

use app::{
    ServiceState,
    config::{Cli, Command, GenCertsArgs, GenKeysArgs, Role, ServiceArgs},
};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<_> = std::env::args_os().collect();
    // The env file must be in the environment before clap reads it: find
    // the role and `--env-file` first, load, then parse for real.
    // `gen-keys` reads servicea's file: the same key paths and ALGORITHM.
    let default = match args.get(1).and_then(|a| a.to_str()) {
        Some("gen-keys") => Some(PathBuf::from("env/servicea.env")),
        other => other
            .and_then(Role::from_name)
            .map(|r| PathBuf::from(format!("env/{}.env", r.name()))),
    };
    let explicit = s2s_auth::env_file::flag_in_args(&args);
    let loaded = s2s_auth::env_file::load(explicit.as_deref(), default.as_deref())?;
    let cli = Cli::parse_from(args);
    s2s_auth::telemetry::init();
    if let Some(file) = loaded {
        tracing::info!("loaded settings from {}", file.display());
    }
    // One crypto provider for rustls in the whole process: aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    match cli.command {
        Command::Servicea(a) => serve(Role::A, a).await,
        Command::Serviceb(a) => serve(Role::B, a).await,
        Command::Servicec(a) => serve(Role::C, a).await,
        Command::GenCerts(a) => gen_certs(&a),
        Command::GenKeys(a) => gen_keys(&a),
    }
}

async fn serve(role: Role, args: ServiceArgs) -> anyhow::Result<()> {
    let https = if args.start_https {
        let config =
            app::tls::server_config(&args.server_public_key_path, &args.server_private_key_path)
                .await?;
        let port = args.https_port(role);
        let listener = tokio::net::TcpListener::bind((args.host, port))
            .await
            .with_context(|| format!("cannot listen on https port {}:{port}", args.host))?;
        Some((listener, config))
    } else {
        None
    };
    let port = args.port(role);
    let http = tokio::net::TcpListener::bind((args.host, port))
        .await
        .with_context(|| format!("cannot listen on {}:{port}", args.host))?;
    let state =
        ServiceState::new(role, args).map_err(|e| anyhow!("cannot build the http client: {e}"))?;
    app::run(state, http, https, s2s_auth::shutdown::signal()).await?;
    Ok(())
}

fn gen_certs(args: &GenCertsArgs) -> anyhow::Result<()> {
    let files = s2s_auth::certs::CertFiles::in_dir(&args.dir);
    s2s_auth::certs::generate(&files, args.force, Default::default())?;
    tracing::info!(
        "created local CA {} and certificate {} for {:?} (keys mode 0600)",
        files.ca_cert.display(),
        files.server_cert.display(),
        s2s_auth::certs::SERVER_NAMES
    );
    Ok(())
}

fn gen_keys(args: &GenKeysArgs) -> anyhow::Result<()> {
    app::keygen::generate(
        args.algorithm,
        &args.private_key_path,
        &args.public_key_path,
    )
    .map_err(|e| anyhow!(e))?;
    tracing::info!(
        "created scenario-3 {} key pair {} (0600) and {}",
        args.algorithm,
        args.private_key_path.display(),
        args.public_key_path.display()
    );
    Ok(())
}
