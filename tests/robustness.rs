//! Bad input, interruptions, divergence and reproducibility, through the real
//! `pada` binary: every bad input gets a one-line error and a non-zero exit
//! (never a panic), killed runs resume to the uninterrupted result, NaN
//! gradients stop or are skipped, and the thread count does not change results.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn pada(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_pada")).args(args).output().expect("run pada")
}

fn ok(args: &[&str]) {
    let o = pada(args);
    assert!(o.status.success(), "pada {args:?}: {}", String::from_utf8_lossy(&o.stderr));
}

const DATA: &str = "synthetic:1x8x8:128:32:4";

/// A tiny training run into `dir`; `extra` may override the defaults.
fn train_args<'a>(dir: &'a str, extra: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec!["train", "--out", dir, "-q"];
    for (flag, value) in [("--data", DATA), ("--channels", "2"), ("--cells", "1"), ("--batch-size", "16")] {
        if !extra.contains(&flag) {
            v.extend([flag, value]);
        }
    }
    v.extend_from_slice(extra);
    v
}

/// One bad input: the command, and a phrase its error must contain.
struct Case {
    args: Vec<String>,
    want: &'static str,
}

#[test]
fn bad_input_gets_a_one_line_error_never_a_panic() {
    let tmp = tempfile::tempdir().unwrap();
    let t = tmp.path();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    // an MNIST-style directory, then broken copies of it
    let idx = |magic: u8, dims: &[u32], payload: &[u8]| -> Vec<u8> {
        let mut b = vec![0, 0, 8, magic];
        dims.iter().for_each(|d| b.extend_from_slice(&d.to_be_bytes()));
        b.extend_from_slice(payload);
        b
    };
    let mnist = |name: &str, images: Vec<u8>, labels: Vec<u8>| {
        let d = t.join(name);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join("train-images-idx3-ubyte"), &images).unwrap();
        std::fs::write(d.join("train-labels-idx1-ubyte"), &labels).unwrap();
        std::fs::write(d.join("t10k-images-idx3-ubyte"), idx(3, &[2, 28, 28], &[7; 2 * 784])).unwrap();
        std::fs::write(d.join("t10k-labels-idx1-ubyte"), idx(1, &[2], &[1, 2])).unwrap();
        format!("mnist:{}", d.display())
    };
    let good_images = idx(3, &[4, 28, 28], &[9; 4 * 784]);
    let good_labels = idx(1, &[4], &[0, 1, 2, 3]);
    let bad_magic = mnist("magic", idx(2, &[4, 28, 28], &[9; 4 * 784]), good_labels.clone());
    let truncated = mnist("trunc", good_images[..good_images.len() - 100].to_vec(), good_labels.clone());
    let label_range = mnist("label", good_images.clone(), idx(1, &[4], &[0, 1, 12, 3]));
    let counts = mnist("counts", good_images.clone(), idx(1, &[3], &[0, 1, 2]));
    let empty = mnist("empty", idx(3, &[0, 28, 28], &[]), idx(1, &[0], &[]));
    let missing = t.join("missing");
    std::fs::create_dir_all(&missing).unwrap();
    let cifar = t.join("cifar");
    std::fs::create_dir_all(cifar.join("cifar-10-batches-bin")).unwrap();
    for i in 1..=5 {
        std::fs::write(cifar.join(format!("cifar-10-batches-bin/data_batch_{i}.bin")), vec![3u8; 3073]).unwrap();
    }
    std::fs::write(cifar.join("cifar-10-batches-bin/test_batch.bin"), vec![3u8; 3000]).unwrap();
    let cifar_py = t.join("cifar_py/cifar-10-batches-py");
    std::fs::create_dir_all(&cifar_py).unwrap();
    for f in ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch"] {
        std::fs::write(cifar_py.join(f), b"not a pickle").unwrap();
    }
    let cifar_missing = t.join("cifar_missing/cifar-10-batches-bin");
    std::fs::create_dir_all(&cifar_missing).unwrap();
    std::fs::write(cifar_missing.join("data_batch_1.bin"), vec![3u8; 3073]).unwrap();
    // ground-truth tables
    let a = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
    let b = "|none~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
    let csv = |name: &str, text: String| {
        let p = t.join(name);
        std::fs::write(&p, text).unwrap();
        s(&p)
    };
    let pred = csv("pred.csv", format!("arch,accuracy\n{a},50\n{b},40\n"));
    let no_col = csv("nocol.csv", format!("arch,acc\n{a},1\n{b},2\n"));
    let nan_col = csv("nan.csv", format!("arch,test_accuracy\n{a},high\n{b},2\n"));
    let dup = csv("dup.csv", format!("arch,test_accuracy\n{a},1\n{a},2\n"));
    let bad_op = csv("op.csv", format!("arch,test_accuracy\n{a},1\n{},2\n", b.replace("none~0|+|none", "none~0|+|conv5x5")));
    // runs: a good one, and one of another configuration
    let run_a = t.join("run_a");
    let run_b = t.join("run_b");
    ok(&train_args(&s(&run_a), &["--epochs", "1"]));
    ok(&train_args(&s(&run_b), &["--epochs", "1", "--channels", "3"]));
    let other_weights = t.join("run_other");
    std::fs::create_dir_all(&other_weights).unwrap();
    for f in ["config.json", "metrics.jsonl"] {
        std::fs::copy(run_a.join(f), other_weights.join(f)).unwrap();
    }
    std::fs::copy(run_b.join("supernet.safetensors"), other_weights.join("supernet.safetensors")).unwrap();
    std::fs::copy(run_b.join("checkpoint.safetensors"), other_weights.join("checkpoint.safetensors")).unwrap();
    let truncated_weights = t.join("run_trunc");
    std::fs::create_dir_all(&truncated_weights).unwrap();
    std::fs::copy(run_a.join("config.json"), truncated_weights.join("config.json")).unwrap();
    let w = std::fs::read(run_a.join("supernet.safetensors")).unwrap();
    std::fs::write(truncated_weights.join("supernet.safetensors"), &w[..w.len() / 2]).unwrap();
    std::fs::write(truncated_weights.join("checkpoint.safetensors"), &w[..100]).unwrap();

    let c = |args: &[&str], want: &'static str| Case { args: args.iter().map(|a| a.to_string()).collect(), want };
    let out = s(&t.join("out"));
    let cases = vec![
        c(&["train", "--data", &bad_magic, "--out", &out], "wrong IDX magic"),
        c(&["train", "--data", &truncated, "--out", &out], "truncated or corrupt"),
        c(&["train", "--data", &label_range, "--out", &out], "train-labels-idx1-ubyte: label 12"),
        c(&["train", "--data", &counts, "--out", &out], "4 images but"),
        c(&["train", "--data", &empty, "--out", &out], "empty"),
        c(&["train", "--data", &format!("mnist:{}", missing.display()), "--out", &out], "none of these files exists"),
        c(&["train", "--data", "mnist:/no/such/dir", "--out", &out], "not a directory"),
        c(&["train", "--data", &format!("cifar10:{}", cifar.display()), "--out", &out], "not a whole number"),
        c(&["train", "--data", &format!("cifar10:{}", t.join("cifar_py").display()), "--out", &out], "not a readable Python pickle"),
        c(&["train", "--data", &format!("cifar10:{}", t.join("cifar_missing").display()), "--out", &out], "is missing"),
        c(&["train", "--data", "imagenet:/x", "--out", &out], "not a data specification"),
        c(&["summary", "--arch", "|nor_conv_3x3~0|+|none~0|conv~1|+|skip_connect~0|none~1|avg_pool_3x3~2|"], "unknown op"),
        c(&["summary", "--arch", "|nor_conv_3x3~0|+|none~0|"], "malformed NAS-Bench-201 string"),
        c(&["compare", &pred, &no_col], "no column 'test_accuracy'"),
        c(&["compare", &pred, &nan_col], "is not a number"),
        c(&["compare", &pred, &dup], "appears twice"),
        c(&["compare", &pred, &bad_op], "unknown op"),
        c(&["compare", &pred, &s(&t.join("nope.csv"))], "cannot open"),
        c(&["rank", "--run", &s(&other_weights), "--archs", "2"], "the weights are for"),
        c(&["train", "--resume", &s(&other_weights)], "checkpoint is for supernet"),
        c(&["rank", "--run", &s(&truncated_weights), "--archs", "2"], "not a valid safetensors file"),
        c(&["train", "--resume", &s(&truncated_weights)], "not a valid safetensors file"),
        c(&["rank", "--run", &s(&t.join("no_run"))], "config.json"),
        c(&["train", "--batch-size", "0", "--out", &out], "--batch-size must be at least 1"),
        c(&["train", "--epochs", "0", "--out", &out], "--epochs must be at least 1"),
        c(&["train", "--lr", "0", "--out", &out], "--lr must be a positive number"),
        c(&["train", "--lr", "-1", "--out", &out], "--lr must be a positive number"),
        c(&["train", "--channels", "0", "--out", &out], "--channels must be at least 1"),
        c(&["train", "--device", "tpu", "--out", &out], "not a device"),
        c(&["train", "--batch-size", "many", "--out", &out], "invalid value 'many' for '--batch-size"),
        c(&["train", "--resume", &s(&run_a), "--epochs", "3"], "give no other training flags"),
        c(&["train", "--out", &s(&run_a), "--data", DATA], "already holds a run"),
        c(&["rank", "--run", &s(&run_a), "--archs", "0"], "--archs 0"),
        c(&["summary", "--input", "3x30x30"], "multiples of 4"),
        c(&["plot", "--sweep", &s(&missing)], "sweep.csv: no runs yet (has the sweep finished a run?)"),
    ];
    for case in &cases {
        let args: Vec<&str> = case.args.iter().map(String::as_str).collect();
        let o = pada(&args);
        let err = String::from_utf8_lossy(&o.stderr).trim_end().to_string();
        assert!(!o.status.success(), "pada {args:?} should fail");
        assert!(!err.contains("panicked"), "pada {args:?} panicked:\n{err}");
        assert_eq!(err.lines().count(), 1, "pada {args:?}: expected one line of error, got:\n{err}");
        assert!(err.starts_with("error: ") && err.contains(case.want), "pada {args:?}: expected {:?} in\n{err}", case.want);
        // the list of cases and their messages, for `-- --nocapture`
        println!("pada {} => {err}", args.join(" ").replace(&s(t), "$TMP"));
    }
    assert!(!Path::new(&out).join("config.json").exists(), "no run was started by a bad command");
}

