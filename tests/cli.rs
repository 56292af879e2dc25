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
    // 12 random architectures ranked in two goes (6, then 12: the first 6 of the same shuffle are kept)
    let run_s = run.to_str().unwrap();
    ok(&["rank", "--run", run_s, "--archs", "6", "-q"]);
    ok(&["rank", "--run", run_s, "--archs", "12", "-q"]);
    let rank = std::fs::read_to_string(run.join("rank.csv")).unwrap();
    assert_eq!(rank.lines().count(), 13, "12 rows, none twice:\n{rank}");
    assert!(rank.starts_with("arch,accuracy,loss\n"));
    // their stand-alone accuracies: a ground truth
    let gt = tmp.path().join("gt.csv");
    let gt_s = gt.to_str().unwrap();
    let ranked = run.join("rank.csv");
    ok(&[
        "groundtruth",
        "--archs",
        ranked.to_str().unwrap(),
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
    let out = ok(&["rank", "--run", run_s, "--archs", "12", "--ground-truth", gt_s, "--gt-column", "test_accuracy", "-q"]);
    assert!(out.contains("Kendall tau-b") && out.contains("precision@top10%") && out.contains("true top 5%"), "{out}");
    assert_eq!(std::fs::read_to_string(run.join("rank.csv")).unwrap(), rank, "nothing scored twice");
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
    let o = pada(&["search", "--run", run_s, "--population", "6", "--iterations", "2", "--parents", "3", "--top", "2"]);
    let (s, e) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(s.lines().filter(|l| l.contains("|+|")).count() == 2, "{s}");
    // no holdout: said so, with the way to hold images out, and no claim of held-out data
    assert!(e.contains("pada train --holdout") && s.contains("training images the supernet saw") && !s.contains("held-out"), "{e}\n{s}");
    // --iterations 2: the initial population and generations 1 and 2
    assert!(e.contains("initial population") && e.contains("generation 2 of 2") && !e.contains("generation 3"), "{e}");
    for (flag, value, want) in [
        ("--mutation-prob", "2", "--mutation-prob must be a probability"),
        ("--mutation-prob", "nan", "--mutation-prob must be a probability"),
        ("--parents", "0", "--parents must be between 1 and --population"),
        ("--population", "1", "--population must be at least 2"),
        ("--iterations", "0", "--iterations must be at least 1"),
    ] {
        let started = std::time::Instant::now();
        let e = err(&["search", "--run", run_s, flag, value]);
        assert!(e.contains(want) && e.trim().lines().count() == 1, "{flag} {value}: {e}");
        assert!(started.elapsed() < std::time::Duration::from_secs(2), "{flag}: checked before any scoring");
    }
    // plots
    let p = ok(&["plot", "--run", run_s]);
    for f in ["loss.png", "accuracy.svg", "path_distribution.png", "data_ess.png", "rank.png"] {
        assert!(run.join("plots").join(f).exists(), "{f} missing:\n{p}");
    }
    let e = err(&["plot", "--run", tmp.path().join("nope").to_str().unwrap()]);
    assert!(e.contains("is nope a pada run directory") || e.contains("a pada run directory"), "{e}");
}

/// The verdict's scatter is drawn by `pada plot --run`; a verdict prints
/// Kendall tau among the true top 10% and 5%; every long phase prints plain
/// progress lines (here every update: PADA_PROGRESS_SECONDS=0).
#[test]
fn verdict_progress_and_its_plot() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let o = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(["train", "--data", DATA, "--epochs", "1", "--batch-size", "32", "--channels", "2", "--cells", "1"])
        .args(["--ground-truth", "embedded", "--verdict-archs", "24", "--out", run.to_str().unwrap()])
        .env("PADA_PROGRESS_SECONDS", "0")
        .output()
        .unwrap();
    let (out, e) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{e}");
    for phase in [
        "epoch 1/1 step",
        "summary.json: test accuracy of random architecture 5 of 5",
        "reference rows: zero-cost proxies of 24/24",
        "verdict: scored 24/24",
    ] {
        assert!(e.contains(phase), "no progress line '{phase}':\n{e}");
    }
    assert!(e.contains("done: 1 epoch,") && !e.contains("1 epochs"), "{e}");
    assert!(out.contains("top 10%") && out.contains("top 5%") && out.contains("synflow with batch norm"), "{out}");
    // every row of the table lines up
    let widths: Vec<usize> = out.lines().skip(3).map(|l| l.find(" of ").unwrap()).collect();
    assert!(widths.windows(2).all(|w| w[0] == w[1]), "{out}");
    let p = ok(&["plot", "--run", run.to_str().unwrap()]);
    assert!(run.join("plots/verdict.png").exists() && run.join("plots/verdict.svg").exists(), "{p}");
}

