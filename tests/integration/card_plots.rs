//! The model card's SVG plots, stored with the version (issue #5 point 3; docs/card.md).

use serde_json::Value;

use crate::support::*;

fn json(run: Run) -> Value {
    serde_json::from_str(&run.ok().stdout).unwrap()
}

#[test]
fn a_registered_version_lists_its_plots_and_each_is_an_svg_blob_the_card_links() {
    let p = trained().clone_trained();
    let versions = json(p.mlbuild_offline(&["versions", "--json"]));
    let id = versions[0]["id"].as_str().unwrap();
    let doc = json(p.mlbuild_offline(&["show", id, "--json"]));
    let plots = doc["provenance"]["plots"]
        .as_object()
        .unwrap_or_else(|| panic!("no provenance.plots: {doc}"));
    // prostate is a binary problem with SHAP: leaderboard, ROC and SHAP importance.
    let names: Vec<&str> = plots.keys().map(String::as_str).collect();
    assert_eq!(names, ["leaderboard", "roc", "shap"], "{doc}");
    let card = std::fs::read_to_string(doc["card_path"].as_str().unwrap()).unwrap();
    for (name, digest) in plots {
        let digest = digest.as_str().unwrap();
        let blob = p.file(&format!("cache/v1/cas/{}/{digest}", &digest[..2]));
        let bytes = std::fs::read(&blob).unwrap_or_else(|e| panic!("{name}: {blob:?}: {e}"));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), digest, "{name}");
        let svg = String::from_utf8(bytes).unwrap();
        assert!(
            svg.starts_with("<svg"),
            "{name}: {}",
            &svg[..80.min(svg.len())]
        );
        assert!(svg.trim_end().ends_with("</svg>"), "{name}");
        assert!(
            card.contains(&format!(
                "](plots/{name}-{}.svg)\n\nblob `{digest}`",
                &digest[..12]
            )),
            "{name} is not linked in the card:\n{card}"
        );
    }

    // `show --export DIR` writes the card and its plots where the card's links point.
    p.mlbuild_offline(&["show", id, "--export", "exported"])
        .ok();
    let exported = std::fs::read_to_string(p.file("exported/card.md")).unwrap();
    assert_eq!(exported, card);
    for (name, digest) in plots {
        let digest = digest.as_str().unwrap();
        let file = p.file(&format!("exported/plots/{name}-{}.svg", &digest[..12]));
        let bytes = std::fs::read(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
        assert_eq!(blake3::hash(&bytes).to_hex().as_str(), digest);
    }
}
