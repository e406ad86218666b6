//! One switch for every workshop shortcut, so an engineer who copies this
//! code turns them all off with one setting, and none is forgotten.
//!
//! The workshop needs shortcuts to show its lessons in a room: a token
//! service that signs for anyone, key management with a plain `curl`, a
//! trace that shows every hop. A production deployment must have none of
//! them. `PRODUCTION=true` (or `--production`) turns off, in every binary:
//!
//! | shortcut | on (the workshop) | off (`PRODUCTION=true`) |
//! | --- | --- | --- |
//! | jwt-factory's `/issueToken` and `/verify` | anyone gets and checks tokens | 403, pointing to `POST /token` (ISSUE_TOKEN_SHORTCUT cannot turn them back on) |
//! | anonymous key management (`/keys/{id}`, `/keys/{id}/rotate`, `/utils/dump`, servicea's `POST /gen-keys`) | any local caller | the factory's only on its mTLS listener, for the admin workload identity (`ADMIN_PRINCIPAL`); servicea's `POST /gen-keys` is off (403: use `app gen-keys`) |
//! | the trace header (`x-s2s-trace`, `?trace=1`) | any caller sees hops, checks and claims | ignored: answers as without it |
//! | permissive mTLS (`MTLS_MODE=permissive`, the default) | callers without a certificate pass the https listener | strict: a handshake without a client certificate from the CA is refused |
//! | the gateway's acceptance of `/issueToken` tokens | `typ: JWT` tokens pass (without their `client_id`/`jti`) | only the STS's `at+jwt` tokens pass |

use clap::Args;

use crate::tls::MtlsMode;

/// The switch, flattened into every binary's arguments.
#[derive(Args, Debug, Clone, Copy, Default)]
pub struct ProductionArgs {
    /// Turn off every workshop shortcut at once: jwt-factory's /issueToken
    /// and /verify; anonymous key management (the factory's key endpoints
    /// then answer only the admin identity over mTLS, servicea's POST
    /// /gen-keys is off); the trace header (x-s2s-trace, ?trace=1);
    /// permissive mTLS (MTLS_MODE=permissive becomes strict); and the gateway's
    /// acceptance of /issueToken tokens. See docs/security.md.
    #[arg(long, env = "PRODUCTION", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    pub production: bool,
}

impl ProductionArgs {
    /// Whether the workshop's shortcuts are on (not `PRODUCTION`).
    pub fn shortcuts(self) -> bool {
        !self.production
    }

    /// A listener's `MTLS_MODE` as it applies: PRODUCTION turns
    /// `permissive` (a client without a certificate passes) into `strict`.
    pub fn mtls_mode(self, mode: MtlsMode) -> MtlsMode {
        match mode {
            MtlsMode::Permissive if self.production => MtlsMode::Strict,
            mode => mode,
        }
    }
}
