//! Data sources (docs/sources.md): SQL through sqlx on SQLite and Postgres (a real server, when
//! `MLBUILD_TEST_POSTGRES_URL` is set), incremental extraction, CSV options, Parquet, globs, and
//! bad input that must leave the previous snapshot and tags untouched.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::{assert_ran, exec, runtime, shared_node, PgDb, Project, Run};

const PROSTATE_COLUMNS: &str = "ID, CAPSULE, AGE, RACE, DPROS, DCAPS, PSA, VOL, GLEASON";

fn count(url: &str, table: &str) -> i64 {
    runtime().block_on(async {
        sqlx::any::install_default_drivers();
        use sqlx::{Connection, Row};
        let mut conn = sqlx::AnyConnection::connect(url).await.unwrap();
        let row = sqlx::query(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&mut conn)
            .await
            .unwrap();
        row.get::<i64, _>(0)
    })
}

/// `CREATE TABLE prostate` + one INSERT per row of data/prostate.csv, with an `updated_at`.
fn prostate_statements(float_type: &str, updated_type: &str) -> Vec<String> {
    let csv =
        std::fs::read_to_string(crate::support::repo_root().join("data/prostate.csv")).unwrap();
    let mut out = vec![
        "DROP TABLE IF EXISTS prostate".to_string(),
        format!(
            "CREATE TABLE prostate (ID INTEGER PRIMARY KEY, CAPSULE INTEGER, AGE INTEGER, RACE INTEGER, \
             DPROS INTEGER, DCAPS INTEGER, PSA {float_type}, VOL {float_type}, GLEASON INTEGER, \
             region TEXT, updated_at {updated_type})"
        ),
    ];
    let mut values = Vec::new();
    for (i, line) in csv.lines().skip(1).enumerate() {
        let region = if i % 2 == 0 { "north" } else { "south" };
        values.push(format!(
            "({line}, '{region}', {})",
            updated_value(updated_type, 1)
        ));
    }
    out.push(format!(
        "INSERT INTO prostate (ID, CAPSULE, AGE, RACE, DPROS, DCAPS, PSA, VOL, GLEASON, region, updated_at) VALUES {}",
        values.join(", ")
    ));
    out
}

fn updated_value(updated_type: &str, day: u32) -> String {
    if updated_type.contains("TIMESTAMP") {
        format!("'2024-05-{day:02} 10:00:00+02'")
    } else {
        day.to_string()
    }
}

/// A project reading `sql` from the database in `$FEATURES_URL`.
fn sql_project(locate: &str) -> Project {
    let p = Project::from_fixture("prostate");
    p.edit("path = \"data/prostate.csv\"", locate);
    p
}

/// Postgres folds unquoted names to lowercase: the fixture's columns are `capsule`, `id`, `race`.
fn lowercase_names(p: &Project) {
    p.edit("target = \"CAPSULE\"", "target = \"capsule\"");
    p.edit("ignore = [\"ID\"]", "ignore = [\"id\"]");
    p.edit("types = { RACE = \"enum\" }", "types = { race = \"enum\" }");
}

fn with_url(mut cmd: Command, url: &str) -> Run {
    cmd.env("FEATURES_URL", url);
    Run::from(cmd.output().unwrap())
}

fn offline(p: &Project, url: &str, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    with_url(cmd, url)
}

fn online(p: &Project, url: &str, args: &[&str]) -> Run {
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_H2O_URL", shared_node());
    with_url(cmd, url)
}

/// The bytes of the snapshot locate recorded in this run.
fn snapshot(p: &Project, run: &Run) -> String {
    let key = run.step("locate")["key"].as_str().unwrap().to_string();
    let entry: Value =
        serde_json::from_slice(&std::fs::read(p.file(&format!("cache/v1/ac/{key}.json"))).unwrap())
            .unwrap();
    let digest = entry["outputs"]["snapshot"].as_str().unwrap();
    std::fs::read_to_string(p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2]))).unwrap()
}

fn sqlite_url(p: &Project) -> String {
    format!("sqlite://{}?mode=rwc", p.file("features.db").display())
}

