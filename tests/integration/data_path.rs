//! The data path's outputs are exactly those of mlbuild before it read data in blocks (issue
//! #16 point 1): every blob `run confirm` stores (snapshot, train, holdout, schema, transform,
//! impute) has the digest the sequential-era binary (91bf3fa) gave, on a file large enough for
//! the block passes, with a stratified and a random split, and on the demo data.

use crate::support::*;

/// SplitMix64, as `table::splitmix64`.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 560,000 rows, 17.7 MB (over the 16 MB from which passes go in blocks): numbers with `NA`
/// and empty fields, a few categories with gaps, a 400-value column and a binary target.
fn generated_csv() -> String {
    let mut text = String::from("x0,x1,x2,c0,c1,y\n");
    for i in 0..560_000u64 {
        let r = splitmix64(i);
        let x0 = if r.is_multiple_of(23) {
            "NA".to_string()
        } else {
            format!("{}.{:03}", r % 100_000, (r >> 20) % 1000)
        };
        let x1 = if r.is_multiple_of(29) {
            String::new()
        } else {
            format!("-{}.{:02}", (r >> 8) % 500, (r >> 30) % 100)
        };
        let c0 = if r.is_multiple_of(31) {
            ""
        } else {
            ["red", "green", "blue"][((r >> 40) % 3) as usize]
        };
        text.push_str(&format!(
            "{x0},{x1},{},{c0},k{},{}\n",
            (r >> 12) % 50,
            (r >> 24) % 400,
            (r >> 50) % 2
        ));
    }
    text
}

/// The digests of every blob in the project's store, sorted.
fn blobs(p: &Project) -> Vec<String> {
    let mut all = Vec::new();
    for dir in std::fs::read_dir(p.file("cache/v1/cas")).unwrap() {
        for blob in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            all.push(blob.unwrap().file_name().into_string().unwrap());
        }
    }
    all.sort();
    all
}

fn run_confirm(config: &str, data: Option<&str>) -> Vec<String> {
    let p = Project::from_fixture("prostate");
    if let Some(data) = data {
        p.write("ml.toml", config);
        std::fs::write(p.file("data/d.csv"), data).unwrap();
    }
    let run = p.mlbuild(&["run", "confirm", "--json"]).ok();
    let statuses: Vec<(String, String)> = run.statuses().into_iter().collect();
    let ran =
        ["confirm", "define", "locate", "prepare"].map(|s| (s.to_string(), "ran".to_string()));
    assert_eq!(statuses, ran, "{}", run.stderr);
    blobs(&p)
}

/// `[define]` and `[locate]` of both configs on the generated file.
const DATA: &str = r#"
[define]
target = "y"
problem = "binary"
metric = "auc"

[locate]
path = "data/d.csv"

[confirm]
min_rows = 100
max_null_fraction = 0.25
"#;

const STRATIFIED: &str = r#"
[prepare]
types = { y = "enum" }
holdout = 0.2
seed = 7
impute = { x0 = "mean", x1 = "median", c0 = "mode" }
derive = { s = "x0 + x2" }
"#;

const RANDOM: &str = r#"
[prepare]
stratify = false
holdout = 0.3
seed = 11
sample = 0.8
drop = ["c1"]
rename = { x2 = "n" }
impute = { x0 = "median", x1 = "mean", c0 = { constant = "none" } }
derive = { r = "x1 / (n + 1)" }
"#;

