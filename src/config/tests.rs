//! Unit tests for `ml.toml` loading: every error kind with its exact message and position.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;

/// The example of DESIGN.md §3.4.
const FULL: &str = r#"[project]
name = "prostate"

[define]                      # 1 — problem scope (the seed's global variables)
target = "CAPSULE"
problem = "binary"            # binary | multiclass | regression; inferred from the target when omitted
metric = "auc"                # primary metric; default auc (binary), logloss (multiclass), rmse (regression)
threshold = 0.70              # the leader must reach this on the holdout (for error metrics
                              # such as rmse, mae, logloss: at most this)
ignore = ["ID"]

[locate]                      # 2 — one source: `path` (file or glob) or `sql` (+ `url_env`, `params`)
path = "data/prostate.csv"

[prepare]                     # 3
types = { RACE = "enum", CAPSULE = "enum" }
drop = []
holdout = 0.2                 # fraction held out by mlbuild's own seeded split (default 0.2)
seed = 42

[confirm]                     # 4 — defaults: min_rows = 10, max_null_fraction = 0.5 (per column)
min_rows = 100
max_null_fraction = 0.3

[execute]                     # 5 — passed to H2O AutoML
max_models = 4
seed = 42
nfolds = 5                    # 0 = no cross-validation
include_algos = []            # empty = all
exclude_algos = ["DeepLearning"]
sort_metric = "auc"           # default: define.metric

[monitor]                     # 6
baseline = "production"       # compare with the model holding this tag, on the same holdout
min_improvement = 0.0

[modify]                      # 7
max_attempts = 2

[conclude]                    # 8
promote = ["staging"]

[h2o]                         # optional: url = "http://cluster:54321", version, nodes (see §4)
"#;

const MINIMAL: &str = "[define]\ntarget = \"CAPSULE\"\n\n[locate]\npath = \"data/prostate.csv\"\n";

fn parse_ok(source: &str, overrides: &[&str]) -> Config {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match parse(Path::new("ml.toml"), source, &overrides) {
        Ok(config) => config,
        Err(e) => panic!("unexpected error: {e}\nhint: {:?}", e.hint()),
    }
}

fn parse_err(source: &str, overrides: &[&str]) -> ConfigError {
    let overrides: Vec<String> = overrides.iter().map(|s| s.to_string()).collect();
    match parse(Path::new("ml.toml"), source, &overrides) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(e) => e,
    }
}

/// The error's headline and hint.
fn err(source: &str, overrides: &[&str]) -> (String, Option<String>) {
    let e = parse_err(source, overrides);
    (e.headline(), e.hint())
}

fn minimal_with(table: &str, lines: &str) -> String {
    format!("{MINIMAL}\n[{table}]\n{lines}\n")
}

#[test]
fn full_example_parses() {
    let config = parse_ok(FULL, &[]);
    let expected = Config {
        project: Project {
            name: Some("prostate".into()),
        },
        define: Define {
            target: "CAPSULE".into(),
            problem: Some(Problem::Binary),
            metric: Some("auc".into()),
            threshold: Some(0.70),
            ignore: vec!["ID".into()],
        },
        locate: Locate {
            path: Some("data/prostate.csv".into()),
            ..Locate::default()
        },
        prepare: Prepare {
            types: BTreeMap::from([
                ("CAPSULE".to_string(), ColumnType::Enum),
                ("RACE".to_string(), ColumnType::Enum),
            ]),
            drop: vec![],
            holdout: 0.2,
            seed: 42,
            ..Prepare::default()
        },
        confirm: Confirm {
            min_rows: 100,
            max_null_fraction: 0.3,
            ..Confirm::default()
        },
        execute: Execute {
            max_models: 4,
            seed: 42,
            nfolds: 5,
            include_algos: vec![],
            exclude_algos: vec!["DeepLearning".into()],
            sort_metric: Some("auc".into()),
        },
        monitor: Monitor {
            baseline: "production".into(),
            min_improvement: 0.0,
            ..Monitor::default()
        },
        modify: Modify {
            max_attempts: 2,
            ..Modify::default()
        },
        conclude: Conclude {
            promote: vec!["staging".into()],
            ..Conclude::default()
        },
        h2o: H2o::default(),
        cache: Cache::default(),
        steps: Vec::new(),
    };
    assert_eq!(config, expected);
}

#[test]
fn defaults_are_filled() {
    let config = parse_ok(MINIMAL, &[]);
    assert_eq!(config.project, Project { name: None });
    assert_eq!(config.define.problem, None);
    assert_eq!(config.define.metric, None);
    assert_eq!(config.define.threshold, None);
    assert!(config.define.ignore.is_empty());
    assert_eq!(config.prepare, Prepare::default());
    assert_eq!(config.prepare.holdout, 0.2);
    assert_eq!(config.prepare.seed, 42);
    assert_eq!(
        config.confirm,
        Confirm {
            min_rows: 10,
            max_null_fraction: 0.5,
            ..Confirm::default()
        }
    );
    assert_eq!(config.execute.max_models, 4);
    assert_eq!(config.execute.nfolds, 5);
    assert_eq!(
        config.execute.exclude_algos,
        vec!["DeepLearning".to_string()]
    );
    assert_eq!(config.execute.sort_metric, None);
    assert_eq!(
        config.monitor,
        Monitor {
            baseline: "production".into(),
            min_improvement: 0.0,
            ..Monitor::default()
        }
    );
    assert_eq!(config.modify.max_attempts, 2);
    assert_eq!(config.conclude.promote, vec!["staging".to_string()]);
    assert_eq!(config.h2o.version, "3.46.0.11");
    assert_eq!(config.h2o.nodes, 1);
    assert_eq!(config.h2o.memory, "2g");
    assert_eq!(config.h2o.url, None);
}

