//! Why a record goes to the dead-letter topic: the letter's `nrt.error.kind` header, and for what the
//! reader could not decode the label of `nrt_decode_errors_total{kind}`. One enum, so a kind is named
//! once and every one of them is counted (from zero) and documented.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoisonKind {
    /// Shorter than the Confluent framing.
    TooShort,
    /// Not Confluent framing (its first byte is not 0).
    BadMagic,
    /// A schema id the registry does not know, in a run too short to mean the registry is wrong.
    UnknownSchema,
    /// The Avro datum does not decode along its writer schema.
    Corrupt,
    /// It would cost more to decode than its bytes justify.
    BeyondLimits,
    /// Its writer schema cannot be read into the table (a field retyped).
    SchemaResolution,
    /// The events' `created_at` outside what the table holds (the name it has always had).
    CreatedAtOutOfRange,
    /// Another time, a date or a decimal the column cannot hold.
    OutOfRange,
    /// A null in a column that takes none.
    NullNotAllowed,
    /// A table per tenant: the record names none.
    NoRoute,
    /// The producer's side: a polled record that does not fit the producer's schema.
    InvalidRecord,
    /// The Batcher's side: a row ClickHouse refuses (its table's own rules).
    RefusedByClickhouse,
}

impl PoisonKind {
    /// What the reader counts in `nrt_decode_errors_total{kind}`.
    pub const DECODED: [PoisonKind; 10] = [
        PoisonKind::TooShort,
        PoisonKind::BadMagic,
        PoisonKind::UnknownSchema,
        PoisonKind::Corrupt,
        PoisonKind::BeyondLimits,
        PoisonKind::SchemaResolution,
        PoisonKind::CreatedAtOutOfRange,
        PoisonKind::OutOfRange,
        PoisonKind::NullNotAllowed,
        PoisonKind::NoRoute,
    ];

    pub fn label(self) -> &'static str {
        match self {
            PoisonKind::TooShort => "too_short",
            PoisonKind::BadMagic => "bad_magic",
            PoisonKind::UnknownSchema => "unknown_schema",
            PoisonKind::Corrupt => "corrupt",
            PoisonKind::BeyondLimits => "beyond_limits",
            PoisonKind::SchemaResolution => "schema_resolution",
            PoisonKind::CreatedAtOutOfRange => "created_at_out_of_range",
            PoisonKind::OutOfRange => "out_of_range",
            PoisonKind::NullNotAllowed => "null_not_allowed",
            PoisonKind::NoRoute => "no_route",
            PoisonKind::InvalidRecord => "invalid_record",
            PoisonKind::RefusedByClickhouse => "refused_by_clickhouse",
        }
    }
}

impl std::fmt::Display for PoisonKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.label())
    }
}