const ORDERED: &str = "sql = \"SELECT ID, CAPSULE, AGE, RACE, DPROS, DCAPS, PSA, VOL, GLEASON FROM prostate ORDER BY ID\"\nurl_env = \"FEATURES_URL\"";

#[test]
fn sqlite_source_end_to_end() {
    let p = sql_project(ORDERED);
    let url = sqlite_url(&p);
    exec(&url, &prostate_statements("REAL", "INTEGER"));
    // The project's URL is relative to the project directory.
    let rel = "sqlite://features.db";

    let cold = online(&p, rel, &["run", "--json"]).ok();
    assert!(
        cold.statuses().values().all(|s| s == "ran"),
        "{}",
        cold.stderr
    );
    // The canonical form of these integer/real columns is the original CSV, byte for byte.
    assert_eq!(
        snapshot(&p, &cold),
        std::fs::read_to_string(crate::support::repo_root().join("data/prostate.csv")).unwrap()
    );
    let tags = p.command(&["tags", "--json"]).output().unwrap();

    // Re-queried, unchanged: nothing reruns, no engine.
    let warm = offline(&p, rel, &["run", "--json"]).ok();
    assert_ran(&warm, &[]);
    let status = offline(&p, rel, &["status", "--json"]).ok();
    assert!(status.stdout.contains("\"fresh\""), "{}", status.stdout);

    // One changed value: locate onward is stale; status says so without H2O.
    exec(
        &url,
        &["UPDATE prostate SET PSA = 99.5 WHERE ID = 3".to_string()],
    );
    let status = offline(&p, rel, &["status", "--json"]).ok();
    let plan: Value = serde_json::from_str(&status.stdout).unwrap();
    assert_eq!(plan[0]["state"], "fresh", "{plan}");
    assert_eq!(plan[1]["state"], "stale", "{plan}");
    let partial = offline(&p, rel, &["run", "confirm", "--json"]).ok();
    let statuses = partial.statuses();
    assert_eq!(statuses["define"], "cached");
    for step in ["locate", "prepare", "confirm"] {
        assert_eq!(statuses[step], "ran", "{step}: {statuses:?}");
    }
    assert!(snapshot(&p, &partial).contains("\n3,0,70,1,1,2,99.5,0,6\n"));
    assert_eq!(
        p.command(&["tags", "--json"]).output().unwrap().stdout,
        tags.stdout
    );
}

#[test]
fn a_query_without_order_by_warns() {
    let p = sql_project("sql = \"SELECT * FROM prostate\"\nurl_env = \"FEATURES_URL\"");
    let url = sqlite_url(&p);
    exec(&url, &prostate_statements("REAL", "INTEGER"));
    let run = offline(&p, &url, &["run", "locate", "--json"]).ok();
    assert!(
        run.stderr
            .contains("warning: the query in `[locate] sql` has no ORDER BY"),
        "{}",
        run.stderr
    );
}

/// What an incremental state file holds (sealed: `{"blake3": …, "body": …}`).
fn state_body(path: &std::path::Path) -> Value {
    let sealed: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
    assert!(sealed["blake3"].is_string(), "{sealed}");
    sealed["body"].clone()
}

/// The incremental state file of project `p` (one source).
fn state_file(p: &Project) -> std::path::PathBuf {
    std::fs::read_dir(p.file("cache/v1/sources"))
        .unwrap()
        .flatten()
        .find(|e| e.file_name().to_string_lossy().starts_with("incremental-"))
        .unwrap()
        .path()
}

/// An incremental SQLite project after its first, full extraction: (project, URL, lines of
/// the snapshot with its header).
fn sqlite_incremental_extracted() -> (Project, String, usize) {
    let p = sql_project(INCREMENTAL);
    let url = sqlite_url(&p);
    exec(&url, &prostate_statements("DOUBLE PRECISION", "INTEGER"));
    let first = offline(&p, &url, &["run", "locate", "--json"]).ok();
    let rows = snapshot(&p, &first).lines().count();
    (p, url, rows)
}

