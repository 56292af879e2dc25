//! The `pada` command line end to end on tiny data: train, groundtruth, rank
//! with a ground truth, search, compare and plot.

mod common;

use std::path::Path;
use std::process::{Command, Output};

fn pada(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pada")).args(args).output().expect("run pada")
}

fn ok(args: &[&str]) -> String {
    let o = pada(args);
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "pada {args:?} failed:\n{out}\n{err}");
    assert!(!err.contains("panicked"), "pada {args:?} panicked:\n{err}");
    out.to_string()
}

/// The one-line error of a command that must fail.
fn err(args: &[&str]) -> String {
    let o = pada(args);
    let e = String::from_utf8_lossy(&o.stderr).to_string();
    assert!(!o.status.success() && !e.contains("panicked"), "pada {args:?} should fail cleanly:\n{e}");
    e
}

const DATA: &str = "synthetic:1x8x8:96:40:4";

/// A tiny training run into `dir`, with `extra` train flags.
fn train_tiny(dir: &Path, method: &str, extra: &[&str]) {
    let d = dir.to_str().unwrap();
    let mut args = vec![
        "train",
        "--method",
        method,
        "--data",
        DATA,
        "--epochs",
        "2",
        "--batch-size",
        "32",
        "--channels",
        "2",
        "--cells",
        "1",
        "--out",
        d,
        "-q",
    ];
    args.extend_from_slice(extra);
    ok(&args);
}

#[test]
fn summary_prints_the_nb201_parameter_count() {
    let out = ok(&["summary", "--channels", "16", "--cells", "5", "--classes", "10", "--input", "3x32x32"]);
    assert_eq!(out.lines().next(), Some("1692474"));
    let out = ok(&["summary", "--arch", "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|"]);
    assert!(out.contains("arch_params: 557914") && out.contains("arch_forward_flops_per_image"), "{out}");
}

#[test]
fn train_groundtruth_rank_search_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train_tiny(&run, "pada", &[]);
    let gt = tmp.path().join("gt.csv");
    let gt_s = gt.to_str().unwrap();
    ok(&[
        "groundtruth",
        "--archs",
        "12",
        "--epochs",
        "1",
        "--data",
        DATA,
        "--batch-size",
        "32",
        "--channels",
        "2",
        "--cells",
        "1",
        "--out",
        gt_s,
        "-q",
    ]);
    assert_eq!(std::fs::read_to_string(&gt).unwrap().lines().count(), 13);
    // the same 12 (first 12 of the seed's shuffle) are ranked, in two goes: 6 then the rest
    let run_s = run.to_str().unwrap();
    ok(&["rank", "--run", run_s, "--archs", "6", "-q"]);
    let out = ok(&["rank", "--run", run_s, "--archs", "12", "--ground-truth", gt_s, "--gt-column", "test_accuracy", "-q"]);
    assert!(out.contains("Kendall tau-b") && out.contains("precision@top10%"), "{out}");
    let rank = std::fs::read_to_string(run.join("rank.csv")).unwrap();
    assert_eq!(rank.lines().count(), 13, "12 rows, none twice:\n{rank}");
    assert!(rank.starts_with("arch,accuracy,loss\n"));
    let summary: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("rank.summary.json")).unwrap()).unwrap();
    assert_eq!(summary["architectures"], 12);
    assert!(summary["consistency"]["kendall_tau"].is_number());
    for f in ["rank.png", "rank.svg"] {
        assert!(run.join(f).exists(), "{f}");
    }
    // compare gives the same tau as rank
    let cmp = ok(&["compare", run.join("rank.csv").to_str().unwrap(), gt_s]);
    let tau = |s: &str| s.lines().find(|l| l.starts_with("Kendall")).unwrap().to_string();
    assert_eq!(tau(&cmp), tau(&out));
    // search on held-out training images, with true accuracies where known
    let s = ok(&["search", "--run", run_s, "--strategy", "exhaustive", "--archs", "12", "--top", "3", "--ground-truth", gt_s]);
    assert!(s.contains("(true "), "{s}");
    let s = ok(&["search", "--run", run_s, "--population", "6", "--iterations", "2", "--parents", "3", "--top", "2"]);
    assert!(s.lines().filter(|l| l.contains("|+|")).count() == 2, "{s}");
    // plots
    let p = ok(&["plot", "--run", run_s]);
    for f in ["loss.png", "accuracy.svg", "path_distribution.png", "data_ess.png", "rank.png"] {
        assert!(run.join("plots").join(f).exists(), "{f} missing:\n{p}");
    }
}

