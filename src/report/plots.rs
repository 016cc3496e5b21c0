//! The model card's plots: SVG documents drawn with `plotters`' SVG backend.
//!
//! | plot | function | what it shows |
//! |---|---|---|
//! | `leaderboard` | [`leaderboard`] | the sort metric of the first [`TOP_N`] AutoML models, leader highlighted |
//! | `shap` | [`shap_importance`] | mean \|contribution\| of the [`TOP_N`] most important features |
//! | `roc` | [`holdout`] (binary, multiclass) | ROC of the leader on the holdout; one-vs-rest per class for multiclass |
//! | `residuals` | [`holdout`] (regression) | actual − predicted against predicted on the holdout, with the zero line |
//!
//! Every function is pure and deterministic: the same input gives byte-identical SVG. The SVG
//! backend writes integer pixel coordinates, no ids and no timestamps, and writes text as
//! `<text>` elements, so no font files (and no fontconfig/freetype) are involved; text widths are
//! estimated from the character count, so a long label may be laid out a little loosely.
//!
//! The holdout plot reads its data with `crate::metrics`' readers, like monitor does, so the
//! rows, the class domain and the probability columns are the ones the holdout metrics used;
//! its AUC is [`metrics::binary_curve`]'s, the value monitor reports. Limits, to keep a card
//! small: at most [`TOP_N`] bars, [`MAX_CLASSES`] one-vs-rest curves (the classes with the most
//! holdout rows), [`MAX_CURVE_POINTS`] points per drawn curve (the AUC uses every point) and
//! [`MAX_SCATTER_POINTS`] residual points (an even stride over the rows, said in the caption).
//! `docs/card.md` describes the plots for users.

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::h2o::Leaderboard;
use crate::metrics::{self, MetricsError, Task};

/// Bars in the leaderboard and SHAP plots.
pub const TOP_N: usize = 20;
/// One-vs-rest ROC curves drawn for a multiclass task.
pub const MAX_CLASSES: usize = 10;
/// Points drawn per ROC curve (evenly thinned beyond; the AUC is exact).
pub const MAX_CURVE_POINTS: usize = 1000;
/// Points drawn in the residual plot (an even stride over the holdout rows beyond).
pub const MAX_SCATTER_POINTS: usize = 2000;

const FONT: &str = "sans-serif";
const BAR: RGBColor = RGBColor(31, 119, 180);
const LEADER: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);
/// Tableau 10: one colour per curve, [`MAX_CLASSES`] of them.
const PALETTE: [RGBColor; MAX_CLASSES] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("nothing to plot: {0}")]
    Empty(String),
    #[error(transparent)]
    Data(#[from] MetricsError),
    #[error("drawing the SVG: {0}")]
    Draw(String),
}

/// Bars of `metric` for the first [`TOP_N`] models of the leaderboard (best first, as AutoML
/// sorted them), the leader (first row) in red. Models without a finite value are left out.
pub fn leaderboard(lb: &Leaderboard, metric: &str) -> Result<String, PlotError> {
    let bars: Vec<Bar> = lb
        .rows
        .iter()
        .take(TOP_N)
        .enumerate()
        .filter_map(|(i, row)| {
            let value = row.metrics.get(metric).copied().filter(|v| v.is_finite())?;
            Some(Bar {
                label: short_model_id(&row.model_id),
                value,
                color: if i == 0 { LEADER } else { BAR },
            })
        })
        .collect();
    if bars.is_empty() {
        return Err(PlotError::Empty(format!(
            "no model on the leaderboard has a `{metric}` value"
        )));
    }
    let direction = if crate::config::metric_is_higher_better(metric) {
        "higher is better"
    } else {
        "lower is better"
    };
    let shown = if lb.rows.len() > TOP_N {
        format!(", first {TOP_N} of {} models", lb.rows.len())
    } else {
        String::new()
    };
    horizontal_bars(
        &format!("Leaderboard: holdout {metric} ({direction}{shown}); leader in red"),
        metric,
        &bars,
    )
}

