//! servicea, the caller: gets or signs tokens and calls serviceb/servicec.
//!
//! Its arguments ([`Args`]) are only what servicea reads; they are turned
//! into [`Settings`] once at start, and every handler shares one [`State`]:
//! one plain http client, https clients trusting only our CA, and its
//! scenario-3 signing key, parsed once and reloaded when the file changes.
//!
//! Every TLS client is pinned to the peer it calls ([`TlsPeers`]): one
//! client per peer, which completes a handshake only with a server whose
//! workload certificate names that peer's SPIFFE ID
//! (`spiffe://TRUST_DOMAIN/ns/default/sa/<name>`, [`s2s_web::peer_pin`]).
//! The CA and the name `localhost` alone would let any workload stand in
//! for any other: every workload certificate is valid for `localhost`.

use std::{
    path::PathBuf,
    sync::{Arc, atomic::AtomicBool},
    time::Duration,
};

use axum::{
    Router,
    routing::{get, post},
};
use clap::Args as ClapArgs;
use s2s_auth::{KeyPair, watched::WatchedFile};
use s2s_web::{
    outbound::{self, ClientError, Timeouts},
    peer_pin::PeerTls,
    pki,
};
use tokio::net::TcpListener;

use crate::{
    cli::Role,
    keygen, scenarios,
    settings::{Common, CommonArgs, base_url},
    sts_client::{FACTORY_WORKLOAD, StsClient, Transport},
};

/// What to do when servicea's signing key is missing: the two ways to make it.
pub const KEY_HINT: &str = "Create it with `curl -X POST localhost:3000/gen-keys` \
     (or `cargo run --release --bin app -- gen-keys`)";

#[derive(ClapArgs, Debug, Clone)]
pub struct Args {
    #[command(flatten)]
    pub common: CommonArgs,

    /// serviceb's http base URL (scenarios 1, 2, 5).
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

    /// servicea's own signing key for scenarios 3-4 (`POST /gen-keys` writes it).
    #[arg(
        long,
        env = "SERVICE_A_PRIVATE_KEY_PATH",
        default_value = "scenario-3-keys/jwt-private.pem"
    )]
    pub service_a_private_key_path: PathBuf,

    /// Where `POST /gen-keys` writes the matching public key, which
    /// serviceb/servicec verify with.
    #[arg(
        long,
        env = "SERVICE_A_PUBLIC_KEY_PATH",
        default_value = "scenario-3-keys/jwt-public.pem"
    )]
    pub service_a_public_key_path: PathBuf,

    /// The CA servicea trusts for https, and the only one.
    #[arg(long, env = "CA_CERT_PATH", default_value = "certs/ca.pem")]
    pub ca_cert_path: PathBuf,

    /// `iss` of the tokens servicea signs itself (scenarios 3-4).
    #[arg(long, env = "ISSUER", default_value = "https://service-issuer")]
    pub issuer: String,

    /// Lifetime of the tokens servicea signs itself (scenarios 3-4), seconds.
    #[arg(long, env = "TOKEN_LIFETIME_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub token_lifetime_secs: u64,

    /// Scenarios 3-4: when `POST /gen-keys` rotates servicea's key, how
    /// long the new public key is published (`jwt-public.next.pem`) before
    /// servicea signs with it, in seconds. Receivers check the files on
    /// every request, so a short wait covers requests in flight; see
    /// `docs/rotation.md`.
    #[arg(long, env = "SCENARIO3_PUBLISH_AHEAD_SECS", default_value_t = 2,
          value_parser = clap::value_parser!(u64).range(0..=3600))]
    pub scenario3_publish_ahead_secs: u64,

    /// Scenario 6: the factory's issuer, the `aud` of the client assertions
    /// servicea signs for `POST /token`.
    #[arg(long, env = "FACTORY_ISSUER", default_value = "https://jwt-factory/")]
    pub factory_issuer: String,

    /// Scenarios 7-8: servicea's workload certificate (its SPIFFE ID),
    /// presented in mTLS. Written by gen-certs; re-read when it changes.
    #[arg(long, env = "WORKLOAD_CERT_PATH", default_value = "certs/servicea.pem")]
    pub workload_cert_path: PathBuf,

    /// Scenarios 7-8: the private key of the workload certificate (0600).
    #[arg(
        long,
        env = "WORKLOAD_KEY_PATH",
        default_value = "certs/servicea-key.pem"
    )]
    pub workload_key_path: PathBuf,

    /// Scenario 8: jwt-factory's https (mTLS) base URL, where its token
    /// endpoint binds tokens to the client certificate.
    #[arg(
        long,
        env = "JWT_FACTORY_ENDPOINT_HTTPS",
        default_value = "https://localhost:5556"
    )]
    pub jwt_factory_endpoint_https: String,

    /// Scenario 9: the gateway (nginx); `/serviceb/...` leads to serviceb.
    #[arg(
        long,
        env = "GATEWAY_ENDPOINT",
        default_value = "http://localhost:8080"
    )]
    pub gateway_endpoint: String,

    /// Scenario 10: servicea's sidecar (Envoy), its HTTP proxy for calls
    /// into the mesh. Empty: no proxy (in a cluster, iptables sends the
    /// pod's traffic through the sidecar without the app knowing).
    #[arg(long, env = "MESH_PROXY", default_value = "http://127.0.0.1:15012",
          value_parser = mesh_proxy)]
    pub mesh_proxy: String,

    /// Scenario 10: serviceb as the mesh names it (its Service).
    #[arg(
        long,
        env = "SERVICEB_MESH_ENDPOINT",
        default_value = "http://serviceb:3001"
    )]
    pub serviceb_mesh_endpoint: String,

    /// Scenario 10: servicec as the mesh names it.
    #[arg(
        long,
        env = "SERVICEC_MESH_ENDPOINT",
        default_value = "http://servicec:3002"
    )]
    pub servicec_mesh_endpoint: String,
}

