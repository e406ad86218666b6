//! Key ids arrive in URL paths and become map keys and file names
//! (`keys/{keyId}-private.pem`). The original demo joined the raw id into a
//! path, so `../../etc/x` wrote outside its folder. Here a [`KeyId`] can only
//! be built by [`KeyId::parse`], which accepts 1-64 characters of
//! `[A-Za-z0-9_-]`: no dots, slashes, NULs or unicode can reach the disk.

use std::fmt;

/// The longest key id accepted.
pub const MAX_LEN: usize = 64;

/// A validated key id: 1-64 characters of `[A-Za-z0-9_-]`.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(String);

/// Why a key id was refused; the message is returned to the caller as is.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid key id: must be 1-{MAX_LEN} characters of A-Z, a-z, 0-9, '_' or '-'")]
pub struct InvalidKeyId;

impl KeyId {
    /// Accepts `[A-Za-z0-9_-]{1,64}` and nothing else.
    pub fn parse(raw: &str) -> Result<Self, InvalidKeyId> {
        let ok = (1..=MAX_LEN).contains(&raw.len())
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if ok {
            Ok(Self(raw.to_owned()))
        } else {
            Err(InvalidKeyId)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_ids() {
        for ok in ["servicea", "a", "A-b_9", &"x".repeat(64)] {
            assert_eq!(KeyId::parse(ok).map(|k| k.to_string()), Ok(ok.to_string()));
        }
    }

    #[test]
    fn refuses_anything_that_could_be_a_path() {
        for bad in [
            "",
            "..",
            "../x",
            "a/b",
            "a\\b",
            "a.b",
            "a\0b",
            "é",
            "a b",
            "%2e%2e",
            &"x".repeat(65),
        ] {
            assert_eq!(KeyId::parse(bad), Err(InvalidKeyId), "{bad:?}");
        }
    }
}
