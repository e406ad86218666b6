//! Configuration: every setting is a flag with an env variable, documented
//! here so that `jwt-factory --help` explains it.
//! Precedence: flag > process environment > env file > default.

use std::{net::IpAddr, path::PathBuf};

use clap::{Parser, builder::BoolishValueParser};
use s2s_auth::SigningAlgorithm;

/// Largest request body accepted: claims and tokens are well under 1 KiB.
pub const MAX_BODY_BYTES: usize = 16 * 1024;

/// The token service: creates a key pair per key id, issues JWTs signed
/// with it, and verifies tokens for callers.
///
/// Quick start: `jwt-factory`, then `curl localhost:5555/keys/servicea` and
/// `curl -X POST localhost:5555/issueToken/servicea -H 'content-type: application/json'
/// -d '{"aud":"serviceb"}'`.
#[derive(Parser, Debug, Clone)]
#[command(name = "jwt-factory", version, about, long_about = None)]
pub struct Config {
    /// Env file to load first. Default: env/jwt-factory.env, if it exists.
    /// A file named here must exist.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Address to listen on. The default keeps the demo off the network.
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    pub host: IpAddr,

    /// Port to listen on (0 picks a free one).
    #[arg(long, env = "PORT", default_value_t = topology::FACTORY.port)]
    pub port: u16,

    /// `iss` of issued tokens, and the only issuer `/verify` accepts.
    #[arg(long, env = "ISSUER", default_value = "https://jwt-factory/")]
    pub issuer: String,

    /// Signing algorithm, pinned: tokens naming any other `alg` are refused.
    /// One of RS256, RS384, RS512, PS256, PS384, PS512 (RSA-2048 keys),
    /// ES256 (P-256), ES384 (P-384), EdDSA (Ed25519).
    #[arg(long, env = "ALGORITHM", default_value = "RS256")]
    pub algorithm: SigningAlgorithm,

    /// Who holds the private keys: `files` (this process; `/utils/dump`
    /// writes them to KEYS_DIR) or `openbao` (Transit keys in OpenBao: the
    /// factory signs through OpenBao and never holds a private key; see
    /// the OPENBAO_* settings).
    #[arg(long, env = "KEY_BACKEND", value_enum, default_value_t = crate::custody::KeyBackend::Files)]
    pub key_backend: crate::custody::KeyBackend,

    /// With KEY_BACKEND=openbao: where OpenBao is and who the factory is
    /// there.
    #[command(flatten)]
    pub openbao: openbao::OpenBaoArgs,

