//! `cargo xtask autoscaling-chart`: `sales-operator simulate`'s run as a PNG (what
//! `docs/operator/autoscaling.png` is): queue depth and publish rate above, replicas
//! below, the phases of the profile marked, broker outages shaded. The numbers come
//! from the operator crate's simulation ([`simulate`]); the drawing is here, with the
//! bench's and the chaos run's (`chart_png`: embedded font, one PNG encoder), so the
//! operator's binary carries neither.

use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use sales_operator::autoscaling::simulate::{self, Simulation};

use crate::chart_png::{self, FAMILY, drawing as error};

/// What the docs show: the builtin profile at this size.
pub const DOCS_PICTURE: &str = "docs/operator/autoscaling.png";

const DEPTH: RGBColor = RGBColor(31, 119, 180);
const RATE: RGBColor = RGBColor(120, 120, 120);
const REPLICAS: RGBColor = RGBColor(214, 39, 40);
const RECOMMENDED: RGBColor = RGBColor(255, 127, 14);
const CONSUMING: RGBColor = RGBColor(44, 160, 44);
const OUTAGE: RGBColor = RGBColor(255, 210, 210);

#[derive(clap::Args, Debug)]
pub struct ChartArgs {
    /// `builtin`, or a YAML load profile (see `operator/src/autoscaling/builtin-profile.yaml`).
    #[arg(long, default_value = "builtin")]
    pub profile: String,
    /// Where to write the PNG (relative paths from the workspace root).
    #[arg(long, default_value = DOCS_PICTURE)]
    pub out: PathBuf,
    /// Width and height of the PNG in pixels.
    #[arg(long, default_value_t = 1400)]
    pub width: u32,
    #[arg(long, default_value_t = 900)]
    pub height: u32,
}

/// Simulates the profile, prints the changes of replicas, writes the PNG.
pub fn run(root: &Path, args: &ChartArgs) -> Result<()> {
    let simulation = simulate::run(&simulate::load_profile(&args.profile)?)?;
    print!("{}", simulate::summary(&simulation));
    let png = png(&simulation, args.width, args.height)?;
    let out = root.join(&args.out);
    std::fs::write(&out, png).with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {}", out.display());
    Ok(())
}

/// The PNG of `sim`, `width` x `height` pixels.
pub fn png(sim: &Simulation, width: u32, height: u32) -> Result<Vec<u8>> {
    chart_png::png(width, height, |root| draw(sim, root))
}

/// The grid and axes both panels share: minutes along, `y_desc` up.
fn draw_mesh<DB: DrawingBackend>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, RangedCoordf64>>,
    y_desc: &str,
) -> Result<()> {
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

fn draw<DB: DrawingBackend>(
    sim: &Simulation,
    root: &DrawingArea<DB, plotters::coord::Shift>,
) -> Result<()>
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

#[cfg(test)]
mod tests {
    use super::*;

    fn builtin() -> Simulation {
        simulate::run(&simulate::parse_profile(simulate::BUILTIN_PROFILE).unwrap()).unwrap()
    }

    #[test]
    fn the_committed_picture_is_current() {
        let png = png(&builtin(), 1400, 900).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        // IHDR: width and height, big-endian, right after the signature and chunk header.
        assert_eq!(&png[16..24], &[0, 0, 5, 120, 0, 0, 3, 132]);
        let committed = crate::workspace_root().unwrap().join(DOCS_PICTURE);
        let on_disk = std::fs::read(&committed).unwrap_or_default();
        assert!(
            on_disk == png,
            "{DOCS_PICTURE} is not what the simulation draws now; regenerate it with\n  \
             cargo xtask autoscaling-chart"
        );
    }

    #[test]
    fn a_profile_file_is_drawn_at_its_size() {
        let dir = std::env::temp_dir().join(format!("xtask-chart-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let profile = dir.join("profile.yaml");
        std::fs::write(
            &profile,
            "name: tiny\nautoscaling: {minReplicas: 1, maxReplicas: 3, targetMessagesPerReplica: 10, scaleDownStabilization: 1m}\n\
             consumer: {messagesPerSecond: 5}\nphases:\n  - {duration: 2m, rate: 12}\n  - {duration: 3m, rate: 0}\n",
        )
        .unwrap();
        let args = ChartArgs {
            profile: profile.display().to_string(),
            out: dir.join("tiny.png"),
            width: 600,
            height: 400,
        };
        run(Path::new("/"), &args).unwrap();
        let png = std::fs::read(dir.join("tiny.png")).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
        assert_eq!(&png[16..24], &[0, 0, 2, 88, 0, 0, 1, 144]);
    }
}
