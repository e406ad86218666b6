//! The local certificate authority that replaces `mkcert`.
//!
//! The original demo turned TLS verification off in the client. We make a CA
//! of our own instead, sign a `localhost` certificate with it, and have the
//! client trust that CA alone: the TLS hop is verified like a real one, and
//! the lesson is the right one. Private keys are written with mode 0600.
//!
//! It also issues one *workload certificate* per workload ([`WORKLOADS`]):
//! exactly one URI SAN, `spiffe://<trust domain>/ns/default/sa/<name>`,
//! plus the `localhost` names, `cA=false`, usable for both server and client
//! auth. That is what Istio's mesh CA gives each sidecar; scenarios 7-8
//! authenticate and authorize by it. The CA carries no name constraints:
//! rustls-webpki fails closed on URI name constraints.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SanType, string::Ia5String,
};
use time::{Duration, OffsetDateTime};

use rustls::{
    RootCertStore,
    client::{WebPkiServerVerifier, danger::ServerCertVerifier as _},
    pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime, pem::PemObject as _},
};
use s2s_auth::files::{PRIVATE, PUBLIC, write_atomic};

/// The names the server certificate is valid for.
pub const SERVER_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

/// The workloads that get a certificate of their own. `admin` is the
/// operator: with PRODUCTION, only its certificate may manage the
/// factory's keys.
pub const WORKLOADS: [&str; 6] = [
    "servicea",
    "serviceb",
    "servicec",
    "jwt-factory",
    "gateway",
    "admin",
];

/// A workload's SPIFFE ID, in Istio's form.
pub fn spiffe_id(trust_domain: &str, workload: &str) -> String {
    format!("spiffe://{trust_domain}/ns/default/sa/{workload}")
}

/// The four files `gen-certs` writes, by their conventional names.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
}

/// The private key gen-certs writes beside the certificate `cert`:
/// `NAME.pem` has its key in `NAME-key.pem`, in the same folder. So a
/// setting names the certificate, and the key follows.
pub fn key_beside(cert: &Path) -> PathBuf {
    let stem = cert.file_stem().unwrap_or_default().to_string_lossy();
    cert.with_file_name(format!("{stem}-key.pem"))
}

impl CertFiles {
    /// `ca.pem`, `ca-key.pem`, `localhost.pem`, `localhost-key.pem` in `dir`.
    pub fn in_dir(dir: &Path) -> Self {
        Self {
            ca_cert: dir.join("ca.pem"),
            ca_key: dir.join("ca-key.pem"),
            server_cert: dir.join("localhost.pem"),
            server_key: dir.join("localhost-key.pem"),
        }
    }

    /// A workload's certificate and key: `<name>.pem`, `<name>-key.pem`.
    pub fn workload(&self, name: &str) -> (PathBuf, PathBuf) {
        let dir = self.ca_cert.parent().unwrap_or(Path::new("."));
        let cert = dir.join(format!("{name}.pem"));
        let key = key_beside(&cert);
        (cert, key)
    }

    fn all(&self) -> [&Path; 4] {
        [
            &self.ca_cert,
            &self.ca_key,
            &self.server_cert,
            &self.server_key,
        ]
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error(
        "{path} exists, but the certificates in its folder are not usable ({reason}); \
         pass --force to replace them"
    )]
    Unusable { path: PathBuf, reason: String },
    #[error("could not create the certificates: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("could not write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
}

/// What the certificates say: how long they are valid, and the trust
/// domain of the workload identities.
#[derive(Clone, Debug)]
pub struct Profile {
    pub validity: Validity,
    pub trust_domain: String,
}

impl Default for Profile {
    fn default() -> Self {
        Self {
            validity: Validity::default(),
            trust_domain: crate::identity::DEFAULT_TRUST_DOMAIN.to_owned(),
        }
    }
}

/// How long the generated certificates are valid.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

impl Default for Validity {
    /// From a day ago (tolerates clock skew) to a year ahead.
    fn default() -> Self {
        let now = OffsetDateTime::now_utc();
        Self {
            not_before: now - Duration::days(1),
            not_after: now + Duration::days(365),
        }
    }
}

