use std::collections::HashMap;

use super::*;

#[test]
fn profile_infers_kinds_and_counts_missing() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, "a,b,c\n1,x,\n2.5,y,NA\nNA,x,\n").unwrap();
    let prof = profile_csv(&p).unwrap();
    assert_eq!(prof.rows, 3);
    assert_eq!(prof.columns[0].kind, Kind::Numeric);
    assert_eq!(prof.columns[0].missing, 1);
    assert_eq!(prof.columns[1].kind, Kind::Categorical);
    assert_eq!(prof.columns[1].distinct, vec!["x", "y"]);
    assert_eq!(prof.columns[2].missing, 3);
}

#[test]
fn split_is_deterministic_and_near_the_fraction() {
    let held: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
    assert!((1800..2200).contains(&held), "{held}");
    let again: usize = (0..10_000).filter(|&i| in_holdout(42, i, 0.2)).count();
    assert_eq!(held, again);
    let other: Vec<bool> = (0..100).map(|i| in_holdout(7, i, 0.2)).collect();
    let base: Vec<bool> = (0..100).map(|i| in_holdout(42, i, 0.2)).collect();
    assert_ne!(other, base, "the seed matters");
}

#[test]
fn stratified_split_holds_out_round_fraction_of_each_class() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    // 70 of class a, 25 of b, 5 of c, 3 missing targets, interleaved.
    let mut text = String::from("x,y\n");
    let mut expected: HashMap<&str, usize> = HashMap::new();
    for i in 0..103 {
        let class = match i {
            100..=102 => "",
            _ if i % 20 == 0 => "c",
            _ if i % 4 == 1 => "b",
            _ => "a",
        };
        *expected.entry(class).or_default() += 1;
        text.push_str(&format!("{i},{class}\n"));
    }
    assert_eq!(expected["c"], 5);
    std::fs::write(&p, &text).unwrap();
    let split = Split::stratified(&p, 1, 42, 0.2, None, None).unwrap();
    assert!(split.is_stratified());
    let mut rdr = reader(&p).unwrap();
    let mut held: HashMap<String, usize> = HashMap::new();
    let mut rec = csv::StringRecord::new();
    let mut i = 0;
    while rdr.read_record(&mut rec).unwrap() {
        if split.side(i, &rec) == Some(Side::Holdout) {
            *held.entry(rec[1].to_string()).or_default() += 1;
        }
        i += 1;
    }
    for (class, n) in &expected {
        let want = (0.2 * *n as f64).round() as usize;
        assert_eq!(
            held.get(*class).copied().unwrap_or(0),
            want,
            "class {class:?} of {n}"
        );
    }
    // Deterministic; another seed picks other rows of the same sizes.
    let again = Split::stratified(&p, 1, 42, 0.2, None, None).unwrap();
    let other = Split::stratified(&p, 1, 7, 0.2, None, None).unwrap();
    let sides = |s: &Split| -> Vec<Option<Side>> {
        let mut rdr = reader(&p).unwrap();
        let mut rec = csv::StringRecord::new();
        let mut out = Vec::new();
        let mut i = 0;
        while rdr.read_record(&mut rec).unwrap() {
            out.push(s.side(i, &rec));
            i += 1;
        }
        out
    };
    assert_eq!(sides(&split), sides(&again));
    assert_ne!(sides(&split), sides(&other));
    let count = |v: Vec<Option<Side>>| v.iter().filter(|s| **s == Some(Side::Holdout)).count();
    assert_eq!(count(sides(&split)), count(sides(&other)));
}

#[test]
fn random_split_is_the_historical_one() {
    let s = Split::random(42, 0.2, None);
    let rec = csv::StringRecord::new();
    for i in 0..1000 {
        let want = if in_holdout(42, i, 0.2) {
            Side::Holdout
        } else {
            Side::Train
        };
        assert_eq!(s.side(i, &rec), Some(want));
    }
}

