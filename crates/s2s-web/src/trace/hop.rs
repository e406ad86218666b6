//! An outbound call under a trace: timed, its token decoded, the callee
//! asked to trace too, and its events nested under the hop it records.

use std::time::Instant;

use axum::http::{HeaderMap, HeaderValue};

use super::{
    TRACE,
    events::{DecodedToken, Event, Hop, Note},
    header::read_header,
    recorder::CURRENT,
};

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::{Verdict, check, collect, header::write_header, note, recorder::active};

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
}
