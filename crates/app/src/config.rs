//! Command line and settings. `app servicea|serviceb|servicec` runs a service;
//! `app gen-certs` and `app gen-keys` create the files the scenarios need.
//!
//! Every service setting is a flag with an env variable (the original demo's
//! names, so its README reads true). `app servicea` first loads
//! `env/servicea.env` (or `--env-file PATH`); precedence is
//! flag > process environment > env file > default.

use std::{net::IpAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand, builder::BoolishValueParser};
use s2s_auth::SigningAlgorithm;

/// servicea, serviceb and servicec: the four service-to-service JWT scenarios.
///
/// Run each service in its own terminal from the workspace root, then
/// `curl localhost:3000/scenario1` (2, 3, 4; each also with `?expired=1`).
#[derive(Parser, Debug)]
#[command(name = "app", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// The caller: gets or signs tokens and calls serviceb/servicec (:3000).
    Servicea(ServiceArgs),
    /// A receiver: verifies tokens via jwt-factory (:3001) or locally over https (:8443).
    Serviceb(ServiceArgs),
    /// A receiver, like serviceb (:3002, https :9443).
    Servicec(ServiceArgs),
    /// Create a local CA and a certificate for localhost, 127.0.0.1 and ::1
    /// in certs/ (replaces mkcert). servicea trusts that CA, and only it.
    GenCerts(GenCertsArgs),
    /// Create servicea's own scenario-3 key pair (same as `POST /gen-keys`).
    GenKeys(GenKeysArgs),
}

/// Which of the three services this process is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    A,
    B,
    C,
}

impl Role {
    /// The subcommand that selects this role, also its default `SERVICE_NAME`.
    pub fn name(self) -> &'static str {
        match self {
            Self::A => "servicea",
            Self::B => "serviceb",
            Self::C => "servicec",
        }
    }

    pub fn from_name(name: &str) -> Option<Self> {
        [Self::A, Self::B, Self::C]
            .into_iter()
            .find(|r| r.name() == name)
    }

    fn default_port(self) -> u16 {
        match self {
            Self::A => 3000,
            Self::B => 3001,
            Self::C => 3002,
        }
    }

    fn default_https_port(self) -> u16 {
        match self {
            Self::A => 7443,
            Self::B => 8443,
            Self::C => 9443,
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct ServiceArgs {
    /// Env file to load first. Default: env/<service>.env, if it exists.
    /// A file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Address to listen on (http and https).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// HTTP port. Default: 3000 (servicea), 3001 (serviceb), 3002 (servicec).
    #[arg(long, env = "PORT")]
    pub port: Option<u16>,

    /// This service's name: the `aud` it accepts and the `sub` it signs as.
    /// Default: the subcommand (servicea, serviceb, servicec).
    #[arg(long, env = "SERVICE_NAME", value_parser = key_id)]
    pub service_name: Option<String>,

    /// The `sub` receivers expect, and the jwt-factory key id they verify with.
    #[arg(long, env = "CALLER", default_value = "servicea", value_parser = key_id)]
    pub caller: String,

    /// jwt-factory base URL.
    #[arg(
        long,
        env = "JWT_FACTORY_ENDPOINT",
        default_value = "http://localhost:5555"
    )]
    pub jwt_factory_endpoint: String,

    /// serviceb's http base URL (scenarios 1-2).
    #[arg(
        long,
        env = "SERVICE_B_ENDPOINT",
        default_value = "http://localhost:3001"
    )]
    pub service_b_endpoint: String,

    /// serviceb's https base URL (scenarios 3-4).
    #[arg(
        long,
        env = "SERVICE_B_ENDPOINT_HTTPS",
        default_value = "https://localhost:8443"
    )]
    pub service_b_endpoint_https: String,

    /// servicec's http base URL (scenario 2).
    #[arg(
        long,
        env = "SERVICE_C_ENDPOINT",
        default_value = "http://localhost:3002"
    )]
    pub service_c_endpoint: String,

    /// servicec's https base URL (scenario 4).
    #[arg(
        long,
        env = "SERVICE_C_ENDPOINT_HTTPS",
        default_value = "https://localhost:9443"
    )]
    pub service_c_endpoint_https: String,

    /// servicea's scenario-3 signing key (written by gen-keys).
    #[arg(
        long,
        env = "SERVICE_A_PRIVATE_KEY_PATH",
        default_value = "scenario-3-keys/jwt-private.pem"
    )]
    pub service_a_private_key_path: PathBuf,

    /// servicea's scenario-3 public key, which serviceb/servicec verify with.
    #[arg(
        long,
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub service_a_public_key_path: PathBuf,

    /// TLS private key of the https listener (written by gen-certs).
    #[arg(
        long,
        env = "SERVER_PRIVATE_KEY_PATH",
        default_value = "certs/localhost-key.pem"
    )]
    pub server_private_key_path: PathBuf,

    /// TLS certificate of the https listener (written by gen-certs).
    #[arg(
        long,
        env = "SERVER_PUBLIC_KEY_PATH",
        default_value = "certs/localhost.pem"
    )]
    pub server_public_key_path: PathBuf,

    /// Also serve https (scenarios 3-4): true/false, 1/0, yes/no.
    #[arg(long, env = "START_HTTPS", default_value = "false", value_parser = BoolishValueParser::new(),
          num_args = 0..=1, default_missing_value = "true")]
    pub start_https: bool,

    /// HTTPS port. Default: 8443 (serviceb), 9443 (servicec).
    #[arg(long, env = "HTTPS_PORT")]
    pub https_port: Option<u16>,

    /// `iss` of the tokens servicea signs itself, and the issuer receivers
    /// accept in scenarios 3-4.
    #[arg(long, env = "ISSUER", default_value = "https://service-issuer")]
    pub issuer: String,

    /// Algorithm of scenario-3 tokens, pinned on both sides: RS256, RS384,
    /// RS512, PS256, PS384, PS512, ES256, ES384 or EdDSA.
    #[arg(long, env = "ALGORITHM", default_value = "RS256")]
    pub algorithm: SigningAlgorithm,

    /// The CA servicea trusts for https, and the only one.
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca_cert_path: PathBuf,

    /// Lifetime of the tokens servicea signs itself (scenarios 3-4), seconds.
    /// Also the longest remaining lifetime receivers accept.
    #[arg(long, env = "TOKEN_LIFETIME_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub token_lifetime_secs: u64,

    /// Clock tolerance when receivers verify locally (scenarios 3-4), seconds.
    #[arg(long, env = "LEEWAY_SECS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub leeway_secs: u64,

    /// Time allowed to open a connection to jwt-factory or a peer, ms.
    #[arg(long, env = "CONNECT_TIMEOUT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=60_000))]
    pub connect_timeout_ms: u64,

    /// Time allowed for a whole outbound call (connect, send, answer), ms.
    #[arg(long, env = "REQUEST_TIMEOUT_MS", default_value_t = 5000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub request_timeout_ms: u64,

    /// Time a client has to send its request headers before the connection
    /// is closed (against clients that trickle headers to hold connections), ms.
    #[arg(long, env = "HEADER_TIMEOUT_MS", default_value_t = 10_000,
          value_parser = clap::value_parser!(u64).range(1..=300_000))]
    pub header_timeout_ms: u64,

    /// Scenario 5: where receivers fetch the factory's JWK Set.
    /// Default: JWT_FACTORY_ENDPOINT + /.well-known/jwks.json.
    #[arg(long, env = "JWKS_URL")]
    pub jwks_url: Option<String>,

    /// Scenario 5: longest time the JWK Set is fresh, seconds (less if the
    /// factory's Cache-Control max-age says so; never less than
    /// JWKS_REFRESH_MIN_SECS).
    #[arg(long, env = "JWKS_MAX_AGE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub jwks_max_age_secs: u64,

    /// Scenario 5: at most one refetch of the JWK Set per this many seconds,
    /// however many unknown `kid`s arrive.
    #[arg(long, env = "JWKS_REFRESH_MIN_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub jwks_refresh_min_secs: u64,

    /// Scenario 5: how long past its freshness the cached JWK Set still
    /// serves while jwt-factory cannot be reached, seconds.
    #[arg(long, env = "JWKS_MAX_STALE_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub jwks_max_stale_secs: u64,

    /// Scenario 5: the `iss` of jwt-factory's tokens.
    #[arg(long, env = "FACTORY_ISSUER", default_value = "https://jwt-factory/")]
    pub factory_issuer: String,

    /// Scenario 5: the longest remaining lifetime accepted on a jwt-factory
    /// token, seconds (the factory's TOKEN_LIFETIME_SECS).
    #[arg(long, env = "FACTORY_TOKEN_LIFETIME_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub factory_token_lifetime_secs: u64,
}

