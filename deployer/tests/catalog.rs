//! The Glue catalog, the Athena workgroup and `deployer query` against a real emulator
//! (ministack with `ATHENA_ENGINE=duckdb`, so queries really run): converge from empty, no-op
//! re-runs, one drifted property planned and repaired alone, real rows from real SQL over the
//! table locations, Athena's message on failure, teardown. Run by `make test`; each test owns a
//! stack.
//!
//! `tests/fixtures/*.parquet` are two tiny files in the function's layout, written by DuckDB:
//! `COPY (SELECT * FROM (VALUES ('1', 'Ann Lee', 'ann@example.org', TIMESTAMPTZ '2025-03-01
//! 07:00:01+00', TIMESTAMPTZ '2025-03-01 07:10:00+00'), ('2', …)) AS t(id, name, email,
//! create_ts, update_ts)) TO 'users.parquet' (FORMAT parquet, COMPRESSION zstd)`, and one
//! rejected row `(4::BIGINT, 'invalid_email', '3', 'Cy', 'not-an-email', '2025-03-01T07:40:00Z',
//! '2025-03-01T07:41:00Z') AS t(line, reasons, id, name, email, create_ts, update_ts)`.

mod support;

use std::future::Future;
use std::time::Duration;

use aws_sdk_glue::types::{Table, TableInput};
use aws_sdk_s3::primitives::ByteStream;
use deployer::plan::{Action, Plan};
use deployer::query::{self, ResultTable};
use deployer::resources::{Deletion, athena, glue};
use deployer::stack::Names;
use support::{Stack, changed};

const TIMEOUT: Duration = Duration::from_secs(60);

/// Runs an async test on its own runtime, on a thread with the 8 MiB stack `deployer` gets as
/// a main thread: unoptimised SDK futures (Glue's table shapes especially) need more than a
/// test thread's 2 MiB once the test body adds its own calls.
fn run<F: Future<Output = ()> + 'static>(test: fn() -> F) {
    let thread = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(test());
        })
        .unwrap();
    if let Err(panic) = thread.join() {
        std::panic::resume_unwind(panic);
    }
}

/// The catalog's own helpers on the shared stack.
impl Stack {
    async fn query(&self, sql: &str) -> anyhow::Result<ResultTable> {
        let catalog = &self.config.catalog;
        query::execute(
            &self.aws,
            &catalog.workgroup,
            &catalog.database,
            sql,
            TIMEOUT,
        )
        .await
        .map(|f| f.table)
    }

