//! `deployer query`: runs SQL in the stack's Athena workgroup with its Glue database as the
//! default schema, waits for it with a deadline, and prints the result as an aligned table,
//! JSON (an array of objects) or CSV.

use std::fmt::Write as _;
use std::io::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use aws_sdk_athena::types::{QueryExecutionContext, QueryExecutionState, StatementType};
use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::aws::{Aws, sdk_error};
use crate::commands::connect;
use crate::config::Config;
use crate::report::{Output, Reporter};
use crate::resources::{athena, glue, ownership_problem};
use crate::stack::Names;

/// How `query` prints its result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Aligned columns for a terminal.
    Table,
    /// One JSON array of objects (column → value) on stdout.
    Json,
    /// RFC 4180 CSV with a header line on stdout.
    Csv,
}

/// The first wait between two polls; it doubles up to `MAX_POLL_INTERVAL`.
const FIRST_POLL_INTERVAL: Duration = Duration::from_millis(100);
const MAX_POLL_INTERVAL: Duration = Duration::from_secs(2);
/// Rows per GetQueryResults page (Athena's maximum).
const PAGE_SIZE: i32 = 1000;

/// The wait before poll number `attempt` (0-based): 100 ms, 200 ms, 400 ms, … at most 2 s.
pub fn backoff(attempt: u32) -> Duration {
    FIRST_POLL_INTERVAL
        .saturating_mul(2u32.saturating_pow(attempt))
        .min(MAX_POLL_INTERVAL)
}

/// Clean and rejected rows per partition, in standard SQL both Athena (Trino) and the
/// emulator (DuckDB) run: `date` and `hour` are quoted, every column is named.
pub fn counts_sql(database: &str) -> String {
    let table = |name: &str| format!("\"{database}\".\"{name}\"");
    format!(
        "SELECT \"date\", \"hour\", 'clean' AS kind, count(*) AS n FROM {} GROUP BY 1, 2 \
         UNION ALL \
         SELECT \"date\", \"hour\", 'rejected' AS kind, count(*) AS n FROM {} GROUP BY 1, 2 \
         ORDER BY 1, 2, 3",
        table(glue::USERS),
        table(glue::USERS_REJECTED)
    )
}

/// One result column: its name and Athena type (`varchar`, `bigint`, …).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResultColumn {
    pub name: String,
    pub data_type: String,
}

/// A query result: the columns and the rows, `None` for SQL NULL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ResultTable {
    pub columns: Vec<ResultColumn>,
    pub rows: Vec<Vec<Option<String>>>,
}

/// A query that succeeded.
#[derive(Clone, Debug)]
pub struct Finished {
    pub id: String,
    pub table: ResultTable,
    pub scanned_bytes: Option<i64>,
    pub elapsed: Duration,
}

fn is_numeric(data_type: &str) -> bool {
    let base = data_type
        .split('(')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    matches!(
        base.as_str(),
        "tinyint"
            | "smallint"
            | "int"
            | "integer"
            | "bigint"
            | "float"
            | "real"
            | "double"
            | "decimal"
    )
}

/// A cell for the terminal: NULL spelled out, control characters escaped so rows stay one line.
fn display_cell(value: Option<&str>) -> String {
    match value {
        None => "NULL".to_owned(),
        Some(v) => v
            .replace('\\', "\\\\")
            .replace('\n', "\\n")
            .replace('\r', "\\r")
            .replace('\t', "\\t"),
    }
}

