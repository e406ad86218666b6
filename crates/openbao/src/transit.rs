//! Transit: keys that never leave OpenBao. The factory asks for a key of
//! its algorithm's type, rotates it (each rotation is a new *version*),
//! reads the public key of every version, and has OpenBao sign JWS input
//! with one named version (`marshaling_algorithm = jws`: the signature
//! comes back in JWS form, ECDSA as `r || s`).

use std::collections::BTreeMap;

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use reqwest::Method;
use s2s_auth::{KeyKind, SigningAlgorithm};
use serde_json::{Value, json};

use crate::{OpenBao, OpenBaoError};

/// A Transit key as OpenBao describes it: the public key (PEM) of each
/// version, and the newest version.
#[derive(Debug, Clone)]
pub struct TransitKey {
    /// Its type (`rsa-2048`, `ecdsa-p256`, ...).
    pub kind: String,
    pub latest: u32,
    /// Version → public key, PEM (OpenBao gives Ed25519 keys as raw
    /// base64: they are wrapped in a `PUBLIC KEY` PEM here).
    pub public: BTreeMap<u32, String>,
}

/// The Transit key type for `alg`.
pub fn key_type(alg: SigningAlgorithm) -> &'static str {
    match alg.key_kind() {
        KeyKind::Rsa => "rsa-2048",
        KeyKind::EcP256 => "ecdsa-p256",
        KeyKind::EcP384 => "ecdsa-p384",
        KeyKind::Ed25519 => "ed25519",
    }
}

/// The sign endpoint's parameters for `alg`: hash and padding.
fn sign_params(alg: SigningAlgorithm) -> Value {
    let name = alg.name();
    let hash = match &name[2..] {
        "384" => "sha2-384",
        "512" => "sha2-512",
        _ => "sha2-256",
    };
    match alg.key_kind() {
        KeyKind::Rsa if name.starts_with("PS") => json!({
            "hash_algorithm": hash,
            "signature_algorithm": "pss",
            // RFC 7518 section 3.5: the salt is as long as the hash.
            "salt_length": "hash",
        }),
        KeyKind::Rsa => json!({ "hash_algorithm": hash, "signature_algorithm": "pkcs1v15" }),
        KeyKind::EcP256 | KeyKind::EcP384 => json!({ "hash_algorithm": hash }),
        KeyKind::Ed25519 => json!({}),
    }
}

impl OpenBao {
    /// The key `name` under `mount`, or `None` if there is none.
    pub async fn transit_key(
        &self,
        mount: &str,
        name: &str,
    ) -> Result<Option<TransitKey>, OpenBaoError> {
        let path = format!("{mount}/keys/{name}");
        let answer = match self.call(Method::GET, &path, None).await {
            Ok(Some(answer)) => answer,
            Ok(None) | Err(OpenBaoError::Refused { status: 404, .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let data = answer
            .get("data")
            .ok_or_else(|| self.bad(&path, "no data"))?;
        let latest = data
            .get("latest_version")
            .and_then(Value::as_u64)
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| self.bad(&path, "no latest_version"))?;
        let kind = data
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let ed25519 = kind == "ed25519";
        let mut public = BTreeMap::new();
        for (version, key) in data
            .get("keys")
            .and_then(Value::as_object)
            .ok_or_else(|| self.bad(&path, "no keys"))?
        {
            let version: u32 = version
                .parse()
                .map_err(|_| self.bad(&path, "a key version is not a number"))?;
            let Some(pem) = key.get("public_key").and_then(Value::as_str) else {
                return Err(self.bad(&path, "a version has no public_key"));
            };
            let pem = if ed25519 {
                ed25519_pem(pem).ok_or_else(|| self.bad(&path, "an Ed25519 key is not 32 bytes"))?
            } else {
                pem.to_owned()
            };
            public.insert(version, pem);
        }
        Ok(Some(TransitKey {
            kind,
            latest,
            public,
        }))
    }

    /// Creates the key `name` of `alg`'s type (not exportable: OpenBao's
    /// default, and the policy allows no other).
    pub async fn create_transit_key(
        &self,
        mount: &str,
        name: &str,
        alg: SigningAlgorithm,
    ) -> Result<(), OpenBaoError> {
        let path = format!("{mount}/keys/{name}");
        self.call(Method::POST, &path, Some(&json!({ "type": key_type(alg) })))
            .await
            .map(drop)
    }

    /// A new version of `name`; returns the key as it is now.
    pub async fn rotate_transit_key(
        &self,
        mount: &str,
        name: &str,
    ) -> Result<TransitKey, OpenBaoError> {
        let path = format!("{mount}/keys/{name}/rotate");
        self.call(Method::POST, &path, Some(&json!({}))).await?;
        self.transit_key(mount, name)
            .await?
            .ok_or_else(|| self.bad(&path, "the key is gone after its rotation"))
    }

    /// OpenBao's signature of `input` with version `version` of `name`, as
    /// JWS wants it (ECDSA still to be made low-s by the caller).
    pub async fn transit_sign(
        &self,
        mount: &str,
        name: &str,
        version: u32,
        alg: SigningAlgorithm,
        input: &[u8],
    ) -> Result<Vec<u8>, OpenBaoError> {
        let path = format!("{mount}/sign/{name}");
        let mut body = sign_params(alg);
        body["input"] = STANDARD.encode(input).into();
        body["key_version"] = version.into();
        body["marshaling_algorithm"] = "jws".into();
        let answer = self
            .call(Method::POST, &path, Some(&body))
            .await?
            .ok_or_else(|| self.bad(&path, "no body"))?;
        let signature = answer
            .pointer("/data/signature")
            .and_then(Value::as_str)
            .ok_or_else(|| self.bad(&path, "no data.signature"))?;
        // "vault:v3:<signature>"
        let mut parts = signature.splitn(3, ':');
        let (Some(_), Some(signed_with), Some(encoded)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(self.bad(&path, "the signature is not vault:vN:..."));
        };
        if signed_with != format!("v{version}") {
            return Err(self.bad(
                &path,
                &format!("asked for version {version}, signed with {signed_with}"),
            ));
        }
        URL_SAFE_NO_PAD
            .decode(encoded)
            .or_else(|_| STANDARD.decode(encoded))
            .map_err(|_| self.bad(&path, "the signature is not base64"))
    }
}

/// An Ed25519 public key (raw, base64) as a SubjectPublicKeyInfo PEM.
fn ed25519_pem(raw_base64: &str) -> Option<String> {
    let raw = STANDARD.decode(raw_base64).ok()?;
    if raw.len() != 32 {
        return None;
    }
    // SEQUENCE { SEQUENCE { OID 1.3.101.112 } BIT STRING (0 unused bits) }
    let mut der = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    der.extend_from_slice(&raw);
    Some(format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        STANDARD.encode(der)
    ))
}
