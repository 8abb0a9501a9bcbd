use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = judged::cli::Cli::parse();
    match judged::cli::execute(cli) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("judged: {error:#}");
            // Stopped by a signal (everything it made is removed by now): 128 + the signal.
            match error.downcast_ref::<judged::interrupt::Interrupted>() {
                Some(stopped) => ExitCode::from(stopped.exit_status()),
                None => ExitCode::from(judged::verdict::exit_status::USAGE),
            }
        }
    }
}
