//! ClickHouse, the warehouse sink, in one folder: its actor (`writer.rs`, the ClickhouseWriter), the
//! client (`client.rs`), and the tables and rows that follow a writer schema (`types.rs`, `row.rs`,
//! `table.rs`: pure, so the fuzz target builds them without the runtime; `follow.rs` runs their
//! statements; `insert.rs`, `tenants.rs`, `plans.rs`); on a cluster of them, `cluster.rs` (what a
//! table is there) with `ddl.rs` (statements run on every node) and `shards.rs` (where rows go).

#[cfg(feature = "runtime")]
mod client;
pub mod cluster;
#[cfg(feature = "runtime")]
pub mod ddl;
#[cfg(feature = "runtime")]
pub mod follow;
#[cfg(feature = "runtime")]
pub mod insert;
#[cfg(feature = "runtime")]
pub mod plans;
pub mod review;
pub mod route;
pub mod row;
#[cfg(feature = "runtime")]
pub mod shards;
pub mod table;
#[cfg(feature = "runtime")]
pub mod tenants;
pub mod types;
#[cfg(feature = "runtime")]
pub mod writer;

#[cfg(feature = "runtime")]
pub use client::{client, server_client, shard_nodes, Node};