#[test]
fn explicit_defaults_equal_omitted_ones() {
    let explicit =
        format!("{MINIMAL}\n[prepare]\nholdout = 0.2\nseed = 42\n[modify]\nmax_attempts = 2\n");
    assert_eq!(parse_ok(&explicit, &[]), parse_ok(MINIMAL, &[]));
}

#[test]
fn comment_and_whitespace_edits_give_an_equal_config() {
    let edited = FULL
        .replace(
            "[define]                      # 1",
            "\n\n  [define]   # step one,",
        )
        .replace("target = \"CAPSULE\"", "target=\"CAPSULE\"   # the label")
        .replace("max_models = 4", "# how many\nmax_models     =     4")
        .replace("drop = []", "drop = [ ]  ")
        .replace("threshold = 0.70", "threshold = 0.7")
        + "\n# trailing comment\n\n";
    assert_ne!(edited, FULL);
    assert_eq!(parse_ok(&edited, &[]), parse_ok(FULL, &[]));
}

#[test]
fn dotted_keys_and_inline_tables_are_the_same_config() {
    let dotted = "define.target = \"CAPSULE\"\nlocate = { path = \"data/prostate.csv\" }\n";
    assert_eq!(parse_ok(dotted, &[]), parse_ok(MINIMAL, &[]));
}

#[test]
fn syntax_error_has_position_caret_and_hint() {
    let e = parse_err("[define]\ntarget = CAPSULE\n", &[]);
    assert_eq!(
        e.to_string(),
        "ml.toml:2:10: invalid string: expected `\"`, `'`\n  |\n2 | target = CAPSULE\n  |          ^"
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("strings need quotes: `\"CAPSULE\"`")
    );
    assert_eq!(e.place().and_then(Place::line_column), Some((2, 10)));
}

#[test]
fn duplicate_key_and_table_are_syntax_errors() {
    let (message, hint) = err("[define]\ntarget = \"A\"\ntarget = \"B\"\n", &[]);
    assert_eq!(
        message,
        "ml.toml:3:1: duplicate key `target` in table `define`"
    );
    assert_eq!(
        hint.as_deref(),
        Some("a key may appear only once in a table: remove one of them")
    );
    let (message, hint) = err(&format!("{MINIMAL}[define]\nmetric = \"auc\"\n"), &[]);
    assert_eq!(
        message,
        "ml.toml:6:1: invalid table header: duplicate key `define` in document root"
    );
    assert_eq!(
        hint.as_deref(),
        Some("a table may appear only once: merge the two sections")
    );
}

#[test]
fn unknown_key_suggests_the_closest() {
    let source = "[define]\ntarget = \"CAPSULE\"\ntreshold = 0.7\n\n[locate]\npath = \"d.csv\"\n";
    let e = parse_err(source, &[]);
    assert_eq!(
        e.to_string(),
        "ml.toml:3:1: unknown key `define.treshold`\n  |\n3 | treshold = 0.7\n  | ^^^^^^^^"
    );
    assert_eq!(e.hint().as_deref(), Some("did you mean `threshold`?"));
}

#[test]
fn unknown_key_without_a_close_one_lists_the_table() {
    let (message, hint) = err(&minimal_with("monitor", "colour = \"red\""), &[]);
    assert_eq!(message, "ml.toml:8:1: unknown key `monitor.colour`");
    assert_eq!(
        hint.as_deref(),
        Some("valid keys in `[monitor]`: `baseline`, `min_improvement`, `shap_rows`")
    );
}

#[test]
fn unknown_table_suggests_the_closest() {
    let e = parse_err(&format!("{MINIMAL}\n[defne]\nthreshold = 0.7\n"), &[]);
    assert_eq!(
        e.to_string(),
        "ml.toml:7:2: unknown table `[defne]`\n  |\n7 | [defne]\n  |  ^^^^^"
    );
    assert_eq!(e.hint().as_deref(), Some("did you mean `[define]`?"));
    let (message, hint) = err(&format!("{MINIMAL}\n[pipeline]\n"), &[]);
    assert_eq!(message, "ml.toml:7:2: unknown table `[pipeline]`");
    assert!(hint
        .unwrap()
        .starts_with("valid tables: `[project]`, `[define]`, `[locate]`"));
}

#[test]
fn unknown_key_inside_nested_table_header() {
    let (message, hint) = err(&format!("{MINIMAL}\n[execute.extra]\nx = 1\n"), &[]);
    assert_eq!(message, "ml.toml:7:10: unknown table `[execute.extra]`");
    assert!(hint
        .unwrap()
        .starts_with("valid keys in `[execute]`: `max_models`"));
    let (_, hint) = err(
        &format!("{MINIMAL}\n[prepare.type]\nRACE = \"enum\"\n"),
        &[],
    );
    assert_eq!(hint.as_deref(), Some("did you mean `[prepare.types]`?"));
}

