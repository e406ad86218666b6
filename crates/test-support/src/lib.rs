//! What the tests of `jwt-factory` and `app` share, so each helper exists
//! once: real servers on ephemeral ports, with real key files and a real
//! local CA in a temp dir, routers without a socket, one way to read an
//! answer and one way to forge a token.
//!
//! # Layout
//!
//! - [`stack`]: jwt-factory, servicea, serviceb and servicec as real
//!   servers ([`stack::Stack`]), one server at a time
//!   ([`stack::start_factory`], [`stack::start_service`]), each role's
//!   state for its router ([`stack::servicea_state`],
//!   [`stack::receiver_state`]), free ports, and the env variables each
//!   role reads, straight from clap.
//! - [`files`]: certificates, servicea's key pair and KEYS_DIR in a temp
//!   dir, and the flags that point each role at them.
//! - [`factory`]: one factory with its own KEYS_DIR, restartable, and
//!   helpers for its endpoints.
//! - [`reply`](mod@reply): send a request (or call a router) and read the answer
//!   whole; the one JSON reply helper.
//! - [`forge`]: tokens with any header, claims and signature.
//! - [`gateway`], [`mesh`]: the real nginx (scenario 9) and the real Envoy
//!   sidecars (scenario 10) in front of the stack.
//! - [`browser`]: Chromium and Playwright for the console's tests.
//! - [`captured_log`]: the process's log in a buffer, for tests that read it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod browser;
pub mod captured_log;
pub mod factory;
pub mod files;
pub mod forge;
pub mod gateway;
pub mod mesh;
pub mod openbao;
pub mod reply;
pub mod stack;

pub use files::Files;
pub use reply::{
    ANSWER_WITHIN, RawAnswer, Reply, get_json, issue_at, json_reply, oneshot, raw_http, reply,
    status_and_value,
};
pub use stack::*;
