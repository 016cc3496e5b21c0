//! SQL sources: Postgres and SQLite through sqlx, one generic extraction loop.
//!
//! The query text is sent as written; `[locate] params` and the incremental watermark are bound
//! as parameters (`$1`, `$2`, … in both databases), never spliced into the text. Rows are
//! streamed one at a time into the canonical CSV writer, so memory does not grow with the result.
//!
//! Why not sqlx's `Any` driver: in sqlx 0.8 it carries only booleans, integers, floats, text
//! and blobs, and refuses a Postgres `timestamptz`, `timestamp`, `date` or `numeric` column
//! outright ("Any driver does not support the Postgres type …") — the very columns a feature
//! store is made of, and the usual watermark. So the loop ([`extract`]) is written once, generic
//! over sqlx's `Database`, and each backend supplies only what is inherently its own: how a
//! value of one of its types becomes a [`Cell`], and how a parameter is bound ([`Backend`]).
//!
//! SQLite has no timestamp type: values come as stored (text, integer or real); a column
//! declared `BOOLEAN` holding 0/1 is written `false`/`true`.

use std::path::Path;

use futures_util::TryStreamExt;
use sqlx::{Column, Row, TypeInfo, ValueRef};

use super::canonical::{self, Cell};

/// A value bound to a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Bind {
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    /// A watermark from a Postgres `timestamptz`/`timestamp` column (RFC 3339 UTC).
    Timestamp(chrono::DateTime<chrono::Utc>),
    Date(chrono::NaiveDate),
    Decimal(String),
}

impl Bind {
    /// The bind value for a watermark cell.
    pub fn of_cell(cell: &Cell) -> Option<Bind> {
        Some(match cell {
            Cell::Bool(b) => Bind::Bool(*b),
            Cell::Int(i) => Bind::Int(*i),
            Cell::Float(f) => Bind::Float(*f),
            Cell::Decimal(d) => Bind::Decimal(d.clone()),
            Cell::Timestamp(t) => Bind::Timestamp(
                chrono::DateTime::parse_from_rfc3339(t)
                    .ok()?
                    .with_timezone(&chrono::Utc),
            ),
            Cell::Date(d) => Bind::Date(d.parse().ok()?),
            Cell::Text(t) => Bind::Text(t.clone()),
            Cell::Null | Cell::Bytes(_) => return None,
        })
    }
}

/// Why an extraction failed.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("cannot connect to {url}: {message}")]
    Connect { url: String, message: String },
    /// The database refused the query; `message` is the database's own.
    #[error("{message}")]
    Query { message: String },
    #[error("column `{column}` has the {backend} type {type_name}, which mlbuild cannot read")]
    UnsupportedType {
        column: String,
        type_name: String,
        backend: &'static str,
    },
    #[error("{0}")]
    Unsupported(String),
    /// Two values of the incremental watermark column that do not order together (a text
    /// among integers: SQLite keeps any type in any column).
    #[error("the watermark column `{column}` holds values that cannot be ordered together: {first} and {then}")]
    MixedWatermark {
        column: String,
        first: String,
        then: String,
    },
    #[error("writing the snapshot: {0}")]
    Write(#[from] std::io::Error),
}

/// Receives the result, row by row.
pub trait Sink {
    fn header(&mut self, columns: &[String]) -> Result<(), SqlError>;
    fn row(&mut self, cells: Vec<Cell>) -> Result<(), SqlError>;
}

/// What each database brings to the shared loop.
pub trait Backend: sqlx::Database {
    const NAME: &'static str;
    /// Statements run once on a new connection.
    const SETUP: &'static [&'static str];
    fn bind<'q>(
        q: sqlx::query::Query<'q, Self, <Self as sqlx::Database>::Arguments<'q>>,
        value: Bind,
    ) -> sqlx::query::Query<'q, Self, <Self as sqlx::Database>::Arguments<'q>>;
    fn cell(row: &Self::Row, i: usize) -> Result<Cell, SqlError>;
}

/// Runs `sql` with `binds` against `url` and streams the rows into `sink`. Returns the number
/// of rows.
pub async fn extract(
    url: &str,
    project: &Path,
    sql: &str,
    binds: Vec<Bind>,
    sink: &mut dyn Sink,
) -> Result<u64, SqlError> {
    let lower = url.to_ascii_lowercase();
    if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        run::<sqlx::Postgres>(url, sql, binds, sink).await
    } else if lower.starts_with("sqlite:") {
        run::<sqlx::Sqlite>(&sqlite_url(url, project), sql, binds, sink).await
    } else {
        Err(SqlError::Unsupported(format!(
            "the database URL `{}` is neither `postgres://…` nor `sqlite:…`",
            crate::redact::safe_url(url)
        )))
    }
}

