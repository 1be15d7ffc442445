//! Charts of recorded dmpd runs.
//!
//! A recording is the JSON-lines file that `dmpd-agent record` writes
//! (format: docs/observability.md, "Recording a run"). This crate reads it
//! and draws PNG charts with `plotters`:
//!
//! - [`utilisation_chart`]: per-port utilisation over time of one node, one
//!   panel per run (balancing off / on: the paper's figures 9 and 10);
//! - [`size_charts`]: per frame size, the received rate, the loss rate and
//!   the frames processed per second (the paper's figures 6, 7 and 8).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use plotters::prelude::*;
use plotters::style::FontStyle;
use serde::Deserialize;

/// Font used when neither `--font` nor `DMPD_PLOT_FONT` names one
/// (Debian's fonts-dejavu-core, installed by scripts/setup).
pub const DEFAULT_FONT: &str = "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf";
/// Ethernet's frame check sequence: a recording's `frame_bytes` excludes it,
/// the paper's frame sizes (64 .. 1518 B) include it.
pub const FCS_BYTES: u64 = 4;

#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}:{line}: not a recording line: {source}")]
    Parse {
        path: PathBuf,
        line: usize,
        source: serde_json::Error,
    },
    #[error("{path}: empty recording (no lines)")]
    Empty { path: PathBuf },
    #[error("{path}: no `meta` line first: not a dmpd-agent record file")]
    NoMeta { path: PathBuf },
    #[error("{path}: recording format version {found}, this dmpd-plot reads version 1")]
    Version { path: PathBuf, found: u64 },
    #[error("{path}: no samples of node {node} (nodes recorded: {recorded:?})")]
    NoNode {
        path: PathBuf,
        node: u16,
        recorded: Vec<u16>,
    },
    #[error("{path}: {what}")]
    NoStreams { path: PathBuf, what: String },
    #[error("font {path}: {reason}")]
    Font { path: PathBuf, reason: String },
    #[error("drawing {path}: {reason}")]
    Draw { path: PathBuf, reason: String },
    #[error("{0}")]
    Argument(String),
}

