//! The run second by second: orders placed and errors (from the load), queue depths
//! (sampled from the management API), and the faults as windows; drawn as a PNG.

use std::sync::Mutex;
use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Utc};
use plotters::prelude::*;

use crate::chart_png::{self, FAMILY, drawing};

/// One second of the run.
#[derive(Clone, Debug, Default)]
pub struct Second {
    pub placed: u32,
    pub errors: u32,
    /// Messages in the work queues (ready + unacknowledged); `None`: broker away.
    pub depth: Option<u64>,
    /// In the retry queues.
    pub retrying: Option<u64>,
    /// In the dead-letter queues.
    pub dead: Option<u64>,
}

/// A fault's window: from its first action until the last one (a restart: until the
/// server answers again).
#[derive(Clone, Debug)]
pub struct Window {
    pub scenario: String,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

pub struct Timeline {
    started: Instant,
    pub started_at: DateTime<Utc>,
    seconds: Mutex<Vec<Second>>,
    windows: Mutex<Vec<Window>>,
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            started: Instant::now(),
            started_at: Utc::now(),
            seconds: Mutex::default(),
            windows: Mutex::default(),
        }
    }

    /// Change the current second.
    pub fn at_now(&self, change: impl FnOnce(&mut Second)) {
        let i = self.started.elapsed().as_secs() as usize;
        if let Ok(mut seconds) = self.seconds.lock() {
            if seconds.len() <= i {
                seconds.resize(i + 1, Second::default());
            }
            change(&mut seconds[i]);
        }
    }

    pub fn add_window(&self, window: Window) {
        if let Ok(mut w) = self.windows.lock() {
            w.push(window);
        }
    }

    pub fn windows(&self) -> Vec<Window> {
        self.windows.lock().map(|w| w.clone()).unwrap_or_default()
    }

    pub fn seconds(&self) -> Vec<Second> {
        self.seconds.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn offset(&self, at: DateTime<Utc>) -> f64 {
        (at - self.started_at).num_milliseconds() as f64 / 1000.0
    }

    /// The PNG: orders and errors per second above, queue depths below, each fault a
    /// shaded band with its name.
    pub fn png(&self, title: &str, width: u32, height: u32) -> Result<Vec<u8>> {
        let seconds = self.seconds();
        let bands: Vec<(f64, f64, String)> = self
            .windows()
            .iter()
            .map(|w| {
                (
                    self.offset(w.start),
                    self.offset(w.end).max(self.offset(w.start) + 1.0),
                    w.scenario.clone(),
                )
            })
            .collect();
        chart_png::png(width, height, |root| {
            let root = root.titled(title, (FAMILY, 20)).map_err(drawing)?;
            let (top, bottom) = root.split_vertically((50).percent());
            let end = seconds.len().max(1) as f64;
            let per_second =
                |f: fn(&Second) -> Option<f64>| -> Vec<Vec<(f64, f64)>> { runs(&seconds, f) };
            panel(
                &top,
                "Orders placed and failed requests per second",
                "per second",
                end,
                &bands,
                &[
                    (
                        "orders placed/s",
                        GREEN.mix(0.9),
                        per_second(|s| Some(f64::from(s.placed))),
                    ),
                    (
                        "errors/s (every failed attempt)",
                        RED.mix(0.9),
                        per_second(|s| Some(f64::from(s.errors))),
                    ),
                ],
            )?;
            panel(
                &bottom,
                "Queue depths (ready + unacknowledged; gaps: broker away)",
                "messages",
                end,
                &bands,
                &[
                    (
                        "work queues",
                        BLUE.mix(0.9),
                        per_second(|s| s.depth.map(|d| d as f64)),
                    ),
                    (
                        "retry queues",
                        RGBColor(255, 127, 14).mix(0.9),
                        per_second(|s| s.retrying.map(|d| d as f64)),
                    ),
                    (
                        "dead-letter queues",
                        BLACK.mix(0.9),
                        per_second(|s| s.dead.map(|d| d as f64)),
                    ),
                ],
            )
        })
    }
}

/// The seconds where `f` has a value, as runs of consecutive points (a gap breaks the line).
fn runs(seconds: &[Second], f: fn(&Second) -> Option<f64>) -> Vec<Vec<(f64, f64)>> {
    let mut out: Vec<Vec<(f64, f64)>> = vec![Vec::new()];
    for (i, s) in seconds.iter().enumerate() {
        match f(s) {
            Some(v) => out.last_mut().map_or((), |run| run.push((i as f64, v))),
            None => out.push(Vec::new()),
        }
    }
    out.retain(|r| !r.is_empty());
    out
}

type Series = (&'static str, RGBAColor, Vec<Vec<(f64, f64)>>);

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    end: f64,
    bands: &[(f64, f64, String)],
    series: &[Series],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let top = series
        .iter()
        .flat_map(|(_, _, runs)| runs.iter().flatten().map(|(_, v)| *v))
        .fold(5.0_f64, f64::max)
        * 1.2;
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(caption, (FAMILY, 16))
        .x_label_area_size(32)
        .y_label_area_size(60)
        .build_cartesian_2d(0.0..end, 0.0..top)
        .map_err(drawing)?;
    chart_png::style_mesh(
        &mut chart.configure_mesh(),
        "seconds since the load started",
        y_desc,
    )
    .draw()
    .map_err(drawing)?;
    for (i, (start, stop, label)) in bands.iter().enumerate() {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*start, 0.0), (*stop, top)],
                RGBColor(255, 200, 200).mix(0.45).filled(),
            )))
            .map_err(drawing)?;
        // Labels alternate between two heights so that close windows stay readable.
        let y = if i % 2 == 0 { 0.96 } else { 0.90 } * top;
        chart
            .draw_series(std::iter::once(Text::new(
                label.clone(),
                (*start, y),
                (FAMILY, 11).into_font().color(&BLACK.mix(0.8)),
            )))
            .map_err(drawing)?;
    }
    for (label, colour, runs) in series {
        let colour = *colour;
        let mut first = true;
        for run in runs {
            let drawn = chart
                .draw_series(LineSeries::new(run.iter().copied(), colour.stroke_width(2)))
                .map_err(drawing)?;
            if first {
                drawn.label(*label).legend(chart_png::legend_mark(colour));
                first = false;
            }
        }
    }
    chart_png::draw_legend(&mut chart, SeriesLabelPosition::UpperRight)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_in_the_samples_breaks_the_line() {
        let s = |d: Option<u64>| Second {
            depth: d,
            ..Second::default()
        };
        let seconds = [s(Some(1)), s(Some(2)), s(None), s(Some(4))];
        let r = runs(&seconds, |s| s.depth.map(|d| d as f64));
        assert_eq!(r, vec![vec![(0.0, 1.0), (1.0, 2.0)], vec![(3.0, 4.0)]]);
    }

    #[test]
    fn the_timeline_draws_a_png() {
        let t = Timeline::new();
        t.at_now(|s| s.placed += 3);
        t.add_window(Window {
            scenario: "rabbitmq-kill".into(),
            start: t.started_at,
            end: Utc::now(),
        });
        let png = t.png("test", 400, 300).unwrap();
        assert_eq!(&png[1..4], b"PNG");
    }
}