#[test]
fn chunked_profile_is_the_sequential_one() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    // 300 distinct values in column b, so the kept 256 depend on the file order.
    let mut text = String::from("a,b,c\n");
    for i in 0..5000u64 {
        let a = if i % 97 == 0 {
            "NA".to_string()
        } else {
            (i % 13).to_string()
        };
        let c = if i == 4321 { "x" } else { "1.5" };
        text.push_str(&format!("{a},v{},{c}\n", splitmix64(i) % 300));
    }
    std::fs::write(&p, &text).unwrap();
    let sequential = profile_csv(&p).unwrap();
    assert!(sequential.columns[1].distinct_capped);
    let names = read_header(&p).unwrap();
    for threads in [2, 3, 7] {
        let parts = chunks_of(
            &p,
            3,
            threads,
            0,
            Index::Local,
            |_| Profiler::new(3),
            |pr, _, rec| {
                pr.row();
                for (i, f) in rec.iter().enumerate() {
                    pr.field(i, f);
                }
            },
        )
        .expect("unquoted: chunked");
        assert_eq!(parts.len(), threads);
        let mut parts = parts.into_iter().map(|(p, _)| p);
        let mut all = parts.next().unwrap();
        parts.for_each(|p| all.merge(p));
        assert_eq!(all.finish(names.clone()), sequential, "{threads} threads");
    }
    // A quote anywhere, or a short row, sends the caller back to one sequential pass.
    std::fs::write(&p, format!("{text}1,\"q\",2\n")).unwrap();
    assert!(chunks_of(&p, 3, 2, 0, Index::Local, |_| (), |_, _, _| ()).is_none());
    std::fs::write(&p, format!("{text}1,2\n")).unwrap();
    assert!(chunks_of(&p, 3, 2, 0, Index::Local, |_| (), |_, _, _| ()).is_none());
}

#[test]
fn global_chunk_indices_are_the_sequential_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    let mut text = String::from("a,b\n");
    for i in 0..3000u64 {
        text.push_str(&format!("{i},x\r\n"));
    }
    std::fs::write(&p, &text).unwrap();
    for threads in [2, 3, 7] {
        let parts = chunks_of(
            &p,
            2,
            threads,
            0,
            Index::Global,
            |_| Vec::new(),
            |v: &mut Vec<(u64, u64)>, i, rec| v.push((i, rec.get(0).unwrap().parse().unwrap())),
        )
        .expect("unquoted: chunked");
        let all: Vec<(u64, u64)> = parts.into_iter().flat_map(|(v, _)| v).collect();
        assert_eq!(all.len(), 3000);
        assert!(all.iter().all(|(i, v)| i == v), "{threads} threads");
    }
    // A blank line makes the newline count overshoot the rows: no chunked result.
    std::fs::write(&p, text.replacen("5,x\r\n", "5,x\r\n\n", 1)).unwrap();
    assert!(chunks_of(&p, 2, 2, 0, Index::Global, |_| (), |_, _, _| ()).is_none());
}

#[test]
fn number_and_trim_shortcuts_agree_with_std() {
    for f in [
        "",
        "1",
        "-1",
        "+1",
        "1.",
        ".5",
        "-.5",
        ".",
        "-",
        "1e5",
        "1E+5",
        "1e-5",
        "1e",
        "1e+",
        "e5",
        ".e5",
        "1.5e3",
        "1..2",
        "1.2.3",
        "inf",
        "-Infinity",
        "NaN",
        "nan",
        "0x10",
        "1_000",
        " 1",
        "1 ",
        "١",
        "12345678901234567890123e400",
        "++1",
        "1e5.5",
        "1,5",
    ] {
        assert_eq!(is_number(f), f.parse::<f64>().is_ok(), "{f:?}");
        for g in [
            f.to_string(),
            format!(" {f}\t"),
            format!("\u{a0}{f}\u{2003}"),
        ] {
            assert_eq!(trim(&g), g.trim(), "{g:?}");
        }
    }
}

#[test]
fn unequal_rows_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    std::fs::write(&p, "a,b\n1,2\n3\n").unwrap();
    let err = profile_csv(&p).unwrap_err().to_string();
    assert!(err.contains("line 3"), "{err}");
}