#[test]
fn compare_built_in_tables_by_keyword() {
    // NAS-Bench-201's CIFAR-10 ranking against its CIFAR-100 one (scipy: tau-b 0.8820)
    let out = ok(&["compare", "nb201:cifar10", "nb201:cifar100", "--pred-column", "cifar10"]);
    assert!(out.contains("Kendall tau-b: 0.8820") && out.contains("architectures: 15625"), "{out}");
    // the embedded ground truth against itself, by its mean and by one seed
    let out = ok(&["compare", "embedded", "embedded", "--pred-column", "test_accuracy"]);
    assert!(out.contains("Kendall tau-b: 1.0000"), "{out}");
    let bad = err(&["compare", "nb201:cifar11", "embedded"]);
    assert!(bad.contains("NAS-Bench-201 has no set 'cifar11'"), "{bad}");
}

#[test]
fn precision_is_recorded_and_reduced_precision_needs_a_gpu() {
    let tmp = tempfile::tempdir().unwrap();
    let e = err(&["train", "--precision", "tf32", "--data", DATA, "--epochs", "1", "--out", tmp.path().join("x").to_str().unwrap()]);
    assert!(e.contains("--precision tf32") && e.contains("--device cuda"), "{e}");
    let cpu = tmp.path().join("cpu");
    train_tiny(&cpu, "spos", &[]);
    let config = std::fs::read_to_string(cpu.join("config.json")).unwrap();
    assert!(config.contains("\"precision\": \"fp32\""), "{config}");
    // the emulated GPU defaults to TF32 convolutions (tensor cores' twin) and records it
    if cfg!(feature = "cuda-emu") {
        let emu = tmp.path().join("emu");
        train_tiny(&emu, "spos", &["--device", "cuda-emu"]);
        let config = std::fs::read_to_string(emu.join("config.json")).unwrap();
        assert!(config.contains("\"precision\": \"tf32\""), "{config}");
    }
}

#[test]
fn rank_shards_merge_to_the_unsharded_ranking() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train_tiny(&run, "spos", &[]);
    let r = run.to_str().unwrap();
    let whole = run.join("whole.csv");
    ok(&["rank", "--run", r, "--archs", "20", "--out", whole.to_str().unwrap(), "-q"]);
    for i in 0..3 {
        ok(&["rank", "--run", r, "--archs", "20", "--shard", &format!("{i}/3"), "-q"]);
    }
    let rows = |p: &Path| {
        let mut v: Vec<String> = std::fs::read_to_string(p).unwrap().lines().skip(1).map(String::from).collect();
        v.sort();
        v
    };
    // shard 1 of 3 holds architectures 1, 4, ..., 19 of the selection: 7 of 20
    assert_eq!(rows(&run.join("rank.shard-1-of-3.csv")).len(), 7);
    let out = ok(&["rank", "--run", r, "--archs", "20", "--merge"]);
    assert!(out.contains("20 architectures"), "{out}");
    assert_eq!(rows(&run.join("rank.csv")), rows(&whole));
    // what --merge refuses: a missing shard, the same shard twice, an unfinished one, another ranking
    let shard = |i: usize| run.join(format!("rank.shard-{i}-of-3.csv")).to_str().unwrap().to_string();
    let e = err(&["rank", "--run", r, "--merge", &shard(0), &shard(2)]);
    assert!(e.contains("1/3 missing"), "{e}");
    let e = err(&["rank", "--run", r, "--merge", &shard(0), &shard(0), &shard(1), &shard(2)]);
    assert!(e.contains("both shard 0/3"), "{e}");
    ok(&["rank", "--run", r, "--archs", "12", "--shard", "0/2", "-q"]);
    let e = err(&["rank", "--run", r, "--merge", &shard(0), &shard(1), run.join("rank.shard-0-of-2.csv").to_str().unwrap()]);
    assert!(e.contains("rank differently"), "{e}");
    std::fs::remove_file(run.join("rank.shard-2-of-3.summary.json")).unwrap();
    let e = err(&["rank", "--run", r, "--merge", &shard(0), &shard(1), &shard(2)]);
    assert!(e.contains("has that shard finished"), "{e}");
    // one shard per device, each its own process, merged: the same ranking
    let listed = run.join("listed.csv");
    ok(&["rank", "--run", r, "--archs", "20", "--device", "cpu,cpu", "--out", listed.to_str().unwrap(), "-q"]);
    assert_eq!(rows(&listed), rows(&whole));
    let e = err(&["rank", "--run", r, "--shard", "3/3"]);
    assert!(e.contains("--shard") && e.contains("0 <= I < N"), "{e}");
}
