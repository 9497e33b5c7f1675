//! The `new-service` binary: command-line parsing, the wizard and output.
//! Everything else lives in the library crate.

mod cli;
mod wizard;

fn main() {
    new_service::output::remove_staging_on_interrupt();
    std::process::exit(cli::run());
}
