//! `tools/plot.py` on a real result: a scripted run of real processes writes its progress CSV
//! and JSON result, and the script draws every picture from them, as SVG and as PNG; and
//! `tools/pictures.sh`, which makes the docs' pictures from one run with one command; and
//! `tools/scale.sh` with `tools/scale_plot.py`.

mod common;

use std::path::Path;
use std::process::Command;

use common::{Proc, ensure_python_module, nodes, registry, said, say_skipped, temp_path};

/// A well-formed SVG document that draws something (matplotlib draws with paths).
fn assert_svg(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // matplotlib writes the SVG doctype, which roxmltree refuses unless asked.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options)
        .unwrap_or_else(|e| panic!("{} is not well-formed XML: {e}", path.display()));
    assert!(doc.root_element().has_tag_name("svg"), "{}", path.display());
    let paths = doc.descendants().filter(|n| n.has_tag_name("path")).count();
    assert!(paths > 10, "{}: only {paths} paths", path.display());
}

/// A PNG file: the signature, then the IHDR chunk with a picture's size.
fn assert_png(path: &Path) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "{}", path.display());
    assert_eq!(&bytes[12..16], b"IHDR", "{}", path.display());
    let width = u32::from_be_bytes(bytes[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(bytes[20..24].try_into().unwrap());
    assert!(width >= 200 && height >= 200, "{width} x {height}");
    assert!(bytes.len() > 5_000, "{} bytes", bytes.len());
}

fn plot(args: &[&str]) -> String {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/plot.py");
    let output = Command::new("python3")
        .arg(&script)
        .args(args)
        // The test makes matplotlib importable first (`ensure_python_module`); the script's
        // own virtual environment is for users and stays out of the test.
        .env("OVERLAY_PLOT_NO_INSTALL", "1")
        .output()
        .expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    assert!(
        output.status.success(),
        "plot.py {args:?}: {}\n{stdout}{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

#[test]
fn plot_draws_a_real_run() {
    if let Err(why) = ensure_python_module("matplotlib", "python3-matplotlib") {
        say_skipped("plot_draws_a_real_run", &why);
        return;
    }
    let csv = temp_path("plot-progress.csv");
    let json = temp_path("plot-result.json");
    // About 3 s at 1,000 packets/s per node: several progress rows.
    let (mut reg, port) = registry(
        &[
            "--nodes",
            "4",
            "--start",
            "3000",
            "--rate",
            "1000",
            "--csv",
            csv.arg(),
            "--json",
            json.arg(),
        ],
        false,
    );
    let _nodes: Vec<Proc> = nodes(4, port, &[]);
    let status = reg.wait_exit();
    assert!(status.success(), "registry: {status}\n{}", reg.dump());

    let dir = TempDir::new("plot-pictures");
    let stdout = plot(&["all", csv.arg(), json.arg(), "-d", dir.arg(), "--name", "4"]);
    for name in ["progress", "hops", "latency", "load"] {
        let path = dir.0.join(format!("{name}-4.svg"));
        assert!(
            stdout.contains(&format!("plot.py: wrote {}", path.display())),
            "{stdout}"
        );
        assert_svg(&path);
    }
    let png = dir.0.join("hops-4.png");
    plot(&["hops", json.arg(), "-o", png.to_str().unwrap()]);
    assert_png(&png);
    let png = dir.0.join("progress-4.png");
    plot(&["progress", csv.arg(), "-o", png.to_str().unwrap()]);
    assert_png(&png);
}

/// `tools/pictures.sh` regenerates the docs' five pictures with one command, from one real
/// run (here 4 nodes, 2,000 packets each at 2,000 packets/s, into a directory of the test's):
/// the overlay with its traffic, drawn by the registry's `--export-overlay`, and plot.py's four.
#[test]
fn pictures_sh_draws_every_picture_from_one_run() {
    if let Err(why) = ensure_python_module("matplotlib", "python3-matplotlib") {
        say_skipped("pictures_sh_draws_every_picture_from_one_run", &why);
        return;
    }
    let (docs, out) = (TempDir::new("pictures-docs"), TempDir::new("pictures-out"));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools/pictures.sh");
    let output = Command::new(&script)
        .args(["4", "2000", "2000"])
        .env("OVERLAY_BIN", common::BIN)
        .env("OUT", &out.0)
        .env("DOCS", &docs.0)
        .env("OVERLAY_PLOT_NO_INSTALL", "1")
        .output()
        .expect("pictures.sh runs");
    let said = said(&output);
    assert!(output.status.success(), "{}\n{said}", output.status);
    let overlay = docs.0.join("overlay-4.svg");
    let text = std::fs::read_to_string(&overlay).unwrap_or_else(|e| panic!("{e}\n{said}"));
    // matplotlib writes the SVG doctype, which roxmltree refuses unless asked.
    let options = roxmltree::ParsingOptions {
        allow_dtd: true,
        ..Default::default()
    };
    let doc = roxmltree::Document::parse_with_options(&text, options).expect("well-formed SVG");
    let nodes = doc
        .descendants()
        .filter(|n| n.attribute("class") == Some("node"))
        .count();
    assert_eq!(nodes, 4, "{said}");
    let carried: u64 = doc
        .descendants()
        .filter_map(|n| n.attribute("data-packets"))
        .map(|p| p.parse::<u64>().unwrap())
        .sum();
    assert!(
        carried >= 8_000,
        "the run's traffic drawn: {carried}\n{said}"
    );
    for name in ["progress", "hops", "latency", "load"] {
        assert_svg(&docs.0.join(format!("{name}-4.svg")));
    }
}

/// `tools/scale.sh` then `tools/scale_plot.py`: throughput and hops against N from real runs
/// (here 4 and 8 nodes, 500 packets each): a CSV row per size that passed, with the mean hops
/// measured next to the exact value for its NR, drawn as one SVG.
#[test]
fn scale_sh_and_its_plot() {
    if let Err(why) = ensure_python_module("matplotlib", "python3-matplotlib") {
        say_skipped("scale_sh_and_its_plot", &why);
        return;
    }
    let out = TempDir::new("scale-out");
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("tools");
    let output = Command::new(tools.join("scale.sh"))
        .args(["4", "8"])
        .env("OVERLAY_BIN", common::BIN)
        .env("OUT", &out.0)
        .env("PACKETS", "500")
        .output()
        .expect("scale.sh runs");
    let said = said(&output);
    assert!(output.status.success(), "{}\n{said}", output.status);
    let csv = out.0.join("scale.csv");
    let text = std::fs::read_to_string(&csv).unwrap_or_else(|e| panic!("{e}\n{said}"));
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|&c| c == name).unwrap();
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    assert_eq!(rows.len(), 2, "{text}");
    for (row, nodes) in rows.iter().zip(["4", "8"]) {
        assert_eq!(row[column("nodes")], nodes, "{text}");
        assert_eq!(row[column("verdict")], "PASS", "{text}");
        let mean: f64 = row[column("hops_mean")].parse().unwrap();
        let exact: f64 = row[column("hops_mean_exact")].parse().unwrap();
        assert!((mean - exact).abs() < 0.05, "{text}");
    }
    let svg = out.0.join("scale.svg");
    let output = Command::new("python3")
        .arg(tools.join("scale_plot.py"))
        .args([csv.to_str().unwrap(), "-o", svg.to_str().unwrap()])
        .env("OVERLAY_PLOT_NO_INSTALL", "1")
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert_svg(&svg);
}

/// A directory removed when the test ends.
struct TempDir(std::path::PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = temp_path(name).0.clone();
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    fn arg(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
