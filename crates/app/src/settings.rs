//! What every service reads, whatever its role: flattened into each role's
//! arguments (`#[command(flatten)]`) and turned into typed values once, at
//! start ([`CommonArgs::settle`]). Handlers only ever see [`Common`].

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::Args;
use s2s_auth::SigningAlgorithm;
use s2s_web::{
    outbound::Timeouts,
    production::ProductionArgs,
    serve::{ListenerArgs, ServeOptions},
};

use crate::role::Role;

#[derive(Args, Debug, Clone)]
pub(crate) struct CommonArgs {
    /// Env file to load first. Default: env/<service>.env, if it exists.
    /// A file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub(crate) env_file: Option<PathBuf>,

    /// Address to listen on.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub(crate) host: IpAddr,

    /// HTTP port. Default: the service's port in `app topology`.
    #[arg(long, env = "PORT")]
    pub(crate) port: Option<u16>,

    /// This service's name: the `aud` it accepts and the `sub` it signs as.
    /// Default: the subcommand (servicea, serviceb, servicec).
    #[arg(long, env = "SERVICE_NAME", value_parser = key_id)]
    pub(crate) service_name: Option<String>,

    /// The one signing algorithm, pinned on both sides: RS256, RS384,
    /// RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA. Key files of
    /// another kind are refused with a clear 503.
    #[arg(long, env = "ALGORITHM", default_value = "RS256")]
    pub(crate) algorithm: SigningAlgorithm,

    /// jwt-factory base URL.
    #[arg(
        long,
        env = "JWT_FACTORY_ENDPOINT",
        default_value = crate::defaults::factory_url()
    )]
    pub(crate) jwt_factory_endpoint: String,

    /// Time allowed to open a connection to jwt-factory or a peer, ms.
    #[arg(long, env = "CONNECT_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub(crate) connect_timeout_ms: u64,

    /// Time allowed for an outbound call, ms. servicea's whole leg (a
    /// token, then the call) gets this much in all.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub(crate) request_timeout_ms: u64,

    #[command(flatten)]
    pub(crate) listener: ListenerArgs,

    #[command(flatten)]
    pub(crate) production: ProductionArgs,
}

/// Service names become key ids and URL path segments at jwt-factory:
/// the same rule as any key id.
pub(crate) fn key_id(raw: &str) -> Result<String, String> {
    s2s_auth::KeyId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|e| e.to_string())
}

/// [`CommonArgs`] as typed values.
#[derive(Clone, Debug)]
pub(crate) struct Common {
    /// `SERVICE_NAME`: the `aud` it accepts, the `sub` it signs as.
    pub(crate) name: String,
    pub(crate) host: IpAddr,
    pub(crate) port: u16,
    pub(crate) algorithm: SigningAlgorithm,
    /// jwt-factory's base URL, without a trailing `/`.
    pub(crate) factory: String,
    pub(crate) timeouts: Timeouts,
    /// The bounds of every listener of the service.
    pub(crate) serve: ServeOptions,
    /// Whether the workshop's shortcuts are on (not `PRODUCTION`).
    pub(crate) shortcuts: bool,
}

impl CommonArgs {
    pub(crate) fn settle(mut self, role: Role) -> Common {
        // A receiver is also reached through the mesh, by its Service's
        // names: without ALLOWED_HOSTS, those Hosts are allowed too (an
        // ALLOWED_HOSTS that is set is the whole list of extra names).
        if matches!(role, Role::B | Role::C) && self.listener.allowed_hosts.is_empty() {
            let names = role.process().mesh_host_names();
            self.listener.allowed_hosts.extend(names);
        }
        Common {
            shortcuts: self.production.shortcuts(),
            name: self.service_name.unwrap_or_else(|| role.name().to_owned()),
            host: self.host,
            port: self.port.unwrap_or(role.default_port()),
            algorithm: self.algorithm,
            factory: base_url(&self.jwt_factory_endpoint),
            timeouts: Timeouts {
                connect: Duration::from_millis(self.connect_timeout_ms),
                request: Duration::from_millis(self.request_timeout_ms),
                pool_idle: self.listener.pool_idle(),
            },
            serve: self.listener.options(
                self.host,
                crate::common_routes::MAX_BODY_BYTES,
                "message",
            ),
        }
    }
}

impl Common {
    /// The service's plain-http listener, bound.
    pub(crate) async fn bind(&self) -> anyhow::Result<tokio::net::TcpListener> {
        bind(self.host, self.port, "").await
    }
}

/// A listener on `host:port`; an error names both (and `what` port).
pub(crate) async fn bind(
    host: IpAddr,
    port: u16,
    what: &str,
) -> anyhow::Result<tokio::net::TcpListener> {
    use anyhow::Context as _;
    tokio::net::TcpListener::bind((host, port))
        .await
        .with_context(|| format!("cannot listen on {what}{host}:{port}"))
}

/// The private key beside `cert` (`NAME-key.pem`). `dropped`, the setting
/// that used to name it, is no longer read: if it is set, the log says so
/// and which key is used, rather than ignoring it in silence.
pub(crate) fn key_beside_cert(dropped: &str, cert: &std::path::Path) -> PathBuf {
    let key = s2s_web::pki::key_beside(cert);
    if std::env::var_os(dropped).is_some() {
        tracing::warn!(
            "{dropped} is no longer read: the key is the one beside the certificate, {}",
            key.display()
        );
    }
    key
}

/// A base URL without its trailing `/`, so paths can be appended.
pub(crate) fn base_url(url: &str) -> String {
    url.trim_end_matches('/').to_owned()
}
