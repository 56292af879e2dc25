//! PA&DA's samplers and the baselines': which paths and which training samples
//! each step sees.

pub mod data;
pub mod path;

pub use data::{DataSampler, DataSamplerKind, DataStats};
pub use path::{PathSampler, PathSamplerKind};
