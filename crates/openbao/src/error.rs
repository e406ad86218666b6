//! Every way a call to OpenBao fails. Each message names OpenBao, its
//! address and the path asked for, so an operator knows where to look.

/// A failed call to OpenBao.
#[derive(Debug, thiserror::Error)]
pub enum OpenBaoError {
    /// No answer: connection refused, reset, or out of time.
    #[error("OpenBao at {addr} is unreachable ({path}): {reason}")]
    Unreachable {
        addr: String,
        path: String,
        reason: String,
        /// The request never reached the node (no connection): it is safe
        /// to send it to another node. Not so after a timeout once sent,
        /// when a rotation or a write may have happened.
        unsent: bool,
    },
    /// 403: the token is not allowed this, or no longer valid (revoked,
    /// expired) and a new login did not help.
    #[error("OpenBao at {addr} refused {path}: permission denied ({detail})")]
    Denied {
        addr: String,
        path: String,
        detail: String,
    },
    /// Any other refusal (400, 404, 5xx): OpenBao's own `errors`.
    #[error("OpenBao at {addr} answered {status} to {path}: {detail}")]
    Refused {
        addr: String,
        path: String,
        status: u16,
        detail: String,
    },
    /// A check-and-set write lost: another writer changed the record first.
    #[error("OpenBao at {addr}: {path} was changed by another writer (check-and-set)")]
    Conflict { addr: String, path: String },
    /// An answer this client cannot read.
    #[error("OpenBao at {addr} gave an unexpected answer to {path}: {reason}")]
    BadAnswer {
        addr: String,
        path: String,
        reason: String,
    },
    /// A setting is wrong (an unreadable credential file, a bad address).
    #[error("OpenBao settings: {0}")]
    Settings(String),
}

impl OpenBaoError {
    /// Whether OpenBao could not be reached at all (as opposed to refusing).
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Unreachable { .. })
    }
}
