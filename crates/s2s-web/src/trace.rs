//! The console's trace: on request, what one call did across the services:
//! each hop (who called whom, which token went over the wire, the status,
//! how long it took) and each check (who verified what, and why it refused).
//!
//! Why this shape: the services already share a request id on every hop
//! ([`crate::request_tracing`]); a trace is that same chain, told by each
//! service about its own part. It is opt-in, per request:
//!
//! - The edge (servicea's `?trace=1`) runs the request inside [`collect`].
//! - While a trace is being collected, every outbound call ([`crate::outbound`])
//!   sends `x-s2s-trace: 1`, times itself, decodes the bearer token it
//!   carries (header and claims; never the signature), and records a
//!   [`Hop`].
//! - A service asked with `x-s2s-trace: 1` runs the request inside
//!   [`collect`] too ([`layer`]), and returns its own events in the
//!   `x-s2s-trace` answer header; the caller nests them under its hop,
//!   which names the request id the call carried (the one in the callee's
//!   log lines for it). No store, nothing to expire: each part travels
//!   back with its answer. A refusal (any status of 400 or more) is recorded as a
//!   [`Verdict`] with the reason taken from the service's own JSON error.
//! - Handlers add what only they know ([`check`], [`note`]): which key,
//!   which claims.
//!
//! Without the flag nothing is recorded and nothing is added: the plain
//! answers stay byte for byte what the README shows. Checking whether a
//! trace is on is one task-local lookup; the middleware adds no allocation
//! and no boxed future to a plain request.
//!
//! What a trace reveals: the claims of tokens (already in the receivers'
//! answers), the expectations a verifier checks, key ids, refusal reasons
//! (already in the answer), URLs without their query, timings. Never a
//! signature, a key or a whole token, so nothing in it can be replayed.
//! Bounds: [`MAX_EVENTS`] hops and notes per service and request (checks
//! are always kept), [`MAX_HEADER_BYTES`] of header both ways, and a
//! refusal body is read for its reason only when it is known to be small.

use std::{
    convert::Infallible,
    future::Future,
    sync::{Arc, Mutex},
    task::{Context, Poll},
    time::Instant,
};

use axum::{
    body::Body,
    extract::Request,
    http::{HeaderMap, HeaderValue},
    response::Response,
};
use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use futures::future::{BoxFuture, Either};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The header: `1` on a request asks for its trace; on the answer, the
/// answering service's events (base64url of their JSON).
pub const TRACE: &str = "x-s2s-trace";

/// Most events one service records for one request; more are dropped (a
/// trace is for reading, and a loop must not grow it without bound).
pub const MAX_EVENTS: usize = 64;

/// Largest trace header read from a callee, and written: a callee's trace
/// larger than this is left out, with a note that says so. Below what
/// every hop carries in answer headers: hyper's HTTP/2 client takes 16 KiB
/// (the https hops), nginx's route 16 KiB (`proxy_buffer_size`).
pub const MAX_HEADER_BYTES: usize = 12 * 1024;

/// Largest error body read to find a refusal's reason.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

/// One thing that happened while serving the request.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Event {
    Hop(Hop),
    Check(Verdict),
    Note(Note),
}

impl Event {
    fn at_ms(&self) -> f64 {
        match self {
            Self::Hop(h) => h.at_ms,
            Self::Check(c) => c.at_ms,
            Self::Note(n) => n.at_ms,
        }
    }
}

/// A call from one service to another.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Hop {
    pub from: String,
    pub to: String,
    pub method: String,
    pub url: String,
    /// The answer's status; none if there was no answer.
    pub status: Option<u16>,
    /// Why there was no answer (refused connection, TLS, timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// When the call started, ms after the trace of the caller began.
    pub at_ms: f64,
    /// How long until the whole answer was read.
    pub ms: f64,
    /// The bearer token the call carried, decoded (no signature).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<DecodedToken>,
    /// The request id the call carried: the one in every log line the
    /// called service wrote for it, and its events below.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What the called service recorded, under that request id.
    #[serde(default)]
    pub events: Vec<Event>,
}

/// A verification, authorization or refusal, by the service that made it.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Verdict {
    /// Filled in by the recorder.
    #[serde(default)]
    pub by: String,
    /// What was checked, in words ("JWK Set, kid servicea.v1").
    pub what: String,
    pub result: Outcome,
    /// The refusal's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why it was refused, in the verifier's own words.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The key that verified the token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// The claims that were required (`iss`, `aud`, `sub`, `typ`...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected: Option<Value>,
    /// Filled in by the recorder.
    #[serde(default)]
    pub at_ms: f64,
}

