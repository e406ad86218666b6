//! Hand-made tokens: any header and claims, signed by any key under any
//! algorithm or carrying any signature at all, so tests can send what no
//! honest issuer would.

use base64::{
    Engine as _,
    engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD},
};
use jsonwebtoken::{Algorithm, EncodingKey};
use serde_json::{Map, Value};

/// The third segment of a forged token.
#[derive(Clone, Copy)]
pub enum Sig<'a> {
    /// A real signature over `header.payload` by this key under this
    /// algorithm, whatever the header says.
    By(&'a EncodingKey, Algorithm),
    /// These characters as they are (`""`: no signature).
    Raw(&'a str),
}

/// One segment of a compact JWS: `bytes` in base64url, without padding.
pub fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// `header.payload.signature` from the header's and payload's raw text
/// (which need not be JSON, or may say a thing twice).
pub fn forge_raw(header: &str, payload: &str, sig: Sig) -> String {
    let message = format!("{}.{}", b64(header), b64(payload));
    let sig = match sig {
        Sig::By(key, alg) => jsonwebtoken::crypto::sign(message.as_bytes(), key, alg)
            .unwrap_or_else(|e| panic!("signing with {alg:?}: {e}")),
        Sig::Raw(sig) => sig.to_owned(),
    };
    format!("{message}.{sig}")
}

/// A token of this `header` and these `claims` (as JSON), with `sig`.
pub fn forge(header: &Value, claims: &Value, sig: Sig) -> String {
    forge_raw(&header.to_string(), &claims.to_string(), sig)
}

/// `token` with its header changed by `edit`, payload and signature kept
/// (so the signature no longer matches, but a verifier reads the header
/// first).
pub fn edit_header(token: &str, edit: impl FnOnce(&mut Map<String, Value>)) -> String {
    let (header, rest) = token.split_once('.').expect("a compact JWS");
    let bytes = URL_SAFE_NO_PAD.decode(header).expect("header in base64url");
    let mut h: Value = serde_json::from_slice(&bytes).expect("header is JSON");
    edit(h.as_object_mut().expect("header is an object"));
    format!("{}.{rest}", b64(h.to_string()))
}

/// The DER inside a PEM (for keys used the wrong way, or rewritten).
pub fn pem_der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).expect("PEM body in base64")
}
