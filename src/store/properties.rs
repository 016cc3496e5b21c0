//! Property and mutation tests of the store's parsers of untrusted bytes (harness:
//! `crate::hostile`, docs/testing.md):
//! - action-cache entries, read from the local cache ([`Store::ac_get`]) and from a remote
//!   cache ([`remote::Remote::entry`], against a stub HTTP server that answers the generated
//!   bytes): never a panic; an entry is accepted only when it parses, is for the key asked and
//!   (remote) names only digests, (local) names only blobs present;
//! - `ml.lock` ([`Lockfile::load`]): never a panic; an error names the file and the JSON
//!   position; a lock that loads writes back to a text that loads to the same lock.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;

use super::lockfile::Lockfile;
use super::{remote, AcLookup, ActionEntry, Store};
use crate::hostile::{self, mutate, repo_file, Input, Property, Rng};

fn digest(rng: &mut Rng) -> String {
    blake3::hash(&rng.next_u64().to_le_bytes())
        .to_hex()
        .to_string()
}

/// An entry as a step writes it, for `key`, naming `blobs` (or other strings).
fn entry_json(rng: &mut Rng, key: &str, blobs: &[String]) -> Vec<u8> {
    let mut outputs = serde_json::Map::new();
    for (i, b) in blobs.iter().enumerate() {
        let v = match rng.below(12) {
            0 => json!("../../etc/passwd"),
            1 => json!(digest(rng).to_uppercase()),
            2 => json!(rng.next_u64()),
            _ => json!(b),
        };
        outputs.insert(format!("out{i}"), v);
    }
    let doc = json!({
        "step": rng.pick(&["define", "locate", "prepare", "execute", "conclude"]),
        "key": if rng.percent(90) { key.to_string() } else { digest(rng) },
        "inputs": { "config": { "target": "CAPSULE", "n": rng.awkward_number() } },
        "outputs": outputs,
        "output_digests": { "mojo": digest(rng) },
        "result": { "verdict": rng.pick(&["pass", "fail"]), "metric": rng.next_u64() as f64 / 7.0 },
    });
    if rng.percent(50) {
        serde_json::to_vec_pretty(&doc).expect("JSON serialises")
    } else {
        serde_json::to_vec(&doc).expect("JSON serialises")
    }
}

fn entry_input(rng: &mut Rng, key: &str, blobs: &[String]) -> Input {
    let mut bytes = entry_json(rng, key, blobs);
    if rng.percent(60) {
        let how = mutate(rng, &mut bytes);
        Input::new(bytes, format!("an action entry, mutated: {how}"))
    } else {
        Input::new(bytes, "an action entry")
    }
}

#[test]
fn local_action_entries_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let blobs: Vec<String> = (0..3u8).map(|i| store.put_bytes(&[i]).unwrap()).collect();
    let key = blake3::hash(b"the key").to_hex().to_string();
    let file = store.entry_path(&key);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    let property = Property {
        parser: "action entry (local)",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "store::properties::local",
    };
    hostile::check(
        &property,
        |rng| entry_input(rng, &key, &blobs),
        |input| {
            std::fs::write(&file, &input.bytes).map_err(|e| e.to_string())?;
            Ok(match store.ac_get(&key) {
                AcLookup::Hit(entry) => {
                    if entry.key != key || entry.outputs.values().any(|d| !store.contains(d)) {
                        return Err(format!("accepted a wrong entry: {entry:?}"));
                    }
                    "hit"
                }
                AcLookup::Miss => "miss",
                AcLookup::Corrupt => "corrupt",
                AcLookup::OutputMissing(_) => "output missing",
            }
            .into())
        },
    );
}

/// A stub remote cache that answers every `GET` with the bytes in `answer`.
async fn stub(answer: Arc<Mutex<Vec<u8>>>) -> String {
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move { answer.lock().unwrap().clone() }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

#[test]
fn remote_action_entries_never_panic() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let answer = Arc::new(Mutex::new(Vec::new()));
    let base = runtime.block_on(stub(answer.clone()));
    let key = blake3::hash(b"the key").to_hex().to_string();
    let blobs: Vec<String> = (0..3u64)
        .map(|i| blake3::hash(&i.to_le_bytes()).to_hex().to_string())
        .collect();
    let property = Property {
        parser: "action entry (remote)",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "store::properties::remote",
    };
    let settings = remote::Settings {
        base,
        token: None,
        read_only: true,
        ca: None,
    };
    let client = Mutex::new(remote::Remote::new(&settings).unwrap());
    hostile::check(
        &property,
        |rng| entry_input(rng, &key, &blobs),
        |input| {
            *answer.lock().unwrap() = input.bytes.clone();
            let mut r = client.lock().unwrap();
            // A fresh client before the breaker opens (after three faults).
            if r.faults() + 1 >= remote::BREAKER {
                *r = remote::Remote::new(&settings).map_err(|e| e.to_string())?;
            }
            let before = r.faults();
            let got: Option<ActionEntry> = runtime.block_on(r.entry(&key));
            Ok(match got {
                Some(entry) => {
                    if entry.key != key || entry.outputs.values().any(|d| !super::is_digest(d)) {
                        return Err(format!("accepted a wrong entry: {entry:?}"));
                    }
                    "accepted"
                }
                None if r.faults() == before + 1 => "refused, one fault",
                None => return Err(format!("refused with {} new faults", r.faults() - before)),
            }
            .into())
        },
    );
}

const LOCKS: &[&str] = &[
    "ml.lock",
    "examples/iris/ml.lock",
    "examples/regression/ml.lock",
    "examples/text/ml.lock",
];

#[test]
fn lockfiles_never_panic_and_name_the_position() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("ml.lock");
    let property = Property {
        parser: "ml.lock",
        deadline: Duration::from_secs(5),
        memory: 64 << 20,
        reserved: 0,
        test_filter: "store::properties::lockfiles",
    };
    hostile::check(
        &property,
        |rng| {
            let seed = rng.pick(LOCKS);
            let mut bytes = repo_file(seed);
            let how = mutate(rng, &mut bytes);
            Input::new(bytes, format!("{seed} mutated: {how}"))
        },
        |input| {
            std::fs::write(&file, &input.bytes).map_err(|e| e.to_string())?;
            match Lockfile::load(&file) {
                Ok(Some(lock)) => {
                    let again: Lockfile = serde_json::from_str(&lock.to_text())
                        .map_err(|e| format!("a loaded lock does not read back: {e}"))?;
                    if again != lock {
                        return Err("a loaded lock reads back different".into());
                    }
                    Ok("loads".into())
                }
                Ok(None) => Err("a file that exists is `None`".into()),
                Err(e) => {
                    let message = e.to_string();
                    let named = message.contains(&file.display().to_string());
                    let placed = message.contains(" line ") && message.contains(" column ");
                    if named && (placed || message.contains("cannot read")) {
                        Ok("refused".into())
                    } else {
                        Err(format!(
                            "the error does not name the file and position: {message}"
                        ))
                    }
                }
            }
        },
    );
}
