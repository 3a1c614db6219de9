//! What the bench chart, the chaos timeline and the autoscaling simulation's picture
//! draw with: an embedded font (`xtask/assets/`) (no system font needed), a white canvas encoded as a PNG, and one look for
//! the mesh and the legend.

use std::sync::OnceLock;

use anyhow::{Result, bail};
use plotters::chart::MeshStyle;
use plotters::coord::types::RangedCoordf64;
use plotters::coord::{CoordTranslate, Shift};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

const FONT: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");
/// The family every text is drawn in (the embedded font, registered under it).
pub const FAMILY: &str = "sans-serif";

pub type Canvas<'a> = DrawingArea<BitMapBackend<'a>, Shift>;

/// A `width` x `height` white canvas, drawn on by `draw`, as a PNG.
pub fn png(width: u32, height: u32, draw: impl FnOnce(&Canvas) -> Result<()>) -> Result<Vec<u8>> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    if !*REGISTERED.get_or_init(|| register_font(FAMILY, FontStyle::Normal, FONT).is_ok()) {
        bail!("the embedded font cannot be read");
    }
    let mut pixels = vec![255u8; (width as usize) * (height as usize) * 3];
    {
        let root = BitMapBackend::with_buffer(&mut pixels, (width, height)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        draw(&root)?;
        root.present().map_err(drawing)?;
    }
    let mut out = Vec::new();
    let mut encoder = png::Encoder::new(&mut out, width, height);
    encoder.set_color(png::ColorType::Rgb);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&pixels)?;
    writer.finish()?;
    Ok(out)
}

/// The mesh's look: faint bold lines only, labels in [`FAMILY`].
pub fn style_mesh<'a, 'b, X, DB>(
    mesh: &'b mut MeshStyle<'a, 'b, X, RangedCoordf64, DB>,
    x_desc: &str,
    y_desc: &str,
) -> &'b mut MeshStyle<'a, 'b, X, RangedCoordf64, DB>
where
    X: Ranged,
    DB: DrawingBackend,
{
    mesh.x_desc(x_desc)
        .y_desc(y_desc)
        .label_style((FAMILY, 12))
        .axis_desc_style((FAMILY, 13))
        .light_line_style(WHITE.mix(0.0))
        .bold_line_style(BLACK.mix(0.08))
}

/// The legend's mark for a line of `colour`.
pub fn legend_mark<C: Color + Copy + 'static>(
    colour: C,
) -> impl Fn((i32, i32)) -> PathElement<(i32, i32)> {
    move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(3))
}

/// The legend, at `position`.
pub fn draw_legend<'a, DB, CT>(
    chart: &mut ChartContext<'a, DB, CT>,
    position: SeriesLabelPosition,
) -> Result<()>
where
    DB: DrawingBackend + 'a,
    DB::ErrorType: 'static,
    CT: CoordTranslate,
{
    chart
        .configure_series_labels()
        .position(position)
        .label_font((FAMILY, 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(drawing)
}

pub fn drawing(err: impl std::fmt::Display) -> anyhow::Error {
    anyhow::anyhow!("drawing a chart: {err}")
}