/// `pada rank --archs N` does not draw the architectures of a ground truth
/// drawn with the run's seed (the embedded one was drawn with seed 0).
#[test]
fn random_rankings_are_not_the_ground_truths_sample() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    train_tiny(&run, "spos", &[]);
    ok(&["rank", "--run", run.to_str().unwrap(), "--archs", "50", "-q"]);
    let gt = pada::table::read_arch_table(&"embedded".parse().unwrap(), None, "test_accuracy").unwrap();
    let ranked = pada::table::read_archs(&run.join("rank.csv"), None).unwrap();
    let common = ranked.iter().filter(|g| gt.archs.contains(g)).count();
    assert!(common <= 3, "{common} of the 50 random architectures are in the embedded ground truth");
}

#[test]
fn compare_built_in_tables_by_keyword() {
    // NAS-Bench-201's CIFAR-10 ranking against its CIFAR-100 one (scipy: tau-b 0.8820), by
    // their default columns
    let out = ok(&["compare", "nb201:cifar10", "nb201:cifar100"]);
    assert!(out.contains("Kendall tau-b: 0.8820") && out.contains("architectures: 15625"), "{out}");
    // the embedded ground truth against itself, by its mean and by one seed
    let out = ok(&["compare", "embedded", "embedded", "--pred-column", "test_accuracy"]);
    assert!(out.contains("Kendall tau-b: 1.0000"), "{out}");
    let bad = err(&["compare", "nb201:cifar11", "embedded"]);
    assert!(bad.contains("\"nb201:cifar11\": no such built-in table") && bad.contains("nbmacro:cifar10"), "{bad}");
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

/// `pada <command> --help` describes every flag and argument of every command.
#[test]
fn every_flag_has_help() {
    use clap::CommandFactory;
    let cli = pada::cli::Cli::command();
    let mut missing = Vec::new();
    for sub in cli.get_subcommands() {
        assert!(sub.get_about().is_some(), "pada {} has no description", sub.get_name());
        for arg in sub.get_arguments() {
            let id = arg.get_id().as_str();
            if id != "help" && id != "version" && arg.get_help().is_none() {
                missing.push(format!("pada {} {}", sub.get_name(), arg.get_long().map_or(id.to_string(), |l| format!("--{l}"))));
            }
        }
    }
    assert!(missing.is_empty(), "no help text: {}", missing.join(", "));
}

#[test]
fn sweep_takes_the_search_space() {
    let out = std::env::temp_dir().join("pada-sweep-space-test");
    let out = out.to_str().unwrap();
    // `--space` before `--` reaches every run: NAS-Bench-Macro has no table of this data
    let e = err(&["sweep", "--space", "nb-macro", "--methods", "spos", "--seeds", "0", "--out", out, "--", "--data", DATA]);
    assert!(e.contains("no built-in ground truth in nb-macro"), "{e}");
    let e = err(&["sweep", "--space", "nb-macro", "--out", out, "--", "--space", "nb201"]);
    assert!(e.contains("--space is given twice"), "{e}");
}
