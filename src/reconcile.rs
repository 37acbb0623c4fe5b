//! `nrt reconcile`: for each hour of a range, what the lake holds (JSONL lines, distinct records)
//! against what ClickHouse holds (`FINAL` rows, distinct records). The check to run after an
//! incident; `nrt replay` repairs what it finds. For any record type: a line's hour is its event time
//! as the pipeline decoded it (`lake::read`), the table's is its partition-key column, and "distinct"
//! is by the table's sorting key without that column (`lake::Identity`): `event_id` for the events.

use std::collections::BTreeMap;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use crate::config::TableArgs;
use crate::lake::read::{LineReader, Rows};
use crate::lake::{Hour, Identity, LakeHour, RangeArgs};

#[derive(Debug, Args)]
pub struct ReconcileArgs {
    #[command(flatten)]
    pub range: RangeArgs,
    #[command(flatten)]
    pub table: TableArgs,
    /// One JSON document on stdout instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// One hour, both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HourReport {
    pub hour: String,
    pub lake_lines: u64,
    pub lake_ids: u64,
    pub clickhouse_rows: u64,
    pub clickhouse_ids: u64,
    pub same: bool,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub from: String,
    pub to: String,
    pub hours: Vec<HourReport>,
    /// The hours that differ, in order.
    pub differ: Vec<String>,
}

#[derive(Debug, clickhouse::Row, serde::Deserialize)]
struct ClickhouseHour {
    hour: i64,
    rows: u64,
    ids: u64,
}

/// Same when ClickHouse has every id of the lake, once (`FINAL` rows = distinct ids = the lake's
/// distinct ids). Duplicate lines in the lake do not make an hour differ: ClickHouse collapses them.
pub fn compare(lake: &BTreeMap<Hour, LakeHour>, clickhouse: &BTreeMap<Hour, (u64, u64)>) -> Vec<HourReport> {
    lake.iter()
        .map(|(hour, l)| {
            let (rows, ids) = clickhouse.get(hour).copied().unwrap_or((0, 0));
            HourReport {
                hour: hour.to_string(),
                lake_lines: l.lines,
                lake_ids: l.ids,
                clickhouse_rows: rows,
                clickhouse_ids: ids,
                same: rows == ids && ids == l.ids,
            }
        })
        .collect()
}

pub async fn run(args: &ReconcileArgs) -> anyhow::Result<Report> {
    let (from, to) = args.range.check(&args.table)?;
    let (services, prefix) = (&args.range.services, &args.range.lake.s3_prefix);
    let client = crate::clickhouse::client(&services.clickhouse)?;
    let unreachable = |e: clickhouse::error::Error| anyhow::anyhow!("clickhouse at {}: {e}", services.clickhouse.url);
    let database = &services.clickhouse.database;
    // A table per tenant: the template has the key and partition columns, the tenants' tables the rows.
    let table = &args.table.table(database).table;
    let tables = match args.table.route() {
        None => vec![table.clone()],
        Some(route) => {
            let sql = format!("SELECT name FROM system.tables WHERE database = '{}'", database.replace('\'', ""));
            let all: Vec<String> = client.query(&sql).fetch_all().await.map_err(unreachable)?;
            all.into_iter().filter(|t| route.is_tenant_table(t)).collect()
        }
    };
    let time = crate::clickhouse::table::partition_columns(&client, database, table)
        .await
        .map_err(unreachable)?
        .into_iter()
        .next()
        .with_context(|| format!("{database}.{table}: no such table, or no partition key to count hours by"))?;
    let key = crate::clickhouse::table::key_columns(&client, database, table).await.map_err(unreachable)?;
    let identity = Identity::new(&key, &time);

    let registry = crate::registry::RegistryClient::new(&services.registry, std::time::Duration::from_secs(10))?;
    // The lake's hours by the field the table is partitioned by (`ingested_at`: the schema has none).
    let field = Some(time.clone()).filter(|t| t != "ingested_at");
    let mut reader = LineReader::new(registry.into(), Rows::Count { time: field });
    let store = crate::s3::ObjectStore::new(&services.s3)?;
    let lake = crate::lake::count(&store, prefix, (from, to), &mut reader, &identity).await?;
    // Hours as whole seconds / 3600 (no time zone involved); the range as DateTime seconds.
    let ids: Vec<String> = identity.columns.iter().map(|c| format!("`{c}`")).collect();
    let mut clickhouse: BTreeMap<Hour, (u64, u64)> = BTreeMap::new();
    // A record is in one table only: the tenants' counts add up.
    for table in &tables {
        let sql = format!(
            "SELECT toInt64(intDiv(toUnixTimestamp(`{time}`), 3600)) AS hour, count() AS rows, uniqExact({}) AS ids \
             FROM {table} FINAL WHERE `{time}` >= toDateTime({}) AND `{time}` < toDateTime({}) \
             GROUP BY hour ORDER BY hour",
            ids.join(", "),
            from.0 * 3600,
            to.0 * 3600
        );
        for r in client.query(&sql).fetch_all::<ClickhouseHour>().await.map_err(unreachable)? {
            let sums = clickhouse.entry(Hour(r.hour)).or_default();
            *sums = (sums.0 + r.rows, sums.1 + r.ids);
        }
    }
    let hours = compare(&lake, &clickhouse);
    let differ = hours.iter().filter(|h| !h.same).map(|h| h.hour.clone()).collect();
    Ok(Report {
        from: from.to_string(),
        to: to.to_string(),
        hours,
        differ,
    })
}

/// The hours that differ as a table, then one summary line.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    if !report.differ.is_empty() {
        out.push_str(&format!(
            "{:<14} {:>12} {:>12} {:>16} {:>15}\n",
            "HOUR (UTC)", "LAKE LINES", "LAKE IDS", "CLICKHOUSE ROWS", "CLICKHOUSE IDS"
        ));
        for h in report.hours.iter().filter(|h| !h.same) {
            out.push_str(&format!(
                "{:<14} {:>12} {:>12} {:>16} {:>15}\n",
                h.hour, h.lake_lines, h.lake_ids, h.clickhouse_rows, h.clickhouse_ids
            ));
        }
    }
    out.push_str(&format!(
        "{} hour(s) from {} to {} (exclusive) checked: {} differ\n",
        report.hours.len(),
        report.from,
        report.to,
        report.differ.len()
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_differs_when_clickhouse_misses_or_repeats_an_id() {
        let lake: BTreeMap<Hour, LakeHour> = [
            (Hour(1), LakeHour { lines: 10, ids: 10 }),
            (Hour(2), LakeHour { lines: 12, ids: 10 }),
            (Hour(3), LakeHour { lines: 5, ids: 5 }),
            (Hour(4), LakeHour { lines: 0, ids: 0 }),
            (Hour(5), LakeHour { lines: 3, ids: 3 }),
        ]
        .into();
        let clickhouse: BTreeMap<Hour, (u64, u64)> =
            [(Hour(1), (10, 10)), (Hour(2), (10, 10)), (Hour(3), (4, 4)), (Hour(5), (4, 3))].into();
        let same: Vec<bool> = compare(&lake, &clickhouse).iter().map(|h| h.same).collect();
        // Duplicated lines in the lake are fine; a missing row, a row too many are not.
        assert_eq!(same, [true, true, false, true, false]);
    }
}
