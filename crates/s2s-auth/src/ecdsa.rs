//! ECDSA signatures in one canonical form: "low s".
//!
//! An ECDSA signature `(r, s)` has a twin `(r, n - s)` (n: the curve's
//! order) that verifies just as well, so anyone can re-encode a token's
//! signature without the key: the token stays valid but is no longer the
//! same string (a problem for anything that remembers tokens by their
//! bytes: replay caches, deny lists, logs). aws-lc-rs, like ring, accepts
//! both, and `jsonwebtoken` passes the signature straight to it: the library
//! does not refuse them, so we do. We sign low-s only (`s <= n/2`, [`canonicalize`])
//! and verifiers refuse the other form ([`is_canonical`]), as Bitcoin and
//! Ethereum do (BIP 62, EIP-2).
//!
//! The signatures are JWS's fixed-size `r || s` (RFC 7518 section 3.4),
//! big-endian, so comparing bytes of equal length compares numbers.

use crate::SigningAlgorithm;

/// The order n of P-256.
const P256_ORDER: [u8; 32] = [
    0xff, 0xff, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xbc, 0xe6, 0xfa, 0xad, 0xa7, 0x17, 0x9e, 0x84, 0xf3, 0xb9, 0xca, 0xc2, 0xfc, 0x63, 0x25, 0x51,
];
/// floor(n / 2) for P-256.
const P256_HALF: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];
/// The order n of P-384.
const P384_ORDER: [u8; 48] = [
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xc7, 0x63, 0x4d, 0x81, 0xf4, 0x37, 0x2d, 0xdf,
    0x58, 0x1a, 0x0d, 0xb2, 0x48, 0xb0, 0xa7, 0x7a, 0xec, 0xec, 0x19, 0x6a, 0xcc, 0xc5, 0x29, 0x73,
];
/// floor(n / 2) for P-384.
const P384_HALF: [u8; 48] = [
    0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xe3, 0xb1, 0xa6, 0xc0, 0xfa, 0x1b, 0x96, 0xef,
    0xac, 0x0d, 0x06, 0xd9, 0x24, 0x58, 0x53, 0xbd, 0x76, 0x76, 0x0c, 0xb5, 0x66, 0x62, 0x94, 0xb9,
];

/// The curve order and its half for `alg`; `None`: not ECDSA.
fn curve(alg: SigningAlgorithm) -> Option<(&'static [u8], &'static [u8])> {
    match alg {
        SigningAlgorithm::ES256 => Some((&P256_ORDER, &P256_HALF)),
        SigningAlgorithm::ES384 => Some((&P384_ORDER, &P384_HALF)),
        _ => None,
    }
}

/// `signature` (`r || s`) is in low-s form, or `alg` is not ECDSA. A
/// signature of the wrong length is left to the verifier to refuse.
pub fn is_canonical(alg: SigningAlgorithm, signature: &[u8]) -> bool {
    match curve(alg) {
        Some((_, half)) if signature.len() == 2 * half.len() => &signature[half.len()..] <= half,
        _ => true,
    }
}

/// Turns an ECDSA signature into its low-s twin (`s := n - s`) if needed.
pub fn canonicalize(alg: SigningAlgorithm, signature: &mut [u8]) {
    let Some((order, half)) = curve(alg) else {
        return;
    };
    if signature.len() != 2 * half.len() {
        return;
    }
    let s = &mut signature[half.len()..];
    if &*s <= half {
        return;
    }
    // s := n - s, big-endian, with borrow; n > s, so no borrow is left.
    let mut borrow = 0u16;
    for (digit, n) in s.iter_mut().zip(order).rev() {
        let sub = u16::from(*digit) + borrow;
        let n = u16::from(*n);
        if n >= sub {
            *digit = u8::try_from(n - sub).unwrap_or(0);
            borrow = 0;
        } else {
            *digit = u8::try_from(n + 256 - sub).unwrap_or(0);
            borrow = 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use base64::{Engine as _, engine::general_purpose::URL_SAFE_NO_PAD};

    use super::*;
    use crate::KeyPair;

    /// n - s, computed here independently of [`canonicalize`].
    fn twin(order: &[u8], s: &[u8]) -> Vec<u8> {
        let mut out = order.to_vec();
        let mut borrow = 0i16;
        for (t, d) in out.iter_mut().zip(s).rev() {
            let v = i16::from(*t) - i16::from(*d) - borrow;
            borrow = i16::from(v < 0);
            *t = v.rem_euclid(256).to_le_bytes()[0];
        }
        out
    }

    #[test]
    fn we_sign_low_s_the_library_accepts_the_high_twin_and_we_do_not()
    -> Result<(), Box<dyn std::error::Error>> {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::ES384] {
            let key = KeyPair::generate(alg)?;
            for i in 0..20 {
                let mut claims = crate::jws::Claims::new();
                claims.insert("n".into(), i.into());
                let token = crate::jws::sign(&claims, &key, alg)?;
                let (input, sig) = token.rsplit_once('.').ok_or("no signature")?;
                let low = URL_SAFE_NO_PAD.decode(sig)?;
                assert!(is_canonical(alg, &low), "we sign low-s");
                let (order, _) = curve(alg).ok_or("curve")?;
                let half = low.len() / 2;
                let mut high = low[..half].to_vec();
                high.extend(twin(order, &low[half..]));
                assert!(!is_canonical(alg, &high));
                // jsonwebtoken (aws-lc-rs) accepts the twin: hence our check.
                let forged = format!("{input}.{}", URL_SAFE_NO_PAD.encode(&high));
                let mut v = jsonwebtoken::Validation::new(alg.jwt());
                v.required_spec_claims.clear();
                v.validate_exp = false;
                jsonwebtoken::decode::<serde_json::Value>(
                    &forged,
                    key.public().decoding_key(),
                    &v,
                )?;
                let mut back = high.clone();
                canonicalize(alg, &mut back);
                assert_eq!(back, low);
            }
        }
        assert!(is_canonical(SigningAlgorithm::RS256, &[0xff; 256]));
        Ok(())
    }
}
