//! A cached JWK Set fetched from its publisher: one implementation for every
//! holder of one, so each gets the same rules. The receivers hold the
//! factory's set (scenario 5, the gateway's verifier); the factory holds the
//! set of each client registered with a `jwks_uri`. The two used to be
//! separate, and the factory's copy lacked most of these rules.
//!
//! - The set is fetched with the service's bounded outbound calls (one
//!   deadline, no redirects) and parsed with the receivers' rules
//!   ([`s2s_auth::jwk::select`]: a duplicated `kid` names no key; `use`,
//!   `key_ops`, `alg`, key type and `crv` must fit the pinned algorithm;
//!   `kid`s are plain and bounded; at most 16 keys).
//! - It is fresh for `max_age` (less if the publisher's `Cache-Control:
//!   max-age` says so), never less than `min_refresh`, so a short max-age
//!   cannot defeat the refetch limit.
//! - A `kid` the fresh set lacks makes it fetch again at most once per
//!   `min_refresh`, so made-up `kid`s cannot make it hammer the publisher;
//!   after a failed fetch, the next try also waits that long. A `kid` that
//!   is not plain never causes a fetch.
//! - A made-up `kid` cannot delay a real one: once a set is held, a
//!   background task fetches it again at 80% of its freshness, so a key the
//!   publisher publishes ahead of signing with it (as the factory's phased
//!   rotation does, and as RFC 7517 publishers should) is in the cache
//!   before its first token arrives, whatever used the unknown-`kid` slot.
//! - If the publisher cannot be reached, the cached set serves past its
//!   freshness for `max_stale` at most: a key the publisher withdrew is not
//!   trusted for ever.
//! - Only one fetch runs at a time; requests whose `kid` the cached set holds
//!   are answered from it meanwhile rather than kept waiting.
//!
//! Every `kid` in a log line or error goes through
//! [`s2s_auth::untrusted`]: a `kid` comes from a token.

