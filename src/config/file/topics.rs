//! A pipeline of several topics: `topics = [...]` or `topic_pattern = "regex"`. It runs as one
//! instance per topic, each a pipeline of its own (its actors, group, table, lake prefix, budget share),
//! named `<pipeline>.<topic>`: a topic's faults hold only that topic, as between pipelines. The
//! settings that must differ per topic name it: `{topic}` in `clickhouse_table` (as a plain name:
//! other characters become `_`), `s3_prefix`, `group_id` and `dlq_topic`. A pattern is matched against
//! the topics Kafka has at start and again every `DISCOVERY_INTERVAL`, so a topic created later is
//! picked up; names ending in `.dlq` (dead-letter topics) never match.

use std::time::Duration;

use super::Pipeline;

/// How often the topics of the cluster are listed again for patterns.
pub const DISCOVERY_INTERVAL: Duration = Duration::from_secs(10);

/// Which topics a pipeline reads.
#[derive(Debug, Clone)]
pub enum Topics {
    /// Its `topic`: the pipeline runs as it is configured.
    One,
    /// An instance per topic listed.
    List(Vec<String>),
    /// An instance per topic whose whole name matches, those created while running included.
    Pattern(regex::Regex),
}

impl Pipeline {
    /// The topics of `existing` this pipeline reads beyond its own (`Topics::One` reads none of them).
    pub fn matching<'a>(&self, existing: &'a [String]) -> Vec<&'a str> {
        match &self.topics {
            Topics::One | Topics::List(_) => Vec::new(),
            Topics::Pattern(re) => existing
                .iter()
                .filter(|t| !t.ends_with(".dlq") && re.is_match(t))
                .map(String::as_str)
                .collect(),
        }
    }

    /// The pipelines to run for this one: itself, an instance per listed topic, or an instance per
    /// topic of `existing` that matches.
    pub fn instances(&self, existing: &[String]) -> Result<Vec<Pipeline>, String> {
        match &self.topics {
            Topics::One => Ok(vec![self.clone()]),
            Topics::List(topics) => topics.iter().map(|t| self.instance(t)).collect(),
            Topics::Pattern(_) => self.matching(existing).into_iter().map(|t| self.instance(t)).collect(),
        }
    }

    /// This pipeline for `topic` alone, `{topic}` filled in, validated.
    pub fn instance(&self, topic: &str) -> Result<Pipeline, String> {
        let mut config = self.config.clone();
        let fill = |template: &str| template.replace("{topic}", topic);
        config.topic = topic.to_owned();
        config.table.clickhouse_table = self.config.table.clickhouse_table.replace("{topic}", &plain(topic));
        config.lake.s3_prefix = fill(&config.lake.s3_prefix);
        config.dlq_topic = fill(&config.dlq_topic);
        config.group_id = match config.group_id.contains("{topic}") {
            true => fill(&config.group_id),
            false => format!("{}-{topic}", config.group_id),
        };
        let name = format!("{}.{topic}", self.name);
        config.validate().map_err(|e| format!("pipeline '{name}': {e}"))?;
        Ok(Pipeline {
            name,
            config,
            topics: Topics::One,
        })
    }

    /// What a pipeline of several topics must name per topic, checked on a sample topic.
    pub(super) fn check_template(&self) -> Result<(), String> {
        if matches!(self.topics, Topics::One) {
            return Ok(());
        }
        let c = &self.config;
        if !c.lake.s3_prefix.contains("{topic}") {
            return Err(format!(
                "pipeline '{}': s3_prefix must contain {{topic}}: each topic's objects need a prefix of their own",
                self.name
            ));
        }
        if !c.table.clickhouse_table.contains("{topic}") && c.table.table_key == "coordinates" {
            return Err(format!(
                "pipeline '{}': clickhouse_table must contain {{topic}} (rows of two topics collapse on the same \
                 partition and offset), or table_key must name fields unique across the topics",
                self.name
            ));
        }
        self.instance("sample").map(|_| ())
    }
}

/// A topic's name as part of a table's: ASCII letters, digits and `_`.
fn plain(topic: &str) -> String {
    topic
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' })
        .collect()
}
