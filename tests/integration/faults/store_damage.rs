//! Flipped bytes and deleted files in the store, `models/` and the state database.

use super::*;

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let path = e.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

fn flip(path: &Path, rng: &mut Rng) {
    let mut bytes = std::fs::read(path).unwrap();
    let at = rng.below(bytes.len() as u64) as usize;
    bytes[at] ^= 1 << rng.below(8);
    std::fs::write(path, bytes).unwrap();
}

const KINDS: [&str; 6] = [
    "flip a byte of a blob",
    "delete a blob",
    "flip a byte of an action entry",
    "flip a byte of models/staging.zip",
    "empty state.db",
    "overwrite a page of state.db",
];

#[test]
fn damage_in_the_store_is_found_and_repaired() {
    let mut rng = Rng::new("store damage");
    let mut tally = Tally::new("store damage");
    for i in 0..trials(KINDS.len(), 24) {
        let kind = KINDS[i % KINDS.len()];
        let pick = rng.next();
        tally.trial(kind, || {
            let p = trained().clone_trained();
            let mut rng = Rng(pick);
            let blobs = files_under(&p.file("cache/v1/cas"));
            let entries = files_under(&p.file("cache/v1/ac"));
            match kind {
                "flip a byte of a blob" => {
                    let blob = rng.pick(&blobs).clone();
                    flip(&blob, &mut rng)
                }
                "delete a blob" => std::fs::remove_file(rng.pick(&blobs)).unwrap(),
                "flip a byte of an action entry" => {
                    let entry = rng.pick(&entries).clone();
                    flip(&entry, &mut rng)
                }
                "flip a byte of models/staging.zip" => {
                    flip(&p.file("models/staging.zip"), &mut rng)
                }
                _ => return state_db(&p, kind, &mut rng),
            }
            // `cache verify` finds what is damaged in the store (and quarantines corrupt
            // blobs); a run repairs it all; then everything holds.
            let verify = p.mlbuild_offline(&["cache", "verify"]);
            if kind == "flip a byte of models/staging.zip" {
                assert_eq!(verify.code, 0, "{}", verify.stderr);
            } else if kind != "flip a byte of an action entry" {
                // (a flip in an entry's whitespace changes nothing, and is not an error)
                assert_eq!(verify.code, 1, "{}{}", verify.stdout, verify.stderr);
            }
            recovers(&p);
        });
    }
}

/// A damaged state database stops every command with the same clear error and is never
/// written; moved aside (docs/registry.md, recipe 3), the next run starts a new registry.
fn state_db(p: &Project, kind: &str, rng: &mut Rng) {
    let db = p.file("cache/state.db");
    // A finished command leaves everything it wrote in the file itself: its WAL is
    // checkpointed and truncated when it closes the registry (the empty `-wal` and `-shm` may
    // outlive it by a moment).
    let wal = p.file("cache/state.db-wal");
    let held = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    assert_eq!(
        held,
        0,
        "{} holds {held} bytes not in state.db",
        wal.display()
    );
    if kind == "empty state.db" {
        std::fs::write(&db, b"").unwrap();
    } else {
        let mut bytes = std::fs::read(&db).unwrap();
        let pages = bytes.len() / 4096;
        assert!(pages >= 2, "a registry of {} bytes", bytes.len());
        let page = 1 + rng.below(pages as u64 - 1) as usize;
        for b in &mut bytes[page * 4096..(page + 1) * 4096] {
            *b = rng.next() as u8;
        }
        std::fs::write(&db, bytes).unwrap();
    }
    let damaged = std::fs::read(&db).unwrap();
    if kind != "empty state.db" && p.mlbuild_offline(&["versions"]).code == 0 {
        // The page was free (SQLite keeps unused pages): nothing was damaged.
        eprintln!("[faults] the overwritten page held nothing");
        return recovers(p);
    }
    for args in [&["tags"][..], &["versions"], &["status"], &["run"]] {
        let run = p.mlbuild_offline(args);
        assert_eq!(run.code, 1, "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("the state database is damaged"),
            "{args:?}: {}",
            run.stderr
        );
        assert_eq!(std::fs::read(&db).unwrap(), damaged, "{args:?} wrote to it");
    }
    std::fs::rename(&db, p.file("cache/state.db.damaged")).unwrap();
    recovers(p);
}