/// The rows the `csv` crate reads from `bytes` (no header), or `None` on an error.
fn csv_rows(bytes: &[u8]) -> Option<Vec<Vec<String>>> {
    let mut rdr = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut rows = Vec::new();
    for r in rdr.records() {
        rows.push(r.ok()?.iter().map(String::from).collect());
    }
    Some(rows)
}

fn fast_rows(bytes: &[u8], columns: usize) -> Option<Vec<Vec<String>>> {
    let mut rows = Vec::new();
    unquoted_rows(bytes, columns, |r| {
        rows.push(r.iter().map(String::from).collect());
        true
    })
    .then_some(rows)
}

#[test]
fn unquoted_rows_are_the_csv_crates_rows() {
    let long = "x".repeat(3 << 20);
    let cases: Vec<(String, usize)> = vec![
        ("a,b\n1,2\n".into(), 2),
        ("a,b\r\n1,2\r\n".into(), 2),
        ("a,b\n\n1,2\n\r\n3,4".into(), 2),
        ("a, b ,\n,,\n".into(), 3),
        ("é,ü\n日本,x\r".into(), 2),
        ("one\ntwo\n\nthree".into(), 1),
        (format!("{long},1\n2,{long}\n"), 2),
        (String::new(), 2),
    ];
    for (text, columns) in &cases {
        let fast = fast_rows(text.as_bytes(), *columns).expect("read by the fast path");
        assert_eq!(
            Some(fast),
            csv_rows(text.as_bytes()),
            "{:?}",
            &text[..text.len().min(40)]
        );
    }
    // What only the csv crate reads right (or reports) is refused.
    for (text, columns) in [
        ("a,\"b\"\n", 2),
        ("a,b\r1,2\n", 2),
        ("a,b\n1\n", 2),
        ("a,b,c\n", 2),
        ("a,b\r\r\n", 2),
    ] {
        assert_eq!(fast_rows(text.as_bytes(), columns), None, "{text:?}");
    }
    assert_eq!(fast_rows(b"a,\xff\n", 2), None, "invalid UTF-8");
    // Random bytes from a small alphabet: whatever the fast path accepts, the csv crate
    // reads the same.
    let alphabet: &[&str] = &["a", "7", ",", "\n", "\r", "é", " ", "\r\n"];
    let (mut accepted, mut seed) = (0, 1u64);
    for _ in 0..3000 {
        let mut text = String::new();
        for _ in 0..(splitmix64(seed) % 40) {
            seed += 1;
            text.push_str(alphabet[(splitmix64(seed) % alphabet.len() as u64) as usize]);
        }
        seed += 1;
        let columns = 1 + (splitmix64(seed) % 3) as usize;
        if let Some(fast) = fast_rows(text.as_bytes(), columns) {
            accepted += 1;
            assert_eq!(Some(fast), csv_rows(text.as_bytes()), "{text:?}");
        }
    }
    assert!(
        accepted > 100,
        "{accepted} random inputs read by the fast path"
    );
}

#[test]
fn row_writer_writes_what_the_csv_crate_writes() {
    let dir = tempfile::tempdir().unwrap();
    let rows: Vec<Vec<&str>> = vec![
        vec!["a", "b", "c"],
        vec!["", "", ""],
        vec![""],
        vec!["x"],
        vec!["a,b", "say \"hi\"", "two\nlines", "cr\r", " pad ", "#"],
        vec!["é", "NA", "-1.5e3", "\"", ","],
    ];
    let ours = dir.path().join("ours.csv");
    let mut w = HashedFile::create(&ours).unwrap();
    for r in &rows {
        let mut line = Vec::new();
        push_row(&mut line, r.iter().copied());
        w.write(&line).unwrap();
    }
    let digest = w.finish().unwrap();
    let mut theirs = csv::WriterBuilder::new()
        .flexible(true)
        .from_writer(Vec::new());
    for r in &rows {
        theirs.write_record(r).unwrap();
    }
    let theirs = theirs.into_inner().unwrap();
    let bytes = std::fs::read(&ours).unwrap();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&theirs)
    );
    assert_eq!(digest, blake3::hash(&theirs).to_hex().to_string());
}

