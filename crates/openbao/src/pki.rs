//! The PKI engine: workload certificates from OpenBao instead of the
//! local CA of `app gen-certs` (issue 24, item 3). The CA's key is made
//! inside OpenBao and never leaves it; a workload's certificate is short
//! lived (an hour by default) and carries what the local CA's does: one
//! URI SAN, its SPIFFE ID, its name as a DNS name, and the localhost names.
//! Whoever renews them (`cargo xtask openbao certs --renew`) logs in as
//! `cert-agent`, whose policy allows issuing under the one role, nothing
//! else.

use reqwest::Method;
use serde_json::{Value, json};

use crate::{OpenBao, OpenBaoError};

/// Where the PKI engine is mounted, and its role for workloads.
pub const MOUNT: &str = "pki";
pub const ROLE: &str = "workload";

/// One issued certificate: PEM certificate, PKCS#8 PEM key, the CA.
#[derive(Clone)]
pub struct Issued {
    pub certificate: String,
    pub private_key: String,
    pub issuing_ca: String,
    /// Unix seconds.
    pub expiration: i64,
}

impl std::fmt::Debug for Issued {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The private key never goes into a log line.
        f.debug_struct("Issued")
            .field("expiration", &self.expiration)
            .finish_non_exhaustive()
    }
}

/// The cert agent's policy: issue under [`ROLE`], read the CA.
pub fn agent_policy() -> String {
    format!(
        r#"# cert-agent: issue workload certificates, nothing else.
path "{MOUNT}/issue/{ROLE}" {{
  capabilities = ["update"]
}}
"#
    )
}

/// Enables the PKI engine, makes its root CA (key inside OpenBao) and the
/// role for `workloads` in `trust_domain`, unless there; the CA's PEM.
pub async fn setup(
    root: &OpenBao,
    trust_domain: &str,
    workloads: &[&str],
    max_ttl: &str,
) -> Result<String, OpenBaoError> {
    let mounts = root
        .call(Method::GET, "sys/mounts", None)
        .await?
        .unwrap_or_default();
    if mounts.pointer(&format!("/data/{MOUNT}~1")).is_none() {
        let body = json!({ "type": "pki", "config": { "max_lease_ttl": "87600h" } });
        root.call(Method::POST, &format!("sys/mounts/{MOUNT}"), Some(&body))
            .await?;
    }
    let ca = match root
        .call(Method::GET, &format!("{MOUNT}/cert/ca"), None)
        .await
    {
        Ok(Some(a)) => a
            .pointer("/data/certificate")
            .and_then(Value::as_str)
            .filter(|c| !c.is_empty())
            .map(str::to_owned),
        _ => None,
    };
    let ca = match ca {
        Some(ca) => ca,
        None => {
            let body = json!({
                "common_name": "workshop mesh CA (OpenBao)",
                "ttl": "87600h",
                "key_type": "ec",
                "key_bits": 256,
            });
            let answer = root
                .call(
                    Method::POST,
                    &format!("{MOUNT}/root/generate/internal"),
                    Some(&body),
                )
                .await?;
            answer
                .as_ref()
                .and_then(|a| a.pointer("/data/certificate"))
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| root.bad("pki/root/generate/internal", "no certificate"))?
        }
    };
    let mut domains: Vec<&str> = workloads.to_vec();
    domains.push("localhost");
    let body = json!({
        "allowed_domains": domains,
        "allow_bare_domains": true,
        "allow_subdomains": false,
        "allow_glob_domains": false,
        "allow_localhost": true,
        "allow_ip_sans": true,
        "allowed_uri_sans": [format!("spiffe://{trust_domain}/ns/default/sa/*")],
        "server_flag": true,
        "client_flag": true,
        "key_type": "ec",
        "key_bits": 256,
        "ttl": "1h",
        "max_ttl": max_ttl,
        "no_store": false,
    });
    root.call(Method::POST, &format!("{MOUNT}/roles/{ROLE}"), Some(&body))
        .await?;
    Ok(ca)
}

/// A certificate for `name` valid for `ttl` (e.g. `1h`): `uri` as its one
/// URI SAN (none for the plain `localhost` server certificate), its name
/// and the localhost names.
pub async fn issue(
    bao: &OpenBao,
    name: &str,
    uri: Option<&str>,
    ttl: &str,
) -> Result<Issued, OpenBaoError> {
    let mut body = json!({
        "common_name": name,
        "alt_names": "localhost",
        "ip_sans": "127.0.0.1,::1",
        "ttl": ttl,
        "private_key_format": "pkcs8",
    });
    if let Some(uri) = uri {
        body["uri_sans"] = uri.into();
    }
    let path = format!("{MOUNT}/issue/{ROLE}");
    let answer = bao
        .call(Method::POST, &path, Some(&body))
        .await?
        .ok_or_else(|| bao.bad(&path, "no body"))?;
    let field = |f: &str| {
        answer
            .pointer(&format!("/data/{f}"))
            .and_then(Value::as_str)
            .map(str::to_owned)
            .ok_or_else(|| bao.bad(&path, &format!("no {f}")))
    };
    Ok(Issued {
        certificate: field("certificate")?,
        private_key: field("private_key")?,
        issuing_ca: field("issuing_ca")?,
        expiration: answer
            .pointer("/data/expiration")
            .and_then(Value::as_i64)
            .ok_or_else(|| bao.bad(&path, "no expiration"))?,
    })
}