    /// With KEY_BACKEND=openbao: how often each replica reads the key
    /// records again, in milliseconds, so a rotation made on another
    /// replica is published and used here too (well within
    /// ROTATION_PUBLISH_AHEAD_SECS).
    #[arg(long, env = "OPENBAO_SYNC_MS", default_value_t = 2000,
          value_parser = clap::value_parser!(u64).range(100..=60_000))]
    pub openbao_sync_ms: u64,

    /// Where `/utils/dump` writes key pairs and where they are loaded from at start.
    #[arg(long, env = "KEYS_DIR", default_value = "keys")]
    pub keys_dir: PathBuf,

    /// Lifetime of issued tokens in seconds (`exp - iat`); at most one day.
    /// Also the longest remaining lifetime `/verify` accepts.
    #[arg(long, env = "TOKEN_LIFETIME_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub token_lifetime_secs: u64,

    /// Clock tolerance for `exp`, `nbf` and `iat` when verifying, in seconds.
    #[arg(long, env = "LEEWAY_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(0..=300))]
    pub leeway_secs: u64,

    #[command(flatten)]
    pub listener: s2s_web::serve::ListenerArgs,

    /// New key ids `/keys/{keyId}` may create per minute (a token bucket:
    /// this many at once, then one every 60/N s; 429 with Retry-After past
    /// it). Each key id grows the JWK Set every verifier fetches. Replacing
    /// or rotating an existing key id is not counted.
    #[arg(long, env = "NEW_KEY_IDS_PER_MINUTE", default_value_t = 30,
          value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub new_key_ids_per_minute: u32,

    /// How long clients may cache `/.well-known/jwks.json` (its
    /// `Cache-Control: max-age`), in seconds. A rotated-in key is published
    /// this long before it signs (ROTATION_PUBLISH_AHEAD_SECS), so caches
    /// hold it before they meet it.
    #[arg(long, env = "JWKS_MAX_AGE_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub jwks_max_age_secs: u64,

    /// Key rotation (`POST /keys/{keyId}/rotate`): how long the next key is
    /// published in the JWK Set before it signs, in seconds. Verifiers that
    /// cache the set (for up to JWKS_MAX_AGE_SECS) then already hold the
    /// new key when the first token signed with it arrives; some, like
    /// Envoy, never refetch on an unknown `kid`. Default: JWKS_MAX_AGE_SECS.
    /// 0 signs with the new key at once.
    #[arg(long, env = "ROTATION_PUBLISH_AHEAD_SECS",
          value_parser = clap::value_parser!(u64).range(0..=86_400))]
    pub rotation_publish_ahead_secs: Option<u64>,

    /// The client registry of `POST /token` and `POST /introspect`: which
    /// clients exist, their public key files, the audiences each may ask
    /// for (JSON; reloaded when it changes).
    #[arg(long, env = "CLIENTS_FILE", default_value = "env/clients.json")]
    pub clients_file: PathBuf,

    /// How the JWK Sets of `jwks_uri` clients are cached.
    #[command(flatten)]
    pub client_jwks: crate::oauth::clients::ClientJwksArgs,

    /// The factory's URL as its clients reach it: the metadata document's
    /// endpoints, and (with `/token`) an `aud` accepted on client assertions.
    #[arg(long, env = "PUBLIC_URL", default_value_t = topology::FACTORY.http_url())]
    pub public_url: String,

    /// Lifetime of the access tokens `POST /token` issues, seconds.
    #[arg(long, env = "ACCESS_TOKEN_LIFETIME_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub access_token_lifetime_secs: u64,

    /// The longest a client assertion may live (`exp` at most this far
    /// ahead, plus LEEWAY_SECS), seconds. Popular OAuth client libraries
    /// sign one-hour assertions by default, and Okta and Google accept up
    /// to one hour. An assertion still works once: its `jti` is remembered
    /// until `exp` + LEEWAY_SECS.
    #[arg(long, env = "MAX_ASSERTION_LIFETIME_SECS", default_value_t = 3600,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub max_assertion_lifetime_secs: u64,

    /// How many client-assertion `jti`s are remembered for one client at
    /// once (each until its assertion's `exp` + LEEWAY_SECS). A client
    /// over it is refused until some expire; other clients are not. Covers
    /// a sustained rate of this divided by (assertion lifetime + leeway):
    /// 10,000 tokens/s with 60 s assertions, 250/s with one-hour ones.
    #[arg(long, env = "JTI_CACHE_PER_CLIENT", default_value_t = 900_000,
          value_parser = clap::value_parser!(u64).range(1..=100_000_000))]
    pub jti_cache_per_client: u64,

    /// How many client-assertion `jti`s are remembered for all clients
    /// together: the memory bound, about 25 bytes each (so 67 MB at the
    /// default). Each client's share is at most this divided by the
    /// registered clients. Default: three times JTI_CACHE_PER_CLIENT.
    #[arg(long, env = "JTI_CACHE_TOTAL",
          value_parser = clap::value_parser!(u64).range(1..=200_000_000))]
    pub jti_cache_total: Option<u64>,

    /// Keep the seed demo's shortcut on: `/issueToken` gives anyone a token
    /// and `/verify` checks one (scenarios 1-2). false: both answer 403 and
    /// point to `POST /token`.
    #[arg(long, env = "ISSUE_TOKEN_SHORTCUT", default_value = "true",
          value_parser = BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    pub issue_token_shortcut: bool,

    /// Also serve https with client certificates (scenario 8): `POST
    /// /token` over mTLS binds each token to the client's certificate
    /// (RFC 8705 `cnf.x5t#S256`). true/false, 1/0, yes/no.
    #[arg(long, env = "START_HTTPS", default_value = "false",
          value_parser = BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    pub start_https: bool,

    /// HTTPS port (with START_HTTPS).
    #[arg(long, env = "HTTPS_PORT", default_value_t = topology::FACTORY.https_port.unwrap_or(0))]
    pub https_port: u16,

    /// The https listener's URL as clients reach it (with START_HTTPS):
    /// the metadata's RFC 8705 `mtls_endpoint_aliases`, and an `aud`
    /// accepted on client assertions (`<this>/token`, `<this>/introspect`).
    /// Default: `https://localhost:<HTTPS_PORT>`; set it to the name
    /// clients use in a cluster.
    #[arg(long, env = "MTLS_PUBLIC_URL")]
    pub mtls_public_url: Option<String>,

    /// The factory's workload certificate for https (gen-certs writes it;
    /// re-read when it changes).
    #[arg(long, env = "TLS_CERT_PATH", default_value = "certs/jwt-factory.pem")]
    pub tls_cert_path: PathBuf,

    /// Its private key (0600).
    #[arg(
        long,
        env = "TLS_KEY_PATH",
        default_value = "certs/jwt-factory-key.pem"
    )]
    pub tls_key_path: PathBuf,

    /// The CA client certificates must chain to.
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca_cert_path: PathBuf,

    /// Client certificates on the https listener: off, permissive (a
    /// client without one gets an unbound token), strict.
    #[arg(long, env = "MTLS_MODE", value_enum, default_value_t = s2s_web::tls::MtlsMode::Permissive)]
    pub mtls_mode: s2s_web::tls::MtlsMode,

    #[command(flatten)]
    pub production: s2s_web::production::ProductionArgs,

    /// With PRODUCTION, who may manage keys (/keys/{keyId},
    /// /keys/{keyId}/rotate, /utils/dump): the workload identity (Istio
    /// principal) of a client certificate on the https listener.
    /// Default: <TRUST_DOMAIN>/ns/default/sa/admin (`app gen-certs` issues
    /// certs/admin.pem).
    #[arg(long, env = "ADMIN_PRINCIPAL")]
    pub admin_principal: Option<String>,
}