fn strip_timing(dir: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(dir.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            for k in ["seconds", "images_per_sec"] {
                v.as_object_mut().unwrap().remove(k);
            }
            v
        })
        .collect()
}

#[test]
fn killed_runs_resume_to_the_uninterrupted_result() {
    let tmp = tempfile::tempdir().unwrap();
    let full = tmp.path().join("full");
    let cut = tmp.path().join("cut");
    let (fs, cs) = (full.to_str().unwrap().to_string(), cut.to_str().unwrap().to_string());
    // long enough (a few seconds) to be killed at several points
    let common = ["--epochs", "24", "--method", "pada", "--data", "synthetic:1x16x16:512:32:4", "--channels", "4"];
    ok(&train_args(&fs, &common));
    // kill -9 at pseudo-random moments, then resume until the run completes
    let mut delay_ms = 37u64;
    let mut kills = 0;
    for attempt in 0..60 {
        let started = cut.join("config.json").exists();
        let args: Vec<&str> = if started { vec!["train", "--resume", &cs, "-q"] } else { train_args(&cs, &common) };
        let mut child = Command::new(env!("CARGO_BIN_EXE_pada")).args(&args).stdout(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
        delay_ms = (delay_ms * 7919 + 101) % 700 + 30;
        std::thread::sleep(Duration::from_millis(if attempt < 12 { delay_ms } else { 5000 }));
        match child.try_wait().unwrap() {
            Some(status) => {
                assert!(status.success(), "attempt {attempt} failed");
                break;
            }
            None => {
                child.kill().unwrap(); // SIGKILL
                child.wait().unwrap();
                kills += 1;
                // whatever is there is readable: metrics lines, and the checkpoint if any
                if cut.join("metrics.jsonl").exists() {
                    let _ = strip_timing(&cut);
                }
                if cut.join("checkpoint.safetensors").exists() {
                    let bytes = std::fs::read(cut.join("checkpoint.safetensors")).unwrap();
                    safetensors::SafeTensors::deserialize(&bytes).expect("a complete checkpoint");
                }
            }
        }
    }
    assert!(kills >= 3, "the test needs some kills ({kills})");
    assert!(cut.join("summary.json").exists(), "the interrupted run never completed");
    for f in ["supernet.safetensors", "checkpoint.safetensors"] {
        let same = std::fs::read(full.join(f)).unwrap() == std::fs::read(cut.join(f)).unwrap();
        assert!(same, "{f} differs after {kills} kills");
    }
    assert_eq!(strip_timing(&full), strip_timing(&cut));
}

#[test]
fn ctrl_c_stops_after_the_step_and_resume_completes_the_run() {
    let tmp = tempfile::tempdir().unwrap();
    let (full, cut) = (tmp.path().join("full"), tmp.path().join("cut"));
    let (fs, cs) = (full.to_str().unwrap().to_string(), cut.to_str().unwrap().to_string());
    let common = ["--epochs", "24", "--method", "pada", "--data", "synthetic:1x16x16:512:32:4", "--channels", "4"];
    ok(&train_args(&fs, &common));
    let child = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(train_args(&cs, &common))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // interrupt once the first epoch is on disk, as a user pressing Ctrl-C would
    let metrics = cut.join("metrics.jsonl");
    for _ in 0..3000 {
        if std::fs::read_to_string(&metrics).is_ok_and(|m| !m.is_empty()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let sent = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(sent.success());
    let o = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(130), "{err}");
    assert!(err.contains("interrupted in epoch") && err.contains("pada train --resume"), "{err}");
    let done = strip_timing(&cut).len();
    assert!((1..24).contains(&done), "{done} epochs kept");
    ok(&["train", "--resume", &cs, "-q"]);
    for f in ["supernet.safetensors", "checkpoint.safetensors"] {
        assert!(std::fs::read(full.join(f)).unwrap() == std::fs::read(cut.join(f)).unwrap(), "{f} differs");
    }
    assert_eq!(strip_timing(&full), strip_timing(&cut));
}

#[test]
fn divergence_stops_or_skips() {
    let tmp = tempfile::tempdir().unwrap();
    let stop = tmp.path().join("stop");
    let o = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(train_args(stop.to_str().unwrap(), &["--epochs", "3"]))
        .env("PADA_FAULT_NAN_STEP", "10") // epoch 2 (8 steps an epoch), step 3
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success());
    assert!(err.contains("diverged in epoch 2, step 3 of 8") && err.contains("stem.weight") && err.contains("not finite"), "{err}");
    // the last good epoch is kept and readable
    assert_eq!(strip_timing(&stop).len(), 1);
    ok(&["rank", "--run", stop.to_str().unwrap(), "--archs", "2", "-q"]);
    let skip = tmp.path().join("skip");
    let o = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(train_args(skip.to_str().unwrap(), &["--epochs", "3", "--on-nan", "skip"]))
        .env("PADA_FAULT_NAN_STEP", "10")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let m = strip_timing(&skip);
    assert_eq!(m.iter().map(|e| e["skipped_steps"].as_u64().unwrap()).collect::<Vec<_>>(), vec![0, 1, 0]);
    assert!(m.iter().all(|e| e["loss"].as_f64().unwrap().is_finite()));
}

#[test]
fn results_do_not_depend_on_the_number_of_threads() {
    let tmp = tempfile::tempdir().unwrap();
    let (one, two) = (tmp.path().join("one"), tmp.path().join("two"));
    ok(&train_args(one.to_str().unwrap(), &["--epochs", "2", "--threads", "1", "--data-importance", "full"]));
    ok(&train_args(two.to_str().unwrap(), &["--epochs", "2", "--threads", "2", "--data-importance", "full"]));
    for f in ["supernet.safetensors", "checkpoint.safetensors"] {
        let same = std::fs::read(one.join(f)).unwrap() == std::fs::read(two.join(f)).unwrap();
        assert!(same, "{f} differs between 1 and 2 threads");
    }
}

#[test]
fn rank_and_groundtruth_resume_after_a_kill() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let rs = run.to_str().unwrap().to_string();
    ok(&train_args(&rs, &["--epochs", "1"]));
    // reference: ranking in one go
    let whole = tmp.path().join("whole.csv");
    ok(&["rank", "--run", &rs, "--archs", "300", "--out", whole.to_str().unwrap(), "-q"]);
    let parts = tmp.path().join("parts.csv");
    let ps = parts.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(["rank", "--run", &rs, "--archs", "300", "--out", ps, "-q"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(400));
    child.kill().unwrap();
    child.wait().unwrap();
    // a torn last line is dropped on resume
    if let Ok(mut t) = std::fs::read(&parts) {
        t.extend_from_slice(b"|nor_conv_3x3~0|+|no");
        std::fs::write(&parts, t).unwrap();
    }
    ok(&["rank", "--run", &rs, "--archs", "300", "--out", ps, "-q"]);
    assert_eq!(std::fs::read_to_string(&whole).unwrap(), std::fs::read_to_string(&parts).unwrap());
    // groundtruth: a kill, then the rest; each architecture once, results as an uninterrupted run gives
    let gt_args = |out: &str| -> Vec<String> {
        [
            "groundtruth",
            "--archs",
            "6",
            "--epochs",
            "1",
            "--data",
            DATA,
            "--batch-size",
            "16",
            "--channels",
            "2",
            "--cells",
            "1",
            "--out",
            out,
            "-q",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (g1, g2) = (tmp.path().join("g1.csv"), tmp.path().join("g2.csv"));
    ok(&gt_args(g1.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    let mut child = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(gt_args(g2.to_str().unwrap()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    child.kill().unwrap();
    child.wait().unwrap();
    ok(&gt_args(g2.to_str().unwrap()).iter().map(String::as_str).collect::<Vec<_>>());
    let cols = |p: &Path| -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_to_string(p).unwrap().lines().map(|l| l.rsplit_once(',').unwrap().0.to_string()).collect();
        v.sort();
        v
    };
    assert_eq!(cols(&g1), cols(&g2), "the same architectures and accuracies (timings aside)");
}

#[test]
fn sweep_resumes_after_a_kill_keeping_finished_runs() {
    let tmp = tempfile::tempdir().unwrap();
    // a small ground truth to judge against
    let gt = tmp.path().join("gt.csv");
    let mut text = String::from("arch,test_accuracy\n");
    for i in 0..12usize {
        text += &format!("{},{}\n", pada::arch::Space::NB201.arch(i * 1301).unwrap(), 50 + (i * 7) % 13);
    }
    std::fs::write(&gt, text).unwrap();
    let sweep = |out: &Path| -> Vec<String> {
        [
            "sweep",
            "--methods",
            "spos,pada:per-edge",
            "--seeds",
            "3",
            "--ground-truth",
            gt.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "-q",
            "--",
            "--data",
            "synthetic:1x16x16:512:32:4",
            "--epochs",
            "24",
            "--channels",
            "4",
            "--cells",
            "1",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let (whole, cut) = (tmp.path().join("whole"), tmp.path().join("cut"));
    ok(&sweep(&whole).iter().map(String::as_str).collect::<Vec<_>>());
    // one seed per method: a mean without a spread, not "+- NaN"
    let md = std::fs::read_to_string(whole.join("sweep.md")).unwrap();
    let spos = md.lines().find(|l| l.starts_with("| spos | 1 | ")).unwrap_or_else(|| panic!("no spos row:\n{md}"));
    assert!(!spos.contains("+-") && !md.contains("NaN"), "{md}");
    // kill -9 while the second run trains: after its first epoch is on disk
    let mut child = Command::new(env!("CARGO_BIN_EXE_pada")).args(sweep(&cut)).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap();
    let second = cut.join("pada_per-edge-seed3");
    let started = std::time::Instant::now();
    while !second.join("metrics.jsonl").exists() {
        assert!(started.elapsed() < Duration::from_secs(120), "the second run never started");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(!second.join("summary.json").exists(), "the kill came too late to test a resume");
    let first_verdict = std::fs::read(cut.join("spos-seed3/verdict.json")).unwrap();
    ok(&sweep(&cut).iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(std::fs::read(cut.join("spos-seed3/verdict.json")).unwrap(), first_verdict, "the finished run is kept as it was");
    // the same table as an uninterrupted sweep (training times aside)
    let rows = |d: &Path| -> Vec<String> {
        let mut rd = csv::Reader::from_path(d.join("sweep.csv")).unwrap();
        let seconds = rd.headers().unwrap().iter().position(|h| h == "train_seconds").unwrap();
        rd.records()
            .map(|r| r.unwrap().iter().enumerate().filter(|(i, _)| *i != seconds).map(|(_, v)| v).collect::<Vec<_>>().join(","))
            .collect()
    };
    assert_eq!(rows(&whole), rows(&cut));
    for f in ["supernet.safetensors", "checkpoint.safetensors"] {
        assert_eq!(std::fs::read(whole.join("pada_per-edge-seed3").join(f)).unwrap(), std::fs::read(second.join(f)).unwrap(), "{f}");
    }
    // the sweep's figure, into a folder that does not exist yet
    let figs = tmp.path().join("figures/sweep");
    ok(&["plot", "--sweep", whole.to_str().unwrap(), "--out", figs.to_str().unwrap()]);
    for f in ["kendall_tau.png", "kendall_tau.svg"] {
        assert!(figs.join(f).exists(), "{f}");
    }
    // its grey rows are the sweep's own reference rows, those of sweep.md
    let refs: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(whole.join("sweep.references.json")).unwrap()).unwrap();
    let md = std::fs::read_to_string(whole.join("sweep.md")).unwrap();
    let refs = refs.as_array().unwrap();
    assert!(!refs.is_empty());
    for r in refs {
        let row = format!("| *{}* | | {:.3} |", r["name"].as_str().unwrap(), r["consistency"]["kendall_tau"].as_f64().unwrap());
        assert!(md.contains(&row), "{row} not in\n{md}");
    }
}

/// A sweep keeps a finished run only when it was trained with the settings
/// asked for (a changed train flag is an error naming the setting), makes its
/// verdict again when the verdict's settings changed, and records the train
/// flags in sweep.md and sweep.csv.
#[test]
fn sweep_keeps_only_runs_of_the_settings_asked_for() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let sweep = |extra_train: &[&str], extra: &[&str]| -> Vec<String> {
        let mut v: Vec<&str> = vec!["sweep", "--methods", "spos", "--seeds", "0", "--out", out.to_str().unwrap(), "-q"];
        v.extend(["--ground-truth", "embedded"]);
        v.extend_from_slice(extra);
        v.extend(["--", "--data", "synthetic:1x8x8:64:200:10", "--cells", "1", "--batch-size", "32"]);
        v.extend_from_slice(extra_train);
        v.iter().map(|s| s.to_string()).collect()
    };
    let run = |args: Vec<String>| pada(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let o = run(sweep(&["--epochs", "1", "--channels", "2"], &["--verdict-archs", "20"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("(20 architectures") && md.contains("train flags: `--data synthetic:1x8x8:64:200:10"), "{md}");
    let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
    assert!(csv.lines().next().unwrap().contains("train_flags") && csv.contains("--channels 2"), "{csv}");
    // other train settings: refused, naming each difference
    for (flags, want) in [
        (vec!["--epochs", "2", "--channels", "2"], "epochs 1 (asked: 2)"),
        (vec!["--epochs", "1", "--channels", "3"], "channels 2 (asked: 3)"),
        (vec!["--epochs", "1", "--channels", "2", "--lr", "0.1"], "lr 0.05 (asked: 0.1)"),
    ] {
        let o = run(sweep(&flags, &["--verdict-archs", "20"]));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want) && e.contains("another --out"), "{flags:?}: {e}");
        assert_eq!(e.lines().filter(|l| l.starts_with("error:")).count(), 1, "one error line: {e}");
    }
    // other verdict settings: the run is judged again, not retrained
    let weights = std::fs::read(out.join("spos-seed0/supernet.safetensors")).unwrap();
    let o = run(sweep(&["--epochs", "1", "--channels", "2"], &["--verdict-archs", "30"]));
    assert!(String::from_utf8_lossy(&o.stderr).contains("judging it again"), "{}", String::from_utf8_lossy(&o.stderr));
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("(30 architectures"), "{md}");
    assert_eq!(std::fs::read(out.join("spos-seed0/supernet.safetensors")).unwrap(), weights, "not retrained");
    // the sweep owns --out, --seed and --resume: one line saying so
    for bad in [["--out", "x"], ["--seed", "3"]] {
        let o = run(sweep(&bad, &[]));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains("the sweep owns its folder") && e.trim().lines().count() == 1, "{e}");
    }
    let o = run(sweep(&["--verdict-archs", "5"], &[]));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && e.contains("give it before --"), "{e}");
}

/// `pada rank`, `proxies` and `groundtruth` resume a table only with the
/// settings its rows were made with: other settings are refused, naming each.
#[test]
fn result_tables_resume_only_with_the_settings_of_their_rows() {
    let tmp = tempfile::tempdir().unwrap();
    let run = tmp.path().join("run");
    let rs = run.to_str().unwrap().to_string();
    ok(&train_args(&rs, &["--epochs", "1"]));
    let t = |name: &str| tmp.path().join(name).to_str().unwrap().to_string();
    let (rank, prox, gt) = (t("rank.csv"), t("proxies.csv"), t("gt.csv"));
    // a command with default flags, each overridden when `extra` gives it
    let cmd = |head: &[&str], defaults: &[(&str, &str)], extra: &[&str]| -> Vec<String> {
        let mut v: Vec<&str> = head.to_vec();
        for (flag, value) in defaults.iter().filter(|(f, _)| !extra.contains(f)) {
            v.extend([*flag, *value]);
        }
        v.extend_from_slice(extra);
        v.iter().map(|s| s.to_string()).collect()
    };
    let rank_args = |extra: &[&str]| cmd(&["rank", "-q", "--run", &rs, "--out", &rank], &[("--archs", "10"), ("--images", "20")], extra);
    let small = [("--data", DATA), ("--channels", "2"), ("--cells", "1")];
    let prox_args = |extra: &[&str]| cmd(&["proxies", "-q", "--archs", "3", "--out", &prox], &small, extra);
    let gt_args =
        |extra: &[&str]| cmd(&["groundtruth", "-q", "--archs", "2", "--epochs", "1", "--batch-size", "16", "--out", &gt], &small, extra);
    let run_ = |args: Vec<String>| pada(&args.iter().map(String::as_str).collect::<Vec<_>>());
    for first in [rank_args(&[]), prox_args(&[]), gt_args(&[])] {
        let o = run_(first);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    for (args, want) in [
        (rank_args(&["--images", "21"]), "--images 20 (now 21)"),
        (rank_args(&["--batch-size", "7"]), "--batch-size 512 (now 7)"),
        (prox_args(&["--seed", "1"]), "--seed 0 (now 1)"),
        (prox_args(&["--channels", "3"]), "--channels 2 (now 3)"),
        (gt_args(&["--lr", "0.1"]), "--lr 0.05 (now 0.1)"),
    ] {
        let o = run_(args.clone());
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want) && e.contains("another --out"), "{args:?}: {e}");
    }
    // the same settings resume (nothing to do), more architectures extend the table
    for again in [rank_args(&["--archs", "12"]), prox_args(&[]), gt_args(&[])] {
        let o = run_(again.clone());
        assert!(o.status.success(), "{again:?}: {}", String::from_utf8_lossy(&o.stderr));
    }
    assert_eq!(std::fs::read_to_string(&rank).unwrap().lines().count(), 13);
    // weights retrained since the rows were scored: refused
    let other = t("other");
    ok(&train_args(&other, &["--epochs", "1", "--seed", "5"]));
    std::fs::copy(Path::new(&other).join("supernet.safetensors"), run.join("supernet.safetensors")).unwrap();
    let e = String::from_utf8_lossy(&run_(rank_args(&[])).stderr).to_string();
    assert!(e.contains("weights (sha256)"), "{e}");
    // rows without a record of their settings: refused, not trusted
    std::fs::remove_file(tmp.path().join("proxies.settings.json")).unwrap();
    let e = String::from_utf8_lossy(&run_(prox_args(&[])).stderr).to_string();
    assert!(e.contains("saying how they were made"), "{e}");
}

/// `pada train --resume` judges with the verdict settings the run recorded,
/// and a bad ground truth fails before the first step.
#[test]
fn resume_keeps_the_verdict_settings_and_bad_inputs_fail_first() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let o = pada(&train_args(d, &["--epochs", "3", "--ground-truth", "embedded", "--verdict-archs", "17", "--verdict-images", "9"]));
    assert!(o.status.success());
    // cut the run back to its first epoch, as a kill would leave it... then resume
    let full: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.join("verdict.json")).unwrap()).unwrap();
    assert_eq!((full["supernet"]["n"].as_u64(), full["images"].as_u64()), (Some(17), Some(9)));
    let cut = tmp.path().join("cut");
    let c = cut.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pada"))
        .args(train_args(c, &["--epochs", "40", "--ground-truth", "embedded", "--verdict-archs", "17", "--verdict-images", "9"]))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while !cut.join("checkpoint.safetensors").exists() {
        assert!(started.elapsed() < Duration::from_secs(60), "no first epoch");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = std::fs::remove_file(cut.join("verdict.json")); // (had it finished before the kill)
    let o = pada(&["train", "--resume", c, "-q"]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(cut.join("verdict.json")).unwrap()).unwrap();
    assert_eq!((v["supernet"]["n"].as_u64(), v["images"].as_u64(), v["ground_truth"].as_str()), (Some(17), Some(9), Some("embedded")));
    // a ground truth that cannot be read fails at once: no run directory, no training
    for (gt, want) in [("/nonexistent.csv", "cannot open"), ("nb201:cifar11", "no such built-in table")] {
        let bad = tmp.path().join("bad");
        let started = std::time::Instant::now();
        let o = pada(&train_args(bad.to_str().unwrap(), &["--epochs", "30", "--ground-truth", gt]));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(!o.status.success() && e.contains(want), "{gt}: {e}");
        assert!(!bad.exists() && started.elapsed() < Duration::from_secs(5), "{gt}: checked before training");
    }
}

/// A closed stdout or stderr (`pada rank ... 2>&1 | head -1`) does not stop
/// long work: the results land and the exit is clean.
#[test]
fn closed_output_streams_do_not_stop_the_work() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("run");
    let d = dir.to_str().unwrap();
    let closed = |args: Vec<&str>| {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pada"))
            .args(&args)
            .env("PADA_PROGRESS_SECONDS", "0")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // the reading ends go away at once: every write fails with a broken pipe
        drop(child.stdout.take());
        drop(child.stderr.take());
        let status = child.wait().unwrap();
        assert!(status.success(), "pada {args:?}: {status}");
    };
    let mut args = train_args(d, &["--epochs", "2", "--ground-truth", "embedded", "--verdict-archs", "12"]);
    args.retain(|a| *a != "-q");
    closed(args);
    assert!(dir.join("summary.json").exists() && dir.join("verdict.json").exists());
    closed(vec!["rank", "--run", d, "--archs", "30"]);
    let rows = std::fs::read_to_string(dir.join("rank.csv")).unwrap();
    assert_eq!(rows.lines().count(), 31, "every architecture ranked");
}

/// Sweeps into one folder add up: a second call with other methods keeps the
/// first call's rows when the train flags and verdict are the same, and
/// leaves them out, saying so, when they are not.
#[test]
fn sweep_table_keeps_earlier_calls_of_the_same_settings_only() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("sweep");
    let sweep = |methods: &str, archs: &str| {
        let mut v: Vec<&str> = vec!["sweep", "--methods", methods, "--seeds", "0", "--out", out.to_str().unwrap(), "-q"];
        v.extend(["--ground-truth", "embedded", "--verdict-archs", archs]);
        v.extend(["--", "--data", "synthetic:1x8x8:64:200:10", "--cells", "1", "--batch-size", "32", "--epochs", "1", "--channels", "2"]);
        let o = pada(&v);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        String::from_utf8_lossy(&o.stderr).to_string()
    };
    let rows = || -> Vec<String> {
        let csv = std::fs::read_to_string(out.join("sweep.csv")).unwrap();
        csv.lines().skip(1).map(|l| l.split(',').take(2).collect::<Vec<_>>().join(" ")).collect()
    };
    sweep("spos", "20");
    let e = sweep("pa", "20");
    assert_eq!(rows(), ["spos 0", "pa 0"], "{e}");
    let md = std::fs::read_to_string(out.join("sweep.md")).unwrap();
    assert!(md.contains("| spos | 1 |") && md.contains("| pa | 1 |"), "{md}");
    // another verdict: the earlier spos row is left out, with a line saying so
    let e = sweep("pa", "30");
    assert_eq!(rows(), ["pa 0"]);
    assert!(e.contains("leaving out 1 earlier row(s) made with other train flags or another verdict"), "{e}");
    assert!(out.join("spos-seed0/supernet.safetensors").exists(), "the run stays");
}
