//! A key id's ring of key pairs and its phases (next, current, retiring):
//! activation by time, rotation (phased or emergency), and the status the
//! endpoint shows. Kept apart from the store's lookups and its files.

use std::sync::Arc;

use s2s_auth::{KeyId, now_unix, time_fmt::iso_millis};

use super::{Entry, KeyStore, MAX_RETIRING, SigningKey, StoreError};

/// The key pairs of one key id.
#[derive(Debug, Clone)]
pub(super) struct Ring {
    pub(super) current: Arc<Entry>,
    /// Published, not signing yet: the key and its activation time.
    pub(super) next: Option<(Arc<Entry>, i64)>,
    /// Rotated out: each key with the unix time it stopped signing.
    pub(super) retiring: Vec<(Arc<Entry>, i64)>,
}

impl Ring {
    pub(super) fn new(current: Arc<Entry>) -> Self {
        Self {
            current,
            next: None,
            retiring: Vec::new(),
        }
    }

    /// Whether the next key's activation time has come.
    pub(super) fn due(&self, now: i64) -> bool {
        self.next.as_ref().is_some_and(|(_, at)| *at <= now)
    }

    /// The next key becomes current if its time has come; the current one
    /// retires as of that time (not as of now: its overlap is counted from
    /// when it stopped signing).
    pub(super) fn settle(&mut self, id: &KeyId, now: i64, overlap_secs: i64) {
        if !self.due(now) {
            return;
        }
        let Some((next, at)) = self.next.take() else {
            return;
        };
        let retiring = std::mem::replace(&mut self.current, next);
        tracing::info!(
            key_id = %id,
            "{id}: next key {} is now current and signs; {} retires (verifies until {})",
            self.current.kid(),
            retiring.kid(),
            iso_millis(at.saturating_add(overlap_secs))
        );
        self.retiring.push((retiring, at));
    }
}

/// How a rotation goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RotationMode {
    /// Publish the new key now, sign with it after the publish-ahead time.
    Phased,
    /// The current key is compromised: sign with the new key at once and
    /// withdraw the current one (cached verifiers refuse new tokens until
    /// they refetch the JWK Set: on purpose).
    Emergency,
}

/// What [`KeyStore::rotate`] did.
#[derive(Debug)]
pub struct Rotation {
    /// The new key pair.
    pub key: Arc<Entry>,
    /// Unix time from which it signs (now, for an emergency rotation).
    pub activates_at: i64,
    /// The key that was current: it now retires (`previousKid` on the wire).
    pub retiring_kid: String,
    /// Unix time after which the retiring key no longer verifies (now, for
    /// an emergency rotation: it is withdrawn).
    pub retiring_valid_until: i64,
}

/// A key's phase, for `GET /utils/keys/{keyId}/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Next,
    Current,
    Retiring,
}

/// One key of a ring, as the status endpoint shows it.
#[derive(Debug, Clone)]
pub struct KeyStatus {
    pub kid: String,
    pub phase: Phase,
    /// Next: when it starts signing.
    pub activates_at: Option<i64>,
    /// Retiring: when it stopped signing.
    pub retired_at: Option<i64>,
    /// Retiring: when it leaves the JWK Set and stops verifying.
    pub valid_until: Option<i64>,
}

