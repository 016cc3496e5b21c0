//! Property and mutation tests of the file sources (harness: `crate::hostile`,
//! docs/testing.md).
//!
//! - CSV: whatever the bytes and `[locate]` options, [`files::convert`], [`table::profile_csv`]
//!   and [`table::read_header`] return a table or an error, never panic, and an error about the
//!   content names the file and a line that exists (`` `data.csv` line 3: … ``). The parallel
//!   profile (chunks on both cores) equals the sequential one.
//! - Parquet: whatever the bytes, [`files::convert`] returns a canonical CSV or an error naming
//!   the file; a panic inside the `parquet` crate is caught at the boundary and reported like
//!   any other unreadable file.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use parquet::basic::Compression;
use parquet::data_type::{
    BoolType, ByteArray, ByteArrayType, DoubleType, FixedLenByteArray, FixedLenByteArrayType,
    FloatType, Int32Type, Int64Type,
};
use parquet::file::properties::WriterProperties;
use parquet::file::writer::SerializedFileWriter;

use super::files::{self, CsvOptions};
use crate::hostile::{self, mutate, repo_file, Input, Property, Rng};
use crate::table;

const CSV_SEEDS: &[&str] = &[
    "data/prostate.csv",
    "tests/fixtures/text/reviews.csv",
    "tests/fixtures/mojo/iris.in.csv",
    "tests/fixtures/mojo/syn.in.csv",
];

fn field(rng: &mut Rng) -> String {
    match rng.below(12) {
        0 => String::new(),
        1 => "NA".into(),
        2 => rng.awkward_number(),
        3 => format!("\"{}\"", rng.junk(6).replace('"', "\"\"")),
        4 => "\"a,b\nc\"\"d\"".to_string(),
        5 => rng.junk(6),
        6 => " 12 ".into(),
        7 => "\"unclosed".into(),
        8 => "x\"y".into(),
        _ => format!("{}", rng.below(100)),
    }
}

/// A CSV from scratch: a header, rows mostly as wide as it, assorted line endings.
fn csv(rng: &mut Rng) -> Vec<u8> {
    let width = rng.between(1, 6);
    let sep = if rng.percent(80) {
        ","
    } else {
        *rng.pick(&[";", "\t", "|"])
    };
    let eol = *rng.pick(&["\n", "\r\n", "\r", "\n\n"]);
    let mut out = String::new();
    if rng.percent(5) {
        out.push('\u{feff}');
    }
    let names: Vec<String> = (0..width)
        .map(|i| {
            if rng.percent(90) {
                format!("c{i}")
            } else {
                field(rng)
            }
        })
        .collect();
    out.push_str(&names.join(sep));
    for _ in 0..rng.between(0, 30) {
        out.push_str(eol);
        let w = if rng.percent(90) {
            width
        } else {
            rng.between(0, width + 2)
        };
        let row: Vec<String> = (0..w).map(|_| field(rng)).collect();
        out.push_str(&row.join(sep));
    }
    if rng.percent(70) {
        out.push_str(eol);
    }
    let mut bytes = out.into_bytes();
    if rng.percent(5) {
        let at = rng.below(bytes.len() + 1);
        bytes.insert(at, 0xFF);
    }
    bytes
}

fn csv_input(rng: &mut Rng) -> Input {
    let mut input = if rng.percent(45) {
        let seed = rng.pick(CSV_SEEDS);
        let mut bytes = repo_file(seed);
        let how = mutate(rng, &mut bytes);
        Input::new(bytes, format!("{seed} mutated: {how}"))
    } else {
        let mut bytes = csv(rng);
        let how = if rng.percent(20) {
            format!("generated CSV, mutated: {}", mutate(rng, &mut bytes))
        } else {
            "generated CSV".into()
        };
        Input::new(bytes, how)
    };
    // [locate] options: delimiter, header, na_strings (as `files::CsvOptions`).
    if rng.percent(40) {
        let delimiter = *rng.pick(&[b',', b';', b'\t', b'|', b'"', b'\n', b'\r', 0u8, b'#']);
        let header = rng.percent(70);
        let na: Vec<String> = (0..rng.below(3))
            .map(|_| rng.pick(&["NA", "?", "", " ", "-", "null"]).to_string())
            .collect();
        input.args = vec![
            format!("delimiter={delimiter}"),
            format!("header={header}"),
            format!("na={}", na.join("\u{1}")),
        ];
    }
    input
}

