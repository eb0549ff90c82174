//! JSON containment as Postgres' `@>` defines it, for stores that filter
//! documents themselves.

use serde_json::Value;

/// Whether `document` contains `filter` in the sense of Postgres' `@>`.
pub fn json_contains(document: &Value, filter: &Value) -> bool {
    match (document, filter) {
        // Postgres' one exception to matching structure, at the top level
        // only: an array contains a bare scalar that is one of its elements.
        (Value::Array(doc), scalar) if !scalar.is_object() && !scalar.is_array() => {
            doc.iter().any(|d| same_scalar(d, scalar))
        }
        _ => contains(document, filter),
    }
}

/// Structural containment below the top level.
fn contains(document: &Value, filter: &Value) -> bool {
    match (document, filter) {
        (Value::Object(doc), Value::Object(want)) => {
            want.iter().all(|(key, value)| doc.get(key).is_some_and(|have| contains(have, value)))
        }
        (Value::Array(doc), Value::Array(want)) => want.iter().all(|w| doc.iter().any(|d| contains(d, w))),
        (have, want) => same_scalar(have, want),
    }
}

/// Scalar equality as jsonb sees it: numbers compare by value, so `10`
/// equals `10.0`.
fn same_scalar(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Number(a), Value::Number(b)) => {
            a == b || ((a.is_f64() || b.is_f64()) && a.as_f64() == b.as_f64())
        }
        (Value::Object(_) | Value::Array(_), _) | (_, Value::Object(_) | Value::Array(_)) => false,
        (have, want) => have == want,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::json_contains;

    #[test]
    fn containment_follows_postgres_semantics() {
        let doc = json!({"owner": "ada", "tags": ["a", "b"], "n": {"x": 1, "y": 2}});
        assert!(json_contains(&doc, &json!({})));
        assert!(json_contains(&doc, &json!({"owner": "ada"})));
        assert!(!json_contains(&doc, &json!({"owner": "bob"})));
        assert!(json_contains(&doc, &json!({"tags": ["b"]})));
        assert!(!json_contains(&doc, &json!({"tags": ["c"]})));
        assert!(json_contains(&doc, &json!({"n": {"x": 1}})));
        assert!(!json_contains(&doc, &json!({"missing": null})));
        assert!(json_contains(&json!(["a", 1]), &json!("a")), "a top-level array holds a bare scalar");
        assert!(!json_contains(&doc, &json!({"tags": "a"})), "below the top level it does not");
        assert!(!json_contains(&json!([["a"]]), &json!(["a"])), "nor does a nested array");
        assert!(json_contains(&json!({"n": 10.0}), &json!({"n": 10})), "numbers compare by value");
        assert!(json_contains(&json!([10]), &json!(10.0)));
        assert!(!json_contains(&json!({"n": 10.5}), &json!({"n": 10})));
    }
}
