//! A version's model card as HTML: its markdown rendered (pulldown-cmark) with raw HTML shown
//! as text, never interpreted, and its plot links pointed at the UI's plot route.

use pulldown_cmark::{html, CowStr, Event, Options, Parser, Tag};

/// The card's markdown as HTML; `plots/X.svg` links become `/models/VERSION/plots/X.svg`.
pub fn to_html(markdown: &str, version: &str) -> String {
    let parser = Parser::new_ext(markdown, Options::ENABLE_TABLES).map(|event| match event {
        // Column names and values come from the data: shown, never interpreted.
        Event::Html(text) | Event::InlineHtml(text) => Event::Text(text),
        Event::Start(Tag::Image {
            link_type,
            dest_url,
            title,
            id,
        }) => Event::Start(Tag::Image {
            link_type,
            dest_url: plot_url(dest_url, version),
            title,
            id,
        }),
        other => other,
    });
    let mut out = String::new();
    html::push_html(&mut out, parser);
    out
}

fn plot_url<'a>(dest: CowStr<'a>, version: &str) -> CowStr<'a> {
    match dest.strip_prefix("plots/") {
        Some(file) => CowStr::from(format!("/models/{version}/plots/{file}")),
        None => dest,
    }
}

#[cfg(test)]
mod tests {
    use super::to_html;

    #[test]
    fn plots_point_at_the_ui_and_html_is_text() {
        let html = to_html(
            "# Card\n\n![ROC](plots/roc-0123456789ab.svg)\n\ncolumn <script>x</script>\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
            "v1",
        );
        assert!(
            html.contains("<img src=\"/models/v1/plots/roc-0123456789ab.svg\" alt=\"ROC\""),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("<table>"), "{html}");
    }
}
