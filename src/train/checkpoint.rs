//! `supernet.safetensors` (the weights, for ranking and for Python) and
//! `checkpoint.safetensors` (everything `--resume` needs).
//!
//! Tensor names in `supernet.safetensors`, all float32 with PyTorch shapes:
//! - `stem.weight` `[C, in, 3, 3]`;
//! - `cell{i}.edge{e}.op{o}.weight|bias` for search cell i (0..3N, over all
//!   stages), edge e (0..6 in the order 1<-0, 2<-0, 2<-1, 3<-0, 3<-1, 3<-2) and
//!   op o (2 = nor_conv_1x1, 3 = nor_conv_3x3);
//! - `res{r}.conv_a.weight|bias`, `res{r}.conv_b.weight|bias`, `res{r}.shortcut.weight` (r = 0, 1);
//! - `classifier.weight` `[classes, 4C]`, `classifier.bias`.
//!
//! NAS-Bench-Macro's (`--space nb-macro`): `stem.weight`; `layer{l}.op0.conv.weight` (the strided
//! identity of layers 0, 2, 5), `layer{l}.op{1,2}.pw1|dw|pw2.weight` (the MobileNetV2 blocks:
//! pointwise `[e c, c, 1, 1]`, depthwise `[e c, 1, k, k]`, pointwise `[c', e c, 1, 1]`);
//! `head.weight`; `classifier.weight|bias`.
//!
//! The file's metadata holds the supernet configuration (`channels`, `cells`,
//! `classes`, `input`, and `space` for spaces other than NAS-Bench-201) and
//! `format = pada-supernet-1`.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context};
use safetensors::{Dtype, SafeTensors, View};

use super::Trainer;
use crate::arch::Space;
use crate::backend::Backend;
use crate::element::Element;
use crate::supernet::{InputShape, Supernet, SupernetConfig};

pub const WEIGHTS_FORMAT: &str = "pada-supernet-1";
pub const CHECKPOINT_FORMAT: &str = "pada-checkpoint-1";

