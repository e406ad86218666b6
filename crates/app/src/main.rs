//! `app`: see the library docs (`cargo doc -p app`) or `app --help`.

use std::process::ExitCode;

use anyhow::Context as _;

use app::{
    Role,
    cli::{Cli, Command, FetchTokenArgs, GenCertsArgs, GenKeysArgs},
    receiver, servicea,
};
use s2s_web::pki::{self, CertFiles, Generated};

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().collect();
    // The env file must be in the environment before clap reads it: find
    // the role and `--env-file` first, load, then parse for real.
    // `gen-keys` reads servicea's file: the same key paths and ALGORITHM.
    let default = match args.get(1).and_then(|a| a.to_str()) {
        Some("gen-keys" | "fetch-token") => Some(Role::A.env_file()),
        Some("gateway-config") => Some(std::path::PathBuf::from("env/gateway.env")),
        Some("mesh-config") => Some(std::path::PathBuf::from("env/mesh.env")),
        other => other.and_then(Role::from_name).map(Role::env_file),
    };
    let explicit = s2s_web::env_file::flag_in_args(&args);
    let loaded = match s2s_web::env_file::load(explicit.as_deref(), default.as_deref()) {
        Ok(loaded) => loaded,
        Err(err) => return s2s_web::cli::report(Err(err)),
    };
    let cli: Cli = s2s_web::cli::parse(args);
    // `fetch-token`, `gateway-config` and `mesh-config` answer on stdout: their log goes
    // to stderr.
    let log = match cli.command {
        Command::FetchToken(_) | Command::GatewayConfig(_) | Command::MeshConfig(_) => {
            s2s_web::telemetry::init_on_stderr()
        }
        _ => s2s_web::telemetry::init(),
    };
    if let Some(file) = loaded {
        tracing::info!("loaded settings from {}", file.display());
    }
    // One crypto provider for rustls in the whole process: aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let result = match cli.command {
        Command::Servicea(a) => run_servicea(a),
        Command::Serviceb(a) => run_receiver(Role::B, a),
        Command::Servicec(a) => run_receiver(Role::C, a),
        Command::GenCerts(a) => gen_certs(&a),
        Command::GenKeys(a) => gen_keys(&a),
        Command::FetchToken(a) => fetch_token(a),
        Command::Verifier(a) => run_verifier(a),
        Command::GatewayConfig(a) => gateway_config(&a),
        Command::MeshConfig(a) => mesh_config(&a),
    };
    drop(log);
    s2s_web::cli::report(result)
}

#[tokio::main]
async fn run_servicea(args: servicea::Args) -> anyhow::Result<()> {
    let settings = args.settle();
    let (host, port) = (settings.common.host, settings.common.port);
    let http = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let state = servicea::State::new(settings)?;
    servicea::run(state, http, s2s_web::shutdown::signal()).await?;
    Ok(())
}

#[tokio::main]
async fn run_receiver(role: Role, args: receiver::Args) -> anyhow::Result<()> {
    let settings = args.settle(role);
    let host = settings.common.host;
    let https = match &settings.https {
        Some(h) => {
            let config = s2s_web::tls::server_config(&h.tls).await?;
            let listener = tokio::net::TcpListener::bind((host, h.port))
                .await
                .with_context(|| format!("cannot listen on https port {host}:{}", h.port))?;
            Some((listener, config))
        }
        None => None,
    };
    let port = settings.common.port;
    let http = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let state = receiver::State::new(settings)?;
    receiver::run(state, http, https, s2s_web::shutdown::signal()).await?;
    Ok(())
}

fn gen_certs(args: &GenCertsArgs) -> anyhow::Result<()> {
    let files = CertFiles::in_dir(&args.dir);
    let profile = pki::Profile {
        trust_domain: args.trust_domain.clone(),
        ..Default::default()
    };
    let ids = || pki::spiffe_id(&args.trust_domain, "{name}");
    match pki::generate(&files, args.force, &profile)? {
        Generated::Created => tracing::info!(
            "created local CA {}, certificate {} for {:?}, and workload certificates {:?} ({}) (keys mode 0600)",
            files.ca_cert.display(),
            files.server_cert.display(),
            pki::SERVER_NAMES,
            pki::WORKLOADS,
            ids()
        ),
        Generated::Added(names) => tracing::info!(
            "kept the valid CA in {}; issued workload certificates for {names:?} under it ({})",
            args.dir.display(),
            ids()
        ),
        Generated::KeptValid => tracing::info!(
            "valid certificates already in {}: kept them (--force replaces them)",
            args.dir.display()
        ),
    }
    Ok(())
}

#[tokio::main]
async fn run_verifier(args: app::verifier::Args) -> anyhow::Result<()> {
    let settings = args.settle();
    let (host, port) = (settings.common.host, settings.common.port);
    let listener = tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {host}:{port}"))?;
    let state = app::verifier::State::new(settings)?;
    app::verifier::run(state, listener, s2s_web::shutdown::signal()).await?;
    Ok(())
}

fn gateway_config(args: &app::gateway_config::Args) -> anyhow::Result<()> {
    let written = app::gateway_config::write(args)?;
    tracing::info!("wrote {}", written.config.display());
    println!("{}", written.command());
    Ok(())
}

#[tokio::main]
async fn fetch_token(args: FetchTokenArgs) -> anyhow::Result<()> {
    s2s_auth::KeyId::parse(&args.audience).context("--audience")?;
    let state = servicea::State::new(args.servicea.settle())?;
    if args.self_signed {
        let token = app::self_signed::mint(&state, &args.audience, false)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        println!("{token}");
        return Ok(());
    }
    let sts = if args.bound {
        &state.sts_bound
    } else {
        &state.sts
    };
    let deadline = s2s_web::outbound::Deadline::start(state.settings.common.timeouts);
    let rid = s2s_web::request_tracing::RequestId(None);
    let cached = sts
        .token(&args.audience, &rid, deadline)
        .await
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    println!("{}", cached.token);
    Ok(())
}

fn gen_keys(args: &GenKeysArgs) -> anyhow::Result<()> {
    app::keygen::generate(
        args.algorithm,
        &args.private_key_path,
        &args.public_key_path,
    )?;
    tracing::info!(
        "created scenario-3 {} key pair {} (0600) and {}",
        args.algorithm,
        args.private_key_path.display(),
        args.public_key_path.display()
    );
    Ok(())
}

#[tokio::main(flavor = "current_thread")]
async fn mesh_config(args: &app::mesh_config::Args) -> anyhow::Result<()> {
    app::mesh_config::run(args).await
}
