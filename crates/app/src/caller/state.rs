//! What servicea's handlers share ([`State`]): its settings, its clients
//! (plain, pinned TLS, mTLS, through the sidecar), its signing key and its
//! two token clients.

use std::sync::{Arc, atomic::AtomicBool};

use s2s_auth::{KeyPair, watched::WatchedFile};
use s2s_web::{
    outbound::{self, ClientError, Timeouts},
    peer_pin::PeerTls,
};

use super::{
    args::Settings,
    self_key::{SelfKey, SelfKeyBackend, SigningKey, Transit},
    sts_client::{StsClient, Transport},
    tls_peers::TlsPeers,
};

shared_state! {
    /// What servicea's handlers share.
    State => Inner {
        pub(crate) settings: Settings,
        /// The one plain-http client of the process (jwt-factory, scenarios
        /// 1, 2, 5): pooled keep-alive connections, connect and request timeouts.
        pub(crate) http: reqwest::Client,
        /// The https clients for scenarios 3-4, one per peer, trusting
        /// `CA_CERT_PATH` and nothing else, each pinned to its peer's SPIFFE
        /// ID. Built when the CA file is first needed and rebuilt only if
        /// that file changes, so `gen-certs` can run after servicea starts.
        pub(crate) https: WatchedFile<TlsPeers>,
        /// servicea's own key (scenario 3's, its assertions'): the file,
        /// parsed once and reloaded on change, or its Transit key in
        /// OpenBao (`SELF_KEY_BACKEND`).
        pub(crate) self_key: SelfKey,
        /// Set while `POST /gen-keys` generates a key to rotate to: a second
        /// call gets a 409 instead of a queue of key generations.
        pub(crate) rotating: AtomicBool,
        /// Scenario 6: the factory's token endpoint, and the tokens it gave.
        pub(crate) sts: StsClient,
        /// Scenarios 7-8: the mTLS clients, one per peer, presenting
        /// servicea's workload certificate, trusting `CA_CERT_PATH` alone and
        /// pinned as [`Inner::https`]; rebuilt when the certificate file
        /// changes (a re-issued certificate is used at once).
        pub(crate) mtls: Arc<WatchedFile<TlsPeers>>,
        /// Scenario 8: the factory's token endpoint over mTLS, and its
        /// certificate-bound tokens.
        pub(crate) sts_bound: StsClient,
        /// Scenario 10: plain http into the mesh, through the sidecar
        /// (`MESH_PROXY`). No TLS here: the sidecars do it.
        pub(crate) mesh: reqwest::Client,
    }
}

impl State {
    /// The state for `settings`; with `SELF_KEY_BACKEND=openbao`, after
    /// logging in to OpenBao and reading servicea's Transit key (an
    /// unreachable OpenBao, or no key, is an error naming it).
    pub async fn open(settings: Settings) -> anyhow::Result<Self> {
        let transit = match settings.self_key_backend {
            SelfKeyBackend::Files => None,
            SelfKeyBackend::Openbao => Some(Arc::new(
                Transit::open(
                    &settings.openbao,
                    &settings.common.name,
                    settings.common.algorithm,
                    &settings.keys.public,
                )
                .await?,
            )),
        };
        Ok(Self::with_key(settings, transit)?)
    }

    /// The state for `settings` with servicea's key in its file.
    pub fn new(settings: Settings) -> Result<Self, ClientError> {
        Self::with_key(settings, None)
    }

    fn with_key(settings: Settings, transit: Option<Arc<Transit>>) -> Result<Self, ClientError> {
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
        let self_key = match transit {
            Some(transit) => SelfKey::Transit(transit),
            None => SelfKey::File(Arc::new(
                WatchedFile::new(
                    &settings.keys.private,
                    "scenario-3 signing key",
                    crate::defaults::gen_keys_hint(),
                    move |pem| {
                        let pair =
                            KeyPair::from_private_pem_for(pem, alg).map_err(|e| e.to_string())?;
                        let kid = crate::key_set::kid_for(&owner, pair.public(), alg)?;
                        Ok::<_, String>(SigningKey { pair, kid })
                    },
                )
                .private_key(),
            )),
        };
        // The workload certificate file is the one watched: gen-certs
        // writes the key first and the certificate last.
        let (ca, key) = (settings.ca_cert.clone(), settings.workload_key.clone());
        let mtls = Arc::new(WatchedFile::new(
            &settings.workload_cert,
            "workload certificate",
            "Create it with `cargo run --release --bin app -- gen-certs`",
            move |cert_pem| mtls_clients(timeouts, &trust_domain, &ca, cert_pem, &key),
        ));
        // The token clients sign their assertions with the same key.
        let sts_for = |factory: &str, transport| {
            StsClient::new(
                factory,
                settings.factory_issuer.clone(),
                settings.common.name.clone(),
                alg,
                transport,
                timeouts,
                self_key.clone(),
            )
        };
        let sts = sts_for(&settings.common.factory, Transport::Plain(http.clone()));
        let sts_bound = sts_for(&settings.factory_https, Transport::Mtls(Arc::clone(&mtls)));
        Ok(Self(Arc::new(Inner {
            settings,
            http,
            https,
            self_key,
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
