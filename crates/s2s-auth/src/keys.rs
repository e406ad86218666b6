//! Signing key pairs (RSA-2048, EC P-256/P-384, Ed25519), parsed once and
//! kept parsed.
//!
//! The original demo re-read and re-parsed PEM files for every request. Here a
//! key is parsed when it is created or loaded, and the parsed forms (the
//! aws-lc-rs signing key, the `jsonwebtoken` decoding key) live as long as the
//! key does. Generating an RSA key takes tens of milliseconds of CPU: call
//! [`KeyPair::generate`] from `spawn_blocking`.

use std::fmt;

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der},
    rand::SystemRandom,
    signature::{self as sig, KeyPair as _},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use jsonwebtoken::DecodingKey;

use crate::{SigningAlgorithm, algorithm::KeyKind};

/// Why key material could not be used. Messages never contain key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate a key pair: {0}")]
    Generate(String),
    #[error("not a usable PEM private key (PKCS#8, PKCS#1 or SEC1): {0}")]
    BadPrivateKey(String),
    #[error("not a usable PEM public key: {0}")]
    BadPublicKey(String),
    #[error("the key is {key}, but ALGORITHM={alg} needs {needs}")]
    WrongKind {
        key: String,
        alg: SigningAlgorithm,
        needs: KeyKind,
    },
}

/// A public key as the world sees it (PEM) and as the verifier uses it.
#[derive(Clone)]
pub struct PublicKey {
    pem: String,
    decoding: DecodingKey,
}

impl PublicKey {
    /// Parses an SPKI PEM (`BEGIN PUBLIC KEY`) of any offered kind, or a
    /// PKCS#1 `BEGIN RSA PUBLIC KEY`.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        // Only public-key labels: `jsonwebtoken` would also take a private
        // key here, and a private key in the public key file is a mistake
        // to report, not a key to verify with.
        let label = pem
            .trim_start()
            .strip_prefix("-----BEGIN ")
            .and_then(|rest| rest.split_once("-----"))
            .map(|(label, _)| label);
        if !matches!(label, Some("PUBLIC KEY" | "RSA PUBLIC KEY")) {
            return Err(KeyError::BadPublicKey(format!(
                "expected a `BEGIN PUBLIC KEY` PEM, found {}",
                label.map_or_else(|| "no PEM".to_owned(), |l| format!("`BEGIN {l}`"))
            )));
        }
        let bytes = pem.as_bytes();
        let decoding = DecodingKey::from_rsa_pem(bytes)
            .or_else(|_| DecodingKey::from_ec_pem(bytes))
            .or_else(|_| DecodingKey::from_ed_pem(bytes))
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        Ok(Self {
            pem: pem.to_owned(),
            decoding,
        })
    }

    /// Parses like [`PublicKey::from_pem`] and checks the key fits `alg`.
    pub fn from_pem_for(pem: &str, alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let key = Self::from_pem(pem)?;
        if key.decoding.family() != alg.jwt().family() {
            return Err(KeyError::WrongKind {
                key: format!("{:?}", key.decoding.family()),
                alg,
                needs: alg.key_kind(),
            });
        }
        Ok(key)
    }

    pub fn pem(&self) -> &str {
        &self.pem
    }

    /// The PEM, base64-encoded: the `publicKey` field of the factory's answers.
    pub fn pem_base64(&self) -> String {
        STANDARD.encode(self.pem.as_bytes())
    }

    pub fn decoding_key(&self) -> &DecodingKey {
        &self.decoding
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PublicKey").finish_non_exhaustive()
    }
}

