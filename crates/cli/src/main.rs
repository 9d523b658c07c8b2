//! `portcullis`: run the authorization server and manage it from the command line.

use clap::Parser;
use portcullis_cli::commands::{Cli, run};

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", portcullis_cli::commands::error_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
