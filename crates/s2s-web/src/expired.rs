//! `?expired=...`, the demo's switch for an expired token (seed README:
//! `curl localhost:3000/scenario1?expired=1`, and `?expired=123` elsewhere).
//!
//! The rule, the same at the factory and at servicea: absent, or one of
//! `0`, `false`, `no`, `off` in any letter case, means *not* expired; any
//! other value (`1`, `123`, `yes`, an empty value) means expired. Spelling
//! "no" must never produce the opposite of what it says.

/// The query string of jwt-factory's `/issueToken` (servicea's scenarios
/// also take `?trace=`: `app::scenarios::RunQuery`, by the same rule, [`is_on`]).
#[derive(Debug, Default, serde::Deserialize)]
pub struct ExpiredQuery {
    pub expired: Option<String>,
}

impl ExpiredQuery {
    /// Whether an expired token was asked for (see the module doc).
    pub fn is_expired(&self) -> bool {
        is_on(self.expired.as_deref())
    }
}

/// The rule for any on/off query flag (`?expired=`, `?trace=`): see the
/// module doc.
pub fn is_on(value: Option<&str>) -> bool {
    value.is_some_and(|v| {
        let v = v.trim();
        !["0", "false", "no", "off"]
            .iter()
            .any(|off| v.eq_ignore_ascii_case(off))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expired_flag_rule() {
        let q = |v: Option<&str>| {
            ExpiredQuery {
                expired: v.map(String::from),
            }
            .is_expired()
        };
        assert!(!q(None));
        for off in [
            "0", "false", "FALSE", "False", "no", "No", "off", "OFF", " 0 ",
        ] {
            assert!(!q(Some(off)), "{off:?} means not expired");
        }
        for on in ["1", "123", "", "true", "yes", "nope"] {
            assert!(q(Some(on)), "{on:?} means expired");
        }
    }
}
