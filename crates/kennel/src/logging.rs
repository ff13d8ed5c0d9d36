//! What `kennel` prints besides its results: warnings and notes from the
//! library (`tracing`), as one plain line each ("kennel: warning: ..."),
//! like its errors; `--quiet` keeps only errors. `KENNEL_LOG=debug` (an
//! `EnvFilter`) shows each step with microsecond timestamps instead.

use std::fmt;
use std::io::IsTerminal;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

pub fn init(quiet: bool) {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("KENNEL_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .try_init();
        return;
    }
    let level = if quiet { Level::ERROR } else { Level::WARN };
    let _ = tracing_subscriber::fmt()
        .with_max_level(level)
        .with_writer(std::io::stderr)
        .event_format(PlainLine)
        .try_init();
}

/// "kennel: warning: MESSAGE".
struct PlainLine;

impl<S, N> FormatEvent<S, N> for PlainLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut w: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let word = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            _ => "note",
        };
        write!(w, "kennel: {word}: ")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}
