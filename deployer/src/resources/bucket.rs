//! S3 buckets: existence, ownership tag and the security baseline (public access block, SSE-S3,
//! owner-enforced objects, TLS-only policy, multipart-abort lifecycle), and for ingest and raw
//! versioning with an expiry of noncurrent versions.

use anyhow::{Context, Result, bail};
use aws_sdk_s3::operation::create_bucket::CreateBucketError;
use aws_sdk_s3::operation::head_bucket::HeadBucketError;
use aws_sdk_s3::types::{
    AbortIncompleteMultipartUpload, BucketLifecycleConfiguration, BucketLocationConstraint,
    BucketVersioningStatus, CreateBucketConfiguration, Delete, ExpirationStatus, LifecycleRule,
    LifecycleRuleFilter, NoncurrentVersionExpiration, ObjectIdentifier, ObjectOwnership,
    OwnershipControls, OwnershipControlsRule, PublicAccessBlockConfiguration, ServerSideEncryption,
    ServerSideEncryptionByDefault, ServerSideEncryptionConfiguration, ServerSideEncryptionRule,
    Tag, Tagging, VersioningConfiguration,
};
use serde_json::{Value, json};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, Patience, error_code, retry_while, sdk_error};
use crate::config::BucketRole;
use crate::plan::{Describe, PropertyChange};
use crate::policy;

pub const KIND: &str = "s3 bucket";
/// Id of our lifecycle rule; other rules on the bucket are kept.
pub const LIFECYCLE_RULE_ID: &str = "csv-ingest-abort-incomplete-multipart-uploads";
/// Id of our rule expiring noncurrent versions (ingest and raw).
pub const NONCURRENT_RULE_ID: &str = "csv-ingest-expire-noncurrent-versions";
/// Sid of our bucket policy statement; other statements are kept.
pub const TLS_ONLY_SID: &str = "CsvIngestDenyInsecureTransport";
const ABORT_AFTER_DAYS: i32 = 1;
const SSE_S3: &str = "AES256";
const OWNER_ENFORCED: &str = "BucketOwnerEnforced";

/// A bucket as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Spec {
    pub role: BucketRole,
    pub name: String,
    pub region: String,
    pub partition: String,
    pub stack: String,
    pub tags: Tags,
    /// Versioning on (ingest: the function reads the version each event names; raw: every
    /// audit copy is kept). Off means "not managed": we never suspend it.
    pub versioned: bool,
    /// Days noncurrent versions are kept before they expire; `None`: no rule of ours.
    pub noncurrent_days: Option<i32>,
}

impl Spec {
    pub fn arn(&self) -> String {
        format!("arn:{}:s3:::{}", self.partition, self.name)
    }

    /// Our bucket policy statement: deny any request not made over TLS.
    pub fn tls_only_statement(&self) -> Value {
        json!({
            "Sid": TLS_ONLY_SID,
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [self.arn(), format!("{}/*", self.arn())],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}}
        })
    }
}

/// A bucket as it is.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// It exists but belongs to another AWS account (HeadBucket answered 403).
    pub other_account: bool,
    pub tags: Tags,
    /// BlockPublicAcls, IgnorePublicAcls, BlockPublicPolicy, RestrictPublicBuckets.
    pub public_access_block: Option<[bool; 4]>,
    /// The default encryption algorithm.
    pub encryption: Option<String>,
    pub object_ownership: Option<String>,
    /// The whole bucket policy document.
    pub policy: Option<Value>,
    pub lifecycle_rules: Vec<LifecycleRule>,
    /// `Enabled` or `Suspended`; `None` when never enabled.
    pub versioning: Option<String>,
    /// In our account, without any tag, and exactly as `CreateBucket` leaves a bucket: no
    /// object, policy, lifecycle rule or versioning. An `up` interrupted between
    /// `CreateBucket` and `PutBucketTagging` leaves one (tags are not sent with
    /// `CreateBucket`: that needs `s3:TagResource`); see `stack::diff` for when it is adopted.
    pub pristine: bool,
}

impl Observed {
    /// Why `up`/`down` must not touch this bucket, if so.
    pub fn ownership_problem(&self, stack: &str) -> Option<String> {
        if self.other_account {
            return Some("the name is taken by another AWS account; choose another bucket name in the config".to_owned());
        }
        ownership_problem(&self.tags, stack)
    }

