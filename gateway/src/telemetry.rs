//! Logging through `tracing-subscriber`: human-readable by default, JSON for
//! log collectors. No token, password or secret is ever passed to a log call:
//! settings print through [`Secret`](crate::config::Secret) and the auth code
//! logs user ids only.

use crate::config::{LogFormat, LogSettings};
use tracing_subscriber::EnvFilter;

/// Install the global subscriber. Safe to call twice (the second call is a no-op),
/// which lets tests start several nodes in one process.
pub fn init(settings: &LogSettings) {
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(&settings.level));
    // Colours only on a terminal: a log file or a collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    let _ = match settings.format {
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}
