//! How consistent a ranking is with the truth: Kendall tau-b, Spearman rho,
//! Pearson r, precision at top-k%, and where the predicted best really ranks.

use serde::{Deserialize, Serialize};

/// Kendall's tau-b with ties handled as `scipy.stats.kendalltau` (Knight's
/// O(n log n) algorithm): `(n0 - n1 - n2 + n3 - 2 * swaps) / sqrt((n0 - n1)(n0 - n2))`
/// with n0 all pairs, n1 / n2 pairs tied in x / y, n3 pairs tied in both, and
/// swaps the discordant pairs. NaN when either side is constant.
pub fn kendall_tau_b(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "kendall_tau_b: lengths differ");
    let n = x.len();
    if n < 2 {
        return f64::NAN;
    }
    let mut idx: Vec<usize> = (0..n).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]).then(y[a].total_cmp(&y[b])));
    let pairs = |t: u64| t * (t.saturating_sub(1)) / 2;
    // ties in x, and in x and y jointly, over the (x, y)-sorted order
    let (mut n1, mut n3) = (0u64, 0u64);
    let (mut tx, mut txy) = (1u64, 1u64);
    for w in idx.windows(2) {
        let (a, b) = (w[0], w[1]);
        if x[a] == x[b] {
            tx += 1;
            if y[a] == y[b] {
                txy += 1;
            } else {
                n3 += pairs(txy);
                txy = 1;
            }
        } else {
            n1 += pairs(tx);
            n3 += pairs(txy);
            tx = 1;
            txy = 1;
        }
    }
    n1 += pairs(tx);
    n3 += pairs(txy);
    // discordant pairs = inversions of y in this order (merge sort by y)
    let mut ys: Vec<f64> = idx.iter().map(|&i| y[i]).collect();
    let swaps = merge_count(&mut ys);
    let mut n2 = 0u64;
    let mut ty = 1u64;
    for w in ys.windows(2) {
        if w[0] == w[1] {
            ty += 1;
        } else {
            n2 += pairs(ty);
            ty = 1;
        }
    }
    n2 += pairs(ty);
    let n0 = pairs(n as u64);
    let num = n0 as f64 - n1 as f64 - n2 as f64 + n3 as f64 - 2.0 * swaps as f64;
    let den = ((n0 - n1) as f64 * (n0 - n2) as f64).sqrt();
    if den == 0.0 {
        f64::NAN
    } else {
        num / den
    }
}

/// Sorts `v` ascending and returns the number of strictly inverted pairs.
fn merge_count(v: &mut [f64]) -> u64 {
    let n = v.len();
    if n < 2 {
        return 0;
    }
    let mid = n / 2;
    let mut count = merge_count(&mut v[..mid]) + merge_count(&mut v[mid..]);
    let mut merged = Vec::with_capacity(n);
    let (mut i, mut j) = (0, mid);
    while i < mid && j < n {
        if v[j] < v[i] {
            count += (mid - i) as u64;
            merged.push(v[j]);
            j += 1;
        } else {
            merged.push(v[i]);
            i += 1;
        }
    }
    merged.extend_from_slice(&v[i..mid]);
    merged.extend_from_slice(&v[j..]);
    v.copy_from_slice(&merged);
    count
}

/// Ranks 1..n with ties given their average rank (`scipy.stats.rankdata`).
pub fn average_ranks(x: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[a].total_cmp(&x[b]));
    let mut r = vec![0.0; x.len()];
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && x[idx[j + 1]] == x[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &k in &idx[i..=j] {
            r[k] = avg;
        }
        i = j + 1;
    }
    r
}

/// Pearson's correlation coefficient (NaN when either side is constant).
pub fn pearson_r(x: &[f64], y: &[f64]) -> f64 {
    assert_eq!(x.len(), y.len(), "pearson_r: lengths differ");
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let (mut sxy, mut sxx, mut syy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        sxy += (a - mx) * (b - my);
        sxx += (a - mx).powi(2);
        syy += (b - my).powi(2);
    }
    sxy / (sxx * syy).sqrt()
}

/// Spearman's rho: Pearson's r of the average ranks.
pub fn spearman_rho(x: &[f64], y: &[f64]) -> f64 {
    pearson_r(&average_ranks(x), &average_ranks(y))
}

/// Indices of the `m` largest values of `x`, ties broken by `names`
/// (byte order, smallest first): the same set and order whatever the order
/// of the rows, so that `pada compare`, a verdict and `pada rank` agree.
fn top(x: &[f64], names: &[String], m: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..x.len()).collect();
    idx.sort_by(|&a, &b| x[b].total_cmp(&x[a]).then_with(|| names[a].cmp(&names[b])));
    idx.truncate(m);
    idx
}

/// `max(min, round(n * k / 100))`, at most n: how many architectures the top k% holds.
fn top_count(n: usize, k_percent: f64, min: usize) -> usize {
    ((n as f64 * k_percent / 100.0).round() as usize).max(min).min(n)
}

