//! The names of the key files in `KEYS_DIR`: one type writes them and
//! reads them back, so dump and load cannot drift apart.

use std::path::{Path, PathBuf};

use s2s_auth::KeyId;

use super::Entry;

const PRIVATE_SUFFIX: &str = "-private.pem";
const PUBLIC_SUFFIX: &str = "-public.pem";
/// A retiring pair's infix: the name on disk predates the word "retiring",
/// and stays so that keys dumped before still load.
const RETIRED_INFIX: &str = ".retired-";
const NEXT_INFIX: &str = ".next-";
/// Prefix of the temporary files of [`write_atomic`].
pub(super) const TMP_PREFIX: &str = ".tmp-";

/// The names of a key pair's files, written by [`KeyStore::dump`] and read
/// back by [`KeyStore::load`]: one type, so the two cannot drift apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum KeyFile {
    /// `{keyId}-private.pem` / `-public.pem`: the current pair.
    Current(String),
    /// `{keyId}.next-{unix time}.{thumb}-...`: signs from that time on.
    Next(Phased),
    /// `{keyId}.retired-{unix time}.{thumb}-...`: stopped signing then.
    /// (Files written before the thumb was added have none.)
    Retiring(Phased),
}

/// A next or retiring pair's name: key id, time, and the `kid`'s thumbprint part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Phased {
    id: String,
    pub(super) at: i64,
    thumb: Option<String>,
}

impl Phased {
    pub(super) fn of(id: &KeyId, at: i64, entry: &Entry) -> Self {
        Self {
            id: id.to_string(),
            at,
            thumb: entry.kid().split_once('.').map(|(_, t)| t.to_owned()),
        }
    }

    fn stem(&self, infix: &str) -> String {
        match &self.thumb {
            Some(thumb) => format!("{}{infix}{}.{thumb}", self.id, self.at),
            None => format!("{}{infix}{}", self.id, self.at),
        }
    }

    fn parse(id: &str, rest: &str) -> Result<Self, &'static str> {
        let (at, thumb) = match rest.split_once('.') {
            Some((at, thumb)) => (at, Some(thumb.to_owned())),
            None => (rest, None),
        };
        let at = at.parse::<i64>().map_err(|_| "bad time in the file name")?;
        Ok(Self {
            id: id.to_owned(),
            at,
            thumb,
        })
    }
}

impl KeyFile {
    fn stem(&self) -> String {
        match self {
            Self::Current(id) => id.clone(),
            Self::Next(p) => p.stem(NEXT_INFIX),
            Self::Retiring(p) => p.stem(RETIRED_INFIX),
        }
    }

    pub(super) fn id(&self) -> &str {
        match self {
            Self::Current(id) => id,
            Self::Next(p) | Self::Retiring(p) => &p.id,
        }
    }

    pub(super) fn private(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PRIVATE_SUFFIX}", self.stem()))
    }

    pub(super) fn public(&self, dir: &Path) -> PathBuf {
        dir.join(format!("{}{PUBLIC_SUFFIX}", self.stem()))
    }

    /// The private-key file `name` describes: `None` for other files,
    /// `Some(Err)` for a next or retiring file with a malformed time.
    pub(super) fn parse_private(name: &str) -> Option<Result<Self, &'static str>> {
        let stem = name.strip_suffix(PRIVATE_SUFFIX)?;
        Some(if let Some((id, rest)) = stem.split_once(RETIRED_INFIX) {
            Phased::parse(id, rest).map(Self::Retiring)
        } else if let Some((id, rest)) = stem.split_once(NEXT_INFIX) {
            Phased::parse(id, rest).map(Self::Next)
        } else {
            Ok(Self::Current(stem.to_owned()))
        })
    }

    /// A next or retiring file (public or private), which dump removes when
    /// it no longer describes a key of the store.
    pub(super) fn is_phased_name(name: &str) -> bool {
        (name.contains(RETIRED_INFIX) || name.contains(NEXT_INFIX)) && name.ends_with(".pem")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_file_names_round_trip_and_are_unique_per_key() {
        let dir = Path::new("keys");
        let phased = |thumb: &str| Phased {
            id: "servicea".into(),
            at: 1_796_162_486,
            thumb: Some(thumb.into()),
        };
        for file in [
            KeyFile::Current("servicea".into()),
            KeyFile::Next(phased("A1vS2vz7")),
            KeyFile::Retiring(phased("dXc-_rti")),
        ] {
            let private = file.private(dir);
            let name = private
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or_default();
            assert_eq!(
                KeyFile::parse_private(name),
                Some(Ok(file.clone())),
                "{name}"
            );
            assert_eq!(
                KeyFile::is_phased_name(name),
                !matches!(file, KeyFile::Current(_)),
                "{name}"
            );
        }
        // Two keys retired in the same second: two names.
        assert_ne!(
            KeyFile::Retiring(phased("aaaaaaaa")).private(dir),
            KeyFile::Retiring(phased("bbbbbbbb")).private(dir)
        );
        // Files written before the thumbprint was part of the name still load.
        assert_eq!(
            KeyFile::parse_private("servicea.retired-1796162486-private.pem"),
            Some(Ok(KeyFile::Retiring(Phased {
                id: "servicea".into(),
                at: 1_796_162_486,
                thumb: None
            })))
        );
        assert!(matches!(
            KeyFile::parse_private("servicea.next-soon.abc-private.pem"),
            Some(Err(_))
        ));
        assert_eq!(KeyFile::parse_private("servicea-public.pem"), None);
    }
}
