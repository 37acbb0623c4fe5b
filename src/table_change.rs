//! `nrt table check|apply --schema-id N`: what a writer schema needs of the table, and the reviewed
//! change applied. A schema that retypes a field beyond what its column holds holds the consumer (its
//! records wait, `/ready` names the schema id and field); `check` prints, for each such field, the
//! `ALTER TABLE … MODIFY COLUMN` to a type that holds both the rows so far and the new values
//! (`clickhouse::review`); `apply` runs those statements and records them in
//! `<database>.schema_changes`. The held consumer asks again every few seconds and resumes by itself.
//! Columns the schema adds are not this command's business: the consumer adds them as it meets them.

use clap::{Args, Subcommand};

use crate::clickhouse::follow::{self, Table};
use crate::clickhouse::review::{self, Retyped};
use crate::clickhouse::row::RowPlan;
use crate::clickhouse::table;
use crate::config::{ServicesConfig, TableArgs};

#[derive(Debug, Subcommand)]
pub enum TableCommand {
    /// Prints what each writer schema needs of the table; exits 1 if one holds the consumer.
    Check(TableChangeArgs),
    /// Applies the statements `check` prints (after review), and records them.
    Apply(TableChangeArgs),
}

#[derive(Debug, Args)]
pub struct TableChangeArgs {
    #[command(flatten)]
    pub services: ServicesConfig,
    #[command(flatten)]
    pub table: TableArgs,
    /// The writer schema ids (as `/ready` and the alert name them), comma-separated.
    #[arg(long = "schema-id", required = true, value_delimiter = ',')]
    pub schema_ids: Vec<u32>,
}

/// What one writer schema needs of the table.
#[derive(Debug)]
pub struct Review {
    pub schema_id: u32,
    pub retyped: Vec<Retyped>,
    /// Why its records would still wait once the statements are applied (a key column retyped, the
    /// event-time field missing), if they would.
    pub still: Option<String>,
}

impl Review {
    pub fn holds(&self) -> bool {
        !self.retyped.is_empty() || self.still.is_some()
    }
}

/// Reviews every schema id; with `apply`, runs the statements found first and reviews again.
pub async fn run(args: &TableChangeArgs, apply: bool) -> anyhow::Result<Vec<Review>> {
    args.services.validate().map_err(crate::lake::UsageError::from)?;
    args.table.validate().map_err(crate::lake::UsageError::from)?;
    let ch = &args.services.clickhouse;
    let ddl = crate::clickhouse::ddl::Ddl::new(ch)?;
    let client = ddl.client().clone();
    let t = args.table.table(&ch.database);
    let registry = crate::registry::RegistryClient::new(&args.services.registry, std::time::Duration::from_secs(10))?;
    let mut reviews = Vec::new();
    for &id in &args.schema_ids {
        let schema = registry.schema_by_id(id).await?;
        let plan = crate::avro::Plan::new(&schema)?;
        let found = review(&client, &t, &plan, id).await?;
        if !apply {
            reviews.push(found);
            continue;
        }
        for statement in found.retyped.iter().filter_map(|r| r.statement.as_ref().ok()) {
            ddl.execute(statement, &t.database, &t.table)
                .await
                .map_err(|e| anyhow::anyhow!("{statement}: {e}"))?;
            follow::record(&ddl, &t, id, statement).await?;
            log::info!("clickhouse: {statement} (writer schema {id}, applied by nrt table apply)");
            println!("applied: {statement}");
        }
        reviews.push(review(&client, &t, &plan, id).await?);
    }
    Ok(reviews)
}

async fn review(client: &clickhouse::Client, t: &Table, plan: &crate::avro::Plan, id: u32) -> anyhow::Result<Review> {
    let server = table::server(client).await?;
    let columns = table::columns(client, &t.database, &t.table).await?;
    if columns.is_empty() {
        anyhow::bail!("{}.{}: no such table (nrt run makes it from the first schema it meets)", t.database, t.table);
    }
    let mut fixed = table::key_columns(client, &t.database, &t.table).await?;
    fixed.extend(table::partition_columns(client, &t.database, &t.table).await?);
    let retyped = review::retyped(plan, &columns, &fixed, server, (&t.database, &t.table))?;
    // The table as it would be with every statement applied and every new field added.
    let mut after = columns.clone();
    for r in &retyped {
        if r.statement.is_ok() {
            after.insert(r.field.clone(), review::holding_both(&r.have, &r.want));
        }
    }
    after.extend(table::missing(plan, &after, server).unwrap_or_default());
    let blocked_by_key = retyped.iter().find_map(|r| r.statement.as_ref().err().cloned());
    let still = match RowPlan::new(plan, &after, server, t.time.as_deref()) {
        Err(why) if why.holds() => Some(why.to_string()),
        _ => blocked_by_key,
    };
    Ok(Review {
        schema_id: id,
        retyped,
        still,
    })
}

/// One paragraph per schema id.
pub fn render(reviews: &[Review], table: &str) -> String {
    let mut out = String::new();
    for r in reviews {
        let verdict = match r.holds() {
            false => "takes it (columns it adds, the consumer adds itself)",
            true => "holds the consumer",
        };
        out.push_str(&format!("writer schema {} into {table}: {verdict}\n", r.schema_id));
        for f in &r.retyped {
            out.push_str(&format!("  field {}: column is {}, the schema needs {}\n", f.field, f.have, f.want));
            match &f.statement {
                Ok(s) => out.push_str(&format!("    apply: {s}\n")),
                Err(why) => out.push_str(&format!("    no statement: {why}\n")),
            }
        }
        if let Some(why) = r.still.as_ref().filter(|_| r.retyped.iter().all(|f| f.statement.is_ok())) {
            out.push_str(&format!("  and: {why}\n"));
        }
    }
    out
}
