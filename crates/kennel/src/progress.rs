//! Progress bars for long storage work (backup, restore, verify): bytes,
//! rate and time left, on standard error when it is a terminal, and
//! nothing at all in scripts or with `--quiet`.

use std::io::IsTerminal;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A bar that shows only on a terminal.
pub struct Bar {
    bar: ProgressBar,
}

impl Bar {
    pub fn new(what: &str, quiet: bool) -> Bar {
        let shown = !quiet && std::io::stderr().is_terminal();
        let bar = if shown {
            ProgressBar::with_draw_target(Some(0), ProgressDrawTarget::stderr())
        } else {
            ProgressBar::hidden()
        };
        if let Ok(style) = ProgressStyle::with_template(
            "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta} left",
        ) {
            bar.set_style(style);
        }
        bar.set_message(what.to_string());
        Bar { bar }
    }

    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl kennel_ve::lifecycle::Progress for Bar {
    fn total(&self, bytes: u64) {
        self.bar.set_length(bytes);
    }

    fn done(&self, bytes: u64) {
        self.bar.set_position(bytes);
    }
}