/// A damaged incremental state (a watermark edited by hand, a truncated file) or one whose
/// snapshot left the store was taken for no state: the run extracted the query's current
/// result, silently dropping the rows the database had deleted since. Now it is an error that
/// says what `--full-refresh` does; nothing moves until the user runs it. A state from before
/// states were sealed is believed and sealed.
#[test]
fn a_damaged_incremental_state_or_a_lost_snapshot_stops_the_run() {
    let (p, url, rows) = sqlite_incremental_extracted();
    // A row the database then deletes lives on only in the snapshot.
    exec(&url, &["DELETE FROM prostate WHERE ID = 7".to_string()]);
    let path = state_file(&p);
    let sealed = std::fs::read(&path).unwrap();
    let body = state_body(&path);
    let refuses = |why: &str| {
        let run = offline(&p, &url, &["run", "locate", "--json"]);
        assert_eq!(run.code, 1, "{why}: {}", run.stderr);
        assert!(
            run.stderr.contains(
                "hint: `mlbuild run --full-refresh` extracts the query's whole result again"
            ) || run
                .stderr
                .contains("or `mlbuild run --full-refresh` extracts"),
            "{why}: {}",
            run.stderr
        );
        run.stderr
    };
    // A watermark edited inside the sealed file.
    let edited = String::from_utf8(sealed.clone())
        .unwrap()
        .replace("\"value\":", "\"value\":1");
    assert_ne!(edited.as_bytes(), &sealed[..]);
    std::fs::write(&path, &edited).unwrap();
    let stderr = refuses("edited");
    assert!(stderr.contains("is damaged"), "{stderr}");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        edited.as_bytes(),
        "left as it was"
    );
    // Truncated.
    std::fs::write(&path, &sealed[..sealed.len() / 2]).unwrap();
    refuses("truncated");
    // Its snapshot deleted from the store.
    std::fs::write(&path, &sealed).unwrap();
    let snap = body["snapshot"].as_str().unwrap();
    let blob = p.file(&format!("cache/v1/cas/{}/{snap}", &snap[..2]));
    let bytes = std::fs::read(&blob).unwrap();
    std::fs::remove_file(&blob).unwrap();
    let stderr = refuses("snapshot gone");
    assert!(
        stderr.contains(&format!(
            "appends to snapshot {}, which is not in the store",
            &snap[..12]
        )) && stderr.contains("`mlbuild cache pull`"),
        "{stderr}"
    );
    std::fs::write(&blob, &bytes).unwrap();
    // A state written before seals: believed (the deleted row stays), then sealed.
    std::fs::write(&path, serde_json::to_vec(&body).unwrap()).unwrap();
    let legacy = offline(&p, &url, &["run", "locate", "--json"]).ok();
    assert_eq!(snapshot(&p, &legacy).lines().count(), rows);
    assert_eq!(state_body(&path), body);
    // `--full-refresh` is the way out: the query's result as it is now.
    std::fs::write(&path, &edited).unwrap();
    let refreshed = offline(&p, &url, &["run", "locate", "--full-refresh", "--json"]).ok();
    assert_eq!(snapshot(&p, &refreshed).lines().count(), rows - 1);
    assert_eq!(state_body(&path)["rows"], 379);
}

