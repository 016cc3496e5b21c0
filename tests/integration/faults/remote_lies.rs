//! A remote cache that lies (a real nginx WebDAV server whose files were tampered with): a
//! fresh checkout still runs, concludes the honest model, and never shows a forged fact.

use super::*;
use crate::remote::{forge, fresh_checkout, lock_key, offline, Nginx};

const LIES: [&str; 5] = [
    "a blob with a flipped byte",
    "a blob missing",
    "locate's entry naming another real blob",
    "execute's entry with forged metrics",
    "an entry that is not JSON",
];

#[test]
fn a_lying_remote_never_changes_the_model() {
    let mut rng = Rng::new("remote lies");
    let mut tally = Tally::new("lying remote");
    let a = trained().clone_trained();
    for i in 0..trials(3, 25) {
        let lie = LIES[(i * 2 + usize::from(i >= LIES.len())) % LIES.len()];
        let pick = rng.next();
        tally.trial(lie, || {
            let Some(nginx) = Nginx::start() else { return };
            offline(&a, &nginx.url(), None, &["cache", "push"]).ok();
            let mut rng = Rng(pick);
            let blobs: Vec<String> = std::fs::read_dir(nginx.file("cas"))
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            match lie {
                "a blob with a flipped byte" => {
                    let path = nginx.file(&format!("cas/{}", rng.pick(&blobs)));
                    let mut bytes = std::fs::read(&path).unwrap();
                    let at = rng.below(bytes.len() as u64) as usize;
                    bytes[at] ^= 0x20;
                    std::fs::write(&path, bytes).unwrap();
                }
                "a blob missing" => {
                    std::fs::remove_file(nginx.file(&format!("cas/{}", rng.pick(&blobs)))).unwrap()
                }
                "locate's entry naming another real blob" => {
                    let other = rng.pick(&blobs).clone();
                    forge(&nginx, &lock_key(&a, "locate"), |e| {
                        e["outputs"]["snapshot"] = other.clone().into();
                        e["output_digests"]["snapshot"] = other.into();
                    });
                }
                "execute's entry with forged metrics" => {
                    forge(&nginx, &lock_key(&a, "execute"), |e| {
                        let forged = forge_numbers(&e["result"]);
                        e["result"] = forged;
                    });
                }
                _ => {
                    let step = *rng.pick(&ALL_STEPS);
                    std::fs::write(nginx.file(&format!("ac/{}", lock_key(&a, step))), "{oops")
                        .unwrap();
                }
            }
            let c = fresh_checkout(&a);
            let mut cmd = command(&c, &["run", "--json"]);
            cmd.env("MLBUILD_REMOTE_CACHE", nginx.url())
                .env("MLBUILD_REMOTE_READ_ONLY", "1");
            let run = Run::from(cmd.output().unwrap());
            assert_eq!(run.code, 0, "{}", run.stderr);
            let version = run.done()["version"].as_str().unwrap().to_string();
            let honest = version_of(a_ref(&a), &baseline().version);
            let got = version_of(&c, &version);
            assert_eq!(got["canonical"], honest["canonical"]);
            assert_eq!(
                got["metrics"], honest["metrics"],
                "a forged metric was kept"
            );
            check_now(&c);
            recovers(&c);
        });
    }
}

fn a_ref(a: &Project) -> &Project {
    a
}

/// Every number in `v` changed (a believable forgery: still numbers, in range).
fn forge_numbers(v: &Value) -> Value {
    match v {
        Value::Number(n) => match n.as_f64() {
            Some(x) if n.is_f64() => Value::from(x * 0.5 + 0.25),
            Some(x) => Value::from(x as i64 + 1),
            None => v.clone(),
        },
        Value::Object(m) => m
            .iter()
            .map(|(k, v)| (k.clone(), forge_numbers(v)))
            .collect::<serde_json::Map<_, _>>()
            .into(),
        Value::Array(a) => a.iter().map(forge_numbers).collect(),
        _ => v.clone(),
    }
}
