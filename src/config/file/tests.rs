use std::ffi::OsString;
use std::path::Path;

use clap::Parser;

use super::*;

/// The process's settings as `nrt run` parses them with no environment.
fn process() -> PipelineConfig {
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        pipeline: PipelineConfig,
    }
    let cmd = <Cli as clap::CommandFactory>::command().mut_args(|a| a.env(None));
    let matches = cmd
        .try_get_matches_from(["nrt", "--max-inflight-bytes", "65536", "--admin-addr", "127.0.0.1:0"])
        .unwrap_or_else(|e| panic!("{e}"));
    <Cli as clap::FromArgMatches>::from_arg_matches(&matches)
        .unwrap_or_else(|e| panic!("{e}"))
        .pipeline
}

fn parsed(text: &str) -> Result<Vec<Pipeline>, FileError> {
    parse(Path::new("nrt.toml"), text, &process())
}

fn error(text: &str) -> String {
    match parsed(text) {
        Ok(p) => panic!("accepted: {:?}", p.iter().map(|p| &p.name).collect::<Vec<_>>()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn each_pipeline_takes_its_keys_the_defaults_and_the_process_settings() {
    let pipelines = parsed(
        r#"
# two topics, two tables
[[pipeline]]
name = "orders"
topic = "orders.v1"
clickhouse_table = "orders"
table_key = "order_id, created_at"
event_time_field = "created_at"
s3_prefix = "orders/"
flush_interval_ms = 500
batch_max_records = 20000

[[pipeline]]
name = "clicks-eu"
topic = "clicks.eu"
table = "clicks"
group_id = "nrt-clicks"
dlq_topic = "clicks.dead"
subject_strategy = "topic_record"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(pipelines.len(), 2);
    let (orders, clicks) = (&pipelines[0].config, &pipelines[1].config);
    assert_eq!(pipelines[0].name, "orders");
    assert_eq!((orders.topic.as_str(), orders.table.clickhouse_table.as_str()), ("orders.v1", "orders"));
    assert_eq!(orders.table.table_key, "order_id, created_at");
    assert_eq!(orders.table.event_time_field.as_deref(), Some("created_at"));
    assert_eq!((orders.lake.s3_prefix.as_str(), orders.flush_interval_ms, orders.batch_max_records), ("orders/", 500, 20_000));
    assert_eq!(orders.group_id, "nrt-consumer-orders", "a group of its own by default");
    assert_eq!(orders.dead_letter_topic(), "orders.v1.dlq");
    assert_eq!(orders.flush_quiet_ms, 100, "what the file does not say is the flag's default");
    assert_eq!((orders.max_inflight_bytes, orders.admin_addr.as_str()), (65_536, "127.0.0.1:0"), "the process's");
    assert_eq!(clicks.table.clickhouse_table, "clicks", "`table` is the alias it is on the command line");
    assert_eq!((clicks.group_id.as_str(), clicks.dead_letter_topic().as_str()), ("nrt-clicks", "clicks.dead"));
    use crate::registry::SubjectStrategy;
    assert_eq!((orders.subject_strategy, clicks.subject_strategy), (SubjectStrategy::Topic, SubjectStrategy::TopicRecord));
}

#[test]
fn a_mistake_is_named_by_file_line_and_key() {
    let cases = [
        ("[[pipeline]]\nname = \"a\"\nflush_interval_ms = 5\n", "nrt.toml:3: flush_interval_ms: ", "5 is not in 10..=3600000"),
        ("[[pipeline]]\nname = \"a\"\nsubject_strategy = \"by_name\"\n", "nrt.toml:3: subject_strategy: ", "[possible values: topic, record, topic-record]"),
        ("[[pipeline]]\nname = \"a\"\n\nflush_interval = 500\n", "nrt.toml:4: flush_interval: unknown key", "`flush_interval_ms`"),
        ("[[pipeline]]\nname = \"a\"\nadmin_addr = \"0.0.0.0:1\"\n", "nrt.toml:3: admin_addr: unknown key", "`topic`"),
        ("[[pipeline]]\nname = \"a\"\ntopic_partitions = \"three\"\n", "nrt.toml:3: topic_partitions: ", "invalid digit"),
        ("[[pipeline]]\nname = \"a\"\ntopic = [\"x\", \"y\"]\n", "nrt.toml:3: topic: expects one value", ""),
        ("[[pipeline]]\ntopic = \"x\"\n", "nrt.toml:1: pipeline #1: has no `name`", ""),
        ("[[pipeline]]\nname = \"Orders!\"\n", "nrt.toml:1: name: 'Orders!' is not a pipeline name", ""),
        ("[[pipeline]]\nname = \"a\"\n[[pipeline]]\nname = \"a\"\ntopic = \"y\"\n", "nrt.toml:3: name: two pipelines are named 'a'", ""),
        ("topic = \"x\"\n[[pipeline]]\nname = \"a\"\n", "nrt.toml:1: topic: unknown key", "`[[pipeline]]` tables only"),
        ("[pipeline]\nname = \"a\"\n", "nrt.toml:1: pipeline: must be an array of tables", ""),
        ("# nothing\n", "nrt.toml: no `[[pipeline]]` table", ""),
        ("[[pipeline]]\nname =\ntopic = \"x\"\n", "nrt.toml: TOML parse error at line 2", "name ="),
        ("[[pipeline]]\nname = \"a\"\ntable_key = \"id; drop\"\n", "nrt.toml: pipeline 'a': NRT_TABLE_KEY", "comma-separated"),
    ];
    for (text, starts, contains) in cases {
        let e = error(text);
        assert!(e.starts_with(starts) && e.contains(contains), "{text:?}\n gave: {e}\n want: {starts}…{contains}");
    }
}

#[test]
fn two_pipelines_never_share_a_group_a_table_or_a_lake() {
    let two = |a: &str, b: &str| format!("[[pipeline]]\nname = \"a\"\n{a}\n[[pipeline]]\nname = \"b\"\n{b}\n");
    let group = error(&two("group_id = \"g\"\ntable = \"t1\"", "group_id = \"g\"\ntopic = \"y\""));
    assert!(group.contains("pipeline 'b': group_id 'g' is another pipeline's too"), "{group}");
    let table = error(&two("topic = \"x\"\ns3_prefix = \"x/\"", "topic = \"y\""));
    assert!(table.contains("clickhouse_table 'events_raw' is another pipeline's too"), "{table}");
    let lake = error(&two("topic = \"x\"\ntable = \"t1\"", "topic = \"y\"\ntable = \"t2\""));
    assert!(lake.contains("s3_prefix '' is another pipeline's too"), "{lake}");
    // The same topic into two tables under two prefixes is a fan-out, allowed.
    let fan_out = parsed(&two("table = \"t1\"\ns3_prefix = \"one/\"", "table = \"t2\"\ns3_prefix = \"two/\""));
    assert_eq!(fan_out.map(|p| p.len()).ok(), Some(2));
}

#[test]
fn a_file_and_the_pipeline_variables_or_flags_together_are_refused() {
    let env = |var: &str| (var == "NRT_TOPIC" || var == "NRT_CLICKHOUSE_TABLE").then(|| OsString::from("x"));
    let args: Vec<OsString> = ["nrt", "run", "--flush-interval-ms=5", "--table", "t", "--admin-addr", "a"]
        .into_iter()
        .map(OsString::from)
        .collect();
    let mut given = given_outside(env, &args);
    given.sort();
    assert_eq!(given, ["--clickhouse-table", "--flush-interval-ms", "NRT_CLICKHOUSE_TABLE", "NRT_TOPIC"]);
    assert!(given_outside(|_| None, &args[..2]).is_empty(), "process settings and services are not the file's");
    let both = FileError::Both {
        path: "nrt.toml".into(),
        given,
    };
    assert!(both.to_string().starts_with("nrt.toml and --clickhouse-table, --flush-interval-ms, NRT_CLICKHOUSE_TABLE"));
}

#[test]
fn every_pipeline_setting_is_an_argument_and_every_other_argument_is_the_processs() {
    let cmd = pipeline_command();
    let ids: Vec<&str> = cmd.get_arguments().map(|a| a.get_id().as_str()).collect();
    for setting in PIPELINE_SETTINGS {
        assert!(ids.contains(&setting), "{setting} is not an argument of `nrt run`");
    }
    let process = ["max-inflight-bytes", "revoke-timeout-ms", "shutdown-timeout-ms", "log-summary-secs", "dashboards-url", "admin-addr", "admin-token"];
    let unplaced: Vec<&&str> = ids.iter().filter(|id| !PIPELINE_SETTINGS.contains(id) && !process.contains(id)).collect();
    assert!(unplaced.is_empty(), "arguments neither a pipeline's nor the process's: {unplaced:?}");
}

#[test]
fn a_pipeline_of_several_topics_runs_an_instance_per_topic_named_by_it() {
    let pipelines = parsed(
        r#"
[[pipeline]]
name = "tenants"
topic_pattern = "tenant-[a-z]+\\.events"
clickhouse_table = "events_{topic}"
s3_prefix = "tenants/{topic}/"

[[pipeline]]
name = "regions"
topics = ["eu.orders", "us.orders"]
s3_prefix = "regions/{topic}/"
clickhouse_table = "orders"
table_key = "order_id"
group_id = "nrt-{topic}-reader"
"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let existing: Vec<String> =
        ["tenant-a.events", "tenant-b.events", "tenant-a.events.dlq", "x-tenant-a.events", "tenant-1.events"]
            .into_iter()
            .map(String::from)
            .collect();
    let tenants = pipelines[0].instances(&existing).unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = tenants.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["tenants.tenant-a.events", "tenants.tenant-b.events"], "whole names only, never a .dlq");
    let a = &tenants[0].config;
    assert_eq!(
        (a.topic.as_str(), a.table.clickhouse_table.as_str(), a.lake.s3_prefix.as_str(), a.group_id.as_str()),
        ("tenant-a.events", "events_tenant_a_events", "tenants/tenant-a.events/", "nrt-consumer-tenants-tenant-a.events")
    );
    assert_eq!(a.dead_letter_topic(), "tenant-a.events.dlq");
    let regions = pipelines[1].instances(&[]).unwrap_or_else(|e| panic!("{e}"));
    let configs: Vec<(&str, &str, &str)> = regions
        .iter()
        .map(|p| (p.config.topic.as_str(), p.config.table.clickhouse_table.as_str(), p.config.group_id.as_str()))
        .collect();
    assert_eq!(configs, [("eu.orders", "orders", "nrt-eu.orders-reader"), ("us.orders", "orders", "nrt-us.orders-reader")]);
    assert!(check_apart(&regions).is_ok(), "one table for both: its key is the records' own");

    // A table per topic and per tenant: `{field:…}` stays for the records to fill in.
    let routed = parsed(
        "[[pipeline]]\nname = \"r\"\ntopics = [\"eu.sales\"]\ns3_prefix = \"{topic}/\"\n\
         clickhouse_table = \"sales_{topic}_{field:tenant}\"\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let eu = routed[0].instances(&[]).unwrap_or_else(|e| panic!("{e}"));
    let table = eu[0].config.table.table("db");
    assert_eq!(eu[0].config.table.clickhouse_table, "sales_eu_sales_{field:tenant}");
    assert_eq!(table.table, "sales_eu_sales__template");
    assert_eq!(table.route.and_then(|r| r.table_for("acme")).as_deref(), Some("sales_eu_sales_acme"));
}

#[test]
fn what_a_pipeline_of_several_topics_must_name_per_topic_is_checked() {
    let cases = [
        ("topic = \"a\"\ntopics = [\"b\"]", "either `topic` or `topics`"),
        ("topics = [\"b\"]\ntopic_pattern = \"c\"", "nrt.toml:3: topics: either `topic_pattern` or `topics`"),
        ("topics = []", "non-empty list"),
        ("topics = [\"b\", 3]", "non-empty list of topic names"),
        ("topic_pattern = \"(\"", "not a regular expression"),
        ("topics = [\"b\"]\nclickhouse_table = \"t_{topic}\"", "s3_prefix must contain {topic}"),
        ("topics = [\"b\"]\ns3_prefix = \"{topic}/\"", "clickhouse_table must contain {topic}"),
        ("topics = [\"b c\"]\ns3_prefix = \"{topic}/\"\nclickhouse_table = \"t_{topic}\"", "NRT_TOPIC"),
        ("topic = \"b\"\nclickhouse_table = \"t_{field:a b}\"", "'a b' is not a field name"),
    ];
    for (keys, want) in cases {
        let e = error(&format!("[[pipeline]]\nname = \"a\"\n{keys}\n"));
        assert!(e.contains(want), "{keys}\n gave: {e}\n want: {want}");
    }
}
