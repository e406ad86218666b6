//! # xtask: the workshop's tasks, in Rust
//!
//! `cargo xtask ...` (an alias in `.cargo/config.toml`) installs the tools,
//! builds, and starts, supervises and stops the nine processes of the
//! stack: what `scripts/lib.sh` did in bash. The scripts keep only what a
//! workshop reads: the `curl` lines of the walkthrough.
//!
//! The tests share its process handling ([`child`], [`ready`]) and where
//! the tools are ([`install`]) through `test-support`.

pub mod bench;
pub mod child;
pub mod commands;
pub mod control;
pub mod factory_lb;
pub mod install;
pub mod jwks;
pub mod keys;
pub mod load;
pub mod openbao;
pub mod openbao_certs;
pub mod paths;
pub mod prepare;
pub mod ready;
pub mod say;
pub mod spec;
pub mod stack;
pub mod supervise;
pub mod test_cmd;
pub mod up;
pub mod validate_deploy;
