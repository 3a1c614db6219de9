//! The simulation as a PNG: queue depth and publish rate above, replicas below, the
//! phases of the profile marked, broker outages shaded. Drawn with plotters' bitmap
//! backend and an embedded font (`operator/assets/DejaVuSansMono.ttf`), so no system
//! font is needed; encoded with the `png` crate.

use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use super::simulate::Simulation;

const FONT: &[u8] = include_bytes!("../../assets/DejaVuSansMono.ttf");
const FAMILY: &str = "sans-serif";

const DEPTH: RGBColor = RGBColor(31, 119, 180);
const RATE: RGBColor = RGBColor(120, 120, 120);
const REPLICAS: RGBColor = RGBColor(214, 39, 40);
const RECOMMENDED: RGBColor = RGBColor(255, 127, 14);
const CONSUMING: RGBColor = RGBColor(44, 160, 44);
const OUTAGE: RGBColor = RGBColor(255, 210, 210);

fn register() -> anyhow::Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if *REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        Ok(())
    } else {
        anyhow::bail!("the embedded font cannot be read")
    }
}

fn error(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing: {err}")
}

/// The grid and axes both panels share: minutes along, `y_desc` up.
fn draw_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    y_desc: &str,
) -> anyhow::Result<()> {
    chart
        .configure_mesh()
        .x_desc("minutes")
        .y_desc(y_desc)
        .x_label_formatter(&|v| format!("{v:.0}"))
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
        .draw()
        .map_err(error)
}

/// The PNG of `sim`, `width` x `height` pixels.
pub fn png(sim: &Simulation, width: u32, height: u32) -> anyhow::Result<Vec<u8>> {
    register()?;
    let mut pixels = vec![255u8; (width as usize) * (height as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(error)?;
        draw(sim, &root)?;
        root.present().map_err(error)?;
    }
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, width, height);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header()?;
        writer.write_image_data(&pixels)?;
        writer.finish()?;
    }
    Ok(out)
}