/// A SQLite URL with a relative path resolved against the project directory, opened read-only
/// unless the URL says otherwise.
fn sqlite_url(url: &str, project: &Path) -> String {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let (path, query) = match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    };
    let path = if path.is_empty() || path == ":memory:" || Path::new(path).is_absolute() {
        path.to_string()
    } else {
        project.join(path).to_string_lossy().into_owned()
    };
    let query = match query {
        Some(q) if q.contains("mode=") => q.to_string(),
        Some(q) => format!("{q}&mode=ro"),
        None => "mode=ro".to_string(),
    };
    format!("sqlite://{path}?{query}")
}

async fn run<DB: Backend>(
    url: &str,
    sql: &str,
    binds: Vec<Bind>,
    sink: &mut dyn Sink,
) -> Result<u64, SqlError>
where
    for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    for<'q> <DB as sqlx::Database>::Arguments<'q>: sqlx::IntoArguments<'q, DB>,
{
    use sqlx::Connection;
    let mut conn = DB::Connection::connect(url)
        .await
        .map_err(|e| SqlError::Connect {
            url: crate::redact::safe_url(url),
            message: message(&e),
        })?;
    for statement in DB::SETUP {
        sqlx::query::<DB>(statement)
            .execute(&mut conn)
            .await
            .map_err(|e| SqlError::Query {
                message: message(&e),
            })?;
    }
    let mut q = sqlx::query::<DB>(sql);
    for b in binds {
        q = DB::bind(q, b);
    }
    let mut rows = q.fetch(&mut conn);
    let mut count = 0u64;
    let mut width = 0;
    while let Some(row) = rows.try_next().await.map_err(|e| SqlError::Query {
        message: message(&e),
    })? {
        if count == 0 {
            let names: Vec<String> = row.columns().iter().map(|c| c.name().to_string()).collect();
            width = names.len();
            sink.header(&names)?;
        }
        let mut cells = Vec::with_capacity(width);
        for i in 0..width {
            cells.push(DB::cell(&row, i)?);
        }
        sink.row(cells)?;
        count += 1;
    }
    drop(rows);
    let _ = conn.close().await;
    Ok(count)
}

/// The database's own message for a query error; sqlx's wording for anything else.
fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(db) => db.message().to_string(),
        other => other.to_string(),
    }
}

fn decode_err(column: &str, e: sqlx::Error) -> SqlError {
    SqlError::Unsupported(format!("reading column `{column}`: {e}"))
}

impl Backend for sqlx::Postgres {
    const NAME: &'static str = "Postgres";
    // Naive timestamps compare with bound UTC instants as UTC.
    const SETUP: &'static [&'static str] = &["SET TIME ZONE 'UTC'"];

    fn bind<'q>(
        q: sqlx::query::Query<'q, Self, sqlx::postgres::PgArguments>,
        value: Bind,
    ) -> sqlx::query::Query<'q, Self, sqlx::postgres::PgArguments> {
        match value {
            Bind::Bool(b) => q.bind(b),
            Bind::Int(i) => q.bind(i),
            Bind::Float(f) => q.bind(f),
            Bind::Text(t) => q.bind(t),
            Bind::Timestamp(t) => q.bind(t),
            Bind::Date(d) => q.bind(d),
            Bind::Decimal(d) => q.bind(d.parse::<sqlx::types::BigDecimal>().unwrap_or_default()),
        }
    }

    fn cell(row: &sqlx::postgres::PgRow, i: usize) -> Result<Cell, SqlError> {
        let column = &row.columns()[i];
        let name = column.name();
        let type_name = column.type_info().name().to_string();
        let raw = row.try_get_raw(i).map_err(|e| decode_err(name, e))?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        fn get<'r, T: sqlx::Decode<'r, sqlx::Postgres> + sqlx::Type<sqlx::Postgres>>(
            row: &'r sqlx::postgres::PgRow,
            i: usize,
            name: &str,
        ) -> Result<T, SqlError> {
            row.try_get::<T, _>(i).map_err(|e| decode_err(name, e))
        }
        Ok(match type_name.as_str() {
            "BOOL" => Cell::Bool(get(row, i, name)?),
            "INT2" => Cell::Int(get::<i16>(row, i, name)? as i64),
            "INT4" => Cell::Int(get::<i32>(row, i, name)? as i64),
            "INT8" => Cell::Int(get(row, i, name)?),
            "OID" => Cell::Int(get::<sqlx::postgres::types::Oid>(row, i, name)?.0 as i64),
            "FLOAT4" => Cell::Decimal(canonical::float32(get(row, i, name)?)),
            "FLOAT8" => Cell::Float(get(row, i, name)?),
            "NUMERIC" => {
                let d = get::<sqlx::types::BigDecimal>(row, i, name)?;
                Cell::Decimal(canonical::decimal(&d.to_plain_string()))
            }
            "TEXT" | "VARCHAR" | "BPCHAR" | "NAME" | "CHAR" | "CITEXT" => {
                Cell::Text(get(row, i, name)?)
            }
            "TIMESTAMPTZ" => Cell::Timestamp(canonical::timestamp(get(row, i, name)?)),
            "TIMESTAMP" => Cell::Timestamp(canonical::timestamp(
                get::<chrono::NaiveDateTime>(row, i, name)?.and_utc(),
            )),
            "DATE" => Cell::Date(
                get::<chrono::NaiveDate>(row, i, name)?
                    .format("%Y-%m-%d")
                    .to_string(),
            ),
            "BYTEA" => Cell::Bytes(get(row, i, name)?),
            _ => {
                return Err(SqlError::UnsupportedType {
                    column: name.to_string(),
                    type_name,
                    backend: Self::NAME,
                })
            }
        })
    }
}

