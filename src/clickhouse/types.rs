//! ClickHouse column types: what a writer schema's field becomes (the documented mapping, docs/data.md
//! "The warehouse's columns"), what an existing column is (its type as `system.columns` says it), and
//! which existing columns still take a field's values.

use std::fmt;

use crate::avro::plan::{Named, Node, Plan, Unit};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Type {
    /// Current releases' `Bool` (one byte, like `UInt8`).
    Bool,
    Int {
        bits: u8,
        signed: bool,
    },
    Float32,
    Float64,
    String,
    FixedString(usize),
    Uuid,
    Date,
    Date32,
    DateTime,
    DateTime64(u32),
    Decimal {
        precision: u32,
        scale: u32,
    },
    Nullable(Box<Type>),
    Array(Box<Type>),
    LowCardinality(Box<Type>),
    /// Anything else (Enum8, Map, Tuple, JSON…): nrt writes into none of them.
    Other(String),
}

/// What the server can hold, which decides a few mappings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    /// DateTime64 and Date32 (ClickHouse 20.1 / 21.9 on; 18.16 has neither).
    pub datetime64: bool,
    /// `ALTER … ON CLUSTER` of a Distributed table whose shards replicate internally (20.3 on).
    pub distributed_alter: bool,
}

impl Server {
    /// From `SELECT version()`: `18.16.1`, `26.3.1.1`.
    pub fn of_version(version: &str) -> Server {
        let mut parts = version.trim().split('.').map(|p| p.parse::<u32>().unwrap_or(0));
        let (major, minor) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
        Server {
            datetime64: (major, minor) >= (21, 9),
            distributed_alter: (major, minor) >= (20, 3),
        }
    }

    pub const LEGACY: Server = Server {
        datetime64: false,
        distributed_alter: false,
    };
    pub const CURRENT: Server = Server {
        datetime64: true,
        distributed_alter: true,
    };
}

/// The column a field wants: its type, and on a server without DateTime64 the column beside a
/// timestamp's `DateTime` holding the exact count (`created_at` + `created_at_ms`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wanted {
    pub ty: Type,
    pub exact: Option<(String, Type)>,
}

/// The suffix of the column holding a timestamp's exact count beside its `DateTime`.
pub fn exact_suffix(unit: Unit) -> &'static str {
    match unit {
        Unit::Millis => "_ms",
        Unit::Micros => "_us",
        Unit::Nanos => "_ns",
    }
}

/// The column field `name` of type `node` becomes; None for a field that is always null.
pub fn wanted(name: &str, node: &Node, plan: &Plan, server: Server) -> Option<Wanted> {
    if let Node::Timestamp { unit, .. } = node {
        if !server.datetime64 {
            let exact = (format!("{name}{}", exact_suffix(*unit)), int(64));
            return Some(Wanted {
                ty: Type::DateTime,
                exact: Some(exact),
            });
        }
    }
    if let Node::Union(u) = node {
        let values: Vec<&Node> = u.branches.iter().filter(|b| **b != Node::Null).collect();
        let nullable = values.len() < u.branches.len();
        let inner = match values.as_slice() {
            [] => return None,
            [one] => wanted(name, one, plan, server)?,
            _ => plain(Type::String),
        };
        return Some(match (nullable, inner) {
            (false, inner) => inner,
            // An array cannot be Nullable: a null one is written as its JSON, in a Nullable(String).
            (
                true,
                Wanted {
                    ty: Type::Array(_), ..
                },
            ) => plain(nullable_of(Type::String)),
            (true, Wanted { ty, exact }) => Wanted {
                ty: nullable_of(ty),
                exact: exact.map(|(n, t)| (n, nullable_of(t))),
            },
        });
    }
    Some(plain(scalar(node, plan, server)?))
}

fn plain(ty: Type) -> Wanted {
    Wanted { ty, exact: None }
}

fn int(bits: u8) -> Type {
    Type::Int { bits, signed: true }
}

fn nullable_of(ty: Type) -> Type {
    match ty {
        Type::Nullable(_) => ty,
        ty => Type::Nullable(Box::new(ty)),
    }
}

