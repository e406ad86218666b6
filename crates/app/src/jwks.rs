//! Scenario 5: the factory's public keys, fetched as a JWK Set and cached.
//!
//! The pattern the field recommends between "ask the issuer every time"
//! (scenarios 1-2) and "hand every receiver the caller's key" (3-4): the
//! issuer publishes its public keys at `/.well-known/jwks.json`, each token
//! names its key with `kid`, and the receiver verifies locally from a cached
//! copy of the set. Rotation needs no restart and no file copying: a new
//! `kid` makes the receiver fetch the set again.
//!
//! The cache answers from memory while it is fresh (`JWKS_MAX_AGE_SECS`, or
//! less if the factory's `Cache-Control: max-age` says so). It fetches again
//! when it has expired or a token names a `kid` it does not hold. Refetches
//! for unknown `kid`s happen at most once per `JWKS_REFRESH_MIN_SECS`, so a
//! flood of tokens with made-up `kid`s cannot make it hammer the factory
//! (the first new `kid` after a rotation is fetched at once); after a failed
//! fetch, the next try also waits that long. Only one fetch runs at a time;
//! requests that arrive meanwhile are answered from the cached set if it
//! holds their `kid`, or wait for it. If the factory is down, the cached set
//! keeps working past its freshness, for `JWKS_MAX_STALE_SECS` at most (a
//! key the issuer withdrew must not be trusted forever).
//!
//! The set holds the keys of every key id at the factory; only keys of the
//! caller (`CALLER`, whose key id begins the `kid`: `servicea.2gvowRNF`) are
//! kept and used, so a token signed with another key id's key is refused
//! even if it claims `sub: servicea`.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{
    DecodingKey,
    jwk::{JwkSet, PublicKeyUse},
};
use reqwest::{StatusCode, header::CACHE_CONTROL};
use s2s_auth::{JwtError, SigningAlgorithm, jwk::key_id_of};

use crate::{
    error::AppError,
    outbound::{self, RequestId, Target, Timeouts},
};

/// A fetched set: keys by `kid`, and until when it is fresh.
struct Snapshot {
    keys: HashMap<String, Arc<DecodingKey>>,
    fetched: Instant,
    ttl: Duration,
}

impl Snapshot {
    fn fresh(&self) -> bool {
        self.fetched.elapsed() < self.ttl
    }

    /// Still allowed to serve when it cannot be refreshed.
    fn usable(&self, max_stale: Duration) -> bool {
        self.fetched.elapsed() < self.ttl.saturating_add(max_stale)
    }
}

/// When fetches last happened, for rate limiting.
#[derive(Default)]
struct Attempts {
    /// The last fetch made because a token named an unknown `kid`.
    unknown_kid: Option<Instant>,
    /// The last fetch that failed.
    failure: Option<Instant>,
}