/// What a check decided.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A token passed every check.
    #[default]
    Valid,
    /// A caller's identity is allowed here.
    Allowed,
    /// The request was refused (4xx/5xx).
    Refused,
}

impl Verdict {
    /// A token that passed: `what` says which checks.
    pub fn valid(what: impl Into<String>) -> Self {
        Self {
            what: what.into(),
            result: Outcome::Valid,
            ..Self::default()
        }
    }

    /// A caller allowed: `what` says by which rule.
    pub fn allowed(what: impl Into<String>) -> Self {
        Self {
            result: Outcome::Allowed,
            ..Self::valid(what)
        }
    }

    pub fn kid(mut self, kid: impl Into<String>) -> Self {
        self.kid = Some(kid.into());
        self
    }

    pub fn expected(mut self, expected: Value) -> Self {
        self.expected = Some(expected);
        self
    }
}

/// A step in words ("token from my cache, 41 s left").
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct Note {
    #[serde(default)]
    pub by: String,
    pub text: String,
    #[serde(default)]
    pub at_ms: f64,
}

/// A JWT's header and claims, decoded for display. Nothing is verified
/// here, and the signature is not kept.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct DecodedToken {
    pub header: Value,
    pub claims: Value,
}

impl DecodedToken {
    /// The first two parts of a compact JWS, if they are base64url JSON
    /// objects.
    pub fn decode(token: &str) -> Option<Self> {
        let mut parts = token.split('.');
        let mut part = || -> Option<Value> {
            let bytes = URL_SAFE_NO_PAD.decode(parts.next()?).ok()?;
            serde_json::from_slice::<Value>(&bytes)
                .ok()
                .filter(Value::is_object)
        };
        Some(Self {
            header: part()?,
            claims: part()?,
        })
    }
}

/// The events of one service for one request.
#[derive(Clone, Debug)]
struct Recorder {
    service: Arc<str>,
    start: Instant,
    events: Arc<Mutex<Recorded>>,
}

/// What a recorder holds: the events, and how many hops and notes were
/// left out once [`MAX_EVENTS`] was reached.
#[derive(Debug, Default)]
struct Recorded {
    events: Vec<Event>,
    dropped: usize,
}

impl Recorder {
    /// Milliseconds since this trace began.
    fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    fn push(&self, mut event: Event) {
        let at = self.now_ms();
        match &mut event {
            Event::Check(c) => {
                c.by = self.service.to_string();
                c.at_ms = at;
            }
            Event::Note(n) => {
                n.by = self.service.to_string();
                n.at_ms = at;
            }
            // A hop's time is its start, set by `hop_started`.
            Event::Hop(_) => {}
        }
        let Ok(mut recorded) = self.events.lock() else {
            return;
        };
        // A check is always kept (a handler makes one or two): it is the
        // decision the trace is read for.
        if recorded.events.len() < MAX_EVENTS || matches!(event, Event::Check(_)) {
            recorded.events.push(event);
        } else {
            recorded.dropped += 1;
        }
    }

    fn take(&self) -> Vec<Event> {
        let Recorded {
            mut events,
            dropped,
        } = self
            .events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        // Hops are recorded when they end, timed from when they began.
        events.sort_by(|a, b| a.at_ms().total_cmp(&b.at_ms()));
        if dropped > 0 {
            events.push(self.note_now(format!(
                "{dropped} more hops and notes left out (at most {MAX_EVENTS} are kept)"
            )));
        }
        events
    }

    fn note_now(&self, text: String) -> Event {
        Event::Note(Note {
            by: self.service.to_string(),
            text,
            at_ms: self.now_ms(),
        })
    }
}

tokio::task_local! {
    static CURRENT: Recorder;
}

