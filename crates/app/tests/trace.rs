#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The console's trace and the console's own endpoints, against a real
//! stack (jwt-factory, servicea, serviceb, servicec on free ports, real TLS,
//! real key files). What this file proves:
//!
//! - Without `?trace=1` (or with `trace=0|false|no|off`) servicea's answers
//!   are what they always were (pinned key for key: `{"valid", "claims"}`,
//!   and the README's expired `TokenExpiredError`), and no service adds an
//!   `x-s2s-trace` header unless asked with exactly `x-s2s-trace: 1`.
//! - With `?trace=1`, servicea answers 200 with the scenario's own status
//!   and answer beside the trace, and the trace is what really happened:
//!   each hop (who called whom, which token, which status), nested under it
//!   what the callee recorded, and each check (which key, which claims were
//!   required, and for a refusal the verifier's own reason), for scenarios
//!   1, 2, 3 and 6, valid and expired. No token's signature is in it. A
//!   refusal (status not 2xx) also has `reason`, in the refuser's words;
//!   every hop at every depth names the answer's request id; and 16 traced
//!   requests beside 16 plain ones, all at once, keep their events apart.
//! - A receiver asked directly with `x-s2s-trace: 1` and a bad token
//!   returns its refusal, with the reason, in the header.
//! - The controls (replay, rotate, forge) need `x-console: 1`, and refuse
//!   what a browser says another site sent (`Sec-Fetch-Site`); a CORS
//!   preflight is granted nothing; they report real, traced steps. The
//!   page and each asset are served with the right types, a strict
//!   Content-Security-Policy and `nosniff`, and `/console/scenarios` is
//!   the scenario table.

use std::time::{SystemTime, UNIX_EPOCH};

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};
use s2s_web::trace::{Event, Hop, Outcome, TRACE, Verdict};
use serde_json::{Value, json};
use test_support::{Options, Reply, Stack, free_port, issue_at, json_reply, reply};

// ---------------------------------------------------------------- helpers

/// Every event in `events`, depth first, with its depth (0: the events of
/// the service that made the trace; 1: what its callees recorded; ...).
fn all(events: &[Event]) -> Vec<(usize, &Event)> {
    fn walk<'a>(events: &'a [Event], depth: usize, out: &mut Vec<(usize, &'a Event)>) {
        for event in events {
            out.push((depth, event));
            if let Event::Hop(hop) = event {
                walk(&hop.events, depth + 1, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(events, 0, &mut out);
    out
}

/// The hops of `events` itself (not nested ones).
fn hops(events: &[Event]) -> Vec<&Hop> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Hop(h) => Some(h),
            _ => None,
        })
        .collect()
}

/// Every hop, at any depth.
fn all_hops(events: &[Event]) -> Vec<&Hop> {
    all(events)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Hop(h) => Some(h),
            _ => None,
        })
        .collect()
}

/// The checks of `events` itself (not nested ones).
fn checks(events: &[Event]) -> Vec<&Verdict> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Check(c) => Some(c),
            _ => None,
        })
        .collect()
}

/// Every check, at any depth, with its depth.
fn all_checks(events: &[Event]) -> Vec<(usize, &Verdict)> {
    all(events)
        .into_iter()
        .filter_map(|(d, e)| match e {
            Event::Check(c) => Some((d, c)),
            _ => None,
        })
        .collect()
}

/// Every note's text, at any depth.
fn all_notes(events: &[Event]) -> Vec<&str> {
    all(events)
        .into_iter()
        .filter_map(|(_, e)| match e {
            Event::Note(n) => Some(n.text.as_str()),
            _ => None,
        })
        .collect()
}

/// The one hop of `events` (not nested) to `to` whose url ends with `path`.
fn hop<'a>(events: &'a [Event], to: &str, path: &str) -> &'a Hop {
    let found: Vec<&Hop> = hops(events)
        .into_iter()
        .filter(|h| h.to == to && h.url.ends_with(path))
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "want exactly one hop to {to} {path}, found {}: {}",
            found.len(),
            pretty(events)
        ),
    }
}

/// The one check of `events` (not nested) by `by` with `result`.
fn check<'a>(events: &'a [Event], by: &str, result: Outcome) -> &'a Verdict {
    let found: Vec<&Verdict> = checks(events)
        .into_iter()
        .filter(|c| c.by == by && c.result == result)
        .collect();
    match found.as_slice() {
        [one] => one,
        _ => panic!(
            "want exactly one {result:?} check by {by}, found {}: {}",
            found.len(),
            pretty(events)
        ),
    }
}

fn pretty(events: &[Event]) -> String {
    serde_json::to_string_pretty(events).unwrap()
}

/// The `kid` of a hop's token header.
fn token_kid(hop: &Hop) -> String {
    let token = hop
        .token
        .as_ref()
        .unwrap_or_else(|| panic!("the hop to {} carries no token: {hop:?}", hop.to));
    token.header["kid"]
        .as_str()
        .unwrap_or_else(|| panic!("no kid in the token header: {:?}", token.header))
        .to_owned()
}

/// Whether `text` holds something shaped like a compact JWS: three
/// non-empty base64url segments joined by dots, more than 40 characters
/// in all.
fn has_jws(text: &str) -> bool {
    let b64url = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    text.split(|c: char| !(b64url(c) || c == '.')).any(|run| {
        let parts: Vec<&str> = run.split('.').collect();
        parts.windows(3).any(|w| {
            w.iter().all(|p| !p.is_empty()) && w.iter().map(|p| p.len()).sum::<usize>() + 2 > 40
        })
    })
}

/// Panics if anything in `value` (keys and strings, at any depth) looks
/// like a whole token.
fn assert_no_jws(value: &Value) {
    let text = value.to_string();
    assert!(
        !has_jws(&text),
        "a whole token (with its signature) in: {text}"
    );
}

/// A JSON value with every string and number replaced by its type (bools
/// and nulls kept): two answers "of the same shape" have equal shapes.
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => a.iter().map(shape).collect(),
        Value::String(_) => "string".into(),
        Value::Number(_) => "number".into(),
        other => other.clone(),
    }
}

