//! The replay's progress on a terminal: the frame it reached, four times a second, on one
//! line of stderr that is cleared at the end. Nothing when stderr is not a terminal.

use std::{
    io::{IsTerminal as _, Write},
    path::Path,
    time::{Duration, Instant},
};

use super::capture::Record;

/// How often the line is rewritten.
const EVERY: Duration = Duration::from_millis(250);

/// The progress line; cleared when dropped, so an error printed after it starts a line of
/// its own whichever way the replay ends.
pub struct Progress<'a> {
    path: &'a Path,
    /// Where the line goes: stderr when it is a terminal, else nowhere.
    to: Option<Box<dyn Write + 'a>>,
    shown: bool,
    shown_at: Instant,
}

impl<'a> Progress<'a> {
    #[must_use]
    pub fn new(path: &'a Path) -> Self {
        let to = std::io::stderr()
            .is_terminal()
            .then(|| Box::new(std::io::stderr()) as Box<dyn Write>);
        Self::to(path, to)
    }

    fn to(path: &'a Path, to: Option<Box<dyn Write + 'a>>) -> Self {
        Self {
            path,
            to,
            shown: false,
            shown_at: Instant::now(),
        }
    }

    /// Shows `record`'s number if the line is due.
    pub fn reached(&mut self, record: &Record) {
        let Some(to) = &mut self.to else {
            return;
        };
        if self.shown_at.elapsed() < EVERY {
            return;
        }
        self.shown_at = Instant::now();
        self.shown = true;
        let _ = write!(
            to,
            "\rreplaying {}: frame {}",
            self.path.display(),
            record.number()
        );
        let _ = to.flush();
    }
}

impl Drop for Progress<'_> {
    /// Clears the line, if one was shown.
    fn drop(&mut self) {
        if let (true, Some(to)) = (self.shown, &mut self.to) {
            let _ = write!(to, "\r\x1b[K");
            let _ = to.flush();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::{cell::RefCell, rc::Rc};

    use super::*;

    /// What the progress wrote, shared with the test.
    #[derive(Clone, Default)]
    struct Screen(Rc<RefCell<Vec<u8>>>);

    impl Write for Screen {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.borrow_mut().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A replay that shows frame 7 and then ends (`Ok`) or fails (`Err`): the line is
    /// cleared either way, and nothing is written when no line was shown.
    fn replay(screen: &Screen, show: bool, fail: bool) -> Result<(), ()> {
        let path = Path::new("flood.pcap");
        let mut progress = Progress::to(path, Some(Box::new(screen.clone())));
        if show {
            progress.shown_at = Instant::now().checked_sub(EVERY).unwrap();
            progress.reached(&Record::Outgoing { number: 7 });
        }
        if fail {
            return Err(());
        }
        Ok(())
    }

    /// (a line shown, the replay fails, what the terminal got).
    #[test]
    fn the_line_is_cleared_on_every_way_out() {
        let shown = "\rreplaying flood.pcap: frame 7\r\x1b[K";
        for (show, fail, wanted) in [
            (true, false, shown),
            (true, true, shown),
            (false, true, ""),
            (false, false, ""),
        ] {
            let screen = Screen::default();
            assert_eq!(replay(&screen, show, fail).is_err(), fail);
            let got = String::from_utf8(screen.0.borrow().clone()).unwrap();
            assert_eq!(got, wanted, "shown {show}, failed {fail}");
        }
    }
}
