//! The CPU backend's memory: pooled host vectors. Its ops are the reference
//! ops of [`crate::ops`] (each op family's `mod.rs` implements its trait for
//! [`CpuBackend`], each call through [`CpuBackend::op`]), parallel over
//! rayon's pool.

use std::collections::HashMap;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{LaunchStat, Memory};
use crate::element::Element;

/// Free vectors by size class (elements), returned by dropped buffers, and
/// the bytes they hold; the bytes of the pool's buffers in use, and the most
/// that ever were.
struct PoolInner<T> {
    free: Mutex<HashMap<usize, Vec<Vec<T>>>>,
    bytes: AtomicUsize,
    live: AtomicUsize,
    peak_live: AtomicUsize,
}

type Pool<T> = Arc<PoolInner<T>>;

/// The most memory the pool keeps for reuse, or twice the most its buffers in
/// use ever held at once where that is more: a dropped buffer beyond it is
/// freed. A step reuses its own sizes, which then fit however large the step
/// (paths differ in their mix of sizes, hence twice): with a fixed 512 MiB,
/// NB-Macro's C=32 step gave part of its buffers back to the system at every
/// step and faulted them in again (2,800 page faults a step against 300, 5-9%
/// of its time, for 14% more resident memory in `pada train`). Ranking many
/// architectures (each its own mix of sizes, several at a time) would
/// otherwise keep a buffer of every size it ever used.
const POOL_LIMIT_BYTES: usize = 512 << 20;

/// Whether a pool holding `pooled` bytes keeps a dropped buffer of `bytes`,
/// its buffers in use having held at most `peak_live` bytes at once.
fn pool_keeps(pooled: usize, bytes: usize, peak_live: usize) -> bool {
    pooled + bytes <= POOL_LIMIT_BYTES.max(2 * peak_live)
}

/// A CPU buffer: a vector that returns to its backend's pool when dropped, so
/// that the next step's buffers of the same size reuse its memory. Buffers
/// made from a `Vec` (tests) belong to no pool.
pub struct CpuBuf<T: Element> {
    data: Vec<T>,
    pool: Option<Pool<T>>,
}

impl<T: Element> Deref for CpuBuf<T> {
    type Target = Vec<T>;
    fn deref(&self) -> &Vec<T> {
        &self.data
    }
}

impl<T: Element> DerefMut for CpuBuf<T> {
    fn deref_mut(&mut self) -> &mut Vec<T> {
        &mut self.data
    }
}

impl<T: Element> From<Vec<T>> for CpuBuf<T> {
    fn from(data: Vec<T>) -> Self {
        Self { data, pool: None }
    }
}

/// A copy that belongs to no pool.
impl<T: Element> Clone for CpuBuf<T> {
    fn clone(&self) -> Self {
        self.data.clone().into()
    }
}

impl<T: Element> std::fmt::Debug for CpuBuf<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.data.fmt(f)
    }
}

impl<T: Element> Drop for CpuBuf<T> {
    fn drop(&mut self) {
        if let Some(pool) = &self.pool {
            let class = size_class(self.data.len());
            debug_assert!(self.data.capacity() >= class);
            let bytes = class * std::mem::size_of::<T>();
            pool.live.fetch_sub(bytes, Ordering::Relaxed);
            if pool_keeps(pool.bytes.load(Ordering::Relaxed), bytes, pool.peak_live.load(Ordering::Relaxed)) {
                pool.bytes.fetch_add(bytes, Ordering::Relaxed);
                pool.free.lock().unwrap().entry(class).or_default().push(std::mem::take(&mut self.data));
            }
        }
    }
}

/// The CPU engine in element type `T` (`f32` to train, `f64` for gradient checks).
pub struct CpuBackend<T: Element> {
    pool: Pool<T>,
    /// Fill fresh buffers with NaN so that an op that fails to write part of its
    /// output, or reads memory it never initialised, shows up in tests.
    poison: bool,
    /// Calls and seconds of each op under [`Memory::profile_launches`].
    profile: Mutex<HashMap<&'static str, (usize, f64)>>,
    profiling: AtomicBool,
}

impl<T: Element> Default for CpuBackend<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Element> CpuBackend<T> {
    pub fn new() -> Self {
        Self {
            pool: Arc::new(PoolInner {
                free: Mutex::new(HashMap::new()),
                bytes: AtomicUsize::new(0),
                live: AtomicUsize::new(0),
                peak_live: AtomicUsize::new(0),
            }),
            poison: false,
            profile: Mutex::new(HashMap::new()),
            profiling: AtomicBool::new(false),
        }
    }
    /// A backend whose `alloc` fills every buffer with NaN (for tests).
    pub fn poisoned() -> Self {
        Self { poison: true, ..Self::new() }
    }
    /// Runs op `name` (its trait method's name), timed while profiling. Ops
    /// run one at a time, each parallel inside, so their wall-clock times add
    /// up to the step's.
    #[inline]
    pub(crate) fn op<R>(&self, name: &'static str, f: impl FnOnce() -> R) -> R {
        if !self.profiling.load(Ordering::Relaxed) {
            return f();
        }
        let t = Instant::now();
        let r = f();
        let e = t.elapsed().as_secs_f64();
        let mut profile = self.profile.lock().unwrap();
        let (calls, seconds) = profile.entry(name).or_default();
        *calls += 1;
        *seconds += e;
        r
    }
    /// Bytes currently parked in the pool.
    pub fn pooled_bytes(&self) -> usize {
        self.pool.bytes.load(Ordering::Relaxed)
    }
}

