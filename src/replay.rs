//! `nrt replay`: the lake's records of a time range written to ClickHouse again, to repair what
//! `nrt reconcile` found missing or to rebuild a table (`--table`) from the lake.
//!
//! Rows come out as the pipeline wrote them: each line read back along its writer schema and decoded
//! as the consumer decodes (`lake::read`; any record type), partition, offsets (`nrt-offsets`) and
//! ingestion time (`nrt-ingested-at`) from each object's metadata, so a replayed row equals the original
//! one and `ReplacingMergeTree` collapses them: replaying twice changes nothing. A table that is not
//! there is made as `nrt run` makes it (`NRT_TABLE_KEY`, `NRT_EVENT_TIME_FIELD`). Objects are found by hour
//! (`lake::hours`: however far an event is from its object's own hour) and read one at a time, hour
//! by hour, in key order; the last one finished is kept in a checkpoint file (`<hour> <key>`), so a
//! replay stopped by Ctrl-C or a crash resumes after it. Memory: one object and the range's key list.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use crate::clickhouse::insert::{self, insert_all};
use crate::clickhouse::tenants::Tenants;
use crate::clickhouse::plans::Plans;
use crate::config::TableArgs;
use crate::lake::read::{LineReader, Rows};
use crate::lake::{Hour, Object, RangeArgs};
use crate::s3::ObjectStore;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// The table written (in `NRT_CLICKHOUSE_DATABASE`): the pipeline's, or a fresh one to rebuild
    /// into (made as `nrt run` makes it).
    #[command(flatten)]
    pub table: TableArgs,
    /// Read and count only; write nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// The checkpoint file (the last object finished); default `.nrt-replay-<table>-<from>-<to>` in
    /// the current directory. Removed when the replay completes.
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
}

/// What a replay did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    pub objects: u64,
    /// Objects finished by an earlier, interrupted run (skipped).
    pub resumed: u64,
    pub lines: u64,
    /// Records in the range: written (or, with `--dry-run`, that would be).
    pub events: u64,
}

/// The replay of one range.
pub async fn run(args: &ReplayArgs) -> anyhow::Result<Summary> {
    let (from, to) = args.range.check(&args.table)?;
    let (services, prefix) = (&args.range.services, &args.range.lake.s3_prefix);
    // A table per tenant: the template's name stands for them all.
    let table = &args.table.table(&args.range.services.clickhouse.database).table;
    let tenants = args.table.route().map(|r| Tenants::new(&args.range.services.clickhouse.database, r));
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| {
        PathBuf::from(format!(".nrt-replay-{table}-{from}-{to}"))
    });
    let resume_after = match std::fs::read_to_string(&checkpoint) {
        Ok(text) => parse_checkpoint(&text)
            .with_context(|| format!("the checkpoint {} is not `<hour> <key>`", checkpoint.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading the checkpoint {}", checkpoint.display())),
    };
    let store = ObjectStore::new(&services.s3)?;
    let ch = &services.clickhouse;
    let rows = match args.dry_run {
        true => Rows::Count {
            time: args.table.event_time_field.clone(),
        },
        false => Rows::Table(Box::new(Plans::new(
            crate::clickhouse::ddl::Ddl::new(ch)?,
            args.table.table(&ch.database),
        ))),
    };
    let registry = crate::registry::RegistryClient::new(&services.registry, Duration::from_secs(10))?;
    let mut reader = LineReader::new(registry.into(), rows);
    let client = crate::clickhouse::client(ch)?;
    // On a cluster, each object's rows go to its partition's shard, as the consumer wrote them.
    let shards = match ch.cluster().map_err(|e| crate::lake::UsageError(e.to_string()))? {
        Some(cluster) => Some(crate::clickhouse::shards::Shards::new(ch, cluster, table)?),
        None => None,
    };

    let objects = crate::lake::hours::objects(&store, prefix, from, to).await?;
    let mut progress = Progress::new(objects.len() as u64, args.dry_run);
    let mut summary = Summary::default();
    for (hour, key) in objects {
        summary.objects += 1;
        if resume_after.as_ref().is_some_and(|(h, k)| (hour, &key) <= (*h, k)) {
            summary.resumed += 1;
            progress.object(0);
            continue;
        }
        let mut written = 0;
        if let Some(object) = Object::fetch(&store, &key, Duration::from_secs(120)).await? {
            let records = object.records(&key, &mut reader).await?;
            summary.lines += records.len() as u64;
            let in_range = |time: i64| (from..to).contains(&Hour::of_millis(time));
            let all_in_range = records.iter().all(|r| in_range(r.time));
            let records = match all_in_range {
                true => records,
                false => records.select(|r| in_range(r.time)),
            };
            written = records.len() as u64;
            if !args.dry_run && !records.is_empty() {
                let origin = insert::Origin {
                    partition: object.origin.partition,
                    ingested_at: object.origin.ingested_at.map(|m| m.0),
                };
                let inserted = match (&tenants, &shards) {
                    (Some(tenants), _) => tenants.insert(&client, &records, origin).await.map(drop).map_err(anyhow::Error::from),
                    (None, Some(shards)) => shards.insert(&records, origin).await.map_err(anyhow::Error::from),
                    (None, None) => insert_all(&client, table, &records, origin).await.map_err(anyhow::Error::from),
                };
                inserted.with_context(|| format!("inserting the records of {key}"))?;
            }
        }
        summary.events += written;
        if !args.dry_run {
            save_checkpoint(&checkpoint, hour, &key)?;
        }
        progress.object(written);
    }
    progress.finish();
    if !args.dry_run {
        match std::fs::remove_file(&checkpoint) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                log::warn!("replay complete, but the checkpoint {} stays: {e}", checkpoint.display())
            }
            _ => {}
        }
    }
    Ok(summary)
}

