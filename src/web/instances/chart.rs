//! Usage history as inline SVG drawn on the server: a line per series (at most
//! 300 points, as `store::usage::series` buckets them), a text summary that
//! labels the image (min, average, max, current), and the numbers as a table
//! for anyone who cannot see the picture.

use chrono::{DateTime, Utc};

/// The drawing's coordinate space (the SVG scales to its box).
const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 200.0;
const LEFT: f64 = 72.0;
const RIGHT: f64 = 590.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 176.0;

pub struct Chart {
    /// `cpu` or `memory`: ids in the page and the series' CSS class.
    pub name: &'static str,
    pub title: &'static str,
    /// `points` attribute of the polyline; empty without data.
    pub points: String,
    /// The sentence that labels the image.
    pub summary: String,
    /// Value at the top of the y axis, as text.
    pub top_label: String,
    pub from_label: String,
    pub to_label: String,
    /// Y of the limit line, when the limit fits the chart.
    pub limit_y: Option<String>,
    /// (time, value) as text, for the table fallback.
    pub rows: Vec<(String, String)>,
    pub width: f64,
    pub height: f64,
    pub left: f64,
    pub right: f64,
    pub top: f64,
    pub bottom: f64,
}

/// How to show one series' numbers.
pub struct Series<'a> {
    pub name: &'static str,
    pub title: &'static str,
    pub values: &'a [(DateTime<Utc>, f64)],
    pub format: fn(f64) -> String,
    /// A ceiling to draw (the memory limit).
    pub limit: Option<f64>,
}

pub fn draw(series: Series<'_>, from: DateTime<Utc>, to: DateTime<Utc>) -> Chart {
    let values = series.values;
    let fmt = series.format;
    let peak = values.iter().map(|(_, v)| *v).fold(0.0_f64, f64::max);
    let scale_top = nice_ceiling(peak.max(series.limit.unwrap_or(0.0)));
    let span = (to - from).num_milliseconds().max(1) as f64;
    let x = |at: DateTime<Utc>| {
        let share = ((at - from).num_milliseconds() as f64 / span).clamp(0.0, 1.0);
        LEFT + share * (RIGHT - LEFT)
    };
    let y = |v: f64| BOTTOM - (v / scale_top).clamp(0.0, 1.0) * (BOTTOM - TOP);
    let points = values
        .iter()
        .map(|(at, v)| format!("{:.1},{:.1}", x(*at), y(*v)))
        .collect::<Vec<_>>()
        .join(" ");
    let summary = match values {
        [] => format!("{}: no samples in this range.", series.title),
        _ => {
            let min = values.iter().map(|(_, v)| *v).fold(f64::INFINITY, f64::min);
            let avg = values.iter().map(|(_, v)| *v).sum::<f64>() / values.len() as f64;
            let current = values.last().map(|(_, v)| *v).unwrap_or(0.0);
            format!(
                "{} over {} samples: minimum {}, average {}, maximum {}, latest {}.",
                series.title,
                values.len(),
                fmt(min),
                fmt(avg),
                fmt(peak),
                fmt(current)
            )
        }
    };
    let time = |t: DateTime<Utc>| {
        if span > 86_400_000.0 {
            t.format("%b %d %H:%M").to_string()
        } else {
            t.format("%H:%M").to_string()
        }
    };
    Chart {
        name: series.name,
        title: series.title,
        points,
        summary,
        top_label: fmt(scale_top),
        from_label: time(from),
        to_label: format!("{} UTC", time(to)),
        limit_y: series
            .limit
            .filter(|l| *l > 0.0)
            .map(|l| format!("{:.1}", y(l))),
        rows: values
            .iter()
            .map(|(at, v)| (at.format("%Y-%m-%d %H:%M:%S").to_string(), fmt(*v)))
            .collect(),
        width: WIDTH,
        height: HEIGHT,
        left: LEFT,
        right: RIGHT,
        top: TOP,
        bottom: BOTTOM,
    }
}

/// A round number at or above `v` (1, 2 or 5 times a power of ten), so the
/// axis reads easily; 1 for an empty series.
fn nice_ceiling(v: f64) -> f64 {
    if v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let magnitude = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * magnitude)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axis_tops_are_round_numbers_above_the_peak() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.2), 5.0);
        assert_eq!(nice_ceiling(12.0), 20.0);
        assert_eq!(nice_ceiling(100.0), 100.0);
    }

    #[test]
    fn a_series_is_drawn_inside_the_plot_with_a_summary_and_a_row_per_point() {
        let to = Utc::now();
        let from = to - chrono::Duration::hours(1);
        let values: Vec<_> = (0..300)
            .map(|i| (from + chrono::Duration::seconds(i * 12), i as f64 / 10.0))
            .collect();
        let chart = draw(
            Series {
                name: "cpu",
                title: "CPU",
                values: &values,
                format: |v| format!("{v:.1}%"),
                limit: None,
            },
            from,
            to,
        );
        assert_eq!(chart.points.split(' ').count(), 300);
        assert_eq!(chart.rows.len(), 300);
        assert!(chart.summary.contains("maximum 29.9%"), "{}", chart.summary);
        for p in chart.points.split(' ') {
            let (x, y) = p.split_once(',').unwrap();
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (LEFT..=RIGHT).contains(&x) && (TOP..=BOTTOM).contains(&y),
                "{p}"
            );
        }
        let empty = draw(
            Series {
                name: "cpu",
                title: "CPU",
                values: &[],
                format: |v| format!("{v:.1}%"),
                limit: None,
            },
            from,
            to,
        );
        assert!(empty.points.is_empty() && empty.summary.contains("no samples"));
    }
}