impl Backend for sqlx::Sqlite {
    const NAME: &'static str = "SQLite";
    const SETUP: &'static [&'static str] = &[];

    fn bind<'q>(
        q: sqlx::query::Query<'q, Self, sqlx::sqlite::SqliteArguments<'q>>,
        value: Bind,
    ) -> sqlx::query::Query<'q, Self, sqlx::sqlite::SqliteArguments<'q>> {
        match value {
            Bind::Bool(b) => q.bind(b),
            Bind::Int(i) => q.bind(i),
            Bind::Float(f) => q.bind(f),
            Bind::Text(t) | Bind::Decimal(t) => q.bind(t),
            Bind::Timestamp(t) => q.bind(canonical::timestamp(t)),
            Bind::Date(d) => q.bind(d.format("%Y-%m-%d").to_string()),
        }
    }

    fn cell(row: &sqlx::sqlite::SqliteRow, i: usize) -> Result<Cell, SqlError> {
        let column = &row.columns()[i];
        let name = column.name();
        let declared = column.type_info().name().to_ascii_uppercase();
        let raw = row.try_get_raw(i).map_err(|e| decode_err(name, e))?;
        if raw.is_null() {
            return Ok(Cell::Null);
        }
        // The value's own storage class, not the column's declared type.
        let storage = raw.type_info().name().to_string();
        Ok(match storage.as_str() {
            "INTEGER" | "BOOLEAN" | "INT4" if declared == "BOOLEAN" => {
                Cell::Bool(row.try_get::<i64, _>(i).map_err(|e| decode_err(name, e))? != 0)
            }
            "INTEGER" | "INT4" | "BOOLEAN" => Cell::Int(
                row.try_get_unchecked::<i64, _>(i)
                    .map_err(|e| decode_err(name, e))?,
            ),
            "REAL" => Cell::Float(
                row.try_get_unchecked::<f64, _>(i)
                    .map_err(|e| decode_err(name, e))?,
            ),
            "BLOB" => Cell::Bytes(
                row.try_get_unchecked::<Vec<u8>, _>(i)
                    .map_err(|e| decode_err(name, e))?,
            ),
            _ => Cell::Text(
                row.try_get_unchecked::<String, _>(i)
                    .map_err(|e| decode_err(name, e))?,
            ),
        })
    }
}

/// Whether a query says how its rows are ordered (an `ORDER BY` anywhere in it; a subquery's
/// counts too, so this can miss an unordered outer query — it is a warning, not a rule).
pub fn has_order_by(sql: &str) -> bool {
    static RE: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    RE.get_or_init(|| regex::Regex::new(r"(?i)\border\s+by\b").expect("valid regex"))
        .is_match(sql)
}

/// A column name as a quoted SQL identifier (both databases use `"…"`).
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The incremental query: the user's query as a subquery, filtered past the watermark (bound as
/// parameter `$n`) and ordered by the watermark column (then the key).
pub fn incremental_query(sql: &str, column: &str, key: Option<&str>, n: usize) -> String {
    let inner = sql.trim().trim_end_matches(';').trim_end();
    let col = quote_ident(column);
    let order = match key {
        Some(k) => format!("src.{col}, src.{}", quote_ident(k)),
        None => format!("src.{col}"),
    };
    format!("SELECT * FROM ({inner}) AS src WHERE src.{col} > ${n} ORDER BY {order}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_by_is_detected() {
        assert!(has_order_by("select * from t ORDER  BY id"));
        assert!(has_order_by("SELECT *\nFROM t\norder\nby id"));
        assert!(!has_order_by("SELECT border, byline FROM t"));
    }

    #[test]
    fn the_incremental_query_wraps_the_users() {
        assert_eq!(
            incremental_query("SELECT * FROM t WHERE r = $1;\n", "updated_at", Some("id"), 2),
            "SELECT * FROM (SELECT * FROM t WHERE r = $1) AS src WHERE src.\"updated_at\" > $2 ORDER BY src.\"updated_at\", src.\"id\""
        );
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn sqlite_urls_are_relative_to_the_project_and_read_only() {
        let p = Path::new("/proj");
        assert_eq!(
            sqlite_url("sqlite://f.db", p),
            "sqlite:///proj/f.db?mode=ro"
        );
        assert_eq!(
            sqlite_url("sqlite:/abs/f.db", p),
            "sqlite:///abs/f.db?mode=ro"
        );
        assert_eq!(
            sqlite_url("sqlite://f.db?mode=rw", p),
            "sqlite:///proj/f.db?mode=rw"
        );
    }
}
