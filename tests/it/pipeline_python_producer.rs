//! An independent producer (Confluent's Python client with its AvroSerializer, writer schema = ours
//! plus one optional field) feeds the topic; `nrt run --role consumer` must land every event, and the
//! new field with it: in every lake line that has it, and in a column added to the table once.
#![cfg(feature = "integration")]

use crate::common;

use std::collections::HashSet;
use std::time::Duration;

use common::{Names, NrtProcess};

const EVENTS: usize = 2_000;

#[tokio::test(flavor = "multi_thread")]
async fn consumer_lands_events_of_an_evolved_writer_schema() {
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("pyprod");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produced = common::python_producer("produce_evolved.py", &cfg, &names.topic, EVENTS);
    let ids = common::strings(&produced["ids"]);
    assert_eq!(ids.len(), EVENTS);

    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    common::wait_for(90, "every Python-produced event in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == EVENTS as u64).then_some(())
    })
    .await;
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let landed: Vec<String> = client
        .query(&format!("SELECT toString(event_id) FROM {} FINAL", names.table))
        .fetch_all()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(landed.into_iter().collect::<HashSet<_>>(), ids);
    // Money exact through fastavro's minimal decimal encoding: sum of i*7 cents over odd i.
    let cents: i64 = (0..EVENTS as i64).filter(|i| i % 2 == 1).map(|i| i * 7).sum();
    let sum: String = client
        .query(&format!(
            "SELECT toString(sum(amount)) FROM {} FINAL",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(sum, format!("{}.{:02}", cents / 100, cents % 100));
    let lines = common::wait_for(30, "every event in MinIO", || async {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        (lines.len() >= EVENTS).then_some(lines)
    })
    .await;
    assert_eq!(lines.len(), EVENTS);
    assert_eq!(
        common::metric(&consumer.url, "nrt_events_consumed_total").await,
        Some(EVENTS as f64)
    );
    // The producer's new field (`channel`: "mobile" unless i % 3 == 0, then null) is not dropped.
    let mobile = (0..EVENTS).filter(|i| i % 3 != 0).count() as u64;
    let in_lines = lines
        .iter()
        .filter(|(_, l)| l.contains(r#""channel":"mobile""#))
        .count() as u64;
    assert_eq!(in_lines, mobile, "lake lines carrying the new field");
    let in_rows: u64 = client
        .query(&format!(
            "SELECT count() FROM {} FINAL WHERE channel = 'mobile'",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("the new field has no column: {e}"));
    assert_eq!(in_rows, mobile, "rows carrying the new field");
    let added = common::schema_changes(&client, &names.table).await;
    assert_eq!(added.len(), 1, "one column added, once: {added:?}");
    assert!(
        added[0].contains("ADD COLUMN `channel` Nullable(String)"),
        "{added:?}"
    );
    println!(
        "python producer, evolved schema: {EVENTS} events landed once; the new field in {in_lines} lines and \
         {in_rows} rows; {}",
        added[0]
    );
}

/// A topic whose schema has every Avro type and logical type (tests/fixtures/every_type.avsc), written
/// by Confluent's client: the table is created from it, every lake line is the documented mapping of
/// what fastavro decodes from the same bytes, and every value in ClickHouse is exact.
#[tokio::test(flavor = "multi_thread")]
async fn every_type_lands_exactly_in_the_lake_and_the_table_made_for_it() {
    const RECORDS: usize = 1_000;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("everytype");
    // One partition: offsets are the order produced.
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 1, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let schema = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/every_type.avsc");
    let n = RECORDS.to_string();
    let produced = common::python(
        "produce_every_type.py",
        &[
            &cfg.kafka.brokers,
            &cfg.registry.url,
            &names.topic,
            schema,
            &n,
            "11",
        ],
    );
    let expected_lines = produced["lines"].as_array().cloned().unwrap_or_default();
    let expected_rows = produced["clickhouse"].as_array().cloned().unwrap_or_default();
    assert_eq!((expected_lines.len(), expected_rows.len()), (RECORDS, RECORDS));

    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    let lines = common::landed(&cfg, &names, RECORDS as u64).await;
    assert_eq!(lines.len(), RECORDS, "lake lines");
    let mut by_id = std::collections::BTreeMap::new();
    for (key, line) in &lines {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{key}: {e}: {line}"));
        by_id.insert(v["id"].as_i64().unwrap_or(-1), v);
    }
    for (i, want) in expected_lines.iter().enumerate() {
        let mut got = by_id
            .remove(&(i as i64))
            .unwrap_or_else(|| panic!("no line of record {i}"));
        let mut want = want.clone();
        // A float is written as the shortest text of the float (not of the double fastavro widens it to).
        let ratio = |v: &mut serde_json::Value| {
            v.as_object_mut()
                .and_then(|o| o.remove("ratio"))
                .and_then(|r| r.as_f64())
        };
        let (got_ratio, want_ratio) = (ratio(&mut got), ratio(&mut want));
        assert_eq!(
            got_ratio.map(|r| r as f32),
            want_ratio.map(|r| r as f32),
            "record {i}: ratio"
        );
        assert_eq!(got, want, "record {i}: the lake line");
    }

    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let select = [
        ("id", "toString(id)"),
        ("flag", "toString(flag)"),
        ("small", "toString(small)"),
        ("big", "toString(big)"),
        ("blob", "hex(blob)"),
        ("label", "label"),
        ("colour", "colour"),
        ("tags", "toString(tags)"),
        ("code", "hex(code)"),
        ("price", "toString(price)"),
        ("price_fixed", "toString(price_fixed)"),
        ("uid", "toString(uid)"),
        ("day", "toString(day)"),
        ("t_ms", "toString(t_ms)"),
        ("at_ms", "toString(toUnixTimestamp(at_ms))"),
        ("at_ms_ms", "toString(at_ms_ms)"),
        ("at_us_us", "toString(at_us_us)"),
        ("at_ns_ns", "toString(at_ns_ns)"),
        ("local_ns_ns", "toString(local_ns_ns)"),
        ("maybe_at_ms", "ifNull(toString(maybe_at_ms), 'NULL')"),
        ("either", "either"),
        ("inner", "inner"),
        ("attrs", "attrs"),
        ("span", "span"),
    ];
    // Aliases apart from the column names (18.16 calls `toString(id) AS id` a cyclic alias).
    let exprs: Vec<String> = select
        .iter()
        .map(|(name, e)| format!("{e} AS x_{name}"))
        .collect();
    let sql = format!(
        "SELECT {} FROM {} FINAL ORDER BY id",
        exprs.join(", "),
        names.table
    );
    let body = client
        .query(&sql)
        .fetch_bytes("JSONEachRow")
        .unwrap_or_else(|e| panic!("{e}"))
        .collect()
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let rows: Vec<serde_json::Value> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap_or_else(|e| panic!("{e}")))
        .collect();
    assert_eq!(rows.len(), RECORDS, "rows FINAL");
    for (i, (got, want)) in rows.iter().zip(&expected_rows).enumerate() {
        for (name, _) in select {
            let have = &got[format!("x_{name}")];
            // Columns holding the value's JSON are compared as JSON.
            let have = match (name, have.as_str()) {
                ("either" | "inner" | "attrs" | "span", Some(text)) => {
                    serde_json::from_str(text).unwrap_or_else(|e| panic!("record {i}: {name}: {e}: {text}"))
                }
                _ => have.clone(),
            };
            assert_eq!(have, want[name], "record {i}: column {name}");
        }
    }
    let columns: u64 = client
        .query(&format!(
            "SELECT count() FROM system.columns WHERE database = '{}' AND table = '{}'",
            common::TEST_DATABASE,
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        common::topic_records(&cfg, &format!("{}.dlq", names.topic)),
        0,
        "dead letters"
    );
    assert_eq!(
        common::metric(&consumer.url, "nrt_events_consumed_total").await,
        Some(RECORDS as f64)
    );
    println!(
        "every type: {RECORDS} records of schema {} (Confluent's Python producer) landed; every lake line equal \
         to fastavro's decoding mapped as documented; {} columns created on ClickHouse 18.16, every value \
         exact",
        produced["schema_id"], columns
    );
}

/// Three record types in one topic, as the record subject strategies allow: Confluent's client
/// writes orders and payments under `topic_record` (subjects `<topic>-shop.v1.Order`, …), nrt's own
/// producer writes refunds with `NRT_SUBJECT_STRATEGY=topic-record` (`<topic>-shop.v1.Refund`, no
/// `<topic>-value`), then Confluent's client writes more under `record` (`shop.v1.Order`) while nrt
/// runs. One consumer lands every record of every type once: one table with the columns of all three
/// (each row its own type's values), and lake lines holding exactly their own record's fields.
#[tokio::test(flavor = "multi_thread")]
async fn three_record_types_in_one_topic_under_record_subject_strategies() {
    const FIRST: u64 = 600;
    const SECOND: u64 = 400;
    const REFUNDS: u64 = 500;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new("shop");
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produce = |start: u64, n: u64, strategy: &str| {
        let (start, n) = (start.to_string(), n.to_string());
        let args = [
            cfg.kafka.brokers.as_str(),
            &cfg.registry.url,
            &names.topic,
            &n,
            strategy,
            &start,
        ];
        common::python("produce_two_records.py", &args)
    };
    produce(0, FIRST, "topic_record");

    let refund = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/refund.avsc");
    let mock = common::spawn_mock_with(23, REFUNDS, 1_767_225_600_000, None, &["--schema", refund]);
    let mut env = names.env(&mock.url);
    env.extend([
        ("NRT_SCHEMA_FILE", refund),
        ("NRT_SUBJECT_STRATEGY", "topic-record"),
    ]);
    let pipeline = NrtProcess::spawn(&["run", "--role", "all"], &env);
    produce(FIRST, SECOND, "record");

    let (orders, total) = (FIRST + SECOND, 2 * (FIRST + SECOND) + REFUNDS);
    let lines = common::landed(&cfg, &names, total).await;
    assert_eq!(lines.len() as u64, total, "lake lines");
    let distinct: HashSet<&str> = lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(distinct.len() as u64, total, "every line once");
    let with = |field: &str| {
        lines
            .iter()
            .filter(|(_, l)| l.contains(&format!("\"{field}\":")))
            .count() as u64
    };
    assert_eq!(
        (with("customer"), with("payment_id"), with("refund_id")),
        (orders, orders, REFUNDS),
        "orders, payments and refunds, each line with its own record's fields"
    );
    assert_eq!(
        with("paid_at") + with("placed_at") + with("refunded_at"),
        total,
        "one time field per line"
    );

    common::wait_for(90, "every record in ClickHouse", || async {
        (common::clickhouse_count(&cfg, &names.table, true).await? == total).then_some(())
    })
    .await;
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    let (o, p, r): (u64, u64, u64) = client
        .query(&format!(
            "SELECT countIf(customer != ''), uniqExactIf(payment_id, payment_id != ''), \
             countIf(refunded_at != 0) FROM {} FINAL",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((o, p, r), (orders, orders, REFUNDS), "rows of each type");
    let sum: i64 = client
        .query(&format!(
            "SELECT toInt64(sum(cents)) FROM {} FINAL WHERE payment_id != ''",
            names.table
        ))
        .fetch_one()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let want: i64 = (0..(FIRST + SECOND) as i64).map(|i| i * 125).sum();
    assert_eq!(sum, want, "payments' cents, value for value");

    let registry = nrt_pipeline::registry::RegistryClient::new(&cfg.registry, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("{e}"));
    let subjects: HashSet<String> = registry
        .subjects()
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .into_iter()
        .filter(|s| s.starts_with(&names.topic) || s.starts_with("shop.v1."))
        .collect();
    let topic = &names.topic;
    let want: HashSet<String> = [
        format!("{topic}-shop.v1.Order"),
        format!("{topic}-shop.v1.Payment"),
        format!("{topic}-shop.v1.Refund"),
        "shop.v1.Order".to_owned(),
        "shop.v1.Payment".to_owned(),
    ]
    .into();
    assert_eq!(
        subjects, want,
        "subjects as each strategy names them, and no {topic}-value"
    );
    assert_eq!(
        common::metric(&pipeline.url, "nrt_dead_letters_total").await,
        Some(0.0),
        "nothing dead-lettered"
    );
    println!(
        "record subject strategies: {orders} orders and {orders} payments (Confluent's client, topic_record \
         then record) and {REFUNDS} refunds (nrt, topic-record) in one topic, landed once each in one table"
    );
}

/// A table per tenant: `NRT_CLICKHOUSE_TABLE=<t>_{field:tenant}`. Confluent's client writes sales of
/// three tenants into one topic, every 50th without a tenant. Each tenant's rows land exactly in its own
/// table (made from the template that follows the registry), the tenantless ones in the dead-letter
/// topic (`no_route`) and in neither sink. A v2 of the schema adds a field and brings a new tenant: the
/// new column reaches the tables whose rows need it, the new tenant gets its table. `nrt reconcile` adds
/// the tenants' tables up against the lake; a dropped tenant table comes back whole by `nrt replay`.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_per_tenant_named_by_a_field() {
    const FIRST: u64 = 3_000;
    const SECOND: u64 = 1_500;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let base = Names::new("tenants");
    let names = Names {
        table: format!("{}_{{field:tenant}}", base.table),
        topic: base.topic.clone(),
        group: base.group.clone(),
        prefix: base.prefix.clone(),
    };
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 3, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let produce = |start: u64, n: u64, version: &str, tenants: &str| {
        let (start, n) = (start.to_string(), n.to_string());
        let args = [
            cfg.kafka.brokers.as_str(),
            &cfg.registry.url,
            &names.topic,
            &start,
            &n,
            version,
            tenants,
        ];
        common::python("produce_tenants.py", &args)
    };
    let count = |v: &serde_json::Value, tenant: &str| v["by_tenant"][tenant].as_u64().unwrap_or(0);
    let first = produce(0, FIRST, "1", "acme,globex,initech-eu");
    let consumer = NrtProcess::spawn(&["run", "--role", "consumer"], &names.env("http://127.0.0.1:1"));
    let second = produce(FIRST, SECOND, "2", "acme,globex,umbrella");
    let none = first["none"].as_u64().unwrap_or(0) + second["none"].as_u64().unwrap_or(0);
    assert_eq!(none, (FIRST + SECOND) / 50, "tenantless sales produced");

    let lines = common::wait_for(240, "every sale with a tenant in the lake", || async {
        let lines = common::minio_lines(&cfg, &names.prefix).await;
        (lines.len() as u64 >= FIRST + SECOND - none).then_some(lines)
    })
    .await;
    assert_eq!(
        lines.len() as u64,
        FIRST + SECOND - none,
        "the lake has every sale with a tenant"
    );
    assert!(
        lines.iter().all(|(_, l)| l.contains(r#""tenant":""#)),
        "and none without"
    );
    let table = |tenant: &str| format!("{}_{tenant}", base.table);
    let expected = [
        ("acme", count(&first, "acme") + count(&second, "acme")),
        ("globex", count(&first, "globex") + count(&second, "globex")),
        ("initech_eu", count(&first, "initech-eu")),
        ("umbrella", count(&second, "umbrella")),
    ];
    for (tenant, n) in expected {
        assert!(n > 0, "{tenant}");
        common::wait_for(60, &format!("{tenant}'s rows in its table"), || async {
            (common::clickhouse_count(&cfg, &table(tenant), true).await? == n).then_some(())
        })
        .await;
    }
    assert_eq!(
        common::clickhouse_count(&cfg, &table("_template"), true).await,
        Some(0),
        "the template takes no rows"
    );
    let mut ch = cfg.clickhouse.clone();
    ch.database = common::TEST_DATABASE.to_owned();
    let client = nrt_pipeline::clickhouse::client(&ch).unwrap_or_else(|e| panic!("{e}"));
    for tenant in ["acme", "globex", "umbrella"] {
        let eu: u64 = client
            .query(&format!(
                "SELECT count() FROM {} FINAL WHERE region = 'eu'",
                table(tenant)
            ))
            .fetch_one()
            .await
            .unwrap_or_else(|e| panic!("{tenant}: the new field has no column: {e}"));
        assert_eq!(
            eu,
            second["eu"][tenant].as_u64().unwrap_or(0),
            "{tenant}: rows with v2's field"
        );
    }
    let letters = common::wait_for(60, "the tenantless sales dead-lettered", || async {
        let letters = common::topic_messages(&cfg, &format!("{}.dlq", names.topic));
        (letters.len() as u64 >= none).then_some(letters)
    })
    .await;
    assert_eq!(letters.len() as u64, none, "one dead letter per tenantless sale");
    let kinds: HashSet<String> = letters
        .iter()
        .filter_map(|l| common::headers(l).get("nrt.error.kind").cloned())
        .collect();
    assert_eq!(kinds, HashSet::from(["no_route".to_owned()]));
    common::wait_for(60, "everything committed", || async {
        (common::kafka_lag(&cfg, &names) == 0).then_some(())
    })
    .await;
    drop(consumer);

    let range = ("2026-01-01T00", "2026-01-01T01");
    let (code, report) = common::lake::reconcile(&names, range.0, range.1);
    assert_eq!(
        (code, report["differ"].clone()),
        (0, serde_json::json!([])),
        "{report}"
    );
    assert_eq!(
        report["hours"][0]["clickhouse_rows"].as_u64(),
        Some(FIRST + SECOND - none),
        "the tenants' tables add up: {report}"
    );
    common::lake::execute(&cfg, &format!("DROP TABLE {}", table("globex"))).await;
    let (_, _, replayed) = common::lake::replay(&names, &names.table, range, &[]);
    assert_eq!(replayed, FIRST + SECOND - none, "every line replayed");
    assert_eq!(
        common::clickhouse_count(&cfg, &table("globex"), true).await,
        Some(expected[1].1),
        "the dropped tenant's table back whole"
    );
    assert_eq!(
        common::lake::reconcile(&names, range.0, range.1).0,
        0,
        "after the replay"
    );
    println!(
        "a table per tenant: {} sales in 4 tenants' tables, {none} without a tenant dead-lettered, a v2 field \
         added to the tables that needed it; reconcile adds the tables up; a dropped table replayed whole",
        FIRST + SECOND - none
    );
}
