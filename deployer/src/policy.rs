//! Policy documents (IAM, bucket, Lambda resource policies): rendering ours and comparing after normalisation.
//!
//! AWS hands documents back reordered, URL-encoded (IAM), with single-element lists collapsed to
//! strings and sometimes without `Version`; `normalize` erases all of that so that equal
//! meaning compares equal and `up` stays a no-op.

use serde_json::{Map, Value, json};

/// The canonical form of a policy document for comparison: URL-decoded, `Version`/`Id`
/// dropped, every string-or-list field a sorted list, statements sorted.
pub fn normalize(document: &Value) -> Value {
    let mut statements: Vec<Value> = match document.get("Statement") {
        Some(Value::Array(list)) => list.iter().map(normalize_statement).collect(),
        Some(single) => vec![normalize_statement(single)],
        None => Vec::new(),
    };
    statements.sort_by_key(|s| s.to_string());
    json!({ "Statement": statements })
}

/// Parses a document as returned by AWS (possibly URL-encoded) and normalises it.
pub fn parse(text: &str) -> Result<Value, String> {
    let decoded;
    let text = if text.trim_start().starts_with('%') {
        decoded = percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| format!("policy document is not UTF-8 after URL-decoding: {e}"))?;
        decoded.as_ref()
    } else {
        text
    };
    let value: Value =
        serde_json::from_str(text).map_err(|e| format!("policy document is not JSON: {e}"))?;
    Ok(normalize(&value))
}

/// True when two documents mean the same thing.
pub fn equivalent(a: &Value, b: &Value) -> bool {
    normalize(a) == normalize(b)
}

fn normalize_statement(statement: &Value) -> Value {
    let Value::Object(fields) = statement else {
        return statement.clone();
    };
    let mut out = Map::new();
    for (key, value) in fields {
        let value = match key.as_str() {
            "Action" | "NotAction" | "Resource" | "NotResource" => sorted_list(value),
            "Principal" | "NotPrincipal" => normalize_principal(value),
            "Condition" => normalize_condition(value),
            _ => value.clone(),
        };
        out.insert(key.clone(), value);
    }
    Value::Object(out)
}

fn normalize_principal(value: &Value) -> Value {
    match value {
        Value::Object(kinds) => Value::Object(
            kinds
                .iter()
                .map(|(kind, ids)| (kind.clone(), sorted_list(ids)))
                .collect(),
        ),
        // `"*"` and `{"AWS": "*"}` mean the same.
        Value::String(s) if s == "*" => json!({ "AWS": ["*"] }),
        other => other.clone(),
    }
}

fn normalize_condition(value: &Value) -> Value {
    let Value::Object(operators) = value else {
        return value.clone();
    };
    Value::Object(
        operators
            .iter()
            .map(|(operator, keys)| {
                let keys = match keys {
                    // Condition keys are case-insensitive (`aws:SourceArn` = `AWS:SourceArn`).
                    Value::Object(keys) => Value::Object(
                        keys.iter()
                            .map(|(k, v)| (k.to_ascii_lowercase(), sorted_list(v)))
                            .collect(),
                    ),
                    other => other.clone(),
                };
                (operator.clone(), keys)
            })
            .collect(),
    )
}

/// A string or a list of values as a sorted list of strings (non-strings kept as JSON text).
fn sorted_list(value: &Value) -> Value {
    let mut items: Vec<String> = match value {
        Value::Array(list) => list.iter().map(as_text).collect(),
        other => vec![as_text(other)],
    };
    items.sort();
    items.dedup();
    Value::Array(items.into_iter().map(Value::String).collect())
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// The statement with `sid` in a document, if any.
pub fn statement<'a>(document: &'a Value, sid: &str) -> Option<&'a Value> {
    match document.get("Statement")? {
        Value::Array(list) => list
            .iter()
            .find(|s| s.get("Sid").and_then(Value::as_str) == Some(sid)),
        single => (single.get("Sid").and_then(Value::as_str) == Some(sid)).then_some(single),
    }
}

