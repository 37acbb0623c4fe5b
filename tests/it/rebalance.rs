//! Consumer replicas joining and leaving one group while 300,000 events flow through a 6-partition
//! topic: start one, add a second and a third, SIGTERM one, `kill -9` another, add a fourth, SIGTERM
//! the first. Then Kafka's record count = ClickHouse rows (FINAL) = distinct ids there = MinIO lines =
//! distinct ids there = the seeded stream. The second test does the same with MinIO frozen for 10 s
//! across a revocation that gives up after 3 s, so former owners' writes land late, after the new
//! owners' (the lake's conditional create and reused boundaries must keep every committed event).
//!
//! They share the stack's MinIO (the second freezes it), so they run one at a time.
#![cfg(feature = "integration")]

use crate::common;

use std::time::{Duration, Instant};

use common::{Names, NrtProcess};

const EPOCH_MS: i64 = 1_767_225_600_000;
const EVENTS: u64 = 300_000;
/// The source's rate: the 300,000 events take about 40 s, long enough for every step to land mid-stream.
const RATE: u64 = 7_500;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// What one consumer process did, read from its metrics before it goes.
#[derive(Debug, Default, Clone, Copy)]
struct Figures {
    consumed: f64,
    committed_batches: f64,
    assigned: f64,
    revoked: f64,
    lost: f64,
    revocations_timed_out: f64,
    lake_reused: f64,
}

impl Figures {
    async fn of(admin: &str) -> Figures {
        let m = |s: &'static str| async move { common::metric(admin, s).await.unwrap_or_default() };
        Figures {
            consumed: m("nrt_events_consumed_total").await,
            committed_batches: m("nrt_batches_committed_total").await,
            assigned: m("nrt_rebalance_partitions_total{event=\"assigned\"}").await,
            revoked: m("nrt_rebalance_partitions_total{event=\"revoked\"}").await,
            lost: m("nrt_rebalance_partitions_total{event=\"lost\"}").await,
            revocations_timed_out: m("nrt_revocations_timed_out_total").await,
            lake_reused: m("nrt_lake_objects_reused_total").await,
        }
    }

    fn add(&mut self, o: Figures) {
        self.consumed += o.consumed;
        self.committed_batches += o.committed_batches;
        self.assigned += o.assigned;
        self.revoked += o.revoked;
        self.lost += o.lost;
        self.revocations_timed_out += o.revocations_timed_out;
        self.lake_reused += o.lake_reused;
    }
}

struct Group {
    names: Names,
    mock_url: String,
    extra: Vec<(&'static str, String)>,
    members: Vec<(usize, NrtProcess)>,
    started: Instant,
    totals: Figures,
    log: Vec<String>,
}

impl Group {
    fn step(&mut self, what: String) {
        let line = format!("{:5.1} s  {what}", self.started.elapsed().as_secs_f64());
        println!("rebalance: {line}");
        self.log.push(line);
    }

    fn join(&mut self, n: usize) {
        let mut env: Vec<(&str, &str)> = self.names.env(&self.mock_url);
        env.extend(self.extra.iter().map(|(k, v)| (*k, v.as_str())));
        let log = std::env::temp_dir().join(format!("{}-consumer{n}.log", self.names.topic));
        let p = NrtProcess::spawn_logging_to(&["run", "--role", "consumer"], &env, &log);
        self.members.push((n, p));
        self.step(format!("consumer {n} joins"));
    }

    fn take(&mut self, n: usize) -> NrtProcess {
        let i = self.members.iter().position(|(m, _)| *m == n);
        let i = i.unwrap_or_else(|| panic!("no consumer {n}"));
        self.members.remove(i).1
    }

    async fn terminate(&mut self, n: usize) {
        let mut p = self.take(n);
        self.totals.add(Figures::of(&p.url).await);
        let t0 = Instant::now();
        let code = p.terminate();
        self.step(format!(
            "consumer {n} SIGTERM: exit {code:?} after {:.2} s",
            t0.elapsed().as_secs_f64()
        ));
        assert_eq!(code, Some(0), "consumer {n} did not drain");
    }

