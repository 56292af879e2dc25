//! Progress of long work wherever the output goes: a bar when stderr is a
//! terminal; plain lines when it is not (a log file, CI, `nohup`), one at
//! least every [`PLAIN_EVERY`] of progress and every line the caller insists on.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How often a plain progress line is printed while work goes on
/// (`PADA_PROGRESS_SECONDS` overrides it: the tests ask for every update).
pub const PLAIN_EVERY: Duration = Duration::from_secs(10);

fn plain_every() -> Duration {
    static EVERY: std::sync::OnceLock<Duration> = std::sync::OnceLock::new();
    *EVERY.get_or_init(|| {
        std::env::var("PADA_PROGRESS_SECONDS").ok().and_then(|s| s.parse().ok()).map_or(PLAIN_EVERY, Duration::from_secs_f64)
    })
}

pub struct Reporter {
    bar: Option<ProgressBar>,
    /// Plain lines (stderr is not a terminal).
    plain: bool,
    quiet: bool,
    last: Instant,
}

impl Reporter {
    /// A reporter of `len` units of work; `template` is indicatif's (used on a terminal).
    pub fn new(quiet: bool, len: u64, template: &str) -> Self {
        let plain = !std::io::stderr().is_terminal();
        let bar = (!quiet && !plain).then(|| {
            let pb = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            pb.set_style(ProgressStyle::with_template(template).expect("a valid template").progress_chars("=> "));
            pb
        });
        Self { bar, plain, quiet, last: Instant::now() }
    }

    /// Progress to `pos` of `len`; `msg` describes it (computed only when shown).
    pub fn update(&mut self, pos: u64, len: u64, msg: impl FnOnce() -> String) {
        if let Some(pb) = &self.bar {
            pb.set_length(len);
            pb.set_position(pos);
            pb.set_message(msg());
        } else if self.plain && !self.quiet && self.last.elapsed() >= plain_every() {
            crate::logln!("{}", msg());
            self.last = Instant::now();
        }
    }

    /// What is going on now, shown as [`Reporter::update`] shows progress:
    /// the bar's message, or a plain line when none was printed for a while.
    pub fn note(&mut self, msg: &str) {
        if let Some(pb) = &self.bar {
            pb.set_message(msg.to_string());
        } else if self.plain && !self.quiet && self.last.elapsed() >= plain_every() {
            crate::logln!("{msg}");
            self.last = Instant::now();
        }
    }

    /// A line to show whatever the output (an epoch's summary): above the bar,
    /// or plain.
    pub fn println(&mut self, line: &str) {
        if self.quiet {
            return;
        }
        match &self.bar {
            Some(pb) => pb.println(line),
            None => crate::logln!("{line}"),
        }
        self.last = Instant::now();
    }

    /// Sets the bar's prefix (e.g. the epoch).
    pub fn set_prefix(&self, prefix: String) {
        if let Some(pb) = &self.bar {
            pb.set_prefix(prefix);
        }
    }

    pub fn finish(&mut self) {
        if let Some(pb) = self.bar.take() {
            pb.finish_and_clear();
        }
    }
}

impl Drop for Reporter {
    fn drop(&mut self) {
        self.finish();
    }
}

/// "2.50 architectures/s, ETA 3 min 20 s": the rate of `done` of `total`
/// items since `start`, and the time the rest would take at that rate.
pub fn rate_and_eta(done: usize, total: usize, start: Instant, unit: &str) -> String {
    let rate = done as f64 / start.elapsed().as_secs_f64().max(1e-9);
    format!("{rate:.2} {unit}/s, ETA {}", duration(total.saturating_sub(done) as f64 / rate))
}

/// "1 epoch", "16 epochs".
pub fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("1 {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// `seconds` as "45 s", "3 min 20 s" or "2 h 05 min".
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..60 => format!("{s} s"),
        60..3600 => format!("{} min {:02} s", s / 60, s % 60),
        _ => format!("{} h {:02} min", s / 3600, (s % 3600) / 60),
    }
}
