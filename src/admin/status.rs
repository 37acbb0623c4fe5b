//! The status page at `/`: what an operator looks at first, rendered on the server from this process's
//! own metrics and actor states, so it reads with JavaScript off and its numbers are `/metrics`' numbers
//! (every total carries `data-metric`, the sample it shows). It refreshes itself every few seconds.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::time::Duration;

use prometheus::core::Collector;
use prometheus::proto::{MetricFamily, MetricType};

use super::history::{self, Sample, STAGES};
use crate::actors::health::{ActorStatus, PartitionCommit};
use crate::config::Role;
use crate::event::Millis;
use crate::metrics::PipelineMetrics;

const STYLE: &str = include_str!("status.css");
const REFRESH_SECS: u32 = 5;
const COLORS: [&str; 5] = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd"];

/// Where the page's links go.
pub struct Links {
    pub registry: String,
    pub prometheus: String,
    pub dashboards: String,
}

pub struct Page<'a> {
    pub role: Role,
    pub uptime: Duration,
    pub actors: &'a BTreeMap<&'static str, ActorStatus>,
    pub commits: &'a BTreeMap<i32, PartitionCommit>,
    pub samples: &'a [Sample],
    pub metrics: &'a PipelineMetrics,
    pub links: &'a Links,
    /// A pipelines file's pipelines, and which is this page's (none for the environment's one).
    pub pipelines: &'a [(String, bool)],
}

/// `<`, `>`, `&` and quotes made harmless: actor errors and label values come from outside.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Each counter or gauge sample of `collector`, named as the text exposition names it.
pub fn samples(collector: &dyn Collector) -> Vec<(String, f64)> {
    collector.collect().iter().flat_map(named).collect()
}

fn named(family: &MetricFamily) -> Vec<(String, f64)> {
    family
        .get_metric()
        .iter()
        .filter_map(|m| {
            let value = match family.get_field_type() {
                MetricType::COUNTER => m.get_counter().value(),
                MetricType::GAUGE => m.get_gauge().value(),
                _ => return None,
            };
            let labels: Vec<String> = m
                .get_label()
                .iter()
                .map(|l| format!("{}=\"{}\"", l.name(), l.value()))
                .collect();
            let name = if labels.is_empty() {
                family.name().to_owned()
            } else {
                format!("{}{{{}}}", family.name(), labels.join(","))
            };
            Some((name, value))
        })
        .collect()
}

fn cell(sample: &str, value: f64) -> String {
    format!("<td class=num data-metric=\"{}\">{value:.0}</td>", escape(sample))
}

fn seconds(v: Option<f64>) -> String {
    match v {
        Some(s) if s.is_infinite() => "over the top bucket".to_owned(),
        Some(s) if s < 1.0 => format!("{:.0} ms", s * 1000.0),
        Some(s) => format!("{s:.2} s"),
        None => "–".to_owned(),
    }
}

fn per_sec(v: Option<f64>) -> String {
    v.map_or_else(|| "–".to_owned(), |r| format!("{r:.0}"))
}

/// The page while no pipeline runs: a pipelines file whose topic patterns match no topic yet.
pub fn waiting_page(role: Role, uptime_for: Duration) -> String {
    let role = format!("{role:?}").to_lowercase();
    format!(
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta http-equiv=refresh content={REFRESH_SECS}><link rel=icon href=\"data:,\">\
         <title>nrt {role}</title><style>{STYLE}</style></head><body>\
         <header><h1>nrt-pipeline <small>role {role} · v{} · up {}</small></h1></header><main>\
         <section><h2>No pipeline runs yet</h2><p>The pipelines file's topic patterns match no topic so \
         far; Kafka's topics are looked at again every 10 s, and a pipeline starts for each topic that \
         matches. <a href=\"/actors\">/actors</a> lists what runs.</p></section></main></body></html>",
        env!("CARGO_PKG_VERSION"),
        uptime(uptime_for),
    )
}

