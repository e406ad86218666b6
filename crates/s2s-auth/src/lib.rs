//! What `jwt-factory` and `app` share: the security-sensitive pieces of
//! service-to-service JWT authentication, written once and tested once.
//!
//! Both binaries sign and verify tokens, read and write key files and log the
//! same way. Keeping those parts here means a reviewer reads the signing and
//! verification rules in one place, and a fix lands in both services at once.
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
//! - [`files`]: atomic writes (private keys with mode 0600).
//! - [`watched`]: a parsed key cached in memory, reloaded when its file changes.
//! - [`certs`]: the local CA and `localhost` certificate (replaces `mkcert`).
//! - [`env_file`]: the env file loaded before clap parses (flag > env > file > default).
//! - [`http`]: JSON error bodies and the extractor rejections turned into them.
//! - [`telemetry`]: tracing set-up, shared by every binary.
//! - [`shutdown`]: one future for Ctrl-C and SIGTERM.
//! - [`time_fmt`]: timestamps as Node prints them (`2023-10-02T21:20:03.000Z`).

pub mod algorithm;
pub mod certs;
pub mod env_file;
pub mod files;
pub mod http;
pub mod jwk;
pub mod jws;
pub mod key_id;
pub mod keys;
pub mod shutdown;
pub mod telemetry;
pub mod time_fmt;
pub mod verify;
pub mod watched;

pub use algorithm::{KeyKind, SigningAlgorithm};
pub use key_id::KeyId;
pub use keys::{KeyPair, PublicKey};
pub use verify::{Expectations, JwtError};

/// Seconds since the Unix epoch, the unit of `iat`, `nbf` and `exp`.
pub fn now_unix() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