/// `GET` servicea's `path`, read whole.
async fn get_a(s: &Stack, path: &str) -> Reply {
    reply(s.client.get(format!("{}{path}", s.a.url()))).await
}

/// The keys of a JSON object, sorted.
fn keys(v: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = v
        .as_object()
        .unwrap_or_else(|| panic!("not a JSON object: {v}"))
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}

/// Whether a JSON status is 2xx.
fn success(status: &Value) -> bool {
    status.as_u64().is_some_and(|s| (200..300).contains(&s))
}

/// The `reason` of a traced answer or a control's step: there (a
/// non-empty string) exactly when its `status` is not 2xx.
fn reason(what: &str, traced: &Value) -> Option<String> {
    let reason = traced.get("reason");
    if success(&traced["status"]) {
        assert!(reason.is_none(), "{what}: a reason for a success: {traced}");
        return None;
    }
    let reason = reason
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("{what}: no reason for a refusal: {traced}"));
    assert!(!reason.is_empty(), "{what}: an empty reason: {traced}");
    Some(reason.to_owned())
}

/// servicea's traced `path` (`?trace=1...`): see [`read_traced`].
async fn traced(s: &Stack, path: &str) -> (Value, Vec<Event>) {
    read_traced(path, get_a(s, path).await)
}

/// A traced answer: a 200 JSON `{"status", "answer", "request_id",
/// "trace"}`, and `"reason"` exactly when `status` is not 2xx, without
/// any whole token, its `request_id` the one in its `x-request-id`
/// header; the body and its trace, read as events.
fn read_traced(path: &str, r: Reply) -> (Value, Vec<Event>) {
    assert!(
        r.header(TRACE).is_none(),
        "{path}: servicea was not asked for a header trace"
    );
    let header_rid = r.header("x-request-id").map(str::to_owned);
    let (status, body) = r.into_json();
    assert_eq!(status, 200, "{path}: {body}");
    let mut want = vec!["answer", "request_id", "status", "trace"];
    if !success(&body["status"]) {
        want.push("reason");
        want.sort_unstable();
    }
    assert_eq!(keys(&body), want, "{path}: {body}");
    assert!(body["status"].is_u64(), "{path}: {body}");
    reason(path, &body);
    assert!(body["request_id"].is_string(), "{path}: {body}");
    assert_eq!(
        header_rid.as_deref(),
        body["request_id"].as_str(),
        "{path}: the request id of the answer's header: {body}"
    );
    assert_no_jws(&body);
    let events: Vec<Event> = serde_json::from_value(body["trace"].clone())
        .unwrap_or_else(|e| panic!("{path}: the trace is not a list of events ({e}): {body}"));
    assert!(!events.is_empty(), "{path}: an empty trace");
    (body, events)
}

/// A `x-s2s-trace` answer header, decoded: base64url without padding of a
/// JSON list of events.
fn decode_header(r: &Reply) -> Vec<Event> {
    let value = r
        .header(TRACE)
        .unwrap_or_else(|| panic!("{}: no {TRACE} header ({}): {}", r.what, r.status, r.text));
    let json = URL_SAFE_NO_PAD
        .decode(value)
        .unwrap_or_else(|e| panic!("{}: {TRACE} is not base64url without padding: {e}", r.what));
    serde_json::from_slice(&json).unwrap_or_else(|e| {
        panic!(
            "{}: {TRACE} is not a list of events ({e}): {}",
            r.what,
            String::from_utf8_lossy(&json)
        )
    })
}

fn now_secs() -> i64 {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    i64::try_from(now.as_secs()).unwrap()
}

/// `POST` a console control on servicea with `x-console: 1`; it must
/// answer 200 with `{"steps": [...]}`, every step complete: the steps.
async fn control(s: &Stack, path: &str) -> Vec<Value> {
    let url = format!("{}{path}", s.a.url());
    let (status, body) = json_reply(s.client.post(&url).header("x-console", "1")).await;
    assert_eq!(status, 200, "{path}: {body}");
    steps(path, &body)
}

/// The steps of a control's answer, each checked for its fields and for
/// whole tokens.
fn steps(path: &str, body: &Value) -> Vec<Value> {
    assert_no_jws(body);
    let steps = body["steps"]
        .as_array()
        .unwrap_or_else(|| panic!("{path}: no steps: {body}"))
        .clone();
    for step in &steps {
        for field in ["title", "expect", "request_id"] {
            assert!(step[field].is_string(), "{path}: {field}: {step}");
        }
        assert!(step["status"].is_u64(), "{path}: {step}");
        assert!(step.get("answer").is_some(), "{path}: {step}");
        let mut want = vec!["answer", "expect", "request_id", "status", "title", "trace"];
        if !success(&step["status"]) {
            want.push("reason");
            want.sort_unstable();
        }
        assert_eq!(keys(step), want, "{path}: {step}");
        reason(path, step);
        let _: Vec<Event> = serde_json::from_value(step["trace"].clone())
            .unwrap_or_else(|e| panic!("{path}: a step's trace is not a list of events ({e})"));
    }
    steps
}

fn trace_of(step: &Value) -> Vec<Event> {
    serde_json::from_value(step["trace"].clone()).unwrap()
}

// ------------------------------------------------------------------ tests

