//! # openbao
//!
//! What the factory needs of [OpenBao](https://openbao.org) (the open-source
//! fork of Vault, same HTTP API), and no more: seed 002's pattern, where a
//! secret store holds the keys and a service holds at most a short-lived,
//! revocable token to use them.
//!
//! - [`client`]: one [`OpenBao`] per process. It logs in with AppRole
//!   (its own identity, never the root token), keeps the token, and logs
//!   in again once when OpenBao says the token is no longer good.
//! - [`transit`]: Transit keys (create, rotate, read the public keys of
//!   every version) and signatures made by OpenBao (`marshaling_algorithm
//!   = jws`): the private key never leaves OpenBao.
//! - [`kv`]: KV v2 records with check-and-set, for what several factory
//!   replicas must agree on (a key id's phases).
//! - [`pki`]: workload certificates from the PKI engine (the CA's key
//!   stays in OpenBao), short-lived, renewed by a cert agent.
//! - [`setup`]: the administrator's side, run with the root token by the
//!   demo and the tests, never by a service: engines, policies, AppRole
//!   roles and their credentials, the audit device.
//! - [`args`]: the settings (`OPENBAO_ADDR`, ...), for `clap`.
//!
//! Every failure is an [`OpenBaoError`] that names OpenBao, its address
//! and what was asked: a service turns it into a 503 with that message.
//! Calls are bounded by the client's timeouts, so a down OpenBao is an
//! answer within them, never a hang.

pub mod args;
pub mod client;
pub mod error;
pub mod kv;
pub mod pki;
pub mod setup;
pub mod transit;

pub use args::OpenBaoArgs;
pub use client::{AppRole, OpenBao};
pub use error::OpenBaoError;
