//! `config/deploy-policy.json`, the least-privilege policy of the identity that runs `up`,
//! `down`, `smoke`, `status`, `query`, `failed`, `redrive` and `reprocess`, kept in sync with
//! the code: every SDK operation the deployer's source calls (found by reading the source) is
//! allowed by it, and it allows nothing else but the few actions AWS checks behind a call
//! (`iam:PassRole` for `CreateFunction`, what Athena does for `query`).

use std::collections::BTreeSet;
use std::path::Path;

/// Actions AWS requires behind a call rather than for it, with why.
const INDIRECT: &[(&str, &str)] = &[
    (
        "iam:PassRole",
        "CreateFunction and UpdateFunctionConfiguration hand the role to Lambda",
    ),
    (
        "s3:GetBucketLocation",
        "Athena reads the results bucket's region",
    ),
    (
        "s3:ListMultipartUploadParts",
        "Athena writes query results in parts",
    ),
    (
        "glue:GetPartitions",
        "Athena plans a query over the partitioned tables",
    ),
];

/// The IAM actions an SDK operation needs: `service:Operation`, except where S3 and Lambda
/// name them otherwise.
fn actions(service: &str, operation: &str) -> Vec<String> {
    let special: &[(&str, &str, &[&str])] = &[
        (
            "s3",
            "delete_objects",
            &["s3:DeleteObject", "s3:DeleteObjectVersion"],
        ),
        (
            "s3",
            "get_bucket_encryption",
            &["s3:GetEncryptionConfiguration"],
        ),
        (
            "s3",
            "put_bucket_encryption",
            &["s3:PutEncryptionConfiguration"],
        ),
        (
            "s3",
            "get_bucket_lifecycle_configuration",
            &["s3:GetLifecycleConfiguration"],
        ),
        (
            "s3",
            "put_bucket_lifecycle_configuration",
            &["s3:PutLifecycleConfiguration"],
        ),
        (
            "s3",
            "get_bucket_notification_configuration",
            &["s3:GetBucketNotification"],
        ),
        (
            "s3",
            "put_bucket_notification_configuration",
            &["s3:PutBucketNotification"],
        ),
        (
            "s3",
            "get_public_access_block",
            &["s3:GetBucketPublicAccessBlock"],
        ),
        (
            "s3",
            "put_public_access_block",
            &["s3:PutBucketPublicAccessBlock"],
        ),
        ("s3", "head_bucket", &["s3:ListBucket"]),
        ("s3", "head_object", &["s3:GetObject"]),
        ("s3", "list_buckets", &["s3:ListAllMyBuckets"]),
        ("s3", "list_objects_v2", &["s3:ListBucket"]),
        ("s3", "list_object_versions", &["s3:ListBucketVersions"]),
        (
            "s3",
            "list_multipart_uploads",
            &["s3:ListBucketMultipartUploads"],
        ),
        ("lambda", "invoke", &["lambda:InvokeFunction"]),
        (
            "sqs",
            "change_message_visibility_batch",
            &["sqs:ChangeMessageVisibility"],
        ),
        // Needs no permission: every identity may ask who it is.
        ("sts", "get_caller_identity", &[]),
    ];
    if let Some((_, _, names)) = special
        .iter()
        .find(|(s, o, _)| *s == service && *o == operation)
    {
        return names.iter().map(|n| (*n).to_owned()).collect();
    }
    let pascal: String = operation
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_ascii_uppercase().to_string() + c.as_str())
                .unwrap_or_default()
        })
        .collect();
    vec![format!("{service}:{pascal}")]
}

/// (client, operation) of every `<client>.<operation>()` call in `text`, where `<client>` is
/// one of the deployer's SDK clients (`aws.s3.put_object()`, `s3.put_bucket_tagging()`,
/// across line breaks too).
fn calls(text: &str) -> BTreeSet<(String, String)> {
    const CLIENTS: [&str; 10] = [
        "s3",
        "iam",
        "lambda",
        "sts",
        "logs",
        "sqs",
        "glue",
        "athena",
        "sns",
        "cloudwatch",
    ];
    let bytes = text.as_bytes();
    let mut found = BTreeSet::new();
    let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    for client in CLIENTS {
        let mut from = 0;
        while let Some(at) = text[from..].find(client) {
            let start = from + at;
            let end = start + client.len();
            from = end;
            if start > 0 && word(bytes[start - 1]) || end < bytes.len() && word(bytes[end]) {
                continue;
            }
            let rest = text[end..].trim_start();
            let Some(rest) = rest.strip_prefix('.') else {
                continue;
            };
            let rest = rest.trim_start();
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '_')
                .collect();
            if !name.is_empty() && rest[name.len()..].starts_with("()") && name != "clone" {
                found.insert((client.to_owned(), name));
            }
        }
    }
    found
}

fn sources(dir: &Path, out: &mut Vec<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(std::fs::read_to_string(&path).unwrap());
        }
    }
}

#[test]
fn the_deploy_policy_allows_exactly_what_the_deployer_calls() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut texts = Vec::new();
    sources(&root.join("src"), &mut texts);
    let used: BTreeSet<(String, String)> = texts.iter().flat_map(|t| calls(t)).collect();
    assert!(used.len() > 80, "the scan found too little: {used:?}");
    assert!(used.contains(&("s3".into(), "put_bucket_tagging".into())));
    let needed: BTreeSet<String> = used
        .iter()
        .flat_map(|(service, op)| actions(service, op))
        .chain(INDIRECT.iter().map(|(a, _)| (*a).to_owned()))
        .collect();

    let policy: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root.join("../config/deploy-policy.json")).unwrap(),
    )
    .unwrap();
    let mut allowed = BTreeSet::new();
    for statement in policy["Statement"].as_array().unwrap() {
        assert_eq!(statement["Effect"], "Allow");
        for action in statement["Action"].as_array().unwrap() {
            let action = action.as_str().unwrap();
            assert!(!action.contains('*'), "a wildcard action: {action}");
            allowed.insert(action.to_owned());
        }
    }
    let missing: Vec<&String> = needed.difference(&allowed).collect();
    assert!(
        missing.is_empty(),
        "the deployer calls these, the policy does not allow them: {missing:?}"
    );
    let unused: Vec<&String> = allowed.difference(&needed).collect();
    assert!(
        unused.is_empty(),
        "the policy allows these, nothing calls them: {unused:?}"
    );
}

#[test]
fn the_scan_reads_calls_across_lines_and_local_clients() {
    let text = "let s3 = &aws.s3;\n s3.put_bucket_policy()\n aws.lambda\n    .invoke()\n .send(); my_s3.get_object() self.s3.clone()";
    let found = calls(text);
    assert!(found.contains(&("s3".into(), "put_bucket_policy".into())));
    assert!(found.contains(&("lambda".into(), "invoke".into())));
    assert!(
        !found
            .iter()
            .any(|(_, op)| op == "get_object" || op == "clone"),
        "{found:?}"
    );
    assert_eq!(actions("s3", "head_bucket"), ["s3:ListBucket"]);
    assert_eq!(
        actions("cloudwatch", "put_metric_alarm"),
        ["cloudwatch:PutMetricAlarm"]
    );
}
