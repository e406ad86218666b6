//! The `jti`s of client assertions already used, so each assertion works
//! once (RFC 7523 §3, item 7).
//!
//! Why it looks like this:
//! - **Until `exp + leeway`.** Validation accepts an assertion until its
//!   `exp` plus the clock leeway, so its `jti` is remembered exactly as
//!   long; forgetting it at `exp` would open a replay window.
//! - **Per client.** Each client has its own table and its own bound
//!   (`JTI_CACHE_PER_CLIENT`, and at most the total divided by the
//!   registered clients): a client that fills its share is refused, and no
//!   other client notices, however many fill theirs. A total bound
//!   (`JTI_CACHE_TOTAL`, three times the per-client one by default) caps the
//!   memory. Only clients whose
//!   signature verified ever get here, so the number of tables is the
//!   number of registered clients.
//! - **Small entries.** A `jti` is remembered as the first 16 bytes of its
//!   SHA-256 and its expiry as a `u32` of Unix seconds: 20 bytes, whatever
//!   the `jti`'s length, in a `HashMap` that spends one more control byte
//!   per slot and keeps 1/8 to 9/16 of its slots free. From the table's
//!   own capacity (`memory_per_entry` below): 900,000 entries, one
//!   client's default share, take 22 MB (2^20 slots of 21 bytes, 24.5
//!   bytes per entry); the default total, 2,700,000, at most 67 MB. Sixteen bytes of SHA-256
//!   make a false "already used" for a fresh `jti` about 2^-88 likely with
//!   a full table, and the digest cannot be steered.
//! - **Expiry by time, amortised.** A client's table is swept (expired
//!   entries dropped) when it has doubled since the last sweep or reaches
//!   its bound, so a sweep of n entries follows at least n/2 inserts; a
//!   full table is swept at most once a second, so a client hammering its
//!   bound cannot make every request pay for a sweep. An expired entry
//!   never refuses anything, swept or not.

use std::{collections::HashMap, sync::Mutex};

use aws_lc_rs::digest::{SHA256, digest};

/// A remembered `jti`: the first 16 bytes of its SHA-256.
type JtiDigest = [u8; 16];

/// A table is not swept before it holds this many entries.
const MIN_SWEEP: usize = 1024;

/// How many `jti`s are remembered at once.
#[derive(Clone, Copy, Debug)]
pub struct JtiLimits {
    /// For one client.
    pub per_client: usize,
    /// For all clients together.
    pub total: usize,
}

/// Why an assertion's `jti` cannot be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JtiRefusal {
    #[error("client assertion already used (jti seen before): sign a new one with a fresh jti")]
    Replay,
    #[error(
        "too many client assertions in flight for {client} (its share: {limit} unexpired jtis): \
         try again when some expire, or sign shorter-lived assertions"
    )]
    ClientFull { client: String, limit: usize },
    #[error("too many client assertions in flight ({limit} unexpired jtis): try again in a minute")]
    Full { limit: usize },
}

/// The `jti`s seen, per client, each with the time it may be forgotten.
#[derive(Debug)]
pub struct JtiCache {
    limits: JtiLimits,
    leeway_secs: i64,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    clients: HashMap<String, ClientJtis>,
    /// Entries in all tables.
    total: usize,
    /// When every table was last swept because the total was reached.
    last_full_sweep: u32,
}

/// One client's `jti`s: digest → Unix second after which it is forgotten.
#[derive(Debug, Default)]
struct ClientJtis {
    seen: HashMap<JtiDigest, u32>,
    /// Sweep when `seen` grows to this.
    sweep_at: usize,
    last_sweep: u32,
}

impl ClientJtis {
    /// Drops expired entries (at most once a second when the table is at
    /// `limit`); how many were dropped.
    fn sweep(&mut self, now: u32, limit: usize) -> usize {
        if self.seen.len() >= limit && self.last_sweep == now {
            return 0;
        }
        let before = self.seen.len();
        self.seen.retain(|_, until| *until >= now);
        let after = self.seen.len();
        self.sweep_at = (2 * after).max(MIN_SWEEP);
        self.last_sweep = now;
        if self.seen.capacity() > 4 * after.max(MIN_SWEEP) {
            self.seen.shrink_to(2 * after);
        }
        before - after
    }
}

/// Unix seconds as the `u32` stored (saturating: good until 2106).
fn secs(t: i64) -> u32 {
    u32::try_from(t.max(0)).unwrap_or(u32::MAX)
}

/// The first 16 bytes of a `jti`'s SHA-256: how it is remembered here,
/// and how it is named in OpenBao's shared records.
pub(crate) fn jti_digest(jti: &str) -> JtiDigest {
    let mut out = [0; 16];
    out.copy_from_slice(&digest(&SHA256, jti.as_bytes()).as_ref()[..16]);
    out
}

impl JtiCache {
    /// An empty cache; each `jti` is remembered until `exp + leeway_secs`.
    pub fn new(limits: JtiLimits, leeway_secs: u64) -> Self {
        Self {
            limits,
            leeway_secs: i64::try_from(leeway_secs).unwrap_or(i64::MAX),
            state: Mutex::default(),
        }
    }