impl Config {
    /// [`Config::public_url`] without a trailing `/`.
    pub fn public_base(&self) -> &str {
        self.public_url.trim_end_matches('/')
    }

    /// [`Config::mtls_public_url`] without a trailing `/`, or
    /// `https://localhost:<HTTPS_PORT>`; `None` without START_HTTPS.
    pub fn mtls_base(&self) -> Option<String> {
        self.start_https.then(|| match &self.mtls_public_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("https://localhost:{}", self.https_port),
        })
    }
}

impl Config {
    /// `ROTATION_PUBLISH_AHEAD_SECS`, or `JWKS_MAX_AGE_SECS` when unset.
    pub fn publish_ahead_secs(&self) -> u64 {
        self.rotation_publish_ahead_secs
            .unwrap_or(self.jwks_max_age_secs)
    }

    /// How long a key that stopped signing must still verify: the longest
    /// lifetime of any token the factory signs with it (`/issueToken`'s
    /// TOKEN_LIFETIME_SECS or `/token`'s ACCESS_TOKEN_LIFETIME_SECS,
    /// whichever is longer), plus the leeway verifiers allow after `exp`.
    /// Shorter, and a valid token would outlive the key that signed it.
    pub fn rotation_overlap_secs(&self) -> u64 {
        self.token_lifetime_secs
            .max(self.access_token_lifetime_secs)
            .saturating_add(self.leeway_secs)
    }
}

impl Config {
    /// The https listener's files, if START_HTTPS.
    pub fn server_tls(&self) -> Option<s2s_web::tls::ServerTls> {
        self.start_https.then(|| s2s_web::tls::ServerTls {
            cert: self.tls_cert_path.clone(),
            key: self.tls_key_path.clone(),
            client_ca: self.ca_cert_path.clone(),
            mode: self.effective_mtls_mode(),
        })
    }

    /// `/issueToken` and `/verify` are served: ISSUE_TOKEN_SHORTCUT, and
    /// never with PRODUCTION.
    pub fn issue_token_shortcut(&self) -> bool {
        self.issue_token_shortcut && self.production.shortcuts()
    }

    /// MTLS_MODE, except that PRODUCTION turns `permissive` into `strict`.
    pub fn effective_mtls_mode(&self) -> s2s_web::tls::MtlsMode {
        self.production.mtls_mode(self.mtls_mode)
    }

    /// Who may manage keys with PRODUCTION (ADMIN_PRINCIPAL).
    pub fn admin_principal(&self) -> String {
        self.admin_principal
            .clone()
            .unwrap_or_else(|| format!("{}/ns/default/sa/admin", self.listener.trust_domain))
    }

    /// The bounds of the listener.
    pub fn serve_options(&self) -> s2s_web::serve::ServeOptions {
        self.listener
            .options(self.host, MAX_BODY_BYTES, crate::error::ERROR_KEY)
    }
}
