//! Native single-thread scoring throughput, for `benches/mojo_bench.sh`: the same rows as the
//! Java harness (benches/java/MojoBench.java), encoded once, scored PASSES times with
//! `Mojo::score_encoded`; prints the best pass in rows/s. With a 4th argument `contributions`
//! (benches/shap_bench.sh), each row's contributions (`Mojo::contributions`) instead.
//!
//!   cargo bench --bench mojo_score -- M.zip DATA.csv PASSES [contributions]

#![allow(
    clippy::print_stdout,
    clippy::print_stderr,
    reason = "tests and benchmarks report seeds, timings and what they compared"
)]

use std::time::Instant;

use mlbuild::mojo::{Mojo, Prediction};

fn main() {
    let args: Vec<String> = std::env::args().filter(|a| a != "--bench").collect();
    let (Some(model), Some(data)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: mojo_score M.zip DATA.csv [PASSES]");
        std::process::exit(2);
    };
    let passes: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(5);
    let mojo = Mojo::load(&std::fs::read(model).expect("the MOJO")).expect("a MOJO");
    let mut rdr = csv::Reader::from_path(data).expect("the CSV");
    let header: Vec<String> = rdr.headers().unwrap().iter().map(str::to_string).collect();
    let binding = mojo.bind(&header).expect("the columns");
    let mut rows = Vec::new();
    let mut raw = Vec::new();
    for record in rdr.records() {
        let record = record.unwrap();
        let fields: Vec<&str> = record.iter().collect();
        binding.encode(&fields, &mut raw).expect("a row");
        rows.extend_from_slice(&raw);
    }
    let width = mojo.signature().len();
    let n = rows.len() / width;
    if args.get(4).is_some_and(|a| a == "contributions") {
        let mut out = Vec::new();
        let (mut best, mut sink) = (f64::MAX, 0.0);
        for _ in 0..passes {
            let mut pass = 0.0;
            let t = Instant::now();
            for r in rows.chunks_exact(width) {
                mojo.contributions(r, &mut out);
                pass += out[out.len() - 1] + out[0];
            }
            best = best.min(t.elapsed().as_secs_f64());
            sink = pass;
        }
        println!(
            "native contributions: {n} rows, best of {passes} passes {best:.4} s = {:.0} rows/s ({:.3} us/row) [sink {sink:.6}]",
            n as f64 / best,
            best * 1e6 / n as f64
        );
        return;
    }
    let (mut best, mut sink) = (f64::MAX, 0.0);
    for _ in 0..passes {
        let t = Instant::now();
        for r in rows.chunks_exact(width) {
            if let Prediction::Class { probabilities, .. } = mojo.score_encoded(r) {
                sink += probabilities[probabilities.len() - 1];
            }
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    println!(
        "native score_encoded: {n} rows, best of {passes} passes {best:.4} s = {:.0} rows/s ({:.3} us/row) [sink {sink:.3}]",
        n as f64 / best,
        best * 1e6 / n as f64
    );
}