/// `<hour> <key>`: the last object finished, and the hour it was read in.
fn parse_checkpoint(text: &str) -> anyhow::Result<Option<(Hour, String)>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let (hour, key) = text.split_once(' ').context("no hour before the key")?;
    Ok(Some((Hour(hour.parse().context("the hour is not a number")?), key.to_owned())))
}

/// Written to a temporary file, then renamed over the old one: a crash leaves one or the other whole.
fn save_checkpoint(path: &Path, hour: Hour, key: &str) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp).with_context(|| format!("writing {}", tmp.display()))?;
    f.write_all(format!("{} {key}", hour.0).as_bytes())?;
    f.sync_data()?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// A progress line on a terminal (redrawn in place), plain log lines every 10 s otherwise.
struct Progress {
    total: u64,
    done: u64,
    events: u64,
    started: Instant,
    shown: Instant,
    tty: bool,
    verb: &'static str,
}

impl Progress {
    fn new(total: u64, dry_run: bool) -> Self {
        let now = Instant::now();
        Progress {
            total,
            done: 0,
            events: 0,
            started: now,
            shown: now,
            tty: std::io::stderr().is_terminal(),
            verb: if dry_run { "counted" } else { "replayed" },
        }
    }

    fn object(&mut self, events: u64) {
        self.done += 1;
        self.events += events;
        let every = if self.tty { Duration::from_millis(200) } else { Duration::from_secs(10) };
        if self.shown.elapsed() >= every {
            self.shown = Instant::now();
            self.show();
        }
    }

    fn line(&self) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        let left = self.total.saturating_sub(self.done);
        let eta = match self.done {
            0 => "?".to_owned(),
            d => format!("{:.0} s", secs / d as f64 * left as f64),
        };
        format!(
            "objects {}/{}, events {} {}, {:.0} events/s, ETA {eta}",
            self.done,
            self.total,
            self.verb,
            self.events,
            self.events as f64 / secs
        )
    }

    fn show(&self) {
        match self.tty {
            true => eprint!("\r{}\x1b[K", self.line()),
            false => log::info!("replay: {}", self.line()),
        }
    }

    fn finish(&self) {
        self.show();
        if self.tty {
            eprintln!();
        }
    }
}
