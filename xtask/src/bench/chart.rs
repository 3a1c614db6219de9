//! The PNG: orders per second (left) and p99 latency (right) per number of clients,
//! a line per series (the peer's too), closed-loop steps only.

use anyhow::Result;
use plotters::prelude::*;

use super::report::{Report, StepReport};
use crate::chart_png::{self, FAMILY, drawing};
const WIDTH: u32 = 1400;
const HEIGHT: u32 = 620;
const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
];

/// (series, [(clients, value)]) for one figure of each closed-loop step.
type Lines = Vec<(String, Vec<(f64, f64)>)>;

fn lines(report: &Report, value: fn(&StepReport) -> Option<f64>) -> Lines {
    let mut out: Lines = Vec::new();
    for s in &report.steps {
        let (Some(clients), Some(value)) = (s.clients, value(s)) else {
            continue;
        };
        let point = (clients as f64, value);
        match out.iter_mut().find(|(name, _)| *name == s.series) {
            Some((_, points)) => points.push(point),
            None => out.push((s.series.clone(), vec![point])),
        }
    }
    out
}

pub fn png(report: &Report) -> Result<Vec<u8>> {
    let throughput = lines(report, |s| Some(s.orders_per_s));
    // A step without an answered order has no latency.
    let p99 = lines(report, |s| (s.orders > 0).then_some(s.latency_ms.p99));
    chart_png::png(WIDTH, HEIGHT, |root| {
        let title = format!(
            "sales-system bench: {} build, {} s per step, {} cores ({})",
            report.build, report.seconds_per_step, report.machine.cores, report.machine.model
        );
        let root = root.titled(&title, (FAMILY, 18)).map_err(drawing)?;
        let (left, right) = root.split_horizontally(WIDTH / 2);
        panel(&left, "Orders per second", "orders/s", &throughput)?;
        panel(&right, "p99 latency of an order", "ms", &p99)
    })
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    caption: &str,
    y_desc: &str,
    lines: &Lines,
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    // The client counts, evenly spaced (1, 8, 32, 64, 256 would crowd on any scale).
    let mut counts: Vec<f64> = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.0))
        .collect();
    counts.sort_by(f64::total_cmp);
    counts.dedup();
    let at = |clients: f64| counts.iter().position(|c| *c == clients).unwrap_or(0) as i32;
    let top = lines
        .iter()
        .flat_map(|(_, p)| p.iter().map(|p| p.1))
        .fold(1.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(area)
        .margin(14)
        .caption(caption, (FAMILY, 16))
        .x_label_area_size(40)
        .y_label_area_size(70)
        // An empty segment on either side (and a range that is never one value wide).
        .build_cartesian_2d((-1..counts.len() as i32).into_segmented(), 0.0..top)
        .map_err(drawing)?;
    chart_png::style_mesh(&mut chart.configure_mesh(), "concurrent clients", y_desc)
        .x_labels(counts.len() + 3)
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => counts
                .get(usize::try_from(*i).unwrap_or(usize::MAX))
                .map_or(String::new(), |c| format!("{c}")),
            _ => String::new(),
        })
        .y_label_formatter(&|y| format!("{y:.0}"))
        .draw()
        .map_err(drawing)?;
    for (i, (name, points)) in lines.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<(SegmentValue<i32>, f64)> = points
            .iter()
            .map(|(c, v)| (SegmentValue::CenterOf(at(*c)), *v))
            .collect();
        chart
            .draw_series(LineSeries::new(
                points.iter().cloned(),
                colour.stroke_width(2),
            ))
            .map_err(drawing)?
            .label(name.as_str())
            .legend(chart_png::legend_mark(colour));
        chart
            .draw_series(
                points
                    .into_iter()
                    .map(|p| Circle::new(p, 4, colour.filled())),
            )
            .map_err(drawing)?;
    }
    chart_png::draw_legend(&mut chart, SeriesLabelPosition::UpperLeft)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bench::report::tests::sample;

    #[test]
    fn the_chart_is_a_png() {
        assert_eq!(&png(&sample()).unwrap()[1..4], b"PNG");
        // One client count (the smoke run): one point per series.
        let mut one = sample();
        one.steps.retain(|s| s.clients == Some(1));
        assert_eq!(&png(&one).unwrap()[1..4], b"PNG");
    }
}