/// The fraction of the true top k% found in the predicted top k%, both of
/// size `max(1, round(n * k / 100))`, ties broken by the architecture names.
pub fn precision_at_top(names: &[String], pred: &[f64], truth: &[f64], k_percent: f64) -> f64 {
    let m = top_count(pred.len(), k_percent, 1);
    let p: std::collections::HashSet<usize> = top(pred, names, m).into_iter().collect();
    top(truth, names, m).iter().filter(|i| p.contains(i)).count() as f64 / m as f64
}

/// Kendall tau-b among the true top k% (`max(2, round(n * k / 100))`
/// architectures by ground truth, ties broken by name): how well a predictor
/// orders the architectures a search cares about. NaN when either side is
/// constant there.
pub fn kendall_tau_top(names: &[String], pred: &[f64], truth: &[f64], k_percent: f64) -> f64 {
    let best = top(truth, names, top_count(truth.len(), k_percent, 2));
    let (p, t): (Vec<f64>, Vec<f64>) = best.iter().map(|&i| (pred[i], truth[i])).unzip();
    kendall_tau_b(&p, &t)
}

/// JSON has no NaN: serde_json writes it as `null`, read back here as NaN
/// (a Kendall tau of a constant predictor, say).
mod nan_as_null {
    use serde::{Deserialize, Deserializer};
    pub fn de<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }
    pub fn nan() -> f64 {
        f64::NAN
    }
}

/// All the consistency metrics of a predicted ranking. Every metric is
/// independent of the order of the rows: where predictions tie, the
/// architecture names break the tie (byte order of the strings, smallest
/// first), in the predicted best and in the top-k% sets alike.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Consistency {
    pub n: usize,
    #[serde(deserialize_with = "nan_as_null::de")]
    pub kendall_tau: f64,
    #[serde(deserialize_with = "nan_as_null::de")]
    pub spearman_rho: f64,
    #[serde(deserialize_with = "nan_as_null::de")]
    pub pearson_r: f64,
    pub precision_top1: f64,
    pub precision_top5: f64,
    pub precision_top10: f64,
    /// Kendall tau among the true top 5% and 10% ([`kendall_tau_top`]).
    #[serde(default = "nan_as_null::nan", deserialize_with = "nan_as_null::de")]
    pub kendall_tau_top5: f64,
    #[serde(default = "nan_as_null::nan", deserialize_with = "nan_as_null::de")]
    pub kendall_tau_top10: f64,
    /// The architecture with the best predicted score; among ties, the first
    /// by name (byte order).
    pub predicted_best: String,
    /// How many architectures share the best predicted score (1: no tie).
    #[serde(default = "one")]
    pub predicted_best_ties: usize,
    pub predicted_best_true_accuracy: f64,
    /// 1 + the number of architectures with a strictly better true accuracy.
    pub predicted_best_true_rank: usize,
    pub best_true_accuracy: f64,
}

fn one() -> usize {
    1
}

impl Consistency {
    pub fn of(archs: &[String], pred: &[f64], truth: &[f64]) -> anyhow::Result<Self> {
        anyhow::ensure!(
            archs.len() == pred.len() && pred.len() == truth.len(),
            "metrics need one prediction and one truth per architecture"
        );
        anyhow::ensure!(pred.len() >= 2, "metrics need at least 2 architectures in common, got {}", pred.len());
        let best = top(pred, archs, 1)[0];
        Ok(Self {
            n: pred.len(),
            kendall_tau: kendall_tau_b(pred, truth),
            spearman_rho: spearman_rho(pred, truth),
            pearson_r: pearson_r(pred, truth),
            precision_top1: precision_at_top(archs, pred, truth, 1.0),
            precision_top5: precision_at_top(archs, pred, truth, 5.0),
            precision_top10: precision_at_top(archs, pred, truth, 10.0),
            kendall_tau_top5: kendall_tau_top(archs, pred, truth, 5.0),
            kendall_tau_top10: kendall_tau_top(archs, pred, truth, 10.0),
            predicted_best: archs[best].clone(),
            predicted_best_ties: pred.iter().filter(|&&p| p == pred[best]).count(),
            predicted_best_true_accuracy: truth[best],
            predicted_best_true_rank: 1 + truth.iter().filter(|&&t| t > truth[best]).count(),
            best_true_accuracy: truth.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    pub fn report(&self) -> String {
        let ties = match self.predicted_best_ties {
            1 => String::new(),
            k => format!(" (first by name of {k} tied)"),
        };
        format!(
            "architectures: {}\nKendall tau-b: {:.4}\nSpearman rho: {:.4}\nPearson r: {:.4}\nKendall tau-b among the true top 5%: {:.4}\nKendall tau-b among the true top 10%: {:.4}\nprecision@top1%: {:.4}\nprecision@top5%: {:.4}\nprecision@top10%: {:.4}\npredicted best{ties}: {}\n  true accuracy {:.2} (true rank {} of {}; best true accuracy {:.2})\n",
            self.n,
            self.kendall_tau,
            self.spearman_rho,
            self.pearson_r,
            self.kendall_tau_top5,
            self.kendall_tau_top10,
            self.precision_top1,
            self.precision_top5,
            self.precision_top10,
            self.predicted_best,
            self.predicted_best_true_accuracy,
            self.predicted_best_true_rank,
            self.n,
            self.best_true_accuracy
        )
    }
}