use std::{
    sync::{
        Arc, RwLock, Weak,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use jsonwebtoken::{DecodingKey, jwk::JwkSet};
use reqwest::{StatusCode, header::CACHE_CONTROL};
use s2s_auth::{
    SigningAlgorithm,
    jwk::{self, plain_kid},
    untrusted,
};

use crate::{
    outbound::{self, Deadline, Repeat, Target, Timeouts, UpstreamError},
    request_tracing::RequestId,
};

/// How long a set is trusted and how often it may be fetched.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    /// Longest time a fetched set is fresh.
    pub max_age: Duration,
    /// At most one unknown-`kid` refetch (and one retry after a failure)
    /// per this long; also the shortest freshness.
    pub min_refresh: Duration,
    /// How long past its freshness the set still serves while the
    /// publisher cannot be reached.
    pub max_stale: Duration,
}

/// Which set, from where, and which of its keys count.
#[derive(Clone, Debug)]
pub struct Source {
    /// Who publishes it, for messages: `jwt-factory`, `the client's JWK Set`.
    pub who: &'static str,
    pub url: String,
    /// Only keys whose `kid` begins with this key id (`servicea.`), if set.
    pub owner: Option<String>,
    /// The pinned algorithm: every key must fit it.
    pub alg: SigningAlgorithm,
}

/// Why no key was found for a `kid`.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    /// The set (or the rules) give no key for this `kid`: a refusal of the
    /// token, not a failure of the publisher.
    #[error("no key with kid {kid} ({why})")]
    NoSuchKid {
        /// Already bounded and escaped.
        kid: String,
        why: String,
    },
    /// The set could not be fetched, and the cached one cannot answer.
    #[error(transparent)]
    Upstream(#[from] UpstreamError),
}

fn no_such_kid(kid: &str, why: impl Into<String>) -> JwksError {
    JwksError::NoSuchKid {
        kid: untrusted(kid).to_string(),
        why: why.into(),
    }
}

/// A fetched set: keys by `kid`, and until when it is fresh.
struct Snapshot {
    keys: std::collections::HashMap<String, Arc<DecodingKey>>,
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

/// One publisher's JWK Set, cached.
pub struct JwksCache {
    source: Source,
    bounds: Bounds,
    timeouts: Timeouts,
    /// Whether a background refresh runs: then a request never fetches
    /// because the set went stale (the task does).
    background: AtomicBool,
    /// Signalled when a set is stored: the background task starts with the
    /// first set a request fetched.
    stored: tokio::sync::Notify,
    background_failures: AtomicU64,
    snapshot: RwLock<Option<Arc<Snapshot>>>,
    /// Held while fetching (one fetch at a time).
    fetching: tokio::sync::Mutex<Attempts>,
    fetches: AtomicU64,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("url", &self.source.url)
            .field("fetches", &self.fetches())
            .finish_non_exhaustive()
    }
}

impl JwksCache {
    pub fn new(source: Source, bounds: Bounds, timeouts: Timeouts) -> Self {
        Self {
            source,
            bounds,
            timeouts,
            background: AtomicBool::new(false),
            stored: tokio::sync::Notify::new(),
            background_failures: AtomicU64::new(0),
            snapshot: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(Attempts::default()),
            fetches: AtomicU64::new(0),
        }
    }

    /// How many times the set was requested from the publisher.
    pub fn fetches(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// How many background refreshes failed (each was logged once).
    pub fn background_failures(&self) -> u64 {
        self.background_failures.load(Ordering::Relaxed)
    }

    /// Whether a set has been fetched.
    pub fn holds_a_set(&self) -> bool {
        self.current().is_some()
    }

    fn current(&self) -> Option<Arc<Snapshot>> {
        self.snapshot
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn keep(&self, snap: Snapshot) {
        let mut kids: Vec<&str> = snap.keys.keys().map(String::as_str).collect();
        kids.sort_unstable();
        tracing::info!(
            "fetched the JWK Set of {}: {} keys (kids {}), cached for {} s",
            self.source.who,
            kids.len(),
            kids.join(", "),
            snap.ttl.as_secs()
        );
        *self.snapshot.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(snap));
        self.stored.notify_one();
    }

    /// Keeps the cached set fresh without a request waiting: from the first
    /// set a request fetched on, fetches it again at 80% of its freshness;
    /// after a failure, every `min_refresh` (at least 1 s), one warning per
    /// try. Runs until dropped (a server aborts it when it stops).
    pub async fn refresh_in_background(&self, client: &reqwest::Client) {
        struct Running<'a>(&'a AtomicBool);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Relaxed);
            }
        }
        self.background.store(true, Ordering::Relaxed);
        let _running = Running(&self.background);
        let mut failed_at: Option<Instant> = None;
        loop {
            let Some(due) = self.next_refresh(failed_at) else {
                self.stored.notified().await;
                continue;
            };
            tokio::time::sleep_until(due.into()).await;
            if !self.refresh_now(client).await {
                failed_at = Some(Instant::now());
            }
        }
    }

    /// As [`JwksCache::refresh_in_background`], for a cache that lives in
    /// state that can be replaced (the factory's client registry is
    /// reloaded when its file changes): spawned once, after a set is held,
    /// it holds the cache only while refreshing and ends once the cache is
    /// dropped. A second call does nothing.
    pub fn keep_fresh(self: &Arc<Self>, client: &reqwest::Client) {
        if !self.holds_a_set() || self.background.swap(true, Ordering::AcqRel) {
            return;
        }
        let weak: Weak<Self> = Arc::downgrade(self);
        let client = client.clone();
        tokio::spawn(async move {
            let mut failed_at: Option<Instant> = None;
            loop {
                let due = match weak.upgrade().map(|c| c.next_refresh(failed_at)) {
                    Some(Some(due)) => due,
                    _ => return,
                };
                tokio::time::sleep_until(due.into()).await;
                let Some(cache) = weak.upgrade() else { return };
                if !cache.refresh_now(&client).await {
                    failed_at = Some(Instant::now());
                }
            }
        });
    }

    /// When the background task fetches next: at 80% of the held set's
    /// freshness, or `min_refresh` (at least 1 s) after a failure since.
    fn next_refresh(&self, failed_at: Option<Instant>) -> Option<Instant> {
        let snap = self.current()?;
        let retry = self.bounds.min_refresh.max(Duration::from_secs(1));
        Some(match failed_at {
            Some(at) if at > snap.fetched => at + retry,
            _ => snap.fetched + refresh_after(snap.ttl),
        })
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
            "refreshing the JWK Set of {} from {} in the background, before the cached copy goes stale",
            self.source.who,
            self.source.url
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
                    "background refresh of the JWK Set of {} failed: {err}. Keeping the cached copy \
                     (it serves up to {} s past its freshness); next try in {} s",
                    self.source.who,
                    self.bounds.max_stale.as_secs(),
                    self.bounds
                        .min_refresh
                        .max(Duration::from_secs(1))
                        .as_secs()
                );
                false
            }
        }
    }

    /// The key for `kid`: from the cache, or after fetching the set again
    /// (within the limits above).
    pub async fn key_for(
        &self,
        kid: &str,
        client: &reqwest::Client,
        rid: &RequestId,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        // Neither a kid that is not plain nor one of another key id can be
        // in the usable set: refused here, and never a cause to fetch.
        if !plain_kid(kid) {
            return Err(no_such_kid(
                kid,
                format!(
                    "a kid is 1-{} characters of A-Z, a-z, 0-9, '_', '-', '.'",
                    jwk::MAX_KID_LEN
                ),
            ));
        }
        if let Some(owner) = &self.source.owner
            && jwk::key_id_of(kid) != Some(owner.as_str())
        {
            return Err(no_such_kid(kid, format!("not a key of {owner}")));
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
                "JWKS cache: kid {} from the cached set, past its freshness (the background refresh is due or retrying)",
                untrusted(kid)
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
                        "another request is refreshing the JWK Set: using the cached one for kid {}",
                        untrusted(kid)
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
        let reason = reason(cached.as_deref(), kid);
        if let Some((what, at)) = self.rate_limited(&attempts, &reason) {
            tracing::info!(
                "not fetching the JWK Set of {} ({}): {what} was {} ms ago, at most one per {} s",
                self.source.who,
                reason.text,
                at.elapsed().as_millis(),
                self.bounds.min_refresh.as_secs()
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
            "JWKS cache hit: kid {} (set fetched {} s ago, fresh for {} s more){note}",
            untrusted(kid),
            snap.fetched.elapsed().as_secs(),
            snap.ttl.saturating_sub(snap.fetched.elapsed()).as_secs()
        );
        Some(Arc::clone(key))
    }

    /// The key from a cached set that may still serve, fresh or not.
    fn usable_hit(&self, kid: &str) -> Option<Arc<DecodingKey>> {
        let snap = self.current().filter(|s| s.usable(self.bounds.max_stale))?;
        snap.keys.get(kid).cloned()
    }

    /// Which limit forbids fetching now, and when it last applied.
    fn rate_limited(
        &self,
        attempts: &Attempts,
        reason: &Reason,
    ) -> Option<(&'static str, Instant)> {
        let recent = |at: Option<Instant>| at.filter(|t| t.elapsed() < self.bounds.min_refresh);
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
    ) -> Result<Arc<DecodingKey>, JwksError> {
        self.fetches.fetch_add(1, Ordering::Relaxed);
        tracing::info!(
            "fetching the JWK Set of {} from {} ({})",
            self.source.who,
            self.source.url,
            reason.text
        );
        match self.fetch(client, rid).await {
            Ok(snap) => {
                attempts.failure = None;
                let key = snap.keys.get(kid).cloned();
                self.keep(snap);
                key.ok_or_else(|| no_such_kid(kid, format!("not in {}'s JWK Set", self.source.who)))
            }
            Err(err) => {
                attempts.failure = Some(Instant::now());
                tracing::warn!("could not fetch the JWK Set of {}: {err}", self.source.who);
                // A kid the cached set holds is still served (within
                // max_stale); for any other kid we cannot tell, so the
                // answer is the fetch's failure.
                match cached
                    .filter(|s| s.usable(self.bounds.max_stale))
                    .and_then(|s| s.keys.get(kid))
                {
                    Some(key) => {
                        tracing::info!(
                            "using the cached JWK Set for kid {} ({} could not be reached)",
                            untrusted(kid),
                            self.source.who
                        );
                        Ok(Arc::clone(key))
                    }
                    None => Err(err.into()),
                }
            }
        }
    }

    /// No fetch now: answer from the cached set, also past its freshness,
    /// but not past `max_stale` beyond it.
    fn answer_from_cache(
        &self,
        cached: Option<&Snapshot>,
        kid: &str,
        why: &str,
    ) -> Result<Arc<DecodingKey>, JwksError> {
        let target = self.target();
        match cached {
            Some(snap) if snap.usable(self.bounds.max_stale) => match snap.keys.get(kid) {
                Some(key) => {
                    tracing::info!(
                        "using the cached JWK Set for kid {} ({why})",
                        untrusted(kid)
                    );
                    Ok(Arc::clone(key))
                }
                None => Err(no_such_kid(kid, why)),
            },
            Some(_) => Err(UpstreamError::bad_answer(
                &target,
                format!(
                    "the cached JWK Set is more than {} s past its freshness and cannot be refreshed ({why})",
                    self.bounds.max_stale.as_secs()
                ),
            )
            .into()),
            None => {
                Err(UpstreamError::bad_answer(&target, format!("no JWK Set yet ({why})")).into())
            }
        }
    }

    fn target(&self) -> Target<'static> {
        Target {
            who: self.source.who,
            url: self.source.url.clone(),
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
            client.get(&self.source.url),
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
        let selected = jwk::select(&set, self.source.alg, self.source.owner.as_deref());
        for line in &selected.ignored {
            tracing::info!("JWK Set of {}: ignoring {line}", self.source.who);
        }
        // Never fresh for less than min_refresh: otherwise every request
        // could refetch, and the refetch limit would not hold.
        let ttl = max_age(headers.get(CACHE_CONTROL).and_then(|v| v.to_str().ok()))
            .map_or(self.bounds.max_age, |m| m.min(self.bounds.max_age))
            .max(self.bounds.min_refresh);
        Ok(Snapshot {
            keys: selected.keys,
            fetched: Instant::now(),
            ttl,
        })
    }
}

fn reason(cached: Option<&Snapshot>, kid: &str) -> Reason {
    let unknown_kid = cached.is_some_and(|s| s.fresh() && !s.keys.contains_key(kid));
    let text = match cached {
        None => "first use".to_owned(),
        Some(_) if unknown_kid => format!("unknown kid {}", untrusted(kid)),
        Some(s) if !s.keys.contains_key(kid) => {
            format!("cached set expired, unknown kid {}", untrusted(kid))
        }
        Some(_) => "cached set expired".to_owned(),
    };
    Reason { unknown_kid, text }
}

/// When the background task refreshes a set fresh for `ttl`: at 80% of it,
/// and never more often than once a second.
fn refresh_after(ttl: Duration) -> Duration {
    (ttl * 4 / 5).max(Duration::from_secs(1))
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
