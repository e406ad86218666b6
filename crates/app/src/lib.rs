//! # app: servicea, serviceb, servicec and the gateway's verifier
//!
//! One binary, four roles, chosen by the subcommand (and its env file in
//! `env/`). Run each in its own terminal from the workspace root:
//!
//! ```text
//! cargo run --release --bin app -- gen-certs    # once: local CA + localhost certificate
//! cargo run --release --bin app -- servicea     # :3000
//! cargo run --release --bin app -- serviceb     # :3001, https :8443
//! cargo run --release --bin app -- servicec     # :3002, https :9443
//! cargo run --release --bin app -- verifier     # :3003, asked by nginx (scenario 9)
//! cargo run --release --bin app -- gateway-config   # nginx's configuration (scenario 9)
//! cargo run --release --bin app -- mesh-config      # the Envoy sidecars' configuration (scenario 10)
//! curl -X POST localhost:3000/gen-keys          # servicea's own key pair (scenarios 3-4)
//! curl localhost:3000/scenario1                 # 2, 3, 4, 5; each also with ?expired=1
//! ```
//!
//! | request | on | what happens |
//! | --- | --- | --- |
//! | `GET /scenario1..10[?expired=1]` | servicea | see [`scenarios`] and [`caller`] |
//! | `GET /scenario6/token?audience=NAME` | servicea | a token for any audience, through scenario 6's cache |
//! | `POST /gen-keys` | servicea | its own scenario-3 key pair |
//! | `GET /scenario{1,2,5,6,10}-server` | serviceb, servicec (http) | see [`receiver`] |
//! | `GET /scenario{3,4,7,8,9}-server` | serviceb, servicec (https) | see [`receiver`] |
//! | `GET /auth/{service}` | verifier | see [`verifier`] |
//! | `GET /`, `/console/...` | servicea | the workshop console |
//! | `GET /hello` | all | `hello` |
//!
//! # Layout
//!
//! A folder per role; what two roles share sits at the root. A role
//! exposes its `Args`, `State`, `router()`/`run()` and `serve()`, and
//! nothing else. `receiver/` never imports `caller/`, nor the other way
//! round (a test, `house_rules`, checks it).
//!
//! - [`caller`]: servicea. Its settings and state, the plan of each
//!   scenario's leg (`plan`, pure) and the legs that carry it out, its
//!   token clients (the factory's `POST /token`, its own key), key
//!   rotation, and the workshop console.
//! - [`receiver`]: serviceb and servicec: settings, state, routes, and one
//!   file per way of checking a caller (the factory, local keys, access
//!   tokens, identity by policy, the gateway's headers, the sidecar's).
//! - [`verifier`]: scenario 9's verifier, asked by nginx.
//! - [`tools`]: the nginx and Envoy configuration commands.
//! - Shared: [`scenarios`] (the table), [`cli`] (subcommands), `role`
//!   (names and ports), `settings` (what every role reads), [`error`]
//!   (every failure, and the one place it becomes a JSON response),
//!   `bearer`, `binding`, `jwks`, `token_check`, `key_set`,
//!   `factory_client`, `identity_headers`, `common_routes`.

#![warn(unreachable_pub)]

/// A role's shared state: `$inner` (the fields), and `$state`, an
/// `Arc<$inner>` that is cheap to clone and reads as `$inner` (`Deref`).
macro_rules! shared_state {
    ($(#[$doc:meta])* $state:ident => $inner:ident { $($fields:tt)* }) => {
        $(#[$doc])*
        #[derive(Clone, Debug)]
        pub struct $state(std::sync::Arc<$inner>);

        #[derive(Debug)]
        pub struct $inner { $($fields)* }

        impl std::ops::Deref for $state {
            type Target = $inner;
            fn deref(&self) -> &$inner {
                &self.0
            }
        }
    };
}

pub mod caller;
pub mod cli;
pub mod error;
pub mod receiver;
pub mod scenarios;
pub mod tools;
pub mod verifier;

mod bearer;
mod binding;
mod common_routes;
mod defaults;
mod factory_client;
mod identity_headers;
mod jwks;
mod key_set;
mod role;
mod self_signed_args;
mod settings;
mod token_check;

pub use role::Role;