fn options(args: &[String]) -> CsvOptions {
    let mut o = CsvOptions {
        delimiter: b',',
        header: true,
        na_strings: Vec::new(),
    };
    for a in args {
        match a.split_once('=') {
            Some(("delimiter", d)) => o.delimiter = d.parse().expect("a byte"),
            Some(("header", h)) => o.header = h == "true",
            Some(("na", n)) if !n.is_empty() => {
                o.na_strings = n.split('\u{1}').map(str::to_string).collect()
            }
            _ => {}
        }
    }
    o
}

/// A message about the content names `shown` and, when it gives a line, one the file has.
fn names_a_real_line(message: &str, shown: &str, bytes: &[u8]) -> Result<(), String> {
    if !message.contains(&format!("`{shown}`")) {
        return Err(format!("the error does not name the file: {message}"));
    }
    let lines = bytes.iter().filter(|&&b| b == b'\n' || b == b'\r').count() as u64 + 1;
    if let Some(rest) = message.split(&format!("`{shown}` line ")).nth(1) {
        let n: u64 = rest
            .split(|c: char| !c.is_ascii_digit())
            .next()
            .and_then(|d| d.parse().ok())
            .ok_or_else(|| format!("no line number: {message}"))?;
        if n == 0 || n > lines {
            return Err(format!(
                "line {n} is not a line of the file ({lines} lines): {message}"
            ));
        }
    } else if !(message.contains("is empty")
        || message.contains("has no header row")
        || message.contains("has different columns"))
    {
        return Err(format!(
            "an error about the content without a line: {message}"
        ));
    }
    Ok(())
}

