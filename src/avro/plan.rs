//! A writer schema compiled once into what decoding its records needs: a tree of nodes, each saying how
//! the next bytes are encoded, with named types (records, enums, fixed) in a table so that recursive
//! schemas are finite, and each record field's JSON key written out already.

use std::collections::HashMap;

use apache_avro::schema::{InnerDecimalSchema, Name, NamespaceRef, UuidSchema};
use apache_avro::Schema;

/// The precision of a timestamp or time of day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Millis,
    Micros,
    Nanos,
}

/// How a uuid is written in the datum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UuidForm {
    String,
    /// 16 bytes, length-prefixed (what apache-avro reads a `fixed` uuid of older versions as).
    Bytes,
    /// A `fixed` of 16 bytes.
    Fixed,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Uuid(UuidForm),
    /// The unscaled value, big-endian two's complement: length-prefixed, or `fixed` of this size.
    Decimal {
        precision: u32,
        scale: u32,
        fixed: Option<usize>,
    },
    Date,
    Time(Unit),
    Timestamp {
        unit: Unit,
        local: bool,
    },
    /// `fixed` of 12: months, days, milliseconds, each a little-endian u32.
    Duration,
    Array(Box<Node>),
    Map(Box<Node>),
    Union(Union),
    /// A record, enum or fixed: `Plan::named`.
    Named(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Union {
    pub branches: Box<[Node]>,
    /// The name each branch is written under when a bare value would not say which branch it is (two
    /// branches of the same JSON kind); None when every branch's value speaks for itself.
    pub wrap: Option<Box<[String]>>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Named {
    Record(Record),
    Enum(Box<[String]>),
    Fixed(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    pub name: String,
    pub fields: Box<[Field]>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub name: String,
    /// `"name":` as JSON, escaped once here rather than per record.
    pub json_key: Box<[u8]>,
    pub node: Node,
    /// The schema's default for the field, as JSON (what a table column added for it defaults to).
    pub default: Option<serde_json::Value>,
}

/// A compiled writer schema.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub root: Node,
    pub named: Vec<Named>,
    /// The least number of bytes a value of each named type takes (a cycle counts 0).
    named_width: Vec<u64>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PlanError {
    #[error("the schema names {0} but does not define it")]
    Undefined(String),
    #[error("a duration must be a fixed of 12 bytes, not {0}")]
    DurationSize(usize),
    #[error("a uuid stored as fixed must have 16 bytes, not {0}")]
    UuidSize(usize),
}

/// What a value looks like in JSON: a union whose branches all look different is written bare.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum JsonKind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl Plan {
    pub fn new(schema: &Schema) -> Result<Plan, PlanError> {
        let mut builder = Builder::default();
        let root = builder.node(schema, None)?;
        let mut plan = Plan {
            root,
            named: builder
                .named
                .into_iter()
                .map(|n| n.unwrap_or(Named::Fixed(0)))
                .collect(),
            named_width: Vec::new(),
        };
        plan.named_width = (0..plan.named.len())
            .map(|i| plan.named_width_of(i, &mut Vec::new()))
            .collect();
        Ok(plan)
    }

    /// The least number of bytes a value of `node` takes: how many items a block's remaining bytes can
    /// hold at most.
    pub fn width(&self, node: &Node) -> u64 {
        match node {
            Node::Named(i) => self.named_width.get(*i).copied().unwrap_or(0),
            other => self.width_with(other, &mut Vec::new()),
        }
    }

    fn named_width_of(&self, i: usize, visiting: &mut Vec<usize>) -> u64 {
        if visiting.contains(&i) {
            return 0;
        }
        visiting.push(i);
        let w = match self.named.get(i) {
            Some(Named::Record(r)) => r.fields.iter().map(|f| self.width_with(&f.node, visiting)).sum(),
            Some(Named::Enum(_)) => 1,
            Some(Named::Fixed(size)) => *size as u64,
            None => 0,
        };
        visiting.pop();
        w
    }

    fn width_with(&self, node: &Node, visiting: &mut Vec<usize>) -> u64 {
        match node {
            Node::Null => 0,
            Node::Float => 4,
            Node::Double => 8,
            Node::Duration => 12,
            Node::Uuid(UuidForm::Fixed) => 16,
            Node::Decimal {
                fixed: Some(size), ..
            } => *size as u64,
            Node::Named(i) => self.named_width_of(*i, visiting),
            // A varint, a length, a branch index, a collection's closing count: at least a byte.
            _ => 1,
        }
    }
}

/// Builds nodes, registering named types by their full name as it meets them.
#[derive(Default)]
struct Builder {
    named: Vec<Option<Named>>,
    by_name: HashMap<String, usize>,
    /// The JSON kind of each named type (known before its definition is complete).
    kinds: Vec<JsonKind>,
}

impl Builder {
    fn node(&mut self, schema: &Schema, ns: NamespaceRef<'_>) -> Result<Node, PlanError> {
        Ok(match schema {
            Schema::Null => Node::Null,
            Schema::Boolean => Node::Boolean,
            Schema::Int => Node::Int,
            Schema::Long => Node::Long,
            Schema::Float => Node::Float,
            Schema::Double => Node::Double,
            // apache-avro's own `big-decimal` (not in the Avro specification): its bytes, as bytes.
            Schema::Bytes | Schema::BigDecimal => Node::Bytes,
            Schema::String => Node::String,
            Schema::Uuid(UuidSchema::String) => Node::Uuid(UuidForm::String),
            Schema::Uuid(UuidSchema::Bytes) => Node::Uuid(UuidForm::Bytes),
            Schema::Uuid(UuidSchema::Fixed(f)) if f.size == 16 => Node::Uuid(UuidForm::Fixed),
            Schema::Uuid(UuidSchema::Fixed(f)) => return Err(PlanError::UuidSize(f.size)),
            Schema::Decimal(d) => Node::Decimal {
                precision: d.precision as u32,
                scale: d.scale as u32,
                fixed: match &d.inner {
                    InnerDecimalSchema::Bytes => None,
                    InnerDecimalSchema::Fixed(f) => Some(f.size),
                },
            },
            Schema::Date => Node::Date,
            Schema::TimeMillis => Node::Time(Unit::Millis),
            Schema::TimeMicros => Node::Time(Unit::Micros),
            Schema::TimestampMillis => Node::Timestamp {
                unit: Unit::Millis,
                local: false,
            },
            Schema::TimestampMicros => Node::Timestamp {
                unit: Unit::Micros,
                local: false,
            },
            Schema::TimestampNanos => Node::Timestamp {
                unit: Unit::Nanos,
                local: false,
            },
            Schema::LocalTimestampMillis => Node::Timestamp {
                unit: Unit::Millis,
                local: true,
            },
            Schema::LocalTimestampMicros => Node::Timestamp {
                unit: Unit::Micros,
                local: true,
            },
            Schema::LocalTimestampNanos => Node::Timestamp {
                unit: Unit::Nanos,
                local: true,
            },
            Schema::Duration(f) if f.size == 12 => Node::Duration,
            Schema::Duration(f) => return Err(PlanError::DurationSize(f.size)),
            Schema::Array(a) => Node::Array(Box::new(self.node(&a.items, ns)?)),
            Schema::Map(m) => Node::Map(Box::new(self.node(&m.types, ns)?)),
            Schema::Union(u) => {
                let branches = u
                    .variants()
                    .iter()
                    .map(|b| self.node(b, ns))
                    .collect::<Result<Box<[Node]>, _>>()?;
                let wrap = self
                    .ambiguous(&branches)
                    .then(|| u.variants().iter().map(|b| branch_name(b, ns)).collect());
                Node::Union(Union { branches, wrap })
            }
            Schema::Record(r) => {
                let index = self.declare(&r.name, ns, JsonKind::Object);
                let inner = r.name.namespace().or(ns);
                let mut fields = Vec::with_capacity(r.fields.len());
                for f in &r.fields {
                    let node = self.node(&f.schema, inner)?;
                    fields.push(Field {
                        json_key: json_key(&f.name),
                        name: f.name.clone(),
                        node,
                        default: f.default.clone(),
                    });
                }
                let record = Record {
                    name: r.name.fullname(ns),
                    fields: fields.into(),
                };
                self.named[index] = Some(Named::Record(record));
                Node::Named(index)
            }
            Schema::Enum(e) => {
                let index = self.declare(&e.name, ns, JsonKind::String);
                self.named[index] = Some(Named::Enum(e.symbols.clone().into()));
                Node::Named(index)
            }
            Schema::Fixed(f) => {
                let index = self.declare(&f.name, ns, JsonKind::String);
                self.named[index] = Some(Named::Fixed(f.size));
                Node::Named(index)
            }
            Schema::Ref { name } => {
                let full = name.fullname(ns);
                match self.by_name.get(&full) {
                    Some(i) => Node::Named(*i),
                    None => return Err(PlanError::Undefined(full)),
                }
            }
        })
    }

    fn declare(&mut self, name: &Name, ns: NamespaceRef<'_>, kind: JsonKind) -> usize {
        let index = self.named.len();
        self.named.push(None);
        self.kinds.push(kind);
        self.by_name.insert(name.fullname(ns), index);
        index
    }

    /// Whether two branches of a union would look alike written bare.
    fn ambiguous(&self, branches: &[Node]) -> bool {
        let kinds: Vec<JsonKind> = branches.iter().map(|b| self.kind(b)).collect();
        kinds.iter().enumerate().any(|(i, k)| kinds[..i].contains(k))
    }

    fn kind(&self, node: &Node) -> JsonKind {
        match node {
            Node::Null => JsonKind::Null,
            Node::Boolean => JsonKind::Boolean,
            Node::Int | Node::Long | Node::Float | Node::Double => JsonKind::Number,
            Node::Array(_) => JsonKind::Array,
            Node::Map(_) | Node::Duration => JsonKind::Object,
            Node::Named(i) => self.kinds.get(*i).copied().unwrap_or(JsonKind::Object),
            Node::Union(_) => JsonKind::Null,
            _ => JsonKind::String,
        }
    }
}

/// The name a union branch is written under (Avro's JSON encoding's names: the type's, or a named
/// type's full name).
fn branch_name(schema: &Schema, ns: NamespaceRef<'_>) -> String {
    match schema {
        Schema::Record(r) => r.name.fullname(ns),
        Schema::Enum(e) => e.name.fullname(ns),
        Schema::Fixed(f) => f.name.fullname(ns),
        // Named types under a logical type keep their own name: two of them (a duration and a decimal
        // on fixed) in one union would otherwise both be written as "fixed" and read back as the first.
        Schema::Duration(f) => f.name.fullname(ns),
        Schema::Decimal(d) => match &d.inner {
            apache_avro::schema::InnerDecimalSchema::Fixed(f) => f.name.fullname(ns),
            apache_avro::schema::InnerDecimalSchema::Bytes => "bytes".into(),
        },
        Schema::Uuid(apache_avro::schema::UuidSchema::Fixed(f)) => f.name.fullname(ns),
        Schema::Ref { name } => name.fullname(ns),
        Schema::Array(_) => "array".into(),
        Schema::Map(_) => "map".into(),
        Schema::Union(_) => "union".into(),
        other => {
            // Primitives and logical types: the type's JSON name (`"long"`, `"string"`…).
            let text = serde_json::to_value(other).ok();
            let name = text
                .as_ref()
                .and_then(|v| v.as_str().or_else(|| v.get("type")?.as_str()));
            name.unwrap_or("value").to_owned()
        }
    }
}

fn json_key(name: &str) -> Box<[u8]> {
    let mut out = Vec::with_capacity(name.len() + 3);
    super::json::string(&mut out, name);
    out.push(b':');
    out.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(text: &str) -> Plan {
        let schema = Schema::parse_str(text).unwrap_or_else(|e| panic!("{e}"));
        Plan::new(&schema).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn a_recursive_record_is_one_named_type_referred_to() {
        let p = plan(r#"{"type":"record","name":"Node","fields":[{"name":"next","type":["null","Node"]}]}"#);
        assert_eq!(p.root, Node::Named(0));
        let Named::Record(r) = &p.named[0] else {
            panic!("{:?}", p.named)
        };
        assert_eq!(&*r.fields[0].json_key, b"\"next\":");
        let Node::Union(u) = &r.fields[0].node else {
            panic!("{r:?}")
        };
        assert_eq!(&*u.branches, &[Node::Null, Node::Named(0)]);
        assert_eq!(u.wrap, None, "null and an object look different");
        assert_eq!(p.width(&p.root), 1, "a union index at least");
    }

    #[test]
    fn a_union_whose_branches_look_alike_is_written_with_their_names() {
        let p = plan(r#"["null","int","long",{"type":"enum","name":"E","symbols":["A"]},"string"]"#);
        let Node::Union(u) = &p.root else {
            panic!("{:?}", p.root)
        };
        let wrap: Vec<&str> = u.wrap.iter().flat_map(|w| w.iter().map(String::as_str)).collect();
        assert_eq!(wrap, ["null", "int", "long", "E", "string"]);
        // Named types under a logical type are written under their own names (found by fuzzing: a
        // duration and a decimal on fixed were both "fixed", read back as the first).
        let p = plan(
            r#"[{"type":"fixed","name":"Dur1","size":12,"logicalType":"duration"},
                {"type":"fixed","name":"D2","size":3,"logicalType":"decimal","precision":10,"scale":0},
                {"type":"fixed","name":"U","size":16,"logicalType":"uuid"},
                {"type":"record","name":"R3","fields":[{"name":"f1","type":"int"}]}]"#,
        );
        let Node::Union(u) = &p.root else {
            panic!("{:?}", p.root)
        };
        let wrap: Vec<&str> = u.wrap.iter().flat_map(|w| w.iter().map(String::as_str)).collect();
        assert_eq!(wrap, ["Dur1", "D2", "U", "R3"]);
        let p = plan(r#"["null","long","string",{"type":"array","items":"int"}]"#);
        let Node::Union(u) = &p.root else {
            panic!("{:?}", p.root)
        };
        assert_eq!(u.wrap, None);
    }

    #[test]
    fn widths_bound_what_a_block_can_claim() {
        let p = plan(
            r#"{"type":"record","name":"R","fields":[
                {"name":"a","type":"null"},{"name":"b","type":"double"},
                {"name":"c","type":{"type":"fixed","name":"F","size":5}},{"name":"d","type":"string"}]}"#,
        );
        assert_eq!(p.width(&p.root), 8 + 5 + 1);
        assert_eq!(p.width(&Node::Null), 0);
    }
}
