use clap::Parser;

fn main() {
    let cli = pada::cli::Cli::parse();
    if let Err(e) = pada::cli::run(cli) {
        // One line: what went wrong, with its causes, no backtrace.
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