#[test]
fn a_pass_numbers_rows_from_the_counts_of_the_pass_before() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    // Blank lines: the newlines overcount the rows, so only the counted rows give the right
    // indices (a sequential reader skips blank lines too).
    let mut text = String::from("a,b\n");
    for i in 0..3000u64 {
        text.push_str(&format!("{i},x\n"));
        if i % 500 == 7 {
            text.push('\n');
        }
    }
    std::fs::write(&p, &text).unwrap();
    let indexed = || {
        chunks_of(
            &p,
            2,
            3,
            0,
            Index::Global,
            |_| Vec::new(),
            |v: &mut Vec<(u64, u64)>, i, rec| v.push((i, rec.get(0).unwrap().parse().unwrap())),
        )
    };
    assert!(indexed().is_none(), "counted newlines are not rows");
    let counted = chunks_of(&p, 2, 3, 0, Index::Local, |_| (), |_, _, _| ()).unwrap();
    assert_eq!(counted.iter().map(|(_, n)| n).sum::<u64>(), 3000);
    let all: Vec<(u64, u64)> = indexed()
        .expect("numbered from the counts")
        .into_iter()
        .flat_map(|(v, _)| v)
        .collect();
    assert_eq!(all.len(), 3000);
    assert!(all.iter().all(|(i, v)| i == v));
}

#[test]
fn the_profile_pass_strata_give_the_split_of_a_pass_of_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    let mut text = String::from("x,label\n");
    for i in 0..5000u64 {
        let class = match splitmix64(i) % 7 {
            0 => "",
            1 | 2 => "b",
            3 => " c ",
            _ => "a",
        };
        text.push_str(&format!("{i},{class}\n"));
    }
    std::fs::write(&p, &text).unwrap();
    TEST_PARALLEL_MIN_BYTES.with(|m| m.set(0));
    let (profile, collected) = profile_collecting(&p, Some("label"), |_| Vec::new()).unwrap();
    let no_column = profile_collecting(&p, Some("nope"), |_| Vec::new())
        .unwrap()
        .1;
    TEST_PARALLEL_MIN_BYTES.with(|m| m.set(PARALLEL_MIN_BYTES));
    assert_eq!(profile, profile_csv(&p).unwrap());
    let strata = collected.strata.expect("a block pass collects the classes");
    assert!(collected.held.is_none(), "nothing asked to be held");
    assert!(no_column.strata.is_none(), "no such column, no strata");
    // Given the classes, the split reads nothing: not even a file that is not there.
    let gone = dir.path().join("gone.csv");
    let from_profile = Split::stratified(&gone, 1, 9, 0.25, Some(0.8), Some(strata)).unwrap();
    let own = Split::stratified(&p, 1, 9, 0.25, Some(0.8), None).unwrap();
    let mut rdr = reader(&p).unwrap();
    let mut rec = csv::StringRecord::new();
    let (mut i, mut held) = (0, 0);
    while rdr.read_record(&mut rec).unwrap() {
        assert_eq!(from_profile.side(i, &rec), own.side(i, &rec), "row {i}");
        held += usize::from(own.side(i, &rec) == Some(Side::Holdout));
        i += 1;
    }
    assert!((800..1200).contains(&held), "{held}");
}

/// Each row's side in a stratified split of `records` (target in column 1), computed
/// independently of `Split`: per class, the sampled rows by hash, the first round(h × n) held.
fn stratified_sides(
    records: &[csv::StringRecord],
    seed: u64,
    holdout: f64,
    sample: Option<f64>,
) -> Vec<Option<Side>> {
    let mut by_class: HashMap<&str, Vec<u64>> = HashMap::new();
    for (i, rec) in records.iter().enumerate() {
        let i = i as u64;
        if sample.is_none_or(|rate| in_holdout(seed ^ SAMPLE_SALT, i, rate)) {
            by_class.entry(class_of(&rec[1])).or_default().push(i);
        }
    }
    let mut expected = vec![None; records.len()];
    for rows in by_class.values_mut() {
        rows.sort_by_key(|&i| row_hash(seed, i));
        let k = (holdout * rows.len() as f64).round() as usize;
        for (n, &i) in rows.iter().enumerate() {
            expected[i as usize] = Some(if n < k { Side::Holdout } else { Side::Train });
        }
    }
    expected
}