/// `document` with the statement `sid` replaced by `replacement` (or removed when `None`),
/// every other statement kept as it was.
pub fn with_statement(document: Option<&Value>, sid: &str, replacement: Option<Value>) -> Value {
    let mut statements: Vec<Value> = match document.and_then(|d| d.get("Statement")) {
        Some(Value::Array(list)) => list.clone(),
        Some(single) => vec![single.clone()],
        None => Vec::new(),
    };
    statements.retain(|s| s.get("Sid").and_then(Value::as_str) != Some(sid));
    statements.extend(replacement);
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// A short one-line rendering for plans.
pub fn summary(document: &Value) -> String {
    let text = normalize(document).to_string();
    if text.len() > 160 {
        format!("{}…", &text[..text.floor_char_boundary(160)])
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_meaning_compares_equal() {
        let ours = json!({
            "Version": "2012-10-17",
            "Statement": [
                {"Effect": "Allow", "Action": ["s3:PutObject", "s3:AbortMultipartUpload"], "Resource": ["arn:aws:s3:::b/*"]},
                {"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*"}
            ]
        });
        let theirs = json!({
            "Statement": [
                {"Resource": "arn:aws:s3:::a/*", "Action": ["s3:GetObject"], "Effect": "Allow"},
                {"Effect": "Allow", "Action": ["s3:AbortMultipartUpload", "s3:PutObject"], "Resource": "arn:aws:s3:::b/*"}
            ]
        });
        assert!(equivalent(&ours, &theirs));
    }

    #[test]
    fn iam_url_encoding_is_undone() {
        let encoded = "%7B%22Version%22%3A%222012-10-17%22%2C%22Statement%22%3A%5B%7B%22Effect%22%3A%22Allow%22%2C%22Principal%22%3A%7B%22Service%22%3A%22lambda.amazonaws.com%22%7D%2C%22Action%22%3A%22sts%3AAssumeRole%22%7D%5D%7D";
        let plain = json!({"Statement": {"Effect": "Allow", "Principal": {"Service": ["lambda.amazonaws.com"]}, "Action": ["sts:AssumeRole"]}});
        assert_eq!(parse(encoded).unwrap(), normalize(&plain));
    }

    #[test]
    fn each_real_difference_is_seen() {
        let base = json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*",
            "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}]});
        let variants = [
            json!({"Statement": [{"Effect": "Deny", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*", "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "arn:aws:s3:::a/*", "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::b/*", "Condition": {"StringEquals": {"aws:SourceAccount": "1"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*", "Condition": {"StringEquals": {"aws:SourceAccount": "2"}}}]}),
            json!({"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::a/*"}]}),
        ];
        for v in variants {
            assert!(!equivalent(&base, &v), "{v}");
        }
    }

    #[test]
    fn condition_keys_and_wildcard_principals_are_canonical() {
        let a = json!({"Statement": [{"Principal": "*", "Condition": {"ArnLike": {"AWS:SourceArn": "x"}}}]});
        let b = json!({"Statement": [{"Principal": {"AWS": "*"}, "Condition": {"ArnLike": {"aws:SourceArn": ["x"]}}}]});
        assert!(equivalent(&a, &b));
    }

    #[test]
    fn statements_are_replaced_by_sid_keeping_the_others() {
        let doc = json!({"Statement": [{"Sid": "theirs", "Effect": "Allow"}, {"Sid": "ours", "Effect": "Deny"}]});
        let new = with_statement(
            Some(&doc),
            "ours",
            Some(json!({"Sid": "ours", "Effect": "Allow"})),
        );
        assert_eq!(
            statement(&new, "theirs"),
            Some(&json!({"Sid": "theirs", "Effect": "Allow"}))
        );
        assert_eq!(statement(&new, "ours").unwrap()["Effect"], "Allow");
        let removed = with_statement(Some(&new), "ours", None);
        assert_eq!(statement(&removed, "ours"), None);
        assert_eq!(removed["Statement"].as_array().unwrap().len(), 1);
    }
}
