//! The local certificate authority that replaces `mkcert`.
//!
//! The original demo turned TLS verification off in the client. We make a CA
//! of our own instead, sign a `localhost` certificate with it, and have the
//! client trust that CA alone: the TLS hop is verified like a real one, and
//! the lesson is the right one. Private keys are written with mode 0600.

use std::{
    io,
    path::{Path, PathBuf},
    sync::Arc,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
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

/// The four files `gen-certs` writes, by their conventional names.
#[derive(Clone, Debug)]
pub struct CertFiles {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
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
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Generated {
    /// New files were written.
    Created,
    /// Valid certificates were already there and were kept.
    KeptValid,
}

/// Creates a CA and a server certificate for [`SERVER_NAMES`] signed by it.
///
/// Idempotent: if all four files exist and the certificate is valid now,
/// for `localhost`, under that CA, they are kept ([`Generated::KeptValid`]).
/// Files that exist but are not usable are an error that says why, and are
/// replaced only with `force` (a running service may be using them).
pub fn generate(
    files: &CertFiles,
    force: bool,
    validity: Validity,
) -> Result<Generated, CertError> {
    if !force && let Some(existing) = files.all().into_iter().find(|p| p.exists()) {
        return match check(files) {
            Ok(()) => Ok(Generated::KeptValid),
            Err(reason) => Err(CertError::Unusable {
                path: existing.to_path_buf(),
                reason,
            }),
        };
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

    let write = |path: &Path, pem: String, mode| {
        write_atomic(path, pem.as_bytes(), mode).map_err(|source| CertError::Write {
            path: path.to_path_buf(),
            source,
        })
    };
    write(&files.ca_key, ca_key.serialize_pem(), PRIVATE)?;
    write(&files.server_key, leaf_key.serialize_pem(), PRIVATE)?;
    write(&files.server_cert, leaf_cert.pem(), PUBLIC)?;
    write(&files.ca_cert, ca_cert.pem(), PUBLIC)?;
    Ok(Generated::Created)
}

/// Whether the four files are there and the server certificate is valid
/// now, for `localhost`, under the CA; the reason if not.
pub fn check(files: &CertFiles) -> Result<(), String> {
    let read_err = |path: &Path, e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let ca =
        CertificateDer::from_pem_file(&files.ca_cert).map_err(|e| read_err(&files.ca_cert, &e))?;
    let leaf = CertificateDer::from_pem_file(&files.server_cert)
        .map_err(|e| read_err(&files.server_cert, &e))?;
    for key in [&files.ca_key, &files.server_key] {
        PrivateKeyDer::from_pem_file(key).map_err(|e| read_err(key, &e))?;
    }
    let mut roots = RootCertStore::empty();
    roots.add(ca).map_err(|e| read_err(&files.ca_cert, &e))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .map_err(|e| e.to_string())?;
    let name = ServerName::try_from("localhost").map_err(|e| e.to_string())?;
    verifier
        .verify_server_cert(&leaf, &[], &name, &[], UnixTime::now())
        .map_err(|e| format!("{}: {e}", files.server_cert.display()))?;
    Ok(())
}
