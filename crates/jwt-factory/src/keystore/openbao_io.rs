//! The store in OpenBao (KEY_BACKEND=openbao): no key material, only which
//! Transit *version* is in which phase. A key id's ring is one KV record,
//! `{"current": 3, "next": {"version": 4, "at": ...}, "retiring": [...]}`,
//! written with check-and-set after every change, and read back at start:
//! a restart, or another replica, sees the same phases. The public keys
//! come from Transit itself.
//!
//! A change is made in memory first; if OpenBao then refuses to record
//! it, [`KeyStore::restore`] puts the ring back as it was ([`Snapshot`]),
//! so memory never holds a phase OpenBao does not.

use std::{collections::BTreeMap, sync::Arc};

use s2s_auth::{KeyId, PublicKey, now_unix};
use serde::{Deserialize, Serialize};

use super::{Entry, KeyStore, MAX_RETIRING, SigningKey, ring::Ring};

/// A version and a time: when a next version signs, or when a retiring one
/// stopped signing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PhasedVersion {
    pub version: u32,
    pub at: i64,
}

/// A key id's ring as OpenBao keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RingRecord {
    /// The algorithm the versions sign with (a factory with another
    /// `ALGORITHM` refuses the record instead of signing wrongly).
    pub alg: String,
    pub current: u32,
    pub next: Option<PhasedVersion>,
    pub retiring: Vec<PhasedVersion>,
}

/// A key id's ring as it was before a change (or its absence).
#[derive(Debug)]
pub struct Snapshot(Option<Ring>);

impl KeyStore {
    /// The ring of `id` as it is now, to [`KeyStore::restore`] later.
    pub fn snapshot(&self, id: &KeyId) -> Snapshot {
        Snapshot(self.read().get(id).cloned())
    }

    /// Puts `id`'s ring back as `snapshot` had it.
    pub fn restore(&self, id: &KeyId, snapshot: Snapshot) {
        let mut keys = self.write();
        match snapshot.0 {
            Some(ring) => {
                keys.insert(id.clone(), ring);
            }
            None => {
                keys.remove(id);
            }
        }
    }

    /// `id`'s ring as a record: `None` if there is no ring, or a key of it
    /// is not held by OpenBao.
    pub fn record(&self, id: &KeyId) -> Option<RingRecord> {
        let ring = self.read().get(id).cloned()?;
        let phased = |(entry, at): &(Arc<Entry>, i64)| {
            entry
                .version()
                .map(|version| PhasedVersion { version, at: *at })
        };
        let now = now_unix();
        Some(RingRecord {
            alg: self.alg.name().to_owned(),
            current: ring.current.version()?,
            next: match &ring.next {
                Some(next) => Some(phased(next)?),
                None => None,
            },
            retiring: ring
                .retiring
                .iter()
                .filter(|(_, at)| self.in_overlap(*at, now))
                .map(phased)
                .collect::<Option<Vec<_>>>()?,
        })
    }

    /// Installs `id`'s ring from `record`, with the public key of each
    /// version (`public`, PEM, from Transit key `name`). Retiring versions
    /// whose overlap has ended are left out; a next version whose time has
    /// come activates.
    pub fn install(
        &self,
        id: &KeyId,
        name: &str,
        record: &RingRecord,
        public: &BTreeMap<u32, String>,
    ) -> Result<(), String> {
        if record.alg != self.alg.name() {
            return Err(format!(
                "{id}'s keys sign with {}, this factory with {}",
                record.alg, self.alg
            ));
        }
        let entry = |version: u32| -> Result<Arc<Entry>, String> {
            let pem = public
                .get(&version)
                .ok_or_else(|| format!("Transit key {name} has no version {version}"))?;
            let public = PublicKey::from_pem_for(pem, self.alg).map_err(|e| e.to_string())?;
            let key = SigningKey::Transit {
                name: name.to_owned(),
                version,
                public,
            };
            Entry::new(id, key, self.alg)
                .map(Arc::new)
                .map_err(|e| e.to_string())
        };
        let now = now_unix();
        let mut ring = Ring::new(entry(record.current)?);
        if let Some(next) = record.next {
            ring.next = Some((entry(next.version)?, next.at));
        }
        for r in record
            .retiring
            .iter()
            .filter(|r| self.in_overlap(r.at, now))
            .take(MAX_RETIRING)
        {
            ring.retiring.push((entry(r.version)?, r.at));
        }
        ring.settle(id, now, self.overlap_secs);
        self.write().insert(id.clone(), ring);
        Ok(())
    }
}
