//! Small helpers for the CPU engine's data-parallel loops.

use std::cell::RefCell;

/// A mutable buffer shared by tasks that each write a disjoint part of it.
///
/// The convolution tiles own disjoint column ranges of a CNHW output (whole
/// images), which are not one contiguous run, so they cannot be handed out with
/// `split_at_mut`. Each task asks for exactly the elements it owns.
pub struct Disjoint<T> {
    ptr: *mut T,
    len: usize,
}

// SAFETY: `Disjoint` is only a pointer; the callers guarantee that concurrent
// tasks touch disjoint elements (documented at each use).
unsafe impl<T: Send> Send for Disjoint<T> {}
unsafe impl<T: Send> Sync for Disjoint<T> {}

impl<T> Disjoint<T> {
    pub fn new(data: &mut [T]) -> Self {
        Self { ptr: data.as_mut_ptr(), len: data.len() }
    }
    /// The elements `start .. start + len`.
    ///
    /// # Safety
    /// No other live reference may overlap this range.
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn range(&self, start: usize, len: usize) -> &mut [T] {
        assert!(start + len <= self.len, "Disjoint::range out of bounds");
        std::slice::from_raw_parts_mut(self.ptr.add(start), len)
    }
    pub fn ptr(&self) -> *mut T {
        self.ptr
    }
    pub fn len(&self) -> usize {
        self.len
    }
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

thread_local! {
    static SCRATCH: RefCell<Vec<Vec<u64>>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` with a per-thread scratch buffer of `len` elements (contents unspecified).
///
/// Big temporary buffers allocated per call would be `mmap`ed and page-faulted
/// afresh every time; these live as long as the worker thread. Calls nest.
pub fn with_scratch<T: bytemuck::Pod, R>(len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    assert!(std::mem::align_of::<T>() <= 8);
    let words = (len * std::mem::size_of::<T>()).div_ceil(8);
    let mut buf = SCRATCH.with(|s| s.borrow_mut().pop()).unwrap_or_default();
    if buf.len() < words {
        buf.resize(words, 0);
    }
    let bytes: &mut [u8] = bytemuck::cast_slice_mut(&mut buf[..words]);
    let typed: &mut [T] = bytemuck::cast_slice_mut(&mut bytes[..len * std::mem::size_of::<T>()]);
    let r = f(typed);
    SCRATCH.with(|s| s.borrow_mut().push(buf));
    r
}