/// Aligned columns under a header and a rule; numeric columns right-aligned (header
/// included), text left-aligned, no trailing spaces; then `(N rows)`.
pub fn render_table(table: &ResultTable) -> String {
    let header: Vec<String> = table
        .columns
        .iter()
        .map(|c| display_cell(Some(&c.name)))
        .collect();
    let cells: Vec<Vec<String>> = table
        .rows
        .iter()
        .map(|row| row.iter().map(|v| display_cell(v.as_deref())).collect())
        .collect();
    let count = header
        .len()
        .max(cells.iter().map(Vec::len).max().unwrap_or(0));
    let width = |i: usize| {
        std::iter::once(&header)
            .chain(&cells)
            .filter_map(|row| row.get(i))
            .map(|c| c.chars().count())
            .max()
            .unwrap_or(0)
    };
    let widths: Vec<usize> = (0..count).map(width).collect();
    let numeric: Vec<bool> = (0..count)
        .map(|i| {
            table
                .columns
                .get(i)
                .is_some_and(|c| is_numeric(&c.data_type))
        })
        .collect();
    let mut out = String::new();
    let mut line = |row: &[String], align: bool| {
        let mut text = String::new();
        for (i, w) in widths.iter().enumerate() {
            let cell = row.get(i).map(String::as_str).unwrap_or_default();
            if i > 0 {
                text.push_str("  ");
            }
            if align && numeric[i] {
                let _ = write!(text, "{cell:>w$}");
            } else {
                let _ = write!(text, "{cell:<w$}");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&header, true);
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    line(&rule, false);
    for row in &cells {
        line(row, true);
    }
    let n = table.rows.len();
    let _ = writeln!(out, "({n} row{})", if n == 1 { "" } else { "s" });
    out
}

fn csv_field(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_owned()
    }
}

/// RFC 4180: a header line, then one line per row; NULL is an empty field.
pub fn render_csv(table: &ResultTable) -> String {
    let mut out = String::new();
    let header: Vec<String> = table.columns.iter().map(|c| csv_field(&c.name)).collect();
    out.push_str(&header.join(","));
    out.push('\n');
    for row in &table.rows {
        let fields: Vec<String> = row
            .iter()
            .map(|v| v.as_deref().map(csv_field).unwrap_or_default())
            .collect();
        out.push_str(&fields.join(","));
        out.push('\n');
    }
    out
}

/// Object keys in column order; a repeated column name gets `_2`, `_3`, … so none is lost.
fn json_keys(columns: &[ResultColumn]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::with_capacity(columns.len());
    for column in columns {
        let mut key = column.name.clone();
        let mut n = 2;
        while keys.contains(&key) {
            key = format!("{}_{n}", column.name);
            n += 1;
        }
        keys.push(key);
    }
    keys
}

/// A value as JSON: integers and booleans typed, floats when finite, everything else (decimal
/// included, to keep its precision) as the string Athena returned; NULL as `null`.
fn json_value(data_type: &str, value: Option<&str>) -> serde_json::Value {
    use serde_json::Value;
    let Some(text) = value else {
        return Value::Null;
    };
    let base = data_type.to_ascii_lowercase();
    let typed = match base.as_str() {
        "tinyint" | "smallint" | "int" | "integer" | "bigint" => {
            text.parse::<i64>().ok().map(Value::from)
        }
        "boolean" => text.parse::<bool>().ok().map(Value::from),
        "float" | "real" | "double" => text
            .parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number),
        _ => None,
    };
    typed.unwrap_or_else(|| Value::String(text.to_owned()))
}

struct JsonRows<'a>(&'a ResultTable, &'a [String]);
struct JsonRow<'a>(&'a ResultTable, &'a [String], &'a [Option<String>]);

impl Serialize for JsonRows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.0.rows.len()))?;
        for row in &self.0.rows {
            seq.serialize_element(&JsonRow(self.0, self.1, row))?;
        }
        seq.end()
    }
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.1.len()))?;
        for (i, key) in self.1.iter().enumerate() {
            let data_type = self.0.columns.get(i).map_or("", |c| c.data_type.as_str());
            let value = self.2.get(i).and_then(Option::as_deref);
            map.serialize_entry(key, &json_value(data_type, value))?;
        }
        map.end()
    }
}

/// An array of objects, keys in column order.
pub fn render_json(table: &ResultTable) -> Result<String> {
    let keys = json_keys(&table.columns);
    Ok(serde_json::to_string_pretty(&JsonRows(table, &keys))?)
}

/// One line: Athena's error texts (DuckDB's on the emulator) span several.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Starts `sql` in `workgroup` with `database` as the default schema, polls it with
/// exponential backoff until it ends or `timeout` passes (then stops it), and reads every
/// result page. A failed or cancelled query is an error carrying Athena's reason.
pub async fn execute(
    aws: &Aws,
    workgroup: &str,
    database: &str,
    sql: &str,
    timeout: Duration,
) -> Result<Finished> {
    let started = Instant::now();
    let deadline = started + timeout;
    let id = aws
        .athena
        .start_query_execution()
        .query_string(sql)
        .work_group(workgroup)
        .query_execution_context(QueryExecutionContext::builder().database(database).build())
        .send()
        .await
        .map_err(sdk_error)
        .with_context(|| {
            format!("starting a query in athena workgroup {workgroup} (StartQueryExecution)")
        })?
        .query_execution_id
        .context("athena answered StartQueryExecution without a query execution id")?;
    let doing = |what: &str| format!("{what} of athena query {id}");
    let mut attempt = 0;
    let execution = loop {
        let execution = aws
            .athena
            .get_query_execution()
            .query_execution_id(&id)
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| doing("reading the state (GetQueryExecution)"))?
            .query_execution
            .with_context(|| format!("athena returned no execution for query {id}"))?;
        let status = execution.status();
        let state = status.and_then(|s| s.state()).cloned();
        match state {
            Some(QueryExecutionState::Succeeded) => break execution,
            Some(state @ (QueryExecutionState::Failed | QueryExecutionState::Cancelled)) => {
                let reason = status
                    .and_then(|s| s.state_change_reason())
                    .or_else(|| status.and_then(|s| s.athena_error()?.error_message()))
                    .filter(|r| !r.trim().is_empty())
                    .unwrap_or("athena gave no reason");
                bail!(
                    "athena query {id} {}: {}",
                    state.as_str().to_ascii_lowercase(),
                    one_line(reason)
                );
            }
            _ => {}
        }
        let now = Instant::now();
        if now >= deadline {
            let state = state.map_or_else(|| "unknown".to_owned(), |s| s.as_str().to_owned());
            // Best effort: the error below is what matters.
            let stopped = aws
                .athena
                .stop_query_execution()
                .query_execution_id(&id)
                .send()
                .await
                .is_ok();
            bail!(
                "athena query {id} did not finish within {} s (state {state}){}; raise --timeout",
                timeout.as_secs(),
                if stopped { ", stopped it" } else { "" }
            );
        }
        tokio::time::sleep(backoff(attempt).min(deadline - now)).await;
        attempt += 1;
    };
    let dml = execution.statement_type() == Some(&StatementType::Dml);
    let scanned_bytes = execution
        .statistics()
        .and_then(|s| s.data_scanned_in_bytes());
    let table = results(aws, &id, dml).await?;
    Ok(Finished {
        id,
        table,
        scanned_bytes,
        elapsed: started.elapsed(),
    })
}