impl Page<'_> {
    pub fn render(&self) -> String {
        let mut h = String::with_capacity(16 * 1024);
        let role = format!("{:?}", self.role).to_lowercase();
        let _ = write!(
            h,
            "<!doctype html><html lang=en><head><meta charset=utf-8>\
             <meta http-equiv=refresh content={REFRESH_SECS}>\
             <meta name=viewport content=\"width=device-width\"><link rel=icon href=\"data:,\">\
             <title>nrt {role}</title><style>{STYLE}</style></head><body>\
             <header><h1>nrt-pipeline{} <small>role {role} · v{} · up {}</small></h1>{}</header><main>",
            self.pipelines
                .iter()
                .find(|(_, this)| *this)
                .map_or(String::new(), |(name, _)| format!(" · {}", escape(name))),
            env!("CARGO_PKG_VERSION"),
            uptime(self.uptime),
            self.nav()
        );
        self.actors_section(&mut h);
        self.throughput_section(&mut h);
        if self.role.consumes() {
            self.consumer_sections(&mut h);
        }
        let _ = write!(
            h,
            "</main><footer>Refreshes every {REFRESH_SECS} s. Rates from this process's counters, sampled \
             every {} s for the last 10 minutes; totals since it started.</footer></body></html>",
            history::EVERY.as_secs()
        );
        h
    }

    fn nav(&self) -> String {
        let l = self.links;
        let mut links: Vec<(String, &str)> = Vec::new();
        for (name, this) in self.pipelines {
            if !this {
                links.push((format!("/?pipeline={name}"), name.as_str()));
            }
        }
        links.extend([
            ("/metrics".to_owned(), "metrics"),
            ("/actors".to_owned(), "actors (JSON)"),
            ("/ready".to_owned(), "readiness"),
            (format!("{}/", l.registry.trim_end_matches('/')), "schema registry"),
            (l.prometheus.clone(), "Prometheus"),
        ]);
        if !l.dashboards.is_empty() {
            links.push((l.dashboards.clone(), "dashboards"));
        }
        let items: Vec<String> = links
            .iter()
            .map(|(href, text)| format!("<a href=\"{}\">{text}</a>", escape(href)))
            .collect();
        format!("<nav>{}</nav>", items.join(" · "))
    }

    fn actors_section(&self, h: &mut String) {
        h.push_str(
            "<section id=actors><h2>Actors</h2><table><tr><th>actor<th>state<th class=num>restarts\
             <th class=num>last minute<th>last error</tr>",
        );
        let restarts: BTreeMap<String, f64> = samples(&self.metrics.actor_restarts).into_iter().collect();
        for (name, a) in self.actors {
            let state = if a.crash_looping { "crash-looping".to_owned() } else { format!("{:?}", a.state).to_lowercase() };
            let sample = format!("nrt_actor_restarts_total{{actor=\"{name}\"}}");
            let total = restarts.get(&sample).copied().unwrap_or(a.restarts as f64);
            let error = match (&a.last_error, &a.last_error_at) {
                (Some(e), Some(at)) => format!("{} <small>({})</small>", escape(e), escape(at)),
                (Some(e), None) => escape(e),
                _ => String::new(),
            };
            let _ = write!(
                h,
                "<tr class=\"{state}\"><td>{name}<td>{state}{}<td class=num>{}<td>{error}</tr>",
                cell(&sample, total),
                a.recent_restarts
            );
        }
        h.push_str("</table></section>");
    }

    fn stages(&self) -> Vec<&'static history::Stage> {
        STAGES
            .iter()
            .filter(|s| match s.name {
                "polled" | "published" => self.role.produces(),
                _ => self.role.consumes(),
            })
            .collect()
    }

    fn throughput_section(&self, h: &mut String) {
        h.push_str("<section id=throughput><h2>Events per second</h2>");
        h.push_str(&self.chart());
        h.push_str(
            "<table><tr><th>stage<th class=num>total<th class=num>last 10 s<th class=num>last minute\
             <th class=num>last 10 minutes</tr>",
        );
        let m = self.metrics;
        let totals: BTreeMap<String, f64> = [
            samples(&m.events_polled),
            samples(&m.events_published),
            samples(&m.events_consumed),
            samples(&m.events_written),
        ]
        .into_iter()
        .flatten()
        .collect();
        for (i, stage) in self.stages().into_iter().enumerate() {
            let sample = match stage.name {
                "polled" => "nrt_events_polled_total",
                "published" => "nrt_events_published_total",
                "consumed" => "nrt_events_consumed_total",
                "written to ClickHouse" => "nrt_events_written_total{sink=\"clickhouse\"}",
                _ => "nrt_events_written_total{sink=\"minio\"}",
            };
            let total = totals.get(sample).copied().unwrap_or(0.0);
            let rate = |secs| history::rate(self.samples, stage, Duration::from_secs(secs));
            let _ = write!(
                h,
                "<tr><td><span class=key style=\"background:{}\"></span>{}{}<td class=num>{}\
                 <td class=num>{}<td class=num>{}</tr>",
                COLORS[i % COLORS.len()],
                stage.name,
                cell(sample, total),
                per_sec(rate(10)),
                per_sec(rate(60)),
                per_sec(rate(600)),
            );
        }
        h.push_str("</table></section>");
    }

    /// Events/s per stage over the sampled window, as an inline SVG (no script needed).
    fn chart(&self) -> String {
        let (w, ht, pad) = (640.0, 160.0, 34.0);
        let span = 600.0;
        let series: Vec<Vec<(f64, f64)>> =
            self.stages().iter().map(|s| history::series(self.samples, s)).collect();
        let top = series
            .iter()
            .flatten()
            .map(|p| p.1)
            .fold(0.0_f64, f64::max)
            .max(1.0);
        let mut svg = format!(
            "<svg class=chart viewBox=\"0 0 {w} {ht}\" role=img aria-label=\"events per second, last 10 minutes\">\
             <line x1={pad} y1={y0} x2={w} y2={y0} class=axis /><line x1={pad} y1=4 x2={pad} y2={y0} class=axis />\
             <text x=2 y=12>{top:.0}/s</text><text x=2 y={y0}>0</text>\
             <text x={pad} y={yl}>−10 min</text><text x={xr} y={yl}>now</text>",
            y0 = ht - 18.0,
            yl = ht - 4.0,
            xr = w - 26.0,
        );
        for (i, points) in series.iter().enumerate() {
            if points.is_empty() {
                continue;
            }
            let coords: Vec<String> = points
                .iter()
                .filter(|(ago, _)| *ago <= span)
                .map(|(ago, rate)| {
                    let x = pad + (w - pad) * (1.0 - ago / span);
                    let y = (ht - 18.0) - (ht - 26.0) * (rate / top);
                    format!("{x:.1},{y:.1}")
                })
                .collect();
            let _ = write!(
                svg,
                "<polyline fill=none stroke=\"{}\" stroke-width=2 points=\"{}\" />",
                COLORS[i % COLORS.len()],
                coords.join(" ")
            );
        }
        svg.push_str("</svg>");
        svg
    }

    fn consumer_sections(&self, h: &mut String) {
        // Latencies over the last 5 minutes (or since start, when younger).
        let newest = self.samples.last();
        let five_min_ago = newest.and_then(|n| {
            self.samples
                .iter()
                .find(|s| n.at.duration_since(s.at) <= Duration::from_secs(300))
        });
        h.push_str("<section id=latency><h2>Latency, last 5 minutes</h2><table><tr><th><th class=num>p50<th class=num>p99</tr>");
        if let Some(n) = newest {
            let then = five_min_ago.map(|s| &s.freshness);
            let _ = write!(
                h,
                "<tr><td>freshness (created → in ClickHouse)<td class=num>{}<td class=num>{}</tr>",
                seconds(history::quantile(&n.freshness, then, 0.5)),
                seconds(history::quantile(&n.freshness, then, 0.99))
            );
            for (sink, buckets) in &n.flush {
                let then = five_min_ago.and_then(|s| s.flush.get(sink));
                let _ = write!(
                    h,
                    "<tr><td>write a batch to {}<td class=num>{}<td class=num>{}</tr>",
                    escape(sink),
                    seconds(history::quantile(buckets, then, 0.5)),
                    seconds(history::quantile(buckets, then, 0.99))
                );
            }
        }
        h.push_str("</table></section>");

        h.push_str("<section id=lag><h2>Consumer lag</h2><table><tr><th>partition<th class=num>records behind</tr>");
        for (sample, value) in samples(&self.metrics.consumer_lag) {
            let partition = label(&sample, "partition");
            let _ = write!(h, "<tr><td>{}{}</tr>", escape(&partition), cell(&sample, value));
        }
        h.push_str("</table></section>");

        h.push_str("<section id=commits><h2>Last commit per partition</h2><table><tr><th>partition<th class=num>next offset<th>when</tr>");
        let now = Millis::now().0;
        for (partition, c) in self.commits {
            let _ = write!(
                h,
                "<tr><td>{partition}<td class=num>{}<td>{} ago</tr>",
                c.next_offset,
                uptime(Duration::from_millis(now.saturating_sub(c.at.0).max(0) as u64))
            );
        }
        h.push_str("</table></section>");

        h.push_str("<section id=dead-letters><h2>Dead letters</h2><table><tr><th>reason<th class=num>records</tr>");
        for (sample, total) in samples(&self.metrics.dead_letters) {
            let _ = write!(h, "<tr><td><b>all</b>{}</tr>", cell(&sample, total));
        }
        for (sample, value) in samples(&self.metrics.decode_errors) {
            let _ = write!(h, "<tr><td>{}{}</tr>", escape(&label(&sample, "kind")), cell(&sample, value));
        }
        for (sample, value) in samples(&self.metrics.sink_refused) {
            let reason = format!("refused by {}", label(&sample, "sink"));
            let _ = write!(h, "<tr><td>{}{}</tr>", escape(&reason), cell(&sample, value));
        }
        h.push_str("</table></section>");
    }
}