    /// Runs the deployer binary on this stack's config; returns (exit code, stdout, stderr).
    fn cli(&self, args: &[&str]) -> (i32, String, String) {
        let out = support::deployer_command()
            .arg("--config")
            .arg(&self.config.source)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn put(&self, key: &str, body: &'static [u8]) {
        self.aws
            .s3
            .put_object()
            .bucket(&self.config.buckets.refined)
            .key(key)
            .body(ByteStream::from_static(body))
            .send()
            .await
            .unwrap();
    }

    /// The `users` table, as Glue has it.
    async fn users_table(&self) -> Table {
        self.aws
            .glue
            .get_table()
            .database_name(&self.config.catalog.database)
            .name("users")
            .send()
            .await
            .unwrap()
            .table
            .unwrap()
    }

    /// UpdateTable by hand on the `users` table, changing only its parameters.
    async fn edit_users_parameters_by_hand(
        &self,
        edit: impl FnOnce(&mut std::collections::HashMap<String, String>),
    ) {
        let table = self.users_table().await;
        let mut parameters = table.parameters().cloned().unwrap_or_default();
        edit(&mut parameters);
        let input = TableInput::builder()
            .name("users")
            .set_table_type(table.table_type().map(str::to_owned))
            .set_storage_descriptor(table.storage_descriptor().cloned())
            .set_partition_keys(Some(table.partition_keys().to_vec()))
            .set_parameters(Some(parameters))
            .build()
            .unwrap();
        self.aws
            .glue
            .update_table()
            .database_name(&self.config.catalog.database)
            .table_input(input)
            .send()
            .await
            .unwrap();
    }
}

const CATALOG_KINDS: [&str; 3] = [glue::DATABASE_KIND, glue::TABLE_KIND, athena::KIND];

/// (kind, name, action, properties) of every resource that would change.
fn catalog_actions(plan: &Plan) -> Vec<(&'static str, String, Action)> {
    plan.resources
        .iter()
        .filter(|r| CATALOG_KINDS.contains(&r.kind))
        .map(|r| (r.kind, r.name.clone(), r.action))
        .collect()
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn catalog_is_created_converged_and_removed() {
    run(catalog_is_created_converged_and_removed_body);
}

async fn catalog_is_created_converged_and_removed_body() {
    let s = Stack::new("catalog", "").await;
    let db = s.config.catalog.database.clone();
    let wg = s.config.catalog.workgroup.clone();
    assert_eq!(db, s.config.stack.replace('-', "_"));

    let want = vec![
        (glue::DATABASE_KIND, db.clone(), Action::Create),
        (glue::TABLE_KIND, format!("{db}.users"), Action::Create),
        (
            glue::TABLE_KIND,
            format!("{db}.users_rejected"),
            Action::Create,
        ),
        (athena::KIND, wg.clone(), Action::Create),
    ];
    assert_eq!(catalog_actions(&s.plan().await), want);

    let (_, calls) = s.up().await.unwrap();
    for op in [
        "Glue:CreateDatabase",
        "Glue:CreateTable",
        "Athena:CreateWorkGroup",
    ] {
        assert!(
            calls.mutating_operations.contains_key(op),
            "{op} missing: {calls:?}"
        );
    }
    assert_eq!(calls.mutating_operations.get("Glue:CreateTable"), Some(&2));

    // Read back exactly what the table should hold.
    let table = s.users_table().await;
    let storage = table.storage_descriptor().unwrap();
    let refined = &s.config.buckets.refined;
    assert_eq!(
        storage.location(),
        Some(format!("s3://{refined}/curated/users/").as_str())
    );
    let columns: Vec<(String, String)> = storage
        .columns()
        .iter()
        .map(|c| {
            (
                c.name().to_owned(),
                c.r#type().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        columns,
        [
            ("id", "string"),
            ("name", "string"),
            ("email", "string"),
            ("create_ts", "timestamp"),
            ("update_ts", "timestamp"),
        ]
        .map(|(n, t)| (n.to_owned(), t.to_owned()))
    );
    assert_eq!(
        storage.serde_info().unwrap().serialization_library(),
        Some(glue::SERDE)
    );
    let parameters = table.parameters().unwrap();
    assert_eq!(
        parameters
            .get("storage.location.template")
            .map(String::as_str),
        Some(format!("s3://{refined}/curated/users/date=${{date}}/hour=${{hour}}/").as_str())
    );
    assert_eq!(
        parameters.get("projection.date.range").map(String::as_str),
        Some("2025-01-01,NOW")
    );
    let workgroup = s
        .aws
        .athena
        .get_work_group()
        .work_group(&wg)
        .send()
        .await
        .unwrap()
        .work_group
        .unwrap();
    let configuration = workgroup.configuration().unwrap();
    assert_eq!(
        configuration
            .result_configuration()
            .and_then(|r| r.output_location()),
        Some(format!("s3://{refined}/athena-results/").as_str())
    );
    assert_eq!(configuration.enforce_work_group_configuration(), Some(true));
    // The function is told to write Parquet (the default).
    let function = s
        .aws
        .lambda
        .get_function_configuration()
        .function_name(&s.config.function.name)
        .send()
        .await
        .unwrap();
    assert_eq!(
        function
            .environment()
            .and_then(|e| e.variables())
            .and_then(|v| v.get("PARQUET_OUTPUT"))
            .map(String::as_str),
        Some("on")
    );

    // `status` shows them present, with their key properties.
    let identity = s.aws.identity().await.unwrap();
    let rows = deployer::status::collect(&s.aws, &Names::new(&s.config), &identity)
        .await
        .unwrap();
    let catalog_rows: Vec<(&str, &str, &str)> = rows
        .iter()
        .filter(|r| CATALOG_KINDS.contains(&r.kind))
        .map(|r| (r.kind, r.name.as_str(), r.state))
        .collect();
    assert_eq!(
        catalog_rows,
        [
            (glue::DATABASE_KIND, db.as_str(), "present"),
            (glue::TABLE_KIND, format!("{db}.users").as_str(), "present"),
            (
                glue::TABLE_KIND,
                format!("{db}.users_rejected").as_str(),
                "present"
            ),
            (athena::KIND, wg.as_str(), "present"),
        ]
    );
    let users = rows
        .iter()
        .find(|r| r.name == format!("{db}.users"))
        .unwrap();
    assert_eq!(
        users
            .properties
            .get("partition_projection")
            .map(String::as_str),
        Some("true")
    );

    s.assert_converged().await;

    let removed = s.down(true).await;
    let catalog: Vec<(&str, &str, &Deletion)> = removed
        .iter()
        .filter(|r| CATALOG_KINDS.contains(&r.kind))
        .map(|r| (r.kind, r.name.as_str(), &r.deletion))
        .collect();
    assert_eq!(catalog.len(), 4, "{removed:?}");
    assert!(
        catalog.iter().all(|(_, _, d)| **d == Deletion::Deleted),
        "{catalog:?}"
    );
    assert!(s.aws.glue.get_database().name(&db).send().await.is_err());
    assert_eq!(
        catalog_actions(&s.plan().await),
        want,
        "everything would be created again"
    );
    assert!(
        s.down(true)
            .await
            .iter()
            .filter(|r| CATALOG_KINDS.contains(&r.kind))
            .all(|r| r.deletion == Deletion::Absent)
    );
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn a_projection_parameter_removed_by_hand_is_the_one_change() {
    run(a_projection_parameter_removed_by_hand_is_the_one_change_body);
}

async fn a_projection_parameter_removed_by_hand_is_the_one_change_body() {
    let s = Stack::new("catdrift", "").await;
    s.up().await.unwrap();
    let db = s.config.catalog.database.clone();
    // By hand: drop one projection parameter, and add one of our own that `up` must keep.
    s.edit_users_parameters_by_hand(|p| {
        assert!(p.remove("projection.enabled").is_some());
        p.insert("owner_team".into(), "analytics".into());
    })
    .await;

    let plan = s.plan().await;
    assert_eq!(
        changed(&plan),
        vec![(
            glue::TABLE_KIND.to_owned(),
            format!("{db}.users"),
            Action::Update,
            vec!["parameters.projection.enabled".to_owned()]
        )],
        "{plan}"
    );
    let change = &support::first_with(&plan, Action::Update).changes[0];
    assert_eq!(
        (change.old.as_deref(), change.new.as_deref()),
        (None, Some("true"))
    );

    s.assert_repaired_by("Glue:UpdateTable").await;
    let parameters = s.users_table().await.parameters.unwrap_or_default();
    assert_eq!(
        parameters.get("projection.enabled").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        parameters.get("owner_team").map(String::as_str),
        Some("analytics"),
        "a parameter we do not manage was lost"
    );

    // The workgroup's output location moved under the tables by hand: one UpdateWorkGroup.
    let wrong = format!("s3://{}/curated/users/", s.config.buckets.refined);
    s.aws
        .athena
        .update_work_group()
        .work_group(&s.config.catalog.workgroup)
        .configuration_updates(
            aws_sdk_athena::types::WorkGroupConfigurationUpdates::builder()
                .result_configuration_updates(
                    aws_sdk_athena::types::ResultConfigurationUpdates::builder()
                        .output_location(&wrong)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let plan = s.plan().await;
    assert_eq!(
        changed(&plan),
        vec![(
            athena::KIND.to_owned(),
            s.config.catalog.workgroup.clone(),
            Action::Update,
            vec!["output_location".to_owned()]
        )],
        "{plan}"
    );
    s.assert_repaired_by("Athena:UpdateWorkGroup").await;
    s.down(true).await;
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn queries_run_for_real_and_failures_carry_athenas_message() {
    run(queries_run_for_real_and_failures_carry_athenas_message_body);
}

async fn queries_run_for_real_and_failures_carry_athenas_message_body() {
    let s = Stack::new("catquery", "").await;
    s.up().await.unwrap();

    // A real engine: the mock answers every query with one `result` column.
    let one = s.query("SELECT 1 AS one, 'a' AS letter").await.unwrap();
    assert_eq!(
        one.columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["one", "letter"]
    );
    assert_eq!(
        one.rows,
        vec![vec![Some("1".to_owned()), Some("a".to_owned())]]
    );
    let err = s.query("SELEC 1").await.unwrap_err().to_string();
    assert!(
        err.contains("failed: ") && err.contains("syntax error"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");

    // The database is the default schema; empty tables count zero rows.
    let empty = s.query("SELECT count(*) AS n FROM users").await.unwrap();
    assert_eq!(empty.rows, vec![vec![Some("0".to_owned())]]);

    // Files in the function's layout are read through the table locations, partitions from
    // the Hive folders; a file under the other table's location is not counted here.
    s.put(
        "curated/users/date=2025-03-01/hour=07/in/users.parquet",
        include_bytes!("fixtures/users.parquet"),
    )
    .await;
    s.put(
        "curated/users_rejected/date=2025-03-01/hour=07/in/users.parquet",
        include_bytes!("fixtures/users_rejected.parquet"),
    )
    .await;
    let counts = s
        .query(&query::counts_sql(&s.config.catalog.database))
        .await
        .unwrap();
    let text = |row: &[&str]| {
        row.iter()
            .map(|v| Some((*v).to_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        counts
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>(),
        ["date", "hour", "kind", "n"]
    );
    assert_eq!(
        counts.rows,
        vec![
            text(&["2025-03-01", "07", "clean", "2"]),
            text(&["2025-03-01", "07", "rejected", "1"]),
        ]
    );
    let users = s
        .query("SELECT id, email, \"date\", \"hour\" FROM users ORDER BY id")
        .await
        .unwrap();
    assert_eq!(
        users.rows,
        vec![
            text(&["1", "ann@example.org", "2025-03-01", "07"]),
            text(&["2", "bo@example.org", "2025-03-01", "07"]),
        ]
    );

    // The command line: each format on stdout, the banner elsewhere, failures exit 1.
    let (code, stdout, stderr) = s.cli(&["query", "--counts", "--output", "csv"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stdout,
        "date,hour,kind,n\n2025-03-01,07,clean,2\n2025-03-01,07,rejected,1\n"
    );
    assert!(
        stderr.contains("Query ") && stderr.contains("succeeded"),
        "{stderr}"
    );
    let (code, stdout, stderr) = s.cli(&["--output", "json", "query", "SELECT 1 AS one"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout, "[\n  {\n    \"one\": 1\n  }\n]\n");
    let (code, stdout, stderr) = s.cli(&["query", "--counts"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("date        hour  kind      n\n----------  ----  --------  -\n2025-03-01  07    clean     2\n2025-03-01  07    rejected  1\n(2 rows)\n"),
        "{stdout}"
    );
    let (code, _, stderr) = s.cli(&["query", "SELECT * FROM no_such_table"]);
    assert_eq!(code, 1);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: athena query ") && stderr.contains("no_such_table"),
        "{stderr}"
    );
    let (code, _, stderr) = s.cli(&["--output", "csv", "status"]);
    assert_eq!(code, 1);
    assert_eq!(
        stderr,
        "error: `--output csv` is only for `query`; `status` prints text or json\n"
    );
    s.down(true).await;
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn a_same_named_database_and_workgroup_without_our_tag_are_refused_and_kept() {
    run(a_same_named_database_and_workgroup_without_our_tag_are_refused_and_kept_body);
}

async fn a_same_named_database_and_workgroup_without_our_tag_are_refused_and_kept_body() {
    let s = Stack::new("catforeign", "").await;
    let db = s.config.catalog.database.clone();
    let wg = s.config.catalog.workgroup.clone();
    s.aws
        .glue
        .create_database()
        .database_input(
            aws_sdk_glue::types::DatabaseInput::builder()
                .name(&db)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    s.aws
        .athena
        .create_work_group()
        .name(&wg)
        .tags(
            aws_sdk_athena::types::Tag::builder()
                .key("csv-ingest:stack")
                .value("someone-else")
                .build(),
        )
        .send()
        .await
        .unwrap();

    let plan = s.plan().await;
    let conflicts: Vec<(&str, &str)> = plan
        .resources
        .iter()
        .filter(|r| r.action == Action::Conflict)
        .map(|r| (r.kind, r.name.as_str()))
        .collect();
    assert_eq!(
        conflicts,
        [
            (glue::DATABASE_KIND, db.as_str()),
            (athena::KIND, wg.as_str())
        ],
        "{plan}"
    );
    let (code, _, stderr) = s.cli(&["up"]);
    assert_eq!(code, 1);
    assert!(stderr.contains("refusing to deploy"), "{stderr}");
    let (code, _, stderr) = s.cli(&["query", "SELECT 1 AS one"]);
    assert_eq!(code, 1);
    assert!(
        stderr.contains("refusing to query") && stderr.contains("someone-else"),
        "{stderr}"
    );

    let removed = s.down(true).await;
    for r in removed.iter().filter(|r| CATALOG_KINDS.contains(&r.kind)) {
        assert!(
            matches!(&r.deletion, Deletion::Kept(why) if why.contains("not ours") || why.contains("belongs to stack")),
            "{r:?}"
        );
    }
    s.aws
        .glue
        .get_database()
        .name(&db)
        .send()
        .await
        .expect("the foreign database must survive down");
    s.aws
        .athena
        .get_work_group()
        .work_group(&wg)
        .send()
        .await
        .expect("the foreign workgroup must survive down");
    s.aws.glue.delete_database().name(&db).send().await.unwrap();
    s.aws
        .athena
        .delete_work_group()
        .work_group(&wg)
        .send()
        .await
        .unwrap();
}

#[test]
#[ignore = "needs ministack: run by `make test`"]
fn a_stale_table_update_is_accepted_only_when_the_table_already_matches() {
    run(a_stale_table_update_is_accepted_only_when_the_table_already_matches_body);
}

async fn a_stale_table_update_is_accepted_only_when_the_table_already_matches_body() {
    let s = Stack::new("catstale", "").await;
    s.up().await.unwrap();
    let desired = s.desired().await;
    let spec = &desired.tables[0];
    let before = glue::read_table(&s.aws, &spec.database, &spec.name)
        .await
        .unwrap()
        .unwrap();
    // What `up` would have read before someone (or our own lost-answer update) changed it.
    let mut stale = before.clone();
    stale.parameters.remove("projection.enabled");
    let changes = glue::diff_table(spec, Some(&stale));
    assert_eq!(changes.len(), 1);

    // Someone else changed the table meanwhile, and it does not match: refused.
    s.edit_users_parameters_by_hand(|p| {
        p.insert("projection.hour.digits".into(), "1".into());
    })
    .await;
    let err = glue::apply_table(&s.aws, spec, Some(&stale), &changes)
        .await
        .unwrap_err();
    let text = format!("{err:#}");
    assert!(
        text.contains("ConcurrentModificationException") && text.contains("changed meanwhile"),
        "{text}"
    );

    // The table matches (as after our own update whose answer was lost): accepted, no change.
    s.up().await.unwrap();
    let now = glue::read_table(&s.aws, &spec.database, &spec.name)
        .await
        .unwrap()
        .unwrap();
    assert!(glue::diff_table(spec, Some(&now)).is_empty());
    glue::apply_table(&s.aws, spec, Some(&stale), &changes)
        .await
        .unwrap();
    let after = glue::read_table(&s.aws, &spec.database, &spec.name)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(after.version_id, now.version_id, "nothing was written");
    s.down(true).await;
}
