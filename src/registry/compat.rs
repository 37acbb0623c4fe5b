//! Compatibility levels and the check behind them.
//!
//! The Avro resolution rules are apache-avro's (`SchemaCompatibility::can_read`); this file only says
//! which pairs to check. Two narrow additions, each tested:
//! - apache-avro answers `Partial` when resolution works for some data only (a writer union branch or
//!   enum symbol the reader lacks). Java Avro, and so Confluent, reject those: we do too.
//! - apache-avro compares record names without looking at the reader's aliases; Avro's spec (and Java)
//!   accept a renamed record whose aliases include the old name, so we retry under the old name.

use std::fmt;
use std::str::FromStr;

use apache_avro::schema::Schema;
use apache_avro::schema_compatibility::{Compatibility, SchemaCompatibility};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CompatLevel {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl CompatLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            CompatLevel::None => "NONE",
            CompatLevel::Backward => "BACKWARD",
            CompatLevel::BackwardTransitive => "BACKWARD_TRANSITIVE",
            CompatLevel::Forward => "FORWARD",
            CompatLevel::ForwardTransitive => "FORWARD_TRANSITIVE",
            CompatLevel::Full => "FULL",
            CompatLevel::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            CompatLevel::BackwardTransitive | CompatLevel::ForwardTransitive | CompatLevel::FullTransitive
        )
    }

    /// (new schema must read old data, old schema must read new data)
    fn directions(self) -> (bool, bool) {
        match self {
            CompatLevel::None => (false, false),
            CompatLevel::Backward | CompatLevel::BackwardTransitive => (true, false),
            CompatLevel::Forward | CompatLevel::ForwardTransitive => (false, true),
            CompatLevel::Full | CompatLevel::FullTransitive => (true, true),
        }
    }
}

impl fmt::Display for CompatLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CompatLevel {
    type Err = ();
    /// Case-insensitive, as Confluent accepts it.
    fn from_str(s: &str) -> Result<Self, ()> {
        let all = [
            CompatLevel::None,
            CompatLevel::Backward,
            CompatLevel::BackwardTransitive,
            CompatLevel::Forward,
            CompatLevel::ForwardTransitive,
            CompatLevel::Full,
            CompatLevel::FullTransitive,
        ];
        all.into_iter()
            .find(|l| l.as_str().eq_ignore_ascii_case(s))
            .ok_or(())
    }
}

/// Checks `new` against the `existing` live versions of a subject (oldest first) under `level`.
/// Returns the reasons it is incompatible; empty means compatible.
pub fn check(level: CompatLevel, new: &Schema, existing: &[&Schema]) -> Vec<String> {
    let against: &[&Schema] = if level.transitive() {
        existing
    } else {
        existing.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let (backward, forward) = level.directions();
    let mut reasons = Vec::new();
    for old in against {
        if backward {
            if let Err(e) = can_read(old, new) {
                reasons.push(format!(
                    "{} (new schema cannot read data written with an earlier one)",
                    e
                ));
            }
        }
        if forward {
            if let Err(e) = can_read(new, old) {
                reasons.push(format!(
                    "{} (an earlier schema cannot read data written with the new one)",
                    e
                ));
            }
        }
    }
    reasons
}

/// Can data written with `writer` be read with `reader`, for every possible datum?
pub fn can_read(writer: &Schema, reader: &Schema) -> Result<(), String> {
    match SchemaCompatibility::can_read(writer, reader) {
        Ok(Compatibility::Full) => Ok(()),
        Ok(Compatibility::Partial) => Err(
            "some data of the writer schema has no match in the reader schema (union branch or enum symbol)"
                .into(),
        ),
        Err(e) => match renamed_by_alias(writer, reader) {
            Some(reader) => can_read(writer, &reader),
            None => Err(e.to_string()),
        },
    }
}

/// The reader record under the writer's name, if the reader lists that name among its aliases.
fn renamed_by_alias(writer: &Schema, reader: &Schema) -> Option<Schema> {
    let (Schema::Record(w), Schema::Record(r)) = (writer, reader) else {
        return None;
    };
    if w.name == r.name {
        return None;
    }
    let old_name = w.name.fullname(None);
    let aliased = r
        .aliases
        .as_ref()
        .is_some_and(|aliases| aliases.iter().any(|a| a.fullname(r.name.namespace()) == old_name));
    if !aliased {
        return None;
    }
    let mut renamed = r.clone();
    renamed.name = w.name.clone();
    Some(Schema::Record(renamed))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(json: &str) -> Schema {
        match Schema::parse_str(json) {
            Ok(s) => s,
            Err(e) => panic!("test schema does not parse: {e}"),
        }
    }

    const V1: &str = r#"{"type":"record","name":"E","fields":[{"name":"a","type":"int"}]}"#;

    #[test]
    fn levels_parse_case_insensitively() {
        assert_eq!("backward_transitive".parse(), Ok(CompatLevel::BackwardTransitive));
        assert_eq!("FULL".parse(), Ok(CompatLevel::Full));
        assert_eq!("sideways".parse::<CompatLevel>(), Err(()));
    }

    #[test]
    fn partial_union_match_is_incompatible() {
        let writer = s(r#"["int","string"]"#);
        let reader = s(r#""int""#);
        assert!(can_read(&writer, &reader).is_err());
    }

    #[test]
    fn record_renamed_with_alias_is_readable() {
        let old = s(V1);
        let renamed =
            s(r#"{"type":"record","name":"F","aliases":["E"],"fields":[{"name":"a","type":"int"}]}"#);
        let unaliased = s(r#"{"type":"record","name":"F","fields":[{"name":"a","type":"int"}]}"#);
        assert_eq!(can_read(&old, &renamed), Ok(()));
        assert!(can_read(&old, &unaliased).is_err());
    }

    #[test]
    fn non_transitive_checks_only_the_latest() {
        let v1 = s(V1);
        // v2 drops "a" and adds "b" with a default: backward compatible with v1 only by default value.
        let v2 = s(r#"{"type":"record","name":"E","fields":[{"name":"b","type":"int","default":0}]}"#);
        // v3 requires "a" again, without default: readable from v1 data, not from v2 data.
        let v3 = s(V1);
        assert!(check(CompatLevel::Backward, &v2, &[&v1]).is_empty());
        assert!(!check(CompatLevel::Backward, &v3, &[&v1, &v2]).is_empty());
        assert!(check(CompatLevel::None, &v3, &[&v1, &v2]).is_empty());
        let v4 = s(
            r#"{"type":"record","name":"E","fields":[{"name":"b","type":"int","default":0},{"name":"c","type":"string"}]}"#,
        );
        // v4 adds "c" without default: fine forward (old readers ignore it), not backward.
        assert!(check(CompatLevel::Forward, &v4, &[&v2]).is_empty());
        assert!(!check(CompatLevel::Backward, &v4, &[&v2]).is_empty());
        // Transitive: v4 against v1 too, whose data has no "b" default problem but v1 readers need "a".
        assert!(!check(CompatLevel::ForwardTransitive, &v4, &[&v1, &v2]).is_empty());
    }
}
