//! The API fuzzed from its own OpenAPI document: requests generated from
//! each operation's parameters and body schema, valid and broken (missing
//! fields, wrong types, text that is not JSON, odd ids and keys), never
//! get a 5xx, and every 4xx is a problem document.

// Helpers of a test: a malformed document must fail the test at once.
#![allow(clippy::expect_used)]

mod support;

use axum::http::Method;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use serde_json::{json, Map, Value};
use support::{memory_bank, router, send_raw, verified_account};

/// One operation of the document.
#[derive(Debug, Clone)]
struct Operation {
    method: Method,
    path: String,
    /// (name, where: path | query | header, schema)
    params: Vec<(String, String, Value)>,
    body: Option<Value>,
}

fn operations(document: &Value) -> Vec<Operation> {
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("a path item") {
            let method = method.to_uppercase().parse().expect("a method");
            let params = operation["parameters"]
                .as_array()
                .map(|params| {
                    params
                        .iter()
                        .map(|p| {
                            let name = p["name"].as_str().expect("a name").to_owned();
                            (name, p["in"].as_str().expect("a location").to_owned(), p["schema"].clone())
                        })
                        .collect()
                })
                .unwrap_or_default();
            let body = operation["requestBody"]["content"]["application/json"]["schema"]
                .as_object()
                .map(|schema| resolve(document, &Value::Object(schema.clone())));
            operations.push(Operation { method, path: path.clone(), params, body });
        }
    }
    operations
}

/// Follows a `$ref` into the document's components.
fn resolve(document: &Value, schema: &Value) -> Value {
    match schema["$ref"].as_str() {
        Some(reference) => {
            let pointer = reference.trim_start_matches('#');
            resolve(document, document.pointer(pointer).expect("the reference resolves"))
        }
        None => schema.clone(),
    }
}

/// Any JSON: what a confused client might send.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_filter("finite", |f| f.is_finite()).prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map("[a-z_]{1,8}", inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// An id: the seeded account most often, else anything from plain to hostile.
fn id() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => Just("ada".to_owned()),
        2 => "[a-z0-9-]{1,12}",
        1 => ".{0,20}",
        1 => Just("x".repeat(200)),
    ]
}

/// A value fitting `schema`, or now and then one that does not.
fn value_for(schema: &Value) -> BoxedStrategy<Value> {
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fitting: BoxedStrategy<Value> = if types.contains(&"integer") {
        prop_oneof![
            4 => (0u64..100_000).prop_map(Value::from),
            1 => any::<u64>().prop_map(Value::from),
            1 => any::<i64>().prop_map(Value::from),
        ]
        .boxed()
    } else if types.contains(&"string") {
        id().prop_map(Value::from).boxed()
    } else if types.contains(&"object") {
        object_for(schema)
    } else {
        any_json().boxed()
    };
    if types.contains(&"null") {
        prop_oneof![3 => fitting, 1 => Just(Value::Null)].boxed()
    } else {
        prop_oneof![9 => fitting, 1 => any_json()].boxed()
    }
}

/// An object with the schema's properties, some left out now and then.
fn object_for(schema: &Value) -> BoxedStrategy<Value> {
    let properties: Vec<(String, Value)> = schema["properties"]
        .as_object()
        .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = properties
        .into_iter()
        .map(|(name, schema)| {
            prop_oneof![9 => value_for(&schema).prop_map(move |v| Some((name.clone(), v))), 1 => Just(None)]
                .boxed()
        })
        .collect();
    fields.prop_map(|fields| Value::Object(fields.into_iter().flatten().collect::<Map<_, _>>())).boxed()
}

/// A generated request: method, URI, body text, headers.
type Generated = (Method, String, Option<String>, Vec<(String, String)>);

