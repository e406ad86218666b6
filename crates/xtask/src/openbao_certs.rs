//! `cargo xtask openbao certs`: the workload certificates from OpenBao's
//! PKI engine instead of `app gen-certs`'s local CA (issue 24, item 3), in
//! the same layout (`ca.pem`, `localhost.pem`, `NAME.pem` with
//! `NAME-key.pem`), so the services read them as they read gen-certs'.
//! There is no `ca-key.pem`: the CA's key never leaves OpenBao.
//!
//! It logs in as `cert-agent` (a policy that allows issuing under the
//! workload role, nothing else). Each certificate lives `--ttl` (1 h); with
//! `--renew` it stays up and issues them all again at two thirds of their
//! lifetime, before they expire. Each key is written before its
//! certificate, atomically, 0600: the services watch the certificate file,
//! so when it changes the pair is complete, and they pick it up without a
//! restart.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use openbao::{OpenBao, pki};
use s2s_auth::files::{PRIVATE, PUBLIC, write_atomic};
use s2s_web::pki::{CertFiles, WORKLOADS, spiffe_id};

use crate::{paths, say};

/// Issues the CA file, the `localhost` certificate and every workload's
/// into `dir`, each valid for `ttl`; the earliest expiry (Unix seconds).
pub async fn issue_all(bao: &OpenBao, dir: &Path, ttl: &str, trust_domain: &str) -> Result<i64> {
    std::fs::create_dir_all(dir)?;
    let files = CertFiles::in_dir(dir);
    let mut earliest = i64::MAX;
    let mut ca = None;
    for name in WORKLOADS {
        let issued = pki::issue(bao, name, Some(&spiffe_id(trust_domain, name)), ttl).await?;
        let (cert, key) = files.workload(name);
        write_pair(&cert, &key, &issued)?;
        earliest = earliest.min(issued.expiration);
        ca = Some(issued.issuing_ca);
    }
    let issued = pki::issue(bao, "localhost", None, ttl).await?;
    write_pair(&files.server_cert, &files.server_key, &issued)?;
    earliest = earliest.min(issued.expiration);
    let ca = ca.unwrap_or(issued.issuing_ca);
    write_atomic(&files.ca_cert, ca.as_bytes(), PUBLIC)?;
    Ok(earliest)
}

fn write_pair(cert: &Path, key: &Path, issued: &pki::Issued) -> Result<()> {
    write_atomic(key, issued.private_key.as_bytes(), PRIVATE)
        .with_context(|| format!("cannot write {}", key.display()))?;
    let chain = format!("{}\n", issued.certificate.trim_end());
    write_atomic(cert, chain.as_bytes(), PUBLIC)
        .with_context(|| format!("cannot write {}", cert.display()))
}

/// `cargo xtask openbao certs [--dir DIR] [--ttl TTL] [--renew]`.
pub async fn run(dir: Option<PathBuf>, ttl: &str, renew: bool) -> Result<()> {
    let dir = dir.unwrap_or_else(|| paths::target().join("openbao/certs"));
    let bao = crate::openbao::login("cert-agent").await?;
    loop {
        let expires = issue_all(&bao, &dir, ttl, topology::TRUST_DOMAIN).await?;
        let now = s2s_auth::now_unix();
        say::step(&format!(
            "issued by OpenBao's PKI engine into {}: ca.pem, localhost.pem and {} workload certificates (one SPIFFE URI SAN each), valid {ttl}; the CA's key stays in OpenBao",
            paths::shown(&dir),
            WORKLOADS.len()
        ));
        if !renew {
            return Ok(());
        }
        // At two thirds of the lifetime: well before they expire.
        let wait = (expires - now).max(3) * 2 / 3;
        println!("renewing in {wait} s (Ctrl-C stops)");
        tokio::time::sleep(std::time::Duration::from_secs(
            u64::try_from(wait).unwrap_or(1),
        ))
        .await;
    }
}
