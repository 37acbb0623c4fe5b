//! The registry's page for people, at `/` when a browser asks for HTML (Confluent's clients ask `/` for
//! JSON and still get `{}`): subjects, their versions and compatibility, and a schema's text.

use std::fmt::Write;

use super::store::{Store, VersionSpec};
use crate::admin::status::escape;

const STYLE: &str = include_str!("../admin/status.css");

/// `subject` and `version` come from the query string: which schema to show, if any.
pub fn render(store: &Store, subject: Option<&str>, version: Option<u32>) -> String {
    let mut h = String::with_capacity(8 * 1024);
    let _ = write!(
        h,
        "<!doctype html><html lang=en><head><meta charset=utf-8><link rel=icon href=\"data:,\">\
         <meta name=viewport content=\"width=device-width\"><title>nrt registry</title><style>{STYLE}</style>\
         </head><body><header><h1>nrt registry <small>v{} · compatibility (global) {}</small></h1>\
         <nav><a href=\"/\">subjects</a> · <a href=\"/subjects\">/subjects (JSON)</a> · \
         <a href=\"/config\">/config</a> · <a href=\"/metrics\">/metrics</a></nav></header><main>",
        env!("CARGO_PKG_VERSION"),
        store.global_level()
    );
    h.push_str(
        "<section id=subjects><h2>Subjects</h2><table><tr><th>subject<th>versions<th>latest id\
         <th>compatibility</tr>",
    );
    let subjects = store.subjects(false);
    if subjects.is_empty() {
        h.push_str("<tr><td colspan=4>none registered yet</tr>");
    }
    for s in &subjects {
        let versions = store.versions(s, false).unwrap_or_default();
        let links: Vec<String> = versions
            .iter()
            .map(|v| format!("<a href=\"/?subject={}&amp;version={v}\">{v}</a>", query(s)))
            .collect();
        let latest = store.version(s, VersionSpec::Latest, false).map(|v| v.id.to_string()).unwrap_or_default();
        let level = store
            .subject_level(s, true)
            .map(|l| l.to_string())
            .unwrap_or_default();
        let _ = write!(
            h,
            "<tr><td><a href=\"/?subject={}\">{}</a><td>{}<td class=num>{latest}<td>{level}</tr>",
            query(s),
            escape(s),
            links.join(" ")
        );
    }
    h.push_str("</table></section>");
    if let Some(s) = subject {
        let spec = version.map_or(VersionSpec::Latest, VersionSpec::Number);
        match store.version(s, spec, false) {
            Ok(v) => {
                let text = serde_json::from_str::<serde_json::Value>(&v.schema)
                    .and_then(|j| serde_json::to_string_pretty(&j))
                    .unwrap_or(v.schema);
                let _ = write!(
                    h,
                    "<section id=schema><h2>{} version {} (id {})</h2><pre>{}</pre></section>",
                    escape(s),
                    v.version,
                    v.id,
                    escape(&text)
                );
            }
            Err(e) => {
                let _ = write!(h, "<section id=schema><h2>{}</h2><p>{}</p></section>", escape(s), escape(&e.to_string()));
            }
        }
    }
    h.push_str("</main></body></html>");
    h
}

/// A subject name as a query-string value (subjects may hold any character).
fn query(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => out.push(b as char),
            _ => {
                let _ = write!(out, "%{b:02X}");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_names_are_quoted_for_links() {
        assert_eq!(query("events.v1-value"), "events.v1-value");
        assert_eq!(query("a b&c<"), "a%20b%26c%3C");
    }
}