#[test]
fn wrong_type_names_key_expected_and_found() {
    let e = parse_err(&minimal_with("execute", "max_models = \"four\""), &[]);
    assert_eq!(
        e.to_string(),
        "ml.toml:8:14: `execute.max_models` expects a non-negative integer, found a string (\"four\")\n  |\n8 | max_models = \"four\"\n  |              ^^^^^^"
    );
    let cases = [
        ("execute", "max_models = -1", "ml.toml:8:14: `execute.max_models` expects a non-negative integer, found an integer (-1)"),
        ("execute", "nfolds = 5.0", "ml.toml:8:10: `execute.nfolds` expects a non-negative integer, found a float (5.0)"),
        ("prepare", "drop = \"ID\"", "ml.toml:8:8: `prepare.drop` expects an array of strings, found a string (\"ID\")"),
        ("prepare", "drop = [\"ID\", 3]", "ml.toml:8:15: `prepare.drop[1]` expects a string, found an integer (3)"),
        ("monitor", "baseline = true", "ml.toml:8:12: `monitor.baseline` expects a string, found a boolean (true)"),
        ("monitor", "baseline = 1979-05-27", "ml.toml:8:12: `monitor.baseline` expects a string, found a datetime (1979-05-27)"),
        ("prepare", "types = [\"enum\"]", "ml.toml:8:9: `prepare.types` expects a table, found an array"),
    ];
    for (table, line, expected) in cases {
        let (message, _) = err(&minimal_with(table, line), &[]);
        assert_eq!(message, expected, "for `{line}`");
    }
    let (message, _) = err(
        "[define]\ntarget = \"y\"\nthreshold = \"high\"\n[locate]\npath = \"a\"\n",
        &[],
    );
    assert_eq!(
        message,
        "ml.toml:3:13: `define.threshold` expects a number, found a string (\"high\")"
    );
    let (message, _) = err("define = \"CAPSULE\"\n[locate]\npath = \"a\"\n", &[]);
    assert_eq!(
        message,
        "ml.toml:1:10: `define` expects a table, found a string (\"CAPSULE\")"
    );
}