/// Bars of mean |contribution| per feature, largest first, the [`TOP_N`] largest; `about` (how
/// they were computed: method, rows, classes) goes into the title.
pub fn shap_importance(importance: &[(String, f64)], about: &str) -> Result<String, PlotError> {
    let mut sorted: Vec<&(String, f64)> =
        importance.iter().filter(|(_, v)| v.is_finite()).collect();
    if sorted.is_empty() {
        return Err(PlotError::Empty("no feature has an importance".into()));
    }
    sorted.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let shown = if sorted.len() > TOP_N {
        format!(", top {TOP_N} of {} features", sorted.len())
    } else {
        String::new()
    };
    let bars: Vec<Bar> = sorted
        .iter()
        .take(TOP_N)
        .map(|(name, v)| Bar {
            label: shorten(name, 40),
            value: *v,
            color: BAR,
        })
        .collect();
    horizontal_bars(
        &format!("SHAP importance ({about}): mean |contribution| per feature{shown}"),
        "mean |contribution|",
        &bars,
    )
}

/// The holdout plot of the leader, ROC or residuals by the task: `actual` is the holdout's
/// target column as [`metrics::read_column`] reads it, `predictions_csv` H2O's prediction frame
/// for the same rows. Rows with a missing actual are left out, as in the holdout metrics.
#[allow(
    clippy::too_many_lines,
    reason = "one plot: axes, series and labels drawn in sequence"
)]
pub fn holdout(
    task: &Task,
    actual: &[Option<String>],
    predictions_csv: &[u8],
) -> Result<String, PlotError> {
    let table = metrics::read_predictions(predictions_csv)?;
    if table.len() != actual.len() {
        return Err(MetricsError::RowCountMismatch {
            actual: actual.len(),
            predictions: table.len(),
        }
        .into());
    }
    // A column of the prediction CSV as numbers, `None` where the actual is missing.
    let numbers = |column: &str| -> Result<Vec<Option<f64>>, PlotError> {
        let cells = metrics::read_column(predictions_csv, column)?;
        actual
            .iter()
            .zip(cells)
            .enumerate()
            .map(|(row, (a, cell))| match (a, cell) {
                (None, _) => Ok(None),
                (Some(_), cell) => {
                    let text = cell.unwrap_or_default();
                    match text.trim().parse::<f64>() {
                        Ok(v) if v.is_finite() => Ok(Some(v)),
                        _ => Err(MetricsError::ParseNumber {
                            column: column.to_string(),
                            row: row + 1,
                            value: text,
                        }
                        .into()),
                    }
                }
            })
            .collect()
    };
    let probability = |class: &str| -> Result<Vec<Option<f64>>, PlotError> {
        let col = table.probability_column(class).ok_or_else(|| {
            MetricsError::MissingProbabilityColumn {
                class: class.to_string(),
                available: table.columns().to_vec(),
            }
        })?;
        numbers(&table.columns()[col])
    };
    let rows = actual.iter().filter(|a| a.is_some()).count();
    if rows == 0 {
        return Err(MetricsError::NoRows {
            skipped: actual.len(),
        }
        .into());
    }
    match task {
        Task::Regression => {
            let predicted = numbers("predict")?;
            let mut pairs = Vec::with_capacity(rows);
            for (row, (a, p)) in actual.iter().zip(predicted).enumerate() {
                if let (Some(a), Some(p)) = (a, p) {
                    let y = a.trim().parse::<f64>().ok().filter(|v| v.is_finite());
                    let y = y.ok_or_else(|| MetricsError::ParseNumber {
                        column: "<actual>".into(),
                        row: row + 1,
                        value: a.clone(),
                    })?;
                    pairs.push((y, p));
                }
            }
            let (y, p): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
            residuals(&y, &p)
        }
        Task::Binary { positive, .. } => {
            let scores = probability(positive)?;
            let scored = one_vs_rest(actual, &scores, positive);
            roc(
                &format!("ROC on the holdout, positive class `{positive}` (n={rows})"),
                &[(format!("`{positive}`"), scored)],
            )
        }
        Task::Multiclass { classes } => {
            // The classes with the most holdout rows, drawn in domain order.
            let mut by_count: Vec<(usize, usize)> = classes
                .iter()
                .enumerate()
                .map(|(i, c)| (i, actual.iter().filter(|a| a.as_deref() == Some(c)).count()))
                .collect();
            by_count.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut chosen: Vec<usize> = by_count.iter().take(MAX_CLASSES).map(|c| c.0).collect();
            chosen.sort_unstable();
            let mut curves = Vec::with_capacity(chosen.len());
            for i in chosen {
                let class = &classes[i];
                let scores = probability(class)?;
                curves.push((format!("`{class}`"), one_vs_rest(actual, &scores, class)));
            }
            let shown = if classes.len() > MAX_CLASSES {
                format!(", the {MAX_CLASSES} largest of {} classes", classes.len())
            } else {
                String::new()
            };
            roc(
                &format!("One-vs-rest ROC on the holdout (n={rows}{shown})"),
                &curves,
            )
        }
    }
}