#[test]
fn csv_sources_never_panic_and_name_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.csv");
    let property = Property {
        parser: "csv",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "source::properties::csv",
    };
    hostile::check(&property, csv_input, |input| {
        std::fs::write(&file, &input.bytes).map_err(|e| e.to_string())?;
        let opts = options(&input.args);
        let files = vec![(file.clone(), "data.csv".to_string())];
        let converted = files::convert(&files, &opts, Vec::new());
        if let Err(e) = &converted {
            names_a_real_line(&format!("{e:#}"), "data.csv", &input.bytes)?;
        }
        let shown = file.display().to_string();
        let header = table::read_header(&file);
        if let Err(e) = &header {
            names_a_real_line(&e.to_string(), &shown, &input.bytes)?;
        }
        // The profile, read sequentially and in chunks on both cores: the same answer.
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(u64::MAX));
        let sequential = table::profile_csv(&file);
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(0));
        let chunked = table::profile_csv(&file);
        table::TEST_PARALLEL_MIN_BYTES.with(|m| m.set(u64::MAX));
        match (&sequential, &chunked) {
            (Ok(a), Ok(b)) if a != b => {
                return Err(format!("the chunked profile differs: {a:?} vs {b:?}"))
            }
            (Ok(_), Err(e)) | (Err(e), Ok(_)) => {
                return Err(format!("only one of the profiles failed: {e}"))
            }
            (Err(e), _) => names_a_real_line(&e.to_string(), &shown, &input.bytes)?,
            _ => {}
        }
        Ok(match (converted.is_ok(), sequential.is_ok()) {
            (true, true) => "converted, profiled",
            (true, false) => "converted, profile refused",
            (false, true) => "refused, profiled",
            (false, false) => "refused",
        }
        .to_string())
    });
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// Writes a column's values for the given definition levels.
type WriteColumn = Box<dyn Fn(&mut parquet::file::writer::SerializedColumnWriter<'_>, &[i16])>;

/// A column of a generated Parquet file: its schema line and how to write `rows` values.
struct ParquetColumn {
    schema: String,
    write: WriteColumn,
}

fn levels(rng: &mut Rng, rows: usize, optional: bool) -> Vec<i16> {
    (0..rows)
        .map(|_| i16::from(!optional || rng.percent(80)))
        .collect()
}

/// Values for the non-null rows (`def == 1`).
fn present(def: &[i16]) -> usize {
    def.iter().filter(|&&d| d == 1).count()
}

fn parquet_column(rng: &mut Rng, i: usize) -> ParquetColumn {
    let optional = rng.percent(60);
    let rep = if optional { "optional" } else { "required" };
    let seed = rng.next_u64();
    let values = move |n: usize| -> Rng { Rng::new(seed ^ n as u64) };
    macro_rules! typed {
        ($ty:ty, $physical:expr, $make:expr) => {{
            let make = $make;
            let (physical, annotation) = $physical.split_once(' ').unwrap_or(($physical, ""));
            ParquetColumn {
                schema: format!("{rep} {physical} c{i} {annotation}"),
                write: Box::new(move |w, def| {
                    let mut r = values(def.len());
                    let vals: Vec<_> = (0..present(def)).map(|_| make(&mut r)).collect();
                    w.typed::<$ty>()
                        .write_batch(&vals, Some(def), None)
                        .expect("writing a generated column");
                }),
            }
        }};
    }
    let extreme_i32 = |r: &mut Rng| match r.below(4) {
        0 => *r.pick(&[i32::MIN, i32::MAX, 0, -1, 1]),
        _ => r.next_u64() as i32,
    };
    let extreme_i64 = |r: &mut Rng| match r.below(4) {
        0 => *r.pick(&[i64::MIN, i64::MAX, 0, -1]),
        _ => r.next_u64() as i64,
    };
    match rng.below(12) {
        0 => typed!(BoolType, "boolean", |r: &mut Rng| r.percent(50)),
        1 => typed!(Int32Type, "int32", extreme_i32),
        2 => typed!(Int32Type, "int32 (DATE)", extreme_i32),
        3 => typed!(
            Int32Type,
            "int32 (DECIMAL(9, 2))",
            |r: &mut Rng| r.next_u64() as i32 % 1_000_000_000
        ),
        4 => typed!(Int64Type, "int64", extreme_i64),
        5 => typed!(Int64Type, "int64 (TIMESTAMP(MILLIS, true))", extreme_i64),
        6 => typed!(Int64Type, "int64 (TIMESTAMP(MICROS, true))", extreme_i64),
        7 => typed!(FloatType, "float", |r: &mut Rng| f32::from_bits(
            r.next_u64() as u32
        )),
        8 => typed!(DoubleType, "double", |r: &mut Rng| f64::from_bits(
            r.next_u64()
        )),
        9 => typed!(ByteArrayType, "binary (UTF8)", |r: &mut Rng| {
            ByteArray::from(r.junk(12).into_bytes())
        }),
        10 => typed!(ByteArrayType, "binary", |r: &mut Rng| {
            let n = r.below(10);
            ByteArray::from(r.bytes(n))
        }),
        _ => typed!(
            FixedLenByteArrayType,
            "fixed_len_byte_array(16) (DECIMAL(38, 10))",
            |r: &mut Rng| { FixedLenByteArray::from(r.bytes(16)) }
        ),
    }
}

/// A Parquet file written by the `parquet` crate: random flat schema, values (extremes
/// included), nulls, compression, page and row-group sizes.
fn parquet_file(rng: &mut Rng) -> Vec<u8> {
    let columns: Vec<ParquetColumn> = (0..rng.between(1, 5))
        .map(|i| parquet_column(rng, i))
        .collect();
    let message = format!(
        "message schema {{ {}; }}",
        columns
            .iter()
            .map(|c| c.schema.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    );
    let schema =
        Arc::new(parquet::schema::parser::parse_message_type(&message).expect("a valid schema"));
    let props = WriterProperties::builder()
        .set_compression(if rng.percent(50) {
            Compression::SNAPPY
        } else {
            Compression::UNCOMPRESSED
        })
        .set_dictionary_enabled(rng.percent(50))
        .set_data_page_row_count_limit(rng.between(1, 64))
        .set_write_batch_size(rng.between(1, 64))
        .set_max_row_group_size(rng.between(1, 100))
        .build();
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(props)).expect("a writer");
    for _ in 0..rng.between(1, 3) {
        let rows = rng.between(0, 40);
        let mut group = writer.next_row_group().expect("a row group");
        let mut k = 0;
        while let Some(mut col) = group.next_column().expect("a column") {
            let optional = columns[k].schema.starts_with("optional");
            let def = levels(rng, rows, optional);
            (columns[k].write)(&mut col, &def);
            col.close().expect("closing a column");
            k += 1;
        }
        group.close().expect("closing a row group");
    }
    writer.close().expect("closing the file");
    out
}

fn parquet_input(rng: &mut Rng) -> Input {
    let mut bytes = parquet_file(rng);
    if rng.percent(25) {
        return Input::new(bytes, "generated Parquet file");
    }
    // Most damage that matters sits in the footer (schema, offsets, sizes): aim there often.
    let how = if rng.percent(50) && bytes.len() > 64 {
        let footer = bytes.len() - rng.between(8, 64.min(bytes.len() - 1));
        let mut tail = bytes.split_off(footer);
        let how = mutate(rng, &mut tail);
        bytes.extend(tail);
        format!("generated Parquet file, footer mutated: {how}")
    } else {
        format!(
            "generated Parquet file, mutated: {}",
            mutate(rng, &mut bytes)
        )
    };
    Input::new(bytes, how)
}

fn convert_parquet(file: &Path) -> anyhow::Result<Vec<u8>> {
    let files = vec![(file.to_path_buf(), "data.parquet".to_string())];
    let options = CsvOptions {
        delimiter: b',',
        header: true,
        na_strings: Vec::new(),
    };
    files::convert(&files, &options, Vec::new()).map(|(out, _, _)| out)
}

#[test]
fn parquet_sources_never_panic_and_name_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let file: PathBuf = dir.path().join("data.parquet");
    let property = Property {
        parser: "parquet",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        // The thrift decoder inside the `parquet` crate allocates a zeroed buffer of a
        // page header's declared string length (up to 2 GiB) before reading it: address space
        // the kernel maps lazily, which mlbuild cannot bound from outside (docs/testing.md).
        reserved: 4 << 30,
        test_filter: "source::properties::parquet",
    };
    hostile::check(&property, parquet_input, |input| {
        std::fs::write(&file, &input.bytes).map_err(|e| e.to_string())?;
        match convert_parquet(&file) {
            Ok(_) => Ok("converted".into()),
            Err(e) => {
                let message = format!("{e:#}");
                if !message.starts_with("`data.parquet`") {
                    return Err(format!("the error does not start with the file: {message}"));
                }
                Ok(if message.contains("decoder failed") {
                    "refused (decoder panic caught)".into()
                } else {
                    "refused".into()
                })
            }
        }
    });
}

