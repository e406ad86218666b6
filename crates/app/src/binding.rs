//! Certificate-bound access tokens (RFC 8705, scenario 8): a token whose
//! `cnf` claim holds `x5t#S256`, the SHA-256 thumbprint of the certificate
//! it was issued to, is accepted only over an mTLS connection whose client
//! certificate has that thumbprint. A stolen token is then useless without
//! the private key of that certificate.
//!
//! Refusals are 401 `invalid_token` and say why. A receiver that cannot see
//! a client certificate (plain http) refuses a bound token rather than
//! ignore the binding.

use s2s_auth::jws::Claims;
use s2s_web::identity::ClientCert;
use serde_json::Value;
use subtle::ConstantTimeEq as _;

use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

use crate::error::AppError;

/// Whether the token must be bound (scenario 8) or may be a plain bearer
/// token (scenario 6).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Binding {
    Required,
    IfPresent,
}

/// Checks `claims`' `cnf` against the connection's client certificate.
pub(crate) fn check(claims: &Claims, cert: &ClientCert, binding: Binding) -> Result<(), AppError> {
    let refuse = |why: String| Err(AppError::Binding(why));
    let Some(cnf) = claims.get("cnf") else {
        return match binding {
            Binding::Required => refuse(
                "the token is not bound to a certificate (no cnf claim): this path takes only \
                 certificate-bound tokens (RFC 8705)"
                    .into(),
            ),
            Binding::IfPresent => Ok(()),
        };
    };
    let Some(expected) = cnf.get("x5t#S256").and_then(Value::as_str) else {
        return refuse("cnf has no x5t#S256 thumbprint".into());
    };
    let expected = match URL_SAFE_NO_PAD.decode(expected) {
        Ok(bytes) if bytes.len() == 32 => bytes,
        _ => {
            return refuse(format!(
                "cnf x5t#S256 {:?} is not a base64url SHA-256 thumbprint",
                preview(expected)
            ));
        }
    };
    let presented = match cert {
        ClientCert::Verified(id) => &id.thumbprint,
        ClientCert::None => {
            return refuse(
                "the token is bound to a client certificate (cnf x5t#S256), but the connection \
                 presented none (one-way TLS or plain http): a bound token is accepted only over \
                 mTLS with that certificate"
                    .into(),
            );
        }
        ClientCert::Unusable(why) => return refuse(format!("client certificate unusable: {why}")),
    };
    let presented = URL_SAFE_NO_PAD.decode(presented).map_err(|_| {
        AppError::Binding("the client certificate's thumbprint could not be read".into())
    })?;
    if bool::from(presented.ct_eq(&expected)) {
        Ok(())
    } else {
        refuse(
            "the token is bound to another certificate: cnf x5t#S256 does not match the \
             thumbprint of the client certificate of this connection"
                .into(),
        )
    }
}

fn preview(s: &str) -> String {
    s.chars().take(64).collect()
}