#[test]
fn the_token_detector_finds_tokens_and_nothing_else() {
    // A real-looking token is found, in a JSON string or as it is.
    let token = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOiJzZXJ2aWNlYiJ9.c2lnbmF0dXJl";
    assert!(has_jws(token));
    assert!(has_jws(
        &json!({ "x": format!("Bearer {token}") }).to_string()
    ));
    // Header and claims alone, addresses, versions, kids, numbers: not.
    for text in [
        "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJhdWQiOiJzZXJ2aWNlYiJ9",
        "http://127.0.0.1:40000/scenario1-server",
        "https://localhost:40001/scenario3-server",
        "s2s-jwt/0.1.0",
        r#"{"at_ms":12.25,"ms":0.5,"kid":"servicea.v1"}"#,
    ] {
        assert!(!has_jws(text), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untraced_answers_are_unchanged_and_carry_no_trace_header() {
    let s = Stack::start(Options::default()).await;
    for n in [1, 3, 6] {
        let path = format!("/scenario{n}");
        let r = get_a(&s, &path).await;
        assert!(r.header(TRACE).is_none(), "{path}: {:?}", r.headers);
        let (status, plain) = r.into_json();
        assert_eq!(status, 200, "{path}: {plain}");
        assert_eq!(plain["valid"], true, "{path}: {plain}");
        assert_eq!(plain["claims"]["aud"], "serviceb", "{path}: {plain}");
        assert_eq!(plain["claims"]["sub"], "servicea", "{path}: {plain}");
        assert!(plain.get("trace").is_none(), "{path}: {plain}");
        for off in ["0", "false", "no", "off", "OFF"] {
            let path = format!("/scenario{n}?trace={off}");
            let r = get_a(&s, &path).await;
            assert!(r.header(TRACE).is_none(), "{path}: {:?}", r.headers);
            let (status, body) = r.into_json();
            assert_eq!(status, 200, "{path}: {body}");
            assert_eq!(shape(&body), shape(&plain), "{path}: {body} vs {plain}");
            assert_eq!(body["valid"], true, "{path}: {body}");
            assert!(body.get("trace").is_none(), "{path}: {body}");
        }
    }
    // An untraced refusal keeps its status too.
    let (status, body) = s.get_a("/scenario1?expired=1&trace=0").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.get("trace").is_none(), "{body}");

    // serviceb, asked directly with a valid token: a header trace only for
    // exactly `x-s2s-trace: 1`.
    let token = issue_at(&s.client, &s.factory.url(), "servicea", "serviceb").await;
    let url = format!("{}/scenario1-server", s.b.url());
    let r = reply(s.client.get(&url).bearer_auth(&token)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.header(TRACE).is_none(), "{:?}", r.headers);
    for not_one in ["yes", "true", "0", "11", "01"] {
        let r = reply(
            s.client
                .get(&url)
                .bearer_auth(&token)
                .header(TRACE, not_one),
        )
        .await;
        assert_eq!(r.status, 200, "{not_one:?}: {}", r.text);
        assert!(r.header(TRACE).is_none(), "{not_one:?}: {:?}", r.headers);
    }
    // ...and with it, serviceb's own part: its call to the factory, its check.
    let r = reply(s.client.get(&url).bearer_auth(&token).header(TRACE, "1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let events = decode_header(&r);
    let verify = hop(&events, "jwt-factory", "/verify/servicea");
    assert_eq!(verify.from, "serviceb");
    assert_eq!(verify.status, Some(200));
    check(&verify.events, "jwt-factory", Outcome::Valid);
    check(&events, "serviceb", Outcome::Valid);
    assert!(!has_jws(&r.header(TRACE).map(str::to_owned).unwrap()));
    assert!(!has_jws(&pretty(&events)), "{}", pretty(&events));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario1_traced_shows_both_hops_the_token_and_the_factory_check() {
    let s = Stack::start(Options::default()).await;
    let (status, plain) = s.get_a("/scenario1").await;
    assert_eq!(status, 200, "{plain}");

    let (body, trace) = traced(&s, "/scenario1?trace=1").await;
    assert_eq!(body["status"], 200, "{body}");
    let answer = &body["answer"];
    assert_eq!(shape(answer), shape(&plain), "{answer} vs {plain}");
    assert_eq!(answer["valid"], true, "{answer}");
    assert_eq!(answer["claims"]["aud"], "serviceb");
    assert_eq!(answer["claims"]["sub"], "servicea");
    assert!(
        all_notes(&trace)
            .iter()
            .any(|n| n.starts_with("scenario 1:")),
        "servicea's story: {}",
        pretty(&trace)
    );

    // servicea -> jwt-factory: the token.
    let issue = hop(&trace, "jwt-factory", "/issueToken/servicea");
    assert_eq!(issue.from, "servicea");
    assert_eq!(issue.method, "POST");
    assert_eq!(issue.status, Some(200));
    assert_eq!(issue.error, None);
    assert!(issue.url.starts_with(&s.factory.url()), "{}", issue.url);
    assert!(issue.token.is_none(), "no bearer token on /issueToken");

    // servicea -> serviceb: the call, with the token decoded.
    let call = hop(&trace, "serviceb", "/scenario1-server");
    assert_eq!(call.from, "servicea");
    assert_eq!(call.method, "GET");
    assert_eq!(call.status, Some(200));
    assert_eq!(call.url, format!("{}/scenario1-server", s.b.url()));
    assert!(issue.at_ms <= call.at_ms, "the token came first");
    assert!(call.ms >= 0.0 && issue.ms >= 0.0);
    let token = call.token.as_ref().unwrap();
    assert_eq!(token.claims["aud"], "serviceb", "{token:?}");
    assert_eq!(token.claims["sub"], "servicea", "{token:?}");
    assert_eq!(
        token.claims, answer["claims"],
        "the token serviceb accepted"
    );
    let kid = token_kid(call);

    // Under it, serviceb -> jwt-factory: the verification...
    let verify = hop(&call.events, "jwt-factory", "/verify/servicea");
    assert_eq!(verify.from, "serviceb");
    assert_eq!(verify.method, "POST");
    assert_eq!(verify.status, Some(200));
    // ...and under that, the factory's own check: the kid, the claims it required.
    let factory = check(&verify.events, "jwt-factory", Outcome::Valid);
    assert_eq!(factory.kid.as_deref(), Some(kid.as_str()), "{factory:?}");
    let expected = factory.expected.as_ref().unwrap();
    assert_eq!(expected["aud"], "serviceb", "{expected}");
    assert_eq!(expected["sub"], "servicea", "{expected}");
    check(&call.events, "serviceb", Outcome::Valid);
    assert!(
        all_checks(&trace)
            .iter()
            .all(|(_, c)| c.result != Outcome::Refused),
        "{}",
        pretty(&trace)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario1_expired_traced_shows_the_factory_refusal_under_serviceb() {
    let s = Stack::start(Options::default()).await;
    let (body, trace) = traced(&s, "/scenario1?trace=1&expired=1").await;
    assert_eq!(body["status"], 403, "{body}");
    assert_eq!(body["answer"]["error"]["message"], "jwt expired", "{body}");
    assert_eq!(body["reason"], "jwt expired", "the refuser's words: {body}");

    let issue = hop(&trace, "jwt-factory", "/issueToken/servicea");
    assert!(!issue.url.contains('?'), "no query in a hop: {}", issue.url);
    let call = hop(&trace, "serviceb", "/scenario1-server");
    assert_eq!(call.status, Some(403));
    let exp = call.token.as_ref().unwrap().claims["exp"].as_i64().unwrap();
    assert!(
        exp < now_secs(),
        "the token shown is the expired one: exp {exp}"
    );

    let refusals: Vec<(usize, &Verdict)> = all_checks(&trace)
        .into_iter()
        .filter(|(_, c)| c.result == Outcome::Refused)
        .collect();
    let (depth, deepest) = refusals
        .iter()
        .max_by_key(|(d, _)| *d)
        .unwrap_or_else(|| panic!("no refusal: {}", pretty(&trace)));
    assert_eq!(*depth, 2, "{}", pretty(&trace));
    assert_eq!(deepest.by, "jwt-factory", "{deepest:?}");
    assert_eq!(
        deepest.reason.as_deref(),
        Some("jwt expired"),
        "{deepest:?}"
    );
    assert_eq!(deepest.status, Some(403), "{deepest:?}");
    let serviceb = check(&call.events, "serviceb", Outcome::Refused);
    assert_eq!(serviceb.status, Some(403), "{serviceb:?}");
    assert!(serviceb.reason.is_some(), "{serviceb:?}");
    assert_eq!(serviceb.what, "GET /scenario1-server", "{serviceb:?}");
    let verify = hop(&call.events, "jwt-factory", "/verify/servicea");
    assert_eq!(verify.status, Some(403));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario3_traced_shows_serviceb_verifying_locally_with_the_tokens_kid() {
    let s = Stack::start(Options::default()).await;
    let (body, trace) = traced(&s, "/scenario3?trace=1").await;
    assert_eq!(body["status"], 200, "{body}");
    assert_eq!(body["answer"]["valid"], true, "{body}");

    let call = hop(&trace, "serviceb", "/scenario3-server");
    assert_eq!(call.url, format!("{}/scenario3-server", s.b.https_url()));
    assert_eq!(call.status, Some(200));
    assert_eq!(
        call.token.as_ref().unwrap().claims["iss"],
        "https://service-issuer"
    );
    let kid = token_kid(call);
    let verdict = check(&call.events, "serviceb", Outcome::Valid);
    assert_eq!(verdict.kid.as_deref(), Some(kid.as_str()), "{verdict:?}");
    let expected = verdict.expected.as_ref().unwrap();
    assert_eq!(expected["iss"], "https://service-issuer", "{expected}");
    assert_eq!(expected["aud"], "serviceb", "{expected}");
    assert_eq!(expected["sub"], "servicea", "{expected}");
    // Verified locally: nobody asked jwt-factory anything.
    assert!(
        all_hops(&trace).iter().all(|h| h.to != "jwt-factory"),
        "{}",
        pretty(&trace)
    );
    assert!(
        all_notes(&trace)
            .iter()
            .any(|n| n.contains("token myself") && n.contains(&kid)),
        "{}",
        pretty(&trace)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario6_traced_twice_shows_the_token_endpoint_then_the_cache() {
    let s = Stack::start(Options::default()).await;
    let (first, trace) = traced(&s, "/scenario6?trace=1").await;
    assert_eq!(first["status"], 200, "{first}");
    let token = hop(&trace, "jwt-factory", "/token");
    assert_eq!(token.method, "POST");
    assert_eq!(token.status, Some(200));
    assert_eq!(token.from, "servicea");
    let call = hop(&trace, "serviceb", "/scenario6-server");
    assert_eq!(call.token.as_ref().unwrap().header["typ"], "at+jwt");
    let verdict = check(&call.events, "serviceb", Outcome::Valid);
    assert!(verdict.what.contains("at+jwt"), "{verdict:?}");
    assert_eq!(verdict.expected.as_ref().unwrap()["typ"], "at+jwt");
    assert_eq!(verdict.kid.as_deref(), Some(token_kid(call).as_str()));

    let (second, trace) = traced(&s, "/scenario6?trace=1").await;
    assert_eq!(second["status"], 200, "{second}");
    assert_eq!(
        first["answer"]["claims"]["jti"], second["answer"]["claims"]["jti"],
        "the cached token"
    );
    assert!(
        all_hops(&trace).iter().all(|h| !h.url.ends_with("/token")),
        "no call to /token: {}",
        pretty(&trace)
    );
    assert!(
        all_notes(&trace)
            .iter()
            .any(|n| n.contains("from my cache")),
        "{}",
        pretty(&trace)
    );
    let call = hop(&trace, "serviceb", "/scenario6-server");
    let verdict = check(&call.events, "serviceb", Outcome::Valid);
    assert!(verdict.what.contains("at+jwt"), "{verdict:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario2_expired_traced_shows_both_legs_and_servicecs_refusal() {
    let s = Stack::start(Options::default()).await;
    let (body, trace) = traced(&s, "/scenario2?trace=1&expired=1").await;
    assert_eq!(body["status"], 403, "{body}");
    assert_eq!(body["answer"]["serviceb"]["valid"], true, "{body}");
    // The reason of the leg that refused, in its own words.
    assert_eq!(body["reason"], "jwt expired", "{body}");

    let issued: Vec<&Hop> = hops(&trace)
        .into_iter()
        .filter(|h| h.url.ends_with("/issueToken/servicea"))
        .collect();
    assert_eq!(
        issued.len(),
        2,
        "one token per audience: {}",
        pretty(&trace)
    );

    let b = hop(&trace, "serviceb", "/scenario2-server");
    assert_eq!(b.status, Some(200));
    assert_eq!(b.token.as_ref().unwrap().claims["aud"], "serviceb");
    check(&b.events, "serviceb", Outcome::Valid);

    let c = hop(&trace, "servicec", "/scenario2-server");
    assert_eq!(c.status, Some(403));
    assert_eq!(c.url, format!("{}/scenario2-server", s.c.url()));
    assert_eq!(c.token.as_ref().unwrap().claims["aud"], "servicec");
    let refused = check(&c.events, "servicec", Outcome::Refused);
    assert_eq!(refused.status, Some(403), "{refused:?}");
    let factory = check(
        &hop(&c.events, "jwt-factory", "/verify/servicea").events,
        "jwt-factory",
        Outcome::Refused,
    );
    assert_eq!(
        factory.reason.as_deref(),
        Some("jwt expired"),
        "{factory:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_asked_directly_returns_its_refusal_and_reason_in_the_header() {
    let s = Stack::start(Options::default()).await;
    for (who, url) in [
        ("serviceb", format!("{}/scenario1-server", s.b.url())),
        ("servicec", format!("{}/scenario2-server", s.c.url())),
        ("serviceb", format!("{}/scenario3-server", s.b.https_url())),
        ("serviceb", format!("{}/scenario5-server", s.b.url())),
        ("serviceb", format!("{}/scenario6-server", s.b.url())),
    ] {
        for auth in [Some("Bearer abc"), None] {
            let request = |traced: bool| {
                let mut request = s.client.get(&url);
                if traced {
                    request = request.header(TRACE, "1");
                }
                match auth {
                    Some(auth) => request.header("authorization", auth),
                    None => request,
                }
            };
            let plain = reply(request(false)).await;
            assert!(plain.header(TRACE).is_none(), "{url}: {:?}", plain.headers);
            let r = reply(request(true)).await;
            assert_eq!(
                (r.status, &r.json),
                (plain.status, &plain.json),
                "{url} {auth:?}: the usual answer"
            );
            assert!(
                (400..500).contains(&r.status),
                "{url} {auth:?}: {}: {}",
                r.status,
                r.text
            );
            let events = decode_header(&r);
            let refused = check(&events, who, Outcome::Refused);
            assert_eq!(refused.status, Some(r.status), "{url}: {refused:?}");
            let path = url.rsplit_once('/').unwrap().1;
            assert_eq!(refused.what, format!("GET /{path}"), "{refused:?}");
            let reason = refused.reason.as_deref().unwrap_or_default();
            assert!(!reason.is_empty(), "{url}: {refused:?}");
            assert!(
                r.text.contains(reason),
                "{url}: the reason {reason:?} is the service's own words: {}",
                r.text
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_scenario_query_is_a_400_with_a_message() {
    let s = Stack::start(Options::default()).await;
    for q in [
        "?trace=1&trace=1",
        "?trace=1&trace=2",
        "?expired=1&expired=0&trace=1",
    ] {
        let path = format!("/scenario1{q}");
        let r = get_a(&s, &path).await;
        assert!(r.header(TRACE).is_none(), "{path}");
        let (status, body) = r.into_json();
        assert_eq!(status, 400, "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(!message.is_empty(), "{path}: {body}");
        assert!(body.get("trace").is_none(), "{path}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_controls_need_the_header() {
    let s = Stack::start(Options::default()).await;
    for path in [
        "/console/replay",
        "/console/factory-keys/rotate",
        "/console/forge",
    ] {
        let url = format!("{}{path}", s.a.url());
        for header in [None, Some("0"), Some("yes")] {
            let mut request = s.client.post(&url);
            if let Some(value) = header {
                request = request.header("x-console", value);
            }
            let (status, body) = json_reply(request).await;
            assert_eq!(status, 403, "{path} x-console {header:?}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("x-console"), "{path}: {body}");
        }
    }
    // Nothing was rotated by the refused calls.
    let (status, body) = s.get_a("/console/factory-keys").await;
    assert_eq!(status, 200, "{body}");
    let keys = steps("/console/factory-keys", &body)[0]["answer"]["status"]["keys"].clone();
    assert_eq!(keys.as_array().unwrap().len(), 1, "{keys}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_control_shows_a_bearer_token_accepted_and_a_bound_one_refused() {
    let s = Stack::start(Options::default()).await;
    let steps = control(&s, "/console/replay").await;
    assert_eq!(steps.len(), 2, "{steps:?}");

    let bearer = &steps[0];
    assert_eq!(bearer["status"], 200, "{bearer}");
    assert_eq!(bearer["expect"], "accepted");
    assert_eq!(bearer["answer"]["valid"], true, "{bearer}");
    let trace = trace_of(bearer);
    let call = hop(&trace, "serviceb", "/scenario6-server");
    assert_eq!(call.status, Some(200));
    check(&call.events, "serviceb", Outcome::Valid);

    let bound = &steps[1];
    assert_eq!(bound["status"], 401, "{bound}");
    assert_eq!(bound["expect"], "refused");
    let trace = trace_of(bound);
    let call = hop(&trace, "serviceb", "/scenario8-server");
    assert_eq!(call.status, Some(401));
    assert!(call.url.starts_with("https://"), "{}", call.url);
    assert!(
        call.token.as_ref().unwrap().claims["cnf"]["x5t#S256"].is_string(),
        "a bound token: {call:?}"
    );
    let refused = check(&call.events, "serviceb", Outcome::Refused);
    assert_eq!(refused.status, Some(401));
    assert!(
        refused
            .reason
            .as_deref()
            .unwrap_or_default()
            .contains("certificate"),
        "{refused:?}"
    );
    assert!(bearer.get("reason").is_none(), "{bearer}");
    assert_eq!(
        bound["reason"].as_str(),
        refused.reason.as_deref(),
        "the step's reason is serviceb's: {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rotate_control_rotates_and_the_keys_view_shows_both_keys_published() {
    let s = Stack::start(Options::default()).await;
    let (status, body) = s.get_a("/console/factory-keys").await;
    assert_eq!(status, 200, "{body}");
    let before = steps("/console/factory-keys", &body);
    assert_eq!(before[0]["status"], 200, "{body}");
    let keys = before[0]["answer"]["status"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "{body}");
    assert_eq!(keys[0]["phase"], "current", "{body}");
    let old = keys[0]["kid"].as_str().unwrap().to_owned();
    let trace = trace_of(&before[0]);
    hop(&trace, "jwt-factory", "/utils/keys/servicea/status");
    hop(&trace, "jwt-factory", "/.well-known/jwks.json");

    let rotated = control(&s, "/console/factory-keys/rotate").await;
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0]["status"], 200, "{}", rotated[0]);
    let new = rotated[0]["answer"]["kid"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    let trace = trace_of(&rotated[0]);
    let call = hop(&trace, "jwt-factory", "/keys/servicea/rotate");
    assert_eq!((call.method.as_str(), call.status), ("POST", Some(200)));

    let (status, body) = s.get_a("/console/factory-keys").await;
    assert_eq!(status, 200, "{body}");
    let after = steps("/console/factory-keys", &body);
    assert_eq!(after[0]["status"], 200, "{body}");
    let answer = &after[0]["answer"];
    let keys = answer["status"]["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "{answer}");
    let phase = |kid: &str| {
        keys.iter()
            .find(|k| k["kid"] == kid)
            .map(|k| k["phase"].clone())
            .unwrap_or_else(|| panic!("no key {kid}: {answer}"))
    };
    assert_eq!(phase(&new), "next", "{answer}");
    assert_eq!(phase(&old), "current", "{answer}");
    let published = answer["published"].as_array().unwrap();
    for kid in [&old, &new] {
        assert!(
            published.iter().any(|p| p == kid.as_str()),
            "{kid} published: {answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_forge_control_without_a_gateway_says_so_and_serviceb_refuses_forged_headers() {
    // The gateway's address: a port nothing listens on.
    let gateway = format!("http://127.0.0.1:{}", free_port());
    let s = Stack::start(Options {
        a_args: vec!["--gateway-endpoint".to_owned(), gateway.clone()],
        ..Default::default()
    })
    .await;
    let steps = control(&s, "/console/forge").await;
    assert_eq!(steps.len(), 2, "{steps:?}");

    let through = &steps[0];
    assert_eq!(through["status"], 502, "{through}");
    let message = through["answer"]["message"].as_str().unwrap_or_default();
    assert!(message.contains("gateway"), "{through}");
    let trace = trace_of(through);
    hop(&trace, "jwt-factory", "/issueToken/servicea");
    let call = hop(&trace, "gateway", "/serviceb/scenario9-server");
    assert!(call.url.starts_with(&gateway), "{}", call.url);
    assert_eq!(call.status, None, "no answer: {call:?}");
    assert!(call.error.is_some(), "{call:?}");

    let around = &steps[1];
    assert_eq!(around["status"], 401, "{around}");
    assert_eq!(around["expect"], "refused");
    let trace = trace_of(around);
    let call = hop(&trace, "serviceb", "/scenario9-server");
    assert_eq!(call.status, Some(401));
    assert!(call.token.is_none(), "no token, only forged headers");
    let refused = check(&call.events, "serviceb", Outcome::Refused);
    assert_eq!(refused.status, Some(401), "{refused:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_its_assets_and_the_scenario_list() {
    let s = Stack::start(Options::default()).await;
    let page = get_a(&s, "/").await;
    assert_eq!(page.status, 200, "{}", page.text);
    assert!(
        page.header("content-type")
            .unwrap_or_default()
            .starts_with("text/html"),
        "{:?}",
        page.headers
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'"), "{csp:?}");
    assert!(!csp.contains("unsafe-inline"), "{csp:?}");
    assert!(page.text.contains("/console/console.js"), "{}", page.text);

    for (path, content_type) in [
        ("/console/console.js", "text/javascript"),
        ("/console/console.css", "text/css"),
        ("/console/favicon.svg", "image/svg+xml"),
    ] {
        let r = get_a(&s, path).await;
        assert_eq!(r.status, 200, "{path}");
        let ct = r.header("content-type").unwrap_or_default();
        assert!(ct.starts_with(content_type), "{path}: {ct:?}");
        assert!(!r.text.is_empty(), "{path}");
    }

    let (status, list) = s.get_a("/console/scenarios").await;
    assert_eq!(status, 200, "{list}");
    let list = list.as_array().unwrap();
    let table = &app::scenarios::SCENARIOS;
    assert_eq!(list.len(), 10);
    assert_eq!(list.len(), table.len());
    for (i, (entry, row)) in list.iter().zip(table.iter()).enumerate() {
        assert_eq!(entry["n"], i + 1, "{entry}");
        assert!(
            !entry["teaches"].as_str().unwrap_or_default().is_empty(),
            "{entry}"
        );
        let want = json!({
            "n": row.n,
            "path": row.path(),
            "teaches": row.teaches,
            "story": row.story,
            "fan_out": row.fan_out,
            "check": format!("{:?}", row.check),
        });
        assert_eq!(entry, &want);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_answers_are_pinned_key_for_key() {
    let s = Stack::start(Options::default()).await;
    for (n, iss, claims) in [
        (
            1,
            "https://jwt-factory/",
            &["aud", "exp", "iat", "iss", "sub"][..],
        ),
        (
            3,
            "https://service-issuer",
            &["aud", "exp", "iat", "iss", "sub"][..],
        ),
        (
            6,
            "https://jwt-factory/",
            &["aud", "client_id", "exp", "iat", "iss", "jti", "sub"][..],
        ),
    ] {
        let path = format!("/scenario{n}");
        let r = get_a(&s, &path).await;
        assert!(r.header(TRACE).is_none(), "{path}: {:?}", r.headers);
        let (status, body) = r.into_json();
        assert_eq!(status, 200, "{path}: {body}");
        assert_eq!(keys(&body), ["claims", "valid"], "{path}: {body}");
        assert_eq!(body["valid"], true, "{path}: {body}");
        let got = &body["claims"];
        assert_eq!(keys(got), claims, "{path}: {body}");
        assert_eq!(got["iss"], iss, "{path}: {body}");
        assert_eq!(got["sub"], "servicea", "{path}: {body}");
        assert_eq!(got["aud"], "serviceb", "{path}: {body}");
        assert!(
            got["iat"].as_i64().unwrap() < got["exp"].as_i64().unwrap(),
            "{path}: {body}"
        );
        if n == 6 {
            assert_eq!(got["client_id"], "servicea", "{path}: {body}");
            assert!(got["jti"].as_str().is_some_and(|j| !j.is_empty()), "{body}");
        }
    }

    // The README's expired answer: 403, `TokenExpiredError`, in Node's shape.
    let path = "/scenario1?expired=1";
    let r = get_a(&s, path).await;
    assert!(r.header(TRACE).is_none(), "{path}: {:?}", r.headers);
    let (status, body) = r.into_json();
    assert_eq!(status, 403, "{path}: {body}");
    assert_eq!(
        keys(&body),
        ["claims", "error", "message", "valid"],
        "{path}: {body}"
    );
    assert_eq!(body["valid"], false, "{body}");
    assert_eq!(body["claims"], json!({}), "{body}");
    assert_eq!(
        keys(&body["error"]),
        ["expiredAt", "message", "name"],
        "{body}"
    );
    assert_eq!(body["error"]["name"], "TokenExpiredError", "{body}");
    assert_eq!(body["error"]["message"], "jwt expired", "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_hop_at_every_depth_names_the_answers_request_id() {
    let s = Stack::start(Options::default()).await;
    // An id servicea made (scenario 1: two hops, one nested; scenario 2:
    // two legs at once, each with its own nested hop)...
    for (path, count) in [("/scenario1?trace=1", 3), ("/scenario2?trace=1", 6)] {
        let (body, trace) = traced(&s, path).await;
        assert_eq!(body["status"], 200, "{body}");
        let rid = body["request_id"].as_str().unwrap();
        assert!(!rid.is_empty(), "{body}");
        let hops = all_hops(&trace);
        assert_eq!(hops.len(), count, "{path}: {}", pretty(&trace));
        for hop in hops {
            assert_eq!(
                hop.request_id.as_deref(),
                Some(rid),
                "{path}: the hop to {} {}: {}",
                hop.to,
                hop.url,
                pretty(&trace)
            );
        }
    }
    // ...and one the caller sent, kept along the whole chain.
    let path = "/scenario1?trace=1";
    let r = reply(
        s.client
            .get(format!("{}{path}", s.a.url()))
            .header("x-request-id", "trace-test-7"),
    )
    .await;
    let (body, trace) = read_traced(path, r);
    assert_eq!(body["request_id"], "trace-test-7", "{body}");
    let hops = all_hops(&trace);
    assert_eq!(hops.len(), 3, "{}", pretty(&trace));
    assert!(
        hops.iter()
            .all(|h| h.request_id.as_deref() == Some("trace-test-7")),
        "{}",
        pretty(&trace)
    );
}

/// Checks that `trace` is exactly one scenario 1 that went well, and
/// nothing else: servicea's story, a token from the factory, the call to
/// serviceb and under it serviceb's call to the factory and the two
/// checks, every hop under `rid`, the token shown the one in `answer`.
fn assert_exactly_one_scenario1(what: &str, rid: &str, answer: &Value, trace: &[Event]) {
    let shown = pretty(trace);
    let notes = all_notes(trace);
    assert_eq!(
        notes
            .iter()
            .filter(|n| n.starts_with("scenario 1:"))
            .count(),
        1,
        "{what}: {shown}"
    );
    assert!(
        notes
            .iter()
            .all(|n| !n.starts_with("scenario ") || n.starts_with("scenario 1:")),
        "{what}: {shown}"
    );
    assert_eq!(hops(trace).len(), 2, "{what}: {shown}");
    assert_eq!(all_hops(trace).len(), 3, "{what}: {shown}");
    assert!(checks(trace).is_empty(), "{what}: {shown}");
    let issue = hop(trace, "jwt-factory", "/issueToken/servicea");
    assert_eq!(issue.status, Some(200), "{what}: {shown}");
    assert!(issue.events.is_empty(), "{what}: {shown}");
    let call = hop(trace, "serviceb", "/scenario1-server");
    assert_eq!(call.status, Some(200), "{what}: {shown}");
    assert_eq!(
        call.token.as_ref().unwrap().claims,
        answer["claims"],
        "{what}: the token serviceb accepted: {shown}"
    );
    assert_eq!(hops(&call.events).len(), 1, "{what}: {shown}");
    assert_eq!(checks(&call.events).len(), 1, "{what}: {shown}");
    check(&call.events, "serviceb", Outcome::Valid);
    let verify = hop(&call.events, "jwt-factory", "/verify/servicea");
    assert_eq!(verify.status, Some(200), "{what}: {shown}");
    assert!(hops(&verify.events).is_empty(), "{what}: {shown}");
    assert_eq!(checks(&verify.events).len(), 1, "{what}: {shown}");
    let factory = check(&verify.events, "jwt-factory", Outcome::Valid);
    assert_eq!(
        factory.kid.as_deref(),
        Some(token_kid(call).as_str()),
        "{what}: {shown}"
    );
    for h in all_hops(trace) {
        assert_eq!(h.request_id.as_deref(), Some(rid), "{what}: {shown}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_traced_and_plain_requests_keep_their_events_apart() {
    let s = Stack::start(Options::default()).await;
    const EACH: usize = 16;
    let url = format!("{}/scenario1", s.a.url());
    let traced_calls = (0..EACH).map(|i| {
        let request = s
            .client
            .get(format!("{url}?trace=1"))
            .header("x-request-id", format!("traced-{i}"));
        async move { (i, reply(request).await) }
    });
    let plain_calls = (0..EACH).map(|i| {
        let request = s
            .client
            .get(&url)
            .header("x-request-id", format!("plain-{i}"));
        async move { (i, reply(request).await) }
    });
    let (traced_replies, plain_replies) = tokio::join!(
        futures::future::join_all(traced_calls),
        futures::future::join_all(plain_calls)
    );

    for (i, r) in plain_replies {
        let what = format!("plain {i}");
        assert!(r.header(TRACE).is_none(), "{what}: {:?}", r.headers);
        assert_eq!(
            r.header("x-request-id"),
            Some(format!("plain-{i}").as_str()),
            "{what}"
        );
        let (status, body) = r.into_json();
        assert_eq!(status, 200, "{what}: {body}");
        assert_eq!(keys(&body), ["claims", "valid"], "{what}: {body}");
        assert_eq!(body["valid"], true, "{what}: {body}");
    }

    let mut seen = std::collections::HashSet::new();
    for (i, r) in traced_replies {
        let what = format!("traced {i}");
        let (body, trace) = read_traced(&what, r);
        assert_eq!(body["status"], 200, "{what}: {body}");
        let rid = format!("traced-{i}");
        assert_eq!(body["request_id"], rid.as_str(), "{what}: {body}");
        assert!(seen.insert(rid.clone()), "{what}: twice");
        assert_eq!(keys(&body["answer"]), ["claims", "valid"], "{what}: {body}");
        assert_exactly_one_scenario1(&what, &rid, &body["answer"], &trace);
    }
    assert_eq!(seen.len(), EACH);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controls_grant_no_preflight_and_refuse_other_sites() {
    let s = Stack::start(Options::default()).await;
    let key_count = || async {
        let (status, body) = s.get_a("/console/factory-keys").await;
        assert_eq!(status, 200, "{body}");
        let step = &steps("/console/factory-keys", &body)[0];
        step["answer"]["status"]["keys"].as_array().unwrap().len()
    };
    assert_eq!(key_count().await, 1);

    // A CORS preflight from another origin is granted nothing.
    for path in [
        "/console/replay",
        "/console/factory-keys/rotate",
        "/console/forge",
    ] {
        let r = reply(
            s.client
                .request(reqwest::Method::OPTIONS, format!("{}{path}", s.a.url()))
                .header("origin", "http://evil.example")
                .header("access-control-request-method", "POST")
                .header("access-control-request-headers", "x-console"),
        )
        .await;
        assert!(
            !(200..300).contains(&r.status),
            "{path}: preflight {}: {}",
            r.status,
            r.text
        );
        let granted: Vec<&str> = r
            .headers
            .keys()
            .map(|k| k.as_str())
            .filter(|k| k.starts_with("access-control-"))
            .collect();
        assert!(granted.is_empty(), "{path}: {granted:?}");
    }

    // With the header, but a browser says another site sent it: refused.
    for path in [
        "/console/replay",
        "/console/factory-keys/rotate",
        "/console/forge",
    ] {
        for site in ["cross-site", "same-site", "bogus"] {
            let (status, body) = json_reply(
                s.client
                    .post(format!("{}{path}", s.a.url()))
                    .header("x-console", "1")
                    .header("sec-fetch-site", site),
            )
            .await;
            assert_eq!(status, 403, "{path} {site}: {body}");
            let message = body["message"].as_str().unwrap_or_default();
            assert!(message.contains("Sec-Fetch-Site"), "{path} {site}: {body}");
        }
    }
    assert_eq!(key_count().await, 1, "nothing was rotated");

    // From the console's own page: rotated.
    let url = format!("{}/console/factory-keys/rotate", s.a.url());
    let (status, body) = json_reply(
        s.client
            .post(&url)
            .header("x-console", "1")
            .header("sec-fetch-site", "same-origin"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let rotated = steps("/console/factory-keys/rotate", &body);
    assert_eq!(rotated[0]["status"], 200, "{body}");
    assert_eq!(key_count().await, 2, "rotated once");

    // Typed by the user (`none`): allowed too.
    let url = format!("{}/console/replay", s.a.url());
    let (status, body) = json_reply(
        s.client
            .post(&url)
            .header("x-console", "1")
            .header("sec-fetch-site", "none"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(steps("/console/replay", &body).len(), 2, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_and_every_asset_carry_the_csp_and_nosniff() {
    let s = Stack::start(Options::default()).await;
    for path in [
        "/",
        "/console/console.js",
        "/console/console.css",
        "/console/favicon.svg",
    ] {
        let r = get_a(&s, path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        let csp = r.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("default-src 'none'"), "{path}: {csp:?}");
        assert!(csp.contains("script-src 'self'"), "{path}: {csp:?}");
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp:?}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}: {:?}",
            r.headers
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenario6_expired_traced_gives_the_factorys_invalid_client_reason() {
    let s = Stack::start(Options::default()).await;
    let (status, plain) = s.get_a("/scenario6?expired=1").await;
    assert_eq!(status, 403, "{plain}");

    let (body, trace) = traced(&s, "/scenario6?trace=1&expired=1").await;
    assert_eq!(body["status"], 403, "{body}");
    let answer = &body["answer"];
    assert_eq!(shape(answer), shape(&plain), "{answer} vs {plain}");
    assert_eq!(answer["error"], "invalid_client", "{answer}");
    let reason = body["reason"].as_str().unwrap();
    assert!(reason.contains("client assertion expired"), "{body}");
    assert_eq!(answer["error_description"], reason, "{body}");
    assert!(
        answer["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid_client") && m.contains(reason)),
        "{body}"
    );

    // Refused at the factory's /token: serviceb was never called.
    let token = hop(&trace, "jwt-factory", "/token");
    assert_eq!((token.method.as_str(), token.status), ("POST", Some(401)));
    let refused = check(&token.events, "jwt-factory", Outcome::Refused);
    assert_eq!(refused.reason.as_deref(), Some(reason), "{refused:?}");
    assert!(
        all_hops(&trace).iter().all(|h| h.to != "serviceb"),
        "{}",
        pretty(&trace)
    );
}