#[test]
fn the_stratified_sides_bits_are_the_class_lookup() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("d.csv");
    let mut text = String::from("x,label\n");
    let mut records = Vec::new();
    for i in 0..4000u64 {
        let class = match (i, splitmix64(i ^ 0xC1A55) % 9) {
            (1234, _) => "rare",
            (_, 0) => "",
            (_, 1) => "NA",
            (_, 2 | 3) => "b",
            (_, 4) => " c ",
            _ => "a",
        };
        text.push_str(&format!("{i},{class}\n"));
        records.push(csv::StringRecord::from(vec![
            i.to_string(),
            class.to_string(),
        ]));
    }
    std::fs::write(&p, &text).unwrap();
    // Several blocks, so the chunk-local indices are offset by the rows before them.
    let strata = || {
        let parts = chunks_of(
            &p,
            2,
            5,
            0,
            Index::Local,
            |_| ClassRows::default(),
            |m, i, rec| m.note(i, rec, 1),
        )
        .expect("a block pass");
        assert!(parts.len() >= 5, "{}", parts.len());
        Strata::new(1, parts)
    };
    let gone = dir.path().join("gone.csv");
    let blank = csv::StringRecord::from(vec!["", ""]);
    let configs = [
        (9, 0.25, None),
        (3, 0.5, Some(0.7)),
        (11, 0.0, Some(0.5)),
        (5, 1.0, None),
        (7, 0.2, Some(1.0)),
    ];
    for (seed, holdout, sample) in configs {
        // From the strata: the bits. Without (a small file is read sequentially): the lookup.
        let bits = Split::stratified(&gone, 1, seed, holdout, sample, Some(strata())).unwrap();
        let lookup = Split::stratified(&p, 1, seed, holdout, sample, None).unwrap();
        assert!(format!("{bits:?}").len() < 1000, "the bits are not printed");
        let expected = stratified_sides(&records, seed, holdout, sample);
        let held = expected
            .iter()
            .filter(|s| **s == Some(Side::Holdout))
            .count();
        let left = expected.iter().filter(|s| s.is_none()).count();
        assert!(held > 0 || holdout == 0.0, "{seed}");
        assert!(left > 0 || sample.is_none_or(|r| r == 1.0), "{seed}");
        let mut rdr = reader(&p).unwrap();
        let mut rec = csv::StringRecord::new();
        let mut i = 0u64;
        while rdr.read_record(&mut rec).unwrap() {
            let want = expected[i as usize];
            assert_eq!(lookup.side(i, &rec), want, "lookup, seed {seed}, row {i}");
            assert_eq!(bits.side(i, &rec), want, "bits, seed {seed}, row {i}");
            // The bits do not read the record: a missing target gives the row's own side.
            assert_eq!(
                bits.side(i, &blank),
                want,
                "bits, blank, seed {seed}, row {i}"
            );
            i += 1;
        }
        assert_eq!(i, 4000);
        // Past the rows the strata counted, the class decides, as without them.
        for i in 4000..4300 {
            for rec in [&records[7], &records[1234], &blank] {
                assert_eq!(bits.side(i, rec), lookup.side(i, rec), "past, row {i}");
            }
        }
    }
}

/// A bad row is named by the line an editor shows, with `\n` or `\r\n` line ends (the `csv`
/// crate's count is one short after each `\r\n`; [`line_of`] adds it back), quoted or not.
#[test]
fn a_bad_rows_line_is_the_same_with_either_line_ending() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("d.csv");
    for end in ["\n", "\r\n"] {
        for first in ["a", "\"a\""] {
            let lines = ["x,y,z", "1,2,3", "4,5,6", "7,8,9", "10,11,12", "13,14"];
            let text = format!("{first}{}{end}", &lines.join(end)[1..]);
            std::fs::write(&path, text).unwrap();
            let e = profile_csv(&path).unwrap_err();
            assert!(
                matches!(e, TableError::Csv { line: 6, .. }),
                "{end:?} {first}: {e}"
            );
        }
    }
}
