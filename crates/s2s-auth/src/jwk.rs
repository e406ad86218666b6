//! Public keys as JWKs (RFC 7517), and key ids (`kid`) derived from them.
//!
//! A `kid` names one key pair, not a key id: `servicea.Xb3f0Q2k` is
//! servicea's key id, a dot, and the start of the key's RFC 7638 thumbprint.
//! So a rotated key gets a new `kid` by construction, the same key always
//! gets the same `kid` (also after a restart), and nothing has to be stored
//! for it. The dot occurs in neither a key id nor base64url, so a verifier
//! can tell whose key a `kid` names ([`key_id_of`]) and refuse a token that
//! names another key id's key, however valid its signature.

use std::{collections::HashMap, sync::Arc};

use jsonwebtoken::{
    DecodingKey,
    jwk::{
        AlgorithmParameters, EllipticCurve, Jwk, JwkSet, KeyOperations, PublicKeyUse,
        ThumbprintHash,
    },
};

use crate::{KeyId, PublicKey, SigningAlgorithm, untrusted};

/// Longest `kid` looked up; ours are about 20 characters (`servicea.2gvowRNF`).
pub const MAX_KID_LEN: usize = 128;

/// Most keys kept from one fetched JWK Set (after the other rules): a
/// receiver needs the issuer's current and rotated-out keys, a client a
/// handful; a set that names more cannot make the holder keep more.
pub const MAX_USABLE_KEYS: usize = 16;

