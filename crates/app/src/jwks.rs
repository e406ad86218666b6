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
//! In steady state no request waits for a fetch: once the set has been
//! fetched, a background task ([`JwksCache::refresh_in_background`],
//! started by [`crate::receiver::run`] and stopped with it) fetches it
//! again at 80% of its freshness, before it goes stale. With the factory's
//! phased rotation (a next key published `ROTATION_PUBLISH_AHEAD_SECS`, by
//! default the set's max-age, before it signs) the new `kid` is then in the
//! cached set before the first token signed with it arrives, so no valid
//! `kid` depends on the rate-limited unknown-`kid` refetch, and a flood of
//! made-up `kid`s cannot delay one. If the background fetch fails, the
//! cached copy keeps serving (within `JWKS_MAX_STALE_SECS`), requests do not
//! fetch in its place, and the task retries and logs the failure once per
//! `JWKS_REFRESH_MIN_SECS` (at least 1 s), not once per request.
//!
//! The set holds the keys of every key id at the factory; only keys of the
//! caller (`CALLER`, whose key id begins the `kid`: `servicea.2gvowRNF`) are
//! kept and used, so a token signed with another key id's key is refused
//! even if it claims `sub: servicea`.

use std::{
    collections::HashMap,
    sync::{
        Arc, RwLock,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, jwk::JwkSet};
use reqwest::{StatusCode, header::CACHE_CONTROL};
use s2s_auth::{JwtError, SigningAlgorithm, jwk::key_id_of};
use s2s_web::{
    outbound::{self, Deadline, Repeat, Target, Timeouts, UpstreamError},
    request_tracing::RequestId,
};

use crate::{error::AppError, token_check::JwksSettings};

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

/// Why a fetch is about to happen, for the log and the rate limit.
struct Reason {
    /// A fresh set lacks the `kid`: a refetch a forged `kid` could cause.
    unknown_kid: bool,
    text: String,
}

/// The cached JWK Set of one issuer.
pub struct JwksCache {
    /// Whether [`JwksCache::refresh_in_background`] is running: then a
    /// request never fetches because the set went stale (the task does).
    background: AtomicBool,
    /// Signalled when a set is stored: the background task starts with the
    /// first set a request fetched.
    stored: tokio::sync::Notify,
    /// Failed background refreshes (each logged once).
    background_failures: AtomicU64,
    url: String,
    /// The key id whose keys may verify: the caller's (`CALLER`).
    owner: String,
    alg: SigningAlgorithm,
    /// How long past its freshness the cached set may still serve, while
    /// the issuer cannot be reached.
    max_stale: Duration,
    max_age: Duration,
    min_refresh: Duration,
    timeouts: Timeouts,
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
        settings: &JwksSettings,
        owner: String,
        alg: SigningAlgorithm,
        timeouts: Timeouts,
    ) -> Self {
        Self {
            background: AtomicBool::new(false),
            stored: tokio::sync::Notify::new(),
            background_failures: AtomicU64::new(0),
            url: settings.url.clone(),
            owner,
            alg,
            max_stale: settings.max_stale,
            max_age: settings.max_age,
            min_refresh: settings.min_refresh,
            timeouts,
            snapshot: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(Attempts::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the set was requested from the issuer.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// How many background refreshes failed (each was logged once).
    pub fn background_failures(&self) -> u64 {
        self.background_failures.load(Ordering::Relaxed)
    }

    /// Keeps the set fetched from the issuer (when and why it is logged by
    /// the caller) and wakes the background task.
    fn keep(&self, snap: Snapshot) {
        let mut kids: Vec<&str> = snap.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        tracing::info!(
            "fetched the JWK Set: {} keys of {} (kids {}), cached for {} s",
            kids.len(),
            self.owner,
            kids.join(", "),
            snap.ttl.as_secs()
        );
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snap));
        self.stored.notify_one();
    }

    /// Keeps the cached set fresh without a request waiting: from the first
    /// set a request fetched on, fetches it again at 80% of its freshness;
    /// after a failure, every `JWKS_REFRESH_MIN_SECS` (at least 1 s), with
    /// one warning per try. Runs until dropped: [`crate::receiver::run`]
    /// aborts it when the server stops.
    pub async fn refresh_in_background(&self, client: &reqwest::Client) {
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        self.background.store(true, Ordering::Relaxed);
        let _running = Running(&self.background);
        let retry = self.min_refresh.max(Duration::from_secs(1));
        let mut failed_at: Option<Instant> = None;
        loop {
            let Some(snap) = self.current() else {
                self.stored.notified().await;
                continue;
            };
            let due = match failed_at {
                Some(at) if at > snap.fetched => at + retry,
                _ => snap.fetched + refresh_after(snap.ttl),
            };
            tokio::time::sleep_until(due.into()).await;
            if !self.refresh_now(client).await {
                failed_at = Some(Instant::now());
            }
        }
    }

    /// One background refresh; false if it failed.
    async fn refresh_now(&self, client: &reqwest::Client) -> bool {
        let mut attempts = self.fetching.lock().await;
        // A request may have refetched the set meanwhile (a new kid).
        if let Some(snap) = self.current()
            && snap.fetched.elapsed() < refresh_after(snap.ttl)
        {
            return true;
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "refreshing the JWK Set from {} in the background, before the cached copy goes stale",
            self.url
        );
        match self.fetch(client, &RequestId::default()).await {
            Ok(snap) => {
                attempts.failure = None;
                self.keep(snap);
                true
            }
            Err(err) => {
                attempts.failure = Some(Instant::now());
                self.background_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    "background refresh of the JWK Set failed: {err}. Keeping the cached copy \
                     (it serves up to {} s past its freshness); next try in {} s",
                    self.max_stale.as_secs(),
                    self.min_refresh.max(Duration::from_secs(1)).as_secs()
                );
                false
            }
        }
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Verifies `token` against `expect` with the key its `kid` names (the
    /// header is checked first: algorithm, `typ`, `crit`; no `kid` is a
    /// refusal). The claims, and the kid for the log.
    pub async fn verify(
        &self,
        expect: &s2s_auth::Expectations,
        token: &str,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<(s2s_auth::jws::Claims, String), AppError> {
        let kid = expect.kid(token)?.ok_or_else(|| {
            s2s_auth::JwtError::invalid(
                "jwt has no kid: it cannot be matched to a key of the issuer's JWK Set",
            )
        })?;
        tracing::info!("token names kid {kid}; looking it up in the factory's JWK Set");
        let key = self.key_for(&kid, client, rid).await?;
        Ok((expect.verify_with(token, &key)?, kid))
    }

    /// The key for `kid`: from the cache, or after fetching the set again.
    pub async fn key_for(
        &self,
        kid: &str,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<Arc<DecodingKey>, AppError> {
        // The set holds every key id's keys; only the caller's own keys may
        // verify the caller's tokens. A `kid` of another key id is refused
        // here, however valid its signature, and never causes a fetch.
        if key_id_of(kid) != Some(self.owner.as_str()) {
            return Err(no_such_kid(kid, &format!("not a key of {}", self.owner)));
        }
        if let Some(key) = self.fresh_hit(kid, "") {
            return Ok(key);
        }
        // Stale: the background task is refreshing it (or retrying after a
        // failure); a request does not fetch in its place.
        if self.background.load(Ordering::Relaxed)
            && let Some(key) = self.usable_hit(kid)
        {
            tracing::info!(
                "JWKS cache: kid {kid} from the cached set, past its freshness (the background refresh is due or retrying)"
            );
            return Ok(key);
        }
        // One fetch at a time. While one runs, a request whose kid is in the
        // cached set is answered from it rather than kept waiting.
        let mut attempts = match self.fetching.try_lock() {
            Ok(guard) => guard,
            Err(_) => {
                if let Some(key) = self.usable_hit(kid) {
                    tracing::info!(
                        "another request is refreshing the JWK Set: using the cached one for kid {kid}"
                    );
                    return Ok(key);
                }
                self.fetching.lock().await
            }
        };
        if let Some(key) = self.fresh_hit(kid, " (set just refreshed by another request)") {
            return Ok(key);
        }
        let cached = self.current();
        let reason = self.reason(cached.as_deref(), kid);
        if let Some((what, at)) = self.rate_limited(&attempts, &reason) {
            tracing::info!(
                "not fetching the JWK Set ({}): {what} was {} ms ago, at most one per {} s",
                reason.text,
                at.elapsed().as_millis(),
                self.min_refresh.as_secs()
            );
            return self.answer_from_cache(cached.as_deref(), kid, "refetch rate-limited");
        }
        if reason.unknown_kid {
            attempts.unknown_kid = Some(Instant::now());
        }
        self.refresh(&mut attempts, cached.as_deref(), kid, &reason, client, rid)
            .await
    }

    /// The key from a fresh cached set, logged as a cache hit.
    fn fresh_hit(&self, kid: &str, note: &str) -> Option<Arc<DecodingKey>> {
        let snap = self.current().filter(|s| s.fresh())?;
        let key = snap.keys.get(kid)?;
        tracing::info!(
            "JWKS cache hit: kid {kid} (set fetched {} s ago, fresh for {} s more){note}",
            snap.fetched.elapsed().as_secs(),
            snap.ttl.saturating_sub(snap.fetched.elapsed()).as_secs()
        );
        Some(Arc::clone(key))
    }

    /// The key from a cached set that may still serve, fresh or not.
    fn usable_hit(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let snap = self.current().filter(|s| s.usable(self.max_stale))?;
        snap.keys.get(kid).cloned()
    }

    fn reason(&self, cached: Option<&Snapshot>, kid: &str) -> Reason {
        let unknown_kid = cached.is_some_and(|s| s.fresh() && !s.keys.contains_key(kid));
        let text = match cached {
            None => "first use".to_owned(),
            Some(_) if unknown_kid => format!("unknown kid {kid}"),
            Some(s) if !s.keys.contains_key(kid) => {
                format!("cached set expired, unknown kid {kid}")
            }
            Some(_) => "cached set expired".to_owned(),
        };
        Reason { unknown_kid, text }
    }

    /// Which limit forbids fetching now, and when it last applied.
    fn rate_limited(
        &self,
        attempts: &Attempts,
        reason: &Reason,
    ) -> Option<(&'static str, Instant)> {
        let recent = |at: Option<Instant>| at.filter(|t| t.elapsed() < self.min_refresh);
        reason
            .unknown_kid
            .then(|| recent(attempts.unknown_kid).map(|t| ("an unknown-kid refetch", t)))
            .flatten()
            .or_else(|| recent(attempts.failure).map(|t| ("a failed fetch", t)))
    }

    /// Fetches the set, keeps it, and answers for `kid` from it; if the
    /// fetch fails, answers from the cached set if it may still serve.
    async fn refresh(
        &self,
        attempts: &mut Attempts,
        cached: Option<&Snapshot>,
        kid: &str,
        reason: &Reason,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<Arc<DecodingKey>, AppError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!("fetching the JWK Set from {} ({})", self.url, reason.text);
        match self.fetch(client, rid).await {
            Ok(snap) => {
                attempts.failure = None;
                let key = snap.keys.get(kid).cloned();
                self.keep(snap);
                key.ok_or_else(|| no_such_kid(kid, "not in the issuer's JWK Set"))
            }
            Err(err) => {
                attempts.failure = Some(Instant::now());
                tracing::warn!("could not fetch the JWK Set: {err}");
                // A kid the cached set holds is still served; for any other
                // kid we cannot tell, so the answer is the fetch's failure.
                match cached
                    .filter(|s| s.usable(self.max_stale))
                    .and_then(|s| s.keys.get(kid))
                {
                    Some(key) => {
                        tracing::info!(
                            "using the cached JWK Set for kid {kid} (the issuer could not be reached)"
                        );
                        Ok(Arc::clone(key))
                    }
                    None => Err(err.into()),
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
        let target = self.target();
        match cached {
            Some(snap) if snap.usable(self.max_stale) => match snap.keys.get(kid) {
                Some(key) => {
                    tracing::info!("using the cached JWK Set for kid {kid} ({why})");
                    Ok(Arc::clone(key))
                }
                None => Err(no_such_kid(kid, why)),
            },
            Some(_) => Err(UpstreamError::bad_answer(
                &target,
                format!(
                    "the cached JWK Set is more than {} s past its freshness and cannot be refreshed ({why})",
                    self.max_stale.as_secs()
                ),
            )
            .into()),
            None => Err(UpstreamError::bad_answer(&target, format!("no JWK Set yet ({why})")).into()),
        }
    }

    fn target(&self) -> Target<'static> {
        Target {
            who: "jwt-factory",
            url: self.url.clone(),
        }
    }

    async fn fetch(
        &self,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<Snapshot, UpstreamError> {
        let target = self.target();
        let deadline = Deadline::start(self.timeouts);
        let (status, headers, body) = outbound::send(
            client.get(&self.url),
            &target,
            rid,
            deadline,
            Repeat::IfSafe,
        )
        .await?;
        if status != StatusCode::OK {
            return Err(UpstreamError::unexpected(&target, status, &body));
        }
        let set: JwkSet = serde_json::from_str(&body)
            .map_err(|e| UpstreamError::bad_answer(&target, format!("not a JWK Set: {e}")))?;
        let keys = self.usable_keys(&set);
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

    /// Only the owner's signature keys for the pinned algorithm.
    fn usable_keys(&self, set: &JwkSet) -> HashMap<String, Arc<DecodingKey>> {
        // A kid that names two keys is ambiguous: neither is used.
        let (kept, duplicates) = s2s_auth::jwk::unambiguous(set);
        for kid in &duplicates {
            tracing::warn!("ignoring kid {kid:?}: more than one key in the JWK Set names it");
        }
        let mut keys = HashMap::new();
        for jwk in &kept {
            let kid = jwk.common.key_id.clone().unwrap_or_default();
            if key_id_of(&kid) != Some(self.owner.as_str()) {
                tracing::info!("ignoring JWK {kid:?}: not a key of {}", self.owner);
                continue;
            }
            // `use`, `key_ops`, `alg`, `kty` and `crv` must fit the pinned algorithm.
            if let Err(why) = s2s_auth::jwk::usable_for(jwk, self.alg) {
                tracing::info!("ignoring JWK {kid:?}: {why}");
                continue;
            }
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => tracing::warn!("ignoring JWK {kid}: {e}"),
            }
        }
        keys
    }
}

/// When the background task refreshes a set fresh for `ttl`: at 80% of it,
/// and never more often than once a second.
fn refresh_after(ttl: Duration) -> Duration {
    (ttl * 4 / 5).max(Duration::from_secs(1))
}

fn no_such_kid(kid: &str, why: &str) -> AppError {
    JwtError::invalid(format!("no key with kid {kid} ({why})")).into()
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