/// Incremental extraction on any backend; `ts` says whether `updated_at` is a timestamp.
fn incremental_scenario(p: &Project, url: &str, ts: &str) {
    exec(url, &prostate_statements("DOUBLE PRECISION", ts));
    let first = offline(p, url, &["run", "locate", "--json"]).ok();
    assert_eq!(first.step("locate")["status"], "ran");
    let rows = snapshot(p, &first).lines().count();
    assert_eq!(rows, 381, "header + 380 rows");
    let state_files: Vec<_> = std::fs::read_dir(p.file("cache/v1/sources"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("incremental-"))
        .collect();
    assert_eq!(state_files.len(), 1);
    let state = state_body(&state_files[0].path());
    assert_eq!(state["rows"], 380);

    // Nothing new: the same snapshot, locate cached.
    let same = offline(p, url, &["run", "locate", "--json"]).ok();
    assert_eq!(same.step("locate")["status"], "cached");

    // Two new rows and one update past the watermark: appended, the update replaces its key.
    exec(
        url,
        &[
            format!(
                "INSERT INTO prostate VALUES (381, 1, 60, 1, 2, 1, 5.5, 0, 7, 'north', {}), (382, 0, 61, 1, 2, 1, 6.5, 0, 6, 'south', {})",
                updated_value(ts, 2),
                updated_value(ts, 3)
            ),
            format!("UPDATE prostate SET AGE = 99, updated_at = {} WHERE ID = 5", updated_value(ts, 2)),
        ],
    );
    let appended = offline(p, url, &["run", "locate", "--json"]).ok();
    assert_eq!(appended.step("locate")["status"], "ran");
    let text = snapshot(p, &appended);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.len(),
        383,
        "380 - 1 replaced + 3 fetched, and the header"
    );
    assert_eq!(lines.iter().filter(|l| l.starts_with("5,")).count(), 1);
    // Fetched rows come last, ordered by the watermark column, then the key.
    assert!(
        lines[380].starts_with("5,") && lines[380].contains(",99,"),
        "{}",
        lines[380]
    );
    assert!(lines[381].starts_with("381,") && lines[382].starts_with("382,"));
    let state = state_body(&state_files[0].path());
    let expected_mark = if ts.contains("TIMESTAMP") {
        serde_json::json!({ "kind": "timestamp", "value": "2024-05-03T08:00:00Z" })
    } else {
        serde_json::json!({ "kind": "int", "value": 3 })
    };
    assert_eq!(state["watermark"], expected_mark, "{state}");
    if ts.contains("TIMESTAMP") {
        assert!(
            lines[382].ends_with(",2024-05-03T08:00:00Z"),
            "{}",
            lines[382]
        );
    }

    // A deleted row is not seen by incremental runs ...
    exec(url, &["DELETE FROM prostate WHERE ID = 7".to_string()]);
    let after_delete = offline(p, url, &["run", "locate", "--json"]).ok();
    assert_eq!(after_delete.step("locate")["status"], "cached");
    // ... until --full-refresh re-extracts everything, in the query's order.
    let refreshed = offline(p, url, &["run", "locate", "--full-refresh", "--json"]).ok();
    assert_eq!(refreshed.step("locate")["status"], "ran");
    let text = snapshot(p, &refreshed);
    assert_eq!(text.lines().count(), 382);
    assert!(!text.contains("\n7,"));
    assert!(
        text.lines().nth(5).unwrap().starts_with("5,"),
        "query order (ORDER BY ID)"
    );
}

const INCREMENTAL: &str = "sql = \"SELECT * FROM prostate WHERE AGE > $1 ORDER BY ID\"\nurl_env = \"FEATURES_URL\"\nparams = [0]\n\n[locate.incremental]\ncolumn = \"updated_at\"\nkey = \"ID\"";

#[test]
fn sqlite_incremental_appends_past_the_watermark() {
    let p = sql_project(INCREMENTAL);
    let url = sqlite_url(&p);
    incremental_scenario(&p, &url, "INTEGER");
}

