//! Ranking-consistency metrics against scipy, against brute force, and on the
//! NAS-Bench-201 tables built into pada.

mod common;

use approx::assert_abs_diff_eq;

use pada::rankstats::{kendall_tau_b, pearson_r, precision_at_top, spearman_rho, Consistency};
use pada::table::{join, read_arch_table, TableSource};

/// The vectors of scripts/scipy_fixtures.py.
fn case(name: &str) -> (Vec<f64>, Vec<f64>) {
    match name {
        "ties_a" => {
            ((0..40).map(|i| (i * 37 % 11) as f64).collect(), (0..40).map(|i| (i * 53 % 7) as f64 + (i % 3) as f64 * 0.5).collect())
        }
        "squares_b" => ((0..30).map(|i| i as f64).collect(), (0..30).map(|i| (i * i % 17) as f64).collect()),
        "small_c" => (vec![1.0, 1.0, 1.0, 2.0, 2.0, 3.0], vec![1.0, 2.0, 2.0, 2.0, 3.0, 3.0]),
        "large_d" => (
            (0..1000).map(|i| ((i as f64).sin() * 1000.0).floor() / 10.0).collect(),
            (0..1000).map(|i| ((i as f64 * 0.7).cos() * 50.0).floor()).collect(),
        ),
        _ => unreachable!(),
    }
}

#[test]
fn metrics_match_scipy_with_ties() {
    // (case, kendalltau, spearmanr, pearsonr): `python3 scripts/scipy_fixtures.py`
    // with scipy 1.17.1 (scipy.stats.kendalltau computes tau-b).
    let expected = [
        ("ties_a", 0.05324441717053128, 0.08322317835228522, 0.08874608752638581),
        ("squares_b", 0.0913266299685899, 0.12493257804717191, 0.13290221864233567),
        ("small_c", 0.7272727272727273, 0.7833333333333334, 0.7592566023652964),
        ("large_d", 0.002117857983684062, 0.0031475619748135082, 0.0052649418053144735),
    ];
    for (name, tau, rho, r) in expected {
        let (x, y) = case(name);
        assert_abs_diff_eq!(kendall_tau_b(&x, &y), tau, epsilon = 1e-12);
        assert_abs_diff_eq!(spearman_rho(&x, &y), rho, epsilon = 1e-12);
        assert_abs_diff_eq!(pearson_r(&x, &y), r, epsilon = 1e-12);
    }
}

/// tau-b by definition, O(n^2).
fn brute_tau_b(x: &[f64], y: &[f64]) -> f64 {
    let (mut c, mut d, mut tx, mut ty) = (0f64, 0f64, 0f64, 0f64);
    for i in 0..x.len() {
        for j in i + 1..x.len() {
            // (f64::signum(0.0) is 1.0, hence the comparisons)
            let (a, b) = (x[i].partial_cmp(&x[j]).unwrap(), y[i].partial_cmp(&y[j]).unwrap());
            use std::cmp::Ordering::Equal;
            match (a == Equal, b == Equal) {
                (true, true) => {}
                (true, false) => tx += 1.0,
                (false, true) => ty += 1.0,
                _ if a == b => c += 1.0,
                _ => d += 1.0,
            }
        }
    }
    (c - d) / ((c + d + tx) * (c + d + ty)).sqrt()
}

#[test]
fn kendall_matches_brute_force_on_random_tied_data() {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    for trial in 0..50 {
        let n = rng.random_range(2..120);
        let levels = rng.random_range(2..10) as f64;
        let x: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * levels).floor()).collect();
        let y: Vec<f64> = (0..n).map(|_| (rng.random::<f64>() * levels).floor()).collect();
        let (fast, slow) = (kendall_tau_b(&x, &y), brute_tau_b(&x, &y));
        assert!(fast.is_nan() && slow.is_nan() || (fast - slow).abs() < 1e-12, "trial {trial}: {fast} vs {slow}");
    }
    assert!(kendall_tau_b(&[1.0, 1.0], &[1.0, 2.0]).is_nan(), "constant input");
}

