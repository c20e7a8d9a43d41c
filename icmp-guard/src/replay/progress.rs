//! The replay's progress on a terminal: the frame it reached, four times a second, on one
//! line of stderr that is cleared at the end. Nothing when stderr is not a terminal.

use std::{
    io::{IsTerminal as _, Write as _},
    path::Path,
    time::{Duration, Instant},
};

use super::capture::Record;

/// How often the line is rewritten.
const EVERY: Duration = Duration::from_millis(250);

pub struct Progress<'a> {
    path: &'a Path,
    shown: bool,
    shown_at: Instant,
}

impl<'a> Progress<'a> {
    #[must_use]
    pub fn new(path: &'a Path) -> Self {
        Self {
            path,
            shown: std::io::stderr().is_terminal(),
            shown_at: Instant::now(),
        }
    }

    /// Shows `record`'s number if the line is due.
    pub fn reached(&mut self, record: &Record) {
        if !self.shown || self.shown_at.elapsed() < EVERY {
            return;
        }
        self.shown_at = Instant::now();
        eprint!(
            "\rreplaying {}: frame {}",
            self.path.display(),
            record.number()
        );
        let _ = std::io::stderr().flush();
    }

    /// Clears the line.
    pub fn done(&self) {
        if self.shown {
            eprint!("\r\x1b[K");
        }
    }
}
