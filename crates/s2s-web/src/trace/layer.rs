//! The middleware: a request asked to be traced (`x-s2s-trace: 1`) is
//! served inside [`collect`], a refusal is recorded with its reason, and
//! the events go back in the answer's header. Other requests pass as they are.

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
};

use axum::{body::Body, extract::Request, http::HeaderValue, response::Response};
use futures::future::{BoxFuture, Either};

use super::{
    MAX_HEADER_BYTES, TRACE,
    events::{Event, Note, Outcome, Verdict},
    header::write_header,
    reason::refusal_reason,
    recorder::{check, collect},
};

/// Largest error body read to find a refusal's reason.
const MAX_REFUSAL_BODY: usize = 64 * 1024;

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::header::read_header;

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
}
