//! How a binary ends: a user error is one clear line on stderr and exit
//! status 1, never a backtrace (`main` returning `anyhow::Result` prints
//! its `Debug` form, 30 frames of it with `RUST_BACKTRACE=1`).

use std::process::ExitCode;

/// `error: <what went wrong>: <why>`, and exit status 1.
pub fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {}", one_line(&err));
            ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, each cause once: many errors
/// already repeat their source's text in their own.
fn one_line(err: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in err.chain() {
        let s = cause.to_string();
        if !text.contains(&s) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&s);
        }
    }
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(io).context("could not load env file x.env: no such file");
        assert_eq!(
            super::one_line(&err),
            "could not load env file x.env: no such file"
        );
    }
}