/// `(score, actual is class)` for the rows with an actual value.
fn one_vs_rest(actual: &[Option<String>], scores: &[Option<f64>], class: &str) -> Vec<(f64, bool)> {
    actual
        .iter()
        .zip(scores)
        .filter_map(|(a, s)| Some((((*s)?), a.as_deref()? == class)))
        .collect()
}

/// The exact ROC curve of `(score, is_positive)` pairs as `(false positive rate, true positive
/// rate)` points from `(0, 0)` to `(1, 1)`: one point per distinct score, swept from high to
/// low, tied scores moving together (a diagonal step). Empty without both classes.
pub fn roc_points(scored: &[(f64, bool)]) -> Vec<(f64, f64)> {
    let mut v = scored.to_vec();
    v.sort_by(|a, b| b.0.total_cmp(&a.0));
    let pos = v.iter().filter(|x| x.1).count() as f64;
    let neg = v.len() as f64 - pos;
    if pos == 0.0 || neg == 0.0 {
        return Vec::new();
    }
    let mut points = vec![(0.0, 0.0)];
    let (mut tp, mut fp) = (0.0, 0.0);
    for group in v.chunk_by(|a, b| a.0 == b.0) {
        let p = group.iter().filter(|x| x.1).count() as f64;
        tp += p;
        fp += group.len() as f64 - p;
        points.push((fp / neg, tp / pos));
    }
    points
}

/// ROC curves on one chart with the chance diagonal: one `(label, scored)` per curve, `scored`
/// as `(score, is_positive)`; the legend gives each curve's AUC. A curve without both classes
/// is listed in the legend as undefined and not drawn.
pub fn roc(title: &str, curves: &[(String, Vec<(f64, bool)>)]) -> Result<String, PlotError> {
    let drawn: Vec<(String, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(label, scored)| {
            let auc = metrics::binary_curve(scored).auc;
            let label = if auc.is_finite() {
                format!("{label} AUC {auc:.4}")
            } else {
                format!("{label} AUC undefined (one class only)")
            };
            (label, thin(roc_points(scored), MAX_CURVE_POINTS))
        })
        .collect();
    if drawn.iter().all(|(_, p)| p.is_empty()) {
        return Err(PlotError::Empty(
            "the holdout does not have both classes for any curve".into(),
        ));
    }
    svg((640, 560), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 18))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(56)
            .build_cartesian_2d(0f64..1f64, 0f64..1f64)?;
        chart
            .configure_mesh()
            .x_desc("false positive rate")
            .y_desc("true positive rate")
            .draw()?;
        chart.draw_series(LineSeries::new(
            [(0.0, 0.0), (1.0, 1.0)],
            GREY.stroke_width(1),
        ))?;
        for (i, (label, points)) in drawn.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            chart
                .draw_series(LineSeries::new(
                    points.iter().copied(),
                    color.stroke_width(2),
                ))?
                .label(label.as_str())
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 20, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.9))
            .border_style(BLACK)
            .label_font((FONT, 13))
            .draw()?;
        Ok(())
    })
}

