//! A change the table cannot take, reviewed: for each field a writer schema retyped beyond what its
//! column holds, the column type that holds both its rows so far and the new field's values, as the
//! statement an operator applies with `nrt table apply` (src/table_change.rs). Pure: the statements
//! are run elsewhere.

use super::row::{root_record, Columns, Mismatch};
use super::types::{self, takes, Server, Type};
use crate::avro::Plan;

/// One field whose column does not take it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retyped {
    pub field: String,
    pub have: Type,
    pub want: Type,
    /// The `ALTER TABLE … MODIFY COLUMN` that resolves it, or why none can.
    pub statement: Result<String, String>,
}

/// The fields of `plan` whose columns in `columns` do not take them, each with its resolution. Columns
/// in the table's sorting or partition key (`fixed`) cannot change type in ClickHouse.
pub fn retyped(
    plan: &Plan,
    columns: &Columns,
    fixed: &[String],
    server: Server,
    (database, table): (&str, &str),
) -> Result<Vec<Retyped>, Mismatch> {
    let mut out = Vec::new();
    for f in root_record(plan)?.fields.iter() {
        let Some(want) = types::wanted(&f.name, &f.node, plan, server) else {
            continue;
        };
        let Some(have) = columns.get(&f.name) else {
            continue;
        };
        if takes(have, &want.ty) {
            continue;
        }
        let statement = match fixed.contains(&f.name) {
            true => Err(format!(
                "column {} is in the table's key, whose types ClickHouse cannot change: rebuild the table \
                 (`nrt replay --table <new>` from the lake) or change the producers back",
                f.name
            )),
            false => Ok(format!(
                "ALTER TABLE {database}.{table} MODIFY COLUMN `{}` {}",
                f.name,
                holding_both(have, &want.ty)
            )),
        };
        out.push(Retyped {
            field: f.name.clone(),
            have: have.clone(),
            want: want.ty,
            statement,
        });
    }
    Ok(out)
}

/// A type holding every value of `have` (the rows so far; ClickHouse converts them) and of `want`: the
/// wider of the two when one holds the other, else `String` (any value as its text, as the lake has
/// it); Nullable when either is.
pub fn holding_both(have: &Type, want: &Type) -> Type {
    let (h, w) = (have.bare(), want.bare());
    let wider = if takes(w, h) {
        w.clone()
    } else if takes(h, w) {
        h.clone()
    } else {
        Type::String
    };
    match have.is_nullable() || want.is_nullable() {
        true => Type::Nullable(Box::new(wider)),
        false => wider,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ty(text: &str) -> Type {
        Type::parse(text)
    }

    #[test]
    fn the_type_holding_both_is_the_wider_or_text() {
        for (have, want, both) in [
            ("Int32", "Int64", "Int64"),
            ("Int64", "Nullable(Int64)", "Nullable(Int64)"),
            ("Decimal(10, 2)", "Decimal(18, 2)", "Decimal(18, 2)"),
            ("Decimal(10, 2)", "Decimal(10, 3)", "String"),
            ("Int64", "String", "String"),
            ("Nullable(Int64)", "String", "Nullable(String)"),
            ("Float32", "Float64", "Float64"),
            ("UUID", "Int64", "String"),
        ] {
            let got = holding_both(&ty(have), &ty(want));
            assert_eq!(got.to_string(), both, "{have} + {want}");
            assert!(takes(&got, &ty(want)), "{got} takes {want}");
        }
    }

    #[test]
    fn a_retyped_field_gets_a_statement_unless_its_column_is_in_the_key() {
        let schema = apache_avro::Schema::parse_str(
            r#"{"type":"record","name":"R","fields":[{"name":"id","type":"string"},{"name":"n","type":"string"},
               {"name":"m","type":"long"},{"name":"o","type":["null","int"]}]}"#,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let plan = Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"));
        let columns: Columns = [
            ("id", "Int64"),
            ("n", "Int64"),
            ("m", "Int32"),
            ("o", "Nullable(Int64)"),
        ]
        .into_iter()
        .map(|(n, t)| (n.to_owned(), ty(t)))
        .collect();
        let found = retyped(&plan, &columns, &["id".to_owned()], Server::LEGACY, ("db", "t"))
            .unwrap_or_else(|e| panic!("{e}"));
        let shown: Vec<(String, Result<String, String>)> = found
            .into_iter()
            .map(|r| (r.field, r.statement.map_err(|e| e[..20].to_owned())))
            .collect();
        assert_eq!(
            shown,
            [
                ("id".to_owned(), Err("column id is in the ".to_owned())),
                (
                    "n".to_owned(),
                    Ok("ALTER TABLE db.t MODIFY COLUMN `n` String".to_owned())
                ),
                (
                    "m".to_owned(),
                    Ok("ALTER TABLE db.t MODIFY COLUMN `m` Int64".to_owned())
                ),
            ]
        );
    }
}