/// Writes one `int32 (DATE)` column holding `days`.
fn parquet_with_date(days: i32) -> Vec<u8> {
    let schema = Arc::new(
        parquet::schema::parser::parse_message_type("message m { required int32 d (DATE); }")
            .unwrap(),
    );
    let mut out = Vec::new();
    let mut writer =
        SerializedFileWriter::new(&mut out, schema, Arc::new(WriterProperties::default())).unwrap();
    let mut group = writer.next_row_group().unwrap();
    let mut col = group.next_column().unwrap().unwrap();
    col.typed::<Int32Type>()
        .write_batch(&[days], None, None)
        .unwrap();
    col.close().unwrap();
    group.close().unwrap();
    writer.close().unwrap();
    out
}

/// Found by the Parquet property test (case 1): a date far from 1970 (`i32::MAX` days)
/// overflowed chrono's date arithmetic, a panic in `locate`.
#[test]
fn a_date_out_of_range_is_an_error_naming_the_column() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("data.parquet");
    std::fs::write(&file, parquet_with_date(19_000)).unwrap();
    assert_eq!(convert_parquet(&file).unwrap(), b"d\n2022-01-08\n");
    std::fs::write(&file, parquet_with_date(i32::MAX)).unwrap();
    let e = format!("{:#}", convert_parquet(&file).unwrap_err());
    assert!(
        e.starts_with("`data.parquet`: column `d` holds a date 2147483647 days from 1970-01-01"),
        "{e}"
    );
}

/// Found by the Parquet property test: a damaged page (a number inserted into a generated
/// file) makes the `parquet` crate panic ("range end out of bounds") while reading rows. The
/// panic is caught where mlbuild calls the crate and reported as an unreadable file.
#[test]
fn a_panic_in_the_parquet_decoder_is_a_located_error() {
    let file =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/parquet/decoder-panic.parquet");
    let e = format!("{:#}", convert_parquet(&file).unwrap_err());
    assert!(
        e.starts_with("`data.parquet` is not a readable Parquet file: the Parquet decoder failed while reading row 1 ("),
        "{e}"
    );
}
