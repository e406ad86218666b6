//! The one rule for a value a request chose (a header, a form field, a
//! claim, a `kid`) on its way into a log line or an error message: it is
//! shortened and escaped, so a caller can neither flood the log (a 400 KB
//! header logged per request) nor forge a line in it (a newline in a
//! `kid`).
//!
//! Every log line and error message that shows such a value goes through
//! [`Untrusted`]: `tracing::info!("kid {}", untrusted(kid))`, or
//! `format!("unknown client {}", untrusted(id))`. A test in each crate sends
//! oversized values to every endpoint and bounds how much the log grows.

use std::fmt;

/// How many characters of an untrusted value are shown: enough to
/// recognise it, too few to flood a log.
pub const MAX_SHOWN_CHARS: usize = 64;

/// A value from a request, shown at most [`MAX_SHOWN_CHARS`] characters
/// long (then `...`), with every character that could start a line or hide
/// text escaped: control characters (`\n`, `\u{7f}`, `\u{85}`), the
/// Unicode line and paragraph separators and the bidirectional overrides.
/// So it stays on one line, and reads as what was sent, whatever that was.
#[derive(Clone, Copy)]
pub struct Untrusted<'a> {
    value: &'a str,
    max: usize,
}

/// `value` as a log line or an error message may show it.
pub fn untrusted(value: &str) -> Untrusted<'_> {
    Untrusted {
        value,
        max: MAX_SHOWN_CHARS,
    }
}

impl<'a> Untrusted<'a> {
    /// Shown at most `max` characters long instead of [`MAX_SHOWN_CHARS`].
    pub fn at_most(value: &'a str, max: usize) -> Self {
        Self { value, max }
    }
}

impl fmt::Display for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut chars = self.value.chars();
        for c in chars.by_ref().take(self.max) {
            if hides_or_breaks(c) {
                for e in c.escape_default() {
                    fmt::Write::write_char(f, e)?;
                }
            } else {
                fmt::Write::write_char(f, c)?;
            }
        }
        if chars.next().is_some() {
            f.write_str("...")?;
        }
        Ok(())
    }
}

/// Whether `c` could start a new log line or make text read other than it
/// is: a control character, U+2028/U+2029, a bidirectional override or
/// isolate.
fn hides_or_breaks(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

impl fmt::Debug for Untrusted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "\"{self}\"")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shortens_and_escapes() {
        assert_eq!(untrusted("kid-1").to_string(), "kid-1");
        assert_eq!(untrusted("a\nb\"c").to_string(), "a\\nb\"c");
        assert_eq!(
            untrusted("x\u{2028}y\u{202e}z").to_string(),
            "x\\u{2028}y\\u{202e}z"
        );
        let long = "x".repeat(400_000);
        assert_eq!(untrusted(&long).to_string().len(), MAX_SHOWN_CHARS + 3);
        assert_eq!(Untrusted::at_most("abcdef", 3).to_string(), "abc...");
        assert_eq!(format!("{:?}", untrusted("é\r")), "\"é\\r\"");
    }
}
