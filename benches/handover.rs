//! How a prepared file reaches H2O (issue 14 point 4): upload+parse (`POST /3/PostFile`, what
//! a remote cluster gets) against import+parse (`/3/ImportFiles` of the file where it lies,
//! what a managed node on this machine gets), through mlbuild's own `Client::load_csv`, on one
//! managed node, alternating, each until the frame is ready. Also times the hand-over alone
//! (PostFile / ImportFiles answered, before the parse).
//!
//!   cargo bench --bench handover -- [MB] [REPEAT] [MEMORY]
//!
//! Defaults: a 1024 MB CSV (numeric and categorical columns, like a prepared file), 3 pairs,
//! a node with `-Xmx8g`. The file is written to a temp dir and removed afterwards.

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "benchmarks report what they measured"
)]

use std::io::Write;
use std::time::Instant;

use mlbuild::h2o::{Client, ColumnKind, HandOver, LaunchSpec, LocalNode};

const COLUMNS: usize = 10;

fn write_csv(path: &std::path::Path, megabytes: u64) -> u64 {
    let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(path).unwrap());
    let header: Vec<String> = (0..COLUMNS).map(|i| format!("c{i}")).collect();
    writeln!(out, "{}", header.join(",")).unwrap();
    let (mut rows, mut bytes, mut x) = (0u64, 0u64, 0x9E37_79B9_7F4A_7C15u64);
    while bytes < megabytes << 20 {
        let mut line = String::with_capacity(128);
        for c in 0..COLUMNS {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if c > 0 {
                line.push(',');
            }
            if c % 4 == 3 {
                line.push_str(["a", "b", "c", "d", "e"][(x % 5) as usize]);
            } else {
                line.push_str(&format!("{:.4}", (x % 1_000_000) as f64 / 997.0));
            }
        }
        line.push('\n');
        bytes += line.len() as u64;
        out.write_all(line.as_bytes()).unwrap();
        rows += 1;
    }
    out.flush().unwrap();
    rows
}

/// The file's columns: every fourth categorical, the rest numeric.
fn columns() -> Vec<(String, ColumnKind)> {
    (0..COLUMNS)
        .map(|i| {
            let kind = if i % 4 == 3 {
                ColumnKind::Enum
            } else {
                ColumnKind::Numeric
            };
            (format!("c{i}"), kind)
        })
        .collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let megabytes: u64 = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(1024);
    let repeat: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let memory = args.get(3).cloned().unwrap_or_else(|| "8g".into());

    // Not a hidden directory (`/tmp/.tmpXYZ`): H2O's default `-file_deny_glob` refuses to import
    // from one, and mlbuild would upload instead.
    let dir = tempfile::Builder::new()
        .prefix("mlbuild-handover-")
        .tempdir()
        .unwrap();
    let data = dir.path().join("prepared.csv");
    let t = Instant::now();
    let rows = write_csv(&data, megabytes);
    let size = std::fs::metadata(&data).unwrap().len();
    eprintln!(
        "wrote {rows} rows, {:.0} MB in {:.1} s",
        size as f64 / 1e6,
        t.elapsed().as_secs_f64()
    );
    let columns = columns();

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let java = mlbuild::h2o::find_java().expect("Java 8–17");
        let jar = mlbuild::h2o::locate_or_provision_jar(
            None,
            &mlbuild::h2o::default_tool_cache(),
            &|m| eprintln!("{m}"),
        )
        .expect("the pinned H2O jar");
        let mut times: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        let mut alone: [Vec<f64>; 2] = [Vec::new(), Vec::new()];
        for i in 0..repeat {
            // A fresh node per pair: a 1 GB upload leaves the heap fragmented enough that a
            // third one in the same JVM ran out of 8 GB here.
            let node = LocalNode::launch(&LaunchSpec::single(
                java.path.clone(),
                jar.clone(),
                memory.clone(),
                dir.path().join("h2o"),
            ))
            .await
            .expect("an H2O node");
            let base = Client::new(&node.url()).unwrap();
            for (k, how) in [HandOver::Upload, HandOver::LocalPath].into_iter().enumerate() {
                let client = base.clone().with_hand_over(how);
                let frame = format!("bench_{i}_{k}");
                let t = Instant::now();
                let raw = client.stage_csv(&data, &frame).await.unwrap().raw_key;
                assert_eq!(raw.starts_with("nfs:"), how == HandOver::LocalPath, "{raw}");
                let staged = t.elapsed().as_secs_f64();
                alone[k].push(staged);
                client.delete(&raw, false).await.unwrap();
                let t = Instant::now();
                let info = client.load_csv(&data, &frame, &columns).await.unwrap();
                let secs = t.elapsed().as_secs_f64();
                assert_eq!(info.rows, rows, "{how:?}");
                eprintln!("pair {} {how:?}: {secs:.2} s (hand-over alone {staged:.2} s)", i + 1);
                times[k].push(secs);
                client.delete(&frame, false).await.unwrap();
            }
            node.shutdown().await.unwrap();
        }
        let (upload, import) = (median(times[0].clone()), median(times[1].clone()));
        println!(
            "hand-over of {:.0} MB ({rows} rows) until the frame is ready, node -Xmx{memory}, median of {repeat}:",
            size as f64 / 1e6
        );
        println!("  upload+parse {upload:.2} s, import+parse {import:.2} s, ratio {:.2}", import / upload);
        println!(
            "  hand-over alone: upload {:.2} s, import {:.2} s",
            median(alone[0].clone()),
            median(alone[1].clone())
        );
    });
}