/// The cached JWK Set of one issuer.
pub struct JwksCache {
    url: String,
    /// The key id whose keys may verify: the caller's (`CALLER`).
    owner: String,
    alg: SigningAlgorithm,
    /// How long past its freshness the cached set may still serve, while
    /// the issuer cannot be reached.
    max_stale: Duration,
    max_age: Duration,
    min_refresh: Duration,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Held while fetching (one fetch at a time).
    fetching: tokio::sync::Mutex<Attempts>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.url)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(
        url: String,
        owner: String,
        alg: SigningAlgorithm,
        max_age: Duration,
        min_refresh: Duration,
        max_stale: Duration,
    ) -> Self {
        Self {
            url,
            owner,
            alg,
            max_stale,
            max_age,
            min_refresh,
            snapshot: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(Attempts::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the set was requested from the issuer.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The key for `kid`: from the cache, or after fetching the set again.
    pub async fn key_for(
        &self,
        kid: &str,
        client: &reqwest::Client,
        rid: &RequestId,
        timeouts: Timeouts,
    ) -> Result<Arc<DecodingKey>, AppError> {
        // The set holds every key id's keys; only the caller's own keys may
        // verify the caller's tokens. A `kid` of another key id is refused
        // here, however valid its signature, and never causes a fetch.
        if key_id_of(kid) != Some(self.owner.as_str()) {
            return Err(no_such_kid(kid, &format!("not a key of {}", self.owner)));
        }
        if let Some(snap) = self.current()
            && snap.fresh()
            && let Some(key) = snap.keys.get(kid)
        {
            tracing::info!(
                "JWKS cache hit: kid {kid} (set fetched {} s ago, fresh for {} s more)",
                snap.fetched.elapsed().as_secs(),
                snap.ttl.saturating_sub(snap.fetched.elapsed()).as_secs()
            );
            return Ok(Arc::clone(key));
        }

        // One fetch at a time. While one runs, a request whose kid is in the
        // cached set is answered from it rather than kept waiting.
        let mut attempts = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(snap) = self.current()
                    && snap.usable(self.max_stale)
                    && let Some(key) = snap.keys.get(kid)
                {
                    tracing::info!(
                        "another request is refreshing the JWK Set: using the cached one for kid {kid}"
                    );
                    return Ok(Arc::clone(key));
                }
                self.fetching.lock().await
            }
        };
        let cached = self.current();
        if let Some(snap) = &cached
            && snap.fresh()
            && let Some(key) = snap.keys.get(kid)
        {
            tracing::info!("JWKS cache hit: kid {kid} (set just refreshed by another request)");
            return Ok(Arc::clone(key));
        }
        let unknown_kid = cached
            .as_ref()
            .is_some_and(|s| s.fresh() && !s.keys.contains_key(kid));
        let why = match &cached {
            None => "first use".to_owned(),
            Some(_) if unknown_kid => format!("unknown kid {kid}"),
            Some(s) if !s.keys.contains_key(kid) => {
                format!("cached set expired, unknown kid {kid}")
            }
            Some(_) => "cached set expired".to_owned(),
        };
        let recent = |at: Option<Instant>| at.filter(|t| t.elapsed() < self.min_refresh);
        let limit = if unknown_kid {
            recent(attempts.unknown_kid).map(|t| ("an unknown-kid refetch", t))
        } else {
            None
        }
        .or_else(|| recent(attempts.failure).map(|t| ("a failed fetch", t)));
        if let Some((what, at)) = limit {
            tracing::info!(
                "not fetching the JWK Set ({why}): {what} was {} ms ago, at most one per {} s",
                at.elapsed().as_millis(),
                self.min_refresh.as_secs()
            );
            return self.answer_from_cache(cached.as_deref(), kid, "refetch rate-limited");
        }

        if unknown_kid {
            attempts.unknown_kid = Some(Instant::now());
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!("fetching the JWK Set from {} ({why})", self.url);
        match self.fetch(client, rid, timeouts).await {
            Ok(snap) => {
                attempts.failure = None;
                let mut kids: Vec<&str> = snap.keys.keys().map(String::as_str).collect();
                kids.sort_unstable();
                tracing::info!(
                    "fetched the JWK Set: {} keys of {} (kids {}), cached for {} s",
                    kids.len(),
                    self.owner,
                    kids.join(", "),
                    snap.ttl.as_secs()
                );
                let snap = Arc::new(snap);
                *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::clone(&snap));
                snap.keys
                    .get(kid)
                    .cloned()
                    .ok_or_else(|| no_such_kid(kid, "not in the issuer's JWK Set"))
            }
            Err(err) => {
                attempts.failure = Some(Instant::now());
                tracing::warn!("could not fetch the JWK Set: {err}");
                // A kid the cached set holds is still served; for any other
                // kid we cannot tell, so the answer is the fetch's failure.
                match cached
                    .as_deref()
                    .filter(|s| s.usable(self.max_stale))
                    .and_then(|s| s.keys.get(kid))
                {
                    Some(key) => {
                        tracing::info!(
                            "using the cached JWK Set for kid {kid} (the issuer could not be reached)"
                        );
                        Ok(Arc::clone(key))
                    }
                    None => Err(err),
                }
            }
        }
    }

    /// No fetch now: answer from the cached set, also past its freshness,
    /// but not past `JWKS_MAX_STALE_SECS` beyond it.
    fn answer_from_cache(
        &self,
        cached: Option<&Snapshot>,
        kid: &str,
        why: &str,
    ) -> Result<Arc<DecodingKey>, AppError> {
        match cached {
            Some(snap) if snap.usable(self.max_stale) => match snap.keys.get(kid) {
                Some(key) => {
                    tracing::info!("using the cached JWK Set for kid {kid} ({why})");
                    Ok(Arc::clone(key))
                }
                None => Err(no_such_kid(kid, why)),
            },
            Some(_) => Err(AppError::Upstream {
                who: "jwt-factory".into(),
                url: self.url.clone(),
                reason: format!(
                    "the cached JWK Set is more than {} s past its freshness and cannot be refreshed ({why})",
                    self.max_stale.as_secs()
                ),
            }),
            None => Err(AppError::Upstream {
                who: "jwt-factory".into(),
                url: self.url.clone(),
                reason: format!("no JWK Set yet ({why})"),
            }),
        }
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        rid: &RequestId,
        timeouts: Timeouts,
    ) -> Result<Snapshot, AppError> {
        let target = Target {
            who: "jwt-factory",
            url: self.url.clone(),
        };
        let (status, headers, body) =
            outbound::send_raw(client.get(&self.url), &target, rid, timeouts).await?;
        let bad = |reason: String| AppError::Upstream {
            who: "jwt-factory".into(),
            url: self.url.clone(),
            reason,
        };
        if status != StatusCode::OK {
            return Err(bad(format!("JWK Set answered {status}")));
        }
        let set: JwkSet =
            serde_json::from_str(&body).map_err(|e| bad(format!("not a JWK Set: {e}")))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            // Only the owner's signature keys for the pinned algorithm.
            let usable = key_id_of(&kid) == Some(self.owner.as_str())
                && jwk
                    .common
                    .key_algorithm
                    .is_some_and(|a| a.to_string() == self.alg.name())
                && matches!(
                    jwk.common.public_key_use,
                    None | Some(PublicKeyUse::Signature)
                );
            if !usable {
                tracing::info!(
                    "ignoring JWK {kid:?}: not a {} signature key of {}",
                    self.alg,
                    self.owner
                );
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => tracing::warn!("ignoring JWK {kid}: {e}"),
            }
        }
        // Never fresh for less than JWKS_REFRESH_MIN_SECS: otherwise every
        // request could refetch, and the refetch limit would not hold.
        let ttl = max_age(headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()))
            .map_or(self.max_age, |m| m.min(self.max_age))
            .max(self.min_refresh);
        Ok(Snapshot {
            keys,
            fetched: Instant::now(),
            ttl,
        })
    }
}

fn no_such_kid(kid: &str, why: &str) -> AppError {
    AppError::from(JwtError::invalid(format!("no key with kid {kid} ({why})")))
}

/// `max-age=N` from a `Cache-Control` value.
fn max_age(cache_control: Option<&str>) -> Option<Duration> {
    cache_control?
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.parse().ok())
        .map(Duration::from_secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_max_age() {
        assert_eq!(
            max_age(Some("public, max-age=300")),
            Some(Duration::from_secs(300))
        );
        assert_eq!(max_age(Some("no-cache")), None);
        assert_eq!(max_age(None), None);
    }
}
