//! RSA-2048 key pairs, parsed once and kept parsed.
//!
//! The original demo re-read and re-parsed PEM files for every request. Here a
//! key is parsed when it is created or loaded, and the parsed forms (the
//! aws-lc-rs signing key, the `jsonwebtoken` decoding key) live as long as the
//! key does. Generating a key takes tens of milliseconds of CPU: call
//! [`RsaKeyPair::generate`] from `spawn_blocking`.

use std::fmt;

use aws_lc_rs::{
    encoding::{AsDer, Pkcs8V1Der},
    signature::{self as sig, KeyPair as _},
};
use base64::{Engine as _, engine::general_purpose::STANDARD};
use jsonwebtoken::DecodingKey;

/// Why key material could not be used. Messages never contain key bytes.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("could not generate an RSA key pair: {0}")]
    Generate(String),
    #[error("not a PEM-encoded RSA private key (PKCS#8 or PKCS#1): {0}")]
    BadPrivateKey(String),
    #[error("not a PEM-encoded RSA public key: {0}")]
    BadPublicKey(String),
}

/// A public key as the world sees it (PEM) and as the verifier uses it.
#[derive(Clone)]
pub struct PublicKey {
    pem: String,
    decoding: DecodingKey,
}

impl PublicKey {
    /// Parses an SPKI (`BEGIN PUBLIC KEY`) or PKCS#1 (`BEGIN RSA PUBLIC KEY`) PEM.
    pub fn from_pem(pem: &str) -> Result<Self, KeyError> {
        let decoding = DecodingKey::from_rsa_pem(pem.as_bytes())
            .map_err(|e| KeyError::BadPublicKey(e.to_string()))?;
        Ok(Self {
            pem: pem.to_owned(),
            decoding,
        })
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

/// A private key, parsed for signing, with its public half.
pub struct RsaKeyPair {
    /// PKCS#8 PEM, kept only to be written by `/utils/dump`. Never logged.
    private_pem: String,
    public: PublicKey,
    signer: sig::RsaKeyPair,
}

impl RsaKeyPair {
    /// A fresh RSA-2048 key pair. CPU-heavy: run it off the async workers.
    pub fn generate() -> Result<Self, KeyError> {
        let kp = rcgen::KeyPair::generate_for(&rcgen::PKCS_RSA_SHA256)
            .map_err(|e| KeyError::Generate(e.to_string()))?;
        Self::from_rcgen(&kp)
    }

    /// Parses a private key PEM (PKCS#8 `PRIVATE KEY` or PKCS#1 `RSA PRIVATE KEY`).
    pub fn from_private_pem(pem: &str) -> Result<Self, KeyError> {
        let kp =
            rcgen::KeyPair::from_pem(pem).map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        Self::from_rcgen(&kp)
    }

    fn from_rcgen(kp: &rcgen::KeyPair) -> Result<Self, KeyError> {
        let der = kp.serialized_der();
        let signer = sig::RsaKeyPair::from_pkcs8(der)
            .or_else(|_| sig::RsaKeyPair::from_der(der))
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        if signer.public_modulus_len() < 256 {
            return Err(KeyError::BadPrivateKey(
                "RSA keys shorter than 2048 bits are refused".into(),
            ));
        }
        let public = PublicKey::from_pem(&kp.public_key_pem())?;
        // Always keep PKCS#8: a key loaded from a PKCS#1 file would otherwise
        // be written back with PKCS#1 bytes under a PKCS#8 label.
        let pkcs8 = AsDer::<Pkcs8V1Der>::as_der(&signer)
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?;
        let private_pem = rcgen::KeyPair::try_from(pkcs8.as_ref())
            .map_err(|e| KeyError::BadPrivateKey(e.to_string()))?
            .serialize_pem();
        Ok(Self {
            private_pem,
            public,
            signer,
        })
    }

    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// The private key as PKCS#8 PEM, for writing to a 0600 file.
    pub fn private_pem(&self) -> &str {
        &self.private_pem
    }

    pub(crate) fn signer(&self) -> &sig::RsaKeyPair {
        &self.signer
    }

    /// The modulus size in bytes (256 for RSA-2048).
    pub fn modulus_len(&self) -> usize {
        self.signer.public_key().modulus_len()
    }
}

impl fmt::Debug for RsaKeyPair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RsaKeyPair")
            .field("bits", &(self.modulus_len() * 8))
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_pem() -> Result<(), KeyError> {
        let kp = RsaKeyPair::generate()?;
        assert_eq!(kp.modulus_len(), 256);
        assert!(kp.private_pem().starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(kp.public().pem().starts_with("-----BEGIN PUBLIC KEY-----"));
        let again = RsaKeyPair::from_private_pem(kp.private_pem())?;
        assert_eq!(again.public().pem(), kp.public().pem());
        assert!(!format!("{kp:?}").contains("PRIVATE"));
        Ok(())
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(RsaKeyPair::from_private_pem("").is_err());
        assert!(
            RsaKeyPair::from_private_pem(
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"
            )
            .is_err()
        );
        assert!(PublicKey::from_pem("not a key").is_err());
    }
}