/// Residual (actual − predicted) against predicted, one point per row (at most
/// [`MAX_SCATTER_POINTS`], an even stride over the rows), with the zero line.
pub fn residuals(actual: &[f64], predicted: &[f64]) -> Result<String, PlotError> {
    if actual.len() != predicted.len() {
        return Err(MetricsError::RowCountMismatch {
            actual: actual.len(),
            predictions: predicted.len(),
        }
        .into());
    }
    if actual.is_empty() {
        return Err(PlotError::Empty("no holdout rows".into()));
    }
    let n = actual.len();
    let points: Vec<(f64, f64)> = actual
        .iter()
        .zip(predicted)
        .map(|(a, p)| (*p, a - p))
        .collect();
    let rmse = (points.iter().map(|(_, r)| r * r).sum::<f64>() / n as f64).sqrt();
    let points = thin(points, MAX_SCATTER_POINTS);
    let shown = if points.len() < n {
        format!(", {} of {n} rows shown", points.len())
    } else {
        format!(", n={n}")
    };
    let (x0, x1) = padded(points.iter().map(|p| p.0));
    let (y0, y1) = padded(points.iter().map(|p| p.1).chain([0.0]));
    svg((720, 480), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(
                format!("Residuals on the holdout (RMSE {rmse:.4}{shown})"),
                (FONT, 18),
            )
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(64)
            .build_cartesian_2d(x0..x1, y0..y1)?;
        chart
            .configure_mesh()
            .x_desc("predicted")
            .y_desc("residual (actual - predicted)")
            .draw()?;
        chart.draw_series(
            points
                .iter()
                .map(|p| Circle::new(*p, 2, BAR.mix(0.6).filled())),
        )?;
        chart.draw_series(LineSeries::new(
            [(x0, 0.0), (x1, 0.0)],
            LEADER.stroke_width(1),
        ))?;
        Ok(())
    })
}

/// A model id without AutoML's run suffix (`_AutoML_1_20261126_65640`), which every model of a
/// run shares, cut to 40 characters: `GBM_grid_1_AutoML_1_20261126_65640_model_3` →
/// `GBM_grid_1_model_3`.
pub fn short_model_id(id: &str) -> String {
    static SUFFIX: std::sync::OnceLock<regex::Regex> = std::sync::OnceLock::new();
    let re = SUFFIX.get_or_init(|| regex::Regex::new(r"_AutoML_\d+_\d+_\d+").expect("valid regex"));
    shorten(&re.replace(id, ""), 40)
}

fn shorten(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

/// At most `max` items: every one when there are few enough, else an even stride that keeps
/// the first and the last.
fn thin<T: Copy>(v: Vec<T>, max: usize) -> Vec<T> {
    if v.len() <= max || max < 2 {
        return v;
    }
    let last = v.len() - 1;
    (0..max).map(|i| v[i * last / (max - 1)]).collect()
}

/// The range of `values` with 5% room on each side (±1 around a single value).
fn padded(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
        (lo.min(v), hi.max(v))
    });
    if !lo.is_finite() || !hi.is_finite() {
        return (-1.0, 1.0);
    }
    let pad = if hi > lo { (hi - lo) * 0.05 } else { 1.0 };
    (lo - pad, hi + pad)
}

struct Bar {
    label: String,
    value: f64,
    color: RGBColor,
}