fn request_for(operation: Operation) -> BoxedStrategy<Generated> {
    let params: Vec<BoxedStrategy<(String, String, Option<String>)>> = operation
        .params
        .iter()
        .map(|(name, location, schema)| {
            let (name, location) = (name.clone(), location.clone());
            let value: BoxedStrategy<Option<String>> = match location.as_str() {
                "path" => id().prop_map(Some).boxed(),
                "header" => prop_oneof![
                    2 => Just(None),
                    2 => Just(()).prop_map(|()| Some(uuid::Uuid::now_v7().to_string())),
                    1 => "[ -~]{0,40}".prop_map(Some),
                ]
                .boxed(),
                _ => prop_oneof![
                    2 => Just(None),
                    2 => value_for(schema).prop_map(|v| Some(v.as_str().map_or_else(|| v.to_string(), str::to_owned))),
                    1 => ".{0,10}".prop_map(Some),
                ]
                .boxed(),
            };
            value.prop_map(move |v| (name.clone(), location.clone(), v)).boxed()
        })
        .collect();
    let body: BoxedStrategy<Option<String>> = match &operation.body {
        Some(schema) => prop_oneof![
            6 => object_for(schema).prop_map(|v| Some(v.to_string())),
            1 => any_json().prop_map(|v| Some(v.to_string())),
            1 => ".{0,30}".prop_map(Some),
            1 => Just(None),
        ]
        .boxed(),
        None => prop_oneof![3 => Just(None), 1 => any_json().prop_map(|v| Some(v.to_string()))].boxed(),
    };
    (params, body)
        .prop_map(move |(params, body)| {
            let mut path = operation.path.clone();
            let mut query = Vec::new();
            let mut headers = Vec::new();
            for (name, location, value) in params {
                let Some(value) = value else { continue };
                match location.as_str() {
                    "path" => path = path.replace(&format!("{{{name}}}"), &encode(&value)),
                    "header" => headers.push((name, value)),
                    _ => query.push(format!("{name}={}", encode(&value))),
                }
            }
            if !query.is_empty() {
                path = format!("{path}?{}", query.join("&"));
            }
            (operation.method.clone(), path, body, headers)
        })
        .boxed()
}

/// Percent-encodes everything but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[test]
fn no_generated_request_gets_a_5xx_and_every_4xx_is_a_problem_document() {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let (es, app) = runtime.block_on(async {
        let es = memory_bank().await;
        let app = router(&es);
        verified_account(&app, "ada", 1_000_000).await;
        (es, app)
    });
    let document = runtime
        .block_on(async { send_raw(&app, Method::GET, "/openapi.json", None, &[]).await.ok(200).clone() });
    let operations = operations(&document);
    assert_eq!(operations.len(), 11, "every operation of the document is fuzzed");
    let strategy = prop::sample::select(operations).prop_flat_map(request_for);
    let mut runner = TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
    let seen = std::cell::RefCell::new(std::collections::BTreeMap::<u16, usize>::new());
    let result = runner.run(&strategy, |(method, uri, body, headers)| {
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (n.as_str(), v.as_str())).collect();
        let answer = runtime.block_on(send_raw(&app, method.clone(), &uri, body.as_deref(), &headers));
        *seen.borrow_mut().entry(answer.status.as_u16()).or_default() += 1;
        prop_assert!(!answer.status.is_server_error(), "{method} {uri} {body:?} {headers:?}: {answer:?}");
        if answer.status.is_client_error() {
            prop_assert_eq!(
                &answer.content_type,
                "application/problem+json",
                "{} {}: {:?}",
                method,
                uri,
                answer
            );
            prop_assert_eq!(&answer.body["status"], &json!(answer.status.as_u16()));
            prop_assert!(answer.body["type"].is_string() && answer.body["detail"].is_string(), "{answer:?}");
        }
        Ok(())
    });
    runtime.block_on(es.shutdown());
    if let Err(failure) = result {
        panic!("{failure}");
    }
    // The generator reaches the success paths as well as the errors.
    let seen = seen.into_inner();
    for status in [200, 201, 400, 404, 422] {
        assert!(seen.contains_key(&status), "no {status} among {seen:?}");
    }
}