/// The value of label `name` in a sample name such as `m{a="1",b="2"}`.
fn label(sample: &str, name: &str) -> String {
    let key = format!("{name}=\"");
    sample
        .split_once(&key)
        .and_then(|(_, rest)| rest.split_once('"'))
        .map(|(v, _)| v.to_owned())
        .unwrap_or_default()
}

fn uptime(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=59 => format!("{s} s"),
        60..=3599 => format!("{} min {} s", s / 60, s % 60),
        _ => format!("{} h {} min", s / 3600, s % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_comes_from_outside_cannot_become_markup() {
        assert_eq!(escape("<script>alert('x')</script> & \"q\""), "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;");
    }

    #[test]
    fn labels_are_read_back_from_sample_names() {
        let s = "nrt_consumer_lag{partition=\"2\",topic=\"events.v1\"}";
        assert_eq!(label(s, "partition"), "2");
        assert_eq!(label(s, "topic"), "events.v1");
        assert_eq!(label(s, "sink"), "");
    }

    #[test]
    fn every_total_on_the_page_names_its_sample_and_matches_it() {
        let metrics = PipelineMetrics::new().unwrap_or_else(|e| panic!("{e}"));
        metrics.events_consumed.inc_by(1234);
        metrics.events_written.with_label_values(&["clickhouse"]).inc_by(1200);
        metrics.consumer_lag.with_label_values(&["events.v1", "0"]).set(7);
        let actors = BTreeMap::new();
        let commits = BTreeMap::new();
        let links = Links { registry: "http://r".into(), prometheus: "http://p".into(), dashboards: String::new() };
        let page = Page {
            role: Role::Consumer,
            uptime: Duration::from_secs(75),
            actors: &actors,
            commits: &commits,
            samples: &[],
            metrics: &metrics,
            links: &links,
            pipelines: &[("orders".to_owned(), true), ("clicks".to_owned(), false)],
        }
        .render();
        assert!(page.contains("data-metric=\"nrt_events_consumed_total\">1234<"), "{page}");
        assert!(page.contains("<h1>nrt-pipeline · orders <small>"), "the page names its pipeline");
        assert!(page.contains("href=\"/?pipeline=clicks\""), "and links the others'");
        assert!(page.contains("data-metric=\"nrt_events_written_total{sink=&quot;clickhouse&quot;}\">1200<"));
        assert!(page.contains(">7<"), "the lag of partition 0");
        assert!(page.contains("up 1 min 15 s"));
        assert!(!page.contains("nrt_events_polled_total"), "a consumer shows no producer stages");
    }
}