/// The parsed private key, ready to sign.
enum Signer {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

/// A private key, parsed for signing, with its public half.
pub struct KeyPair {
    kind: KeyKind,
    /// PKCS#8 PEM, kept only to be written to a 0600 file. Never logged.
    private_pem: String,
    public: PublicKey,
    signer: Signer,
}

#[derive(Debug, thiserror::Error)]
#[error("signing failed")]
pub struct SignError;

impl KeyPair {
    /// A fresh key pair for `alg`: RSA-2048, P-256, P-384 or Ed25519.
    /// RSA is CPU-heavy: run it off the async workers.
    pub fn generate(alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let rcgen_alg = match alg.key_kind() {
            KeyKind::Rsa => &rcgen::PKCS_RSA_SHA256,
            KeyKind::EcP256 => &rcgen::PKCS_ECDSA_P256_SHA256,
            KeyKind::EcP384 => &rcgen::PKCS_ECDSA_P384_SHA384,
            KeyKind::Ed25519 => &rcgen::PKCS_ED25519,
        };
        let kp = rcgen::KeyPair::generate_for(rcgen_alg)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_rcgen(&kp)
    }

    /// Parses a private key PEM of any offered kind (PKCS#8 `PRIVATE KEY`,
    /// PKCS#1 `RSA PRIVATE KEY`, SEC1 `EC PRIVATE KEY`).
    pub fn from_private_pem(pem: &str) -> Result<Self, KeyError> {
        let kp =
            rcgen::KeyPair::from_pem(pem).map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        Self::from_rcgen(&kp)
    }

    /// Parses like [`KeyPair::from_private_pem`] and checks the key fits `alg`.
    pub fn from_private_pem_for(pem: &str, alg: SigningAlgorithm) -> Result<Self, KeyError> {
        let pair = Self::from_private_pem(pem)?;
        pair.check_fits(alg)?;
        Ok(pair)
    }

    /// An error unless this key signs with `alg`.
    pub fn check_fits(&self, alg: SigningAlgorithm) -> Result<(), KeyError> {
        if self.kind == alg.key_kind() {
            Ok(())
        } else {
            Err(KeyError::WrongKind {
                key: self.kind.to_string(),
                alg,
                needs: alg.key_kind(),
            })
        }
    }

    fn from_rcgen(kp: &rcgen::KeyPair) -> Result<Self, KeyError> {
        let der = kp.serialized_der();
        let bad = |e: &dyn fmt::Display| KeyError::BadPrivateKey(e.to_string());
        let (kind, signer, pkcs8) = if kp.is_compatible(&rcgen::PKCS_RSA_SHA256) {
            let key = sig::RsaKeyPair::from_pkcs8(der)
                .or_else(|_| sig::RsaKeyPair::from_der(der))
                .map_err(|e| bad(&e))?;
            if key.public_modulus_len() < 256 {
                return Err(bad(&"RSA keys shorter than 2048 bits are refused"));
            }
            let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&key).map_err(|e| bad(&e))?;
            (KeyKind::Rsa, Signer::Rsa(key), pkcs8.as_ref().to_vec())
        } else if kp.is_compatible(&rcgen::PKCS_ED25519) {
            let key = sig::Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| bad(&e))?;
            let pkcs8 = key.to_pkcs8v1().map_err(|e| bad(&e))?;
            (KeyKind::Ed25519, Signer::Ed(key), pkcs8.as_ref().to_vec())
        } else {
            let (kind, alg) = if kp.is_compatible(&rcgen::PKCS_ECDSA_P256_SHA256) {
                (KeyKind::EcP256, &sig::ECDSA_P256_SHA256_FIXED_SIGNING)
            } else if kp.is_compatible(&rcgen::PKCS_ECDSA_P384_SHA384) {
                (KeyKind::EcP384, &sig::ECDSA_P384_SHA384_FIXED_SIGNING)
            } else {
                return Err(bad(&"unsupported key type"));
            };
            let key = sig::EcdsaKeyPair::from_pkcs8(alg, der)
                .or_else(|_| sig::EcdsaKeyPair::from_private_key_der(alg, der))
                .map_err(|e| bad(&e))?;
            let pkcs8 = key.to_pkcs8v1().map_err(|e| bad(&e))?;
            (kind, Signer::Ec(key), pkcs8.as_ref().to_vec())
        };
        let public = PublicKey::from_pem(&kp.public_key_pem())?;
        // Always PKCS#8, whatever format the key was loaded from: a PKCS#1 or
        // SEC1 key would otherwise be written back under the wrong label.
        Ok(Self {
            kind,
            private_pem: pem_encode("PRIVATE KEY", &pkcs8),
            public,
            signer,
        })
    }

    pub fn kind(&self) -> KeyKind {
        self.kind
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The private key as PKCS#8 PEM, for writing to a 0600 file.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    /// The JWS signature of `message` with `alg` (which must fit the key):
    /// RSASSA, ECDSA as fixed-size `r || s` (RFC 7518 section 3.4), or Ed25519.
    pub fn sign(&self, alg: SigningAlgorithm, message: &[u8]) -> Result<Vec<u8>, SignError> {
        match (&self.signer, alg.rsa_encoding()) {
            (Signer::Rsa(key), Some(encoding)) => {
                let mut signature = vec![0; key.public_modulus_len()];
                key.sign(encoding, &SystemRandom::new(), message, &mut signature)
                    .map_err(|_| SignError)?;
                Ok(signature)
            }
            (Signer::Ec(key), None) if alg.key_kind() == self.kind => {
                let mut signature = key
                    .sign(&SystemRandom::new(), message)
                    .map(|s| s.as_ref().to_vec())
                    .map_err(|_| SignError)?;
                // Verifiers refuse the high-s twin (see `ecdsa`).
                crate::ecdsa::canonicalize(alg, &mut signature);
                Ok(signature)
            }
            (Signer::Ed(key), None) if alg == SigningAlgorithm::EdDSA => {
                Ok(key.sign(message).as_ref().to_vec())
            }
            _ => Err(SignError),
        }
    }

    /// Bits of the key (2048 for our RSA keys, 256 for P-256 and Ed25519).
    pub fn bits(&self) -> usize {
        match &self.signer {
            Signer::Rsa(k) => k.public_key().modulus_len() * 8,
            Signer::Ec(_) if self.kind == KeyKind::EcP384 => 384,
            Signer::Ec(_) | Signer::Ed(_) => 256,
        }
    }
}