/// Whether `kid` may be looked up (and so logged): 1-[`MAX_KID_LEN`]
/// characters of `[A-Za-z0-9_.-]`, so it can neither traverse a path nor
/// forge a log line. One rule for a token's `kid` and a JWK Set's.
pub fn plain_kid(kid: &str) -> bool {
    (1..=MAX_KID_LEN).contains(&kid.len())
        && kid
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

/// Characters of the thumbprint kept in a `kid`: 48 bits, plenty to tell a
/// handful of keys apart.
const THUMBPRINT_CHARS: usize = 8;

#[derive(Debug, thiserror::Error)]
#[error("cannot describe the key as a JWK")]
pub struct JwkError(#[source] jsonwebtoken::errors::Error);

/// The public JWK of `key` for `alg`, with `use: sig` and its `kid`.
pub fn public_jwk(key_id: &KeyId, key: &PublicKey, alg: SigningAlgorithm) -> Result<Jwk, JwkError> {
    let mut jwk = Jwk::from_decoding_key(key.decoding_key(), Some(alg.jwt())).map_err(JwkError)?;
    let thumbprint = jwk.thumbprint(ThumbprintHash::SHA256).map_err(JwkError)?;
    let short: String = thumbprint.chars().take(THUMBPRINT_CHARS).collect();
    jwk.common.key_id = Some(format!("{key_id}.{short}"));
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    Ok(jwk)
}

/// The key id a `kid` made by [`public_jwk`] belongs to.
pub fn key_id_of(kid: &str) -> Option<&str> {
    kid.split_once('.').map(|(id, _)| id)
}

/// The `kid` of a JWK made by [`public_jwk`].
pub fn kid_of(jwk: &Jwk) -> &str {
    jwk.common.key_id.as_deref().unwrap_or_default()
}

/// A JWK Set without ambiguity: the keys to use, and the `kid`s that more
/// than one key claimed. Every key of a duplicated `kid` is dropped, not
/// just all but the last: which of two keys a `kid` names cannot be known,
/// so neither may verify anything. The caller logs the duplicates.
pub fn unambiguous(set: &JwkSet) -> (Vec<Jwk>, Vec<String>) {
    let mut count: HashMap<&str, usize> = HashMap::new();
    for jwk in &set.keys {
        if let Some(kid) = jwk.common.key_id.as_deref() {
            *count.entry(kid).or_default() += 1;
        }
    }
    let mut duplicates: Vec<String> = count
        .iter()
        .filter(|(_, n)| **n > 1)
        .map(|(kid, _)| (*kid).to_owned())
        .collect();
    duplicates.sort();
    let kept = set
        .keys
        .iter()
        .filter(|jwk| {
            jwk.common
                .key_id
                .as_deref()
                .is_none_or(|kid| count.get(kid).copied().unwrap_or(0) == 1)
        })
        .cloned()
        .collect();
    (kept, duplicates)
}

/// Whether `jwk` may verify tokens signed with `alg`; if not, why.
///
/// - `key_ops`, if present, must include `verify` (RFC 7517 section 4.3);
/// - `use`, if present, must be `sig` (section 4.2);
/// - `alg`, if present, must be `alg`;
/// - the key type and its `crv` must be what `alg` needs: RSA for RS*/PS*,
///   EC `P-256` for ES256, EC `P-384` for ES384, OKP `Ed25519` for EdDSA.
///   (A P-384 key labelled for ES256 would otherwise reach the library.)
pub fn usable_for(jwk: &Jwk, alg: SigningAlgorithm) -> Result<(), String> {
    if let Some(ops) = &jwk.common.key_operations
        && !ops.contains(&KeyOperations::Verify)
    {
        return Err("its key_ops do not include \"verify\"".into());
    }
    if let Some(usage) = &jwk.common.public_key_use
        && *usage != PublicKeyUse::Signature
    {
        return Err("its use is not \"sig\"".into());
    }
    if let Some(key_alg) = &jwk.common.key_algorithm {
        let name = serde_json::to_value(key_alg)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        if name != alg.name() {
            return Err(format!("its alg is {name}, not {}", alg.name()));
        }
    }
    let fits = match (&jwk.algorithm, alg.key_kind()) {
        (AlgorithmParameters::RSA(_), crate::KeyKind::Rsa) => true,
        (AlgorithmParameters::EllipticCurve(ec), crate::KeyKind::EcP256) => {
            ec.curve == EllipticCurve::P256
        }
        (AlgorithmParameters::EllipticCurve(ec), crate::KeyKind::EcP384) => {
            ec.curve == EllipticCurve::P384
        }
        (AlgorithmParameters::OctetKeyPair(okp), crate::KeyKind::Ed25519) => {
            okp.curve == EllipticCurve::Ed25519
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(format!(
            "its key type or crv does not fit {} (needs {})",
            alg.name(),
            alg.key_kind()
        ))
    }
}

/// The keys a fetched JWK Set gives, by `kid`, and what it left out.
#[derive(Default)]
pub struct Selected {
    pub keys: HashMap<String, Arc<DecodingKey>>,
    /// One line per JWK left out: its `kid` (bounded, escaped) and why.
    pub ignored: Vec<String>,
}

/// The receivers' rules for a fetched JWK Set, for every holder of one (the
/// receivers' cache of the factory's set, the factory's cache of a
/// client's): a `kid` two keys claim names neither ([`unambiguous`]); a key
/// without a plain `kid` ([`plain_kid`]) is left out; with `owner`, only
/// keys whose `kid` begins with that key id ([`key_id_of`]); `use`,
/// `key_ops`, `alg`, key type and `crv` must fit `alg` ([`usable_for`]); at
/// most [`MAX_USABLE_KEYS`] are kept.
pub fn select(set: &JwkSet, alg: SigningAlgorithm, owner: Option<&str>) -> Selected {
    let (kept, duplicates) = unambiguous(set);
    let mut out = Selected::default();
    for kid in &duplicates {
        out.ignored.push(format!(
            "kid {}: more than one key in the JWK Set names it",
            untrusted(kid)
        ));
    }
    for jwk in &kept {
        let kid = kid_of(jwk);
        let why = if !plain_kid(kid) {
            Some(format!(
                "its kid is not 1-{MAX_KID_LEN} characters of A-Z, a-z, 0-9, '_', '-', '.'"
            ))
        } else if owner.is_some_and(|o| key_id_of(kid) != Some(o)) {
            Some(format!("not a key of {}", owner.unwrap_or_default()))
        } else if out.keys.len() >= MAX_USABLE_KEYS {
            Some(format!("more than {MAX_USABLE_KEYS} usable keys"))
        } else {
            usable_for(jwk, alg).err()
        };
        if let Some(why) = why {
            out.ignored.push(format!("kid {}: {why}", untrusted(kid)));
            continue;
        }
        match DecodingKey::from_jwk(jwk) {
            Ok(key) => {
                out.keys.insert(kid.to_owned(), Arc::new(key));
            }
            Err(e) => out.ignored.push(format!("kid {}: {e}", untrusted(kid))),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;

    #[test]
    fn kid_is_stable_per_key_and_differs_between_keys() -> Result<(), Box<dyn std::error::Error>> {
        let id = KeyId::parse("servicea")?;
        for alg in [
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::EdDSA,
        ] {
            let a = KeyPair::generate(alg)?;
            let b = KeyPair::generate(alg)?;
            let ja = public_jwk(&id, a.public(), alg)?;
            let again = public_jwk(
                &id,
                KeyPair::from_private_pem(a.private_pem())?.public(),
                alg,
            )?;
            assert_eq!(kid_of(&ja), kid_of(&again));
            assert_ne!(kid_of(&ja), kid_of(&public_jwk(&id, b.public(), alg)?));
            assert!(kid_of(&ja).starts_with("servicea."));
            assert_eq!(key_id_of(kid_of(&ja)), Some("servicea"));
            let json = serde_json::to_value(&ja)?;
            assert_eq!(json["use"], "sig");
            assert_eq!(json["alg"], alg.name());
            // It round-trips into a key that verifies what `a` signed.
            let decoding = jsonwebtoken::DecodingKey::from_jwk(&ja)?;
            let token = crate::jws::sign(&serde_json::Map::new(), &a, alg)?;
            let mut v = jsonwebtoken::Validation::new(alg.jwt());
            v.required_spec_claims.clear();
            v.validate_exp = false;
            v.validate_aud = false;
            jsonwebtoken::decode::<serde_json::Value>(&token, &decoding, &v)?;
        }
        Ok(())
    }

    fn jwk_of(alg: SigningAlgorithm, kid: &str) -> Result<Jwk, Box<dyn std::error::Error>> {
        let pair = KeyPair::generate(alg)?;
        let mut jwk = public_jwk(&KeyId::parse("servicea")?, pair.public(), alg)?;
        jwk.common.key_id = Some(kid.into());
        Ok(jwk)
    }

    #[test]
    fn a_duplicated_kid_keeps_none_of_its_keys() -> Result<(), Box<dyn std::error::Error>> {
        let alg = SigningAlgorithm::ES256;
        let set = JwkSet {
            keys: vec![
                jwk_of(alg, "a.1")?,
                jwk_of(alg, "dup.1")?,
                jwk_of(alg, "b.1")?,
                jwk_of(alg, "dup.1")?,
                jwk_of(alg, "dup.1")?,
            ],
        };
        let (kept, duplicates) = unambiguous(&set);
        let kids: Vec<&str> = kept.iter().map(kid_of).collect();
        assert_eq!(kids, ["a.1", "b.1"]);
        assert_eq!(duplicates, ["dup.1"]);
        let (kept, duplicates) = unambiguous(&JwkSet { keys: vec![] });
        assert!(kept.is_empty() && duplicates.is_empty());
        Ok(())
    }

    #[test]
    fn key_ops_use_alg_and_crv_must_fit() -> Result<(), Box<dyn std::error::Error>> {
        use SigningAlgorithm::{ES256, ES384, EdDSA, PS256, RS256};
        // Our own JWKs fit their algorithm.
        for alg in [RS256, ES256, ES384, EdDSA] {
            assert_eq!(usable_for(&jwk_of(alg, "k.1")?, alg), Ok(()), "{alg}");
        }
        // Another curve or key type: refused, naming what was needed.
        for (key, alg) in [
            (ES384, ES256),
            (ES256, ES384),
            (ES256, RS256),
            (RS256, ES256),
            (EdDSA, ES256),
        ] {
            let mut jwk = jwk_of(key, "k.1")?;
            jwk.common.key_algorithm = None;
            let err = usable_for(&jwk, alg).err().unwrap_or_default();
            assert!(err.contains("crv"), "{key} for {alg}: {err}");
        }
        // An RSA key serves any RSA algorithm unless its alg says otherwise.
        let mut rsa = jwk_of(RS256, "k.1")?;
        assert!(usable_for(&rsa, PS256).is_err(), "alg RS256 is not PS256");
        rsa.common.key_algorithm = None;
        assert_eq!(usable_for(&rsa, PS256), Ok(()));
        // key_ops must include verify; use must be sig.
        let mut jwk = jwk_of(ES256, "k.1")?;
        jwk.common.public_key_use = None;
        jwk.common.key_operations = Some(vec![KeyOperations::Sign]);
        assert!(
            usable_for(&jwk, ES256)
                .err()
                .unwrap_or_default()
                .contains("key_ops")
        );
        jwk.common.key_operations = Some(vec![KeyOperations::Sign, KeyOperations::Verify]);
        assert_eq!(usable_for(&jwk, ES256), Ok(()));
        jwk.common.key_operations = None;
        jwk.common.public_key_use = Some(PublicKeyUse::Encryption);
        assert!(
            usable_for(&jwk, ES256)
                .err()
                .unwrap_or_default()
                .contains("use")
        );
        // From JSON, as a fetched set would have it.
        let json = serde_json::to_value(jwk_of(ES256, "k.1")?)?;
        let mut with_ops = json.clone();
        with_ops["key_ops"] = serde_json::json!(["encrypt"]);
        let parsed: Jwk = serde_json::from_value(with_ops)?;
        assert!(usable_for(&parsed, ES256).is_err());
        let mut other_crv = json;
        other_crv["crv"] = "P-384".into();
        let parsed: Jwk = serde_json::from_value(other_crv)?;
        assert!(usable_for(&parsed, ES256).is_err());
        Ok(())
    }
}
