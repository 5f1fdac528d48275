//! The Glue catalog over the Parquet outputs: a database (owned, tagged) and the `users` and
//! `users_rejected` tables, with partition projection so a new `date=/hour=` folder is
//! queryable at once (no crawler, no `MSCK REPAIR`).
//!
//! Ownership: the database carries the ownership tag (Glue `GetTags`/`TagResource` on its
//! ARN); the tables are ours because they live in our database, and are only read, changed or
//! deleted when it is.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use aws_sdk_glue::operation::create_database::CreateDatabaseError;
use aws_sdk_glue::operation::create_table::CreateTableError;
use aws_sdk_glue::operation::delete_database::DeleteDatabaseError;
use aws_sdk_glue::operation::delete_table::DeleteTableError;
use aws_sdk_glue::operation::get_database::GetDatabaseError;
use aws_sdk_glue::operation::get_table::GetTableError;
use aws_sdk_glue::operation::update_table::UpdateTableError;
use aws_sdk_glue::types::{
    Column as GlueColumn, DatabaseInput, SerDeInfo, StorageDescriptor, TableInput,
};

use super::{Deletion, Tags, describe_tags, missing_tags, ownership_problem};
use crate::aws::{Aws, sdk_error};
use crate::config::OWNERSHIP_TAG;
use crate::plan::{Describe, PropertyChange};

pub const DATABASE_KIND: &str = "glue database";
pub const TABLE_KIND: &str = "glue table";
pub const TABLE_TYPE: &str = "EXTERNAL_TABLE";
pub const SERDE: &str = "org.apache.hadoop.hive.ql.io.parquet.serde.ParquetHiveSerDe";
pub const INPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetInputFormat";
pub const OUTPUT_FORMAT: &str = "org.apache.hadoop.hive.ql.io.parquet.MapredParquetOutputFormat";
/// The clean rows.
pub const USERS: &str = "users";
/// The rejected rows, with their line number and reasons, every value kept as text.
pub const USERS_REJECTED: &str = "users_rejected";
/// The tables this module manages, in the order `Desired` holds them.
pub const TABLES: [&str; 2] = [USERS, USERS_REJECTED];
/// SerDe parameters a new table gets (what Athena's DDL writes); kept as found on update.
const SERDE_PARAMETERS: [(&str, &str); 1] = [("serialization.format", "1")];

/// The S3 folder of a table in the refined bucket; nothing else may live under it.
pub fn table_location(refined_bucket: &str, table: &str) -> String {
    format!("s3://{refined_bucket}/curated/{table}/")
}

/// `arn:aws:glue:<region>:<account>:database/<name>`, what Glue's tagging API wants.
pub fn database_arn(partition: &str, region: &str, account: &str, name: &str) -> String {
    format!("arn:{partition}:glue:{region}:{account}:database/{name}")
}

/// One column or partition key: a lowercase name and a Hive type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Column {
    pub name: String,
    pub data_type: String,
}

impl Column {
    fn new(name: &str, data_type: &str) -> Column {
        Column {
            name: name.to_owned(),
            data_type: data_type.to_owned(),
        }
    }

    fn to_glue(&self) -> Result<GlueColumn> {
        Ok(GlueColumn::builder()
            .name(&self.name)
            .r#type(&self.data_type)
            .build()?)
    }
}

/// `id string, name string`.
pub fn render_columns(columns: &[Column]) -> String {
    let parts: Vec<String> = columns
        .iter()
        .map(|c| format!("{} {}", c.name, c.data_type))
        .collect();
    parts.join(", ")
}

fn columns(pairs: &[(&str, &str)]) -> Vec<Column> {
    pairs.iter().map(|(n, t)| Column::new(n, t)).collect()
}