    fn our_rule(&self, id: &str) -> Option<&LifecycleRule> {
        self.lifecycle_rules
            .iter()
            .find(|r| r.id() == Some(id) && r.status() == &ExpirationStatus::Enabled)
    }

    fn our_abort_days(&self) -> Option<i32> {
        self.our_rule(LIFECYCLE_RULE_ID)
            .and_then(|r| r.abort_incomplete_multipart_upload())
            .and_then(|a| a.days_after_initiation())
    }

    fn our_noncurrent_days(&self) -> Option<i32> {
        self.our_rule(NONCURRENT_RULE_ID)
            .and_then(|r| r.noncurrent_version_expiration())
            .and_then(|e| e.noncurrent_days())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Change {
    Create,
    Tags {
        observed: Tags,
        set: Tags,
    },
    PublicAccessBlock {
        old: Option<[bool; 4]>,
    },
    Encryption {
        old: Option<String>,
    },
    ObjectOwnership {
        old: Option<String>,
    },
    /// Put `document` (the current policy with our statement replaced).
    TlsOnlyPolicy {
        old: Option<Value>,
        document: Value,
    },
    /// Put `rules` (the current rules with ours replaced). Every lifecycle change carries the
    /// whole document; `apply` puts it once.
    AbortMultipartLifecycle {
        old: Option<i32>,
        rules: Vec<LifecycleRule>,
    },
    NoncurrentExpiration {
        old: Option<i32>,
        new: Option<i32>,
        rules: Vec<LifecycleRule>,
    },
    Versioning {
        old: Option<String>,
    },
}

impl Describe for Change {
    fn describe(&self) -> PropertyChange {
        match self {
            Change::Create => PropertyChange::set("exists", "true"),
            Change::Tags { observed, set } => describe_tags(observed, set),
            Change::PublicAccessBlock { old } => PropertyChange::replace(
                "public_access_block",
                old.map(|flags| format!("{flags:?}")),
                "all four blocked",
            ),
            Change::Encryption { old } => {
                PropertyChange::replace("default_encryption", old.clone(), "SSE-S3 (AES256)")
            }
            Change::ObjectOwnership { old } => {
                PropertyChange::replace("object_ownership", old.clone(), OWNER_ENFORCED)
            }
            Change::TlsOnlyPolicy { old, .. } => PropertyChange::replace(
                "policy.deny_insecure_transport",
                old.as_ref().map(policy::summary),
                "deny when aws:SecureTransport=false",
            ),
            Change::AbortMultipartLifecycle { old, .. } => PropertyChange::replace(
                "lifecycle.abort_incomplete_multipart_days",
                old.map(|d| d.to_string()),
                ABORT_AFTER_DAYS.to_string(),
            ),
            Change::NoncurrentExpiration { old, new, .. } => PropertyChange::update(
                "lifecycle.noncurrent_version_expiration_days",
                old.map_or_else(|| "none".to_owned(), |d| d.to_string()),
                new.map_or_else(|| "none".to_owned(), |d| d.to_string()),
            ),
            Change::Versioning { old } => {
                PropertyChange::replace("versioning", old.clone(), "Enabled")
            }
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, Change::Create)
    }
}

/// What must change for `observed` (`None`: the bucket does not exist) to match `spec`.
pub fn diff(spec: &Spec, observed: Option<&Observed>) -> Vec<Change> {
    let absent = Observed::default();
    let mut changes = Vec::new();
    let o = match observed {
        Some(o) => o,
        None => {
            changes.push(Change::Create);
            &absent
        }
    };
    let set = missing_tags(&spec.tags, &o.tags);
    if !set.is_empty() {
        changes.push(Change::Tags {
            observed: o.tags.clone(),
            set,
        });
    }
    if o.public_access_block != Some([true; 4]) {
        changes.push(Change::PublicAccessBlock {
            old: o.public_access_block,
        });
    }
    if o.encryption.as_deref() != Some(SSE_S3) {
        changes.push(Change::Encryption {
            old: o.encryption.clone(),
        });
    }
    if o.object_ownership.as_deref() != Some(OWNER_ENFORCED) {
        changes.push(Change::ObjectOwnership {
            old: o.object_ownership.clone(),
        });
    }
    let ours = spec.tls_only_statement();
    let current = o
        .policy
        .as_ref()
        .and_then(|p| policy::statement(p, TLS_ONLY_SID));
    let same = current.is_some_and(|c| {
        policy::equivalent(
            &json!({"Statement": [c]}),
            &json!({"Statement": [ours.clone()]}),
        )
    });
    if !same {
        changes.push(Change::TlsOnlyPolicy {
            old: current.cloned(),
            document: policy::with_statement(o.policy.as_ref(), TLS_ONLY_SID, Some(ours)),
        });
    }
    // The lifecycle document as it should be: their rules, then ours.
    let rules = || {
        let mut rules: Vec<LifecycleRule> = o
            .lifecycle_rules
            .iter()
            .filter(|r| r.id() != Some(LIFECYCLE_RULE_ID) && r.id() != Some(NONCURRENT_RULE_ID))
            .cloned()
            .collect();
        rules.extend(abort_multipart_rule());
        rules.extend(spec.noncurrent_days.and_then(noncurrent_rule));
        rules
    };
    if o.our_abort_days() != Some(ABORT_AFTER_DAYS) {
        changes.push(Change::AbortMultipartLifecycle {
            old: o.our_abort_days(),
            rules: rules(),
        });
    }
    if o.our_noncurrent_days() != spec.noncurrent_days {
        changes.push(Change::NoncurrentExpiration {
            old: o.our_noncurrent_days(),
            new: spec.noncurrent_days,
            rules: rules(),
        });
    }
    if spec.versioned && o.versioning.as_deref() != Some("Enabled") {
        changes.push(Change::Versioning {
            old: o.versioning.clone(),
        });
    }
    changes
}

fn noncurrent_rule(days: i32) -> Option<LifecycleRule> {
    LifecycleRule::builder()
        .id(NONCURRENT_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .noncurrent_version_expiration(
            NoncurrentVersionExpiration::builder()
                .noncurrent_days(days)
                .build(),
        )
        .build()
        .ok()
}

fn abort_multipart_rule() -> Option<LifecycleRule> {
    LifecycleRule::builder()
        .id(LIFECYCLE_RULE_ID)
        .status(ExpirationStatus::Enabled)
        .filter(LifecycleRuleFilter::builder().prefix("").build())
        .abort_incomplete_multipart_upload(
            AbortIncompleteMultipartUpload::builder()
                .days_after_initiation(ABORT_AFTER_DAYS)
                .build(),
        )
        .build()
        .ok()
}

/// Reads a bucket and every property we manage. `None` when it does not exist.
pub async fn read(aws: &Aws, name: &str, stack: &str) -> Result<Option<Observed>> {
    let Some(mut observed) = read_existence(aws, name).await? else {
        return Ok(None);
    };
    let untagged = !observed.other_account && observed.tags.is_empty();
    if observed.ownership_problem(stack).is_some() && !untagged {
        // Someone else's: what else it has is none of our business.
        return Ok(Some(observed));
    }
    let s3 = &aws.s3;
    let (pab, encryption, ownership, policy, lifecycle, versioning) = tokio::join!(
        s3.get_public_access_block().bucket(name).send(),
        s3.get_bucket_encryption().bucket(name).send(),
        s3.get_bucket_ownership_controls().bucket(name).send(),
        s3.get_bucket_policy().bucket(name).send(),
        s3.get_bucket_lifecycle_configuration().bucket(name).send(),
        s3.get_bucket_versioning().bucket(name).send(),
    );
    let context = |what: &str| format!("reading s3 bucket {name} ({what})");
    observed.public_access_block = absent_if(pab, "NoSuchPublicAccessBlockConfiguration")
        .with_context(|| context("GetPublicAccessBlock"))?
        .and_then(|out| {
            out.public_access_block_configuration.map(|c| {
                [
                    c.block_public_acls.unwrap_or(false),
                    c.ignore_public_acls.unwrap_or(false),
                    c.block_public_policy.unwrap_or(false),
                    c.restrict_public_buckets.unwrap_or(false),
                ]
            })
        });
    observed.encryption = absent_if(encryption, "ServerSideEncryptionConfigurationNotFoundError")
        .with_context(|| context("GetBucketEncryption"))?
        .and_then(|out| {
            let rule = out
                .server_side_encryption_configuration?
                .rules
                .into_iter()
                .next()?;
            Some(
                rule.apply_server_side_encryption_by_default?
                    .sse_algorithm
                    .as_str()
                    .to_owned(),
            )
        });
    observed.object_ownership = absent_if(ownership, "OwnershipControlsNotFoundError")
        .with_context(|| context("GetBucketOwnershipControls"))?
        .and_then(|out| {
            let rule = out.ownership_controls?.rules.into_iter().next()?;
            Some(rule.object_ownership.as_str().to_owned())
        });
    observed.policy = match absent_if(policy, "NoSuchBucketPolicy")
        .with_context(|| context("GetBucketPolicy"))?
    {
        Some(out) => match out.policy() {
            Some(text) if !text.trim().is_empty() => Some(
                serde_json::from_str(text)
                    .with_context(|| format!("s3 bucket {name} has a policy that is not JSON"))?,
            ),
            _ => None,
        },
        None => None,
    };
    observed.lifecycle_rules = absent_if(lifecycle, "NoSuchLifecycleConfiguration")
        .with_context(|| context("GetBucketLifecycleConfiguration"))?
        .map(|out| out.rules.unwrap_or_default())
        .unwrap_or_default();
    observed.versioning = versioning
        .map_err(sdk_error)
        .with_context(|| context("GetBucketVersioning"))?
        .status()
        .map(|s| s.as_str().to_owned());
    if untagged {
        observed.pristine = observed.policy.is_none()
            && observed.lifecycle_rules.is_empty()
            && observed.versioning.is_none()
            && is_empty(aws, name).await?;
    }
    Ok(Some(observed))
}

async fn read_tags(aws: &Aws, name: &str) -> Result<Tags> {
    let out = absent_if(
        aws.s3.get_bucket_tagging().bucket(name).send().await,
        "NoSuchTagSet",
    )
    .with_context(|| format!("reading s3 bucket {name} (GetBucketTagging)"))?;
    Ok(out
        .map(|o| o.tag_set.into_iter().map(|t| (t.key, t.value)).collect())
        .unwrap_or_default())
}

/// `Ok(None)` when the call failed with the service error `code` (how S3 says "not configured"
/// for sub-resources it has no typed error for).
fn absent_if<T, E, R>(
    result: Result<T, aws_sdk_s3::error::SdkError<E, R>>,
    code: &str,
) -> Result<Option<T>>
where
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    match result {
        Ok(out) => Ok(Some(out)),
        Err(e) if error_code(&e) == Some(code) => Ok(None),
        Err(e) => Err(sdk_error(e)),
    }
}

/// Makes the changes, one call each, in order.
pub async fn apply(aws: &Aws, spec: &Spec, changes: &[Change]) -> Result<()> {
    let s3 = &aws.s3;
    let name = spec.name.as_str();
    let created = changes.iter().any(Change::is_create);
    let mut lifecycle_put = false;
    for change in changes {
        match change {
            Change::Create => create(aws, spec).await?,
            Change::Tags { observed, set } => {
                let mut all = observed.clone();
                all.extend(set.clone());
                let tags = all
                    .into_iter()
                    .map(|(k, v)| Tag::builder().key(k).value(v).build())
                    .collect::<Result<Vec<_>, _>>()?;
                let tagging = Tagging::builder().set_tag_set(Some(tags)).build()?;
                configure(created, name, "PutBucketTagging", || {
                    s3.put_bucket_tagging()
                        .bucket(name)
                        .tagging(tagging.clone())
                        .send()
                })
                .await?;
            }
            Change::PublicAccessBlock { .. } => {
                let all = PublicAccessBlockConfiguration::builder()
                    .block_public_acls(true)
                    .ignore_public_acls(true)
                    .block_public_policy(true)
                    .restrict_public_buckets(true)
                    .build();
                configure(created, name, "PutPublicAccessBlock", || {
                    s3.put_public_access_block()
                        .bucket(name)
                        .public_access_block_configuration(all.clone())
                        .send()
                })
                .await?;
            }
            Change::Encryption { .. } => {
                let rule = ServerSideEncryptionRule::builder()
                    .apply_server_side_encryption_by_default(
                        ServerSideEncryptionByDefault::builder()
                            .sse_algorithm(ServerSideEncryption::Aes256)
                            .build()?,
                    )
                    .build();
                let config = ServerSideEncryptionConfiguration::builder()
                    .rules(rule)
                    .build()?;
                configure(created, name, "PutBucketEncryption", || {
                    s3.put_bucket_encryption()
                        .bucket(name)
                        .server_side_encryption_configuration(config.clone())
                        .send()
                })
                .await?;
            }
            Change::ObjectOwnership { .. } => {
                let rule = OwnershipControlsRule::builder()
                    .object_ownership(ObjectOwnership::BucketOwnerEnforced)
                    .build()?;
                let controls = OwnershipControls::builder().rules(rule).build()?;
                configure(created, name, "PutBucketOwnershipControls", || {
                    s3.put_bucket_ownership_controls()
                        .bucket(name)
                        .ownership_controls(controls.clone())
                        .send()
                })
                .await?;
            }
            Change::TlsOnlyPolicy { document, .. } => {
                configure(created, name, "PutBucketPolicy", || {
                    s3.put_bucket_policy()
                        .bucket(name)
                        .policy(document.to_string())
                        .send()
                })
                .await?;
            }
            Change::AbortMultipartLifecycle { rules, .. }
            | Change::NoncurrentExpiration { rules, .. } => {
                if lifecycle_put {
                    // The document the first lifecycle change put holds every rule.
                    continue;
                }
                lifecycle_put = true;
                let config = BucketLifecycleConfiguration::builder()
                    .set_rules(Some(rules.clone()))
                    .build()?;
                configure(created, name, "PutBucketLifecycleConfiguration", || {
                    s3.put_bucket_lifecycle_configuration()
                        .bucket(name)
                        .lifecycle_configuration(config.clone())
                        .send()
                })
                .await?;
            }
            Change::Versioning { .. } => {
                let config = VersioningConfiguration::builder()
                    .status(BucketVersioningStatus::Enabled)
                    .build();
                configure(created, name, "PutBucketVersioning", || {
                    s3.put_bucket_versioning()
                        .bucket(name)
                        .versioning_configuration(config.clone())
                        .send()
                })
                .await?;
            }
        }
    }
    Ok(())
}

/// One configuration call on a bucket. Right after `CreateBucket` S3 can answer
/// `NoSuchBucket` for a moment: when `just_created`, that is retried (bounded).
async fn configure<T, E, F, Fut>(just_created: bool, name: &str, what: &str, call: F) -> Result<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<
            Output = Result<
                T,
                aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::http::Response>,
            >,
        >,
    E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    retry_while(Patience::S3_BUCKET, call, |e| {
        (just_created && error_code(e) == Some("NoSuchBucket"))
            .then(|| format!("s3 bucket {name} was just created and is not visible yet; waiting"))
    })
    .await
    .map_err(sdk_error)
    .with_context(|| format!("{what} on s3 bucket {name}"))
}

async fn create(aws: &Aws, spec: &Spec) -> Result<()> {
    // No tags here: tags in `CreateBucketConfiguration` need `s3:TagResource`, which a deploy
    // identity may lack; `PutBucketTagging` (the `Tags` change that follows) sets them.
    // us-east-1 is the one region that must not be named, so it sends no configuration.
    let config = (spec.region != "us-east-1").then(|| {
        CreateBucketConfiguration::builder()
            .location_constraint(BucketLocationConstraint::from(spec.region.as_str()))
            .build()
    });
    // Just after a bucket of this name was deleted (`down`, then `up`), S3 answers
    // `OperationAborted` ("a conflicting conditional operation is in progress") for a while.
    let result = retry_while(
        Patience::S3_BUCKET,
        || {
            aws.s3
                .create_bucket()
                .bucket(&spec.name)
                .set_create_bucket_configuration(config.clone())
                .send()
        },
        |e| {
            (error_code(e) == Some("OperationAborted")).then(|| {
                format!("s3 bucket name {} has an operation in progress (deleted moments ago?); waiting", spec.name)
            })
        },
    )
    .await;
    match result {
        Ok(_) => Ok(()),
        // Ours already (created by an interrupted run): the following changes converge it.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateBucketError::BucketAlreadyOwnedByYou(_))
            ) =>
        {
            Ok(())
        }
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateBucketError::BucketAlreadyExists(_))
            ) =>
        {
            bail!(
                "s3 bucket name {} is taken by another AWS account: choose another name for the {} bucket in the config",
                spec.name,
                spec.role
            )
        }
        Err(e) => Err(sdk_error(e))
            .with_context(|| format!("creating s3 bucket {} (CreateBucket)", spec.name)),
    }
}

