//! `nrt`: the command line. It parses arguments and starts things; the work lives in the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

use nrt_pipeline::config::Role;
use nrt_pipeline::{doctor, mock_api, reconcile, registry, replay, run, table_change};

// Many small allocations made on one thread (the reader's) and freed on another (the actors'):
// glibc's malloc spent ~13% of the reader's CPU on them and kept the peak resident; mimalloc is
// cheaper per call and gives freed pages back when told to (see `set_purge_delay` and
// `early_allocator_options`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc's options that the Rust binding does not name: their indexes in mimalloc.h's `mi_option_e`.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// When mimalloc gives freed pages back to the OS, by what the process is for (a `MIMALLOC_PURGE_DELAY`
/// in the environment still wins). A consumer's memory is its budget: batches of tens of MiB come
/// and go several times a second, and purging at once kept its peak RSS ~10-25% lower at the same
/// throughput. A producer's working set is its poll batch, reused every batch: returning it made every
/// batch fault its pages in again (2M events: 130k/s purging at once, 167k/s with mimalloc's default
/// 10 ms, 199k/s never purging).
fn set_purge_delay(role: Role) {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    let delay_ms = match role {
        Role::Producer => -1,
        Role::Consumer | Role::All => 0,
    };
    // SAFETY: stores one option value; mimalloc reads options atomically on each purge.
    unsafe { libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, delay_ms) };
}

/// mimalloc commits its arenas as pages are used, not whole (unless `MIMALLOC_ARENA_EAGER_COMMIT` is
/// set): eager commit made every chunk of an arena resident at once, ~8.5 MiB of an idle consumer and
/// ~27 MiB of its peak (100 -> 73 MiB at the same throughput, 2M events).
///
/// Set before `main`, before the first allocation: mimalloc makes its first arena on that allocation,
/// so the option set in `main` came too late (measured: no effect).
#[used]
#[unsafe(link_section = ".init_array")]
static EARLY_ALLOCATOR_OPTIONS: extern "C" fn() = early_allocator_options;

extern "C" fn early_allocator_options() {
    // SAFETY: libc's getenv does not allocate (std's would, through mimalloc); mi_option_set stores
    // one value.
    unsafe {
        if libc::getenv(c"MIMALLOC_ARENA_EAGER_COMMIT".as_ptr()).is_null() {
            libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
        }
    }
}

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
    /// Run the pipeline: the actors of a role and the admin API, until SIGTERM.
    Run(Box<run::RunArgs>),
    /// Serve a Confluent-compatible Schema Registry (Avro) with durable local storage.
    Registry(registry::RegistryArgs),
    /// Serve the synthetic events API the Poller polls.
    MockApi(mock_api::MockApiArgs),
    /// Compare, hour by hour, the events in the lake (S3) with the rows in ClickHouse.
    ///
    /// Exits 0 when every hour of the range is the same, 1 when some differ (listed), 2 on a usage
    /// error, 3 when a service could not be read.
    Reconcile(Box<reconcile::ReconcileArgs>),
    /// Write the lake's events of a time range to ClickHouse again (repair, backfill, rebuild).
    ///
    /// Idempotent (rows come back as they were), resumable (a checkpoint of the last object
    /// finished), `--dry-run` to count only. Exits 0 when done, 2 on a usage error, 3 when a service
    /// failed (run it again: it resumes).
    Replay(Box<replay::ReplayArgs>),
    /// What writer schemas need of the table, and a reviewed change applied (`--schema-id`).
    ///
    /// `check` prints, for each field a schema retyped beyond its column, the ALTER that resolves it;
    /// `apply` runs and records those statements. Exits 0 when nothing holds the consumer, 1 when
    /// something does, 2 on a usage error, 3 when a service failed.
    #[command(subcommand)]
    Table(Box<table_change::TableCommand>),
}

