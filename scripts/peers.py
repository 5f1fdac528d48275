"""The contract's job in polars or DuckDB, for `scripts/peers.sh`: read a users CSV, apply the
SPEC section 2 rules, write the clean and the rejected rows (`peers.sh` times it and counts them).

    python scripts/peers.py polars|duckdb FILE OUT_DIR

Both engines read the file as text columns and apply the rules as expressions: trim, id and name
present, the email grammar (a regular expression without look-arounds, the 64/254 length
limits), the timestamp grammar (shape by regular expression, the calendar by the engine's
parser), update not before create as instants. Quoting is the engines' CSV readers'; a row
with a field too many is `malformed_row` (polars: a spare column; DuckDB: its reader's
rejects), one with a field too few is rejected as an empty `update_ts` (polars) or by the
reader (DuckDB), and invalid UTF-8 is found as U+FFFD (polars reads lossily) or by the
reader. The header is taken to be `id,name,email,create_ts,update_ts` in that order, as in
the generated benchmark file: on it polars gives the contract's counts; DuckDB's timestamp
cast is laxer than the grammar (about 0.1% of rows differ).
"""

import sys

LOCAL = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL = rf"^{LOCAL}@({LABEL}\.)+[A-Za-z]{{2,}}$"
LOCAL_LEN = r"^[^@]{1,64}@"
STAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$"
COLUMNS = ["id", "name", "email", "create_ts", "update_ts"]


def run_polars(path, out):
    import polars as pl

    def stamp(col):
        text = pl.col(col).str.strip_chars()
        norm = text.str.replace(" ", "T").str.replace("Z$", "+00:00")
        norm = pl.when(norm.str.contains(r"[+-]\d\d:\d\d$")).then(norm).otherwise(norm + "+00:00")
        parsed = norm.str.to_datetime("%Y-%m-%dT%H:%M:%S%.f%:z", time_zone="UTC", strict=False)
        return pl.when(text.str.contains(STAMP)).then(parsed).otherwise(None)

    email = pl.col("email").str.strip_chars().str.to_lowercase()
    frame = (
        pl.scan_csv(
            path,
            has_header=False,
            skip_rows=1,
            # Spare columns: a row with more than 5 fields has a 6th. (One with fewer reads as
            # empty fields: rejected all the same, as invalid_update_ts rather than malformed.)
            schema={f"c{i}": pl.String for i in range(7)},
            encoding="utf8-lossy",
            empty_string_is_null=True,
            truncate_ragged_lines=True,
            missing_columns="insert",
        )
        .with_columns(_malformed=pl.col("c5").is_not_null())
        .rename(dict(zip([f"c{i}" for i in range(5)], COLUMNS)))
        .with_columns(pl.col(COLUMNS).fill_null(""))
        .with_columns(
            _id=pl.col("id").str.strip_chars(),
            _name=pl.col("name").str.strip_chars(),
            _email=email,
            _created=stamp("create_ts"),
            _updated=stamp("update_ts"),
        )
        .with_columns(
            _reasons=pl.when(pl.col("_malformed"))
            .then(pl.lit("malformed_row"))
            .when(
                pl.any_horizontal(pl.col(c).str.contains("\ufffd", literal=True) for c in COLUMNS)
            )
            .then(pl.lit("invalid_utf8"))
            .otherwise(
                pl.concat_str(
                [
                    pl.when(pl.col("_id") == "").then(pl.lit("missing_id;")),
                    pl.when(pl.col("_name") == "").then(pl.lit("missing_name;")),
                    pl.when(
                        ~pl.col("_email").str.contains(EMAIL)
                        | ~pl.col("_email").str.contains(LOCAL_LEN)
                        | (pl.col("_email").str.len_chars() > 254)
                    ).then(pl.lit("invalid_email;")),
                    pl.when(pl.col("_created").is_null()).then(pl.lit("invalid_create_ts;")),
                    pl.when(pl.col("_updated").is_null()).then(pl.lit("invalid_update_ts;")),
                    pl.when(pl.col("_updated") < pl.col("_created")).then(
                        pl.lit("update_before_create;")
                    ),
                ],
                ignore_nulls=True,
                ).str.strip_chars_end(";")
            )
        )
    )
    clean = frame.filter(pl.col("_reasons") == "").select(
        id="_id", name="_name", email="_email", create_ts=pl.col("create_ts").str.strip_chars(),
        update_ts=pl.col("update_ts").str.strip_chars(),
    )
    rejected = frame.filter(pl.col("_reasons") != "").select(
        ["_reasons", *COLUMNS]
    ).rename({"_reasons": "reasons"})
    pl.collect_all(
        [
            clean.sink_csv(f"{out}/polars_cleaned.csv", lazy=True),
            rejected.sink_csv(f"{out}/polars_rejected.csv", lazy=True),
        ],
        engine="streaming",
    )


