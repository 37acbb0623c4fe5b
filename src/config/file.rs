//! The pipelines file (`nrt run --config nrt.toml`, `NRT_CONFIG`): TOML, a `[[pipeline]]` table per
//! pipeline, each with a `name` and any of the per-pipeline settings of `nrt run`, named as its long
//! flag without the dashes (`--flush-interval-ms` is `flush_interval_ms`). Each value is read by the
//! same parser as the flag, so a file and the command line can never disagree on a default or a
//! range; a mistake is reported with the file, the line and the key. The environment variables of
//! those settings configure the one default pipeline when there is no file: a file and any of them
//! together are an error, never a merge (which of the two would win is exactly what an operator
//! should not have to guess). Settings of the process (services, the admin API, the memory budget,
//! timeouts of a shutdown) stay in the environment and flags.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use clap::{Args, FromArgMatches};
use toml_edit::{Document, Item, Value};

use super::PipelineConfig;
pub use topics::{Topics, DISCOVERY_INTERVAL};

mod topics;

/// The settings a pipeline of the file may have (the ids of `PipelineConfig`'s and `TableArgs`'
/// arguments); the other arguments of `PipelineConfig` belong to the process.
pub const PIPELINE_SETTINGS: [&str; 21] = [
    "topic",
    "subject-strategy",
    "topic-partitions",
    "topic-replication",
    "dlq-topic",
    "transactional-id",
    "group-id",
    "schema-file",
    "mock-api-url",
    "poll-batch",
    "poll-interval-ms",
    "poll-timeout-ms",
    "flush-interval-ms",
    "flush-quiet-ms",
    "batch-max-records",
    "batch-max-bytes",
    "s3-prefix",
    "lake-format",
    "clickhouse-table",
    "table-key",
    "event-time-field",
];

/// One pipeline of the file.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub config: PipelineConfig,
    /// Its `topic`, or the several it runs an instance for (`topics.rs`).
    pub topics: Topics,
}

#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML (the parser's message names the line and column).
    #[error("{}: {message}", path.display())]
    Syntax { path: PathBuf, message: String },
    /// A key of the file, at `line`.
    #[error("{}:{line}: {key}: {message}", path.display())]
    Key {
        path: PathBuf,
        line: usize,
        key: String,
        message: String,
    },
    /// The file as a whole, or a pipeline's settings together.
    #[error("{}: {message}", path.display())]
    File { path: PathBuf, message: String },
    /// Settings of a pipeline given both in the file and in the environment or on the command line.
    #[error(
        "{} and {} both configure pipelines: with a pipelines file, set these in the file (and unset \
         them), or drop the file to configure the one default pipeline from the environment",
        path.display(), given.join(", ")
    )]
    Both { path: PathBuf, given: Vec<String> },
}

/// The per-pipeline settings given in the environment or as flags (`args`: the process's arguments):
/// a pipelines file must not be combined with them.
pub fn given_outside(env: impl Fn(&str) -> Option<OsString>, args: &[OsString]) -> Vec<String> {
    let cmd = PipelineConfig::augment_args(clap::Command::new("pipeline"));
    let mut given = Vec::new();
    for arg in cmd.get_arguments().filter(|a| PIPELINE_SETTINGS.contains(&a.get_id().as_str())) {
        if let Some(var) = arg.get_env().and_then(|v| v.to_str()) {
            if env(var).is_some() {
                given.push(var.to_owned());
            }
        }
        let flags: Vec<String> = arg.get_long_and_visible_aliases().into_iter().flatten().map(|l| format!("--{l}")).collect();
        let on_command_line = args.iter().filter_map(|a| a.to_str()).any(|a| {
            flags.iter().any(|f| a == f || a.strip_prefix(f.as_str()).is_some_and(|rest| rest.starts_with('=')))
        });
        if on_command_line {
            given.push(flags.first().cloned().unwrap_or_default());
        }
    }
    given
}

/// Reads the pipelines of the file at `path`; `process` gives the settings of the process (taken as
/// they are for every pipeline).
pub fn load(path: &Path, process: &PipelineConfig) -> Result<Vec<Pipeline>, FileError> {
    let text = std::fs::read_to_string(path).map_err(|source| FileError::Read {
        path: path.to_owned(),
        source,
    })?;
    parse(path, &text, process)
}

