//! The checks every listener makes before a request reaches a route, as
//! one plain `tower` layer: the `Host` (421, [`crate::guard`]), a
//! browser's cross-site request (403, [`crate::cross_site`]), and the
//! body's deadline and size (408, 413, [`crate::guard`]).
//!
//! Why one hand-written layer and not three `axum::middleware::from_fn`:
//! each `from_fn` boxes its future and the rest of the stack for every
//! request. Here a request that passes goes on with no allocation: the
//! checks read its headers in place, and only a request with a body pays
//! for the one boxed future that reads it within its deadline
//! (`cargo bench -p app --bench receive_path` shows the difference: the
//! three `from_fn` layers cost more than the router behind them).

use std::{
    convert::Infallible,
    sync::Arc,
    task::{Context, Poll},
    time::Duration,
};

use axum::{body::HttpBody as _, extract::Request, response::Response};
use futures::future::{BoxFuture, Either, Ready, ready};
use tower::{Layer, Service};

use crate::{
    cross_site::{SiteCheck, site_refusal},
    guard::{AllowedHosts, BodyDeadline, HostCheck, host_refusal, read_body},
};

/// What the checks need, shared by every connection of a listener.
#[derive(Clone, Debug)]
pub struct ListenerChecks(Arc<Checks>);

#[derive(Debug)]
struct Checks {
    host: HostCheck,
    site: SiteCheck,
    body: BodyDeadline,
}

impl ListenerChecks {
    /// The checks of a listener that answers to `hosts`, reads at most
    /// `max_body_bytes` within `body_timeout`, and answers errors as
    /// `{error_key: ...}`; `tls`: its scheme (for the cross-site check's
    /// default port). [`crate::serve::guarded`] makes them from a
    /// listener's options.
    pub fn new(
        hosts: AllowedHosts,
        error_key: &'static str,
        body_timeout: Duration,
        max_body_bytes: usize,
        tls: bool,
    ) -> Self {
        Self(Arc::new(Checks {
            host: HostCheck { hosts, error_key },
            site: SiteCheck { tls, error_key },
            body: BodyDeadline {
                timeout: body_timeout,
                max_bytes: max_body_bytes,
                error_key,
            },
        }))
    }
}

impl<S> Layer<S> for ListenerChecks {
    type Service = Checked<S>;

    fn layer(&self, inner: S) -> Checked<S> {
        Checked {
            checks: self.clone(),
            inner,
        }
    }
}

/// A service behind the listener's checks.
#[derive(Clone, Debug)]
pub struct Checked<S> {
    checks: ListenerChecks,
    inner: S,
}

/// A refusal, the inner service's own future (no body to read), or the
/// body read and then the inner service.
type CheckedFuture<F> = Either<
    Ready<Result<Response, Infallible>>,
    Either<F, BoxFuture<'static, Result<Response, Infallible>>>,
>;

impl<S> Service<Request> for Checked<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = CheckedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let checks = &self.checks.0;
        // Before the body is read: a refused request costs no body.
        if let Some(refusal) = host_refusal(&checks.host, &req) {
            return Either::Left(ready(Ok(refusal)));
        }
        if let Some(refusal) = site_refusal(checks.site, &mut req) {
            return Either::Left(ready(Ok(refusal)));
        }
        if req.body().size_hint().exact() == Some(0) {
            return Either::Right(Either::Left(self.inner.call(req)));
        }
        // The service made ready by `poll_ready` goes with the request; a
        // clone stays for the next one (tower's rule for moving a call).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let checks = Arc::clone(&self.checks.0);
        Either::Right(Either::Right(Box::pin(async move {
            match read_body(&checks.body, req).await {
                Ok(req) => inner.call(req).await,
                Err(refusal) => Ok(refusal),
            }
        })))
    }
}