/// Service names become key ids and URL path segments at jwt-factory:
/// the same rule as any key id.
fn key_id(raw: &str) -> Result<String, String> {
    s2s_auth::KeyId::parse(raw)
        .map(|id| id.to_string())
        .map_err(|e| e.to_string())
}

impl ServiceArgs {
    pub fn port(&self, role: Role) -> u16 {
        self.port.unwrap_or(role.default_port())
    }

    pub fn https_port(&self, role: Role) -> u16 {
        self.https_port.unwrap_or(role.default_https_port())
    }

    pub fn service_name(&self, role: Role) -> String {
        self.service_name
            .clone()
            .unwrap_or_else(|| role.name().to_owned())
    }

    pub fn jwks_url(&self) -> String {
        self.jwks_url.clone().unwrap_or_else(|| {
            format!(
                "{}/.well-known/jwks.json",
                self.jwt_factory_endpoint.trim_end_matches('/')
            )
        })
    }

    pub fn header_timeout(&self) -> Duration {
        Duration::from_millis(self.header_timeout_ms)
    }

    pub fn timeouts(&self) -> crate::outbound::Timeouts {
        crate::outbound::Timeouts {
            connect: Duration::from_millis(self.connect_timeout_ms),
            request: Duration::from_millis(self.request_timeout_ms),
        }
    }
}

#[derive(Args, Debug, Clone)]
pub struct GenCertsArgs {
    /// Folder for ca.pem, ca-key.pem, localhost.pem, localhost-key.pem.
    #[arg(long, default_value = "certs")]
    pub dir: PathBuf,
    /// Replace existing certificates (services must be restarted to use them).
    #[arg(long)]
    pub force: bool,
}

#[derive(Args, Debug, Clone)]
pub struct GenKeysArgs {
    /// Where the private key goes (mode 0600).
    #[arg(
        long,
        env = "SERVICE_A_PRIVATE_KEY_PATH",
        default_value = "scenario-3-keys/jwt-private.pem"
    )]
    pub private_key_path: PathBuf,
    /// Where the public key goes.
    #[arg(
        long,
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub public_key_path: PathBuf,
    /// The algorithm the key is for: RS* and PS* get RSA-2048, ES256 P-256,
    /// ES384 P-384, EdDSA Ed25519.
    #[arg(long, env = "ALGORITHM", default_value = "RS256")]
    pub algorithm: SigningAlgorithm,
}