fn main() -> ExitCode {
    // A missing .env is normal (compose passes the environment directly); a broken one is not.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("nrt: cannot read .env: {e}");
            return ExitCode::from(2);
        }
    }
    env_logger::Builder::from_env(
        // Our crates at info, every other crate at warn (the clickhouse crate logs each insert at info).
        env_logger::Env::default().default_filter_or("warn,nrt=info,nrt_pipeline=info,rustls=error"),
    )
    .init();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let hint = env_hint(&e);
            let _ = e.print();
            if let Some(var) = hint {
                eprintln!(
                    "note: this setting can also come from the environment variable {var}; check its value"
                );
            }
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
    };
    // A panic is a bug, caught by the actor's supervisor (the actor restarts): one log line with where,
    // through the logger like everything else; the backtrace only when RUST_BACKTRACE asks for it.
    std::panic::set_hook(Box::new(|info| {
        let backtrace = std::backtrace::Backtrace::capture();
        match backtrace.status() {
            std::backtrace::BacktraceStatus::Captured => log::error!("{info}\n{backtrace}"),
            _ => log::error!("{info}"),
        }
    }));
    match run(cli) {
        Ok(code) => code,
        Err(e) if e.is::<run::ConfigError>() => {
            eprintln!("nrt: {e:#}");
            ExitCode::from(2)
        }
        Err(e) => {
            eprintln!("nrt: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// The environment variable behind the flag a clap error is about, so "invalid value" names it.
fn env_hint(e: &clap::Error) -> Option<String> {
    let arg = e.get(clap::error::ContextKind::InvalidArg)?.to_string();
    let long = arg.split_whitespace().next()?.trim_start_matches("--").to_owned();
    let cmd = <Cli as clap::CommandFactory>::command();
    let mut stack = vec![&cmd];
    while let Some(c) = stack.pop() {
        if let Some(env) = c
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .and_then(|a| a.get_env())
        {
            return Some(env.to_string_lossy().into_owned());
        }
        stack.extend(c.get_subcommands());
    }
    None
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
        Command::Run(args) => {
            set_purge_delay(args.role);
            run::run(*args)
        }
        Command::Reconcile(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match rt.block_on(reconcile::run(&args)) {
                Ok(report) => {
                    if args.json {
                        println!("{}", serde_json::to_string_pretty(&report)?);
                    } else {
                        print!("{}", reconcile::render(&report));
                    }
                    Ok(ExitCode::from(u8::from(!report.differ.is_empty())))
                }
                Err(e) if e.is::<nrt_pipeline::lake::UsageError>() => {
                    eprintln!("nrt reconcile: {e:#}");
                    Ok(ExitCode::from(2))
                }
                Err(e) => {
                    eprintln!("nrt reconcile: {e:#}");
                    Ok(ExitCode::from(3))
                }
            }
        }
        Command::Replay(args) => {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let started = std::time::Instant::now();
            match rt.block_on(replay::run(&args)) {
                Ok(s) => {
                    let verb = if args.dry_run {
                        "counted (dry run)"
                    } else {
                        "written"
                    };
                    println!(
                        "replay: {} objects ({} resumed), {} lines, {} events {verb} in {:.1} s",
                        s.objects,
                        s.resumed,
                        s.lines,
                        s.events,
                        started.elapsed().as_secs_f64()
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("nrt replay: {e:#}");
                    let usage = e.is::<nrt_pipeline::lake::UsageError>();
                    Ok(ExitCode::from(if usage { 2 } else { 3 }))
                }
            }
        }
        Command::Table(command) => {
            let (args, apply) = match *command {
                table_change::TableCommand::Check(args) => (args, false),
                table_change::TableCommand::Apply(args) => (args, true),
            };
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            match rt.block_on(table_change::run(&args, apply)) {
                Ok(reviews) => {
                    print!("{}", table_change::render(&reviews, &args.table.clickhouse_table));
                    Ok(ExitCode::from(u8::from(reviews.iter().any(|r| r.holds()))))
                }
                Err(e) => {
                    eprintln!("nrt table: {e:#}");
                    let usage = e.is::<nrt_pipeline::lake::UsageError>();
                    Ok(ExitCode::from(if usage { 2 } else { 3 }))
                }
            }
        }
        Command::MockApi(args) => {
            actix_web::rt::System::new().block_on(mock_api::serve(&args))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Registry(args) => {
            if let Some(registry::server::RegistryCommand::HashPassword) = args.command {
                registry::server::hash_password_from_stdin()?;
                return Ok(ExitCode::SUCCESS);
            }
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