    /// Records `jti` of `client`, whose assertion expires at `exp` (whole
    /// seconds, rounded up), at time `now`, among `clients` registered
    /// clients: an error if it was used before and is still remembered (a
    /// replay), if the assertion has expired (validation ran a moment
    /// earlier: a replay at that second's edge), or if there is no room.
    ///
    /// Each client's share is `JTI_CACHE_PER_CLIENT`, and at most its fair
    /// part of `JTI_CACHE_TOTAL` (the total divided by the registered
    /// clients), so the shares together never exceed the total: however
    /// many clients fill theirs, every other client keeps its own.
    pub fn first_use(
        &self,
        client: &str,
        jti: &str,
        exp: i64,
        now: i64,
        clients: usize,
    ) -> Result<(), JtiRefusal> {
        let key = jti_digest(jti);
        let until = secs(exp.saturating_add(self.leeway_secs));
        let now = secs(now);
        if until < now {
            return Err(JtiRefusal::Replay);
        }
        let total = self.limits.total;
        let per_client = self.limits.per_client.min(total / clients.max(1)).max(1);
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let state = &mut *guard;
        let jtis = state.clients.entry(client.to_owned()).or_default();
        let known = match jtis.seen.get(&key) {
            Some(t) if *t >= now => return Err(JtiRefusal::Replay),
            Some(_) => true,
            None => false,
        };
        if !known && jtis.seen.len() >= jtis.sweep_at.min(per_client) {
            state.total -= jtis.sweep(now, per_client);
        }
        if !known && jtis.seen.len() >= per_client {
            return Err(JtiRefusal::ClientFull {
                client: client.to_owned(),
                limit: per_client,
            });
        }
        if !known && state.total >= total {
            if state.last_full_sweep != now {
                state.last_full_sweep = now;
                for other in state.clients.values_mut() {
                    state.total -= other.sweep(now, usize::MAX);
                }
            }
            if state.total >= total {
                return Err(JtiRefusal::Full { limit: total });
            }
        }
        let jtis = state.clients.entry(client.to_owned()).or_default();
        if jtis.seen.insert(key, until).is_none() {
            state.total += 1;
        }
        Ok(())
    }

    /// How many `jti`s are held now (expired ones not yet swept included).
    pub fn len(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).total
    }

    /// Whether none are held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cache(per_client: usize, total: usize) -> JtiCache {
        JtiCache::new(JtiLimits { per_client, total }, 30)
    }

    #[test]
    fn a_jti_is_refused_until_exp_plus_leeway_then_forgotten() {
        let c = cache(10, 20);
        c.first_use("a", "j", 100, 50, 1).unwrap();
        assert_eq!(c.first_use("a", "j", 100, 129, 1), Err(JtiRefusal::Replay));
        assert_eq!(c.first_use("a", "j", 100, 130, 1), Err(JtiRefusal::Replay));
        c.first_use("a", "j", 200, 131, 1).unwrap();
        // Another client's jti of the same text is its own.
        c.first_use("b", "j", 100, 50, 1).unwrap();
    }

    #[test]
    fn full_clients_never_lock_out_another_and_free_by_time() {
        // Three registered clients share a total of 6: 2 each, although
        // JTI_CACHE_PER_CLIENT is 3.
        let c = cache(3, 6);
        for client in ["a", "b"] {
            for j in ["1", "2"] {
                c.first_use(client, j, 100, 50, 3).unwrap();
            }
            assert!(matches!(
                c.first_use(client, "3", 100, 50, 3),
                Err(JtiRefusal::ClientFull { limit: 2, .. })
            ));
        }
        // Two clients at their share: the third still has its own.
        c.first_use("c", "1", 100, 50, 3).unwrap();
        c.first_use("c", "2", 100, 50, 3).unwrap();
        // After exp + leeway, everyone has room again.
        c.first_use("a", "3", 300, 131, 3).unwrap();
        c.first_use("c", "3", 300, 131, 3).unwrap();
    }

    #[test]
    fn an_assertion_past_exp_plus_leeway_is_refused_even_if_forgotten() {
        // Validated a moment before, spent a second later.
        let c = cache(10, 20);
        assert_eq!(c.first_use("a", "k", 100, 131, 1), Err(JtiRefusal::Replay));
    }

    #[test]
    fn sweeps_keep_the_table_near_its_live_size() {
        let c = cache(1_000_000, 2_000_000);
        // 60 s assertions at 1,000/s for 10 minutes: about 90,000 live.
        for i in 0..600_000_i64 {
            let now = i / 1000;
            c.first_use("a", &format!("jti-{i}"), now + 60, now, 1)
                .unwrap();
        }
        let held = c.len();
        assert!((90_000..=2 * 91_000 + MIN_SWEEP).contains(&held), "{held}");
    }

    /// The figure in the module doc: one client's default share, 900,000
    /// entries, in 2^20 slots of 21 bytes.
    #[test]
    fn memory_per_entry() {
        let mut t = ClientJtis::default();
        for i in 0..900_000_u32 {
            t.seen.insert(jti_digest(&i.to_string()), i);
        }
        let slot = size_of::<(JtiDigest, u32)>() + 1;
        assert_eq!(slot, 21);
        let slots = (t.seen.capacity() * 8 / 7).next_power_of_two();
        assert_eq!(slots, 1 << 20);
        let bytes = slots * slot;
        assert!(bytes < 23_000_000, "{bytes}");
        assert!(bytes / 900_000 <= 25, "{}", bytes / 900_000);
    }
}