    async fn kill(&mut self, n: usize) {
        let mut p = self.take(n);
        self.totals.add(Figures::of(&p.url).await);
        p.kill();
        self.step(format!("consumer {n} kill -9"));
    }
}

async fn churn(label: &str, seed: u64, extra: Vec<(&'static str, String)>, freeze_minio: bool) {
    let _serial = ONE_AT_A_TIME.lock().await;
    let cfg = common::services();
    common::require_all(&cfg, &common::PIPELINE_SERVICES).await;
    let names = Names::new(label);
    nrt_pipeline::kafka::ensure_topic(&cfg.kafka, &names.topic, 6, 1, Duration::from_secs(10))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let mock = common::spawn_mock_at(seed, EVENTS, EPOCH_MS, Some(RATE));
    let producer = NrtProcess::spawn(&["run", "--role", "producer"], &names.env(&mock.url));
    let mut g = Group {
        names,
        mock_url: mock.url.clone(),
        extra,
        members: Vec::new(),
        started: Instant::now(),
        totals: Figures::default(),
        log: Vec::new(),
    };
    let pause = |s: u64| tokio::time::sleep(Duration::from_secs(s));
    g.join(1);
    pause(5).await;
    g.join(2);
    pause(5).await;
    if freeze_minio {
        // The third member's arrival revokes partitions whose batches hang in a frozen MinIO: the
        // revocations give up (3 s), the new owners read the ranges again, and every write — old and
        // new — lands when MinIO thaws, in whatever order.
        let frozen = common::Freeze::begin("minio");
        g.step("MinIO frozen".into());
        pause(1).await;
        g.join(3);
        pause(9).await;
        drop(frozen);
        g.step("MinIO thawed".into());
    } else {
        g.join(3);
    }
    pause(5).await;
    g.terminate(2).await;
    pause(4).await;
    g.kill(3).await;
    pause(4).await;
    g.join(4);
    pause(5).await;
    g.terminate(1).await;

    let cfg2 = cfg.clone();
    common::wait_for(180, "every event published", || async {
        let n = common::metric(&producer.url, "nrt_events_published_total").await?;
        (n as u64 == EVENTS).then_some(())
    })
    .await;
    g.step("producer done".into());
    let landed = common::landed_exactly(&cfg2, &g.names, seed, EPOCH_MS, EVENTS).await;
    g.step("everything landed".into());
    common::wait_for(60, "nothing left uncommitted", || async {
        (common::uncommitted_records(&cfg, &g.names) == 0).then_some(())
    })
    .await;
    let (n, last) = g.members.pop().unwrap_or_else(|| panic!("no consumer left"));
    g.totals.add(Figures::of(&last.url).await);
    let t = g.totals;
    println!(
        "rebalance ({label}): {EVENTS} events at {RATE}/s through 6 partitions while 4 consumers joined and \
         left (last: consumer {n}); Kafka records {}, ClickHouse FINAL {} ({} distinct ids, {} raw rows), MinIO \
         {} lines ({} distinct ids); partitions assigned {}, revoked {}, lost {}; revocations that gave up {}; \
         lake objects reused {}; batches committed {}; records read {} (re-reads {})",
        landed.kafka,
        landed.clickhouse,
        landed.clickhouse_ids,
        landed.raw_rows,
        landed.minio_lines,
        landed.minio_ids,
        t.assigned,
        t.revoked,
        t.lost,
        t.revocations_timed_out,
        t.lake_reused,
        t.committed_batches,
        t.consumed,
        t.consumed - EVENTS as f64,
    );
    if freeze_minio {
        // The scenario this variant is about must have happened: revocations that gave up waiting for a
        // frozen write, and an object found written when the late and the new owner's writes met.
        assert!(
            t.revocations_timed_out > 0.0,
            "no revocation gave up: MinIO was not frozen across one"
        );
        assert!(
            t.lake_reused > 0.0,
            "no object was found written by another owner"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn consumers_join_and_leave_without_loss_or_duplicates() {
    churn("churn", 61, Vec::new(), false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_sink_across_a_revocation_loses_nothing() {
    let extra = vec![("NRT_REVOKE_TIMEOUT_MS", "3000".to_owned())];
    churn("churn-frozen", 62, extra, true).await;
}