fn draw<DB: DrawingBackend>(
    sim: &Simulation,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> anyhow::Result<()>
where
    DB::ErrorType: 'static,
{
    let p = &sim.policy;
    let title = format!(
        "Consumer autoscaling, profile \"{}\": min {}, max {}, target {} msgs/replica, window {}",
        sim.name,
        p.min_replicas,
        p.max_replicas,
        p.target_per_replica,
        humantime::format_duration(p.stabilization)
    );
    let root = root.titled(&title, (FAMILY, 22)).map_err(error)?;
    let (top, bottom) = root.split_vertically((52).percent());
    let minutes = sim.duration() as f64 / 60.0;
    let outages: Vec<(f64, f64)> = sim
        .spans
        .iter()
        .filter(|s| s.broker_down)
        .map(|s| (s.start as f64 / 60.0, s.end as f64 / 60.0))
        .collect();

    // Above: depth (left axis) and publish rate (right axis).
    let max_depth = sim.seconds.iter().map(|s| s.depth).fold(10.0_f64, f64::max) * 1.15;
    let max_rate = sim
        .seconds
        .iter()
        .map(|s| s.publish_rate)
        .fold(10.0_f64, f64::max)
        * 1.15;
    let mut chart = ChartBuilder::on(&top)
        .margin(12)
        .caption(
            "Queue depth (ready + unacknowledged) and publish rate",
            (FAMILY, 18),
        )
        .x_label_area_size(36)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes, 0.0..max_depth)
        .map_err(error)?
        .set_secondary_coord(0.0..minutes, 0.0..max_rate);
    draw_mesh(&mut chart, "messages in the queue")?;
    chart
        .configure_secondary_axes()
        .y_desc("published per second")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style((FAMILY, 14))
        .axis_desc_style((FAMILY, 15))
        .draw()
        .map_err(error)?;
    for (start, end) in &outages {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*start, 0.0), (*end, max_depth)],
                OUTAGE.filled(),
            )))
            .map_err(error)?;
    }
    chart
        .draw_secondary_series(LineSeries::new(
            sim.seconds
                .iter()
                .map(|s| (s.t as f64 / 60.0, s.publish_rate)),
            RATE.stroke_width(1),
        ))
        .map_err(error)?
        .label("published per second (right axis)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RATE.stroke_width(2)));
    chart
        .draw_series(
            AreaSeries::new(
                sim.seconds.iter().map(|s| (s.t as f64 / 60.0, s.depth)),
                0.0,
                DEPTH.mix(0.25),
            )
            .border_style(DEPTH.stroke_width(2)),
        )
        .map_err(error)?
        .label("depth: ready + unacknowledged")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], DEPTH.stroke_width(3)));
    // Phase labels along the top, with a tick at each boundary.
    for span in &sim.spans {
        let x = span.start as f64 / 60.0;
        chart
            .draw_series(std::iter::once(PathElement::new(
                vec![(x, max_depth * 0.93), (x, max_depth)],
                BLACK.mix(0.4).stroke_width(1),
            )))
            .map_err(error)?;
        if let Some(label) = &span.label {
            chart
                .draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (x + 0.2, max_depth * 0.985),
                    (FAMILY, 13).into_font().color(&BLACK.mix(0.75)),
                )))
                .map_err(error)?;
        }
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::MiddleRight)
        .margin(20)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(error)?;

    // Below: the replicas, with room above the maximum for the legend.
    let top_replicas = f64::from(p.max_replicas) * 1.5 + 1.0;
    let mut chart = ChartBuilder::on(&bottom)
        .margin(12)
        .caption("Replicas", (FAMILY, 18))
        .x_label_area_size(36)
        .y_label_area_size(70)
        .right_y_label_area_size(70)
        .build_cartesian_2d(0.0..minutes, 0.0..top_replicas)
        .map_err(error)?;
    draw_mesh(&mut chart, "replicas")?;
    for (start, end) in &outages {
        chart
            .draw_series(std::iter::once(Rectangle::new(
                [(*start, 0.0), (*end, top_replicas)],
                OUTAGE.filled(),
            )))
            .map_err(error)?;
        chart
            .draw_series(std::iter::once(Text::new(
                "broker unreachable: replicas kept",
                (*start + 0.2, f64::from(p.max_replicas) + 0.8),
                (FAMILY, 13).into_font().color(&REPLICAS),
            )))
            .map_err(error)?;
    }
    chart
        .draw_series(DashedLineSeries::new(
            [
                (0.0, f64::from(p.max_replicas)),
                (minutes, f64::from(p.max_replicas)),
            ],
            6,
            6,
            BLACK.mix(0.45).stroke_width(1),
        ))
        .map_err(error)?
        .label("maxReplicas")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], BLACK.mix(0.45)));
    let recommended = stepped(
        sim.ticks
            .iter()
            .filter_map(|t| t.recommended.map(|r| (t.t as f64 / 60.0, f64::from(r)))),
        minutes,
    );
    chart
        .draw_series(LineSeries::new(recommended, RECOMMENDED.stroke_width(2)))
        .map_err(error)?
        .label("formula now: clamp(ceil(depth / target), min, max)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], RECOMMENDED.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            sim.seconds
                .iter()
                .map(|s| (s.t as f64 / 60.0, f64::from(s.consuming))),
            CONSUMING.stroke_width(2),
        ))
        .map_err(error)?
        .label("consuming (started pods)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], CONSUMING.stroke_width(2)));
    chart
        .draw_series(LineSeries::new(
            stepped(
                sim.seconds
                    .iter()
                    .map(|s| (s.t as f64 / 60.0, f64::from(s.replicas))),
                minutes,
            ),
            REPLICAS.stroke_width(3),
        ))
        .map_err(error)?
        .label("replicas set by the scaler")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], REPLICAS.stroke_width(3)));
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .margin(8)
        .label_font((FAMILY, 14))
        .background_style(WHITE.mix(0.9))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(error)?;
    Ok(())
}

/// A step line through `points` (each value holds until the next point), to `end`.
fn stepped(points: impl Iterator<Item = (f64, f64)>, end: f64) -> Vec<(f64, f64)> {
    let mut out: Vec<(f64, f64)> = Vec::new();
    for (x, y) in points {
        if let Some(&(_, last)) = out.last() {
            if last == y {
                continue;
            }
            out.push((x, last));
        }
        out.push((x, y));
    }
    if let Some(&(_, last)) = out.last() {
        out.push((end, last));
    }
    out
}
