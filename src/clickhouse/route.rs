//! A table per value of a field (one per tenant): `clickhouse_table = "events_{field:tenant}"`. The
//! registry's schemas are followed by one *template* table (`events__template`: the field's part
//! written `_template`), which no row goes to; each tenant's table is made `AS` it when its first row
//! comes, and given the template's columns it lacks before rows that need them are inserted. So a
//! record's row, encoded once along the template's columns, fits every tenant's table.
//!
//! The value names the table as a plain name: characters other than ASCII letters, digits and `_`
//! become `_` (so `acme-eu` and `acme_eu` share a table), at most `MAX_VALUE_CHARS` of them. A record
//! whose field is missing, null, empty or not a string, enum, integer or boolean has no table: it is
//! dead-lettered when decoded (`no_route`), before either sink has it.

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};

/// The longest value part of a table name (ClickHouse allows long names; a file system may not).
pub const MAX_VALUE_CHARS: usize = 100;

/// Where a table name's field part is, and which field it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub field: String,
    prefix: String,
    suffix: String,
}

impl Route {
    /// The route of a table name template: None when it has no `{field:NAME}`.
    pub fn parse(template: &str) -> Result<Option<Route>, String> {
        let Some(start) = template.find("{field:") else {
            return Ok(None);
        };
        let rest = &template[start + "{field:".len()..];
        let end = rest
            .find('}')
            .ok_or_else(|| format!("'{template}': {{field:NAME}} is not closed"))?;
        let (field, suffix) = (&rest[..end], &rest[end + 1..]);
        let plain = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if field.is_empty() || !plain(field) {
            return Err(format!("'{template}': '{field}' is not a field name"));
        }
        let prefix = &template[..start];
        if !plain(prefix) || !plain(suffix) || suffix.contains('{') {
            return Err(format!(
                "'{template}': around {{field:{field}}} only letters, digits and `_` (one field part)"
            ));
        }
        Ok(Some(Route {
            field: field.to_owned(),
            prefix: prefix.to_owned(),
            suffix: suffix.to_owned(),
        }))
    }

    /// The table that follows the registry for all tenants' tables (no row goes to it).
    pub fn template(&self) -> String {
        format!("{}_template{}", self.prefix, self.suffix)
    }

    /// The table of a record whose field is `value`; None for an empty value, or one that would name
    /// the template itself.
    pub fn table_for(&self, value: &str) -> Option<String> {
        if value.is_empty() {
            return None;
        }
        let part: String = value
            .chars()
            .take(MAX_VALUE_CHARS)
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let table = format!("{}{part}{}", self.prefix, self.suffix);
        (table != self.template()).then_some(table)
    }

    /// Whether `table` is one of this route's tenant tables (not the template).
    pub fn is_tenant_table(&self, table: &str) -> bool {
        let part = table
            .strip_prefix(&self.prefix)
            .and_then(|rest| rest.strip_suffix(&self.suffix));
        part.is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'))
            && table != self.template()
    }

    /// The table of a record, from its lake line (the record's JSON, docs/data.md); None: it has none.
    pub fn table_of(&self, line: &[u8]) -> Option<String> {
        let mut de = serde_json::Deserializer::from_slice(line);
        let value = de.deserialize_map(FieldOf(&self.field)).ok()??;
        self.table_for(&value)
    }

    /// Why a record has no table, for its dead letter.
    pub fn why_none(&self, line: &[u8]) -> String {
        format!(
            "field `{}` names the record's table ({}{{field:{}}}{}), and this record's is missing, null, empty \
             or not a string, enum, integer or boolean: {}",
            self.field,
            self.prefix,
            self.field,
            self.suffix,
            String::from_utf8_lossy(line.get(..200).unwrap_or(line))
        )
    }
}

/// A top-level field of a JSON object, as text, skipping every other value unparsed.
struct FieldOf<'f>(&'f str);

impl<'de> Visitor<'de> for FieldOf<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if key == self.0 {
                found = map.next_value_seed(Scalar)?;
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(found)
    }
}

/// A scalar as the text that names a table; None for null and for objects and arrays (a union's
/// branch, `{"string": "x"}`, is not written so in the lake: unions are their value).
struct Scalar;

impl<'de> DeserializeSeed<'de> for Scalar {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(ScalarVisitor)
    }
}

struct ScalarVisitor;

impl<'de> Visitor<'de> for ScalarVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a scalar")
    }
    fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Some(v.to_owned()))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
        Ok(Some(v.to_string()))
    }
    fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::Route;

    fn route(template: &str) -> Route {
        Route::parse(template)
            .unwrap_or_else(|e| panic!("{e}"))
            .unwrap_or_else(|| panic!("no route"))
    }

    #[test]
    fn a_template_names_its_field_and_the_tables() {
        assert_eq!(Route::parse("events_raw"), Ok(None));
        let r = route("events_{field:tenant}");
        assert_eq!(
            (r.field.as_str(), r.template().as_str()),
            ("tenant", "events__template")
        );
        assert_eq!(r.table_for("acme").as_deref(), Some("events_acme"));
        assert_eq!(r.table_for("acme-eu.1").as_deref(), Some("events_acme_eu_1"));
        assert_eq!(
            r.table_for("ünï").as_deref(),
            Some("events__n_"),
            "one `_` per character"
        );
        assert_eq!(r.table_for(""), None);
        assert_eq!(r.table_for("_template"), None, "never the template");
        assert_eq!(r.table_for(&"x".repeat(500)).map(|t| t.len()), Some(7 + 100));
        assert_eq!(route("t_{field:a}_v2").table_for("b").as_deref(), Some("t_b_v2"));
        assert!(r.is_tenant_table("events_acme") && r.is_tenant_table("events_a_b"));
        assert!(
            !r.is_tenant_table("events__template")
                && !r.is_tenant_table("events_")
                && !r.is_tenant_table("other_acme")
        );
        for bad in [
            "e_{field:}",
            "e_{field:a b}",
            "e_{field:a",
            "e-{field:a}",
            "e_{field:a}_{field:b}",
        ] {
            assert!(Route::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_field_is_read_from_the_line_and_nothing_else_is_parsed() {
        let r = route("events_{field:tenant}");
        let table = |line: &str| r.table_of(line.as_bytes());
        assert_eq!(
            table(r#"{"id":1,"tenant":"acme","n":{"tenant":"x"}}"#).as_deref(),
            Some("events_acme")
        );
        assert_eq!(
            table(r#"{"nested":{"tenant":"x"},"tenant":42}"#).as_deref(),
            Some("events_42")
        );
        assert_eq!(table(r#"{"tenant":true}"#).as_deref(), Some("events_true"));
        assert_eq!(table(r#"{"tenant":null}"#), None);
        assert_eq!(table(r#"{"tenant":""}"#), None);
        assert_eq!(table(r#"{"tenant":1.5}"#), None);
        assert_eq!(table(r#"{"tenant":["a"]}"#), None);
        assert_eq!(table(r#"{"other":"acme"}"#), None);
        assert_eq!(table("not json"), None);
        assert!(r.why_none(br#"{"tenant":null}"#).contains("field `tenant`"));
    }
}