/// The database as it should be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseSpec {
    pub name: String,
    pub arn: String,
    pub tags: Tags,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DatabaseObserved {
    pub tags: Tags,
    /// Seconds since the epoch.
    pub created: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DatabaseChange {
    Create,
    Tags { observed: Tags, set: Tags },
}

impl Describe for DatabaseChange {
    fn describe(&self) -> PropertyChange {
        match self {
            DatabaseChange::Create => PropertyChange::set("exists", "true"),
            DatabaseChange::Tags { observed, set } => describe_tags(observed, set),
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, DatabaseChange::Create)
    }
}

pub fn diff_database(
    spec: &DatabaseSpec,
    observed: Option<&DatabaseObserved>,
) -> Vec<DatabaseChange> {
    // CreateDatabase sets the tags.
    let Some(o) = observed else {
        return vec![DatabaseChange::Create];
    };
    let set = missing_tags(&spec.tags, &o.tags);
    if set.is_empty() {
        Vec::new()
    } else {
        vec![DatabaseChange::Tags {
            observed: o.tags.clone(),
            set,
        }]
    }
}

/// A table as it should be. `parameters` are the table parameters we manage; others are left
/// alone.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub database: String,
    pub name: String,
    pub location: String,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub parameters: BTreeMap<String, String>,
}

impl TableSpec {
    /// The clean rows, as the function writes them: strings and UTC timestamps.
    pub fn users(database: &str, refined_bucket: &str, projection_start: &str) -> TableSpec {
        TableSpec::curated(
            database,
            USERS,
            refined_bucket,
            projection_start,
            columns(&[
                ("id", "string"),
                ("name", "string"),
                ("email", "string"),
                ("create_ts", "timestamp"),
                ("update_ts", "timestamp"),
            ]),
        )
    }

    /// The rejected rows: the line number, the reasons, and the original values as text.
    pub fn users_rejected(
        database: &str,
        refined_bucket: &str,
        projection_start: &str,
    ) -> TableSpec {
        TableSpec::curated(
            database,
            USERS_REJECTED,
            refined_bucket,
            projection_start,
            columns(&[
                ("line", "bigint"),
                ("reasons", "string"),
                ("id", "string"),
                ("name", "string"),
                ("email", "string"),
                ("create_ts", "string"),
                ("update_ts", "string"),
            ]),
        )
    }

