//! The search spaces and their registry. An architecture ([`Arch`]) is one
//! choice per slot: NAS-Bench-201 chooses one of 5 ops for each of a cell's 6
//! edges, NAS-Bench-Macro one of 3 blocks for each of 8 layers. Everything
//! outside this folder (training, samplers, ranking, verdicts, search, sweeps,
//! proxies, plots) works on [`Arch`], [`Supernet`] and a space's
//! [`SearchSpace`] description, never on one space's types; each space lives
//! in its own folder with its strings, isomorphism classes, supernet body and
//! built-in tables, and is registered by one line of [`spaces!`] below.
//!
//! The registry implements what needs a space's meaning on the types of
//! [`crate::arch`] (strings, indices, classes) and builds supernets
//! ([`Supernet::new`]), so that the engine (`crate::supernet`) depends on no
//! space.

pub mod nb201;
pub mod nbmacro;

use std::fmt;
use std::str::FromStr;

pub use crate::arch::{Arch, ArchError, Space, MAX_SLOTS};
use crate::backend::Backend;
use crate::data::DataSpec;
use crate::supernet::{ParamStore, SpaceNet, Supernet, SupernetConfig};
use crate::table::{BuiltInTable, TableSource};

/// What a search space is, besides its supernet ([`Space::supernet`]).
pub trait SearchSpace: Sync {
    /// Its name on the command line and in files: `nb201`, `nb-macro`.
    fn name(&self) -> &'static str;
    /// Its name in prose: "NAS-Bench-201".
    fn title(&self) -> &'static str;
    /// What a slot is: "edge", "layer".
    fn slot_name(&self) -> &'static str;
    /// Slots of an architecture, and choices of each slot.
    fn slots(&self) -> usize;
    fn choices(&self) -> usize;
    /// What choice k is: "nor_conv_3x3", "MBConv k5 e6".
    fn choice_names(&self) -> &'static [&'static str];
    /// An architecture string, for messages.
    fn example(&self) -> &'static str;
    /// The architecture of a string, or why the string is not one of this space's.
    fn parse(&self, s: &str) -> Result<Vec<u8>, String>;
    /// Whether a string looks meant for this space (the first one that does
    /// explains why a string parses in no space).
    fn looks_like(&self, s: &str) -> bool;
    fn format(&self, choices: &[u8], f: &mut fmt::Formatter<'_>) -> fmt::Result;
    /// The isomorphism class: two architectures compute the same function
    /// exactly when their canonical strings are equal.
    fn canonical(&self, choices: &[u8]) -> String;
    /// The smallest and the largest sub-network (CaLR's complexity range).
    fn extremes(&self) -> ([u8; MAX_SLOTS], [u8; MAX_SLOTS]);
    /// Checks a supernet configuration of this space, naming the offending setting.
    fn validate(&self, config: &SupernetConfig) -> anyhow::Result<()>;
    /// A run's size and length in this space on `data` (`--preset official`
    /// or `laptop`) where no flag sets them.
    fn run_size(&self, official: bool, data: &DataSpec) -> RunSize;
    /// The ground truth this space has for `data`, which a run's verdict
    /// ranks against unless told otherwise.
    fn benchmark(&self, data: &DataSpec) -> Option<TableSource>;
    /// The tables built into pada for this space.
    fn tables(&self) -> &'static [&'static BuiltInTable];
}

/// The size and length of a run when no flag says otherwise.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunSize {
    pub epochs: usize,
    pub batch_size: usize,
    pub channels: usize,
    pub cells: usize,
}

/// Declares the registered spaces, in registry order: `CONST => module`,
/// where the module has `SPACE` (its [`SearchSpace`]) and
/// `supernet::build`. The first is the default space.
macro_rules! spaces {
    ($($constant:ident => $module:ident),+ $(,)?) => {
        /// The registered spaces' descriptions, in registry order.
        const REGISTRY: &[&dyn SearchSpace] = &[$(&$module::SPACE),+];

        #[allow(non_camel_case_types)]
        mod index {
            // each space's position in the registry
            #[repr(u8)]
            pub enum Of { $($constant),+ }
        }

        impl Space {
            $(pub const $constant: Space = Space(index::Of::$constant as u8);)+

            /// The body of the space's supernet (everything up to the pooled
            /// features), its parameters added to `params`.
            fn body<B: Backend>(self, be: &B, params: &mut ParamStore<B>, config: &SupernetConfig) -> anyhow::Result<Box<dyn SpaceNet<B>>> {
                $(if self == Space::$constant {
                    return $module::supernet::build(be, params, config);
                })+
                unreachable!("a registered space")
            }
        }
    };
}

