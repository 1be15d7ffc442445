//! `dmpd-plot`: PNG charts of runs recorded with `dmpd-agent record`.
//!
//! ```text
//! dmpd-plot utilisation --node 1 --run "balancing off=off.jsonl" \
//!     --run "balancing on=on.jsonl" -o fig10.png
//! dmpd-plot sizes size-64.jsonl size-128.jsonl ... --out-dir docs/images
//! ```

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use plot::{PlotError, Recording};

#[derive(Parser)]
#[command(
    name = "dmpd-plot",
    version,
    about = "PNG charts of recorded dmpd runs"
)]
struct Cli {
    /// TrueType font for the labels (default: $DMPD_PLOT_FONT, else DejaVu Sans).
    #[arg(long, global = true)]
    font: Option<PathBuf>,
    /// Image width in pixels.
    #[arg(long, global = true, default_value_t = 900)]
    width: u32,
    /// Image height in pixels.
    #[arg(long, global = true, default_value_t = 560)]
    height: u32,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Per-port utilisation of one node over time, one panel per run
    /// (the paper's figures 9 and 10).
    Utilisation {
        /// The node whose ports to draw.
        #[arg(long)]
        node: u16,
        /// A run: LABEL=RECORDING (repeatable, drawn top to bottom).
        #[arg(long = "run", required = true, value_parser = parse_run)]
        runs: Vec<(String, PathBuf)>,
        /// Chart title.
        #[arg(long, default_value = "Port utilisation")]
        title: String,
        /// Output PNG.
        #[arg(short, long)]
        out: PathBuf,
    },
    /// Rate, loss rate and frames per second by frame size, from one
    /// recording per frame size (the paper's figures 6, 7 and 8).
    Sizes {
        /// One recording per frame size.
        #[arg(required = true)]
        recordings: Vec<PathBuf>,
        /// Directory for fig6-rate.png, fig7-loss.png, fig8-frames.png.
        #[arg(long)]
        out_dir: PathBuf,
    },
}

fn parse_run(s: &str) -> Result<(String, PathBuf), String> {
    let (l, p) = s
        .split_once('=')
        .ok_or_else(|| format!("expected LABEL=RECORDING, got {s:?}"))?;
    if l.is_empty() || p.is_empty() {
        return Err(format!("expected LABEL=RECORDING, got {s:?}"));
    }
    Ok((l.to_string(), PathBuf::from(p)))
}

fn run(cli: Cli) -> Result<(), PlotError> {
    let font = cli
        .font
        .or_else(|| std::env::var_os("DMPD_PLOT_FONT").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(plot::DEFAULT_FONT));
    plot::load_font(&font)?;
    if cli.width < 200 || cli.height < 150 || cli.width > 8000 || cli.height > 8000 {
        return Err(PlotError::Argument(
            "--width must be 200..8000 and --height 150..8000 pixels".into(),
        ));
    }
    let size = (cli.width, cli.height);
    match cli.cmd {
        Cmd::Utilisation {
            node,
            runs,
            title,
            out,
        } => {
            let recs = runs
                .iter()
                .map(|(l, p)| Ok((l.clone(), Recording::read(p)?)))
                .collect::<Result<Vec<_>, PlotError>>()?;
            let refs: Vec<(String, &Recording)> =
                recs.iter().map(|(l, r)| (l.clone(), r)).collect();
            let sums = plot::utilisation_chart(&refs, node, &title, &out, size)?;
            println!("node {node}: per-port mean utilisation (%)");
            for s in &sums {
                let ports: Vec<String> = s.mean_pct.iter().map(|m| format!("{m:.2}")).collect();
                println!(
                    "  {:<16} samples {:>4}  ports [{}]  spread {:.2}  max-min {:.2}  WL {:.2}  balancer on {:.0}%",
                    s.label,
                    s.samples,
                    ports.join(" "),
                    s.spread_pct,
                    s.range_pct,
                    s.mean_wl,
                    s.enabled_share * 100.0
                );
            }
            println!("wrote {}", out.display());
        }
        Cmd::Sizes {
            recordings,
            out_dir,
        } => {
            let recs = recordings
                .iter()
                .map(|p| Recording::read(p))
                .collect::<Result<Vec<_>, _>>()?;
            std::fs::create_dir_all(&out_dir).map_err(|source| PlotError::Read {
                path: out_dir.clone(),
                source,
            })?;
            let (pts, files) = plot::size_charts(&recs, &out_dir, size)?;
            println!(
                "{:>6} {:>12} {:>12} {:>10} {:>8} {:>12} {:>12} {:>14}",
                "frame",
                "sent f/s",
                "recv f/s",
                "Mb/s",
                "loss %",
                "sent",
                "received",
                "counter frames"
            );
            for p in &pts {
                println!(
                    "{:>6} {:>12.0} {:>12.0} {:>10.1} {:>8.3} {:>12} {:>12} {:>14}",
                    p.frame_bytes,
                    p.offered_fps,
                    p.received_fps,
                    p.rate_mbps,
                    p.loss_rate * 100.0,
                    p.sent_frames,
                    p.received_frames,
                    p.counter_frames
                        .map(|c| c.to_string())
                        .unwrap_or_else(|| "-".into())
                );
            }
            for f in files {
                println!("wrote {}", f.display());
            }
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
