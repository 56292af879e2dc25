//! Printing that never stops the work. `println!` and `eprintln!` panic when
//! their stream is closed (`pada rank ... | head -1`, a terminal gone, a log
//! pipe whose reader died): long work must go on and land its results
//! whatever happens to its output, so pada prints through these macros,
//! which drop what cannot be written (clippy's `print_stdout` and
//! `print_stderr` lints keep the others out of the crate).

use std::io::Write;

/// Writes to stdout, dropping the text when stdout is closed.
pub fn stdout(args: std::fmt::Arguments) {
    let _ = std::io::stdout().lock().write_fmt(args);
}

/// Writes to stderr, dropping the text when stderr is closed.
pub fn stderr(args: std::fmt::Arguments) {
    let _ = std::io::stderr().lock().write_fmt(args);
}

/// `print!` that never panics.
#[macro_export]
macro_rules! out {
    ($($t:tt)*) => { $crate::output::stdout(format_args!($($t)*)) };
}

/// `println!` that never panics.
#[macro_export]
macro_rules! outln {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($t:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($t)*))) };
}

/// `crate::logln!` that never panics: progress, notes and errors.
#[macro_export]
macro_rules! logln {
    ($($t:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($t)*))) };
}
