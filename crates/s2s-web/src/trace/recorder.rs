//! The events of one service for one request: a task-local recorder that
//! [`check`] and [`note`] add to only while a trace is being collected.

use std::{
    future::Future,
    sync::{Arc, Mutex},
    time::Instant,
};

use super::{
    MAX_EVENTS,
    events::{Event, Note, Verdict},
};

/// The events of one service for one request.
#[derive(Clone, Debug)]
pub(super) struct Recorder {
    pub(super) service: Arc<str>,
    start: Instant,
    events: Arc<Mutex<Recorded>>,
}

/// What a recorder holds: the events, and how many hops and notes were
/// left out once [`MAX_EVENTS`] was reached.
#[derive(Debug, Default)]
struct Recorded {
    events: Vec<Event>,
    dropped: usize,
}

impl Recorder {
    /// Milliseconds since this trace began.
    pub(super) fn now_ms(&self) -> f64 {
        self.start.elapsed().as_secs_f64() * 1000.0
    }

    pub(super) fn push(&self, mut event: Event) {
        let at = self.now_ms();
        match &mut event {
            Event::Check(c) => {
                c.by = self.service.to_string();
                c.at_ms = at;
            }
            Event::Note(n) => {
                n.by = self.service.to_string();
                n.at_ms = at;
            }
            // A hop's time is its start, set by `hop_started`.
            Event::Hop(_) => {}
        }
        let Ok(mut recorded) = self.events.lock() else {
            return;
        };
        // A check is always kept (a handler makes one or two): it is the
        // decision the trace is read for.
        if recorded.events.len() < MAX_EVENTS || matches!(event, Event::Check(_)) {
            recorded.events.push(event);
        } else {
            recorded.dropped += 1;
        }
    }

    fn take(&self) -> Vec<Event> {
        let Recorded {
            mut events,
            dropped,
        } = self
            .events
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        // Hops are recorded when they end, timed from when they began.
        events.sort_by(|a, b| a.at_ms().total_cmp(&b.at_ms()));
        if dropped > 0 {
            events.push(self.note_now(format!(
                "{dropped} more hops and notes left out (at most {MAX_EVENTS} are kept)"
            )));
        }
        events
    }

    fn note_now(&self, text: String) -> Event {
        Event::Note(Note {
            by: self.service.to_string(),
            text,
            at_ms: self.now_ms(),
        })
    }
}

tokio::task_local! {
    pub(super) static CURRENT: Recorder;
}

/// Whether this request is being traced.
#[cfg(test)]
pub(super) fn active() -> bool {
    CURRENT.try_with(|_| ()).is_ok()
}

/// Records a check, if this request is being traced (`check` is not
/// called otherwise).
pub fn check(check: impl FnOnce() -> Verdict) {
    let _ = CURRENT.try_with(|r| r.push(Event::Check(check())));
}

/// Records a step in words, if this request is being traced.
pub fn note(text: impl FnOnce() -> String) {
    let _ = CURRENT.try_with(|r| r.push(r.note_now(text())));
}

/// Runs `work` with a trace for `service`; its output and the events.
pub async fn collect<F: Future>(service: &str, work: F) -> (F::Output, Vec<Event>) {
    let recorder = Recorder {
        service: Arc::from(service),
        start: Instant::now(),
        events: Arc::default(),
    };
    let output = CURRENT.scope(recorder.clone(), work).await;
    (output, recorder.take())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn past_the_limit_hops_and_notes_are_counted_and_checks_kept() {
        let ((), events) = collect("serviceb", async {
            for i in 0..MAX_EVENTS + 10 {
                note(|| format!("step {i}"));
            }
            check(|| Verdict::valid("the decision"));
        })
        .await;
        assert_eq!(events.len(), MAX_EVENTS + 2, "{events:?}");
        assert!(
            events
                .iter()
                .any(|e| matches!(e, Event::Check(c) if c.what == "the decision"))
        );
        let Some(Event::Note(last)) = events.last() else {
            panic!("a note counts what was left out: {events:?}")
        };
        assert!(
            last.text.starts_with("10 more hops and notes left out"),
            "{}",
            last.text
        );
    }
}