/// `MESH_PROXY`: empty, or `http://` to a loopback address. Bearer tokens
/// cross this hop in clear text, so it must not leave the machine: the
/// sidecar is always beside the app.
fn mesh_proxy(raw: &str) -> Result<String, String> {
    if raw.trim().is_empty() {
        return Ok(String::new());
    }
    let authority = raw
        .strip_prefix("http://")
        .map(|rest| rest.trim_end_matches('/'))
        .ok_or_else(|| format!("{raw:?}: the sidecar is an http:// proxy on loopback"))?;
    let host = match authority.rsplit_once(':') {
        Some((host, port)) if port.parse::<u16>().is_ok() => host,
        _ => return Err(format!("{raw:?}: http://HOST:PORT")),
    };
    if !["127.0.0.1", "localhost", "[::1]"].contains(&host) {
        return Err(format!(
            "{raw:?}: the sidecar must be on loopback (127.0.0.1, localhost, [::1]): \
             tokens cross this hop in clear text"
        ));
    }
    Ok(raw.to_owned())
}

/// servicea's own key pair files (the current pair; [`crate::key_set`]
/// names the others after them).
pub type KeyFiles = crate::key_set::KeySetFiles;

/// servicea's scenario-3 signing key and its `kid`.
#[derive(Debug)]
pub struct SigningKey {
    pub pair: KeyPair,
    pub kid: String,
}

/// The base URLs of the receivers, without a trailing `/`.
#[derive(Clone, Debug)]
pub struct Peers {
    pub b_http: String,
    pub b_https: String,
    pub c_http: String,
    pub c_https: String,
    /// Scenario 10: as the mesh names them, reached through the sidecar.
    pub b_mesh: String,
    pub c_mesh: String,
}

/// servicea's clients for the peers it calls over TLS: one each, built
/// once per CA (and, for mTLS, per certificate) and reused; each accepts
/// only its peer's workload certificate (SPIFFE ID in `TRUST_DOMAIN`).
#[derive(Debug)]
pub struct TlsPeers {
    /// serviceb's https listener (scenarios 3, 4, 7, 8).
    pub serviceb: reqwest::Client,
    /// servicec's https listener (scenario 4).
    pub servicec: reqwest::Client,
    /// jwt-factory's https (mTLS) token endpoint (scenario 8's `POST /token`).
    pub factory: reqwest::Client,
}

impl TlsPeers {
    /// Each peer's client, with `tls` pinned to its workload's SPIFFE ID.
    fn build(timeouts: Timeouts, trust_domain: &str, tls: &PeerTls) -> Result<Self, String> {
        let client = |workload: &str| {
            let config = tls
                .config_for(&pki::spiffe_id(trust_domain, workload))
                .map_err(ClientError::from)?;
            outbound::pinned_client(timeouts, config)
        };
        let build = || -> Result<Self, ClientError> {
            Ok(Self {
                serviceb: client(Role::B.name())?,
                servicec: client(Role::C.name())?,
                factory: client(FACTORY_WORKLOAD)?,
            })
        };
        build().map_err(|e| outbound::error_chain(&e))
    }
}

