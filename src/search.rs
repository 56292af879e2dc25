//! Finding the best architectures by supernet accuracy: exhaustively, or by
//! SPOS's evolutionary search (a population refined by mutation and crossover).

use std::collections::HashMap;

use rand::seq::IndexedRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use crate::arch::{Arch, Space};

/// SPOS's evolution settings.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Evolution {
    pub population: usize,
    pub iterations: usize,
    /// Parents: the best `parents` architectures seen so far.
    pub parents: usize,
    /// Probability that mutation redraws a slot's choice.
    pub mutation_prob: f64,
}

impl Default for Evolution {
    fn default() -> Self {
        Self { population: 50, iterations: 20, parents: 10, mutation_prob: 0.1 }
    }
}

/// Evolutionary search; `score` evaluates a batch of new architectures (each
/// architecture is scored once). Returns every architecture scored, best first.
pub fn evolve(
    e: &Evolution,
    space: Space,
    rng: &mut ChaCha8Rng,
    mut score: impl FnMut(&[Arch]) -> anyhow::Result<Vec<f64>>,
) -> anyhow::Result<Vec<(Arch, f64)>> {
    anyhow::ensure!(
        e.population >= 2 && e.parents >= 1 && e.iterations >= 1,
        "evolution needs a population of at least 2, at least 1 parent and 1 iteration"
    );
    let mut seen: HashMap<Arch, f64> = HashMap::new();
    let mut add = |cands: Vec<Arch>, seen: &mut HashMap<Arch, f64>| -> anyhow::Result<()> {
        let scores = score(&cands)?;
        for (g, s) in cands.into_iter().zip(scores) {
            seen.insert(g, s);
        }
        Ok(())
    };
    let random = |rng: &mut ChaCha8Rng| space.arch(rng.random_range(0..space.num_archs())).expect("in range");
    // distinct new candidates made by `make`, with a bound on the attempts
    let fresh = |n: usize, seen: &HashMap<Arch, f64>, rng: &mut ChaCha8Rng, make: &mut dyn FnMut(&mut ChaCha8Rng) -> Arch| {
        let mut out = Vec::new();
        for _ in 0..n * 20 {
            if out.len() == n {
                break;
            }
            let g = make(rng);
            if !seen.contains_key(&g) && !out.contains(&g) {
                out.push(g);
            }
        }
        out
    };
    let init = fresh(e.population, &seen, rng, &mut |r| random(r));
    add(init, &mut seen)?;
    for _ in 0..e.iterations {
        let mut ranked: Vec<(Arch, f64)> = seen.iter().map(|(g, s)| (*g, *s)).collect();
        ranked.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        let parents: Vec<Arch> = ranked.iter().take(e.parents).map(|p| p.0).collect();
        let p = e.mutation_prob;
        let mut mutate = |r: &mut ChaCha8Rng| {
            let g = *parents.choose(r).expect("parents");
            space.arch_from_fn(|s| if r.random_bool(p) { r.random_range(0..space.choices()) } else { g.choice(s) })
        };
        let mut children = fresh(e.population / 2, &seen, rng, &mut mutate);
        let mut cross = |r: &mut ChaCha8Rng| {
            let (a, b) = (*parents.choose(r).expect("parents"), *parents.choose(r).expect("parents"));
            space.arch_from_fn(|i| if r.random_bool(0.5) { a.choice(i) } else { b.choice(i) })
        };
        let more = fresh(e.population - children.len(), &seen, rng, &mut cross);
        children.extend(more.into_iter().filter(|g| !children.contains(g)).collect::<Vec<_>>());
        if children.is_empty() {
            break; // the neighbourhood is exhausted
        }
        add(children, &mut seen)?;
    }
    let mut all: Vec<(Arch, f64)> = seen.into_iter().collect();
    all.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    Ok(all)
}