/// Pool buffers come in size classes an eighth of a power of two apart, so that
/// nearby sizes (a last, smaller batch; another batch size) share buffers while
/// a buffer wastes at most 12.5% of its capacity.
fn size_class(len: usize) -> usize {
    if len <= 64 {
        return 64;
    }
    let step = 1usize << (usize::BITS - 1 - len.leading_zeros()).saturating_sub(3);
    len.div_ceil(step) * step
}

impl<T: Element> Memory for CpuBackend<T> {
    type T = T;
    type Buf = CpuBuf<T>;
    type IBuf = Vec<i32>;

    fn name(&self) -> String {
        format!("cpu ({} threads)", rayon::current_num_threads())
    }

    fn alloc(&self, len: usize) -> CpuBuf<T> {
        let class = size_class(len);
        let reused = self.pool.free.lock().unwrap().get_mut(&class).and_then(|v| v.pop());
        let bytes = class * std::mem::size_of::<T>();
        if reused.is_some() {
            self.pool.bytes.fetch_sub(bytes, Ordering::Relaxed);
        }
        let live = self.pool.live.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.pool.peak_live.fetch_max(live, Ordering::Relaxed);
        let fillv = if self.poison { T::nan() } else { T::zero() };
        let data = match reused {
            Some(mut b) => {
                b.truncate(len);
                b.resize(len, fillv);
                if self.poison {
                    b.fill(T::nan());
                }
                b
            }
            None => {
                // (`vec!` of zeros asks the allocator for zeroed memory: fresh
                // pages from the kernel, which arrive zeroed, are not written twice)
                let mut b = vec![fillv; class];
                b.truncate(len);
                b
            }
        };
        CpuBuf { data, pool: Some(self.pool.clone()) }
    }
    fn len(&self, buf: &CpuBuf<T>) -> usize {
        buf.len()
    }
    fn upload_into(&self, host: &[T], dst: &mut CpuBuf<T>) {
        assert_eq!(host.len(), dst.len(), "upload: size mismatch");
        dst.copy_from_slice(host);
    }
    fn download(&self, buf: &CpuBuf<T>) -> Vec<T> {
        buf.data.clone()
    }
    fn upload_i32(&self, host: &[i32]) -> Vec<i32> {
        host.to_vec()
    }
    fn download_i32(&self, buf: &Vec<i32>) -> Vec<i32> {
        buf.clone()
    }
    fn alloc_i32(&self, len: usize) -> Vec<i32> {
        vec![if self.poison { i32::MIN } else { 0 }; len]
    }
    /// `a` and `b` on the thread pool at once (`rayon::join`): a convolution's
    /// weight gradient, whose tiles fix its summation order and so may leave a
    /// thread idle, beside its input gradient. While profiling they run one
    /// after the other, so that each op's time is its own.
    fn join<RA: Send, RB: Send>(&self, a: impl FnOnce() -> RA + Send, b: impl FnOnce() -> RB + Send) -> (RA, RB) {
        if self.profiling.load(Ordering::Relaxed) {
            (a(), b())
        } else {
            rayon::join(a, b)
        }
    }
    /// Each op's calls and wall-clock time (see [`CpuBackend::op`]).
    fn profile_launches<R>(&self, f: impl FnOnce() -> R) -> (R, Vec<LaunchStat>) {
        self.profile.lock().unwrap().clear();
        self.profiling.store(true, Ordering::Relaxed);
        let r = f();
        self.profiling.store(false, Ordering::Relaxed);
        let v = LaunchStat::sorted(self.profile.lock().unwrap().drain());
        (r, v)
    }
    fn release_cached(&self) {
        let mut free = self.pool.free.lock().unwrap();
        free.clear();
        self.pool.bytes.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::{pool_keeps, CpuBackend, POOL_LIMIT_BYTES};
    use crate::backend::prelude::*;

    /// The pool keeps up to 512 MiB, or twice the most in use at once.
    #[test]
    fn pool_keeps_up_to_its_limit_or_twice_the_peak_in_use() {
        let (mib, limit) = (1 << 20, POOL_LIMIT_BYTES);
        assert!(pool_keeps(limit - mib, mib, 0));
        assert!(!pool_keeps(limit, mib, 100 * mib), "past 512 MiB with a small peak");
        assert!(pool_keeps(limit, mib, 400 * mib), "a peak of 400 MiB lets it keep 800");
        assert!(pool_keeps(800 * mib - mib, mib, 400 * mib));
        assert!(!pool_keeps(800 * mib, mib, 400 * mib), "not past twice the peak");
    }

    #[test]
    fn profile_counts_each_op_call_and_only_while_profiling() {
        let be = CpuBackend::<f32>::new();
        let x = be.upload(&[1.0, -2.0, 3.0]);
        let mut y = be.alloc(3);
        be.relu_forward(&x, &mut y); // not profiled
        let ((), stats) = be.profile_launches(|| {
            be.relu_forward(&x, &mut y);
            be.scale(&mut y, 2.0);
            be.relu_forward(&x, &mut y);
        });
        let mut calls: Vec<(&str, usize)> = stats.iter().map(|s| (s.kernel.as_str(), s.launches)).collect();
        calls.sort();
        assert_eq!(calls, [("relu_forward", 2), ("scale", 1)]);
        assert!(stats.iter().all(|s| s.seconds >= 0.0 && s.seconds.is_finite()));
        be.scale(&mut y, 2.0);
        assert!(be.profile_launches(|| ()).1.is_empty(), "calls outside profile_launches are not counted");
        assert_eq!(be.download(&y), [2.0, 0.0, 6.0], "the ops ran as usual");
    }
}
