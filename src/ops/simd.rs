//! Wider vectors for the CPU engine's loops without giving up portability.
//!
//! The crate is compiled for baseline x86-64 (SSE2), so an auto-vectorised
//! loop handles 4 floats at a time. [`vectorized`] runs a loop nest compiled
//! again with AVX2 enabled (8 floats) when the CPU has it, chosen at run time.
//! The results are bit-identical: Rust never fuses a multiply and an add, nor
//! reorders a float sum, so the wider code computes the same operations in the
//! same order.

/// Runs `f` with AVX2 enabled where the CPU has it. Only code inlined into
/// the AVX2 copy benefits: pass a closure marked `#[inline(always)]`
/// (`vectorized(#[inline(always)] || ...)`) and mark the helpers it calls
/// `#[inline(always)]` (LLVM keeps a big closure out of line otherwise).
#[inline(always)]
pub fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU supports AVX2 (checked just above).
        return unsafe { with_avx2(f) };
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}
