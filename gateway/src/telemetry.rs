//! Logging through `tracing-subscriber`: human-readable by default, JSON for
//! log collectors. No token, password or secret is ever passed to a log call:
//! settings print through [`Secret`](crate::config::Secret) and the auth code
//! logs user ids only.

use crate::config::{LogFormat, LogSettings};
use tracing::Level;
use tracing_subscriber::filter::{EnvFilter, FilterExt, filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Layer, fmt};

/// Install the global subscriber. Safe to call twice (the second call is a no-op),
/// which lets tests start several nodes in one process.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    let filter = filter.and(filter_fn(not_client_input));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = match settings.format {
        LogFormat::Json => fmt::layer()
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
        LogFormat::Pretty => fmt::layer()
            .compact()
            .with_ansi(ansi)
            .with_writer(std::io::stderr)
            .with_filter(filter)
            .boxed(),
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
}

/// actix-http logs at ERROR what a client sent it: a malformed or oversized
/// request head ("stream error", "MAX_BUFFER_SIZE ... reached"), an
/// unfinished control fragment. An ERROR line must mean the node has a
/// problem, and a client must not be able to fill the log: those are
/// dropped (the client gets its 400 or close; `chat_gateway_http_requests_total`
/// and the close counters count them). actix-http's lower levels pass.
fn not_client_input(meta: &tracing::Metadata<'_>) -> bool {
    !(*meta.level() == Level::ERROR && meta.target().starts_with("actix_http::"))
}
