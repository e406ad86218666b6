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
//!
//! # Layout
//!
//! - `events`: what a trace holds (hops, checks, notes), as it travels;
//! - `recorder`: the events of one service for one request, and the
//!   calls that add to them ([`check`], [`note`], [`collect`]);
//! - `hop`: an outbound call, timed and recorded;
//! - `layer`: the tower middleware that traces a request asked to;
//! - `header`: events in and out of the `x-s2s-trace` header;
//! - `reason`: a refusal's reason, read from its JSON error.

mod events;
mod header;
mod hop;
mod layer;
mod reason;
mod recorder;

pub use events::{DecodedToken, Event, Hop, Note, Outcome, Verdict};
pub use hop::{HopStarted, hop_started};
pub use layer::{TraceLayer, Traced, layer};
pub use reason::reason_of;
pub use recorder::{check, collect, note};

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
