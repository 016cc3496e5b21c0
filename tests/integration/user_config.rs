//! The user config (`MLBUILD_CONFIG`, else `~/.config/mlbuild/config.toml`): the state DB and
//! the remote cache live outside the project (DESIGN.md §3.5; docs/config.md "User config").

use crate::support::*;

fn with_config(p: &Project, config: &str, args: &[&str]) -> Run {
    std::fs::create_dir_all(p.file("user")).unwrap();
    p.write("user/config.toml", config);
    use std::os::unix::fs::PermissionsExt;
    let path = p.file("user/config.toml");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = p.command(args);
    cmd.env("MLBUILD_CONFIG", p.file("user/config.toml"))
        .env("MLBUILD_H2O_URL", "http://127.0.0.1:9");
    Run::from(cmd.output().unwrap())
}

#[test]
fn the_user_config_names_the_state_db_and_the_remote() {
    let p = trained().clone_trained();
    std::fs::create_dir_all(p.file("elsewhere")).unwrap();
    let db = p.file("elsewhere/team.db");
    let config = format!(
        "state_url = \"sqlite://{}\"\n[remote]\nurl = \"http://127.0.0.1:9/mlbuild\"\ntoken = \"t0k\"\n",
        db.display()
    );
    let mojo = repo_root().join("tests/fixtures/mojo/gbm_bin.zip");
    with_config(
        &p,
        &config,
        &["deploy", "--mojo", mojo.to_str().unwrap(), "--tag", "prod"],
    )
    .ok();
    assert!(db.is_file(), "the registry is the user config's database");
    let tags = with_config(&p, &config, &["tags", "--json"]).ok();
    assert!(tags.stdout.contains("\"prod\""), "{}", tags.stdout);
    // Without the user config the project's own registry is used.
    let own = Run::from(p.command(&["tags", "--json"]).output().unwrap()).ok();
    assert!(!own.stdout.contains("\"prod\""), "{}", own.stdout);

    // The remote comes from the user config: `cache push` talks to it (and it is down).
    let push = with_config(&p, &config, &["cache", "push"]);
    assert!(
        push.stderr.contains("127.0.0.1:9"),
        "the user config's remote was used: {}",
        push.stderr
    );
    // A token in a file others can read is worth a warning.
    let path = p.file("user/config.toml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut cmd = p.command(&["tags"]);
    cmd.env("MLBUILD_CONFIG", &path);
    let warned = Run::from(cmd.output().unwrap()).ok();
    assert!(warned.stderr.contains("chmod 600"), "{}", warned.stderr);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let mut cmd = p.command(&["tags"]);
    cmd.env("MLBUILD_CONFIG", &path);
    let quiet = Run::from(cmd.output().unwrap()).ok();
    assert!(!quiet.stderr.contains("chmod"), "{}", quiet.stderr);
}

#[test]
fn a_malformed_user_config_is_an_error_with_its_place() {
    let p = Project::from_fixture("prostate");
    let run = with_config(
        &p,
        "[remote]\nurl = \"https://c\"\ntokn = \"x\"\n",
        &["status"],
    );
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("config.toml:3:1: unknown field `tokn`")
            && run.stderr.contains("hint:"),
        "{}",
        run.stderr
    );
}
