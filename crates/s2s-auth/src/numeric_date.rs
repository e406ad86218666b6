//! The one way a time claim (`exp`, `iat`, `nbf`) is read, everywhere.
//!
//! RFC 7519 §2 makes a NumericDate a JSON number of seconds since 1970,
//! "possibly non-integer": `time.time() + 60` and `Date.now() / 1000 + 60`
//! send floats. `jsonwebtoken` accepts floats and any `u64`, so a reader
//! that asks for an `i64` (`as_i64().unwrap_or(0)`) sees `0` for
//! `1796670938.5` or `2^64 - 1`, and every rule built on that claim (a
//! lifetime cap, how long a `jti` is remembered) silently stops applying.
//! Here a time claim is an integer or a float, finite, not negative, and
//! before the year 10000; anything else (a string, `-5`, `1e300`) is an
//! error that names the claim. Callers round the way that is safe for
//! their rule: [`NumericDate::ceil`] for an expiry to remember until,
//! [`NumericDate::floor`] for a moment to compare against "now".

use serde_json::{Map, Value};

/// The latest NumericDate read: 9999-12-31T23:59:59Z. Later values are
/// not dates any issuer means (and some do not fit an `i64` of seconds).
pub const MAX_NUMERIC_DATE: f64 = 253_402_300_799.0;

/// A time claim, read: seconds since 1970, finite, within
/// `0..=`[`MAX_NUMERIC_DATE`].
#[derive(Clone, Copy, Debug, PartialEq, PartialOrd)]
pub struct NumericDate(f64);

/// Why a time claim is refused. Names the claim, and the JSON type it
/// had (never the value itself, which the sender chose).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum NumericDateError {
    #[error("{claim} must be a NumericDate (a JSON number of seconds since 1970), not {found}")]
    NotANumber { claim: String, found: &'static str },
    #[error("{claim} must be a time after 1970 (it is negative)")]
    Negative { claim: String },
    #[error("{claim} is not a date: after the year 9999")]
    TooLarge { claim: String },
}

impl NumericDate {
    /// Reads `value` as the claim `claim`.
    pub fn from_value(claim: &str, value: &Value) -> Result<Self, NumericDateError> {
        let secs = match value {
            Value::Number(n) => n.as_f64(),
            _ => None,
        }
        .ok_or_else(|| NumericDateError::NotANumber {
            claim: claim.to_owned(),
            found: json_type(value),
        })?;
        if secs.is_nan() || secs < 0.0 {
            return Err(NumericDateError::Negative {
                claim: claim.to_owned(),
            });
        }
        if !secs.is_finite() || secs > MAX_NUMERIC_DATE {
            return Err(NumericDateError::TooLarge {
                claim: claim.to_owned(),
            });
        }
        Ok(Self(secs))
    }

    /// The seconds, as sent.
    pub fn secs(self) -> f64 {
        self.0
    }

    /// Whole seconds, rounded up: `exp` 100.2 is remembered until 101.
    pub fn ceil(self) -> i64 {
        // In 0..=MAX_NUMERIC_DATE, so the cast is exact.
        self.0.ceil() as i64
    }

    /// Whole seconds, rounded down.
    pub fn floor(self) -> i64 {
        self.0.floor() as i64
    }
}

/// The claim `claim` of `claims`: `None` if absent, an error if present
/// and not a NumericDate.
pub fn numeric_date(
    claims: &Map<String, Value>,
    claim: &str,
) -> Result<Option<NumericDate>, NumericDateError> {
    claims
        .get(claim)
        .map(|v| NumericDate::from_value(claim, v))
        .transpose()
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value) -> Result<NumericDate, NumericDateError> {
        NumericDate::from_value("exp", &v)
    }

    #[test]
    fn integers_and_floats_are_dates() {
        assert_eq!(read(json!(100)).unwrap().ceil(), 100);
        assert_eq!(read(json!(100.2)).unwrap().ceil(), 101);
        assert_eq!(read(json!(100.2)).unwrap().floor(), 100);
        assert_eq!(read(json!(0)).unwrap().ceil(), 0);
        assert_eq!(
            read(json!(253_402_300_799_u64)).unwrap().ceil(),
            253_402_300_799
        );
    }

    #[test]
    fn strings_negatives_and_absurd_values_are_not() {
        assert!(matches!(
            read(json!("100")),
            Err(NumericDateError::NotANumber {
                found: "a string",
                ..
            })
        ));
        assert!(matches!(
            read(json!(null)),
            Err(NumericDateError::NotANumber { .. })
        ));
        assert!(matches!(
            read(json!(-1)),
            Err(NumericDateError::Negative { .. })
        ));
        assert!(matches!(
            read(json!(-0.5)),
            Err(NumericDateError::Negative { .. })
        ));
        assert!(matches!(
            read(json!(u64::MAX)),
            Err(NumericDateError::TooLarge { .. })
        ));
        assert!(matches!(
            read(json!(1e300)),
            Err(NumericDateError::TooLarge { .. })
        ));
        let e = read(json!([1])).unwrap_err().to_string();
        assert!(
            e.starts_with("exp must be a NumericDate") && e.ends_with("an array"),
            "{e}"
        );
    }

    #[test]
    fn absent_is_none() {
        let claims = json!({ "exp": 5 }).as_object().unwrap().clone();
        assert_eq!(numeric_date(&claims, "nbf").unwrap(), None);
        assert_eq!(
            numeric_date(&claims, "exp").unwrap().map(NumericDate::ceil),
            Some(5)
        );
    }
}