/// [`Args`] as typed values, built once at start.
#[derive(Clone, Debug)]
pub struct Settings {
    pub common: Common,
    pub peers: Peers,
    pub keys: KeyFiles,
    pub ca_cert: PathBuf,
    /// `iss` of self-signed tokens.
    pub issuer: String,
    /// Lifetime of self-signed tokens, seconds.
    pub token_lifetime_secs: u64,
    /// How long a rotated-in scenario-3 key is published before it signs.
    pub publish_ahead: Duration,
    /// Scenario 6: `aud` of servicea's client assertions.
    pub factory_issuer: String,
    /// Scenarios 7-8: servicea's workload certificate and key.
    pub workload_cert: PathBuf,
    pub workload_key: PathBuf,
    /// Scenario 8: the factory's https base URL.
    pub factory_https: String,
    /// Scenario 9: the gateway's base URL.
    pub gateway: String,
    /// Scenario 10: the sidecar's proxy URL, if any.
    pub mesh_proxy: Option<String>,
}

impl Args {
    pub fn settle(self) -> Settings {
        Settings {
            common: self.common.settle(Role::A),
            peers: Peers {
                b_http: base_url(&self.service_b_endpoint),
                b_https: base_url(&self.service_b_endpoint_https),
                c_http: base_url(&self.service_c_endpoint),
                c_https: base_url(&self.service_c_endpoint_https),
                b_mesh: base_url(&self.serviceb_mesh_endpoint),
                c_mesh: base_url(&self.servicec_mesh_endpoint),
            },
            keys: KeyFiles {
                private: self.service_a_private_key_path,
                public: self.service_a_public_key_path,
            },
            ca_cert: self.ca_cert_path,
            issuer: self.issuer,
            token_lifetime_secs: self.token_lifetime_secs,
            publish_ahead: Duration::from_secs(self.scenario3_publish_ahead_secs),
            factory_issuer: self.factory_issuer,
            workload_cert: self.workload_cert_path,
            workload_key: self.workload_key_path,
            factory_https: base_url(&self.jwt_factory_endpoint_https),
            gateway: base_url(&self.gateway_endpoint),
            mesh_proxy: Some(self.mesh_proxy).filter(|p| !p.trim().is_empty()),
        }
    }
}

shared_state! {
    /// What servicea's handlers share.
    State => Inner {
        pub settings: Settings,
        /// The one plain-http client of the process (jwt-factory, scenarios
        /// 1, 2, 5): pooled keep-alive connections, connect and request timeouts.
        pub http: reqwest::Client,
        /// The https clients for scenarios 3-4, one per peer, trusting
        /// `CA_CERT_PATH` and nothing else, each pinned to its peer's SPIFFE
        /// ID. Built when the CA file is first needed and rebuilt only if
        /// that file changes, so `gen-certs` can run after servicea starts.
        pub https: WatchedFile<TlsPeers>,
        /// servicea's scenario-3 signing key, parsed once, reloaded on change.
        pub signing_key: WatchedFile<SigningKey>,
        /// Set while `POST /gen-keys` generates a key to rotate to: a second
        /// call gets a 409 instead of a queue of key generations.
        pub rotating: AtomicBool,
        /// Scenario 6: the factory's token endpoint, and the tokens it gave.
        pub sts: StsClient,
        /// Scenarios 7-8: the mTLS clients, one per peer, presenting
        /// servicea's workload certificate, trusting `CA_CERT_PATH` alone and
        /// pinned as [`Inner::https`]; rebuilt when the certificate file
        /// changes (a re-issued certificate is used at once).
        pub mtls: Arc<WatchedFile<TlsPeers>>,
        /// Scenario 8: the factory's token endpoint over mTLS, and its
        /// certificate-bound tokens.
        pub sts_bound: StsClient,
        /// Scenario 10: plain http into the mesh, through the sidecar
        /// (`MESH_PROXY`). No TLS here: the sidecars do it.
        pub mesh: reqwest::Client,
    }
}

