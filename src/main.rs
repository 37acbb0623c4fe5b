//! `nrt`: the command line. It parses arguments and starts things; the work lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nrt_pipeline::{doctor, registry};

#[derive(Debug, Parser)]
#[command(
    name = "nrt",
    version,
    about = "Near-real-time pipeline: HTTP events -> Avro -> Kafka -> MinIO + ClickHouse"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check that Kafka, the schema registry, MinIO, ClickHouse and Prometheus answer.
    ///
    /// Exits 0 only when every one does.
    Doctor(Box<doctor::DoctorArgs>),
    /// Serve a Confluent-compatible Schema Registry (Avro) with durable local storage.
    Registry(registry::RegistryArgs),
}

fn main() -> ExitCode {
    // A missing .env is normal (compose passes the environment directly); a broken one is not.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("nrt: cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("nrt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Doctor(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let all_up = rt.block_on(doctor::run(&args))?;
            Ok(if all_up {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Registry(args) => {
            actix_web::rt::System::new().block_on(registry::serve(&args))?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_definition_is_consistent() {
        <Cli as clap::CommandFactory>::command().debug_assert();
    }
}