/// The type of a value that is not a union (a union inside a collection is its JSON: String).
fn scalar(node: &Node, plan: &Plan, server: Server) -> Option<Type> {
    Some(match node {
        Node::Null => return None,
        Node::Boolean => Type::Int {
            bits: 8,
            signed: false,
        },
        Node::Int => int(32),
        Node::Long => int(64),
        Node::Float => Type::Float32,
        Node::Double => Type::Float64,
        Node::Bytes | Node::String => Type::String,
        Node::Uuid(_) => Type::Uuid,
        Node::Decimal { precision, scale, .. } if *precision <= 38 => Type::Decimal {
            precision: *precision,
            scale: *scale,
        },
        Node::Date if server.datetime64 => Type::Date32,
        Node::Date => Type::Date,
        Node::Time(Unit::Millis) => int(32),
        Node::Time(_) => int(64),
        Node::Timestamp { unit, .. } if server.datetime64 => Type::DateTime64(digits(*unit)),
        Node::Timestamp { .. } => int(64),
        Node::Array(item) => match scalar(item, plan, server) {
            Some(
                t @ (Type::Int { .. }
                | Type::Float32
                | Type::Float64
                | Type::String
                | Type::Uuid
                | Type::Decimal { .. }
                | Type::Date
                | Type::Date32
                | Type::DateTime64(_)),
            ) => Type::Array(Box::new(t)),
            _ => Type::String,
        },
        Node::Named(i) => match plan.named.get(*i) {
            Some(Named::Fixed(size)) => Type::FixedString(*size),
            _ => Type::String,
        },
        // Decimals wider than 38 digits, durations, maps, unions inside collections: their JSON.
        _ => Type::String,
    })
}

/// Decimal digits of a unit: DateTime64's precision.
pub fn digits(unit: Unit) -> u32 {
    match unit {
        Unit::Millis => 3,
        Unit::Micros => 6,
        Unit::Nanos => 9,
    }
}

/// Whether an existing column of type `have` takes the values of a field that wants `want`: the same
/// type, or one that holds every value of it (a wider integer, float, decimal or time precision, a
/// Nullable, LowCardinality, a `DateTime` where `DateTime64` is wanted — the exact count goes to its
/// `_ms` column when the table has one — or a `String`, which holds any value as its text).
pub fn takes(have: &Type, want: &Type) -> bool {
    use Type::*;
    match (have, want) {
        _ if have == want => true,
        (LowCardinality(h), w) => takes(h, w),
        (Nullable(h), Nullable(w)) => takes(h, w),
        (Nullable(h), w) => takes(h, w),
        (
            Int {
                bits: h,
                signed: true,
            },
            Int { bits: w, signed },
        ) => h > w || (h == w && *signed),
        (
            Int {
                bits: h,
                signed: false,
            },
            Int {
                bits: w,
                signed: false,
            },
        ) => h >= w,
        (
            Bool,
            Int {
                bits: 8,
                signed: false,
            },
        ) => true,
        (Float64, Float32 | Int { .. }) => true,
        (Float32, Int { bits: 8 | 16, .. }) => true,
        (
            Decimal {
                precision: hp,
                scale: hs,
            },
            Decimal {
                precision: wp,
                scale: ws,
            },
        ) => hs == ws && hp >= wp,
        (Date32, Date) | (String, FixedString(_)) => true,
        (DateTime64(h), DateTime64(w)) => h >= w,
        (DateTime, DateTime64(_)) => true,
        (Array(h), Array(w)) => takes(h, w),
        // Any value as its text (the lake's JSON of it): what resolves a field retyped beyond widening.
        (String, w) => !matches!(w, Nullable(_)),
        _ => false,
    }
}

impl Type {
    /// Parses a type as `system.columns` and `DESCRIBE` write it.
    pub fn parse(text: &str) -> Type {
        let text = text.trim();
        let (head, args) = match text.find('(') {
            Some(i) if text.ends_with(')') => (&text[..i], Some(&text[i + 1..text.len() - 1])),
            _ => (text, None),
        };
        let other = || Type::Other(text.to_owned());
        let num = |s: &str| s.trim().parse::<u32>().ok();
        let first = args.map(|a| a.split(',').next().unwrap_or(a));
        match (head, args) {
            ("Bool", None) => Type::Bool,
            ("UInt8", None) => Type::Int {
                bits: 8,
                signed: false,
            },
            ("UInt16", None) => Type::Int {
                bits: 16,
                signed: false,
            },
            ("UInt32", None) => Type::Int {
                bits: 32,
                signed: false,
            },
            ("UInt64", None) => Type::Int {
                bits: 64,
                signed: false,
            },
            ("Int8", None) => int(8),
            ("Int16", None) => int(16),
            ("Int32", None) => int(32),
            ("Int64", None) => int(64),
            ("Float32", None) => Type::Float32,
            ("Float64", None) => Type::Float64,
            ("String", None) => Type::String,
            ("UUID", None) => Type::Uuid,
            ("Date", None) => Type::Date,
            ("Date32", None) => Type::Date32,
            // A time zone argument changes how it is shown, not what it holds.
            ("DateTime", _) => Type::DateTime,
            ("DateTime64", Some(_)) => first.and_then(num).map_or_else(other, Type::DateTime64),
            ("FixedString", Some(n)) => n.trim().parse().map_or_else(|_| other(), Type::FixedString),
            ("Decimal", Some(a)) => {
                let mut ps = a.split(',').map(num);
                match (ps.next().flatten(), ps.next().flatten(), ps.next()) {
                    (Some(precision), Some(scale), None) => Type::Decimal { precision, scale },
                    _ => other(),
                }
            }
            ("Decimal32" | "Decimal64" | "Decimal128", Some(s)) => match num(s) {
                Some(scale) => Type::Decimal {
                    precision: match head {
                        "Decimal32" => 9,
                        "Decimal64" => 18,
                        _ => 38,
                    },
                    scale,
                },
                None => other(),
            },
            ("Nullable", Some(inner)) => Type::Nullable(Box::new(Type::parse(inner))),
            ("Array", Some(inner)) => Type::Array(Box::new(Type::parse(inner))),
            ("LowCardinality", Some(inner)) => Type::LowCardinality(Box::new(Type::parse(inner))),
            _ => other(),
        }
    }