/// Horizontal bars, the first at the top, each with its value at its end.
fn horizontal_bars(title: &str, x_desc: &str, bars: &[Bar]) -> Result<String, PlotError> {
    let n = bars.len();
    let longest = bars
        .iter()
        .map(|b| b.label.chars().count())
        .max()
        .unwrap_or(0);
    let label_width = (longest as u32 * 7 + 16).clamp(60, 320);
    let height = 110 + 26 * n as u32;
    let lo = bars.iter().map(|b| b.value).fold(0.0, f64::min);
    let hi = bars.iter().map(|b| b.value).fold(0.0, f64::max);
    // Room for the value written after the longest bar.
    let span = if hi > lo { hi - lo } else { 1.0 };
    let (x0, x1) = (
        if lo < 0.0 { lo - span * 0.2 } else { 0.0 },
        hi + span * 0.2,
    );
    // Row `i` of the chart's y range is bar `n - 1 - i`: the first bar is drawn at the top.
    let row = |i: usize| (n - 1 - i) as f64;
    svg((820, height), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(title, (FONT, 17))
            .margin(16)
            .x_label_area_size(44)
            .y_label_area_size(label_width)
            .build_cartesian_2d(x0..x1, 0f64..n as f64)?;
        // The y axis has no ticks: each bar's label is written beside it below.
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(0)
            .x_desc(x_desc)
            .draw()?;
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            Rectangle::new(
                [(0.0, row(i) + 0.15), (b.value, row(i) + 0.85)],
                b.color.filled(),
            )
        }))?;
        let value_style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
        chart.draw_series(bars.iter().enumerate().map(|(i, b)| {
            EmptyElement::at((b.value.max(0.0), row(i) + 0.5))
                + Text::new(format!("{:.4}", b.value), (4, 0), value_style.clone())
        }))?;
        let label_style =
            TextStyle::from((FONT, 12).into_font()).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, b) in bars.iter().enumerate() {
            let (x, y) = chart.backend_coord(&(x0, row(i) + 0.5));
            root.draw(&Text::new(
                b.label.as_str(),
                (x - 8, y),
                label_style.clone(),
            ))?;
        }
        Ok(())
    })
}

type DrawResult = Result<(), Box<dyn std::error::Error>>;