impl State {
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        let timeouts = settings.common.timeouts;
        // A key file of the wrong kind for ALGORITHM is a clear 503, not a
        // signature that fails later.
        let alg = settings.common.algorithm;
        let http = outbound::client(timeouts, None)?;
        let mesh = outbound::proxied_client(timeouts, settings.mesh_proxy.as_deref())?;
        let trust_domain = settings.common.serve.trust_domain.clone();
        let domain = trust_domain.clone();
        let https = WatchedFile::new(
            &settings.ca_cert,
            "CA certificate",
            "Create it with `cargo run --release --bin app -- gen-certs`",
            move |pem| {
                let tls = PeerTls::new(pem.as_bytes()).map_err(|e| e.to_string())?;
                TlsPeers::build(timeouts, &domain, &tls)
            },
        );
        let owner = settings.common.name.clone();
        let signing_key = WatchedFile::new(
            &settings.keys.private,
            "scenario-3 signing key",
            KEY_HINT,
            move |pem| {
                let pair = KeyPair::from_private_pem_for(pem, alg).map_err(|e| e.to_string())?;
                let kid = crate::key_set::kid_for(&owner, pair.public(), alg)?;
                Ok::<_, String>(SigningKey { pair, kid })
            },
        )
        .private_key();
        // The workload certificate file is the one watched: gen-certs
        // writes the key first and the certificate last.
        let (ca, key) = (settings.ca_cert.clone(), settings.workload_key.clone());
        let mtls = Arc::new(WatchedFile::new(
            &settings.workload_cert,
            "workload certificate",
            "Create it with `cargo run --release --bin app -- gen-certs`",
            move |cert_pem| mtls_clients(timeouts, &trust_domain, &ca, cert_pem, &key),
        ));
        // Each token client has its own watched copy of the same key file,
        // so its background refresh task can own it.
        let sts_for = |factory: &str, transport| {
            StsClient::new(
                factory,
                settings.factory_issuer.clone(),
                settings.common.name.clone(),
                alg,
                transport,
                timeouts,
                WatchedFile::new(
                    &settings.keys.private,
                    "scenario-3 signing key",
                    KEY_HINT,
                    move |pem| KeyPair::from_private_pem_for(pem, alg),
                )
                .private_key(),
            )
        };
        let sts = sts_for(&settings.common.factory, Transport::Plain(http.clone()));
        let sts_bound = sts_for(&settings.factory_https, Transport::Mtls(Arc::clone(&mtls)));
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            https,
            signing_key,
            rotating: AtomicBool::new(false),
            sts,
            mtls,
            sts_bound,
            mesh,
        })))
    }

    /// `SERVICE_NAME`.
    pub fn name(&self) -> &str {
        &self.settings.common.name
    }
}

/// The mTLS clients: `cert_pem` with the key at `key` (refused if others
/// may read it), trusting the CA at `ca` alone, each pinned to its peer.
fn mtls_clients(
    timeouts: Timeouts,
    trust_domain: &str,
    ca: &std::path::Path,
    cert_pem: &str,
    key: &std::path::Path,
) -> Result<TlsPeers, String> {
    s2s_auth::files::check_private_key_mode(key)?;
    let read = |p: &std::path::Path| {
        std::fs::read(p).map_err(|e| {
            format!(
                "{}: {e}. Create it with `cargo run --release --bin app -- gen-certs`",
                p.display()
            )
        })
    };
    let (ca_pem, key_pem) = (read(ca)?, read(key)?);
    let tls = PeerTls::new(&ca_pem)
        .and_then(|tls| tls.with_client_auth(cert_pem.as_bytes(), &key_pem))
        .map_err(|e| e.to_string())?;
    TlsPeers::build(timeouts, trust_domain, &tls)
}

/// servicea's routes: one per scenario of the table, `/gen-keys`, `/hello`.
pub fn router(state: State) -> Router {
    let router = scenarios::SCENARIOS
        .iter()
        .fold(Router::new(), |router, s| {
            router.route(
                &s.path(),
                get(move |state, rid, query| scenarios::run(s, state, rid, query)),
            )
        })
        .route("/scenario6/token", get(crate::scenario6::ask));
    // Workshop shortcuts, off with PRODUCTION: anonymous key management
    // and the console (whose pictures are the trace).
    let shortcuts = state.settings.common.shortcuts;
    let router = if shortcuts {
        router
            .route("/gen-keys", post(keygen::route))
            .merge(crate::console::routes())
    } else {
        router.route("/gen-keys", post(keygen::off_in_production))
    };
    let name = state.name().to_owned();
    crate::finish(router.with_state(state), &name, shortcuts)
}

/// Serves servicea on `http` until `shutdown` resolves.
pub async fn run(
    state: State,
    http: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let handle = s2s_web::shutdown::handle_on(shutdown);
    let name = state.name().to_owned();
    let options = state.settings.common.serve.clone();
    tracing::info!("{name} listening on http://{}", http.local_addr()?);
    // A rotation of the scenario-3 key cut short by a stop completes now.
    keygen::resume_rotation(&state);
    s2s_web::serve::serve(http, router(state), None, handle, &options).await?;
    tracing::info!("{name} stopped");
    Ok(())
}