/// The pipelines of `text` (the file at `path`).
pub fn parse(path: &Path, text: &str, process: &PipelineConfig) -> Result<Vec<Pipeline>, FileError> {
    let doc = Document::parse(text).map_err(|e| FileError::Syntax {
        path: path.to_owned(),
        message: e.to_string().trim_end().to_owned(),
    })?;
    let at = |span: Option<std::ops::Range<usize>>| line_of(text, span.map_or(0, |s| s.start));
    let key_error = |line, key: &str, message: String| FileError::Key {
        path: path.to_owned(),
        line,
        key: key.to_owned(),
        message,
    };
    let file_error = |message: String| FileError::File {
        path: path.to_owned(),
        message,
    };
    for (key, item) in doc.iter() {
        if key != "pipeline" {
            let line = at(doc.get_key_value(key).and_then(|(k, _)| k.span()).or_else(|| item.span()));
            return Err(key_error(line, key, "unknown key: a pipelines file holds `[[pipeline]]` tables only".into()));
        }
    }
    let tables = match doc.get("pipeline") {
        None => return Err(file_error("no `[[pipeline]]` table: a pipelines file names at least one pipeline".into())),
        Some(Item::ArrayOfTables(tables)) => tables,
        Some(item) => {
            return Err(key_error(at(item.span()), "pipeline", "must be an array of tables, written `[[pipeline]]`".into()))
        }
    };
    let mut pipelines: Vec<Pipeline> = Vec::new();
    for (n, table) in tables.iter().enumerate() {
        let here = at(table.span());
        let mut name = None;
        let mut argv: Vec<String> = Vec::new();
        let mut topics = Topics::One;
        for (key, item) in table.iter() {
            let line = at(table.get_key_value(key).and_then(|(k, _)| k.span()).or_else(|| item.span()));
            if let Some(several) = several_topics(key, item).map_err(|e| key_error(line, key, e))? {
                let other = ["topic", "topics", "topic_pattern"]
                    .into_iter()
                    .find(|k| *k != key && table.contains_key(k));
                if let Some(other) = other {
                    return Err(key_error(line, key, format!("either `{other}` or `{key}`, not both")));
                }
                topics = several;
                continue;
            }
            let value = scalar(item).ok_or_else(|| {
                key_error(line, key, "expects one value (a string, a number or a boolean)".into())
            })?;
            if key == "name" {
                name = Some(value);
                continue;
            }
            let flag = flag_of(key).ok_or_else(|| {
                key_error(line, key, format!("unknown key; a pipeline has `name` and {}", settings_list()))
            })?;
            // Read alone first, so a value the flag's parser refuses is blamed on its own line.
            pipeline_command()
                .try_get_matches_from([flag.clone(), value.clone()])
                .map_err(|e| key_error(line, key, clap_message(&e)))?;
            argv.extend([flag, value]);
        }
        let name = name.ok_or_else(|| key_error(here, &format!("pipeline #{}", n + 1), "has no `name`".into()))?;
        if !is_pipeline_name(&name) {
            return Err(key_error(
                here,
                "name",
                format!("'{name}' is not a pipeline name (a-z, 0-9, `_` and `-`, at most 64, a letter or digit first)"),
            ));
        }
        if pipelines.iter().any(|p| p.name == name) {
            return Err(key_error(here, "name", format!("two pipelines are named '{name}'")));
        }
        let matches = pipeline_command()
            .try_get_matches_from(&argv)
            .map_err(|e| file_error(format!("pipeline '{name}': {}", clap_message(&e))))?;
        let mut config = PipelineConfig::from_arg_matches(&matches)
            .map_err(|e| file_error(format!("pipeline '{name}': {}", clap_message(&e))))?;
        config.take_process_settings(process);
        if !argv.iter().any(|a| a == "--group-id") {
            // Each pipeline commits in a group of its own (its partitions, its pace, its faults).
            config.group_id = format!("{}-{name}", config.group_id);
        }
        let pipeline = Pipeline { name, config, topics };
        match pipeline.topics {
            Topics::One => pipeline.config.validate().map_err(|e| format!("pipeline '{}': {e}", pipeline.name)),
            _ => pipeline.check_template(),
        }
        .map_err(file_error)?;
        pipelines.push(pipeline);
    }
    // Instances of a pattern are checked as their topics are found.
    let mut known = Vec::new();
    for p in &pipelines {
        known.extend(p.instances(&[]).map_err(file_error)?);
    }
    check_apart(&known).map_err(file_error)?;
    Ok(pipelines)
}