/// Draws on an SVG canvas of `size` with a white background and returns the document.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> DrawResult,
) -> Result<String, PlotError> {
    let mut buf = String::new();
    {
        let root = SVGBackend::with_string(&mut buf, size).into_drawing_area();
        let drawn = root
            .fill(&WHITE)
            .map_err(Into::into)
            .and_then(|()| draw(&root))
            .and_then(|()| root.present().map_err(Into::into));
        drawn.map_err(|e| PlotError::Draw(e.to_string()))?;
    }
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::h2o::LeaderboardRow;

    fn lb() -> Leaderboard {
        let row = |id: &str, algo: &str, auc: f64| LeaderboardRow {
            model_id: id.into(),
            algo: algo.into(),
            metrics: BTreeMap::from([("auc".to_string(), auc)]),
        };
        Leaderboard {
            sort_metric: "auc".into(),
            columns: vec!["model_id".into(), "auc".into(), "algo".into()],
            rows: vec![
                row(
                    "StackedEnsemble_AllModels_1_AutoML_1_20261126_65640",
                    "StackedEnsemble",
                    0.919,
                ),
                row("GBM_grid_1_AutoML_1_20261126_65640_model_3", "GBM", 0.91),
                row("XGBoost_2_AutoML_1_20261126_65640", "XGBoost", 0.9),
            ],
        }
    }

    fn is_svg(s: &str) {
        assert!(s.starts_with("<svg"), "{}", &s[..s.len().min(200)]);
        assert!(
            s.trim_end().ends_with("</svg>"),
            "{}",
            &s[s.len().saturating_sub(200)..]
        );
    }

    #[test]
    fn model_ids_lose_the_automl_suffix() {
        assert_eq!(
            short_model_id("GBM_grid_1_AutoML_1_20261126_65640_model_3"),
            "GBM_grid_1_model_3"
        );
        assert_eq!(
            short_model_id("StackedEnsemble_AllModels_1_AutoML_1_20261126_65640"),
            "StackedEnsemble_AllModels_1"
        );
        assert_eq!(short_model_id("my_model"), "my_model");
        assert_eq!(short_model_id(&"x".repeat(50)).chars().count(), 40);
    }

    #[test]
    fn leaderboard_names_the_models_highlights_the_leader_and_is_deterministic() {
        let svg = leaderboard(&lb(), "auc").unwrap();
        is_svg(&svg);
        for id in [
            "StackedEnsemble_AllModels_1",
            "GBM_grid_1_model_3",
            "XGBoost_2",
        ] {
            assert!(svg.contains(id), "{id} missing");
        }
        assert!(svg.contains("0.9190"), "the value is written");
        assert!(svg.contains("higher is better"));
        // One red (leader) bar, two blue ones.
        assert_eq!(svg.matches("fill=\"#D62728\"").count(), 1, "{svg}");
        assert_eq!(svg.matches("fill=\"#1F77B4\"").count(), 2, "{svg}");
        assert_eq!(svg, leaderboard(&lb(), "auc").unwrap());
        assert!(matches!(
            leaderboard(&lb(), "rmse"),
            Err(PlotError::Empty(_))
        ));
    }

    #[test]
    fn leaderboard_shows_the_first_twenty() {
        let mut board = lb();
        let template = board.rows[2].clone();
        board.rows = (0..30)
            .map(|i| {
                let mut r = template.clone();
                r.model_id = format!("GBM_{i}_AutoML_1_20261126_65640");
                r.metrics.insert("auc".into(), 0.9 - i as f64 / 100.0);
                r
            })
            .collect();
        let svg = leaderboard(&board, "auc").unwrap();
        assert!(svg.contains(">\nGBM_19\n<"), "{svg}");
        assert!(!svg.contains(">\nGBM_20\n<"));
        assert!(svg.contains("first 20 of 30 models"));
        // A single model is one bar.
        board.rows.truncate(1);
        let svg = leaderboard(&board, "auc").unwrap();
        assert!(svg.contains(">\nGBM_0\n<"), "{svg}");
    }

    #[test]
    fn shap_bars_are_sorted_and_escaped() {
        let imp = vec![
            ("AGE".to_string(), 0.1),
            ("PSA".to_string(), 0.7),
            ("a<b&c".to_string(), 0.3),
        ];
        let svg = shap_importance(&imp, "TreeSHAP (native), 3 rows").unwrap();
        assert!(
            svg.contains("SHAP importance (TreeSHAP (native), 3 rows)"),
            "{svg}"
        );
        is_svg(&svg);
        let at = |s: &str| {
            svg.find(&format!(">\n{s}\n<"))
                .unwrap_or_else(|| panic!("{s}: {svg}"))
        };
        // Labels are written top-down, the largest first.
        assert!(at("PSA") < at("a&lt;b&amp;c") && at("a&lt;b&amp;c") < at("AGE"));
        assert_eq!(
            svg,
            shap_importance(&imp, "TreeSHAP (native), 3 rows").unwrap()
        );
        assert!(matches!(shap_importance(&[], ""), Err(PlotError::Empty(_))));
    }

    #[test]
    fn roc_points_are_exact_with_ties_moving_together() {
        // Perfect separation: straight up to (0, 1), then across.
        let perfect = [(0.9, true), (0.8, true), (0.3, false), (0.1, false)];
        assert_eq!(
            roc_points(&perfect),
            vec![(0.0, 0.0), (0.0, 0.5), (0.0, 1.0), (0.5, 1.0), (1.0, 1.0)]
        );
        assert_eq!(metrics::binary_curve(&perfect).auc, 1.0);
        // A tie of one positive and one negative is one diagonal step.
        let tied = [(0.9, true), (0.5, true), (0.5, false), (0.1, false)];
        assert_eq!(
            roc_points(&tied),
            vec![(0.0, 0.0), (0.0, 0.5), (0.5, 1.0), (1.0, 1.0)]
        );
        // The trapezoid area under the points is the Mann–Whitney AUC.
        let area: f64 = roc_points(&tied)
            .windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[1].1 + w[0].1) / 2.0)
            .sum();
        assert_eq!(area, metrics::binary_curve(&tied).auc);
        assert!(roc_points(&[(0.5, true)]).is_empty());
    }

    fn some(v: &[&str]) -> Vec<Option<String>> {
        v.iter().map(|s| Some(s.to_string())).collect()
    }

    #[test]
    fn binary_holdout_roc_has_the_auc_in_the_legend() {
        let task = Task::classification(["0", "1"]).unwrap();
        let preds = b"predict,p0,p1\n1,0.1,0.9\n1,0.2,0.8\n0,0.7,0.3\n0,0.9,0.1\n";
        let mut actual = some(&["1", "1", "0", "0"]);
        let svg = holdout(&task, &actual, preds).unwrap();
        is_svg(&svg);
        assert!(svg.contains("AUC 1.0000"), "{svg}");
        assert!(svg.contains("positive class `1` (n=4)"), "{svg}");
        assert_eq!(svg, holdout(&task, &actual, preds).unwrap());
        // A missing actual leaves the row out, even when its prediction is broken.
        let preds_broken = b"predict,p0,p1\n1,0.1,0.9\n1,0.2,0.8\n0,0.7,0.3\n0,0.9,oops\n";
        actual[3] = None;
        let svg = holdout(&task, &actual, preds_broken).unwrap();
        assert!(svg.contains("(n=3)"), "{svg}");
        actual[3] = Some("0".into());
        let e = holdout(&task, &actual, preds_broken).unwrap_err();
        assert!(e.to_string().contains("row 4, column `p1`"), "{e}");
        let e = holdout(&task, &actual[..2], preds).unwrap_err();
        assert!(e.to_string().contains("row count mismatch"), "{e}");
    }

    #[test]
    fn multiclass_holdout_roc_is_one_vs_rest_per_class() {
        let task = Task::classification(["a", "b", "c"]).unwrap();
        let preds = b"predict,a,b,c\na,0.7,0.2,0.1\nb,0.1,0.8,0.1\na,0.5,0.3,0.2\nc,0.2,0.2,0.6\n";
        let svg = holdout(&task, &some(&["a", "b", "b", "c"]), preds).unwrap();
        is_svg(&svg);
        for class in ["`a` AUC", "`b` AUC", "`c` AUC"] {
            assert!(svg.contains(class), "{class}: {svg}");
        }
        assert!(svg.contains("One-vs-rest"));
    }

    #[test]
    fn regression_holdout_plots_residuals() {
        let preds = b"predict\n1.5\n2\n2.5\n4\n";
        let svg = holdout(&Task::Regression, &some(&["1", "2", "3", "4"]), preds).unwrap();
        is_svg(&svg);
        assert_eq!(svg.matches("<circle").count(), 4, "{svg}");
        assert!(svg.contains("RMSE 0.3536"), "{svg}");
        assert_eq!(
            svg,
            holdout(&Task::Regression, &some(&["1", "2", "3", "4"]), preds).unwrap()
        );
        let e = holdout(&Task::Regression, &some(&["x"]), b"predict\n1\n").unwrap_err();
        assert!(e.to_string().contains("`x`"), "{e}");
    }

    #[test]
    fn residuals_thin_large_holdouts() {
        let n = 5000;
        let actual: Vec<f64> = (0..n).map(|i| i as f64).collect();
        let predicted: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
        let svg = residuals(&actual, &predicted).unwrap();
        assert_eq!(svg.matches("<circle").count(), MAX_SCATTER_POINTS);
        assert!(svg.contains("2000 of 5000 rows shown"));
    }

    #[test]
    fn thin_keeps_both_ends() {
        let v: Vec<usize> = (0..10).collect();
        assert_eq!(thin(v.clone(), 4), vec![0, 3, 6, 9]);
        assert_eq!(thin(v.clone(), 20), v);
    }
}
