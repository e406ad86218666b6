//! The https listeners' TLS: one-way (scenarios 3-4) or mutual (scenarios
//! 7-8), with the certificate re-read when its file changes.
//!
//! A listener started with a certificate that is missing or broken stops at
//! once with a message that names the file and `gen-certs`: failing later,
//! at the first handshake, would be far harder to diagnose in a workshop.
//!
//! Once running, the certificate and key are re-read when the certificate
//! file changes ([`WatchedFile`]): a re-issued certificate is used on the
//! next handshake, without a restart. If the new files are broken, the last
//! good pair keeps serving and the problem is logged: a typo never takes
//! TLS down.
//!
//! Client certificates follow Istio's `PeerAuthentication` modes
//! ([`MtlsMode`]): `permissive` asks for one and accepts a handshake
//! without (scenario 3's one-way TLS keeps working); `strict` refuses a
//! handshake without a certificate from the CA. A certificate that is
//! presented is always verified (chain to `CA_CERT_PATH`, dates, client-auth
//! usage): a bad one fails the handshake in both modes. The CA is read once
//! at start.

use std::{
    fmt,
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use anyhow::{Context as _, bail};
use axum_server::tls_rustls::RustlsConfig;
use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _},
    server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier},
    sign::CertifiedKey,
};
use s2s_auth::watched::WatchedFile;

const GEN_CERTS: &str = "run `cargo run --release --bin app -- gen-certs` first";

/// Istio's `PeerAuthentication` modes, for a listener that asks for client
/// certificates.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum MtlsMode {
    /// One-way TLS: no client certificate is asked for.
    Off,
    /// Asks for a client certificate; accepts a handshake without one.
    Permissive,
    /// Refuses a handshake without a client certificate from the CA.
    Strict,
}

impl fmt::Display for MtlsMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Off => "off",
            Self::Permissive => "permissive",
            Self::Strict => "strict",
        })
    }
}

/// An https listener's files and client-certificate mode.
#[derive(Clone, Debug)]
pub struct ServerTls {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA client certificates must chain to (unused when `mode` is off).
    pub client_ca: PathBuf,
    pub mode: MtlsMode,
}

impl ServerTls {
    /// One-way TLS with `cert` and `key`.
    pub fn one_way(cert: &Path, key: &Path) -> Self {
        Self {
            cert: cert.to_path_buf(),
            key: key.to_path_buf(),
            client_ca: PathBuf::new(),
            mode: MtlsMode::Off,
        }
    }
}

/// Loads the certificate chain and key (and, for mTLS, the client CA), and
/// builds the listener's TLS configuration, with ALPN (h2, http/1.1).
pub async fn server_config(tls: &ServerTls) -> anyhow::Result<RustlsConfig> {
    let mut paths = vec![
        (&tls.cert, "TLS certificate"),
        (&tls.key, "TLS private key"),
    ];
    if tls.mode != MtlsMode::Off {
        paths.push((&tls.client_ca, "client CA certificate"));
    }
    for (path, what) in paths {
        if !path.is_file() {
            bail!("{what} {} not found: {GEN_CERTS}", path.display());
        }
    }
    let resolver = ReloadingCert::new(&tls.cert, &tls.key);
    // A first load that fails is a start-up error naming the files.
    // (`Unavailable` already says why: keep its text, not its source twice.)
    resolver.file.get().map_err(|e| anyhow::anyhow!("{e}")).with_context(|| {
        format!(
            "cannot use {} / {} as TLS certificate and key (re-create them with `app gen-certs --force`)",
            tls.cert.display(),
            tls.key.display()
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match tls.mode {
        MtlsMode::Off => builder.with_no_client_auth(),
        mode => {
            let roots = client_roots(&tls.client_ca)?;
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if mode == MtlsMode::Permissive {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            builder.with_client_cert_verifier(
                verifier.build().with_context(|| {
                    format!("client CA {} is not usable", tls.client_ca.display())
                })?,
            )
        }
    };
    let mut config = builder.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(RustlsConfig::from_config(Arc::new(config)))
}

fn client_roots(ca: &Path) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    let certs: Vec<_> = CertificateDer::pem_file_iter(ca)
        .and_then(Iterator::collect)
        .with_context(|| format!("client CA {} cannot be read: {GEN_CERTS}", ca.display()))?;
    if certs.is_empty() {
        bail!(
            "client CA {} holds no certificate: {GEN_CERTS}",
            ca.display()
        );
    }
    for cert in certs {
        roots
            .add(cert)
            .with_context(|| format!("client CA {} is not a usable CA", ca.display()))?;
    }
    Ok(roots)
}

/// The listener's certificate, re-read when its file changes; the last
/// good one while the files are broken.
struct ReloadingCert {
    file: WatchedFile<CertifiedKey>,
    last_good: RwLock<Option<Arc<CertifiedKey>>>,
}

impl fmt::Debug for ReloadingCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReloadingCert")
            .field("cert", &self.file.path())
            .finish_non_exhaustive()
    }
}

impl ReloadingCert {
    fn new(cert: &Path, key: &Path) -> Self {
        let key = key.to_path_buf();
        // The certificate file is the one watched: `gen-certs` writes the
        // key first and the certificate last, so a change of the
        // certificate means the pair is complete.
        let file = WatchedFile::new(
            cert,
            "TLS certificate",
            "Create it with `cargo run --release --bin app -- gen-certs`",
            move |pem| certified_key(pem, &key),
        );
        Self {
            file,
            last_good: RwLock::new(None),
        }
    }
}

fn certified_key(cert_pem: &str, key: &Path) -> Result<CertifiedKey, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the file".to_owned());
    }
    // A TLS key others can read is refused, as ssh refuses such keys.
    s2s_auth::files::check_private_key_mode(key)?;
    let der = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| format!("TLS private key {}: {e}", key.display()))?;
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    CertifiedKey::from_der(chain, der, &provider)
        .map_err(|e| format!("certificate and key {} do not match: {e}", key.display()))
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        match self.file.get() {
            Ok(key) => {
                let mut last = self.last_good.write().unwrap_or_else(|p| p.into_inner());
                if !last.as_ref().is_some_and(|l| Arc::ptr_eq(l, &key)) {
                    if last.is_some() {
                        tracing::info!(
                            "TLS certificate {} changed: new handshakes use the new one",
                            self.file.path().display()
                        );
                    }
                    *last = Some(Arc::clone(&key));
                }
                Some(key)
            }
            // `WatchedFile` has logged why, once per change of the file.
            Err(_) => self
                .last_good
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