#[test]
fn integers_out_of_range_are_rejected() {
    let (message, _) = err(&minimal_with("execute", "max_models = 5000000000"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:14: `execute.max_models` must be at most 4294967295, found 5000000000"
    );
}

#[test]
fn integers_are_accepted_for_numbers() {
    let config = parse_ok(
        "[define]\ntarget = \"y\"\nthreshold = 1\n[locate]\npath = \"a\"\n",
        &[],
    );
    assert_eq!(config.define.threshold, Some(1.0));
}

#[test]
fn enum_values_are_checked_with_did_you_mean() {
    let (message, hint) = err(&minimal_with("prepare", "types = { RACE = \"enm\" }"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:18: `prepare.types.RACE` must be one of `numeric`, `enum`, `string`, found \"enm\""
    );
    assert_eq!(hint.as_deref(), Some("did you mean `enum`?"));
    let source = "[define]\ntarget = \"y\"\nproblem = \"binry\"\n[locate]\npath = \"a\"\n";
    let (message, hint) = err(source, &[]);
    assert_eq!(
        message,
        "ml.toml:3:11: `define.problem` must be one of `binary`, `multiclass`, `regression`, found \"binry\""
    );
    assert_eq!(hint.as_deref(), Some("did you mean `binary`?"));
    let (message, _) = err(&minimal_with("prepare", "types = { \"my col\" = 1 }"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:22: `prepare.types.\"my col\"` expects one of `numeric`, `enum`, `string`, found an integer (1)"
    );
}

#[test]
fn missing_required_keys_and_tables() {
    let e = parse_err(
        "[define]\nproblem = \"binary\"\n\n[locate]\npath = \"a.csv\"\n",
        &[],
    );
    assert_eq!(
        e.to_string(),
        "ml.toml:1:1: missing key `define.target`\n  |\n1 | [define]\n  | ^^^^^^^^"
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("add it, e.g. `target = \"CAPSULE\"`")
    );

    let (message, hint) = err("[define]\ntarget = \"y\"\n\n[locate]\n", &[]);
    assert_eq!(message, "ml.toml:4:1: missing key `locate.path`");
    assert_eq!(
        hint.as_deref(),
        Some("add it, e.g. `path = \"data/train.csv\"` (a file or glob) or `sql = \"SELECT …\"`")
    );

    let e = parse_err("[locate]\npath = \"a.csv\"\n", &[]);
    assert_eq!(e.to_string(), "ml.toml: missing table `[define]`");
    assert_eq!(
        e.hint().as_deref(),
        Some("add it, e.g. `[define] target = \"CAPSULE\"`")
    );

    let (message, _) = err("[define]\ntarget = \"y\"\n", &[]);
    assert_eq!(message, "ml.toml: missing table `[locate]`");
}

#[test]
fn holdout_and_null_fraction_ranges() {
    for bad in ["0", "1", "1.5", "-0.1", "nan"] {
        let (message, _) = err(&minimal_with("prepare", &format!("holdout = {bad}")), &[]);
        let shown = if bad == "nan" {
            "NaN".to_string()
        } else {
            bad.parse::<f64>().unwrap().to_string()
        };
        assert_eq!(
            message,
            format!("ml.toml:8:11: `prepare.holdout` must be in (0, 1), found {shown}")
        );
    }
    parse_ok(&minimal_with("confirm", "max_null_fraction = 0"), &[]);
    parse_ok(&minimal_with("confirm", "max_null_fraction = 1"), &[]);
    let (message, hint) = err(&minimal_with("confirm", "max_null_fraction = 1.2"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:21: `confirm.max_null_fraction` must be in [0, 1], found 1.2"
    );
    assert!(hint.is_some());
}

#[test]
fn max_attempts_at_least_one() {
    let (message, _) = err(&minimal_with("modify", "max_attempts = 0"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:16: `modify.max_attempts` must be at least 1, found 0"
    );
    parse_ok(&minimal_with("modify", "max_attempts = 1"), &[]);
}

#[test]
fn max_models_zero_and_one_fold_are_refused_before_any_engine() {
    let (message, hint) = err(&minimal_with("execute", "max_models = 0"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:14: `execute.max_models` must be at least 1, found 0"
    );
    assert!(hint.unwrap().contains("no limit"));
    // The same through `--set`, which names the argument.
    let (message, _) = err(MINIMAL, &["execute.max_models=0"]);
    assert!(
        message.contains("`execute.max_models` must be at least 1, found 0"),
        "{message}"
    );
    parse_ok(&minimal_with("execute", "max_models = 1"), &[]);

    let (message, _) = err(&minimal_with("execute", "nfolds = 1"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:10: `execute.nfolds` must be 0 (no cross-validation) or at least 2, found 1"
    );
    parse_ok(&minimal_with("execute", "nfolds = 0"), &[]);
    parse_ok(&minimal_with("execute", "nfolds = 2"), &[]);
}

#[test]
fn promote_tags_must_be_file_safe_names() {
    parse_ok(
        &minimal_with("conclude", "promote = [\"staging\", \"prod-eu.v2\"]"),
        &[],
    );
    let e = parse_err(
        &minimal_with("conclude", "promote = [\"staging\", \"../../etc/x\"]"),
        &[],
    );
    assert!(
        e.to_string()
            .starts_with("ml.toml:8:23: `conclude.promote` names an invalid tag \"../../etc/x\""),
        "{e}"
    );
    assert!(e.hint().unwrap().contains("models/<TAG>.zip"));
}

#[test]
fn remote_cache_may_be_http_or_https() {
    parse_ok(
        &minimal_with("cache", "remote = \"https://cache.example.org/ml\""),
        &[],
    );
    parse_ok(
        &minimal_with("cache", "remote = \"http://cache:8080/ml\""),
        &[],
    );
    let e = parse_err(&minimal_with("cache", "remote = \"s3://bucket/ml\""), &[]);
    assert!(e.to_string().contains("`http://` or `https://`"), "{e}");
}

#[test]
fn algorithms_are_checked_and_normalised() {
    let config = parse_ok(
        &minimal_with(
            "execute",
            "include_algos = [\"gbm\", \"xgboost\", \"GLM\"]\nexclude_algos = [\"deeplearning\"]",
        ),
        &[],
    );
    assert_eq!(config.execute.include_algos, vec!["GBM", "XGBoost", "GLM"]);
    assert_eq!(config.execute.exclude_algos, vec!["DeepLearning"]);

    let e = parse_err(
        &minimal_with("execute", "exclude_algos = [\"DRF\", \"GMB\"]"),
        &[],
    );
    assert_eq!(
        e.to_string(),
        "ml.toml:8:25: `execute.exclude_algos` names an unknown algorithm \"GMB\"\n  |\n8 | exclude_algos = [\"DRF\", \"GMB\"]\n  |                         ^^^^^"
    );
    assert_eq!(e.hint().as_deref(), Some("did you mean `GBM`?"));
    let (_, hint) = err(
        &minimal_with("execute", "include_algos = [\"RandomForest\"]"),
        &[],
    );
    assert_eq!(
        hint.as_deref(),
        Some("valid algorithms: `GLM`, `DRF`, `GBM`, `DeepLearning`, `StackedEnsemble`, `XGBoost`")
    );
}

#[test]
fn metrics_are_checked_against_the_problem() {
    let source = |problem: &str, metric: &str| {
        format!(
            "[define]\ntarget = \"y\"\n{problem}\nmetric = \"{metric}\"\n[locate]\npath = \"a\"\n"
        )
    };
    parse_ok(&source("problem = \"regression\"", "mae"), &[]);
    parse_ok(&source("", "mae"), &[]);
    parse_ok(&source("", "aucpr"), &[]);

    let (message, hint) = err(&source("problem = \"regression\"", "auc"), &[]);
    assert_eq!(
        message,
        "ml.toml:4:10: `define.metric` \"auc\" does not apply to a regression problem"
    );
    assert_eq!(
        hint.as_deref(),
        Some("use one of `rmse`, `mse`, `mae`, `rmsle`, `mean_residual_deviance`")
    );
    let (message, _) = err(&source("problem = \"multiclass\"", "auc"), &[]);
    assert_eq!(
        message,
        "ml.toml:4:10: `define.metric` \"auc\" does not apply to a multiclass problem"
    );

    let (message, hint) = err(&source("", "acu"), &[]);
    assert_eq!(
        message,
        "ml.toml:4:10: `define.metric` names an unknown metric \"acu\""
    );
    assert_eq!(hint.as_deref(), Some("did you mean `auc`?"));
    let (_, hint) = err(&source("", "AUC"), &[]);
    assert_eq!(
        hint.as_deref(),
        Some("did you mean `auc`? metric names are lowercase in `ml.toml`")
    );
    let (_, hint) = err(&source("problem = \"binary\"", "r2"), &[]);
    assert_eq!(
        hint.as_deref(),
        Some("valid metrics for a binary problem: `auc`, `aucpr`, `logloss`, `mean_per_class_error`, `rmse`, `mse`")
    );

    let (message, _) = err(
        "[define]\ntarget = \"y\"\nproblem = \"binary\"\n[locate]\npath = \"a\"\n[execute]\nsort_metric = \"mae\"\n",
        &[],
    );
    assert_eq!(
        message,
        "ml.toml:7:15: `execute.sort_metric` \"mae\" does not apply to a binary problem"
    );
}

#[test]
fn target_must_not_be_ignored_or_dropped() {
    let source =
        "[define]\ntarget = \"CAPSULE\"\nignore = [\"ID\", \"CAPSULE\"]\n[locate]\npath = \"a\"\n";
    let e = parse_err(source, &[]);
    assert_eq!(
        e.headline(),
        "ml.toml:3:17: the target `CAPSULE` is also listed in `define.ignore`"
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("remove it from `define.ignore`: the target is what the model predicts")
    );
    let (message, _) = err(&minimal_with("prepare", "drop = [\"CAPSULE\"]"), &[]);
    assert_eq!(
        message,
        "ml.toml:8:9: the target `CAPSULE` is also listed in `prepare.drop`"
    );
}

#[test]
fn empty_target_and_path_are_rejected() {
    let (message, _) = err("[define]\ntarget = \"\"\n[locate]\npath = \"a\"\n", &[]);
    assert_eq!(
        message,
        "ml.toml:2:10: `define.target` must name a column, found an empty string"
    );
    let (message, _) = err("[define]\ntarget = \"y\"\n[locate]\npath = \" \"\n", &[]);
    assert_eq!(
        message,
        "ml.toml:4:8: `locate.path` must name a data file, found an empty string"
    );
}

#[test]
fn threshold_must_be_finite() {
    let source = MINIMAL.replace(
        "target = \"CAPSULE\"",
        "target = \"CAPSULE\"\nthreshold = inf",
    );
    let (message, _) = err(&source, &[]);
    assert_eq!(
        message,
        "ml.toml:3:13: `define.threshold` must be a finite number, found inf"
    );
}

#[test]
fn overrides_apply_like_file_values() {
    let config = parse_ok(
        FULL,
        &[
            "execute.max_models=8",
            "define.threshold=0.6",
            "prepare.drop=[\"ID\"]",
            "define.target=CAPSULE",
            "prepare.types.GLEASON=enum",
            "h2o.url = http://cluster:54321",
        ],
    );
    assert_eq!(config.execute.max_models, 8);
    assert_eq!(config.define.threshold, Some(0.6));
    assert_eq!(config.prepare.drop, vec!["ID".to_string()]);
    assert_eq!(config.define.target, "CAPSULE");
    assert_eq!(config.prepare.types.get("GLEASON"), Some(&ColumnType::Enum));
    assert_eq!(config.prepare.types.len(), 3);
    assert_eq!(config.h2o.url.as_deref(), Some("http://cluster:54321"));

    // An override equal to the file's value changes nothing.
    assert_eq!(
        parse_ok(FULL, &["execute.max_models=4"]),
        parse_ok(FULL, &[])
    );
    // Later overrides win.
    assert_eq!(
        parse_ok(FULL, &["modify.max_attempts=3", "modify.max_attempts=5"])
            .modify
            .max_attempts,
        5
    );
}

#[test]
fn overrides_can_supply_a_missing_required_key() {
    let config = parse_ok("[locate]\npath = \"a.csv\"\n", &["define.target=y"]);
    assert_eq!(config.define.target, "y");
}

#[test]
fn override_string_fallback() {
    // Not valid TOML: taken as a string.
    assert_eq!(
        parse_ok(MINIMAL, &["monitor.baseline=champion"])
            .monitor
            .baseline,
        "champion"
    );
    assert_eq!(parse_ok(MINIMAL, &["h2o.memory=4g"]).h2o.memory, "4g");
    // Valid TOML string: its value, not its quotes.
    assert_eq!(
        parse_ok(MINIMAL, &["monitor.baseline=\"champion\""])
            .monitor
            .baseline,
        "champion"
    );
    // Two values are not one TOML value: a string, then a type error for an integer key.
    let (message, _) = err(MINIMAL, &["execute.max_models=4 5"]);
    assert_eq!(
        message,
        "`--set execute.max_models=4 5`: `execute.max_models` expects a non-negative integer, found a string (\"4 5\")"
    );
}

#[test]
fn override_unknown_key_suggests() {
    let e = parse_err(MINIMAL, &["define.treshold=0.6"]);
    assert_eq!(
        e.to_string(),
        "`--set define.treshold=0.6`: unknown key `define.treshold`"
    );
    assert_eq!(e.hint().as_deref(), Some("did you mean `threshold`?"));
    let (message, hint) = err(MINIMAL, &["excute.max_models=8"]);
    assert_eq!(message, "`--set excute.max_models=8`: unknown key `excute`");
    assert_eq!(hint.as_deref(), Some("did you mean `execute`?"));
}

#[test]
fn override_wrong_type_names_the_argument() {
    let e = parse_err(MINIMAL, &["execute.max_models=four"]);
    assert_eq!(
        e.to_string(),
        "`--set execute.max_models=four`: `execute.max_models` expects a non-negative integer, found a string (\"four\")"
    );
    let (message, hint) = err(MINIMAL, &["prepare.drop=[ID]"]);
    assert_eq!(
        message,
        "`--set prepare.drop=[ID]`: `prepare.drop` expects an array of strings, found a string (\"[ID]\")"
    );
    assert!(hint
        .unwrap()
        .contains("`--set 'prepare.drop=[\"a\", \"b\"]'`"));
    let (message, _) = err(MINIMAL, &["prepare.holdout=2"]);
    assert_eq!(
        message,
        "`--set prepare.holdout=2`: `prepare.holdout` must be in (0, 1), found 2"
    );
}

#[test]
fn override_hints_say_how_to_quote() {
    let (message, hint) = err(MINIMAL, &["define.target=true"]);
    assert_eq!(
        message,
        "`--set define.target=true`: `define.target` expects a string, found a boolean (true)"
    );
    assert_eq!(
        hint.as_deref(),
        Some("VALUE is read as TOML: quote it to pass a string, e.g. `--set 'define.target=\"true\"'`")
    );
    assert_eq!(
        parse_ok(MINIMAL, &["define.target=\"true\""]).define.target,
        "true"
    );
    let (_, hint) = err(MINIMAL, &["execute.max_models=four"]);
    assert_eq!(
        hint.as_deref(),
        Some("VALUE is read as TOML, or as a string when it is not valid TOML; `execute.max_models` needs a non-negative integer")
    );
}

#[test]
fn override_errors_in_consistency_point_at_the_file_value() {
    let (message, _) = err(FULL, &["define.target=ID"]);
    assert_eq!(
        message,
        "ml.toml:10:11: the target `ID` is also listed in `define.ignore`"
    );
}

#[test]
fn malformed_overrides() {
    let e = parse_err(MINIMAL, &["execute.max_models"]);
    assert_eq!(
        e.to_string(),
        "`--set execute.max_models`: expected KEY=VALUE"
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("write `--set KEY=VALUE`, e.g. `--set execute.max_models=8`")
    );
    let (message, _) = err(MINIMAL, &["execute..max_models=8"]);
    assert_eq!(
        message,
        "`--set execute..max_models=8`: KEY is not a valid dotted TOML key"
    );
    let (message, _) = err(MINIMAL, &["define.target.x=8"]);
    assert_eq!(
        message,
        "`--set define.target.x=8`: `define.target` is not a table, so it has no keys to set"
    );
}

#[test]
fn load_reads_the_project_file() {
    let dir = std::env::temp_dir().join(format!("mlbuild-config-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let e = load(&dir, &[]).unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("no `ml.toml` in `{}`", dir.display())
    );
    assert_eq!(
        e.hint().as_deref(),
        Some("run `mlbuild init [DATA]` to create one, or pass `-C DIR`")
    );

    std::fs::write(dir.join("ml.toml"), FULL).unwrap();
    let loaded = load(&dir, &["execute.max_models=8".to_string()]).unwrap();
    assert_eq!(loaded.path, dir.join("ml.toml"));
    assert_eq!(loaded.source, FULL);
    assert_eq!(loaded.config.execute.max_models, 8);

    std::fs::write(dir.join("ml.toml"), "[define]\ntarget = 1\n").unwrap();
    let e = load(&dir, &[]).unwrap_err();
    assert_eq!(
        e.headline(),
        format!(
            "{}:2:10: `define.target` expects a string, found an integer (1)",
            dir.join("ml.toml").display()
        )
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn positions_count_characters_not_bytes() {
    let source = "[define]\ntarget = \"y\"\n# é\nignore = [\"é\", \"y\"]\n[locate]\npath = \"a\"\n";
    let e = parse_err(source, &[]);
    assert_eq!(
        e.headline(),
        "ml.toml:4:16: the target `y` is also listed in `define.ignore`"
    );
}

#[test]
fn metric_helpers() {
    assert!(metric_is_higher_better("auc"));
    assert!(metric_is_higher_better("aucpr"));
    for metric in [
        "logloss",
        "rmse",
        "mse",
        "mae",
        "rmsle",
        "mean_per_class_error",
        "mean_residual_deviance",
    ] {
        assert!(!metric_is_higher_better(metric), "{metric}");
    }
    assert_eq!(default_metric(Problem::Binary), "auc");
    assert_eq!(default_metric(Problem::Multiclass), "logloss");
    assert_eq!(default_metric(Problem::Regression), "rmse");
    for problem in [Problem::Binary, Problem::Multiclass, Problem::Regression] {
        assert!(metrics_for(problem).contains(&default_metric(problem)));
    }
    let expected = [
        ("auc", "AUC"),
        ("aucpr", "AUCPR"),
        ("logloss", "logloss"),
        ("rmse", "RMSE"),
        ("mse", "MSE"),
        ("mae", "MAE"),
        ("rmsle", "RMSLE"),
        ("mean_per_class_error", "mean_per_class_error"),
        ("mean_residual_deviance", "deviance"),
    ];
    for (metric, h2o) in expected {
        assert_eq!(h2o_metric_name(metric), h2o);
    }
    assert_eq!(expected.len(), ALL_METRICS.len());
}

/// `keys::ROOT` must describe exactly the fields of `schema.rs`, or serde and the shape check
/// would disagree about what a valid file is.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a fully populated config, every optional field set, read against the key table"
)]
fn key_table_matches_the_schema() {
    fn schema_keys(value: &toml::Value, prefix: &str, out: &mut Vec<String>) {
        if let toml::Value::Table(table) = value {
            for (key, value) in table {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                // Tables keyed by column name: their keys are data, not schema.
                if [
                    "prepare.types",
                    "prepare.rename",
                    "prepare.impute",
                    "prepare.derive",
                    "prepare.text",
                    "confirm.required",
                    "steps.params",
                    "steps.outputs",
                ]
                .contains(&path.as_str())
                {
                    out.push(path);
                    continue;
                }
                out.push(path.clone());
                match value {
                    // An array of tables (`[[steps]]`): the fields of its tables.
                    toml::Value::Array(items) => {
                        if let Some(first) = items.first() {
                            schema_keys(first, &path, out);
                        }
                    }
                    _ => schema_keys(value, &path, out),
                }
            }
        }
    }
    fn table_keys(fields: &[keys::Field], prefix: &str, out: &mut Vec<String>) {
        for field in fields {
            let path = if prefix.is_empty() {
                field.name.to_string()
            } else {
                format!("{prefix}.{}", field.name)
            };
            out.push(path.clone());
            if let keys::Kind::Table(inner) | keys::Kind::TableArray(inner) = field.kind {
                table_keys(inner, &path, out);
            }
        }
    }
    let mut full = parse_ok(FULL, &[]);
    full.h2o.url = Some("http://h2o:54321".into());
    full.h2o.jar = Some("h2o.jar".into());
    full.cache.remote = Some("http://cache:8080/mlbuild".into());
    full.cache.read_only = true;
    full.prepare.sample = Some(0.5);
    full.prepare.stratify = Some(false);
    full.prepare.rename = BTreeMap::from([("A".into(), "B".into())]);
    full.prepare.impute = BTreeMap::from([("A".into(), Impute::Strategy(ImputeStrategy::Mean))]);
    full.prepare.derive = BTreeMap::from([("r".into(), "A / B".into())]);
    full.prepare.text = BTreeMap::from([("t".into(), TextSpec::default())]);
    full.confirm.max_null_fraction_overall = Some(0.1);
    full.confirm.required = BTreeMap::from([("A".into(), ColumnType::Numeric)]);
    full.confirm.min_class_fraction = Some(0.1);
    full.confirm.unique = vec!["ID".into()];
    full.confirm.drift.psi = 0.3;
    full.monitor.shap_rows = Some(10);
    full.modify.escalate = Hooks {
        webhook: Some("http://h/".into()),
        command: Some("true".into()),
    };
    full.conclude.deploy = full.modify.escalate.clone();
    full.h2o.threads = Some(2);
    full.h2o.exchange_dir = Some("shared".into());
    full.locate.delimiter = Some(";".into());
    full.locate.header = Some(false);
    full.locate.na_strings = vec!["?".into()];
    full.locate.sql = Some("SELECT 1".into());
    full.locate.url_env = Some("DB_URL".into());
    full.locate.params = vec![SqlParam::Int(1)];
    full.locate.incremental = Some(Incremental {
        column: "updated_at".into(),
        key: Some("id".into()),
    });
    full.steps = vec![UserStep {
        name: "featurize".into(),
        after: "prepare".into(),
        run: vec!["true".into()],
        inputs: vec!["f.py".into()],
        uses: vec!["prepare.train".into()],
        params: BTreeMap::from([("k".into(), toml::Value::Integer(1))]),
        env: vec!["LANG".into()],
        tools: vec!["python3".into()],
        outputs: BTreeMap::from([("features".into(), "features.csv".into())]),
        cache: false,
        provides: vec!["train".into(), "holdout".into()],
    }];
    let mut from_schema = Vec::new();
    schema_keys(&toml::Value::try_from(&full).unwrap(), "", &mut from_schema);
    let mut from_table = Vec::new();
    table_keys(keys::ROOT, "", &mut from_table);
    from_schema.sort();
    from_table.sort();
    assert_eq!(from_table, from_schema);
}

#[test]
fn prepare_and_confirm_keys_are_checked_with_positions() {
    let base = "[define]\ntarget = \"CAPSULE\"\n[locate]\npath = \"d.csv\"\n";
    let err = |extra: &str| parse_err(&format!("{base}{extra}"), &[]);
    // A derive expression that does not parse points into the expression itself.
    let e = err("[prepare.derive]\nratio = \"PSA / (VOL\"\n");
    let text = e.to_string();
    assert!(
        text.starts_with(
            "ml.toml:6:20: `prepare.derive.ratio` is not a valid expression: expected `)`"
        ),
        "{text}"
    );
    let e = err("[prepare.impute]\nAGE = \"avg\"\n");
    assert!(
        e.to_string()
            .contains("`prepare.impute.AGE` must be one of `mean`, `median`, `mode`"),
        "{e}"
    );
    assert_eq!(e.hint(), None);
    let e = err("[prepare.impute]\nAGE = 3\n");
    assert!(
        e.to_string()
            .contains("expects one of `mean`, `median`, `mode` or a table `{ constant = … }`"),
        "{e}"
    );
    let e = err("[prepare.impute]\nAGE = { constant = [1] }\n");
    assert!(
        e.to_string()
            .contains("`prepare.impute.AGE.constant` expects a string or a number"),
        "{e}"
    );
    let e = err("[prepare.text.review]\nvec_sise = 8\n");
    assert!(
        e.to_string()
            .contains("unknown key `prepare.text.review.vec_sise`"),
        "{e}"
    );
    let e = err("[prepare]\nstratify = \"yes\"\n");
    assert!(
        e.to_string()
            .contains("`prepare.stratify` expects a boolean"),
        "{e}"
    );
    let e = err("[confirm.required]\nAGE = \"number\"\n");
    assert!(
        e.to_string()
            .contains("must be one of `numeric`, `enum`, `string`"),
        "{e}"
    );
    let e = err("[confirm]\nmin_class_fraction = 1.5\n");
    assert!(
        e.to_string()
            .contains("`confirm.min_class_fraction` must be in [0, 1], found 1.5"),
        "{e}"
    );
    let e = err("[confirm.drift]\npsi = 0\n");
    assert!(
        e.to_string()
            .contains("`confirm.drift.psi` must be a positive number"),
        "{e}"
    );
    let e = err("[prepare]\nimpute = { CAPSULE = \"mode\" }\n");
    assert!(e.to_string().contains("cannot fill the target"), "{e}");
    // New keys left out serialise to nothing: existing step keys do not change.
    let minimal = parse_ok(base, &[]);
    let json = serde_json::to_value(&minimal).unwrap();
    assert_eq!(json["prepare"].as_object().unwrap().len(), 4, "{json}");
    assert_eq!(json["confirm"].as_object().unwrap().len(), 2, "{json}");
}

/// `[[steps]]` errors point at the value that is wrong, with a hint.
#[test]
#[allow(
    clippy::too_many_lines,
    reason = "a table of cases: each wrong `[[steps]]` table and the error it gets"
)]
fn user_step_errors_point_at_their_place() {
    let steps = |body: &str| format!("{MINIMAL}{body}");
    let cases: &[(&str, &str, &str)] = &[
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepar\"\nrun = [\"true\"]\n",
            "ml.toml:9:9: `prepar` is not a built-in step",
            "did you mean `prepare`?",
        ),
        (
            "\n[[steps]]\nname = \"prepare\"\nafter = \"prepare\"\nrun = [\"true\"]\n",
            "ml.toml:8:8: `prepare` is a built-in step's name",
            "give your step a name of its own",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"true\"]\n\n[[steps]]\nname = \"f\"\nafter = \"locate\"\nrun = [\"true\"]\n",
            "ml.toml:13:8: a second step named `f`",
            "the first is at ml.toml:8:8",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"true\"]\nuses = [\"nothing.x\"]\n",
            "ml.toml:11:9: `nothing.x` names no step: there is no step `nothing`",
            "",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"true\"]\nuses = [\"prepare.features\"]\n",
            "ml.toml:11:9: step `prepare` has no output `features`",
            "its outputs are holdout, schema, train, transform",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"true\"]\nuses = [\"execute.mojo\"]\n",
            "ml.toml:11:9: `execute.mojo` is written by a step that runs after `f`",
            "place `f` after `execute` or later",
        ),
        (
            "\n[[steps]]\nname = \"a\"\nafter = \"prepare\"\nrun = [\"true\"]\nuses = [\"b.o\"]\noutputs = { o = \"a.txt\" }\n\n[[steps]]\nname = \"b\"\nafter = \"prepare\"\nrun = [\"true\"]\nuses = [\"a.o\"]\noutputs = { o = \"b.txt\" }\n",
            "ml.toml:11:9: a cycle: `a` uses `b.o`, and `b` uses `a`",
            "a step can use only steps that run before it",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\", \"{out.o}\"]\n",
            "ml.toml:10:13: `{out.o}` names an output the step does not declare",
            "declare it",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\", \"a{use.prepare}\"]\n",
            "ml.toml:10:15: `{use.prepare}` is not a placeholder: expected `{use.STEP.OUTPUT}`, `{out.NAME}` or `{params}`",
            "",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\"]\noutputs = { a = \"o.csv\", b = \"o.csv\" }\n",
            "ml.toml:11:30: outputs `a` and `b` are the same file `o.csv`",
            "a file of its own",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\"]\ninputs = [\"../secret\"]\n",
            "ml.toml:11:11: `../secret` is not a path inside the project",
            "without `..`",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\n",
            "ml.toml:7:1: missing key `steps[0].run`",
            "",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\"]\nprovides = [\"train\"]\n",
            "ml.toml:11:12: `provides` names both `train` and `holdout`, nothing else",
            "monitor judges on the same features",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"confirm\"\nrun = [\"x\"]\nprovides = [\"train\", \"holdout\"]\n",
            "ml.toml:11:12: a step that provides the training data runs after `prepare`, not after `confirm`",
            "set `after = \"prepare\"`",
        ),
        (
            "\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"x\"]\nprovides = [\"train\", \"holdout\"]\noutputs = { train = \"t.csv\" }\n",
            "ml.toml:11:12: the step provides `holdout` but has no output of that name",
            "declare both",
        ),
    ];
    let mut wrong = Vec::new();
    for (body, headline, hint) in cases {
        let e = parse_err(&steps(body), &[]);
        let got = e.hint().unwrap_or_default();
        if &e.headline() != headline || !got.contains(hint) {
            wrong.push(format!("{} | {got}", e.headline()));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn user_steps_parse_with_their_defaults_and_order() {
    let source = format!(
        "{MINIMAL}\n[[steps]]\nname = \"late\"\nafter = \"conclude\"\nrun = [\"true\"]\n\n[[steps]]\nname = \"f\"\nafter = \"prepare\"\nrun = [\"python3\", \"f.py\", \"{{use.prepare.train}}\", \"{{out.features}}\"]\nuses = [\"prepare.train\"]\noutputs = {{ features = \"features.csv\" }}\nparams = {{ k = 2, name = \"x\" }}\n"
    );
    let config = parse_ok(&source, &[]);
    assert_eq!(config.steps.len(), 2);
    assert!(config.steps[0].cache);
    assert_eq!(config.steps[1].params["k"], toml::Value::Integer(2));
    assert_eq!(
        user_step::walk_order(&config),
        [
            "define", "locate", "prepare", "f", "confirm", "execute", "monitor", "modify",
            "conclude", "late"
        ]
    );
}