    /// The type without Nullable and LowCardinality around it.
    pub fn bare(&self) -> &Type {
        match self {
            Type::Nullable(t) | Type::LowCardinality(t) => t.bare(),
            t => t,
        }
    }

    pub fn is_nullable(&self) -> bool {
        match self {
            Type::Nullable(_) => true,
            Type::LowCardinality(t) => t.is_nullable(),
            _ => false,
        }
    }
}

impl fmt::Display for Type {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Type::Bool => f.write_str("Bool"),
            Type::Int { bits, signed } => write!(f, "{}Int{bits}", if *signed { "" } else { "U" }),
            Type::Float32 => f.write_str("Float32"),
            Type::Float64 => f.write_str("Float64"),
            Type::String => f.write_str("String"),
            Type::FixedString(n) => write!(f, "FixedString({n})"),
            Type::Uuid => f.write_str("UUID"),
            Type::Date => f.write_str("Date"),
            Type::Date32 => f.write_str("Date32"),
            Type::DateTime => f.write_str("DateTime"),
            Type::DateTime64(p) => write!(f, "DateTime64({p})"),
            Type::Decimal { precision, scale } => write!(f, "Decimal({precision}, {scale})"),
            Type::Nullable(t) => write!(f, "Nullable({t})"),
            Type::Array(t) => write!(f, "Array({t})"),
            Type::LowCardinality(t) => write!(f, "LowCardinality({t})"),
            Type::Other(text) => f.write_str(text),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn types_parse_as_the_server_writes_them_and_print_back() {
        for text in [
            "UInt8",
            "Int64",
            "Decimal(18, 2)",
            "Nullable(String)",
            "Array(Int32)",
            "DateTime64(3)",
            "FixedString(16)",
            "LowCardinality(Nullable(String))",
            "UUID",
            "Date32",
        ] {
            assert_eq!(Type::parse(text).to_string(), text);
        }
        assert_eq!(Type::parse("DateTime('UTC')"), Type::DateTime);
        assert_eq!(Type::parse("DateTime64(6, 'UTC')"), Type::DateTime64(6));
        assert_eq!(
            Type::parse("Decimal64(4)"),
            Type::Decimal {
                precision: 18,
                scale: 4
            }
        );
        assert!(matches!(Type::parse("Enum8('a' = 1)"), Type::Other(_)));
        assert!(matches!(Type::parse("Decimal(18)"), Type::Other(_)));
    }

    #[test]
    fn servers_are_told_apart_by_version() {
        assert_eq!(Server::of_version("18.16.1"), Server::LEGACY);
        assert_eq!(Server::of_version("26.3.1.1"), Server::CURRENT);
        assert_eq!(Server::of_version("nonsense"), Server::LEGACY);
    }

    #[test]
    fn widening_is_taken_and_narrowing_or_retyping_is_not() {
        let p = |t| Type::parse(t);
        assert!(takes(&p("Int64"), &p("Int32")));
        assert!(!takes(&p("Int32"), &p("Int64")));
        assert!(takes(&p("Nullable(Float64)"), &p("Float32")));
        assert!(
            !takes(&p("Float32"), &p("Nullable(Float32)")),
            "a null has nowhere to go"
        );
        assert!(takes(&p("Decimal(20, 2)"), &p("Decimal(18, 2)")));
        assert!(
            !takes(&p("Decimal(18, 3)"), &p("Decimal(18, 2)")),
            "another scale is another value"
        );
        assert!(
            !takes(&p("Int64"), &p("String")),
            "string → int is not a widening"
        );
        assert!(takes(&p("String"), &p("Int64")), "any value as its text");
        assert!(
            !takes(&p("String"), &p("Nullable(Int64)")),
            "a null has nowhere to go"
        );
        assert!(takes(&p("DateTime"), &p("DateTime64(3)")));
        assert!(!takes(&p("DateTime64(3)"), &p("DateTime64(6)")));
        assert!(takes(&p("LowCardinality(String)"), &p("String")));
    }
}