/// Deletes the bucket if it is ours; with `purge`, empties every object version first,
/// otherwise a non-empty bucket is kept.
pub async fn delete(aws: &Aws, name: &str, stack: &str, purge: bool) -> Result<Deletion> {
    let Some(observed) = read_existence(aws, name).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = observed.ownership_problem(stack) {
        return Ok(Deletion::Kept(problem));
    }
    if purge {
        empty(aws, name).await?;
    } else if !is_empty(aws, name).await? {
        return Ok(Deletion::Kept(
            "it still holds objects; run `down --purge` to delete every object version with it"
                .to_owned(),
        ));
    }
    match aws.s3.delete_bucket().bucket(name).send().await {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e) if error_code(&e) == Some("NoSuchBucket") => Ok(Deletion::Absent),
        Err(e) => {
            Err(sdk_error(e)).with_context(|| format!("deleting s3 bucket {name} (DeleteBucket)"))
        }
    }
}

/// Existence and tags only: enough to decide ownership.
pub async fn read_existence(aws: &Aws, name: &str) -> Result<Option<Observed>> {
    match aws.s3.head_bucket().bucket(name).send().await {
        Ok(_) => Ok(Some(Observed {
            tags: read_tags(aws, name).await?,
            ..Observed::default()
        })),
        Err(e) if matches!(e.as_service_error(), Some(HeadBucketError::NotFound(_))) => Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 301) => {
            // In another region: S3 says which in `x-amz-bucket-region`.
            let region = e
                .raw_response()
                .and_then(|r| r.headers().get("x-amz-bucket-region"))
                .map(str::to_owned);
            bail!("{}", elsewhere(name, region.as_deref(), &aws.region))
        }
        Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 403) => {
            Ok(Some(Observed {
                other_account: true,
                ..Observed::default()
            }))
        }
        Err(e) => {
            Err(sdk_error(e)).with_context(|| format!("reading s3 bucket {name} (HeadBucket)"))
        }
    }
}

