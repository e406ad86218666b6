//! `app`: see the library docs (`cargo doc -p app`) or `app --help`.

use std::process::ExitCode;

use anyhow::Context as _;

use app::{
    Role, caller,
    cli::{Cli, Command, FetchTokenArgs, GenCertsArgs, GenKeysArgs},
    receiver, tools, verifier,
};
use s2s_web::{
    pki::{self, CertFiles, Generated},
    serve::ListenerArgs,
};

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
        Command::FetchToken(_)
        | Command::GatewayConfig(_)
        | Command::MeshConfig(_)
        | Command::Topology(_) => s2s_web::telemetry::init_on_stderr(),
        _ => s2s_web::telemetry::init(),
    };
    if let Some(file) = loaded {
        tracing::info!("loaded settings from {}", file.display());
    }
    // One crypto provider for rustls in the whole process: aws-lc-rs.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();

    let runtime = cli.command.listener().map(ListenerArgs::runtime);
    let result = match cli.command {
        Command::Servicea(a) => on_runtime(runtime, caller::serve(a.settle())),
        Command::Serviceb(a) => on_runtime(runtime, receiver::serve(a.settle(Role::B))),
        Command::Servicec(a) => on_runtime(runtime, receiver::serve(a.settle(Role::C))),
        Command::GenCerts(a) => gen_certs(&a),
        Command::GenKeys(a) => gen_keys(&a),
        Command::FetchToken(a) => fetch_token(a),
        Command::Verifier(a) => on_runtime(runtime, verifier::serve(a.settle())),
        Command::GatewayConfig(a) => gateway_config(&a),
        Command::MeshConfig(a) => mesh_config(&a),
        Command::DeployFiles(a) => tools::deploy_files::run(&a),
        Command::Topology(a) => {
            print!("{}", tools::topology::render(&a));
            Ok(())
        }
    };
    drop(log);
    s2s_web::cli::report(result)
}

/// Runs a service on its runtime (from its settings) until it stops.
fn on_runtime(
    runtime: Option<std::io::Result<tokio::runtime::Runtime>>,
    service: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    runtime
        .context("a tool has no service to run")?
        .context("cannot start the async runtime")?
        .block_on(service)
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

fn gateway_config(args: &tools::gateway_config::Args) -> anyhow::Result<()> {
    let written = tools::gateway_config::write(args)?;
    tracing::info!("wrote {}", written.config.display());
    println!("{}", written.command());
    Ok(())
}

#[tokio::main]
async fn fetch_token(args: FetchTokenArgs) -> anyhow::Result<()> {
    s2s_auth::KeyId::parse(&args.audience).context("--audience")?;
    let state = caller::State::open(args.servicea.settle()).await?;
    let token = if args.self_signed {
        state.self_signed(&args.audience).await
    } else {
        let grant = if args.bound {
            caller::Grant::Bound
        } else {
            caller::Grant::Bearer
        };
        state
            .token(&args.audience, grant)
            .await
            .map(|cached| cached.token.clone())
    };
    println!("{}", token.map_err(|e| anyhow::anyhow!("{e}"))?);
    Ok(())
}

fn gen_keys(args: &GenKeysArgs) -> anyhow::Result<()> {
    caller::generate_keys(
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
async fn mesh_config(args: &tools::mesh_config::Args) -> anyhow::Result<()> {
    tools::mesh_config::run(args).await
}
