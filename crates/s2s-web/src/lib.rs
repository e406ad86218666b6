//! Web plumbing that jwt-factory and the three services share.
//!
//! None of this is about tokens (that is `s2s-auth`); all of it is what a
//! small HTTP service needs to be safe to run and easy to follow: listeners
//! with timeouts, TLS, request ids that read across terminals, one shutdown
//! signal, configuration from env files, and JSON answers to bad input.
//!
//! # Layout
//!
//! - [`serve`]: every listener: `TCP_NODELAY`, header, idle and body timeouts, connection cap, `Host` check, TLS.
//! - [`connections`]: the connections of a listener: first-request deadline, idle timeout, cap.
//! - [`guard`]: `Host` check (421), body deadline (408), JSON content type (415).
//! - [`cross_site`]: state-changing requests a browser sends for another site (403).
//! - [`tls`]: the https listener's certificate and key, checked at start.
//! - [`pki`]: the local CA and certificates that `app gen-certs` writes (replaces `mkcert`).
//! - [`request_tracing`]: request ids set at the edge, one log span per request.
//! - [`telemetry`]: the log subscriber, with a non-blocking writer.
//! - [`outbound`]: bounded outbound calls that forward the request id.
//! - [`peer_pin`]: a TLS client accepts only the workload it means to call (its SPIFFE ID).
//! - [`jwks_cache`]: a publisher's JWK Set, fetched and cached with one set of rules (receivers and the factory).
//! - [`trace`]: the console's opt-in trace of one request's hops and checks.
//! - [`shutdown`]: one future for Ctrl-C and SIGTERM, one drain period.
//! - [`env_file`]: the env file loaded before clap parses (flag > env > file > default).
//! - [`rejection`]: extractor rejections turned into [`rejection::BadInput`].
//! - [`expired`]: the `?expired=` rule of the scenarios and `/issueToken`.
//! - [`cli`]: how a binary reports a user error: one line, no backtrace.
//! - [`production`]: `PRODUCTION`, the one switch that turns every workshop shortcut off.

pub mod cli;
pub mod connections;
pub mod cross_site;
pub mod env_file;
pub mod expired;
pub mod guard;
pub mod identity;
pub mod jwks_cache;
pub mod listener_checks;
pub mod outbound;
pub mod peer_pin;
pub mod pki;
pub mod production;
pub mod rejection;
pub mod request_tracing;
pub mod serve;
pub mod shutdown;
pub mod telemetry;
pub mod tls;
pub mod trace;

pub use rejection::BadInput;
