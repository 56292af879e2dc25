use clap::Parser;

fn main() {
    let cli = match pada::cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) if e.use_stderr() => {
            // One line: clap's first line names the flag and the problem.
            let text = e.to_string();
            pada::logln!("{}", text.lines().next().unwrap_or("error: invalid command line").trim_end());
            std::process::exit(2);
        }
        Err(e) => e.exit(), // --help, --version
    };
    if let Err(e) = pada::cli::run(cli) {
        // One line: what went wrong, with its causes, no backtrace.
        pada::logln!("error: {:#}", e);
        std::process::exit(1);
    }
}
