//! `nrt registry` as a real process: every endpoint, every Confluent error code, the compatibility
//! matrix, durability across a SIGKILL, and concurrent registration.
#![cfg(feature = "integration")]

use crate::common;

use common::RegistryProcess;
use serde_json::{json, Value};

const CT: &str = "application/vnd.schemaregistry.v1+json";

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    fn new(reg: &RegistryProcess) -> Self {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        Api {
            http,
            base: reg.url.clone(),
        }
    }

    async fn raw(&self, method: reqwest::Method, path: &str, body: Option<Vec<u8>>) -> (u16, Value) {
        let mut req = self
            .http
            .request(method.clone(), format!("{}{}", self.base, path));
        if let Some(b) = body {
            req = req.header("Content-Type", CT).body(b);
        }
        let resp = req
            .send()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let status = resp.status().as_u16();
        let text = resp
            .text()
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        let value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {text}"));
        (status, value)
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        self.raw(reqwest::Method::GET, path, None).await
    }
    async fn delete(&self, path: &str) -> (u16, Value) {
        self.raw(reqwest::Method::DELETE, path, None).await
    }
    async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.raw(reqwest::Method::POST, path, Some(body.to_string().into_bytes()))
            .await
    }
    async fn put(&self, path: &str, body: Value) -> (u16, Value) {
        self.raw(reqwest::Method::PUT, path, Some(body.to_string().into_bytes()))
            .await
    }
    async fn register(&self, subject: &str, schema: &str) -> (u16, Value) {
        self.post(
            &format!("/subjects/{subject}/versions"),
            json!({ "schema": schema }),
        )
        .await
    }
}

/// Asserts a Confluent error: HTTP status and error_code, with a message.
fn assert_error(got: (u16, Value), status: u16, code: u64) {
    assert_eq!(got.0, status, "{}", got.1);
    assert_eq!(got.1["error_code"], code, "{}", got.1);
    assert!(
        got.1["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{}",
        got.1
    );
}

const V1: &str = r#"{"type":"record","name":"Event","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"}]}"#;
// The same schema: other whitespace and attribute order.
const V1_REFORMATTED: &str = r#"{ "namespace": "t", "name": "Event", "type": "record",
  "fields": [ {"type": "string", "name": "id"}, {"name": "n", "type": "int"} ] }"#;
const V2: &str = r#"{"type":"record","name":"Event","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"tag","type":["null","string"],"default":null}]}"#;
const V_NO_DEFAULT: &str = r#"{"type":"record","name":"Event","namespace":"t","fields":[{"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"x","type":"long"}]}"#;