#[test]
fn the_prepared_bytes_are_those_of_the_sequential_passes() {
    let data = generated_csv();
    assert!(data.len() > 16 << 20, "large enough for the block passes");
    let stratified = run_confirm(
        &format!("[project]\nname = \"golden\"\n{DATA}{STRATIFIED}"),
        Some(&data),
    );
    assert_eq!(
        stratified,
        [
            "13a3c3fed996f811312ec3e8d8934ed8190e697ec8ffe04eacc75ee642e6720b",
            "17dbfb52af371e50a074c6b93c6b08c62decd2321df7abe193e543daed745443",
            "25f96a5abf8dd9796c6fc806b7ba799d6c4878ccc39f165bc22d3cc38766842d",
            "9a37d8ce9f37cdd2ba48769abdc682982ab474d50cc36ee5f81e38760c16e6d1",
            "ca0849a77f5d4db31b031f521fbf4d442c791fab2205f44711c40ae8781c3434",
            "d7f34b032e54b025de6b5173f172aaa91e92c7aebe3703a497e4208b0a377b68",
            "ddc50b8a6b1fa1d207f27a6455ff1c66ca6f4a290db7422b8cf2a63fe7e77bf9",
            "f5154d6386ad3f485c78f40c2a1d0fc61ff4d05809c9587fdf4b7661a39b7157",
        ]
    );
    let random = run_confirm(
        &format!("[project]\nname = \"golden-random\"\n{DATA}{RANDOM}"),
        Some(&data),
    );
    assert_eq!(
        random,
        [
            "0d41ca16b391fee252ebf88f919e97983436d933dcb764f5fce0640627e5f597",
            "3facbc2de4bac648ea12581adc28f0bc955ffb683c6477ad3b6e5b4d47d682a5",
            "9b6bd7729ec5c7a5a1dbff725c2b406b08b9afeb77cbb75568c99ba9cf5843be",
            "9c43549eb840206d05915b3a797a83934fa91315c045ce768cc912e13141715b",
            "9c9466d6642ee3a05566a8323709ff1d68ea30457a5d69906346249a1a0382ee",
            "cd8e61c17967be58874a645cf421077d2ae6de128e209d27dec6b0ac032d16c6",
            "e9ed4a0e98b06950c38ba14e7fb4010d640c00ecc29452ae9d066d52d4bc639c",
            "f5154d6386ad3f485c78f40c2a1d0fc61ff4d05809c9587fdf4b7661a39b7157",
        ]
    );
    // The demo data (sequential: a small file) through the prostate fixture's config.
    assert_eq!(
        run_confirm("", None),
        [
            "18652914ea476af0973b9142dc851e2b5862b16e0cf6ebe0463555164e0e002d",
            "3a5fd94247a9cd736078b38ccf2929499567be0ad5001aeb6c2ddbc7b3b0f37e",
            "478120c0165145754ac8a9ff283522955964e0f025bb2cf9a98f25e7581823fe",
            "5f737343ef84e9e305848445d93445985a18a021823e1ba7837ed4b9c99afb34",
            "71db2799f6ab45afc6ea44d37a13ac4cd2ba8860a614e5c61d310d052bbc348c",
            "b8f634dc36cf9aa317e2664d306bf4a60514fc8e6cfa693c617c54e4f5f2ea47",
            "d77e39a6e6bd5962247ec9228eae23563fd99cc2de3795d5e1e11b41787e3b4d",
        ]
    );
}

/// The block pass writes a stage field as it is read (an unquoted row's fields hold no `,`,
/// `"` or line break) but an imputed value that needs quotes is quoted, as the sequential pass
/// (the `csv` crate's bytes) writes it.
#[test]
fn an_imputed_value_that_needs_quotes_is_quoted_in_the_block_pass() {
    let data = generated_csv();
    let fill = r#"none, "really""#;
    let config = format!(
        "[project]\nname = \"quoted-fill\"\n{DATA}\n[prepare]\ntypes = {{ y = \"enum\" }}\n\
         impute = {{ c0 = {{ constant = '{fill}' }} }}\n"
    );
    let p = Project::from_fixture("prostate");
    p.write("ml.toml", &config);
    std::fs::write(p.file("data/d.csv"), &data).unwrap();
    p.mlbuild(&["run", "confirm", "--json"]).ok();
    let mut prepared = 0;
    for digest in blobs(&p) {
        let path = p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2]));
        let bytes = std::fs::read(&path).unwrap();
        if !bytes.starts_with(b"x0,x1,x2,c0,c1,y\n") || bytes.len() == data.len() {
            continue; // not a prepared file (the snapshot has the data's length)
        }
        prepared += 1;
        let mut rdr = csv::Reader::from_reader(bytes.as_slice());
        let (mut filled, mut rows) = (0, 0);
        for record in rdr.records() {
            let record = record.unwrap();
            assert_eq!(record.len(), 6, "{record:?}");
            filled += usize::from(&record[3] == fill);
            rows += 1;
        }
        assert!(
            rows > 10_000 && filled > 100,
            "{rows} rows, {filled} filled"
        );
        let quoted = r#","none, ""really""","#;
        assert!(String::from_utf8(bytes).unwrap().contains(quoted));
    }
    assert_eq!(prepared, 2, "train and holdout");
}