/// SQLite keeps any type in any column: a text in the integer watermark column orders after
/// every number, so skipping it as "not larger" fetched and appended its row again on every
/// run. It is an error naming the column and both values, and nothing is appended.
#[test]
fn sqlite_incremental_refuses_a_watermark_column_of_mixed_types() {
    let (p, url, rows) = sqlite_incremental_extracted();
    let state_file = state_file(&p);
    let state = std::fs::read(&state_file).unwrap();
    exec(
        &url,
        &[
            "INSERT INTO prostate VALUES (381, 1, 60, 1, 2, 1, 5.5, 0, 7, 'north', 'n/a')"
                .to_string(),
        ],
    );
    for _ in 0..2 {
        let run = offline(&p, &url, &["run", "locate", "--json"]);
        assert_eq!(run.code, 1, "{}", run.stderr);
        assert!(
            run.stderr.contains(
                "the watermark column `updated_at` holds values that cannot be ordered together: `1` (integer) and `n/a` (text)"
            ) && run.stderr.contains("ml.toml:")
                && run.stderr.contains("hint: an incremental source needs one type"),
            "{}",
            run.stderr
        );
        assert_eq!(
            std::fs::read(&state_file).unwrap(),
            state,
            "the state moved"
        );
    }
    // Fixed in the data, the row is appended once.
    exec(
        &url,
        &["UPDATE prostate SET updated_at = 2 WHERE ID = 381".to_string()],
    );
    let fixed = offline(&p, &url, &["run", "locate", "--json"]).ok();
    assert_eq!(snapshot(&p, &fixed).lines().count(), rows + 1);
    let again = offline(&p, &url, &["run", "locate", "--json"]).ok();
    assert_eq!(again.step("locate")["status"], "cached");

    // Mixed types in the first, full extraction: refused the same way.
    let fresh = sql_project(INCREMENTAL);
    let url = sqlite_url(&fresh);
    exec(&url, &prostate_statements("DOUBLE PRECISION", "INTEGER"));
    exec(
        &url,
        &["UPDATE prostate SET updated_at = 'soon' WHERE ID = 9".to_string()],
    );
    let run = offline(&fresh, &url, &["run", "locate"]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("`soon` (text)"), "{}", run.stderr);
}

#[test]
fn postgres_incremental_with_a_timestamptz_watermark() {
    let Some(db) = PgDb::create("the Postgres source test") else {
        return;
    };
    let p = sql_project(
        &INCREMENTAL
            .replace("ID", "id")
            .replace("AGE > $1", "age > $1"),
    );
    lowercase_names(&p);
    incremental_scenario(&p, &db.url, "TIMESTAMPTZ");
}

#[test]
fn postgres_source_unchanged_and_changed() {
    let Some(db) = PgDb::create("the Postgres source test") else {
        return;
    };
    let p = sql_project(
        &ORDERED
            .replace("FROM prostate", "FROM prostate WHERE region = $1")
            .replace("url_env", "params = [\"north\"]\nurl_env"),
    );
    exec(
        &db.url,
        &prostate_statements("DOUBLE PRECISION", "TIMESTAMPTZ"),
    );
    lowercase_names(&p);
    let first = offline(&p, &db.url, &["run", "confirm", "--json"]).ok();
    assert_eq!(first.step("locate")["status"], "ran");
    assert_eq!(
        snapshot(&p, &first).lines().count(),
        191,
        "190 `north` rows and the header"
    );
    let again = offline(&p, &db.url, &["run", "confirm", "--json"]).ok();
    for step in ["define", "locate", "prepare", "confirm"] {
        assert_eq!(again.step(step)["status"], "cached", "{step}");
    }
    exec(
        &db.url,
        &["UPDATE prostate SET vol = 1.25 WHERE id = 1".to_string()],
    );
    let changed = offline(&p, &db.url, &["run", "confirm", "--json"]).ok();
    assert_eq!(changed.step("define")["status"], "cached");
    for step in ["locate", "prepare", "confirm"] {
        assert_eq!(changed.step(step)["status"], "ran", "{step}");
    }
    assert!(snapshot(&p, &changed).contains("\n1,0,65,1,2,1,1.4,1.25,6\n"));
}

