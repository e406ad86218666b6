//! The process's log in a buffer the tests read: for a test binary of its
//! own that checks what the services log (log amplification, forged
//! lines, a refusal's reason kept out of the answer). The first call
//! installs the process's log subscriber, at info as the binaries write.

use std::{
    io::Write,
    sync::{Arc, Mutex, OnceLock},
};

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn buffer() -> &'static Buffer {
    static LOG: OnceLock<Buffer> = OnceLock::new();
    LOG.get_or_init(|| {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        tracing_subscriber::fmt()
            .with_env_filter("info,tower_http=info,hyper=warn,rustls=warn")
            .with_target(false)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buffer
    })
}

/// Installs the capture (if not yet): call it before the servers start.
pub fn install() {
    buffer();
}

/// Bytes logged so far.
pub fn len() -> usize {
    buffer().0.lock().unwrap().len()
}

/// Everything logged so far.
pub fn text() -> String {
    String::from_utf8_lossy(&buffer().0.lock().unwrap()).into_owned()
}

/// What was logged after the first `start` bytes.
pub fn since(start: usize) -> String {
    let log = buffer().0.lock().unwrap();
    String::from_utf8_lossy(log.get(start..).unwrap_or_default()).into_owned()
}