/// The error for a bucket name that exists in another region than the config's.
fn elsewhere(name: &str, region: Option<&str>, target: &str) -> String {
    match region {
        Some(region) => format!(
            "s3 bucket {name} exists in region {region} (this config targets region {target}): bucket names are global, so choose another name for it in the config, or set target.region = \"{region}\" if that bucket is this stack's"
        ),
        None => format!(
            "s3 bucket {name} exists in another region (this config targets region {target}): bucket names are global, so choose another name for it in the config"
        ),
    }
}

async fn is_empty(aws: &Aws, name: &str) -> Result<bool> {
    let out = aws
        .s3
        .list_object_versions()
        .bucket(name)
        .max_keys(1)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("listing s3 bucket {name} (ListObjectVersions)"))?;
    Ok(out.versions().is_empty() && out.delete_markers().is_empty())
}

/// Deletes every version and delete marker in `bucket` (all pages), or only those of the key
/// `only` (smoke's cleanup).
pub async fn delete_versions(aws: &Aws, bucket: &str, only: Option<&str>) -> Result<()> {
    let mut key_marker = None;
    let mut version_marker = None;
    loop {
        let page = aws
            .s3
            .list_object_versions()
            .bucket(bucket)
            .set_prefix(only.map(str::to_owned))
            .set_key_marker(key_marker.take())
            .set_version_id_marker(version_marker.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("listing s3 bucket {bucket} (ListObjectVersions)"))?;
        let ids: Vec<ObjectIdentifier> = page
            .versions()
            .iter()
            .map(|v| (v.key(), v.version_id()))
            .chain(
                page.delete_markers()
                    .iter()
                    .map(|m| (m.key(), m.version_id())),
            )
            .filter(|(key, _)| only.is_none() || *key == only)
            .filter_map(|(key, version)| {
                ObjectIdentifier::builder()
                    .set_key(key.map(str::to_owned))
                    .set_version_id(version.filter(|v| *v != "null").map(str::to_owned))
                    .build()
                    .ok()
            })
            .collect();
        for batch in ids.chunks(1000) {
            let out = aws
                .s3
                .delete_objects()
                .bucket(bucket)
                .delete(
                    Delete::builder()
                        .set_objects(Some(batch.to_vec()))
                        .quiet(true)
                        .build()?,
                )
                .send()
                .await
                .map_err(sdk_error)
                .with_context(|| format!("deleting from s3 bucket {bucket} (DeleteObjects)"))?;
            if let Some(first) = out.errors().first() {
                bail!(
                    "deleting from s3 bucket {bucket}: {} objects could not be deleted, first {:?}: {}",
                    out.errors().len(),
                    first.key().unwrap_or_default(),
                    first.message().unwrap_or_default()
                );
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        version_marker = page.next_version_id_marker().map(str::to_owned);
        if key_marker.is_none() {
            break;
        }
    }
    Ok(())
}

/// Deletes every object version and delete marker, and aborts unfinished multipart uploads.
async fn empty(aws: &Aws, name: &str) -> Result<()> {
    delete_versions(aws, name, None).await?;
    // Every page of unfinished uploads (a listing holds at most 1,000).
    let (mut key_marker, mut id_marker): (Option<String>, Option<String>) = (None, None);
    loop {
        let page = aws
            .s3
            .list_multipart_uploads()
            .bucket(name)
            .set_key_marker(key_marker.take())
            .set_upload_id_marker(id_marker.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| format!("listing multipart uploads of s3 bucket {name}"))?;
        for upload in page.uploads() {
            if let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) {
                aws.s3
                    .abort_multipart_upload()
                    .bucket(name)
                    .key(key)
                    .upload_id(id)
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| format!("aborting a multipart upload in s3 bucket {name}"))?;
            }
        }
        if page.is_truncated() != Some(true) {
            break;
        }
        key_marker = page.next_key_marker().map(str::to_owned);
        id_marker = page.next_upload_id_marker().map(str::to_owned);
        if key_marker.is_none() && id_marker.is_none() {
            break;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::OWNERSHIP_TAG;

    fn spec(role: BucketRole) -> Spec {
        Spec {
            role,
            name: "demo-raw".into(),
            region: "us-east-1".into(),
            partition: "aws".into(),
            stack: "demo".into(),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
            versioned: role != BucketRole::Refined,
            noncurrent_days: (role != BucketRole::Refined).then_some(7),
        }
    }

    /// What a fully converged bucket looks like when read back.
    fn converged(spec: &Spec) -> Observed {
        let mut rules = vec![
            LifecycleRule::builder()
                .id("theirs")
                .status(ExpirationStatus::Enabled)
                .build()
                .unwrap(),
        ];
        rules.extend(abort_multipart_rule());
        rules.extend(spec.noncurrent_days.and_then(noncurrent_rule));
        Observed {
            other_account: false,
            tags: spec.tags.clone(),
            public_access_block: Some([true; 4]),
            encryption: Some(SSE_S3.into()),
            object_ownership: Some(OWNER_ENFORCED.into()),
            policy: Some(json!({"Version": "2012-10-17", "Statement": [
                {"Sid": "Theirs", "Effect": "Allow", "Principal": {"AWS": "arn:aws:iam::1:root"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::demo-raw/*"},
                spec.tls_only_statement()
            ]})),
            lifecycle_rules: rules,
            versioning: Some("Enabled".into()),
            pristine: false,
        }
    }

    #[test]
    fn a_missing_bucket_is_created_with_every_property() {
        let changes = diff(&spec(BucketRole::Raw), None);
        let names: Vec<String> = changes.iter().map(|c| c.describe().property).collect();
        assert_eq!(
            names,
            [
                "exists",
                "tags",
                "public_access_block",
                "default_encryption",
                "object_ownership",
                "policy.deny_insecure_transport",
                "lifecycle.abort_incomplete_multipart_days",
                "lifecycle.noncurrent_version_expiration_days",
                "versioning"
            ]
        );
        assert!(changes[0].is_create());
    }

    #[test]
    fn both_lifecycle_changes_carry_the_whole_document() {
        let s = spec(BucketRole::Raw);
        let changes = diff(&s, None);
        let docs: Vec<Vec<String>> = changes
            .iter()
            .filter_map(|c| match c {
                Change::AbortMultipartLifecycle { rules, .. }
                | Change::NoncurrentExpiration { rules, .. } => Some(
                    rules
                        .iter()
                        .map(|r| r.id().unwrap_or_default().to_owned())
                        .collect(),
                ),
                _ => None,
            })
            .collect();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[0], [LIFECYCLE_RULE_ID, NONCURRENT_RULE_ID]);
        assert_eq!(
            docs[0], docs[1],
            "either one, put alone, is the whole document"
        );
    }

    #[test]
    fn the_noncurrent_expiry_follows_the_config_and_leaves_refined_alone() {
        let s = spec(BucketRole::Ingest);
        let mut o = converged(&s);
        let longer = Spec {
            noncurrent_days: Some(30),
            ..s.clone()
        };
        let changes = diff(&longer, Some(&o));
        assert_eq!(changes.len(), 1);
        assert_eq!(
            changes[0].describe(),
            PropertyChange::update("lifecycle.noncurrent_version_expiration_days", "7", "30")
        );
        // The refined bucket has no rule of ours; one left from before is removed.
        let refined = spec(BucketRole::Refined);
        o.versioning = None;
        let changes = diff(&refined, Some(&o));
        assert_eq!(changes.len(), 1, "{changes:?}");
        let Change::NoncurrentExpiration {
            new: None, rules, ..
        } = &changes[0]
        else {
            panic!("{changes:?}");
        };
        assert!(rules.iter().all(|r| r.id() != Some(NONCURRENT_RULE_ID)));
    }

    #[test]
    fn a_converged_bucket_needs_nothing() {
        for role in [BucketRole::Ingest, BucketRole::Raw, BucketRole::Refined] {
            let spec = spec(role);
            assert_eq!(diff(&spec, Some(&converged(&spec))), vec![]);
        }
    }

    #[test]
    fn versioning_is_required_on_ingest_and_raw_only() {
        for role in [BucketRole::Ingest, BucketRole::Raw] {
            let s = spec(role);
            let mut o = converged(&s);
            o.versioning = None;
            assert_eq!(diff(&s, Some(&o)).len(), 1, "{role}");
        }
        let s = spec(BucketRole::Refined);
        let mut o = converged(&s);
        o.versioning = None;
        assert_eq!(diff(&s, Some(&o)), vec![]);
    }

    /// Each property drifting alone gives exactly that one change.
    #[test]
    fn each_property_is_checked_independently() {
        let s = spec(BucketRole::Raw);
        type Drift = fn(&mut Observed);
        let drifts: Vec<(&str, Drift)> = vec![
            ("tags", |o| {
                o.tags.clear();
            }),
            ("public_access_block", |o| {
                o.public_access_block = Some([true, true, false, true])
            }),
            ("default_encryption", |o| {
                o.encryption = Some("aws:kms".into())
            }),
            ("object_ownership", |o| {
                o.object_ownership = Some("ObjectWriter".into())
            }),
            ("policy.deny_insecure_transport", |o| o.policy = None),
            ("lifecycle.abort_incomplete_multipart_days", |o| {
                o.lifecycle_rules
                    .retain(|r| r.id() != Some(LIFECYCLE_RULE_ID))
            }),
            ("lifecycle.noncurrent_version_expiration_days", |o| {
                o.lifecycle_rules
                    .retain(|r| r.id() != Some(NONCURRENT_RULE_ID))
            }),
            ("versioning", |o| o.versioning = Some("Suspended".into())),
        ];
        for (property, drift) in drifts {
            let mut o = converged(&s);
            drift(&mut o);
            let changes = diff(&s, Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
        }
    }

    #[test]
    fn foreign_policy_statements_and_lifecycle_rules_are_kept() {
        let s = spec(BucketRole::Raw);
        let mut o = converged(&s);
        o.policy = Some(json!({"Statement": [{"Sid": "Theirs", "Effect": "Allow"}]}));
        o.lifecycle_rules.truncate(1);
        for change in diff(&s, Some(&o)) {
            match change {
                Change::TlsOnlyPolicy { document, .. } => {
                    assert!(policy::statement(&document, "Theirs").is_some());
                    assert!(policy::statement(&document, TLS_ONLY_SID).is_some());
                }
                Change::AbortMultipartLifecycle { rules, .. }
                | Change::NoncurrentExpiration { rules, .. } => {
                    let ids: Vec<_> = rules.iter().map(|r| r.id().unwrap_or_default()).collect();
                    assert_eq!(ids, ["theirs", LIFECYCLE_RULE_ID, NONCURRENT_RULE_ID]);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }

    #[test]
    fn a_bucket_in_another_region_is_named_with_its_region() {
        assert_eq!(
            elsewhere("acme-raw", Some("eu-central-1"), "eu-west-1"),
            "s3 bucket acme-raw exists in region eu-central-1 (this config targets region eu-west-1): bucket names are global, so choose another name for it in the config, or set target.region = \"eu-central-1\" if that bucket is this stack's"
        );
        assert!(elsewhere("b", None, "us-east-1").contains("exists in another region"));
    }

    #[test]
    fn buckets_of_other_accounts_or_stacks_are_not_ours() {
        let foreign = Observed {
            other_account: true,
            ..Observed::default()
        };
        assert!(
            foreign
                .ownership_problem("demo")
                .unwrap()
                .contains("another AWS account")
        );
        let untagged = Observed::default();
        assert!(
            untagged
                .ownership_problem("demo")
                .unwrap()
                .contains("not ours")
        );
        assert_eq!(
            converged(&spec(BucketRole::Raw)).ownership_problem("demo"),
            None
        );
    }
}
