//! Charts from real recordings (excerpts of a `scripts/paper-experiment
//! --short` run, in tests/data), checked by decoding the PNGs; and the
//! errors on bad input.

use std::path::{Path, PathBuf};
use std::process::Command;

use plot::{PlotError, Recording};

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name)
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("dmpd-plot-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn font() -> PathBuf {
    std::env::var_os("DMPD_PLOT_FONT")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(plot::DEFAULT_FONT))
}

/// Decodes a PNG into (width, height, RGB pixels).
fn decode(path: &Path) -> (u32, u32, Vec<[u8; 3]>) {
    let dec = png::Decoder::new(std::fs::File::open(path).unwrap());
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    let ch = match info.color_type {
        png::ColorType::Rgb => 3,
        png::ColorType::Rgba => 4,
        c => panic!("unexpected colour type {c:?}"),
    };
    assert_eq!(info.bit_depth, png::BitDepth::Eight);
    let px = buf[..info.buffer_size()]
        .chunks(ch)
        .map(|c| [c[0], c[1], c[2]])
        .collect();
    (info.width, info.height, px)
}

/// Pixels of exactly this colour inside the rectangle (x0..x1, y0..y1).
fn count(px: &[[u8; 3]], w: u32, rect: (u32, u32, u32, u32), c: [u8; 3]) -> usize {
    let (x0, y0, x1, y1) = rect;
    (y0..y1)
        .flat_map(|y| (x0..x1).map(move |x| (x, y)))
        .filter(|&(x, y)| px[(y * w + x) as usize] == c)
        .count()
}

/// Time-averaged utilisation (%) of one port, straight from the JSON.
fn mean_util(path: &Path, node: u64, port: u64) -> f64 {
    let text = std::fs::read_to_string(path).unwrap();
    let v: Vec<f64> = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|l| l["kind"] == "node" && l["node"] == node)
        .map(|l| {
            l["ports"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["idx"] == port)
                .unwrap()["utilisation"]
                .as_f64()
                .unwrap()
                * 100.0
        })
        .collect();
    assert!(!v.is_empty());
    v.iter().sum::<f64>() / v.len() as f64
}

#[test]
fn utilisation_chart_draws_every_port_of_both_runs() {
    plot::load_font(&font()).unwrap();
    let off = Recording::read(&data("balancing-off.jsonl")).unwrap();
    let on = Recording::read(&data("balancing-on.jsonl")).unwrap();
    let out = tmpdir("util").join("fig10.png");
    let runs = vec![("off".to_string(), &off), ("on".to_string(), &on)];
    let sums = plot::utilisation_chart(&runs, 1, "Node 1", &out, (800, 600)).unwrap();
    assert_eq!(sums.len(), 2);
    assert_eq!(sums[0].mean_pct.len(), 8, "node 1 has 8 ports");
    for p in 0..8 {
        let want = mean_util(&data("balancing-off.jsonl"), 1, p);
        assert!((sums[0].mean_pct[p as usize] - want).abs() < 1e-9);
    }
    assert!(sums[0].enabled_share == 0.0 && sums[1].enabled_share == 1.0);
    let (w, h, px) = decode(&out);
    assert_eq!((w, h), (800, 600));
    // Each panel (top half: off, bottom half: on) holds the lines of ports
    // 6 and 7 in their colours (ports 0-5 run close together here, so the
    // last drawn of them covers the others).
    for half in [(60, 40, 790, 300), (60, 330, 790, 590)] {
        assert!(count(&px, w, half, [227, 119, 194]) > 200, "port 6 line");
        assert!(count(&px, w, half, [23, 190, 207]) > 200, "port 7 line");
    }
    // Node 2: 4 ports.
    let sums = plot::utilisation_chart(&runs, 2, "Node 2", &out, (640, 480)).unwrap();
    assert_eq!(sums[0].mean_pct.len(), 4);
    assert_eq!(decode(&out).0, 640);
}