/// An owned tensor to serialise.
struct Owned {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Owned {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

fn f32_tensor<T: Element>(shape: Vec<usize>, v: &[T]) -> Owned {
    let f: Vec<f32> = v.iter().map(|x| x.as_f64() as f32).collect();
    Owned { dtype: Dtype::F32, shape, bytes: bytemuck::cast_slice(&f).to_vec() }
}

fn config_metadata(c: &SupernetConfig) -> HashMap<String, String> {
    let mut m = HashMap::from([
        ("channels".into(), c.channels.to_string()),
        ("cells".into(), c.cells.to_string()),
        ("classes".into(), c.classes.to_string()),
        ("input".into(), c.input.to_string()),
    ]);
    // NAS-Bench-201's files have no `space` (those written before there were others)
    if c.space != Space::NB201 {
        m.insert("space".into(), c.space.to_string());
    }
    m
}

fn config_from_metadata(m: &HashMap<String, String>, what: &str) -> anyhow::Result<SupernetConfig> {
    let get = |k: &str| m.get(k).with_context(|| format!("{what}: metadata has no '{k}' (not a pada supernet file?)"));
    let num = |k: &str| -> anyhow::Result<usize> { get(k)?.parse().with_context(|| format!("{what}: metadata '{k}' is not a number")) };
    let space = match m.get("space") {
        Some(s) => s.parse().with_context(|| format!("{what}: metadata 'space'"))?,
        None => Space::NB201,
    };
    Ok(SupernetConfig {
        space,
        channels: num("channels")?,
        cells: num("cells")?,
        classes: num("classes")?,
        input: get("input")?.parse::<InputShape>()?,
    })
}

fn serialize(tensors: Vec<(String, Owned)>, meta: HashMap<String, String>) -> anyhow::Result<Vec<u8>> {
    let refs: Vec<(String, &Owned)> = tensors.iter().map(|(n, t)| (n.clone(), t)).collect();
    let mut bytes = safetensors::serialize(refs, Some(meta)).context("serialising safetensors")?;
    canonical_header(&mut bytes)?;
    Ok(bytes)
}

/// Rewrites the JSON header with its keys sorted: the metadata is a HashMap,
/// whose order differs between processes, and the same run must give the same
/// bytes. The header keeps its length (padded with spaces, as the format allows).
fn canonical_header(bytes: &mut [u8]) -> anyhow::Result<()> {
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
    let header: serde_json::Value = serde_json::from_slice(&bytes[8..8 + n]).context("re-reading our own header")?;
    let mut sorted = serde_json::to_vec(&header)?; // serde_json's maps are ordered by key
    ensure!(sorted.len() <= n, "canonical header longer than the original");
    sorted.resize(n, b' ');
    bytes[8..8 + n].copy_from_slice(&sorted);
    Ok(())
}

fn parse<'a>(bytes: &'a [u8], what: &str) -> anyhow::Result<(SafeTensors<'a>, HashMap<String, String>)> {
    let st = SafeTensors::deserialize(bytes)
        .map_err(|e| anyhow::anyhow!("{what}: not a valid safetensors file ({e}); truncated or corrupt?"))?;
    let (_, md) = SafeTensors::read_metadata(bytes).map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
    Ok((st, md.metadata().clone().unwrap_or_default()))
}

fn read_f32(st: &SafeTensors, name: &str, shape: &[usize], what: &str) -> anyhow::Result<Vec<f32>> {
    let t = st.tensor(name).map_err(|_| anyhow::anyhow!("{what}: tensor '{name}' is missing"))?;
    ensure!(t.dtype() == Dtype::F32, "{what}: tensor '{name}' is {:?}, expected F32", t.dtype());
    ensure!(
        t.shape() == shape,
        "{what}: tensor '{name}' has shape {:?}, expected {shape:?} (a checkpoint of another configuration?)",
        t.shape()
    );
    Ok(t.data().chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect())
}

/// The weights as `supernet.safetensors` bytes.
pub fn weights_bytes<B: Backend>(be: &B, net: &Supernet<B>) -> anyhow::Result<Vec<u8>> {
    let tensors = net.params.tensors.iter().map(|p| (p.name.clone(), f32_tensor(p.shape.clone(), &be.download(&p.value)))).collect();
    let mut meta = config_metadata(&net.config);
    meta.insert("format".into(), WEIGHTS_FORMAT.into());
    serialize(tensors, meta)
}

/// A supernet from `supernet.safetensors` bytes (or a checkpoint's), built in
/// the configuration its metadata records; `what` names the file in errors.
pub fn load_weights<B: Backend>(be: &B, bytes: &[u8], what: &str) -> anyhow::Result<Supernet<B>> {
    let (st, meta) = parse(bytes, what)?;
    let config = config_from_metadata(&meta, what)?;
    let mut net = Supernet::uninit(be, config).with_context(|| format!("{what}: its configuration is invalid"))?;
    let prefix = if meta.get("format").map(String::as_str) == Some(CHECKPOINT_FORMAT) { "param." } else { "" };
    for p in &mut net.params.tensors {
        let v = read_f32(&st, &format!("{prefix}{}", p.name), &p.shape, what)?;
        let host: Vec<B::T> = v.into_iter().map(|x| B::T::from_f64(x as f64)).collect();
        be.upload_into(&host, &mut p.value);
    }
    Ok(net)
}

/// The checkpoint name of momentum group `g`: `momentum` (the only one
/// without momentum separation), then `momentum1`, `momentum2`, ...
fn momentum_name(g: usize) -> String {
    if g == 0 {
        "momentum".into()
    } else {
        format!("momentum{g}")
    }
}

/// Everything to continue training: weights, momentum, which tensors have had
/// gradients, the samplers' state and the number of epochs done.
pub fn checkpoint_bytes<B: Backend>(t: &Trainer<B>) -> anyhow::Result<Vec<u8>> {
    let be = t.be;
    let mut tensors = Vec::new();
    let groups = t.net.params.momentum_groups();
    for (i, p) in t.net.params.tensors.iter().enumerate() {
        tensors.push((format!("param.{}", p.name), f32_tensor(p.shape.clone(), &be.download(&p.value))));
        for g in 0..groups {
            let m = be.download(t.net.params.momentum_of(i, g));
            tensors.push((format!("{}.{}", momentum_name(g), p.name), f32_tensor(p.shape.clone(), &m)));
        }
    }
    let prob = t.paths.distribution();
    tensors.push((
        "sampler.path_prob".into(),
        Owned { dtype: Dtype::F64, shape: vec![prob.len()], bytes: bytemuck::cast_slice(prob).to_vec() },
    ));
    let (next, q) = t.samples.state();
    if let Some(next) = next {
        tensors.push((
            "sampler.data_next".into(),
            Owned { dtype: Dtype::U32, shape: vec![next.len()], bytes: bytemuck::cast_slice(next).to_vec() },
        ));
    }
    if let Some(q) = q {
        tensors.push(("sampler.data_q".into(), Owned { dtype: Dtype::F64, shape: vec![q.len()], bytes: bytemuck::cast_slice(q).to_vec() }));
    }
    let seen: Vec<String> = t.net.params.tensors.iter().enumerate().filter(|(_, p)| p.seen).map(|(i, _)| i.to_string()).collect();
    let mut meta = config_metadata(&t.net.config);
    meta.insert("format".into(), CHECKPOINT_FORMAT.into());
    meta.insert("epochs_done".into(), t.epoch.to_string());
    meta.insert("seen".into(), seen.join(","));
    serialize(tensors, meta)
}

/// Restores a trainer (built from the same config.json) to a checkpoint.
pub fn restore_checkpoint<B: Backend>(t: &mut Trainer<B>, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let be = t.be;
    let (st, meta) = parse(bytes, what)?;
    ensure!(
        meta.get("format").map(String::as_str) == Some(CHECKPOINT_FORMAT),
        "{what}: not a pada checkpoint (format {:?})",
        meta.get("format")
    );
    let config = config_from_metadata(&meta, what)?;
    if config != t.net.config {
        bail!("{what}: checkpoint is for supernet {config} but the run's configuration gives {}", t.net.config);
    }
    let epochs_done: usize = meta.get("epochs_done").and_then(|v| v.parse().ok()).with_context(|| format!("{what}: no epochs_done"))?;
    let seen: Vec<usize> = match meta.get("seen").map(String::as_str) {
        None | Some("") => Vec::new(),
        Some(s) => s.split(',').map(|v| v.parse()).collect::<Result<_, _>>().with_context(|| format!("{what}: bad 'seen' list"))?,
    };
    let groups = t.net.params.momentum_groups();
    let upload = |name: String, shape: &[usize], buf: &mut B::Buf| -> anyhow::Result<()> {
        let v = read_f32(&st, &name, shape, what)?;
        let host: Vec<B::T> = v.into_iter().map(|x| B::T::from_f64(x as f64)).collect();
        be.upload_into(&host, buf);
        Ok(())
    };
    for i in 0..t.net.params.len() {
        let (name, shape) = (t.net.params.tensors[i].name.clone(), t.net.params.tensors[i].shape.clone());
        upload(format!("param.{name}"), &shape, &mut t.net.params.tensors[i].value)?;
        for g in 0..groups {
            upload(format!("{}.{name}", momentum_name(g)), &shape, t.net.params.momentum_of_mut(i, g))?;
        }
        let p = &mut t.net.params.tensors[i];
        p.seen = seen.contains(&i);
        be.fill(&mut p.grad, B::T::from_f64(0.0));
        p.dirty = false;
    }
    ensure!(
        st.tensor(&format!("{}.{}", momentum_name(groups), t.net.params.tensors[0].name)).is_err(),
        "{what}: the checkpoint has more momentum groups than the run's --momentum-groups {groups}"
    );
    let prob = st.tensor("sampler.path_prob").map_err(|_| anyhow::anyhow!("{what}: no sampler.path_prob"))?;
    t.paths.set_distribution(prob.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect())?;
    let next =
        st.tensor("sampler.data_next").ok().map(|v| v.data().chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().unwrap())).collect());
    let q = match st.tensor("sampler.data_q") {
        Err(_) => None,
        Ok(v) if v.dtype() == Dtype::F64 => Some(v.data().chunks_exact(8).map(|c| f64::from_le_bytes(c.try_into().unwrap())).collect()),
        Ok(v) => bail!("{what}: tensor 'sampler.data_q' is {:?}, expected F64 (a checkpoint of an older pada?)", v.dtype()),
    };
    t.samples.restore(next, q)?;
    t.epoch = epochs_done;
    Ok(())
}