    /// A Parquet table under `curated/<name>/`, partitioned by `date=YYYY-MM-DD/hour=HH`
    /// (event time), with projection over those two keys.
    fn curated(
        database: &str,
        name: &str,
        refined_bucket: &str,
        projection_start: &str,
        data_columns: Vec<Column>,
    ) -> TableSpec {
        let location = table_location(refined_bucket, name);
        let parameters = [
            ("classification", "parquet".to_owned()),
            ("projection.enabled", "true".to_owned()),
            ("projection.date.type", "date".to_owned()),
            ("projection.date.range", format!("{projection_start},NOW")),
            ("projection.date.format", "yyyy-MM-dd".to_owned()),
            ("projection.date.interval", "1".to_owned()),
            ("projection.date.interval.unit", "DAYS".to_owned()),
            ("projection.hour.type", "integer".to_owned()),
            ("projection.hour.range", "0,23".to_owned()),
            ("projection.hour.digits", "2".to_owned()),
            (
                "storage.location.template",
                format!("{location}date=${{date}}/hour=${{hour}}/"),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
        TableSpec {
            database: database.to_owned(),
            name: name.to_owned(),
            location,
            columns: data_columns,
            partition_keys: columns(&[("date", "string"), ("hour", "string")]),
            parameters,
        }
    }

    /// `database.table`, how plans and queries name it.
    pub fn qualified_name(&self) -> String {
        format!("{}.{}", self.database, self.name)
    }
}

/// A table as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableObserved {
    pub table_type: Option<String>,
    pub location: Option<String>,
    pub columns: Vec<Column>,
    pub partition_keys: Vec<Column>,
    pub input_format: Option<String>,
    pub output_format: Option<String>,
    pub serde: Option<String>,
    pub serde_parameters: BTreeMap<String, String>,
    /// Every table parameter, ours and those Glue or others added.
    pub parameters: BTreeMap<String, String>,
    /// For UpdateTable's optimistic concurrency check.
    pub version_id: Option<String>,
    /// Seconds since the epoch.
    pub updated: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TableChange {
    Create,
    TableType {
        old: Option<String>,
    },
    Location {
        old: Option<String>,
        new: String,
    },
    Columns {
        old: Vec<Column>,
        new: Vec<Column>,
    },
    PartitionKeys {
        old: Vec<Column>,
        new: Vec<Column>,
    },
    InputFormat {
        old: Option<String>,
    },
    OutputFormat {
        old: Option<String>,
    },
    Serde {
        old: Option<String>,
    },
    /// One managed table parameter missing or different.
    Parameter {
        key: String,
        old: Option<String>,
        new: String,
    },
}

impl Describe for TableChange {
    fn describe(&self) -> PropertyChange {
        match self {
            TableChange::Create => PropertyChange::set("exists", "true"),
            TableChange::TableType { old } => {
                PropertyChange::replace("table_type", old.clone(), TABLE_TYPE)
            }
            TableChange::Location { old, new } => {
                PropertyChange::replace("location", old.clone(), new.clone())
            }
            TableChange::Columns { old, new } => {
                PropertyChange::update("columns", render_columns(old), render_columns(new))
            }
            TableChange::PartitionKeys { old, new } => {
                PropertyChange::update("partition_keys", render_columns(old), render_columns(new))
            }
            TableChange::InputFormat { old } => {
                PropertyChange::replace("input_format", old.clone(), INPUT_FORMAT)
            }
            TableChange::OutputFormat { old } => {
                PropertyChange::replace("output_format", old.clone(), OUTPUT_FORMAT)
            }
            TableChange::Serde { old } => PropertyChange::replace("serde", old.clone(), SERDE),
            TableChange::Parameter { key, old, new } => {
                PropertyChange::replace(format!("parameters.{key}"), old.clone(), new.clone())
            }
        }
    }

    fn is_create(&self) -> bool {
        matches!(self, TableChange::Create)
    }
}

/// Column types compare case-insensitively (Hive types are); names exactly.
fn same_columns(observed: &[Column], desired: &[Column]) -> bool {
    observed.len() == desired.len()
        && observed
            .iter()
            .zip(desired)
            .all(|(o, d)| o.name == d.name && o.data_type.eq_ignore_ascii_case(&d.data_type))
}

/// Each managed property on its own; parameters we do not manage (Glue adds some) are ignored.
pub fn diff_table(spec: &TableSpec, observed: Option<&TableObserved>) -> Vec<TableChange> {
    // CreateTable sets every property in one call.
    let Some(o) = observed else {
        return vec![TableChange::Create];
    };
    let mut changes = Vec::new();
    if o.table_type.as_deref() != Some(TABLE_TYPE) {
        changes.push(TableChange::TableType {
            old: o.table_type.clone(),
        });
    }
    if o.location.as_deref() != Some(spec.location.as_str()) {
        changes.push(TableChange::Location {
            old: o.location.clone(),
            new: spec.location.clone(),
        });
    }
    if !same_columns(&o.columns, &spec.columns) {
        changes.push(TableChange::Columns {
            old: o.columns.clone(),
            new: spec.columns.clone(),
        });
    }
    if !same_columns(&o.partition_keys, &spec.partition_keys) {
        changes.push(TableChange::PartitionKeys {
            old: o.partition_keys.clone(),
            new: spec.partition_keys.clone(),
        });
    }
    if o.input_format.as_deref() != Some(INPUT_FORMAT) {
        changes.push(TableChange::InputFormat {
            old: o.input_format.clone(),
        });
    }
    if o.output_format.as_deref() != Some(OUTPUT_FORMAT) {
        changes.push(TableChange::OutputFormat {
            old: o.output_format.clone(),
        });
    }
    if o.serde.as_deref() != Some(SERDE) {
        changes.push(TableChange::Serde {
            old: o.serde.clone(),
        });
    }
    for (key, value) in &spec.parameters {
        if o.parameters.get(key) != Some(value) {
            changes.push(TableChange::Parameter {
                key: key.clone(),
                old: o.parameters.get(key).cloned(),
                new: value.clone(),
            });
        }
    }
    changes
}

/// The table as Glue should store it. On update, `observed` keeps the SerDe parameters and
/// the table parameters we do not manage.
fn table_input(spec: &TableSpec, observed: Option<&TableObserved>) -> Result<TableInput> {
    let mut parameters = observed.map(|o| o.parameters.clone()).unwrap_or_default();
    parameters.extend(spec.parameters.clone());
    let serde_parameters = match observed {
        Some(o) if !o.serde_parameters.is_empty() => o.serde_parameters.clone(),
        _ => SERDE_PARAMETERS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    };
    let storage = StorageDescriptor::builder()
        .set_columns(Some(
            spec.columns
                .iter()
                .map(Column::to_glue)
                .collect::<Result<Vec<_>>>()?,
        ))
        .location(&spec.location)
        .input_format(INPUT_FORMAT)
        .output_format(OUTPUT_FORMAT)
        .compressed(false)
        .serde_info(
            SerDeInfo::builder()
                .serialization_library(SERDE)
                .set_parameters(Some(serde_parameters.into_iter().collect()))
                .build(),
        )
        .build();
    Ok(TableInput::builder()
        .name(&spec.name)
        .table_type(TABLE_TYPE)
        .storage_descriptor(storage)
        .set_partition_keys(Some(
            spec.partition_keys
                .iter()
                .map(Column::to_glue)
                .collect::<Result<Vec<_>>>()?,
        ))
        .set_parameters(Some(parameters.into_iter().collect()))
        .build()?)
}

pub async fn read_database(aws: &Aws, spec: &DatabaseSpec) -> Result<Option<DatabaseObserved>> {
    let name = spec.name.as_str();
    let database = match aws.glue.get_database().name(name).send().await {
        Ok(out) => out.database,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetDatabaseError::EntityNotFoundException(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading glue database {name} (GetDatabase)"));
        }
    };
    let tags = aws
        .glue
        .get_tags()
        .resource_arn(&spec.arn)
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| format!("reading glue database {name} (GetTags)"))?
        .tags
        .unwrap_or_default()
        .into_iter()
        .collect();
    Ok(Some(DatabaseObserved {
        tags,
        created: database.and_then(|d| d.create_time.map(|t| t.secs())),
    }))
}

pub async fn read_table(aws: &Aws, database: &str, table: &str) -> Result<Option<TableObserved>> {
    let name = format!("{database}.{table}");
    let table = match aws
        .glue
        .get_table()
        .database_name(database)
        .name(table)
        .send()
        .await
    {
        Ok(out) => out.table,
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(GetTableError::EntityNotFoundException(_))
            ) =>
        {
            return Ok(None);
        }
        Err(e) => {
            return Err(sdk_error(e))
                .with_context(|| format!("reading glue table {name} (GetTable)"));
        }
    };
    let Some(table) = table else {
        return Ok(None);
    };
    let observed_columns = |columns: &[GlueColumn]| -> Vec<Column> {
        columns
            .iter()
            .map(|c| Column {
                name: c.name().to_owned(),
                data_type: c.r#type().unwrap_or_default().to_owned(),
            })
            .collect()
    };
    let storage = table.storage_descriptor();
    let serde = storage.and_then(|s| s.serde_info());
    Ok(Some(TableObserved {
        table_type: table.table_type().map(str::to_owned),
        location: storage.and_then(|s| s.location()).map(str::to_owned),
        columns: observed_columns(storage.map(|s| s.columns()).unwrap_or_default()),
        partition_keys: observed_columns(table.partition_keys()),
        input_format: storage.and_then(|s| s.input_format()).map(str::to_owned),
        output_format: storage.and_then(|s| s.output_format()).map(str::to_owned),
        serde: serde
            .and_then(|s| s.serialization_library())
            .map(str::to_owned),
        serde_parameters: serde
            .and_then(|s| s.parameters())
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        parameters: table
            .parameters()
            .map(|p| p.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
            .unwrap_or_default(),
        version_id: table.version_id().map(str::to_owned),
        updated: table.update_time().map(|t| t.secs()),
    }))
}

pub async fn apply_database(
    aws: &Aws,
    spec: &DatabaseSpec,
    changes: &[DatabaseChange],
) -> Result<()> {
    let name = spec.name.as_str();
    let doing = |what: &str| format!("{what} on glue database {name}");
    for change in changes {
        match change {
            DatabaseChange::Create => {
                let result = aws
                    .glue
                    .create_database()
                    .database_input(DatabaseInput::builder().name(name).build()?)
                    .set_tags(Some(spec.tags.clone().into_iter().collect()))
                    .send()
                    .await;
                match result {
                    Ok(_) => {}
                    // Our own create, retried after its answer was lost, or a create that raced
                    // ours: it is done only if the database carries our ownership tag.
                    Err(e)
                        if matches!(
                            e.as_service_error(),
                            Some(CreateDatabaseError::AlreadyExistsException(_))
                        ) =>
                    {
                        let now = read_database(aws, spec).await?;
                        let ours = now.as_ref().is_some_and(|o| {
                            o.tags.get(OWNERSHIP_TAG) == spec.tags.get(OWNERSHIP_TAG)
                        });
                        if !ours {
                            return Err(sdk_error(e)).with_context(|| doing("CreateDatabase"));
                        }
                    }
                    Err(e) => return Err(sdk_error(e)).with_context(|| doing("CreateDatabase")),
                }
            }
            DatabaseChange::Tags { set, .. } => {
                aws.glue
                    .tag_resource()
                    .resource_arn(&spec.arn)
                    .set_tags_to_add(Some(set.clone().into_iter().collect()))
                    .send()
                    .await
                    .map_err(sdk_error)
                    .with_context(|| doing("TagResource"))?;
            }
        }
    }
    Ok(())
}

/// Creates the table, or rewrites it in one UpdateTable whatever the number of drifted
/// properties. The database must exist (and be ours: its tables are).
pub async fn apply_table(
    aws: &Aws,
    spec: &TableSpec,
    observed: Option<&TableObserved>,
    changes: &[TableChange],
) -> Result<()> {
    let name = spec.qualified_name();
    let doing = |what: &str| format!("{what} on glue table {name}");
    if changes.is_empty() {
        return Ok(());
    }
    if !changes.iter().any(|c| c.is_create()) {
        return update_table(aws, spec, observed).await;
    }
    let result = aws
        .glue
        .create_table()
        .database_name(&spec.database)
        .table_input(table_input(spec, None)?)
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // Our own create retried after its answer was lost (or one that raced ours): the
        // table is in our database, so it only has to match.
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(CreateTableError::AlreadyExistsException(_))
            ) =>
        {
            let now = read_table(aws, &spec.database, &spec.name).await?;
            if now.is_none() {
                return Err(sdk_error(e)).with_context(|| doing("CreateTable"));
            }
            if diff_table(spec, now.as_ref()).is_empty() {
                Ok(())
            } else {
                update_table(aws, spec, now.as_ref()).await
            }
        }
        Err(e) => Err(sdk_error(e)).with_context(|| doing("CreateTable")),
    }
}