/// Whether this request is being traced.
#[cfg(test)]
fn active() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Records a check, if this request is being traced (`check` is not
/// called otherwise).
pub fn check(check: impl FnOnce() -> Verdict) {
    let _ = CURRENT.try_with(|r| r.push(Event::Check(check())));
}

/// Records a step in words, if this request is being traced.
pub fn note(text: impl FnOnce() -> String) {
    let _ = CURRENT.try_with(|r| r.push(r.note_now(text())));
}

/// Runs `work` with a trace for `service`; its output and the events.
pub async fn collect<F: Future>(service: &str, work: F) -> (F::Output, Vec<Event>) {
    let recorder = Recorder {
        service: Arc::from(service),
        start: Instant::now(),
        events: Arc::default(),
    };
    let output = CURRENT.scope(recorder.clone(), work).await;
    (output, recorder.take())
}

/// A hop under way: made by [`hop_started`] when a trace is on, finished
/// with [`HopStarted::finish`].
#[derive(Debug)]
pub struct HopStarted {
    hop: Hop,
    started: Instant,
    /// The URL with its query, to take out of error messages.
    full_url: String,
}

/// Starts timing an outbound call if this request is being traced, and
/// marks the request so the callee traces too. `None` (nothing to do) otherwise.
pub fn hop_started(to: &str, request: &mut reqwest::Request) -> Option<HopStarted> {
    let (from, at_ms) = CURRENT
        .try_with(|r| (r.service.to_string(), r.now_ms()))
        .ok()?;
    request
        .headers_mut()
        .insert(TRACE, HeaderValue::from_static("1"));
    let token = request
        .headers()
        .get(reqwest::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .and_then(DecodedToken::decode);
    let request_id = request
        .headers()
        .get(crate::request_tracing::REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let full_url = request.url().to_string();
    let mut url = request.url().clone();
    url.set_query(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(HopStarted {
        full_url,
        hop: Hop {
            from,
            to: to.to_owned(),
            method: request.method().to_string(),
            url: url.to_string(),
            status: None,
            error: None,
            at_ms,
            ms: 0.0,
            token,
            request_id,
            events: Vec::new(),
        },
        started: Instant::now(),
    })
}

impl HopStarted {
    /// Records the hop: the answer's status and the callee's events (from
    /// its headers), or why there was no answer.
    pub fn finish(mut self, answer: Result<(u16, &HeaderMap), String>) {
        self.hop.ms = self.started.elapsed().as_secs_f64() * 1000.0;
        match answer {
            Ok((status, headers)) => {
                self.hop.status = Some(status);
                self.hop.events = match headers.get(TRACE).map(read_header) {
                    Some(Ok(events)) => events,
                    Some(Err(why)) => vec![Event::Note(Note {
                        by: self.hop.to.clone(),
                        text: format!("its trace could not be read: {why}"),
                        at_ms: 0.0,
                    })],
                    None => Vec::new(),
                };
            }
            // The message names the URL: without its query, as `url`.
            Err(why) => self.hop.error = Some(why.replace(&self.full_url, &self.hop.url)),
        }
        let _ = CURRENT.try_with(|r| r.push(Event::Hop(self.hop)));
    }
}

/// A callee's events, from its `x-s2s-trace` answer header.
fn read_header(value: &HeaderValue) -> Result<Vec<Event>, String> {
    if value.len() > MAX_HEADER_BYTES {
        return Err(format!("larger than {MAX_HEADER_BYTES} bytes"));
    }
    let json = URL_SAFE_NO_PAD
        .decode(value.as_bytes())
        .map_err(|e| format!("not base64url: {e}"))?;
    serde_json::from_slice(&json).map_err(|e| format!("not a list of events: {e}"))
}

/// Events as an `x-s2s-trace` header value; `None` if they do not fit.
fn write_header(events: &[Event]) -> Option<HeaderValue> {
    let json = serde_json::to_vec(events).ok()?;
    let value = URL_SAFE_NO_PAD.encode(json);
    if value.len() > MAX_HEADER_BYTES {
        return None;
    }
    HeaderValue::from_str(&value).ok()
}

/// The middleware: a request with `x-s2s-trace: 1` is served inside
/// [`collect`] for `service`, and its events go back in the `x-s2s-trace`
/// answer header; a refusal is recorded with its reason. Any other request
/// goes straight to the inner service: no allocation, no boxed future,
/// one header lookup (`Router::layer(trace::layer(name))`).
pub fn layer(service: &str) -> TraceLayer {
    TraceLayer {
        service: Arc::from(service),
    }
}

/// See [`layer`].
#[derive(Clone, Debug)]
pub struct TraceLayer {
    service: Arc<str>,
}

impl<S> tower::Layer<S> for TraceLayer {
    type Service = Traced<S>;

    fn layer(&self, inner: S) -> Traced<S> {
        Traced {
            inner,
            service: Arc::clone(&self.service),
        }
    }
}

/// A service wrapped by [`layer`].
#[derive(Clone, Debug)]
pub struct Traced<S> {
    inner: S,
    service: Arc<str>,
}

impl<S> tower::Service<Request> for Traced<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = Either<S::Future, BoxFuture<'static, Result<Response, Infallible>>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        if request.headers().get(TRACE).map(HeaderValue::as_bytes) != Some(b"1") {
            return Either::Left(self.inner.call(request));
        }
        // The inner service that was polled ready goes into the future; a
        // clone stays (tower's rule for services called from a future).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let service = Arc::clone(&self.service);
        Either::Right(Box::pin(async move {
            let asked = format!("{} {}", request.method(), request.uri().path());
            let (response, events) = collect(&service, async {
                let Ok(response) = inner.call(request).await;
                recording_refusal(response, asked).await
            })
            .await;
            Ok(with_events(response, events, &service))
        }))
    }
}

/// `response` as it is; if it is a refusal (400 or more), recorded as a
/// check with the reason from the service's own JSON error.
async fn recording_refusal(response: Response, asked: String) -> Response {
    if response.status().as_u16() < 400 {
        return response;
    }
    let (parts, body) = response.into_parts();
    // Read for its reason only when it is known to be small: a larger or
    // streamed body passes untouched.
    let small = axum::body::HttpBody::size_hint(&body)
        .upper()
        .is_some_and(|n| n <= MAX_REFUSAL_BODY as u64);
    let (body, reason) = if small {
        match axum::body::to_bytes(body, MAX_REFUSAL_BODY).await {
            Ok(bytes) => {
                let reason = refusal_reason(&bytes);
                (Body::from(bytes), reason)
            }
            Err(err) => (
                Body::empty(),
                format!("its answer could not be read: {err}"),
            ),
        }
    } else {
        (
            body,
            "its answer is too large to read for a reason".to_owned(),
        )
    };
    check(|| Verdict {
        what: asked,
        result: Outcome::Refused,
        status: Some(parts.status.as_u16()),
        reason: Some(reason),
        ..Verdict::default()
    });
    Response::from_parts(parts, body)
}

/// `response` with `events` in its `x-s2s-trace` header. If they do not
/// fit in [`MAX_HEADER_BYTES`], the checks alone and a note that says what
/// was left out; if even that does not fit, no header.
fn with_events(response: Response, events: Vec<Event>, service: &str) -> Response {
    let (mut parts, body) = response.into_parts();
    let value = write_header(&events).or_else(|| {
        let total = events.len();
        let mut kept: Vec<Event> = events
            .into_iter()
            .filter(|e| matches!(e, Event::Check(_)))
            .collect();
        kept.push(Event::Note(Note {
            by: service.to_owned(),
            text: format!(
                "{} hops and notes left out: the trace is larger than {MAX_HEADER_BYTES} bytes",
                total - kept.len()
            ),
            at_ms: 0.0,
        }));
        write_header(&kept)
    });
    if let Some(value) = value {
        parts.headers.insert(TRACE, value);
    }
    Response::from_parts(parts, body)
}

/// The words of a JSON error, whichever shape the service uses:
/// `error_description`, `error.message` (the Node-shaped verify error),
/// `message`, `error`, or Envoy's `details`.
fn refusal_reason(body: &[u8]) -> String {
    match serde_json::from_slice::<Value>(body) {
        Ok(json) => reason_of(&json),
        Err(_) => String::from_utf8_lossy(body).chars().take(300).collect(),
    }
}

/// [`refusal_reason`] of a JSON answer already parsed.
///
/// An answer that gathers others (servicea's fan-out: `{"serviceb": ...,
/// "servicec": ...}`) gives the reason of the first one that has one.
/// Otherwise the JSON itself, at most 300 characters.
pub fn reason_of(json: &Value) -> String {
    known_reason(json)
        .or_else(|| {
            json.as_object()?
                .values()
                .filter(|v| v.is_object())
                .find_map(known_reason)
        })
        .unwrap_or_else(|| json.to_string().chars().take(300).collect())
}

/// The reason in one of the shapes [`reason_of`] knows.
fn known_reason(json: &Value) -> Option<String> {
    let text = |v: &Value| v.as_str().map(str::to_owned);
    let error = json.get("error");
    json.get("error_description")
        .and_then(text)
        .or_else(|| error.and_then(|e| e.get("message")).and_then(text))
        .or_else(|| json.get("message").and_then(text))
        .or_else(|| error.and_then(text))
        .or_else(|| json.get("details").and_then(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn nothing_is_recorded_outside_a_trace() {
        assert!(!active());
        let mut called = false;
        check(|| {
            called = true;
            Verdict::default()
        });
        assert!(!called, "the check is not even built");
        let mut request =
            reqwest::Request::new(reqwest::Method::GET, "http://localhost/x".parse().unwrap());
        assert!(hop_started("b", &mut request).is_none());
        assert!(request.headers().get(TRACE).is_none());
    }

    #[tokio::test]
    async fn a_trace_collects_checks_notes_and_hops_in_start_order() {
        let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOiJzZXJ2aWNlYiJ9.c2ln";
        let ((), events) = collect("servicea", async {
            assert!(active());
            let mut request = reqwest::Request::new(
                reqwest::Method::GET,
                "http://localhost:3001/scenario1-server?access_token=x"
                    .parse()
                    .unwrap(),
            );
            request.headers_mut().insert(
                reqwest::header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
            );
            let hop = hop_started("serviceb", &mut request).unwrap();
            assert_eq!(request.headers().get(TRACE).unwrap(), "1");
            note(|| "in between".to_owned());
            let callee = vec![Event::Check(Verdict::valid("JWK Set").kid("k1"))];
            let mut headers = HeaderMap::new();
            headers.insert(TRACE, write_header(&callee).unwrap());
            hop.finish(Ok((200, &headers)));
        })
        .await;
        assert_eq!(events.len(), 2);
        let Event::Hop(hop) = &events[0] else {
            panic!("the hop started first: {events:?}")
        };
        assert_eq!(
            hop.url, "http://localhost:3001/scenario1-server",
            "no query"
        );
        assert_eq!(hop.status, Some(200));
        let decoded = hop.token.as_ref().unwrap();
        assert_eq!(decoded.header["kid"], "k1");
        assert_eq!(decoded.claims["aud"], "serviceb");
        assert!(!serde_json::to_string(hop).unwrap().contains("c2ln"));
        assert!(matches!(&hop.events[0], Event::Check(c) if c.kid.as_deref() == Some("k1")));
        assert!(matches!(&events[1], Event::Note(n) if n.by == "servicea"));
    }

    #[tokio::test]
    async fn past_the_limit_hops_and_notes_are_counted_and_checks_kept() {
        let ((), events) = collect("serviceb", async {
            for i in 0..MAX_EVENTS + 10 {
                note(|| format!("step {i}"));
            }
            check(|| Verdict::valid("the decision"));
        })
        .await;
        assert_eq!(events.len(), MAX_EVENTS + 2, "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Check(c) if c.what == "the decision"))
        );
        let Some(Event::Note(last)) = events.last() else {
            panic!("a note counts what was left out: {events:?}")
        };
        assert!(
            last.text.starts_with("10 more hops and notes left out"),
            "{}",
            last.text
        );
    }

    #[test]
    fn a_trace_too_large_for_its_header_keeps_its_checks_and_says_so() {
        let big = "x".repeat(MAX_HEADER_BYTES);
        let events = vec![
            Event::Note(Note {
                by: "serviceb".into(),
                text: big,
                at_ms: 0.0,
            }),
            Event::Check(Verdict {
                by: "serviceb".into(),
                result: Outcome::Refused,
                reason: Some("jwt expired".into()),
                ..Verdict::default()
            }),
        ];
        let response = with_events(Response::new(Body::empty()), events, "serviceb");
        let kept = read_header(response.headers().get(TRACE).unwrap()).unwrap();
        assert_eq!(kept.len(), 2, "{kept:?}");
        assert!(matches!(&kept[0], Event::Check(c) if c.reason.as_deref() == Some("jwt expired")));
        assert!(matches!(&kept[1], Event::Note(n) if n.text.contains("1 hops and notes left out")));
    }

    #[test]
    fn only_json_objects_decode_as_a_token() {
        let b64 = |s: &str| URL_SAFE_NO_PAD.encode(s);
        for (header, claims) in [("null", "{}"), ("{}", "[1]"), ("\"x\"", "{}"), ("{}", "7")] {
            let token = format!("{}.{}.sig", b64(header), b64(claims));
            assert!(DecodedToken::decode(&token).is_none(), "{header} {claims}");
        }
        assert!(DecodedToken::decode(&format!("{}.{}.sig", b64("{}"), b64("{}"))).is_some());
    }

    #[tokio::test]
    async fn a_call_without_an_answer_names_its_url_without_the_query() {
        let ((), events) = collect("servicea", async {
            let url = "http://localhost:1/issueToken/servicea?expired=1";
            let mut request = reqwest::Request::new(reqwest::Method::POST, url.parse().unwrap());
            let hop = hop_started("jwt-factory", &mut request).unwrap();
            hop.finish(Err(format!("jwt-factory unavailable at {url}: refused")));
        })
        .await;
        let Event::Hop(hop) = &events[0] else {
            panic!("{events:?}")
        };
        assert_eq!(hop.status, None);
        assert_eq!(
            hop.error.as_deref(),
            Some("jwt-factory unavailable at http://localhost:1/issueToken/servicea: refused")
        );
    }

    /// A router behind [`layer`] whose one route refuses with `body`.
    fn refusing(body: &'static [u8]) -> axum::Router {
        axum::Router::new()
            .route(
                "/x",
                axum::routing::get(
                    move || async move { (axum::http::StatusCode::FORBIDDEN, body) },
                ),
            )
            .layer(layer("serviceb"))
    }

    async fn traced_get(router: axum::Router) -> (Response, Vec<Event>) {
        use tower::ServiceExt as _;
        let request = axum::http::Request::get("/x")
            .header(TRACE, "1")
            .body(Body::empty())
            .unwrap();
        let response = router.oneshot(request).await.unwrap();
        let events = read_header(response.headers().get(TRACE).unwrap()).unwrap();
        (response, events)
    }

    #[tokio::test]
    async fn a_refusal_is_recorded_with_its_reason_and_its_body_kept() {
        let (response, events) = traced_get(refusing(br#"{"message":"jwt expired"}"#)).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"message":"jwt expired"}"#);
        assert!(matches!(&events[..], [Event::Check(c)]
            if c.result == Outcome::Refused && c.status == Some(403)
                && c.reason.as_deref() == Some("jwt expired") && c.what == "GET /x"));
    }

    #[tokio::test]
    async fn a_refusal_too_large_to_read_passes_untouched() {
        static BIG: std::sync::LazyLock<Vec<u8>> =
            std::sync::LazyLock::new(|| vec![b'a'; MAX_REFUSAL_BODY + 1]);
        let (response, events) = traced_get(refusing(&BIG)).await;
        let body = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        assert_eq!(
            body.len(),
            MAX_REFUSAL_BODY + 1,
            "the body is the service's, whole"
        );
        assert!(matches!(&events[..], [Event::Check(c)]
            if c.reason.as_deref() == Some("its answer is too large to read for a reason")));
    }

    #[tokio::test]
    async fn a_bad_callee_header_is_a_note_not_a_failure() {
        for bad in ["%%%", "bm90IGpzb24"] {
            let ((), events) = collect("servicea", async {
                let mut request =
                    reqwest::Request::new(reqwest::Method::GET, "http://b/x".parse().unwrap());
                let hop = hop_started("serviceb", &mut request).unwrap();
                let mut headers = HeaderMap::new();
                headers.insert(TRACE, HeaderValue::from_static(bad));
                hop.finish(Ok((200, &headers)));
            })
            .await;
            let [Event::Hop(hop)] = &events[..] else {
                panic!("{events:?}")
            };
            assert_eq!(hop.status, Some(200), "the answer stands");
            assert!(
                matches!(&hop.events[..], [Event::Note(n)]
                    if n.by == "serviceb" && n.text.starts_with("its trace could not be read")),
                "{bad}: {:?}",
                hop.events
            );
        }
    }

    #[test]
    fn refusal_reasons_in_each_shape() {
        let r = |s: &str| refusal_reason(s.as_bytes());
        assert_eq!(
            r(
                r#"{"message":"invalid token","error":{"name":"TokenExpiredError","message":"jwt expired"}}"#
            ),
            "jwt expired"
        );
        assert_eq!(
            r(r#"{"error":"invalid_token","error_description":"no cnf"}"#),
            "no cnf"
        );
        assert_eq!(r(r#"{"message":"no route"}"#), "no route");
        assert_eq!(
            r(r#"{"valid":false,"error":"key not found"}"#),
            "key not found"
        );
        assert_eq!(r("plain text"), "plain text");
        assert_eq!(
            r(
                r#"{"serviceb":{"valid":true},"servicec":{"message":"invalid token","error":{"message":"jwt expired"}}}"#
            ),
            "jwt expired",
            "a fan-out answer: the leg that refused"
        );
        assert_eq!(r(&format!(r#"{{"x":"{}"}}"#, "y".repeat(1000))).len(), 300);
    }
}
