//! `mlbuild init` writes a project that runs on the data it read (issue 11, point 9): data
//! shaped like the `ames` housing set (an Id, mostly-missing columns) and like a tweets set
//! (an id, free text) both failed the gate of the project `init` wrote for them.

use crate::support::*;

/// An empty project directory holding `data/train.csv`.
fn project_with(csv: &str) -> Project {
    let p = Project::from_fixture("prostate");
    std::fs::remove_file(p.file("ml.toml")).unwrap();
    p.write("data/train.csv", csv);
    p
}

fn ames_like(rows: usize) -> String {
    let mut csv = String::from("Id,LotFrontage,Alley,PoolQC,OverallQual,GrLivArea,SalePrice\n");
    for i in 0..rows {
        let frontage = if i % 5 < 3 {
            String::new()
        } else {
            format!("{}", 50 + i % 40)
        };
        let alley = if i % 14 == 0 { "Grvl" } else { "NA" };
        let pool = if i == 7 { "Ex" } else { "" };
        let qual = 1 + i % 10;
        let area = 800 + (i * 37) % 1500;
        let price = 50_000 + qual * 15_000 + area * 40 + (i * 7919) % 9_000;
        csv.push_str(&format!(
            "{},{frontage},{alley},{pool},{qual},{area},{price}\n",
            i + 1
        ));
    }
    csv
}

fn tweets_like(rows: usize) -> String {
    let words = [
        "great", "awful", "service", "flight", "delayed", "thanks", "crew", "lost",
    ];
    let mut csv = String::from("tweet_id,text,airline,retweets,sentiment\n");
    for i in 0..rows {
        let text: Vec<&str> = (0..8)
            .map(|k| words[(i * 3 + k * 5 + i / 7) % words.len()])
            .collect();
        csv.push_str(&format!(
            "{},\"@air{} {} #{i}\",{},{},{}\n",
            5_700_000_000_000_000_000u64 + i as u64 * 7_919,
            i % 3,
            text.join(" "),
            ["United", "Delta", "Virgin"][i % 3],
            i % 4,
            if (i * 7 + i / 3) % 3 == 0 {
                "negative"
            } else {
                "positive"
            }
        ));
    }
    csv
}

/// `mlbuild -C DIR init DATA` with DATA relative to where mlbuild runs (or absolute): `ml.toml`
/// gets the path as seen from DIR, so the project it writes finds its data.
#[test]
fn init_with_c_writes_the_data_path_relative_to_the_project() {
    let p = project_with(&ames_like(300));
    std::fs::create_dir(p.file("sub")).unwrap();
    let init = p
        .mlbuild_offline(&[
            "-C",
            "sub",
            "init",
            "data/train.csv",
            "--target",
            "SalePrice",
        ])
        .ok();
    let toml = std::fs::read_to_string(p.file("sub/ml.toml")).unwrap();
    assert!(toml.contains("path = \"../data/train.csv\""), "{toml}");
    assert!(
        init.stderr
            .contains("`[locate] path` is `../data/train.csv`"),
        "{}",
        init.stderr
    );
    let gate = p
        .mlbuild_offline(&["-C", "sub", "run", "confirm", "--json"])
        .ok();
    assert_eq!(gate.step("confirm")["verdict"], "pass");

    // An absolute DATA inside the project is written relative to it.
    std::fs::create_dir(p.file("other")).unwrap();
    std::fs::create_dir(p.file("other/data")).unwrap();
    std::fs::copy(p.file("data/train.csv"), p.file("other/data/t.csv")).unwrap();
    let abs = p.file("other/data/t.csv").to_string_lossy().into_owned();
    p.mlbuild_offline(&["-C", "other", "init", &abs, "--target", "SalePrice"])
        .ok();
    let toml = std::fs::read_to_string(p.file("other/ml.toml")).unwrap();
    assert!(toml.contains("path = \"data/t.csv\""), "{toml}");
}

#[test]
fn init_on_housing_data_ignores_the_id_and_lets_missing_columns_pass_the_gate() {
    let p = project_with(&ames_like(300));
    let init = p
        .mlbuild_offline(&["init", "data/train.csv", "--target", "SalePrice"])
        .ok();
    let toml = p.read("ml.toml");
    assert!(toml.contains("\"Id\","), "{toml}");
    assert!(toml.contains("max_null_fraction = 1"), "{toml}");
    assert!(init.stderr.contains("ignoring `Id`"), "{}", init.stderr);
    assert!(
        init.stderr.contains("column `PoolQC` is 100% missing"),
        "{}",
        init.stderr
    );
    // The default gate (0.5) would have stopped here; the written one passes.
    let gate = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(gate.step("confirm")["verdict"], "pass");
    let strict = p.mlbuild_offline(&["run", "confirm", "--set", "confirm.max_null_fraction=0.5"]);
    assert_eq!(strict.code, 4, "{}", strict.stderr);
    // And the whole project trains (small AutoML), registers and tags a model.
    let run = p
        .mlbuild(&[
            "run",
            "--json",
            "--set",
            "execute.max_models=1",
            "--set",
            "execute.nfolds=0",
        ])
        .ok();
    assert_eq!(run.done()["status"], "ok");
    assert!(run.done()["version"].is_string());
}

#[test]
fn init_on_tweets_ignores_the_id_and_the_free_text_and_names_prepare_text() {
    let p = project_with(&tweets_like(240));
    let init = p
        .mlbuild_offline(&["init", "data/train.csv", "--target", "sentiment"])
        .ok();
    let toml = p.read("ml.toml");
    assert!(toml.contains("\"tweet_id\","), "{toml}");
    assert!(toml.contains("\"text\","), "{toml}");
    assert!(
        toml.contains("[prepare.text], \"text\" = { vec_size = 16 }"),
        "{toml}"
    );
    assert!(!toml.contains("[confirm]"), "nothing is missing: {toml}");
    assert!(
        init.stderr.contains("move it to `[prepare.text]`"),
        "{}",
        init.stderr
    );
    let gate = p.mlbuild_offline(&["run", "confirm", "--json"]).ok();
    assert_eq!(gate.step("confirm")["verdict"], "pass");
    assert_eq!(gate.step("define")["status"], "ran");
}