/// Every page of a finished query. A DML result's first row repeats the column names: it is
/// dropped (the names come from the result metadata).
async fn results(aws: &Aws, id: &str, dml: bool) -> Result<ResultTable> {
    let mut table = ResultTable::default();
    let mut next_token: Option<String> = None;
    let mut first_page = true;
    loop {
        let page = aws
            .athena
            .get_query_results()
            .query_execution_id(id)
            .max_results(PAGE_SIZE)
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(sdk_error)
            .with_context(|| {
                format!("reading the results of athena query {id} (GetQueryResults)")
            })?;
        if let Some(set) = page.result_set() {
            if first_page {
                table.columns = set
                    .result_set_metadata()
                    .map(|m| m.column_info())
                    .unwrap_or_default()
                    .iter()
                    .map(|c| ResultColumn {
                        name: c.name().to_owned(),
                        data_type: c.r#type().to_owned(),
                    })
                    .collect();
            }
            let skip = usize::from(first_page && dml);
            table.rows.extend(set.rows().iter().skip(skip).map(|row| {
                row.data()
                    .iter()
                    .map(|d| d.var_char_value().map(str::to_owned))
                    .collect()
            }));
        }
        first_page = false;
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => break,
        }
    }
    Ok(table)
}

/// `deployer query`: `sql`, or the per-partition counts with `counts`.
pub async fn run(
    config: &Config,
    format: Format,
    sql: Option<String>,
    counts: bool,
    timeout: Duration,
) -> Result<()> {
    let names = Names::new(config);
    let sql = if counts {
        counts_sql(&names.database)
    } else {
        match sql {
            Some(sql) if !sql.trim().is_empty() => sql,
            _ => bail!(
                "the query is empty: pass SQL, like `deployer query \"SELECT 1 AS one\"`, or --counts"
            ),
        }
    };
    let report = Reporter::new(match format {
        Format::Table => Output::Text,
        Format::Json | Format::Csv => Output::Json,
    });
    let (aws, identity) = connect(config, &report).await?;
    let workgroup = names.workgroup_spec(&identity);
    match athena::read(&aws, &workgroup).await? {
        None => bail!(
            "athena workgroup {} does not exist: deploy the stack first (`deployer up`)",
            names.workgroup
        ),
        Some(w) => {
            if let Some(problem) = ownership_problem(&w.tags, &config.stack) {
                bail!(
                    "refusing to query in athena workgroup {}: {problem}",
                    names.workgroup
                );
            }
        }
    }
    let finished = execute(&aws, &names.workgroup, &names.database, &sql, timeout).await?;
    let summary = format!(
        "Query {} succeeded in {:.2} s{}.",
        finished.id,
        finished.elapsed.as_secs_f64(),
        finished
            .scanned_bytes
            .map(|b| format!(", {b} bytes scanned"))
            .unwrap_or_default()
    );
    let text = match format {
        Format::Table => render_table(&finished.table),
        Format::Json => render_json(&finished.table)? + "\n",
        Format::Csv => render_csv(&finished.table),
    };
    std::io::stdout()
        .write_all(text.as_bytes())
        .context("writing the query result to stdout")?;
    report.line(summary);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(columns: &[(&str, &str)], rows: &[&[Option<&str>]]) -> ResultTable {
        ResultTable {
            columns: columns
                .iter()
                .map(|(n, t)| ResultColumn {
                    name: (*n).to_owned(),
                    data_type: (*t).to_owned(),
                })
                .collect(),
            rows: rows
                .iter()
                .map(|r| r.iter().map(|v| v.map(str::to_owned)).collect())
                .collect(),
        }
    }

    fn counts() -> ResultTable {
        table(
            &[
                ("date", "varchar"),
                ("hour", "varchar"),
                ("kind", "varchar"),
                ("n", "bigint"),
            ],
            &[
                &[Some("2025-03-01"), Some("07"), Some("clean"), Some("1234")],
                &[Some("2025-03-01"), Some("07"), Some("rejected"), Some("5")],
            ],
        )
    }

    #[test]
    fn table_is_aligned_numbers_right_text_left() {
        assert_eq!(
            render_table(&counts()),
            "date        hour  kind         n\n\
             ----------  ----  --------  ----\n\
             2025-03-01  07    clean     1234\n\
             2025-03-01  07    rejected     5\n\
             (2 rows)\n"
        );
    }

    #[test]
    fn table_shows_null_escapes_newlines_and_counts_one_row() {
        let t = table(
            &[("one", "integer"), ("note", "varchar")],
            &[&[None, Some("a\nb\té")]],
        );
        assert_eq!(
            render_table(&t),
            " one  note\n----  -------\nNULL  a\\nb\\té\n(1 row)\n"
        );
        let empty = table(&[("x", "varchar")], &[]);
        assert_eq!(render_table(&empty), "x\n-\n(0 rows)\n");
    }

    #[test]
    fn table_width_counts_characters_not_bytes() {
        let t = table(
            &[("name", "varchar"), ("n", "bigint")],
            &[&[Some("Zoé"), Some("1")]],
        );
        assert_eq!(render_table(&t), "name  n\n----  -\nZoé   1\n(1 row)\n");
    }

    #[test]
    fn csv_quotes_only_what_needs_it_and_nulls_are_empty() {
        let t = table(
            &[("a", "varchar"), ("b,c", "varchar"), ("n", "bigint")],
            &[
                &[Some("plain"), Some("say \"hi\""), None],
                &[Some("two\nlines"), Some(""), Some("3")],
            ],
        );
        assert_eq!(
            render_csv(&t),
            "a,\"b,c\",n\nplain,\"say \"\"hi\"\"\",\n\"two\nlines\",,3\n"
        );
        assert_eq!(
            render_csv(&counts()).lines().next(),
            Some("date,hour,kind,n")
        );
    }

    #[test]
    fn json_is_an_array_of_objects_in_column_order_with_typed_values() {
        let text = render_json(&counts()).unwrap();
        let first_keys: Vec<&str> = text
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"')?.split('"').next())
            .take(4)
            .collect();
        assert_eq!(first_keys, ["date", "hour", "kind", "n"]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            value,
            serde_json::json!([
                {"date": "2025-03-01", "hour": "07", "kind": "clean", "n": 1234},
                {"date": "2025-03-01", "hour": "07", "kind": "rejected", "n": 5}
            ])
        );
        let t = table(
            &[
                ("b", "boolean"),
                ("d", "double"),
                ("x", "decimal(10,2)"),
                ("n", "integer"),
                ("n", "bigint"),
                ("z", "double"),
            ],
            &[&[
                Some("true"),
                Some("1.5"),
                Some("1.10"),
                None,
                Some("x"),
                Some("NaN"),
            ]],
        );
        let value: serde_json::Value = serde_json::from_str(&render_json(&t).unwrap()).unwrap();
        assert_eq!(
            value,
            serde_json::json!([{"b": true, "d": 1.5, "x": "1.10", "n": null, "n_2": "x", "z": "NaN"}])
        );
        assert_eq!(render_json(&table(&[("x", "varchar")], &[])).unwrap(), "[]");
    }

    #[test]
    fn backoff_doubles_up_to_a_cap() {
        let waits: Vec<u128> = (0..7).map(|n| backoff(n).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1600, 2000, 2000]);
        assert_eq!(backoff(u32::MAX), MAX_POLL_INTERVAL);
    }

    #[test]
    fn counts_sql_is_plain_standard_sql_over_both_tables() {
        assert_eq!(
            counts_sql("lake"),
            "SELECT \"date\", \"hour\", 'clean' AS kind, count(*) AS n FROM \"lake\".\"users\" GROUP BY 1, 2 \
             UNION ALL SELECT \"date\", \"hour\", 'rejected' AS kind, count(*) AS n FROM \"lake\".\"users_rejected\" GROUP BY 1, 2 \
             ORDER BY 1, 2, 3"
        );
    }

    #[test]
    fn multi_line_errors_become_one_line() {
        assert_eq!(
            one_line(
                "Parser Error: syntax error at or near \"SELEC\"\n\nLINE 1: SELEC 1\n        ^"
            ),
            "Parser Error: syntax error at or near \"SELEC\" LINE 1: SELEC 1 ^"
        );
    }
}
