//! How the commands show a fetch on stderr: each step as one line, and
//! progress as a bar on a terminal or as a line every few seconds
//! otherwise. The library only hands events to [`FetchReport`].

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::swarm::engine::Progress;
use crate::swarm::fetch::{FetchEvent, FetchReport};

/// Pause between progress lines when stderr is not a terminal.
const PLAIN_PROGRESS_EVERY: Duration = Duration::from_secs(2);

/// Prints a fetch's report on stderr.
pub struct StderrReport {
    terminal: bool,
    /// When the last plain progress line was printed.
    last_line: Mutex<Option<Instant>>,
    /// The bar, made on the first progress (the total is known then).
    bar_slot: Mutex<Option<indicatif::ProgressBar>>,
}

impl StderrReport {
    /// A bar when stderr is a terminal, plain lines otherwise.
    pub fn new() -> Self {
        Self {
            terminal: std::io::stderr().is_terminal(),
            last_line: Mutex::new(None),
            bar_slot: Mutex::new(None),
        }
    }

    fn with_bar(&self, progress: &Progress, f: impl FnOnce(&indicatif::ProgressBar)) {
        let mut slot = self.bar_slot.lock().unwrap_or_else(|e| e.into_inner());
        let bar = slot.get_or_insert_with(|| {
            let bar = indicatif::ProgressBar::new(progress.total);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta} {msg}",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            bar
        });
        f(bar);
    }
}

impl Default for StderrReport {
    fn default() -> Self {
        Self::new()
    }
}

impl FetchReport for StderrReport {
    fn event(&self, event: FetchEvent) {
        let slot = self.bar_slot.lock().unwrap_or_else(|e| e.into_inner());
        match slot.as_ref() {
            Some(bar) => bar.println(event.to_string()),
            None => eprintln!("{event}"),
        }
    }

    fn progress(&self, progress: &Progress) {
        if self.terminal {
            self.with_bar(progress, |bar| {
                bar.set_position(progress.have);
                bar.set_message(format!("{} peers", progress.peers));
            });
            return;
        }
        let mut last = self.last_line.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= PLAIN_PROGRESS_EVERY) {
            *last = Some(Instant::now());
            eprintln!(
                "progress {}/{} bytes, {} peers",
                progress.have, progress.total, progress.peers
            );
        }
    }

    fn download_ended(&self, complete: bool) {
        let mut slot = self.bar_slot.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(bar) = slot.take() {
            if complete {
                bar.finish_and_clear();
            } else {
                bar.abandon();
            }
        }
    }
}

/// How often `--json` reports progress.
const JSON_PROGRESS_EVERY: Duration = Duration::from_secs(1);

/// Prints a fetch's report as JSON lines on stdout (`--json`): each
/// [`FetchEvent`] as its object, progress as `{"event":"progress",…}` at
/// most once a second, and `{"event":"download_ended","complete":…}`.
pub struct JsonReport {
    last_progress: Mutex<Option<Instant>>,
}

impl JsonReport {
    /// Nothing printed yet.
    pub fn new() -> Self {
        Self {
            last_progress: Mutex::new(None),
        }
    }
}

impl Default for JsonReport {
    fn default() -> Self {
        Self::new()
    }
}

/// Prints `value` as one line on stdout; a closed stdout only loses it.
pub fn print_json(value: &impl serde::Serialize) {
    use std::io::Write;
    match serde_json::to_string(value) {
        Ok(line) => {
            let mut stdout = std::io::stdout().lock();
            let _ = writeln!(stdout, "{line}");
            let _ = stdout.flush();
        }
        Err(error) => tracing::warn!(%error, "an event could not be serialized"),
    }
}

impl FetchReport for JsonReport {
    fn event(&self, event: FetchEvent) {
        print_json(&event);
    }

    fn progress(&self, progress: &Progress) {
        let mut last = self.last_progress.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none_or(|at| at.elapsed() >= JSON_PROGRESS_EVERY) {
            *last = Some(Instant::now());
            print_json(&serde_json::json!({
                "event": "progress",
                "have": progress.have,
                "total": progress.total,
                "fetched": progress.fetched,
                "uploaded": progress.uploaded,
                "peers": progress.peers,
            }));
        }
    }

    fn download_ended(&self, complete: bool) {
        print_json(&serde_json::json!({"event": "download_ended", "complete": complete}));
    }
}