/// One UpdateTable, guarded by the observed `VersionId`. A concurrent modification is fine
/// when the table now matches (our own update, retried after its answer was lost).
async fn update_table(aws: &Aws, spec: &TableSpec, observed: Option<&TableObserved>) -> Result<()> {
    let name = spec.qualified_name();
    let result = aws
        .glue
        .update_table()
        .database_name(&spec.database)
        .table_input(table_input(spec, observed)?)
        .set_version_id(observed.and_then(|o| o.version_id.clone()))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(UpdateTableError::ConcurrentModificationException(_))
            ) =>
        {
            let now = read_table(aws, &spec.database, &spec.name).await?;
            if now.is_some() && diff_table(spec, now.as_ref()).is_empty() {
                Ok(())
            } else {
                Err(sdk_error(e)).with_context(|| {
                    format!(
                        "UpdateTable on glue table {name} (it changed meanwhile: run `up` again)"
                    )
                })
            }
        }
        Err(e) => Err(sdk_error(e)).with_context(|| format!("UpdateTable on glue table {name}")),
    }
}

/// Deletes a table of our database; call it only once the database is known to be ours.
pub async fn delete_table(aws: &Aws, database: &str, table: &str) -> Result<Deletion> {
    match aws
        .glue
        .delete_table()
        .database_name(database)
        .name(table)
        .send()
        .await
    {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteTableError::EntityNotFoundException(_))
            ) =>
        {
            Ok(Deletion::Absent)
        }
        Err(e) => Err(sdk_error(e))
            .with_context(|| format!("deleting glue table {database}.{table} (DeleteTable)")),
    }
}

