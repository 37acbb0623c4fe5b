//! `nrt replay`: the lake's events of a time range written to ClickHouse again, to repair what
//! `nrt reconcile` found missing or to rebuild a table (`--table`) from the lake.
//!
//! Rows come out as the pipeline wrote them: partition, offsets (`nrt-offsets`) and ingestion time
//! (`nrt-ingested-at`) from each object's metadata, so a replayed row equals the original one and
//! `ReplacingMergeTree` collapses them: replaying twice changes nothing. Objects are found by hour
//! (`lake::hours`: however far an event is from its object's own hour) and read one at a time, hour
//! by hour, in key order; the last one finished is kept in a checkpoint file (`<hour> <key>`), so a
//! replay stopped by Ctrl-C or a crash resumes after it. Memory: one object and the range's key list.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Args;

use crate::event::{Event, EventRow};
use crate::lake::{self, Hour, RangeArgs};
use crate::s3::ObjectStore;

#[derive(Debug, Args)]
pub struct ReplayArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    /// Table written (in `NRT_CLICKHOUSE_DATABASE`): the pipeline's, or a fresh one to rebuild into
    /// (created with the migrations if missing).
    #[arg(id = "clickhouse-table", long = "table", visible_alias = "clickhouse-table",
          env = "NRT_CLICKHOUSE_TABLE", default_value = "events_raw")]
    pub table: String,
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
    /// Events in the range: written (or, with `--dry-run`, that would be).
    pub events: u64,
}

/// The replay of one range.
pub async fn run(args: &ReplayArgs) -> anyhow::Result<Summary> {
    let (from, to) = args.range.check(&args.table)?;
    let (services, prefix) = (&args.range.services, &args.range.s3_prefix);
    let checkpoint = args.checkpoint.clone().unwrap_or_else(|| {
        PathBuf::from(format!(".nrt-replay-{}-{from}-{to}", args.table))
    });
    let resume_after = match std::fs::read_to_string(&checkpoint) {
        Ok(text) => parse_checkpoint(&text)
            .with_context(|| format!("the checkpoint {} is not `<hour> <key>`", checkpoint.display()))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("reading the checkpoint {}", checkpoint.display())),
    };
    let store = ObjectStore::new(&services.s3)?;
    let ch = &services.clickhouse;
    if !args.dry_run {
        let server = crate::clickhouse::server_client(ch)?;
        crate::migrations::migrate(&server, &ch.database, &args.table).await?;
    }
    let client = crate::clickhouse::client(ch)?;

    let objects = lake::hours::objects(&store, prefix, from, to).await?;
    let mut progress = Progress::new(objects.len() as u64, args.dry_run);
    let mut summary = Summary::default();
    for (hour, key) in objects {
        summary.objects += 1;
        if resume_after.as_ref().is_some_and(|(h, k)| (hour, &key) <= (*h, k)) {
            summary.resumed += 1;
            progress.object(0);
            continue;
        }
        let (lines, rows) = read_object(&store, &key, from, to).await?;
        summary.lines += lines;
        summary.events += rows.len() as u64;
        if !args.dry_run && !rows.is_empty() {
            let mut insert = client.insert::<EventRow>(&args.table).await?;
            for row in &rows {
                insert.write(row).await?;
            }
            insert.end().await.with_context(|| format!("inserting the events of {key}"))?;
        }
        if !args.dry_run {
            save_checkpoint(&checkpoint, hour, &key)?;
        }
        progress.object(rows.len() as u64);
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

/// The object's lines, and the rows of its events in `from..to`, as the pipeline wrote them. An object
/// a reference names but that is not there (its writer stopped between the two) has none.
async fn read_object(store: &ObjectStore, key: &str, from: Hour, to: Hour) -> anyhow::Result<(u64, Vec<EventRow>)> {
    let timeout = Duration::from_secs(120);
    let Some((body, meta)) = store.get_if_present(key, timeout).await? else {
        return Ok((0, Vec::new()));
    };
    let sidecar = match lake::sidecar_key(key, &meta) {
        Some(sidecar) => Some(store.get(&sidecar, timeout).await?),
        None => None,
    };
    let sidecar = sidecar.map(|s| String::from_utf8_lossy(&s).into_owned());
    let lines: Vec<&[u8]> = body.split(|b| *b == b'\n').filter(|l| !l.is_empty()).collect();
    let origin = lake::Origin::of(&meta, sidecar.as_deref(), lines.len())
        .map_err(|e| anyhow::anyhow!("{key}: {e}"))?;
    let mut rows = Vec::new();
    for (line, offset) in lines.iter().zip(&origin.offsets) {
        let event: Event = serde_json::from_slice(line).with_context(|| format!("{key}, offset {offset}"))?;
        let hour = Hour::of_millis(event.created_at.0);
        if hour >= from && hour < to {
            // Objects written before `nrt-ingested-at` was recorded: the event's own time, so that a
            // second replay writes the same row.
            let ingested_at = origin.ingested_at.unwrap_or(event.created_at);
            rows.push(EventRow::new(&event, ingested_at, origin.partition, *offset));
        }
    }
    Ok((lines.len() as u64, rows))
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