#[test]
fn size_charts_draw_a_bar_per_size() {
    plot::load_font(&font()).unwrap();
    let recs = vec![
        Recording::read(&data("size-1518.jsonl")).unwrap(),
        Recording::read(&data("size-64.jsonl")).unwrap(),
    ];
    let dir = tmpdir("sizes");
    let (pts, files) = plot::size_charts(&recs, &dir, (700, 450)).unwrap();
    assert_eq!(
        pts.iter().map(|p| p.frame_bytes).collect::<Vec<_>>(),
        [64, 1518],
        "sorted by frame size, FCS included"
    );
    for p in &pts {
        assert!(p.received_fps > 0.0 && p.offered_fps > 0.0);
        assert!(p.received_frames <= p.sent_frames);
        assert!((0.0..1.0).contains(&p.loss_rate));
        let want = p.received_fps * p.frame_bytes as f64 * 8.0 / 1e6;
        assert!((p.rate_mbps - want).abs() < 1e-9);
        assert!(p.counter_frames.unwrap() > 0);
    }
    assert_eq!(files.len(), 3);
    for f in &files {
        let (w, h, px) = decode(f);
        assert_eq!((w, h), (700, 450));
        // The bars: blue (received) in figs 6 and 8, red (loss) in fig 7;
        // the 64-byte phase lost nothing, so fig 7 has one red bar.
        let blue = count(&px, w, (0, 0, w, h), [31, 119, 180]);
        let red = count(&px, w, (0, 0, w, h), [214, 39, 40]);
        assert!(blue + red > 1000, "{}: no bars", f.display());
    }
}

#[test]
fn bad_input_is_a_clear_error() {
    let d = tmpdir("bad");
    let write = |name: &str, text: &str| {
        let p = d.join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let e = Recording::read(&d.join("missing.jsonl")).unwrap_err();
    assert!(matches!(e, PlotError::Read { .. }), "{e}");
    let e = Recording::read(&write("empty.jsonl", "")).unwrap_err();
    assert!(matches!(e, PlotError::Empty { .. }), "{e}");
    let e = Recording::read(&write(
        "junk.jsonl",
        "{\"kind\":\"meta\",\"version\":1}\nnot json\n",
    ))
    .unwrap_err();
    assert!(matches!(e, PlotError::Parse { line: 2, .. }), "{e}");
    assert!(e.to_string().contains("junk.jsonl:2"), "{e}");
    let e = Recording::read(&write(
        "nometa.jsonl",
        "{\"kind\":\"node\",\"t\":0,\"node\":1,\"ports\":[]}\n",
    ))
    .unwrap_err();
    assert!(matches!(e, PlotError::NoMeta { .. }), "{e}");
    let e = Recording::read(&write("v2.jsonl", "{\"kind\":\"meta\",\"version\":2}\n")).unwrap_err();
    assert!(matches!(e, PlotError::Version { found: 2, .. }), "{e}");

    let off = Recording::read(&data("balancing-off.jsonl")).unwrap();
    let out = d.join("x.png");
    let e = plot::utilisation_chart(&[("off".into(), &off)], 9, "t", &out, (400, 300)).unwrap_err();
    match e {
        PlotError::NoNode { node, recorded, .. } => {
            assert_eq!(node, 9);
            assert_eq!(recorded, [1, 2]);
        }
        e => panic!("{e}"),
    }
    assert!(!out.exists(), "no image for a failed chart");
    // A balancing recording has node lines but no sender/sink reports.
    let e = plot::size_point(&off).unwrap_err();
    assert!(matches!(e, PlotError::NoStreams { .. }), "{e}");
    assert!(plot::size_charts(&[], &d, (400, 300)).is_err());
}

#[test]
fn the_command_reports_errors_and_writes_charts() {
    let bin = env!("CARGO_BIN_EXE_dmpd-plot");
    let d = tmpdir("cli");
    let bad = d.join("bad.jsonl");
    std::fs::write(&bad, "hello\n").unwrap();
    let o = Command::new(bin)
        .args([
            "sizes",
            bad.to_str().unwrap(),
            "--out-dir",
            d.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("bad.jsonl:1: not a recording line"), "{err}");

    let o = Command::new(bin)
        .args(["--font", "/nonexistent.ttf", "sizes", bad.to_str().unwrap()])
        .args(["--out-dir", d.to_str().unwrap()])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("font /nonexistent.ttf"));

    let png = d.join("fig9.png");
    let run = format!("off={}", data("balancing-off.jsonl").display());
    let o = Command::new(bin)
        .args(["utilisation", "--node", "2", "--run", &run, "-o"])
        .arg(&png)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("node 2: per-port mean utilisation"), "{text}");
    assert_eq!(decode(&png).0, 900);
}