/// Deletes the database if it is ours (Glue deletes the tables left in it too).
pub async fn delete_database(aws: &Aws, spec: &DatabaseSpec, stack: &str) -> Result<Deletion> {
    let name = spec.name.as_str();
    let Some(observed) = read_database(aws, spec).await? else {
        return Ok(Deletion::Absent);
    };
    if let Some(problem) = ownership_problem(&observed.tags, stack) {
        return Ok(Deletion::Kept(problem));
    }
    match aws.glue.delete_database().name(name).send().await {
        Ok(_) => Ok(Deletion::Deleted),
        Err(e)
            if matches!(
                e.as_service_error(),
                Some(DeleteDatabaseError::EntityNotFoundException(_))
            ) =>
        {
            Ok(Deletion::Absent)
        }
        Err(e) => Err(sdk_error(e))
            .with_context(|| format!("deleting glue database {name} (DeleteDatabase)")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> TableSpec {
        TableSpec::users("demo", "demo-refined", "2025-01-01")
    }

    /// What a converged table reads back as, with parameters Glue added itself.
    fn converged(spec: &TableSpec) -> TableObserved {
        let mut parameters = spec.parameters.clone();
        parameters.insert("transient_lastDdlTime".into(), "1700000000".into());
        parameters.insert("EXTERNAL".into(), "TRUE".into());
        TableObserved {
            table_type: Some(TABLE_TYPE.into()),
            location: Some(spec.location.clone()),
            columns: spec.columns.clone(),
            partition_keys: spec.partition_keys.clone(),
            input_format: Some(INPUT_FORMAT.into()),
            output_format: Some(OUTPUT_FORMAT.into()),
            serde: Some(SERDE.into()),
            serde_parameters: [("serialization.format".to_owned(), "1".to_owned())].into(),
            parameters,
            version_id: Some("3".into()),
            updated: None,
        }
    }

    #[test]
    fn users_table_has_the_file_schema_and_the_projection() {
        let s = spec();
        assert_eq!(s.location, "s3://demo-refined/curated/users/");
        assert_eq!(
            render_columns(&s.columns),
            "id string, name string, email string, create_ts timestamp, update_ts timestamp"
        );
        assert_eq!(
            render_columns(&s.partition_keys),
            "date string, hour string"
        );
        let p = |k: &str| s.parameters.get(k).map(String::as_str);
        assert_eq!(p("classification"), Some("parquet"));
        assert_eq!(p("projection.enabled"), Some("true"));
        assert_eq!(p("projection.date.type"), Some("date"));
        assert_eq!(p("projection.date.range"), Some("2025-01-01,NOW"));
        assert_eq!(p("projection.date.format"), Some("yyyy-MM-dd"));
        assert_eq!(p("projection.date.interval"), Some("1"));
        assert_eq!(p("projection.date.interval.unit"), Some("DAYS"));
        assert_eq!(p("projection.hour.type"), Some("integer"));
        assert_eq!(p("projection.hour.range"), Some("0,23"));
        assert_eq!(p("projection.hour.digits"), Some("2"));
        assert_eq!(
            p("storage.location.template"),
            Some("s3://demo-refined/curated/users/date=${date}/hour=${hour}/")
        );
        assert_eq!(s.parameters.len(), 11);
    }

    #[test]
    fn rejected_table_keeps_original_values_as_text_in_its_own_location() {
        let s = TableSpec::users_rejected("demo", "demo-refined", "2024-06-01");
        assert_eq!(s.qualified_name(), "demo.users_rejected");
        assert_eq!(s.location, "s3://demo-refined/curated/users_rejected/");
        assert_eq!(
            render_columns(&s.columns),
            "line bigint, reasons string, id string, name string, email string, create_ts string, update_ts string"
        );
        assert_eq!(
            render_columns(&s.partition_keys),
            "date string, hour string"
        );
        assert_eq!(
            s.parameters
                .get("storage.location.template")
                .map(String::as_str),
            Some("s3://demo-refined/curated/users_rejected/date=${date}/hour=${hour}/")
        );
        assert_eq!(
            s.parameters
                .get("projection.date.range")
                .map(String::as_str),
            Some("2024-06-01,NOW")
        );
    }

    #[test]
    fn a_converged_table_needs_nothing_and_a_missing_one_is_created() {
        let s = spec();
        assert_eq!(diff_table(&s, Some(&converged(&s))), vec![]);
        assert_eq!(diff_table(&s, None), vec![TableChange::Create]);
        assert!(TableChange::Create.is_create());
    }

    #[test]
    fn column_types_compare_case_insensitively() {
        let s = spec();
        let mut o = converged(&s);
        o.columns[3].data_type = "TIMESTAMP".into();
        assert_eq!(diff_table(&s, Some(&o)), vec![]);
    }

    /// Each property drifting alone gives exactly that one change.
    #[test]
    fn each_property_is_checked_independently() {
        let s = spec();
        type Drift = fn(&mut TableObserved);
        let drifts: Vec<(&str, Drift)> = vec![
            ("table_type", |o| o.table_type = Some("VIRTUAL_VIEW".into())),
            ("location", |o| {
                o.location = Some("s3://demo-refined/curated/".into())
            }),
            ("columns", |o| {
                o.columns.pop();
            }),
            ("columns", |o| o.columns[3].data_type = "string".into()),
            ("columns", |o| o.columns.swap(0, 1)),
            ("partition_keys", |o| {
                o.partition_keys.pop();
            }),
            ("partition_keys", |o| {
                o.partition_keys[1].data_type = "int".into()
            }),
            ("input_format", |o| {
                o.input_format = Some("org.apache.hadoop.mapred.TextInputFormat".into())
            }),
            ("output_format", |o| o.output_format = None),
            ("serde", |o| {
                o.serde = Some("org.apache.hadoop.hive.serde2.lazy.LazySimpleSerDe".into())
            }),
            ("parameters.projection.enabled", |o| {
                o.parameters.remove("projection.enabled");
            }),
            ("parameters.projection.hour.digits", |o| {
                o.parameters
                    .insert("projection.hour.digits".into(), "1".into());
            }),
            ("parameters.classification", |o| {
                o.parameters.insert("classification".into(), "csv".into());
            }),
            ("parameters.storage.location.template", |o| {
                o.parameters.remove("storage.location.template");
            }),
        ];
        for (property, drift) in drifts {
            let mut o = converged(&s);
            drift(&mut o);
            let changes = diff_table(&s, Some(&o));
            assert_eq!(changes.len(), 1, "{property}: {changes:?}");
            assert_eq!(changes[0].describe().property, property);
            assert!(!changes[0].is_create());
        }
    }

    #[test]
    fn a_removed_parameter_plans_its_value_back() {
        let s = spec();
        let mut o = converged(&s);
        o.parameters.remove("projection.enabled");
        assert_eq!(
            diff_table(&s, Some(&o))[0].describe(),
            PropertyChange::set("parameters.projection.enabled", "true")
        );
    }

    #[test]
    fn update_keeps_foreign_parameters_and_serde_parameters() {
        let s = spec();
        let mut o = converged(&s);
        o.parameters
            .insert("projection.enabled".into(), "false".into());
        o.serde_parameters.insert("theirs".into(), "x".into());
        let input = table_input(&s, Some(&o)).unwrap();
        let parameters = input.parameters().unwrap();
        assert_eq!(
            parameters.get("projection.enabled").map(String::as_str),
            Some("true")
        );
        assert_eq!(parameters.get("EXTERNAL").map(String::as_str), Some("TRUE"));
        let storage = input.storage_descriptor().unwrap();
        assert_eq!(storage.location(), Some("s3://demo-refined/curated/users/"));
        let serde = storage.serde_info().unwrap();
        assert_eq!(serde.serialization_library(), Some(SERDE));
        assert_eq!(
            serde
                .parameters()
                .unwrap()
                .get("theirs")
                .map(String::as_str),
            Some("x")
        );
        let created = table_input(&s, None).unwrap();
        assert_eq!(created.parameters().unwrap().len(), s.parameters.len());
        assert_eq!(created.partition_keys().len(), 2);
        assert_eq!(created.table_type(), Some(TABLE_TYPE));
    }

    #[test]
    fn database_tags_are_converged() {
        let spec = DatabaseSpec {
            name: "demo".into(),
            arn: database_arn("aws", "us-east-1", "000000000000", "demo"),
            tags: [(OWNERSHIP_TAG.to_owned(), "demo".to_owned())].into(),
        };
        assert_eq!(
            spec.arn,
            "arn:aws:glue:us-east-1:000000000000:database/demo"
        );
        assert_eq!(diff_database(&spec, None), vec![DatabaseChange::Create]);
        let ok = DatabaseObserved {
            tags: spec.tags.clone(),
            created: None,
        };
        assert_eq!(diff_database(&spec, Some(&ok)), vec![]);
        let mut drift = ok;
        drift.tags.clear();
        assert!(matches!(
            diff_database(&spec, Some(&drift)).as_slice(),
            [DatabaseChange::Tags { .. }]
        ));
    }
}