#[test]
fn precision_at_top_k() {
    let names: Vec<String> = (0..100).map(|i| format!("{i:03}")).collect();
    let truth: Vec<f64> = (0..100).map(|i| i as f64).collect();
    assert_eq!(precision_at_top(&names, &truth, &truth, 10.0), 1.0);
    let rev: Vec<f64> = truth.iter().map(|v| -v).collect();
    assert_eq!(precision_at_top(&names, &rev, &truth, 10.0), 0.0);
    // top 5 of 100: predicted puts 97..99 and two misses on top
    let mut pred = truth.clone();
    pred[0] = 1000.0;
    pred[1] = 999.0;
    assert_eq!(precision_at_top(&names, &pred, &truth, 5.0), 3.0 / 5.0);
    let c = Consistency::of(&names, &pred, &truth).unwrap();
    assert_eq!((c.predicted_best.as_str(), c.predicted_best_true_rank, c.predicted_best_true_accuracy), ("000", 100, 0.0));
}

/// Every metric is the same whatever the order of the rows: tied predictions
/// are broken by the architecture names, so `pada compare` (rows in the
/// prediction's order) and a verdict (rows in the ground truth's order) agree.
#[test]
fn ties_are_broken_by_name_whatever_the_row_order() {
    use rand::{seq::SliceRandom, Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let n = 120;
    let names: Vec<String> = (0..n).map(|i| format!("arch{:03}", (i * 37) % n)).collect();
    // a coarse predictor: many ties, also at the top (as the parameter count)
    let pred: Vec<f64> = (0..n).map(|_| rng.random_range(0..6) as f64).collect();
    let truth: Vec<f64> = (0..n).map(|_| rng.random_range(0.0..100.0)).collect();
    let base = Consistency::of(&names, &pred, &truth).unwrap();
    assert!(base.predicted_best_ties > 1, "the test needs ties at the top");
    let tied_names: Vec<&String> = (0..n).filter(|&i| pred[i] == 5.0).map(|i| &names[i]).collect();
    assert_eq!(&base.predicted_best, *tied_names.iter().min().unwrap(), "the first by name among the tied");
    for _ in 0..10 {
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let pick = |v: &[f64]| order.iter().map(|&i| v[i]).collect::<Vec<_>>();
        let shuffled_names: Vec<String> = order.iter().map(|&i| names[i].clone()).collect();
        let c = Consistency::of(&shuffled_names, &pick(&pred), &pick(&truth)).unwrap();
        assert_eq!(c.predicted_best, base.predicted_best);
        assert_eq!(c.predicted_best_true_rank, base.predicted_best_true_rank);
        assert_eq!(
            (c.precision_top1, c.precision_top5, c.precision_top10),
            (base.precision_top1, base.precision_top5, base.precision_top10)
        );
        assert_eq!(
            (c.kendall_tau_top5.to_bits(), c.kendall_tau_top10.to_bits()),
            (base.kendall_tau_top5.to_bits(), base.kendall_tau_top10.to_bits())
        );
    }
}

/// Kendall tau among the true top k%: the best max(2, round(n k / 100)) by
/// ground truth, checked by hand; and a predictor perfect overall but
/// reversed among the best scores well overall and -1 there.
#[test]
fn kendall_tau_among_the_true_top() {
    use pada::rankstats::kendall_tau_top;
    let names: Vec<String> = (0..40).map(|i| format!("{i:02}")).collect();
    let truth: Vec<f64> = (0..40).map(|i| i as f64).collect();
    let mut pred = truth.clone();
    // the true top 10% (4 architectures: 36..39) in reverse order, below nothing else
    for (i, p) in pred.iter_mut().enumerate().skip(36) {
        *p = 100.0 - i as f64;
    }
    assert_eq!(kendall_tau_top(&names, &pred, &truth, 10.0), -1.0);
    assert_eq!(kendall_tau_top(&names, &pred, &truth, 5.0), -1.0, "2 architectures: 38 and 39, reversed");
    assert!(kendall_tau_b(&pred, &truth) > 0.8);
    assert_eq!(kendall_tau_top(&names, &truth, &truth, 10.0), 1.0);
    // top 10% by hand: 4 of 40; pred over them = [3, 1, 2, 4] for truth [36, 37, 38, 39]
    let mut p = truth.clone();
    (p[36], p[37], p[38], p[39]) = (3.0, 1.0, 2.0, 4.0);
    assert_abs_diff_eq!(kendall_tau_top(&names, &p, &truth, 10.0), kendall_tau_b(&[3.0, 1.0, 2.0, 4.0], &[36.0, 37.0, 38.0, 39.0]));
    let c = Consistency::of(&names, &p, &truth).unwrap();
    assert_abs_diff_eq!(c.kendall_tau_top10, 1.0 / 3.0, epsilon = 1e-12);
    // NaN (a constant predictor among the best) survives a JSON round trip as null
    let flat = Consistency::of(&names, &vec![1.0; 40], &truth).unwrap();
    assert!(flat.kendall_tau.is_nan());
    let back: Consistency = serde_json::from_str(&serde_json::to_string(&flat).unwrap()).unwrap();
    assert!(back.kendall_tau.is_nan() && back.kendall_tau_top5.is_nan());
    assert_eq!(back.predicted_best_ties, 40);
}

#[test]
fn built_in_nb201_table_is_the_benchmark() {
    let read = |set: &str| read_arch_table(&set.parse::<TableSource>().unwrap(), None, &set[6..]).unwrap();
    let (c10, c100, im) = (read("nb201:cifar10"), read("nb201:cifar100"), read("nb201:imagenet16"));
    assert_eq!((c10.archs.len(), c10.arch_column.as_str()), (15625, "arch"));
    // facts of NATS-Bench's 200-epoch results (data/nb201/README.md)
    let best = c10.values.iter().fold(0.0f64, |m, &v| m.max(v));
    assert_abs_diff_eq!(best, 94.3733, epsilon = 1e-4);
    assert_eq!(c10.values.iter().filter(|&&v| v == 10.0).count(), 341, "no path from input to output");
    let resnet: pada::arch::Arch = "|nor_conv_3x3~0|+|none~0|nor_conv_3x3~1|+|skip_connect~0|none~1|skip_connect~2|".parse().unwrap();
    let at = |t: &pada::table::ArchTable| t.values[t.archs.iter().position(|g| *g == resnet).unwrap()];
    assert_eq!([at(&c10), at(&c100), at(&im)].map(|v| (v * 100.0).round() / 100.0), [93.91, 70.89, 44.23]);
    // Kendall tau-b and Spearman between its columns as scipy.stats computes them (scipy 1.16:
    // kendalltau(cifar10, cifar100) = 0.88195688, spearmanr = 0.98017216, kendalltau(cifar10, imagenet16) = 0.83959901)
    let names: Vec<String> = c10.archs.iter().map(|g| g.to_string()).collect();
    let (_, p, t) = join(&c10, &c100, false);
    let c = Consistency::of(&names, &p, &t).unwrap();
    assert_abs_diff_eq!(c.kendall_tau, 0.881_956_88, epsilon = 1e-8);
    assert_abs_diff_eq!(c.spearman_rho, 0.980_172_16, epsilon = 1e-8);
    let (_, p, t) = join(&c10, &im, false);
    assert_abs_diff_eq!(Consistency::of(&names, &p, &t).unwrap().kendall_tau, 0.839_599_01, epsilon = 1e-8);
    assert_eq!(join(&c10, &c100, true).0.len(), 6466, "isomorphism classes");
}

/// The built-in proxy table (`nb201-proxies:cifar10`, data/nb201/README.md):
/// the verdict's default sample and more, in NAS-Bench-201's order, with the
/// parameter count and FLOPs pada computes for the C=16 N=5 network, and
/// finite proxies.
#[test]
fn built_in_proxy_table_covers_the_verdict_sample() {
    use pada::backend::cpu::CpuBackend;
    use pada::supernet::{Supernet, SupernetConfig};
    let macro_net =
        SupernetConfig { space: pada::arch::Space::NB_MACRO, channels: 32, cells: 0, classes: 10, input: "3x32x32".parse().unwrap() };
    for (proxies, truth, column, config) in [
        ("nb201-proxies:cifar10", "nb201:cifar10", "cifar10", SupernetConfig::nb201()),
        ("nbmacro-proxies:cifar10", "nbmacro:cifar10", "test_accuracy", macro_net),
    ] {
        let src: TableSource = proxies.parse().unwrap();
        let gt = read_arch_table(&truth.parse().unwrap(), None, column).unwrap();
        let col = |c: &str| read_arch_table(&src, None, c).unwrap();
        let (params, flops) = (col("params"), col("flops"));
        let index: std::collections::HashMap<_, _> = gt.archs.iter().enumerate().map(|(i, g)| (*g, i)).collect();
        assert!(params.archs.windows(2).all(|w| index[&w[0]] < index[&w[1]]), "{proxies}: the ground truth's order, no repeats");
        let sample = pada::verdict::truth_sample(&truth.parse().unwrap(), pada::verdict::VerdictArchs::Sample(1000)).unwrap();
        let missing: Vec<_> = sample.archs.iter().filter(|g| !params.archs.contains(g)).collect();
        assert!(missing.is_empty(), "{proxies}: the verdict's default sample: {} missing, e.g. {}", missing.len(), missing[0]);
        let net = Supernet::uninit(&CpuBackend::<f32>::new(), config).unwrap();
        for (i, g) in params.archs.iter().enumerate().step_by(97) {
            assert_eq!(params.values[i], net.param_count(Some(g)) as f64, "{g}: parameters");
            assert_eq!(flops.values[i], net.forward_macs(g) as f64, "{g}: FLOPs");
        }
        for c in ["grad_norm", "snip", "synflow", "synflow_bn"] {
            let t = col(c);
            assert!(t.values.iter().all(|v| v.is_finite() && *v >= 0.0), "{proxies} {c}");
            assert!(t.values.iter().any(|&v| v > 0.0), "{proxies} {c}");
        }
    }
    assert!("nb201-proxies:cifar100".parse::<TableSource>().unwrap_err().to_string().contains("no such built-in table"));
}

/// A verdict against NAS-Bench-201's CIFAR-10 takes its predictor rows from
/// the built-in table when it holds every architecture judged: the same
/// consistency as the table's column, named with its setting.
#[test]
fn cifar10_verdict_reads_the_built_in_proxies() {
    use pada::backend::cpu::CpuBackend;
    use pada::verdict::{references, truth_sample, VerdictArchs};
    let gt: TableSource = "nb201:cifar10".parse().unwrap();
    let truth = truth_sample(&gt, VerdictArchs::Sample(300)).unwrap();
    // the run's own size and data would be used only without the table
    let data = "synthetic:3x8x8:20:10:10".parse::<pada::data::DataSpec>().unwrap().load().unwrap();
    let config = pada::supernet::SupernetConfig::nb201_with(4, 1, 10, data.shape());
    let refs = references(&CpuBackend::<f32>::new(), &gt, &truth, config, &data, true).unwrap();
    let names: Vec<String> = truth.archs.iter().map(|g| g.to_string()).collect();
    let table: TableSource = "nb201-proxies:cifar10".parse().unwrap();
    let synflow = read_arch_table(&table, None, "synflow").unwrap();
    let by_arch: std::collections::HashMap<_, _> = synflow.archs.iter().zip(&synflow.values).collect();
    let pred: Vec<f64> = truth.archs.iter().map(|g| *by_arch[g]).collect();
    let want = Consistency::of(&names, &pred, &truth.values).unwrap();
    let row = refs.iter().find(|r| r.name == "synflow (zero-cost, C=16 N=5)").expect("the built-in synflow row");
    assert_eq!(row.consistency.kendall_tau, want.kendall_tau);
    assert!(refs.iter().any(|r| r.name == "parameter count (C=16 N=5)"));
}

#[test]
fn unique_strings_are_nats_benchs() {
    // NATS-Bench's canonical string of every architecture (tests/fixtures, from scripts/make_nb201_table.py)
    let gz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/nb201_unique_strings.csv.gz")).unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(&gz[..]), &mut text).unwrap();
    let mut rd = csv::Reader::from_reader(text.as_bytes());
    let mut rows = 0;
    for r in rd.records() {
        let r = r.unwrap();
        let g: pada::arch::Arch = r[0].parse().unwrap();
        assert_eq!(g.canonical(), &r[1], "{g}");
        rows += 1;
    }
    assert_eq!(rows, 15625);
}

#[test]
fn table_errors_name_the_problem() {
    let d = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = d.path().join(name);
        std::fs::write(&p, text).unwrap();
        p
    };
    let a = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
    let b = "|none~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
    let err = |p: &std::path::Path, col: &str| format!("{:#}", read_arch_table(&TableSource::File(p.into()), None, col).unwrap_err());
    let p = write("missing.csv", &format!("arch,acc\n{a},1\n"));
    assert!(err(&p, "accuracy").contains("no column 'accuracy'"));
    let p = write("nan.csv", &format!("arch,acc\n{a},high\n"));
    assert!(err(&p, "acc").contains("\"high\" is not a number"));
    let p = write("dup.csv", &format!("arch,acc\n{a},1\n{b},2\n{a},3\n"));
    assert!(err(&p, "acc").contains("appears twice (rows 2 and 4)"));
    let p = write("op.csv", &format!("arch,acc\n{a},1\n{},2\n", b.replace("none~0|+|none", "none~0|+|conv")));
    assert!(err(&p, "acc").contains("unknown op"), "{}", err(&p, "acc"));
    let p = write("noarch.csv", "x,acc\n1,2\n");
    assert!(err(&p, "acc").contains("no column holds architecture strings"));
    // one table, one space: a NAS-Bench-Macro string among NAS-Bench-201's
    let p = write("mixed.csv", &format!("arch,acc\n{a},1\n02012100,2\n"));
    let e = err(&p, "acc");
    assert!(e.contains("row 3") && e.contains("nb-macro") && e.contains("one search space"), "{e}");
    // NAS-Bench-Macro's strings: a digit outside 0-2, a wrong length
    let p = write("digit.csv", "arch,acc\n02012100,1\n02012103,2\n");
    let e = err(&p, "acc");
    assert!(e.contains("row 3") && e.contains("layer 8's digit '3'"), "{e}");
    let p = write("short.csv", "arch,acc\n02012100,1\n0201210,2\n");
    let e = err(&p, "acc");
    assert!(e.contains("row 3") && e.contains("7 characters, expected 8 digits"), "{e}");
    // an `arch` column whose strings are all malformed: the first row's own parse error
    let p = write("allbad.csv", &format!("arch,acc\n{},1\n", a.replace("~0|+", "~0+")));
    let e = err(&p, "acc");
    assert!(e.contains("column 'arch'") && e.contains("node 1"), "{e}");
    let p = write("empty.csv", "arch,acc\n");
    assert!(err(&p, "acc").contains("no rows"));
    let t = read_arch_table(&TableSource::File(write("ok.csv", &format!("id,name,acc\n7,{a},1.5\n8,{b},2.5\n"))), None, "acc").unwrap();
    assert_eq!((t.arch_column.as_str(), t.values.clone()), ("name", vec![1.5, 2.5]));
}