/// What [`generate`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Generated {
    /// A new CA and every certificate were written.
    Created,
    /// Valid certificates were already there and were kept.
    KeptValid,
    /// The CA was kept; these workloads' certificates were missing and
    /// were issued under it (an older checkout's `certs/`).
    Added(Vec<&'static str>),
}

/// Creates a CA, a server certificate for [`SERVER_NAMES`] and a workload
/// certificate for each of [`WORKLOADS`], all signed by the CA.
///
/// Idempotent: if the CA and server files exist and the certificate is
/// valid now, for `localhost`, under that CA, they are kept; a missing
/// workload certificate is then issued under the kept CA
/// ([`Generated::Added`]), a valid one kept ([`Generated::KeptValid`]).
/// Files that exist but are not usable are an error that says why, and are
/// replaced only with `force` (a running service may be using them).
pub fn generate(files: &CertFiles, force: bool, profile: &Profile) -> Result<Generated, CertError> {
    let validity = profile.validity;
    if !force && let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
        check(files).map_err(|reason| CertError::Unusable {
            path: existing.to_path_buf(),
            reason,
        })?;
        let mut added = Vec::new();
        for name in WORKLOADS {
            let (cert, key) = files.workload(name);
            match (cert.exists(), key.exists()) {
                (false, false) => added.push(name),
                _ => check_workload(files, name, &profile.trust_domain).map_err(|reason| {
                    CertError::Unusable {
                        path: cert.clone(),
                        reason,
                    }
                })?,
            }
        }
        if added.is_empty() {
            return Ok(Generated::KeptValid);
        }
        let ca_key_pem =
            std::fs::read_to_string(&files.ca_key).map_err(|source| CertError::Write {
                path: files.ca_key.clone(),
                source,
            })?;
        let ca_pem =
            std::fs::read_to_string(&files.ca_cert).map_err(|source| CertError::Write {
                path: files.ca_cert.clone(),
                source,
            })?;
        let ca_key = KeyPair::from_pem(&ca_key_pem)?;
        let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)?;
        for name in &added {
            issue_workload(files, name, &issuer, profile)?;
        }
        return Ok(Generated::Added(added));
    }

    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    // A name unique to this run: a certificate from another run's CA is
    // then reported as "unknown issuer", not as a bad signature.
    let run_id = uuid::Uuid::new_v4().simple().to_string();
    ca.distinguished_name.push(
        DnType::CommonName,
        format!("s2s-jwt workshop local CA {}", &run_id[..8]),
    );
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    ca.not_before = validity.not_before;
    ca.not_after = validity.not_after;
    let ca_key = KeyPair::generate()?;
    let ca_cert = ca.self_signed(&ca_key)?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut leaf = CertificateParams::new(SERVER_NAMES.map(String::from).to_vec())?;
    leaf.distinguished_name
        .push(DnType::CommonName, "localhost");
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    leaf.not_before = validity.not_before;
    leaf.not_after = validity.not_after;
    let leaf_key = KeyPair::generate()?;
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer)?;

    write(&files.ca_key, &ca_key.serialize_pem(), PRIVATE)?;
    write(&files.server_key, &leaf_key.serialize_pem(), PRIVATE)?;
    write(&files.server_cert, &leaf_cert.pem(), PUBLIC)?;
    for name in WORKLOADS {
        issue_workload(files, name, &issuer, profile)?;
    }
    // The CA last: its presence marks a complete set.
    write(&files.ca_cert, &ca_cert.pem(), PUBLIC)?;
    Ok(Generated::Created)
}