#[test]
fn postgres_types_have_one_canonical_spelling() {
    let Some(db) = PgDb::create("the Postgres source test") else {
        return;
    };
    exec(
        &db.url,
        &[
            "CREATE TABLE t (id int8, f4 real, f8 float8, n numeric(6,2), ok boolean, at timestamptz, naive timestamp, d date, s text, label int)".to_string(),
            "INSERT INTO t VALUES (1, 0.1, 0.1, 1.50, true, '2024-05-01 12:00:00.25+02', '2024-05-01 12:00:00', '2024-05-01', 'a, \"b\"', 0), \
             (2, NULL, 1e300, -3, false, NULL, NULL, NULL, NULL, 1), (3, 2, 2, 0, NULL, NULL, NULL, NULL, ' x', 0)".to_string(),
        ],
    );
    let p = sql_project("sql = \"SELECT * FROM t ORDER BY id\"\nurl_env = \"FEATURES_URL\"");
    p.edit("target = \"CAPSULE\"", "target = \"label\"");
    p.edit("ignore = [\"ID\"]", "ignore = []");
    p.edit("types = { RACE = \"enum\" }", "types = {}");
    let run = offline(&p, &db.url, &["run", "locate", "--json"]).ok();
    assert_eq!(
        snapshot(&p, &run),
        "id,f4,f8,n,ok,at,naive,d,s,label\n\
         1,0.1,0.1,1.5,true,2024-05-01T10:00:00.250Z,2024-05-01T12:00:00Z,2024-05-01,\"a, \"\"b\"\"\",0\n\
         2,,1e300,-3,false,,,,,1\n\
         3,2,2,0,,,,,\" x\",0\n"
    );
}

/// A parameter holding an injection attempt is bound: it matches only the literal, and the
/// table survives.
fn injection_scenario(url: &str, p: &Project) {
    let evil = "x'; DROP TABLE t; --";
    exec(
        url,
        &[
            "CREATE TABLE t (id INTEGER, region TEXT, label INTEGER)".to_string(),
            "INSERT INTO t VALUES (1, 'north', 0), (2, 'south', 1), (3, 'x''; DROP TABLE t; --', 1)".to_string(),
        ],
    );
    p.edit("target = \"CAPSULE\"", "target = \"label\"");
    p.edit("ignore = [\"ID\"]", "ignore = []");
    p.edit("types = { RACE = \"enum\" }", "types = {}");
    let run = offline(p, url, &["run", "locate", "--json"]).ok();
    assert_eq!(
        snapshot(p, &run),
        format!("id,region,label\n3,{evil},1\n"),
        "only the row whose region is the literal string"
    );
    assert_eq!(count(url, "t"), 3, "the table still exists with every row");
}

const INJECTION: &str = "sql = \"SELECT id, region, label FROM t WHERE region = $1 ORDER BY id\"\nurl_env = \"FEATURES_URL\"\nparams = [\"x'; DROP TABLE t; --\"]";

#[test]
fn sqlite_params_are_bound_never_spliced() {
    let p = sql_project(INJECTION);
    let url = sqlite_url(&p);
    injection_scenario(&url, &p);
}

#[test]
fn postgres_params_are_bound_never_spliced() {
    let Some(db) = PgDb::create("the Postgres source test") else {
        return;
    };
    let p = sql_project(INJECTION);
    injection_scenario(&db.url, &p);
}

