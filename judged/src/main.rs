use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = judged::cli::Cli::parse();
    match judged::cli::execute(cli) {
        Ok(status) => ExitCode::from(status),
        Err(error) => {
            eprintln!("judged: {error:#}");
            ExitCode::from(judged::verdict::exit_status::USAGE)
        }
    }
}