spaces! {
    NB201 => nb201,
    NB_MACRO => nbmacro,
}

impl<B: Backend> Supernet<B> {
    /// Builds the supernet of `config` with PyTorch's default initialisation from `seed`.
    pub fn new(be: &B, config: SupernetConfig, seed: u64) -> anyhow::Result<Self> {
        let mut net = Self::uninit(be, config)?;
        net.params.init(be, seed);
        Ok(net)
    }

    /// Builds the supernet of `config` with all parameters zero (to be loaded):
    /// the space's body, then the shared classifier.
    pub fn uninit(be: &B, config: SupernetConfig) -> anyhow::Result<Self> {
        config.validate()?;
        config.space.def().validate(&config)?;
        let mut params = ParamStore::default();
        let body = config.space.body(be, &mut params, &config)?;
        Ok(Supernet::assemble(be, config, params, body))
    }
}

impl Space {
    /// Every registered space.
    pub fn registered() -> impl Iterator<Item = Space> {
        (0..REGISTRY.len()).map(|i| Space(i as u8))
    }
    /// The space's description.
    pub fn def(self) -> &'static dyn SearchSpace {
        REGISTRY[self.0 as usize]
    }
    pub fn name(self) -> &'static str {
        self.def().name()
    }
    pub fn slots(self) -> usize {
        self.def().slots()
    }
    pub fn choices(self) -> usize {
        self.def().choices()
    }
    /// Architectures in the space: choices^slots.
    pub fn num_archs(self) -> usize {
        self.choices().pow(self.slots() as u32)
    }
    /// The architecture of index `i` in the space's own order: the choices
    /// read as a base-`choices` number, slot 0 most significant.
    pub fn arch(self, mut i: usize) -> Result<Arch, ArchError> {
        let count = self.num_archs();
        if i >= count {
            return Err(ArchError::Index { index: i, count, space: self.name() });
        }
        let (k, n) = (self.choices(), self.slots());
        let mut choices = [0u8; MAX_SLOTS];
        for s in (0..n).rev() {
            choices[s] = (i % k) as u8;
            i /= k;
        }
        Ok(Arch { space: self, len: n as u8, choices })
    }
    /// Every architecture in index order.
    pub fn all(self) -> impl Iterator<Item = Arch> {
        (0..self.num_archs()).map(move |i| self.arch(i).expect("in range"))
    }
    /// `f` of the architecture whose slot s holds `choice(s)`.
    pub fn arch_from_fn(self, mut choice: impl FnMut(usize) -> usize) -> Arch {
        let mut choices = [0u8; MAX_SLOTS];
        for (s, c) in choices.iter_mut().enumerate().take(self.slots()) {
            let k = choice(s);
            assert!(k < self.choices(), "choice {k} of slot {s} out of range");
            *c = k as u8;
        }
        Arch { space: self, len: self.slots() as u8, choices }
    }
    /// [`SearchSpace::benchmark`].
    pub fn benchmark(self, data: &DataSpec) -> Option<TableSource> {
        self.def().benchmark(data)
    }
    /// The smallest and the largest sub-network.
    pub fn extremes(self) -> (Arch, Arch) {
        let (a, b) = self.def().extremes();
        let n = self.slots() as u8;
        (Arch { space: self, len: n, choices: a }, Arch { space: self, len: n, choices: b })
    }
}

impl fmt::Display for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Debug for Space {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Space {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        Space::registered().find(|sp| sp.name() == s).ok_or_else(|| {
            anyhow::anyhow!("--space {s:?}: expected {}", Space::registered().map(|sp| sp.name()).collect::<Vec<_>>().join(" or "))
        })
    }
}

impl serde::Serialize for Space {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Space {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

impl clap::ValueEnum for Space {
    fn value_variants<'a>() -> &'a [Self] {
        static ALL: std::sync::OnceLock<Vec<Space>> = std::sync::OnceLock::new();
        ALL.get_or_init(|| Space::registered().collect())
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()).help(self.def().title()))
    }
}