#[test]
fn sql_errors_name_the_query_in_ml_toml_and_change_nothing() {
    // A trained SQL project; every failure below must leave its snapshot and tags untouched.
    let p = sql_project(ORDERED);
    let url = sqlite_url(&p);
    exec(&url, &prostate_statements("REAL", "INTEGER"));
    online(&p, &url, &["run", "--json"]).ok();
    let tags = || p.command(&["tags", "--json"]).output().unwrap().stdout;
    let before = tags();
    let original = p.read("ml.toml");

    // The database's message and the query's place (line:column of the `sql` value).
    p.edit("FROM prostate ORDER BY", "FROM nope ORDER BY");
    let run = offline(&p, &url, &["run", "--json"]);
    assert_eq!(run.code, 1);
    let line = original
        .lines()
        .position(|l| l.starts_with("sql = "))
        .unwrap()
        + 1;
    assert!(
        run.stderr.contains(&format!("error: ml.toml:{line}:7: the database rejected the query in `[locate] sql`: no such table: nope")),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("^^^"),
        "a caret under the query: {}",
        run.stderr
    );

    // An empty result.
    p.write(
        "ml.toml",
        &original.replace(
            "FROM prostate ORDER BY",
            "FROM prostate WHERE ID < 0 ORDER BY",
        ),
    );
    let run = offline(&p, &url, &["run", "--json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("the query in `[locate] sql` returned no rows"),
        "{}",
        run.stderr
    );

    // A missing column: the target is not in the result.
    p.write(
        "ml.toml",
        &original.replace("SELECT ID, CAPSULE,", "SELECT ID,"),
    );
    let run = offline(&p, &url, &["run", "--json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("target column `CAPSULE` is not in the data (the result of `[locate] sql` has columns: ID, AGE"),
        "{}",
        run.stderr
    );

    // The URL variable unset.
    p.write("ml.toml", &original);
    let run = Run::from(p.command(&["run", "--json"]).output().unwrap());
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(
            "the environment variable `FEATURES_URL` (named by `[locate] url_env`) is not set"
        ),
        "{}",
        run.stderr
    );

    // Nothing was cached or moved: the original query replays everything.
    assert_eq!(tags(), before);
    let replay = offline(&p, &url, &["run", "--json"]).ok();
    assert_ran(&replay, &[]);
}

#[test]
fn locate_needs_exactly_one_source() {
    let p = sql_project("sql = \"SELECT 1\"\nurl_env = \"X\"\npath = \"data/prostate.csv\"");
    let run = p.mlbuild_offline(&["status"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("`[locate]` has both `path` and `sql`"),
        "{}",
        run.stderr
    );
    let p = sql_project("delimiter = \";\"");
    let run = p.mlbuild_offline(&["status"]);
    assert!(
        run.stderr.contains("missing key `locate.path`"),
        "{}",
        run.stderr
    );
    let p = sql_project("sql = \"SELECT 1\"");
    let run = p.mlbuild_offline(&["status"]);
    assert!(
        run.stderr.contains("`locate.sql` needs `url_env`"),
        "{}",
        run.stderr
    );
}

fn write_parts(p: &Project, parts: &[(&str, std::ops::Range<usize>)]) -> String {
    let csv = p.read("data/prostate.csv");
    let lines: Vec<&str> = csv.lines().collect();
    for (name, range) in parts {
        let mut text = format!("{}\n", lines[0]);
        for l in &lines[range.clone()] {
            text.push_str(l);
            text.push('\n');
        }
        p.write(&format!("data/{name}"), &text);
    }
    csv
}

#[test]
fn a_glob_is_read_in_path_order_as_one_snapshot() {
    let p = sql_project("path = \"data/part-*.csv\"");
    // Byte order of the paths: part-1, part-10, part-2.
    let csv = write_parts(
        &p,
        &[
            ("part-1.csv", 1..100),
            ("part-10.csv", 100..200),
            ("part-2.csv", 200..381),
        ],
    );
    let first = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(
        snapshot(&p, &first),
        csv,
        "the parts in path order are the original file"
    );
    let again = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(again.step("locate")["status"], "cached");

    // A part with other columns is refused by name.
    p.write("data/part-3.csv", "ID,CAPSULE,AGE\n1,0,65\n");
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains(&format!(
            "`data/part-3.csv` has different columns from `data/part-1.csv`: [ID, CAPSULE, AGE] instead of [{}]",
            PROSTATE_COLUMNS
        )),
        "{}",
        run.stderr
    );
}

/// A path with glob characters that names a file as written is that file: `data/train[1].csv`
/// was read as the pattern `train[1]`, i.e. the sibling `data/train1.csv`.
#[test]
fn a_file_whose_name_has_a_bracket_is_that_file_not_a_pattern() {
    let p = sql_project("path = \"data/train[1].csv\"");
    let csv = p.read("data/prostate.csv");
    p.write("data/train[1].csv", &csv);
    let short: String = csv.lines().take(60).map(|l| format!("{l}\n")).collect();
    p.write("data/train1.csv", &short);
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(
        snapshot(&p, &run),
        csv,
        "read the sibling the pattern matches"
    );
    // Without the literal file, the same path is a glob again.
    std::fs::remove_file(p.file("data/train[1].csv")).unwrap();
    let run = p.mlbuild_offline(&["run", "locate", "--json"]).ok();
    assert_eq!(snapshot(&p, &run), short);
}

#[test]
fn csv_options_give_the_canonical_form() {
    let p = sql_project("path = \"data/semi.csv\"\ndelimiter = \";\"\nna_strings = [\"?\"]");
    let csv = p.read("data/prostate.csv");
    let semi = csv.replace(',', ";").replacen(";0;6\n", ";?;6\n", 1);
    p.write("data/semi.csv", &semi);
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    let expected = csv.replacen(",0,6\n", ",,6\n", 1);
    assert_eq!(snapshot(&p, &run), expected);
    let again = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(again.step("locate")["status"], "cached");

    // No header: columns are C1..Cn.
    let p = sql_project("path = \"data/bare.csv\"\nheader = false");
    p.write("data/bare.csv", csv.split_once('\n').unwrap().1);
    p.edit("target = \"CAPSULE\"", "target = \"C2\"");
    p.edit("ignore = [\"ID\"]", "ignore = [\"C1\"]");
    p.edit("types = { RACE = \"enum\" }", "types = { C4 = \"enum\" }");
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert!(snapshot(&p, &run).starts_with("C1,C2,C3,C4,C5,C6,C7,C8,C9\n1,0,65,"));

    // A ragged row is an error with its line, and nothing is cached.
    p.write("data/bare.csv", "1,0,65\n2,1\n");
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("`data/bare.csv` line 2: expected 3 fields (as in the header), found 2"),
        "{}",
        run.stderr
    );
}

/// Writes the prostate data as Parquet (integers as INT64, PSA and VOL as DOUBLE).
fn write_parquet(csv: &str, path: &Path) {
    use parquet::data_type::{DoubleType, Int64Type};
    use parquet::file::writer::SerializedFileWriter;
    use parquet::schema::parser::parse_message_type;
    let schema = parse_message_type(
        "message prostate { REQUIRED INT64 ID; REQUIRED INT64 CAPSULE; REQUIRED INT64 AGE; \
         REQUIRED INT64 RACE; REQUIRED INT64 DPROS; REQUIRED INT64 DCAPS; REQUIRED DOUBLE PSA; \
         REQUIRED DOUBLE VOL; REQUIRED INT64 GLEASON; }",
    )
    .unwrap();
    let rows: Vec<Vec<&str>> = csv
        .lines()
        .skip(1)
        .map(|l| l.split(',').collect())
        .collect();
    let file = std::fs::File::create(path).unwrap();
    let mut writer =
        SerializedFileWriter::new(file, std::sync::Arc::new(schema), Default::default()).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut i = 0;
    while let Some(mut column) = group.next_column().unwrap() {
        if i == 6 || i == 7 {
            let values: Vec<f64> = rows.iter().map(|r| r[i].parse().unwrap()).collect();
            column
                .typed::<DoubleType>()
                .write_batch(&values, None, None)
                .unwrap();
        } else {
            let values: Vec<i64> = rows.iter().map(|r| r[i].parse().unwrap()).collect();
            column
                .typed::<Int64Type>()
                .write_batch(&values, None, None)
                .unwrap();
        }
        column.close().unwrap();
        i += 1;
    }
    group.close().unwrap();
    writer.close().unwrap();
}

#[test]
fn parquet_files_become_canonical_csv() {
    let p = sql_project("path = \"data/prostate.parquet\"");
    let csv = p.read("data/prostate.csv");
    write_parquet(&csv, &p.file("data/prostate.parquet"));
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(
        snapshot(&p, &run),
        csv,
        "the canonical form of these numbers is the CSV's"
    );
    let again = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(again.step("locate")["status"], "cached");

    // A file that is not Parquet: a clear error, nothing cached, the previous snapshot kept.
    std::fs::write(p.file("data/prostate.parquet"), b"PAR1 not really").unwrap();
    let run = p.mlbuild_offline(&["run", "confirm", "--json"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr
            .contains("`data/prostate.parquet` is not a readable Parquet file"),
        "{}",
        run.stderr
    );
    write_parquet(&csv, &p.file("data/prostate.parquet"));
    let back = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(back.step("locate")["status"], "cached");
}
