//! pada: PA&DA one-shot NAS supernet training on NAS-Bench-201 and
//! NAS-Bench-Macro, on CPUs and GPUs.
//!
//! Map of the crate:
//! - [`ops`]: the CPU reference ops (the specification every CUDA kernel is tested against);
//! - [`backend`]: the [`backend::Backend`] trait and its CPU implementation;
//! - [`space`]: the search spaces (one folder each) and their architectures ([`space::Arch`]);
//! - [`supernet`]: a space's supernet, its parameters, forward and backward along a path;
//! - [`optim`]: SGD and gradient clipping over the parameter store.

#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod arch;
pub mod backend;
pub mod bench;
pub mod cli;
pub mod data;
pub mod element;
pub mod eval;
pub mod fsutil;
pub mod geometry;
pub mod ops;
pub mod optim;
pub mod output;
pub mod plot;
pub mod progress;
pub mod proxies;
#[cfg(feature = "python")]
pub mod python;
pub mod rank;
pub mod rankstats;
pub mod results;
pub mod rng;
pub mod sampler;
pub mod search;
pub mod space;
pub mod supernet;
pub mod table;
pub mod train;
pub mod verdict;