/// `topics = ["a", "b"]` or `topic_pattern = "regex"` (matched against whole names); None for any
/// other key.
fn several_topics(key: &str, item: &Item) -> Result<Option<Topics>, String> {
    match key {
        "topics" => {
            let list = item.as_array().ok_or("expects a list of topic names")?;
            let names: Option<Vec<String>> = list.iter().map(|v| v.as_str().map(str::to_owned)).collect();
            let names = names.filter(|n| !n.is_empty()).ok_or("expects a non-empty list of topic names")?;
            Ok(Some(Topics::List(names)))
        }
        "topic_pattern" => {
            let pattern = item.as_str().ok_or("expects a regular expression, as a string")?;
            let re = regex::Regex::new(&format!("^(?:{pattern})$")).map_err(|e| format!("not a regular expression: {e}"))?;
            Ok(Some(Topics::Pattern(re)))
        }
        _ => Ok(None),
    }
}

/// What two pipelines must not share: a consumer group (they would split one topic's partitions
/// between them), a table (rows of two topics collapse on the same Kafka coordinates), and a lake
/// prefix (an object's key names its partition, offset and hour, not its topic: two topics' objects
/// would take each other's keys, and an object found there is never overwritten).
pub fn check_apart(pipelines: &[Pipeline]) -> Result<(), String> {
    let mut groups = BTreeSet::new();
    let mut tables = BTreeSet::new();
    let mut lakes = BTreeSet::new();
    for p in pipelines {
        let c = &p.config;
        if !groups.insert(c.group_id.as_str()) {
            return Err(format!("pipeline '{}': group_id '{}' is another pipeline's too", p.name, c.group_id));
        }
        // Rows of several topics may share a table only by a key of their own fields.
        if !tables.insert(c.table.clickhouse_table.as_str()) && c.table.table_key == "coordinates" {
            return Err(format!(
                "pipeline '{}': clickhouse_table '{}' is another pipeline's too",
                p.name, c.table.clickhouse_table
            ));
        }
        if !lakes.insert(c.lake.s3_prefix.as_str()) {
            return Err(format!(
                "pipeline '{}': s3_prefix '{}' is another pipeline's too (give each pipeline its own)",
                p.name, c.lake.s3_prefix
            ));
        }
    }
    Ok(())
}

/// `PipelineConfig`'s parser without its environment variables: a file's pipeline takes the
/// defaults, not what the environment would give the default pipeline.
fn pipeline_command() -> clap::Command {
    PipelineConfig::augment_args(clap::Command::new("pipeline").no_binary_name(true))
        .mut_args(|a| a.env(None))
        .disable_help_flag(true)
}

/// The flag of a file's key, if the key is a per-pipeline setting.
fn flag_of(key: &str) -> Option<String> {
    let dashed = key.replace('_', "-");
    let cmd = pipeline_command();
    let arg = cmd
        .get_arguments()
        .filter(|a| PIPELINE_SETTINGS.contains(&a.get_id().as_str()))
        .find(|a| a.get_long_and_visible_aliases().into_iter().flatten().any(|l| l == dashed))?;
    Some(format!("--{}", arg.get_long()?))
}

fn settings_list() -> String {
    let keys: Vec<String> = PIPELINE_SETTINGS.iter().map(|s| format!("`{}`", s.replace('-', "_"))).collect();
    keys.join(", ")
}

/// A value of the file as the flag's text; None for arrays and tables.
fn scalar(item: &Item) -> Option<String> {
    match item.as_value()? {
        Value::String(s) => Some(s.value().clone()),
        Value::Integer(i) => Some(i.value().to_string()),
        Value::Boolean(b) => Some(b.value().to_string()),
        Value::Float(f) => Some(f.value().to_string()),
        _ => None,
    }
}

/// clap's first line, without its `error: ` and the flag's own name (the file names the key), and the
/// possible values of a choice.
fn clap_message(e: &clap::Error) -> String {
    let text = e.render().to_string();
    let first = text.lines().next().unwrap_or_default().trim_start_matches("error: ");
    let choices = text.lines().map(str::trim).find(|l| l.starts_with("[possible values:"));
    // "invalid value '5' for '--flush-interval-ms <flush-interval-ms>': 5 is not in …"
    let message = match first.split_once(" for '--") {
        Some((head, rest)) => match rest.split_once("': ") {
            Some((_, why)) => format!("{head}: {why}"),
            None => head.to_owned(),
        },
        None => first.to_owned(),
    };
    match choices {
        Some(choices) => format!("{message} {choices}"),
        None => message,
    }
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset).map_or(1, |before| before.matches('\n').count() + 1)
}

fn is_pipeline_name(name: &str) -> bool {
    name.len() <= 64
        && name.chars().next().is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

#[cfg(test)]
mod tests;