#[tokio::test]
async fn every_endpoint_and_error_code() {
    let reg = RegistryProcess::start();
    let api = Api::new(&reg);
    let s = "events.v1-value";

    assert_eq!(api.get("/subjects").await, (200, json!([])));
    assert_eq!(api.get("/schemas/types").await, (200, json!(["AVRO"])));
    assert_eq!(
        api.get("/config").await,
        (200, json!({"compatibilityLevel": "BACKWARD"}))
    );

    // Register; the same schema again (even reformatted) returns the same id and adds no version.
    assert_eq!(api.register(s, V1).await, (200, json!({"id": 1})));
    assert_eq!(api.register(s, V1_REFORMATTED).await, (200, json!({"id": 1})));
    assert_eq!(api.register(s, V2).await, (200, json!({"id": 2})));
    assert_eq!(api.get("/subjects").await, (200, json!([s])));
    assert_eq!(
        api.get(&format!("/subjects/{s}/versions")).await,
        (200, json!([1, 2]))
    );

    let (st, v1) = api.get(&format!("/subjects/{s}/versions/1")).await;
    assert_eq!(st, 200);
    assert_eq!(
        (v1["subject"].clone(), v1["id"].clone(), v1["version"].clone()),
        (json!(s), json!(1), json!(1))
    );
    let stored: Value = serde_json::from_str(v1["schema"].as_str().unwrap_or_default()).unwrap_or_default();
    assert_eq!(stored["name"], "Event");
    assert_eq!(stored["fields"].as_array().map(Vec::len), Some(2));
    let (st, latest) = api.get(&format!("/subjects/{s}/versions/latest")).await;
    assert_eq!(
        (st, latest["version"].clone(), latest["id"].clone()),
        (200, json!(2), json!(2))
    );
    let (st, raw) = api.get(&format!("/subjects/{s}/versions/2/schema")).await;
    assert_eq!((st, raw["fields"].as_array().map(Vec::len)), (200, Some(3)));

    assert_error(api.get(&format!("/subjects/{s}/versions/3")).await, 404, 40402);
    assert_error(api.get(&format!("/subjects/{s}/versions/abc")).await, 422, 42202);
    assert_error(api.get(&format!("/subjects/{s}/versions/0")).await, 422, 42202);
    assert_error(api.get("/subjects/nope/versions").await, 404, 40401);
    assert_error(api.get("/subjects/nope/versions/1").await, 404, 40401);

    // By id.
    let (st, by_id) = api.get("/schemas/ids/1").await;
    assert_eq!((st, by_id["schema"].clone()), (200, v1["schema"].clone()));
    assert_eq!(api.get("/schemas/ids/1/schema").await.1, stored);
    assert_eq!(api.get("/schemas/ids/2/subjects").await, (200, json!([s])));
    assert_eq!(
        api.get("/schemas/ids/2/versions").await,
        (200, json!([{"subject": s, "version": 2}]))
    );
    assert_error(api.get("/schemas/ids/999").await, 404, 40403);
    assert_error(api.get("/schemas/ids/999/versions").await, 404, 40403);

    // Look up.
    let (st, found) = api
        .post(&format!("/subjects/{s}"), json!({"schema": V1_REFORMATTED}))
        .await;
    assert_eq!(
        (st, found["id"].clone(), found["version"].clone()),
        (200, json!(1), json!(1))
    );
    assert_error(
        api.post(&format!("/subjects/{s}"), json!({"schema": V_NO_DEFAULT}))
            .await,
        404,
        40403,
    );
    assert_error(
        api.post("/subjects/nope", json!({"schema": V1})).await,
        404,
        40401,
    );

    // Bad input.
    assert_error(api.register(s, V_NO_DEFAULT).await, 409, 409);
    assert_error(
        api.register(s, r#"{"type":"record","name":"X"}"#).await,
        422,
        42201,
    );
    assert_error(api.register(s, "not json at all").await, 422, 42201);
    assert_error(
        api.post(
            &format!("/subjects/{s}/versions"),
            json!({"schema": V1, "schemaType": "PROTOBUF"}),
        )
        .await,
        422,
        42201,
    );
    assert_error(
        api.raw(
            reqwest::Method::POST,
            &format!("/subjects/{s}/versions"),
            Some(b"{oops".to_vec()),
        )
        .await,
        400,
        400,
    );
    assert_error(
        api.post(&format!("/subjects/{s}/versions"), json!({"schemaa": V1}))
            .await,
        400,
        400,
    );
    let huge = json!({ "schema": "x".repeat(1 << 20) }).to_string().into_bytes();
    assert_error(
        api.raw(
            reqwest::Method::POST,
            &format!("/subjects/{s}/versions"),
            Some(huge),
        )
        .await,
        413,
        413,
    );
    assert_error(api.get("/no/such/route").await, 404, 404);
    assert_error(api.get("/schemas/ids/abc").await, 400, 400);

    // Global and subject config.
    assert_eq!(
        api.put("/config", json!({"compatibility": "FULL"})).await,
        (200, json!({"compatibility": "FULL"}))
    );
    assert_eq!(
        api.get("/config").await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_error(
        api.put("/config", json!({"compatibility": "SIDEWAYS"})).await,
        422,
        42203,
    );
    assert_error(api.get(&format!("/config/{s}")).await, 404, 40408);
    assert_eq!(
        api.get(&format!("/config/{s}?defaultToGlobal=true")).await,
        (200, json!({"compatibilityLevel": "FULL"}))
    );
    assert_eq!(
        api.put(&format!("/config/{s}"), json!({"compatibility": "none"}))
            .await,
        (200, json!({"compatibility": "NONE"}))
    );
    assert_eq!(
        api.get(&format!("/config/{s}")).await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_eq!(
        api.delete(&format!("/config/{s}")).await,
        (200, json!({"compatibilityLevel": "NONE"}))
    );
    assert_error(api.delete(&format!("/config/{s}")).await, 404, 40408);

    // Compatibility checks (subject now follows the global FULL).
    let check = |v: &str| format!("/compatibility/subjects/{s}/versions/{v}");
    assert_eq!(
        api.post(&check("latest"), json!({"schema": V2})).await,
        (200, json!({"is_compatible": true}))
    );
    let (st, verbose) = api
        .post(
            &format!("{}?verbose=true", check("latest")),
            json!({"schema": V_NO_DEFAULT}),
        )
        .await;
    assert_eq!((st, verbose["is_compatible"].clone()), (200, json!(false)));
    assert!(
        verbose["messages"].as_array().is_some_and(|m| !m.is_empty()),
        "{verbose}"
    );
    assert_error(api.post(&check("9"), json!({"schema": V2})).await, 404, 40402);
    assert_error(
        api.post(
            "/compatibility/subjects/nope/versions/latest",
            json!({"schema": V2}),
        )
        .await,
        404,
        40401,
    );

    // Deletes: soft first, permanent only after soft, as Confluent does.
    assert_error(
        api.delete(&format!("/subjects/{s}/versions/1?permanent=true"))
            .await,
        404,
        40407,
    );
    assert_eq!(
        api.delete(&format!("/subjects/{s}/versions/1")).await,
        (200, json!(1))
    );
    assert_error(api.delete(&format!("/subjects/{s}/versions/1")).await, 404, 40406);
    assert_eq!(
        api.get(&format!("/subjects/{s}/versions")).await,
        (200, json!([2]))
    );
    assert_eq!(
        api.get(&format!("/subjects/{s}/versions?deleted=true")).await,
        (200, json!([1, 2]))
    );
    assert_eq!(
        api.delete(&format!("/subjects/{s}/versions/1?permanent=true"))
            .await,
        (200, json!(1))
    );
    assert_error(
        api.delete(&format!("/subjects/{s}?permanent=true")).await,
        404,
        40405,
    );
    assert_eq!(api.delete(&format!("/subjects/{s}")).await, (200, json!([2])));
    assert_error(api.delete(&format!("/subjects/{s}")).await, 404, 40404);
    assert_eq!(api.get("/subjects").await, (200, json!([])));
    assert_eq!(api.get("/subjects?deleted=true").await, (200, json!([s])));
    // Booleans as Confluent's Java server reads them: "True" is true, anything but "true" is false.
    assert_eq!(api.get("/subjects?deleted=True").await, (200, json!([s])));
    assert_eq!(api.get("/subjects?deleted=maybe").await, (200, json!([])));
    assert_eq!(
        api.delete(&format!("/subjects/{s}?permanent=true")).await,
        (200, json!([2]))
    );
    assert_eq!(api.get("/subjects?deleted=true").await, (200, json!([])));
    assert_error(api.delete("/subjects/nope").await, 404, 40401);
    // Ids are global and stable: schema 1 still resolves (old records keep decoding).
    assert_eq!(api.get("/schemas/ids/1").await.0, 200);

    // Metrics count requests by route pattern and status.
    let text = reqwest::get(format!("{}/metrics", reg.url))
        .await
        .unwrap_or_else(|e| panic!("{e}"))
        .text()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let line =
        r#"nrt_registry_requests_total{method="POST",route="/subjects/{subject}/versions",status="409"} 1"#;
    assert!(text.lines().any(|l| l == line), "missing `{line}` in:\n{text}");
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Ev","namespace":"t","fields":[{fields}]}}"#)
}

#[tokio::test]
async fn compatibility_matrix() {
    let base = record(
        r#"{"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"note","type":"string","default":""}"#,
    );
    let changes = [
        (
            "add field with default",
            record(
                r#"{"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"note","type":"string","default":""},{"name":"x","type":"long","default":0}"#,
            ),
        ),
        (
            "add field without default",
            record(
                r#"{"name":"id","type":"string"},{"name":"n","type":"int"},{"name":"note","type":"string","default":""},{"name":"x","type":"long"}"#,
            ),
        ),
        (
            "remove field with default",
            record(r#"{"name":"id","type":"string"},{"name":"n","type":"int"}"#),
        ),
        (
            "remove field without default",
            record(r#"{"name":"id","type":"string"},{"name":"note","type":"string","default":""}"#),
        ),
        (
            "change type string->int",
            record(
                r#"{"name":"id","type":"int"},{"name":"n","type":"int"},{"name":"note","type":"string","default":""}"#,
            ),
        ),
        (
            "widen int->long",
            record(
                r#"{"name":"id","type":"string"},{"name":"n","type":"long"},{"name":"note","type":"string","default":""}"#,
            ),
        ),
        (
            "rename field with alias",
            record(
                r#"{"name":"id","type":"string"},{"name":"count","type":"int","aliases":["n"]},{"name":"note","type":"string","default":""}"#,
            ),
        ),
    ];
    // Expected (BACKWARD, FORWARD, FULL), as Confluent's registry (Java Avro) decides.
    let expected = [
        (true, true, true),
        (false, true, false),
        (true, true, true),
        (true, false, false),
        (false, false, false),
        (true, false, false),
        (true, false, false),
    ];
    let reg = RegistryProcess::start();
    let api = Api::new(&reg);
    let mut mismatches = Vec::new();
    for ((name, changed), want) in changes.iter().zip(expected) {
        for (level, ok) in [("BACKWARD", want.0), ("FORWARD", want.1), ("FULL", want.2)] {
            let subject = common::unique("matrix-");
            assert_eq!(
                api.put(&format!("/config/{subject}"), json!({"compatibility": level}))
                    .await
                    .0,
                200
            );
            assert_eq!(api.register(&subject, &base).await.0, 200);
            let path = format!("/compatibility/subjects/{subject}/versions/latest");
            let checked = api.post(&path, json!({"schema": changed})).await.1["is_compatible"] == json!(ok);
            let (status, _) = api.register(&subject, changed).await;
            let registered = status == if ok { 200 } else { 409 };
            if !checked || !registered {
                mismatches.push(format!(
                    "{name} under {level}: expected compatible={ok}, register gave {status}"
                ));
            }
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");

    // Transitive: v3 reads v2 data (BACKWARD passes) but not v1 data (BACKWARD_TRANSITIVE refuses).
    let v1 = record(r#"{"name":"id","type":"string"}"#);
    let v2 = record(r#"{"name":"id","type":"string"},{"name":"x","type":"long","default":0}"#);
    let v3 = record(r#"{"name":"id","type":"string"},{"name":"x","type":"long"}"#);
    for (level, v3_status) in [("BACKWARD", 200), ("BACKWARD_TRANSITIVE", 409)] {
        let subject = common::unique("transitive-");
        assert_eq!(
            api.put(&format!("/config/{subject}"), json!({"compatibility": level}))
                .await
                .0,
            200
        );
        assert_eq!(api.register(&subject, &v1).await.0, 200, "{level} v1");
        assert_eq!(api.register(&subject, &v2).await.0, 200, "{level} v2");
        assert_eq!(api.register(&subject, &v3).await.0, v3_status, "{level} v3");
    }
}

#[tokio::test]
async fn state_survives_a_kill() {
    let reg = RegistryProcess::start();
    let api = Api::new(&reg);
    assert_eq!(api.register("a-value", V1).await, (200, json!({"id": 1})));
    assert_eq!(api.register("a-value", V2).await, (200, json!({"id": 2})));
    assert_eq!(api.register("b-value", V2).await, (200, json!({"id": 2})));
    assert_eq!(
        api.put("/config", json!({"compatibility": "FORWARD"})).await.0,
        200
    );
    assert_eq!(
        api.put("/config/b-value", json!({"compatibility": "NONE"}))
            .await
            .0,
        200
    );
    assert_eq!(api.delete("/subjects/a-value/versions/1").await.0, 200);
    let paths = [
        "/subjects",
        "/subjects?deleted=true",
        "/subjects/a-value/versions",
        "/subjects/a-value/versions?deleted=true",
        "/subjects/a-value/versions/latest",
        "/subjects/b-value/versions/1",
        "/schemas/ids/1",
        "/schemas/ids/2/versions",
        "/config",
        "/config/b-value",
    ];
    let mut before = Vec::new();
    for p in paths {
        before.push(api.get(p).await);
    }
    let dir = reg.kill();

    let reg = RegistryProcess::start_in(&dir);
    let api = Api::new(&reg);
    for (p, want) in paths.iter().zip(&before) {
        assert_eq!(&api.get(p).await, want, "{p} changed across the restart");
    }
    // A soft-deleted version is still soft-deleted: permanent delete works, a second soft one does not.
    assert_error(api.delete("/subjects/a-value/versions/1").await, 404, 40406);
    // New ids continue after the old ones.
    let v3 = r#"{"type":"record","name":"Other","fields":[{"name":"z","type":"double"}]}"#;
    assert_eq!(api.register("c-value", v3).await, (200, json!({"id": 3})));
    drop(reg);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn concurrent_registrations_of_one_schema_get_one_id() {
    let reg = RegistryProcess::start();
    let api = Api::new(&reg);
    let attempts = (0..32).map(|i| {
        let api = &api;
        async move {
            let subject = if i % 2 == 0 { "same-value" } else { "other-value" };
            api.register(subject, V2).await
        }
    });
    let results = futures::future::join_all(attempts).await;
    assert!(
        results.iter().all(|r| *r == (200, json!({"id": 1}))),
        "{results:?}"
    );
    assert_eq!(api.get("/subjects/same-value/versions").await, (200, json!([1])));
    assert_eq!(api.get("/subjects/other-value/versions").await, (200, json!([1])));
}
