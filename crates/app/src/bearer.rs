//! The caller's bearer token, taken from exactly one `Authorization` header.
//!
//! Policy (RFC 6750 section 2.1, RFC 7235): the scheme is matched without
//! regard to case (`Bearer`, `bearer`); exactly one `Authorization` header;
//! a token in the query string or a form body is never looked at; `Basic`
//! or any other scheme is not a bearer token, whatever it carries; a token
//! over [`MAX_TOKEN_LEN`] bytes is refused before anything parses it. Each
//! refusal is a 401 that says which rule was broken, and is logged.

use axum::{
    extract::FromRequestParts,
    http::{header::AUTHORIZATION, request::Parts},
};

use s2s_auth::verify::MAX_TOKEN_LEN;

use crate::error::AppError;

const TOO_LARGE: &str = "token too large: over 8192 bytes";
// The message above names the limit: keep the two in step.
const _: () = assert!(MAX_TOKEN_LEN == 8192);

/// A bearer token as sent; not yet verified.
#[derive(Debug)]
pub(crate) struct BearerToken(pub String);

impl<S: Send + Sync> FromRequestParts<S> for BearerToken {
    type Rejection = AppError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let mut values = parts.headers.get_all(AUTHORIZATION).iter();
        let (Some(value), None) = (values.next(), values.next()) else {
            let reason = if parts.headers.contains_key(AUTHORIZATION) {
                "more than one Authorization header"
            } else {
                "no token provided"
            };
            tracing::info!("rejected: {reason}");
            return Err(AppError::NoToken(reason));
        };
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .filter(|t| !t.is_empty() && !t.contains(' '));
        match token {
            // Refused here, before it is forwarded to jwt-factory or parsed.
            Some(t) if t.len() > MAX_TOKEN_LEN => {
                tracing::info!("rejected: token of {} bytes", t.len());
                Err(AppError::NoToken(TOO_LARGE))
            }
            Some(t) => {
                tracing::info!("got bearer token from caller: {}", preview(t));
                Ok(Self(t.to_owned()))
            }
            None => {
                tracing::info!("rejected: Authorization header is not `Bearer <token>`");
                Err(AppError::NoToken(
                    "no token provided: Authorization must be `Bearer <token>`",
                ))
            }
        }
    }
}

/// The start of a token, enough to recognise it in the logs.
pub(crate) fn preview(token: &str) -> String {
    let end = token.char_indices().nth(24).map_or(token.len(), |(i, _)| i);
    format!("{}...", &token[..end])
}
