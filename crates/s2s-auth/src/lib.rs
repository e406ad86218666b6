//! The token core: the security-sensitive pieces of service-to-service JWT
//! authentication, written once and tested once.
//!
//! Both binaries sign and verify tokens and read and write key files.
//! Keeping those rules here means a reviewer reads them in one place, and a
//! fix lands in every service at once. This crate knows nothing of HTTP
//! servers, TLS listeners or logging set-up (that is `s2s-web`): it can be
//! read, tested and benchmarked on its own.
//!
//! # Layout
//!
//! - [`key_id`]: the only way a key id enters the program; validated before it
//!   touches a map or a path.
//! - [`algorithm`]: the pinned signing algorithm (`ALGORITHM`), parsed once.
//! - [`keys`]: key pairs (RSA, EC, Ed25519): generate, parse once, keep parsed.
//! - [`jwk`]: public keys as JWKs (RFC 7517) and the `kid` derived from them.
//! - [`jws`]: sign a claims object into a compact JWT with a key parsed once.
//! - [`verify`]: the explicit validation rules, and errors shaped like Node's
//!   `jsonwebtoken` so the original README's outputs read true.
//! - [`numeric_date`]: `exp`, `iat` and `nbf` read one way (integer or float,
//!   never a string, a negative or an absurd value).
//! - [`files`]: atomic writes (private keys with mode 0600), bounded reads.
//! - [`watched`]: a parsed file cached in memory, reloaded when it changes.
//! - [`time_fmt`]: timestamps as Node prints them (`2023-10-02T21:20:03.000Z`).
//! - [`untrusted`]: the one rule for showing a value a request chose in a log
//!   line or an error message (bounded, escaped).

pub mod algorithm;
pub mod ecdsa;
pub mod files;
pub mod jwk;
pub mod jws;
pub mod key_id;
pub mod keys;
pub mod numeric_date;
pub mod time_fmt;
pub mod untrusted;
pub mod verify;
pub mod watched;

pub use algorithm::{KeyKind, SigningAlgorithm};
pub use key_id::KeyId;
pub use keys::{KeyPair, PublicKey};
pub use untrusted::untrusted;
pub use verify::{Expectations, JwtError};

/// Seconds since the Unix epoch, the unit of `iat`, `nbf` and `exp`.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