impl KeyStore {
    /// Refuses early what [`KeyStore::rotate`] would refuse (unknown key
    /// id, a pending next key, too many retiring keys), so no key is
    /// generated for nothing.
    pub fn check_rotate(&self, id: &KeyId, mode: RotationMode) -> Result<(), StoreError> {
        let now = now_unix();
        let ring = self
            .ring(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        self.refusal(id, &ring, mode, now).map_or(Ok(()), Err)
    }

    fn refusal(&self, id: &KeyId, ring: &Ring, mode: RotationMode, now: i64) -> Option<StoreError> {
        if mode == RotationMode::Emergency {
            // A compromised key must always be replaceable.
            return None;
        }
        if let Some((next, at)) = &ring.next {
            return Some(StoreError::Pending(format!(
                "{id} already has a next key, {}, published and signing from {}: \
                 rotate again after that (or use ?emergency=1 if the current key is compromised)",
                next.kid(),
                iso_millis(*at)
            )));
        }
        let live: Vec<i64> = ring
            .retiring
            .iter()
            .filter(|(_, at)| self.in_overlap(*at, now))
            .map(|(_, at)| *at)
            .collect();
        if live.len() >= MAX_RETIRING {
            let leaves = live
                .iter()
                .map(|at| at.saturating_add(self.overlap_secs))
                .min()
                .unwrap_or(now);
            return Some(StoreError::Limit(format!(
                "{id} already has {MAX_RETIRING} rotated-out keys still verifying; \
                 the oldest leaves at {} (or replace the key with GET /keys/{id})",
                iso_millis(leaves)
            )));
        }
        None
    }

    /// Rotates `id` to `key`. Phased: `pair` is published now and signs
    /// after the publish-ahead time; the current key signs until then and
    /// verifies for the overlap after. Emergency: `pair` signs now and the
    /// current key (and any pending next key) is withdrawn at once.
    pub fn rotate(
        &self,
        id: &KeyId,
        key: SigningKey,
        mode: RotationMode,
    ) -> Result<Rotation, StoreError> {
        let entry = Arc::new(Entry::new(id, key, self.alg)?);
        let now = now_unix();
        let mut keys = self.write();
        let ring = keys
            .get_mut(id)
            .ok_or_else(|| StoreError::NotFound(id.clone()))?;
        ring.settle(id, now, self.overlap_secs);
        ring.retiring.retain(|(_, at)| self.in_overlap(*at, now));
        if let Some(refusal) = self.refusal(id, ring, mode, now) {
            return Err(refusal);
        }
        let retiring_kid = ring.current.kid().to_owned();
        match mode {
            RotationMode::Phased => {
                // `now` is whole seconds, rounded down: one more second
                // makes the real wait at least the publish-ahead time.
                let at = match self.publish_ahead_secs {
                    0 => now,
                    ahead => now.saturating_add(ahead).saturating_add(1),
                };
                ring.next = Some((Arc::clone(&entry), at));
                // With no publish-ahead time, the new key signs at once.
                ring.settle(id, now, self.overlap_secs);
                Ok(Rotation {
                    key: entry,
                    activates_at: at,
                    retiring_kid,
                    retiring_valid_until: at.saturating_add(self.overlap_secs),
                })
            }
            RotationMode::Emergency => {
                if let Some((next, _)) = ring.next.take() {
                    tracing::warn!(key_id = %id, "emergency rotation: discarded the pending next key {}", next.kid());
                }
                ring.current = Arc::clone(&entry);
                Ok(Rotation {
                    key: entry,
                    activates_at: now,
                    retiring_kid,
                    retiring_valid_until: now,
                })
            }
        }
    }

    /// Each key of `id` with its phase: next, current, retiring (newest first).
    pub fn status(&self, id: &KeyId) -> Option<Vec<KeyStatus>> {
        let ring = self.ring(id)?;
        let now = now_unix();
        let mut out = Vec::new();
        if let Some((next, at)) = &ring.next {
            out.push(KeyStatus {
                kid: next.kid().to_owned(),
                phase: Phase::Next,
                activates_at: Some(*at),
                retired_at: None,
                valid_until: None,
            });
        }
        out.push(KeyStatus {
            kid: ring.current.kid().to_owned(),
            phase: Phase::Current,
            activates_at: None,
            retired_at: None,
            valid_until: None,
        });
        let mut retiring: Vec<_> = ring
            .retiring
            .iter()
            .filter(|(_, at)| self.in_overlap(*at, now))
            .collect();
        retiring.sort_unstable_by_key(|(_, at)| std::cmp::Reverse(*at));
        for (e, at) in retiring {
            out.push(KeyStatus {
                kid: e.kid().to_owned(),
                phase: Phase::Retiring,
                activates_at: None,
                retired_at: Some(*at),
                valid_until: Some(at.saturating_add(self.overlap_secs)),
            });
        }
        Some(out)
    }
}
