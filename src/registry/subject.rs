//! Which registry subject a topic's value schemas live under: Confluent's three subject name
//! strategies. A consumer never needs the subject to decode (every record carries its schema id);
//! the producer registers under it, and the consumer and `nrt doctor` ask whether the registry holds
//! any subject of the topic at all, to tell a wrong registry from a record with a bad id.

use apache_avro::Schema;

/// Confluent's `TopicNameStrategy`, `RecordNameStrategy` and `TopicRecordNameStrategy`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SubjectStrategy {
    /// `<topic>-value`: one evolving record type per topic (the default, as Confluent's).
    #[default]
    #[value(alias = "TopicNameStrategy")]
    Topic,
    /// `<record full name>`: a record type evolves as one across every topic that carries it.
    #[value(alias = "RecordNameStrategy")]
    Record,
    /// `<topic>-<record full name>`: several record types in one topic, each evolving on its own.
    #[value(alias = "topic_record", alias = "TopicRecordNameStrategy")]
    TopicRecord,
}

/// A record strategy given a schema that is not a named record.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {strategy} subject strategy needs a record schema, not {kind}")]
pub struct NotARecord {
    pub strategy: &'static str,
    /// The schema's kind (`Long`, `Array`, …).
    pub kind: String,
}

impl SubjectStrategy {
    /// The subject a producer registers `schema` under for `topic`. The record strategies need a
    /// named record, as Confluent's serializers do.
    pub fn subject(self, topic: &str, schema: &Schema) -> Result<String, NotARecord> {
        let record = || match schema {
            Schema::Record(r) => Ok(r.name.fullname(None)),
            other => Err(NotARecord {
                strategy: self.name(),
                kind: format!("{:?}", apache_avro::schema::SchemaKind::from(other)),
            }),
        };
        Ok(match self {
            SubjectStrategy::Topic => format!("{topic}-value"),
            SubjectStrategy::Record => record()?,
            SubjectStrategy::TopicRecord => format!("{topic}-{}", record()?),
        })
    }

    /// Whether `subject` can hold value schemas of `topic`. Under the record strategy any subject but
    /// another topic's `-key` / `-value` can: a record's name says nothing of its topics.
    pub fn may_hold(self, topic: &str, subject: &str) -> bool {
        match self {
            SubjectStrategy::Topic => subject.strip_suffix("-value") == Some(topic),
            SubjectStrategy::Record => !subject.ends_with("-key") && !subject.ends_with("-value"),
            SubjectStrategy::TopicRecord => subject
                .strip_prefix(topic)
                .and_then(|rest| rest.strip_prefix('-'))
                .is_some_and(|record| !record.is_empty() && record != "key"),
        }
    }

    /// The subjects of `topic`, as an operator reads them in a message.
    pub fn describe(self, topic: &str) -> String {
        match self {
            SubjectStrategy::Topic => format!("{topic}-value"),
            SubjectStrategy::Record => "named for a record (the record subject strategy)".to_owned(),
            SubjectStrategy::TopicRecord => format!("{topic}-<record name>"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            SubjectStrategy::Topic => "topic",
            SubjectStrategy::Record => "record",
            SubjectStrategy::TopicRecord => "topic-record",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::SubjectStrategy::{self, *};
    use apache_avro::Schema;

    fn order() -> Schema {
        let text = r#"{"type":"record","name":"Order","namespace":"shop.v1","fields":[{"name":"id","type":"long"}]}"#;
        Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn subjects_are_named_as_confluents_serializers_name_them() {
        let subject = |s: SubjectStrategy| s.subject("orders", &order()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(subject(Topic), "orders-value");
        assert_eq!(subject(Record), "shop.v1.Order");
        assert_eq!(subject(TopicRecord), "orders-shop.v1.Order");
        let long = Schema::parse_str(r#""long""#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(Topic.subject("t", &long).as_deref(), Ok("t-value"));
        let refused = Record.subject("t", &long).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(refused.contains("needs a record schema"), "{refused}");
        assert!(TopicRecord.subject("t", &long).is_err());
    }

    #[test]
    fn a_topics_subjects_are_told_from_others() {
        assert!(Topic.may_hold("orders", "orders-value"));
        assert!(!Topic.may_hold("orders", "orders-key"));
        assert!(!Topic.may_hold("orders", "orders.eu-value"));
        assert!(TopicRecord.may_hold("orders", "orders-shop.v1.Order"));
        assert!(TopicRecord.may_hold("orders", "orders-value"), "a record may be named `value`");
        assert!(!TopicRecord.may_hold("orders", "orders-key"));
        assert!(!TopicRecord.may_hold("orders", "orders-"));
        assert!(!TopicRecord.may_hold("orders", "ordersx-shop.v1.Order"));
        assert!(!TopicRecord.may_hold("orders", "payments-shop.v1.Order"));
        assert!(Record.may_hold("orders", "shop.v1.Order"));
        assert!(!Record.may_hold("orders", "payments-value"));
    }

    #[test]
    fn confluents_class_names_are_accepted() {
        use clap::ValueEnum;
        for (text, want) in [
            ("topic", Topic),
            ("TopicNameStrategy", Topic),
            ("record", Record),
            ("RecordNameStrategy", Record),
            ("topic-record", TopicRecord),
            ("topic_record", TopicRecord),
            ("TopicRecordNameStrategy", TopicRecord),
        ] {
            assert_eq!(SubjectStrategy::from_str(text, false), Ok(want), "{text}");
        }
    }
}
