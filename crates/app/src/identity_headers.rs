//! The gateway's identity headers (scenario 9), named once: the verifier
//! writes them for nginx to forward, the receivers read them.

/// Each header, and the claim it carries.
pub(crate) const IDENTITY_HEADERS: [(&str, &str); 4] = [
    ("x-jwt-sub", "sub"),
    ("x-jwt-aud", "aud"),
    ("x-jwt-client-id", "client_id"),
    ("x-jwt-jti", "jti"),
];