/// PEM armour: base64 in 64-character lines between the label's markers.
fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

impl fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyPair")
            .field("kind", &self.kind)
            .field("bits", &self.bits())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_pem_and_signs() -> Result<(), KeyError> {
        for alg in [
            SigningAlgorithm::RS256,
            SigningAlgorithm::ES256,
            SigningAlgorithm::ES384,
            SigningAlgorithm::EdDSA,
        ] {
            let kp = KeyPair::generate(alg)?;
            assert_eq!(kp.kind(), alg.key_kind());
            assert!(kp.private_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
            assert!(kp.public().pem().starts_with("-----BEGIN PUBLIC KEY-----"));
            let again = KeyPair::from_private_pem_for(kp.private_pem(), alg)?;
            assert_eq!(again.public().pem(), kp.public().pem());
            assert!(PublicKey::from_pem_for(kp.public().pem(), alg).is_ok());
            assert!(kp.sign(alg, b"m").is_ok());
            assert!(!format!("{kp:?}").contains("PRIVATE"));
        }
        Ok(())
    }

    #[test]
    fn a_key_of_the_wrong_kind_is_refused() -> Result<(), KeyError> {
        let ec = KeyPair::generate(SigningAlgorithm::ES256)?;
        assert!(matches!(
            ec.check_fits(SigningAlgorithm::RS256),
            Err(KeyError::WrongKind { .. })
        ));
        assert!(ec.sign(SigningAlgorithm::RS256, b"m").is_err());
        assert!(ec.sign(SigningAlgorithm::ES384, b"m").is_err());
        assert!(PublicKey::from_pem_for(ec.public().pem(), SigningAlgorithm::EdDSA).is_err());
        let rsa = KeyPair::generate(SigningAlgorithm::RS256)?;
        assert_eq!(rsa.bits(), 2048);
        assert!(rsa.sign(SigningAlgorithm::ES256, b"m").is_err());
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(KeyPair::from_private_pem("").is_err());
        assert!(
            KeyPair::from_private_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(PublicKey::from_pem("not a key").is_err());
        if let Ok(kp) = KeyPair::generate(SigningAlgorithm::ES256) {
            assert!(
                PublicKey::from_pem(kp.private_pem()).is_err(),
                "a private key is not a public key"
            );
        }
    }
}