impl Arch {
    /// The architecture of `space` with these choices (one per slot).
    pub fn new(space: Space, choices: &[u8]) -> Result<Self, ArchError> {
        let d = space.def();
        if choices.len() != d.slots() {
            return Err(ArchError::Malformed(format!("{} has {} {}s, got {} choices", d.title(), d.slots(), d.slot_name(), choices.len())));
        }
        if let Some((s, &k)) = choices.iter().enumerate().find(|(_, &k)| k as usize >= d.choices()) {
            return Err(ArchError::Malformed(format!("{} {s}: choice {k} is not in 0..{}", d.slot_name(), d.choices())));
        }
        let mut c = [0u8; MAX_SLOTS];
        c[..choices.len()].copy_from_slice(choices);
        Ok(Self { space, len: choices.len() as u8, choices: c })
    }
    /// An architecture string of `space`.
    /// A string of `space` only; one of another space says so.
    pub fn parse_in(space: Space, s: &str) -> Result<Self, ArchError> {
        match space.def().parse(s.trim()) {
            Ok(choices) => Self::new(space, &choices),
            Err(why) => Err(ArchError::Malformed(match s.parse::<Arch>() {
                Ok(other) => format!("{s:?} is a {} string, not a {} one", other.space.def().title(), space.def().title()),
                Err(_) => format!("malformed {} string {s:?}: {why} (expected e.g. {})", space.def().title(), space.def().example()),
            })),
        }
    }
    /// Its index in the space's order ([`Space::arch`]).
    pub fn index(&self) -> usize {
        let k = self.space.choices();
        self.choices().iter().fold(0, |acc, &c| acc * k + c as usize)
    }
    /// Its isomorphism class ([`SearchSpace::canonical`]).
    pub fn canonical(&self) -> String {
        self.space.def().canonical(self.choices())
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.space.def().format(self.choices(), f)
    }
}

impl fmt::Debug for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{self}", self.space)
    }
}

impl FromStr for Arch {
    type Err = ArchError;
    /// A string of any registered space: the space whose strings it is.
    fn from_str(s: &str) -> Result<Self, ArchError> {
        let t = s.trim();
        let mut first_error = None;
        for space in Space::registered() {
            match space.def().parse(t) {
                Ok(choices) => return Arch::new(space, &choices),
                Err(why) if first_error.is_none() && space.def().looks_like(t) => first_error = Some((space, why)),
                Err(_) => {}
            }
        }
        Err(ArchError::Malformed(match first_error {
            Some((space, why)) => {
                format!("malformed {} string {s:?}: {why} (expected e.g. {})", space.def().title(), space.def().example())
            }
            None => format!(
                "{s:?} is no architecture string of any space ({})",
                Space::registered().map(|sp| format!("{}: e.g. {}", sp.def().title(), sp.def().example())).collect::<Vec<_>>().join("; ")
            ),
        }))
    }
}

impl FromStr for TableSource {
    type Err = anyhow::Error;
    /// A built-in table of any space by name, else a CSV file.
    fn from_str(s: &str) -> anyhow::Result<Self> {
        let built_in = || Space::registered().flat_map(|sp| sp.def().tables().iter().copied());
        if let Some(t) = built_in().find(|t| t.name == s) {
            return Ok(TableSource::BuiltIn(t));
        }
        // a name like a built-in's ("nb201:cifar11") is a typo, not a file
        if let Some((family, _)) = s.split_once(':') {
            if built_in().any(|t| t.name.split_once(':').is_some_and(|(f, _)| f == family)) {
                anyhow::bail!("{s:?}: no such built-in table (built in: {})", built_in().map(|t| t.name).collect::<Vec<_>>().join(", "));
            }
        }
        Ok(TableSource::File(s.into()))
    }
}

impl serde::Serialize for Arch {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Arch {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_round_trip_in_every_space() {
        for space in Space::registered() {
            for i in (0..space.num_archs()).step_by(97) {
                let a = space.arch(i).unwrap();
                assert_eq!(a.index(), i);
                assert_eq!(a.to_string().parse::<Arch>().unwrap(), a, "{a}");
            }
            assert!(space.arch(space.num_archs()).is_err());
        }
    }

    #[test]
    fn a_string_names_its_space_and_errors_name_the_space_meant() {
        assert_eq!("02012100".parse::<Arch>().unwrap().space(), Space::NB_MACRO);
        let nb201 = "|nor_conv_3x3~0|+|none~0|nor_conv_1x1~1|+|skip_connect~0|none~1|avg_pool_3x3~2|";
        assert_eq!(nb201.parse::<Arch>().unwrap().space(), Space::NB201);
        let e = "02012103".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("NAS-Bench-Macro") && e.contains("'3'"), "{e}");
        let e = "0201210".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("NAS-Bench-Macro") && e.contains("7"), "{e}");
        let e = "|conv~0|+|none~0|none~1|+|none~0|none~1|none~2|".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("NAS-Bench-201") && e.contains("unknown op"), "{e}");
        let e = "resnet".parse::<Arch>().unwrap_err().to_string();
        assert!(e.contains("no architecture string of any space"), "{e}");
    }
}
