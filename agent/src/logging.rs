//! Log lines on standard error, through `tracing`: for people, one line per
//! event (`cairn: warning: …`); for log collectors, one JSON object per line
//! with the event's fields and its spans (`--log-format json`). -v and -q
//! choose the level; `RUST_LOG`, when set, chooses instead.

use crate::cli::{LogFormat, Logging};
use std::fmt;
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// The human format: `cairn: ` and the level, for warnings and errors.
struct Human;

impl<S, N> FormatEvent<S, N> for Human
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
        let level = match *event.metadata().level() {
            Level::ERROR => "error: ",
            Level::WARN => "warning: ",
            Level::INFO => "",
            Level::DEBUG => "debug: ",
            Level::TRACE => "trace: ",
        };
        write!(w, "cairn: {level}")?;
        ctx.field_format().format_fields(w.by_ref(), event)?;
        writeln!(w)
    }
}

/// Only the message of an event, for people; its other fields are for
/// the JSON format.
fn message_only<'w>(
    w: &mut Writer<'w>,
    field: &tracing::field::Field,
    value: &dyn fmt::Debug,
) -> fmt::Result {
    if field.name() == "message" {
        write!(w, "{value:?}")
    } else {
        Ok(())
    }
}

/// Installs the subscriber.
pub fn init(logging: Logging) {
    let filter = match std::env::var("RUST_LOG") {
        Ok(spec) if !spec.is_empty() => EnvFilter::new(spec),
        _ => EnvFilter::new(match logging.verbosity {
            i8::MIN..=-1 => "warn",
            0 => "info",
            1 => "info,cairn=debug,cairn_agent=debug",
            _ => "info,cairn=trace,cairn_agent=trace",
        }),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let installed = match logging.format {
        LogFormat::Human => builder
            .fmt_fields(tracing_subscriber::fmt::format::debug_fn(message_only))
            .event_format(Human)
            .try_init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .flatten_event(true)
            .try_init(),
    };
    // Only fails if a subscriber is installed already: then that one logs.
    let _ = installed;
}