/// One line of a recording.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Line {
    Meta(Meta),
    Node(NodeSample),
    Stream(StreamSample),
    Counter(Counter),
    /// A kind this version does not know: skipped.
    #[serde(other)]
    Other,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Meta {
    pub version: u64,
    #[serde(default)]
    pub label: String,
    #[serde(default)]
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct NodeSample {
    pub t: f64,
    pub node: u16,
    #[serde(default)]
    pub balancing_enabled: bool,
    #[serde(default)]
    pub balancing_active: bool,
    #[serde(default)]
    pub balance_degree: f64,
    pub ports: Vec<PortSample>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct PortSample {
    pub idx: u8,
    #[serde(default)]
    pub up: bool,
    /// Fraction of the port's bandwidth, 0..1.
    pub utilisation: f64,
    #[serde(default)]
    pub tx_packets: u64,
    #[serde(default)]
    pub rx_packets: u64,
    #[serde(default)]
    pub drops: u64,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamSample {
    pub t: f64,
    /// The report file sampled.
    #[serde(default)]
    pub file: String,
    /// When the sampled report was written, in seconds since its
    /// application started (reports are rewritten every 500 ms).
    #[serde(default)]
    pub elapsed_s: f64,
    #[serde(default)]
    pub node: Option<u16>,
    pub streams: Vec<StreamFigures>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct StreamFigures {
    pub pipe: u16,
    #[serde(default)]
    pub frame_bytes: Option<u64>,
    #[serde(default)]
    pub pushed: u64,
    #[serde(default)]
    pub refused: u64,
    #[serde(default)]
    pub received: u64,
}

/// A count from an independent tool (the experiment appends the frames
/// `dpdk-testpmd --forward-mode=rxonly` received on the sink's ports).
#[derive(Debug, Clone, Deserialize)]
pub struct Counter {
    pub source: String,
    #[serde(default)]
    pub node: Option<u16>,
    pub rx_packets: u64,
    pub seconds: f64,
}

/// A parsed recording.
#[derive(Debug, Clone)]
pub struct Recording {
    pub path: PathBuf,
    pub meta: Meta,
    pub nodes: Vec<NodeSample>,
    pub streams: Vec<StreamSample>,
    pub counters: Vec<Counter>,
}

impl Recording {
    /// Parses a recording's text; `path` names it in errors.
    pub fn parse(path: &Path, text: &str) -> Result<Recording, PlotError> {
        let mut meta = None;
        let mut rec = Recording {
            path: path.to_path_buf(),
            meta: Meta {
                version: 0,
                label: String::new(),
                interval_ms: 0,
            },
            nodes: Vec::new(),
            streams: Vec::new(),
            counters: Vec::new(),
        };
        let mut any = false;
        for (i, l) in text.lines().enumerate() {
            if l.trim().is_empty() {
                continue;
            }
            let line: Line = serde_json::from_str(l).map_err(|source| PlotError::Parse {
                path: path.to_path_buf(),
                line: i + 1,
                source,
            })?;
            if !any {
                any = true;
                match line {
                    Line::Meta(m) => {
                        if m.version != 1 {
                            return Err(PlotError::Version {
                                path: path.to_path_buf(),
                                found: m.version,
                            });
                        }
                        meta = Some(m);
                        continue;
                    }
                    _ => {
                        return Err(PlotError::NoMeta {
                            path: path.to_path_buf(),
                        })
                    }
                }
            }
            match line {
                Line::Meta(_) | Line::Other => {}
                Line::Node(n) => rec.nodes.push(n),
                Line::Stream(s) => rec.streams.push(s),
                Line::Counter(c) => rec.counters.push(c),
            }
        }
        rec.meta = meta.ok_or_else(|| PlotError::Empty {
            path: path.to_path_buf(),
        })?;
        Ok(rec)
    }

    pub fn read(path: &Path) -> Result<Recording, PlotError> {
        let text = std::fs::read_to_string(path).map_err(|source| PlotError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Recording::parse(path, &text)
    }

    /// The samples of one node, in time order.
    pub fn node(&self, node: u16) -> Result<Vec<&NodeSample>, PlotError> {
        let v: Vec<&NodeSample> = self.nodes.iter().filter(|n| n.node == node).collect();
        if v.is_empty() {
            let mut recorded: Vec<u16> = self.nodes.iter().map(|n| n.node).collect();
            recorded.sort_unstable();
            recorded.dedup();
            return Err(PlotError::NoNode {
                path: self.path.clone(),
                node,
                recorded,
            });
        }
        Ok(v)
    }
}

/// Per-port figures of one node over one run.
#[derive(Debug, Clone, PartialEq)]
pub struct UtilisationSummary {
    pub label: String,
    pub samples: usize,
    /// Time-averaged utilisation per port, in percent, by port index.
    pub mean_pct: Vec<f64>,
    /// Population standard deviation of `mean_pct` (percentage points).
    pub spread_pct: f64,
    /// max - min of `mean_pct`.
    pub range_pct: f64,
    /// Mean balance degree WL over the samples.
    pub mean_wl: f64,
    /// Fraction of samples in which the balancer was switched on.
    pub enabled_share: f64,
}

/// Summarises one node's samples; samples before `skip_s` seconds are
/// left out (start-up).
pub fn summarise(label: &str, samples: &[&NodeSample], skip_s: f64) -> UtilisationSummary {
    let used: Vec<&&NodeSample> = samples.iter().filter(|s| s.t >= skip_s).collect();
    let nports = used
        .iter()
        .flat_map(|s| s.ports.iter().map(|p| p.idx as usize + 1))
        .max()
        .unwrap_or(0);
    let mut sum = vec![0.0; nports];
    let mut cnt = vec![0usize; nports];
    for s in &used {
        for p in &s.ports {
            sum[p.idx as usize] += p.utilisation * 100.0;
            cnt[p.idx as usize] += 1;
        }
    }
    let mean_pct: Vec<f64> = sum
        .iter()
        .zip(&cnt)
        .map(|(s, &c)| if c > 0 { s / c as f64 } else { 0.0 })
        .collect();
    let mu = mean_pct.iter().sum::<f64>() / nports.max(1) as f64;
    let spread_pct =
        (mean_pct.iter().map(|m| (m - mu).powi(2)).sum::<f64>() / nports.max(1) as f64).sqrt();
    let max = mean_pct.iter().cloned().fold(f64::MIN, f64::max);
    let min = mean_pct.iter().cloned().fold(f64::MAX, f64::min);
    let n = used.len().max(1) as f64;
    UtilisationSummary {
        label: label.to_string(),
        samples: used.len(),
        range_pct: if nports > 0 { max - min } else { 0.0 },
        mean_pct,
        spread_pct,
        mean_wl: used.iter().map(|s| s.balance_degree).sum::<f64>() / n,
        enabled_share: used.iter().filter(|s| s.balancing_enabled).count() as f64 / n,
    }
}

static FONT: OnceLock<Result<(), String>> = OnceLock::new();

/// Registers the TrueType font the charts use (once per process).
pub fn load_font(path: &Path) -> Result<(), PlotError> {
    let r = FONT.get_or_init(|| {
        let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
        let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
        plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
            .map_err(|_| "not a TrueType/OpenType font".to_string())
    });
    r.clone().map_err(|reason| PlotError::Font {
        path: path.to_path_buf(),
        reason,
    })
}

fn draw_err<E: std::fmt::Debug>(path: &Path) -> impl Fn(E) -> PlotError + '_ {
    move |e| PlotError::Draw {
        path: path.to_path_buf(),
        reason: format!("{e:?}"),
    }
}

/// Port colours: distinguishable on white, one per port index (up to 16).
fn port_colour(i: usize) -> RGBColor {
    const C: [RGBColor; 8] = [
        RGBColor(31, 119, 180),
        RGBColor(255, 127, 14),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
        RGBColor(148, 103, 189),
        RGBColor(140, 86, 75),
        RGBColor(227, 119, 194),
        RGBColor(23, 190, 207),
    ];
    let c = C[i % 8];
    if i < 8 {
        c
    } else {
        RGBColor(c.0 / 2, c.1 / 2, c.2 / 2)
    }
}

/// Draws one node's per-port utilisation over time, one panel per run
/// (stacked), and returns each run's summary. `runs` = (label, recording).
pub fn utilisation_chart(
    runs: &[(String, &Recording)],
    node: u16,
    title: &str,
    out: &Path,
    size: (u32, u32),
) -> Result<Vec<UtilisationSummary>, PlotError> {
    if runs.is_empty() {
        return Err(PlotError::Argument("no run to plot".into()));
    }
    let mut series = Vec::new();
    for (label, rec) in runs {
        let s = rec.node(node)?;
        series.push((label.clone(), s));
    }
    let summaries: Vec<UtilisationSummary> =
        series.iter().map(|(l, s)| summarise(l, s, 0.0)).collect();
    let ymax = series
        .iter()
        .flat_map(|(_, s)| s.iter().flat_map(|n| n.ports.iter()))
        .map(|p| p.utilisation * 100.0)
        .fold(0.0f64, f64::max);
    let ymax = nice_ceiling(ymax.max(1.0) * 1.1);
    let err = draw_err(out);
    let root = BitMapBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(&err)?;
    let panels = root.split_evenly((series.len(), 1));
    for ((label, samples), (area, sum)) in series.iter().zip(panels.iter().zip(&summaries)) {
        let t0 = samples.first().map(|s| s.t).unwrap_or(0.0);
        let t1 = samples.last().map(|s| s.t).unwrap_or(1.0);
        let tmax = (t1 - t0).max(1.0);
        let cap = format!(
            "{label}: mean spread {:.2} pts (max-min {:.2}), mean WL {:.2}",
            sum.spread_pct, sum.range_pct, sum.mean_wl
        );
        let mut chart = ChartBuilder::on(area)
            .caption(cap, ("sans-serif", 16))
            .margin(8)
            .x_label_area_size(34)
            .y_label_area_size(52)
            .build_cartesian_2d(0.0..tmax, 0.0..ymax)
            .map_err(&err)?;
        chart
            .configure_mesh()
            .x_desc("time (s)")
            .y_desc("utilisation (%)")
            .label_style(("sans-serif", 13))
            .axis_desc_style(("sans-serif", 14))
            .light_line_style(WHITE.mix(0.0))
            .draw()
            .map_err(&err)?;
        let nports = samples
            .iter()
            .flat_map(|s| s.ports.iter().map(|p| p.idx as usize + 1))
            .max()
            .unwrap_or(0);
        for port in 0..nports {
            let c = port_colour(port);
            let pts: Vec<(f64, f64)> = samples
                .iter()
                .filter_map(|s| {
                    s.ports
                        .iter()
                        .find(|p| p.idx as usize == port)
                        .map(|p| (s.t - t0, p.utilisation * 100.0))
                })
                .collect();
            chart
                .draw_series(LineSeries::new(pts, c.stroke_width(2)))
                .map_err(&err)?
                .label(format!("port {port}"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .label_font(("sans-serif", 12))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .draw()
            .map_err(&err)?;
    }
    root.present().map_err(&err)?;
    Ok(summaries)
}

/// A "nice" axis ceiling: 1, 2 or 5 times a power of ten at or above `v`.
pub fn nice_ceiling(v: f64) -> f64 {
    if !(v.is_finite() && v > 0.0) {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    for m in [1.0, 2.0, 2.5, 5.0, 10.0] {
        if m * p >= v {
            return m * p;
        }
    }
    10.0 * p
}

/// The figures of one frame-size phase.
#[derive(Debug, Clone, PartialEq)]
pub struct SizePoint {
    /// Frame size with FCS, as the paper counts it.
    pub frame_bytes: u64,
    /// Frames the sending application handed to its pipes per second.
    pub offered_fps: f64,
    /// Frames the receiving application got per second.
    pub received_fps: f64,
    /// `received_fps` in Mb/s of frames (FCS included, no preamble/gap).
    pub rate_mbps: f64,
    /// 1 - received / pushed, at the end of the phase.
    pub loss_rate: f64,
    /// Frames the sender pushed and the sink received in the phase.
    pub sent_frames: u64,
    pub received_frames: u64,
    /// Frames the independent counter saw (heartbeats included).
    pub counter_frames: Option<u64>,
    /// The counter's frames over the application's sending window
    /// (`counter_frames * received_fps / received_frames`).
    pub counter_fps: Option<f64>,
    pub counter_source: Option<String>,
}

/// The rate of a cumulative count while it grew, from (time, count)
/// points: over the points strictly inside the growth (the first and last
/// intervals are partial); with too few points, over the whole growth.
pub fn steady_rate(v: &[(f64, u64)]) -> f64 {
    if v.len() < 2 {
        return 0.0;
    }
    let first = v[0].1;
    let last = v[v.len() - 1].1;
    // a: the last point before growth; b: the first at the final value.
    let a = v.iter().rposition(|p| p.1 == first).unwrap_or(0);
    let b = v.iter().position(|p| p.1 == last).unwrap_or(v.len() - 1);
    let rate = |i: usize, j: usize| -> Option<f64> {
        (j > i && v[j].0 > v[i].0).then(|| (v[j].1 - v[i].1) as f64 / (v[j].0 - v[i].0))
    };
    if b >= a + 3 {
        if let Some(r) = rate(a + 1, b - 1) {
            return r;
        }
    }
    rate(a, b).unwrap_or(0.0)
}

/// One report's (time, count) points: the report's own clock
/// (`elapsed_s`), one point per rewrite of the report.
fn points(v: &[&StreamSample], f: &dyn Fn(&StreamSample) -> u64) -> Vec<(f64, u64)> {
    let mut out: Vec<(f64, u64)> = Vec::new();
    for s in v {
        if out.last().is_none_or(|p| s.elapsed_s > p.0) {
            out.push((s.elapsed_s, f(s)));
        }
    }
    out
}

/// Computes one phase's figures: the sender is the stream report whose
/// streams pushed frames, the sink the one whose streams received them.
pub fn size_point(rec: &Recording) -> Result<SizePoint, PlotError> {
    let no = |what: &str| PlotError::NoStreams {
        path: rec.path.clone(),
        what: what.to_string(),
    };
    let pushed = |s: &StreamSample| s.streams.iter().map(|x| x.pushed).sum::<u64>();
    let received = |s: &StreamSample| s.streams.iter().map(|x| x.received).sum::<u64>();
    // Group the samples by report file: the sender's pushed frames, the
    // sink's never did.
    let mut files: Vec<&str> = rec.streams.iter().map(|s| s.file.as_str()).collect();
    files.sort_unstable();
    files.dedup();
    let of =
        |f: &str| -> Vec<&StreamSample> { rec.streams.iter().filter(|s| s.file == f).collect() };
    let sender = files
        .iter()
        .map(|f| of(f))
        .find(|v| v.iter().any(|s| pushed(s) > 0))
        .unwrap_or_default();
    let sink = files
        .iter()
        .map(|f| of(f))
        .find(|v| v.iter().all(|s| pushed(s) == 0))
        .unwrap_or_default();
    let last_tx = sender
        .last()
        .ok_or_else(|| no("no stream report that sent frames (pushed > 0)"))?;
    let last_rx = sink
        .last()
        .ok_or_else(|| no("no stream report that only received (a sink)"))?;
    let frame = last_tx
        .streams
        .iter()
        .find(|x| x.pushed > 0)
        .and_then(|x| x.frame_bytes)
        .ok_or_else(|| no("the sender's report has no frame_bytes"))?
        + FCS_BYTES;
    // The sender's report is created by the phase (its counts start at 0);
    // the sink runs through every phase, so its count before the phase
    // (the recording's first sample, taken before the sender starts) is
    // subtracted.
    let tx = pushed(last_tx);
    let rx = received(last_rx).saturating_sub(received(sink[0]));
    let offered_fps = steady_rate(&points(&sender, &pushed));
    let received_fps = steady_rate(&points(&sink, &received));
    let loss_rate = if tx > 0 {
        (1.0 - rx as f64 / tx as f64).max(0.0)
    } else {
        0.0
    };
    let c = rec.counters.last();
    Ok(SizePoint {
        frame_bytes: frame,
        offered_fps,
        received_fps,
        rate_mbps: received_fps * frame as f64 * 8.0 / 1e6,
        loss_rate,
        sent_frames: tx,
        received_frames: rx,
        counter_frames: c.map(|c| c.rx_packets),
        // Over the same window as the application's rate: the counter runs
        // a little longer than the sender, so its frames are scaled by the
        // application's frames per second of sending.
        counter_fps: c.map(|c| {
            if rx > 0 {
                c.rx_packets as f64 * received_fps / rx as f64
            } else {
                c.rx_packets as f64 / c.seconds.max(1e-9)
            }
        }),
        counter_source: c.map(|c| c.source.clone()),
    })
}

/// One bar chart over the frame sizes: `values` holds one or more series
/// (label, colour, value per point).
fn bar_chart(
    out: &Path,
    size: (u32, u32),
    title: &str,
    y_desc: &str,
    sizes: &[u64],
    values: &[(&str, RGBColor, Vec<f64>)],
) -> Result<(), PlotError> {
    let err = draw_err(out);
    let ymax = values
        .iter()
        .flat_map(|(_, _, v)| v.iter().cloned())
        .fold(0.0f64, f64::max);
    let ymax = nice_ceiling(ymax * 1.1);
    let root = BitMapBackend::new(out, size).into_drawing_area();
    root.fill(&WHITE).map_err(&err)?;
    let n = sizes.len();
    let labels: Vec<String> = sizes.iter().map(|s| s.to_string()).collect();
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..n as f64, 0.0..ymax)
        .map_err(&err)?;
    let labels2 = labels.clone();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(n * 2 + 1)
        .x_label_formatter(&move |x: &f64| {
            let i = (*x - 0.5).round();
            if (x - 0.5 - i).abs() < 1e-6 && i >= 0.0 && (i as usize) < labels2.len() {
                labels2[i as usize].clone()
            } else {
                String::new()
            }
        })
        .x_desc("frame size (bytes, FCS included)")
        .y_desc(y_desc)
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(&err)?;
    let k = values.len().max(1) as f64;
    let w = 0.8 / k;
    for (j, (label, colour, v)) in values.iter().enumerate() {
        let c = *colour;
        chart
            .draw_series(v.iter().enumerate().map(|(i, &y)| {
                let x0 = i as f64 + 0.1 + j as f64 * w;
                Rectangle::new([(x0, 0.0), (x0 + w * 0.95, y)], c.filled())
            }))
            .map_err(&err)?
            .label(*label)
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .label_font(("sans-serif", 12))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.3))
        .draw()
        .map_err(&err)?;
    root.present().map_err(&err)?;
    Ok(())
}

/// Draws figures 6-8 from one recording per frame size into `dir`
/// (`fig6-rate.png`, `fig7-loss.png`, `fig8-frames.png`) and returns the
/// points, sorted by frame size, and the files written.
pub fn size_charts(
    recs: &[Recording],
    dir: &Path,
    size: (u32, u32),
) -> Result<(Vec<SizePoint>, Vec<PathBuf>), PlotError> {
    if recs.is_empty() {
        return Err(PlotError::Argument("no recording given".into()));
    }
    let mut pts = recs.iter().map(size_point).collect::<Result<Vec<_>, _>>()?;
    pts.sort_by_key(|p| p.frame_bytes);
    let sizes: Vec<u64> = pts.iter().map(|p| p.frame_bytes).collect();
    let blue = RGBColor(31, 119, 180);
    let orange = RGBColor(255, 127, 14);
    let red = RGBColor(214, 39, 40);
    let files = vec![
        dir.join("fig6-rate.png"),
        dir.join("fig7-loss.png"),
        dir.join("fig8-frames.png"),
    ];
    bar_chart(
        &files[0],
        size,
        "Received data rate by frame size (fig. 6)",
        "rate (Mb/s)",
        &sizes,
        &[("received", blue, pts.iter().map(|p| p.rate_mbps).collect())],
    )?;
    bar_chart(
        &files[1],
        size,
        "Loss rate by frame size (fig. 7)",
        "loss rate (%)",
        &sizes,
        &[(
            "1 - received / sent",
            red,
            pts.iter().map(|p| p.loss_rate * 100.0).collect(),
        )],
    )?;
    let mut fps = vec![
        (
            "sent by the application",
            RGBColor(150, 150, 150),
            pts.iter()
                .map(|p| p.offered_fps / 1000.0)
                .collect::<Vec<_>>(),
        ),
        (
            "received by the application",
            blue,
            pts.iter().map(|p| p.received_fps / 1000.0).collect(),
        ),
    ];
    let counter_label = format!(
        "seen by {}",
        pts[0].counter_source.clone().unwrap_or_default()
    );
    if pts.iter().all(|p| p.counter_fps.is_some()) {
        fps.push((
            counter_label.as_str(),
            orange,
            pts.iter()
                .map(|p| p.counter_fps.unwrap_or(0.0) / 1000.0)
                .collect(),
        ));
    }
    bar_chart(
        &files[2],
        size,
        "Frames processed per second by frame size (fig. 8)",
        "thousand frames per second",
        &sizes,
        &fps,
    )?;
    Ok((pts, files))
}
