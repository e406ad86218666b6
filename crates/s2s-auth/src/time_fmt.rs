//! Timestamps in the form Node's `Date.toISOString()` prints them, so
//! `expiredAt` reads the same as in the original demo's README.

use time::{OffsetDateTime, macros::format_description};

/// `1696281603` -> `"2023-10-02T21:20:03.000Z"`; out-of-range values print as numbers.
pub fn iso_millis(unix_secs: i64) -> String {
    let fmt = format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].000Z");
    OffsetDateTime::from_unix_timestamp(unix_secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_else(|| unix_secs.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn formats_like_node() {
        assert_eq!(super::iso_millis(1_696_281_603), "2023-10-02T21:20:03.000Z");
    }
}