def run_duckdb(path, out):
    import duckdb

    def stamp(col):
        text = f"trim({col})"
        return (
            f"CASE WHEN regexp_full_match({text}, '{STAMP[1:-1]}') "
            f"THEN TRY_CAST(replace(replace({text}, 'T', ' '), 'Z', '+00:00') AS TIMESTAMPTZ) END"
        )

    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    email_ok = (
        f"(regexp_full_match(e, '{EMAIL[1:-1].replace(chr(39), chr(39) * 2)}') "
        f"AND regexp_matches(e, '{LOCAL_LEN}') AND length(e) <= 254)"
    )
    con.execute(
        f"""
        CREATE TEMP TABLE checked AS
        SELECT *, CASE WHEN contains(concat(id, name, email, create_ts, update_ts), '\ufffd')
            THEN 'invalid_utf8' ELSE concat_ws(';',
            CASE WHEN trim(id) = '' THEN 'missing_id' END,
            CASE WHEN trim(name) = '' THEN 'missing_name' END,
            CASE WHEN NOT coalesce({email_ok}, false) THEN 'invalid_email' END,
            CASE WHEN created IS NULL THEN 'invalid_create_ts' END,
            CASE WHEN updated IS NULL THEN 'invalid_update_ts' END,
            CASE WHEN updated < created THEN 'update_before_create' END) END AS reasons
        FROM (
            SELECT *, lower(trim(email)) AS e, {stamp('create_ts')} AS created,
                   {stamp('update_ts')} AS updated
            FROM (SELECT {", ".join(f"coalesce({c}, '') AS {c}" for c in COLUMNS)}
                  FROM read_csv('{path}', header = true, ignore_errors = true,
                                store_rejects = true,
                                columns = {{{", ".join(f"'{c}': 'VARCHAR'" for c in COLUMNS)}}}))
        )
        """
    )
    con.execute(
        f"""COPY (SELECT trim(id) AS id, trim(name) AS name, e AS email, trim(create_ts) AS create_ts,
                  trim(update_ts) AS update_ts FROM checked WHERE reasons = '')
            TO '{out}/duckdb_cleaned.csv' (HEADER)"""
    )
    con.execute(
        # Rows the reader refused (wrong field count, invalid UTF-8) are in `reject_errors`:
        # they are rejected rows too, written with their raw line.
        f"""COPY (SELECT reasons, id, name, email, create_ts, update_ts, NULL AS raw FROM checked
                  WHERE reasons <> ''
                  UNION ALL
                  SELECT CASE WHEN bool_or(error_type LIKE '%COLUMNS%') THEN 'malformed_row'
                              ELSE 'invalid_utf8' END, NULL, NULL, NULL, NULL, NULL,
                         any_value(csv_line)
                  FROM reject_errors GROUP BY line)
            TO '{out}/duckdb_rejected.csv' (HEADER)"""
    )


def main():
    if len(sys.argv) != 4 or sys.argv[1] not in ("polars", "duckdb"):
        sys.exit("usage: peers.py polars|duckdb FILE OUT_DIR")
    engine, path, out = sys.argv[1:]
    (run_polars if engine == "polars" else run_duckdb)(path, out)


if __name__ == "__main__":
    main()