fn write(path: &Path, pem: &str, mode: u32) -> Result<(), CertError> {
    write_atomic(path, pem.as_bytes(), mode).map_err(|source| CertError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Issues `name`'s workload certificate under `issuer`: one URI SAN (its
/// SPIFFE ID), its name as a DNS name (so a proxy can check that it
/// reached *this* workload: nginx's `proxy_ssl_name`), and the localhost
/// names; `cA=false`, server and client auth.
/// The key is written before the certificate: services watch the
/// certificate file, so when it changes the pair is complete.
pub fn issue_workload(
    files: &CertFiles,
    name: &str,
    issuer: &Issuer<'_, impl rcgen::SigningKey>,
    profile: &Profile,
) -> Result<(), CertError> {
    let mut sans = vec![
        SanType::URI(Ia5String::try_from(spiffe_id(&profile.trust_domain, name))?),
        SanType::DnsName(Ia5String::try_from(name)?),
    ];
    for n in SERVER_NAMES {
        sans.push(match n.parse::<std::net::IpAddr>() {
            Ok(ip) => SanType::IpAddress(ip),
            Err(_) => SanType::DnsName(Ia5String::try_from(n)?),
        });
    }
    let mut leaf = CertificateParams::default();
    leaf.subject_alt_names = sans;
    leaf.distinguished_name.push(DnType::CommonName, name);
    leaf.is_ca = IsCa::ExplicitNoCa;
    leaf.use_authority_key_identifier_extension = true;
    leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    leaf.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    leaf.not_before = profile.validity.not_before;
    leaf.not_after = profile.validity.not_after;
    let key = KeyPair::generate()?;
    let cert = leaf.signed_by(&key, issuer)?;
    let (cert_path, key_path) = files.workload(name);
    write(&key_path, &key.serialize_pem(), PRIVATE)?;
    write(&cert_path, &cert.pem(), PUBLIC)
}

/// Whether `name`'s workload certificate is valid now under the CA, for
/// `localhost` and `name`, with its key, naming exactly its SPIFFE ID; why
/// not.
pub fn check_workload(files: &CertFiles, name: &str, trust_domain: &str) -> Result<(), String> {
    let (cert, key) = files.workload(name);
    verify_leaf(&files.ca_cert, &cert, &key, &["localhost", name])?;
    let der =
        CertificateDer::from_pem_file(&cert).map_err(|e| format!("{}: {e}", cert.display()))?;
    let expected = spiffe_id(trust_domain, name);
    match crate::identity::identify(&der, trust_domain) {
        crate::identity::ClientCert::Verified(id) if id.spiffe_id == expected => Ok(()),
        crate::identity::ClientCert::Verified(id) => Err(format!(
            "{} names {}, not {expected}",
            cert.display(),
            id.spiffe_id
        )),
        crate::identity::ClientCert::Unusable(why) => Err(format!("{}: {why}", cert.display())),
        crate::identity::ClientCert::None => Err(format!("{}: no certificate", cert.display())),
    }
}

/// Whether the four files are there and the server certificate is valid
/// now, for `localhost`, under the CA; the reason if not.
pub fn check(files: &CertFiles) -> Result<(), String> {
    PrivateKeyDer::from_pem_file(&files.ca_key)
        .map_err(|e| format!("{}: {e}", files.ca_key.display()))?;
    verify_leaf(
        &files.ca_cert,
        &files.server_cert,
        &files.server_key,
        &["localhost"],
    )
}

/// `leaf` (with its `key`) is valid now, for each of `names`, under `ca`.
fn verify_leaf(ca: &Path, leaf: &Path, key: &Path, names: &[&str]) -> Result<(), String> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let ca_der = CertificateDer::from_pem_file(ca).map_err(|e| read_err(ca, &e))?;
    let leaf_der = CertificateDer::from_pem_file(leaf).map_err(|e| read_err(leaf, &e))?;
    PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, &e))?;
    let mut roots = RootCertStore::empty();
    roots.add(ca_der).map_err(|e| read_err(ca, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    for name in names {
        let name = ServerName::try_from(*name).map_err(|e| e.to_string())?;
        verifier
            .verify_server_cert(&leaf_der, &[], &name, &[], UnixTime::now())
            .map_err(|e| format!("{}: {e}", leaf.display()))?;
    }
    Ok(())
}
