//! The memory and string functions the compiler and `core` call (`memcpy`
//! and the rest; the `program!` shims name them). `rep movsb`/`stosb` are
//! fast on every x86-64 since Ivy Bridge, and neither they nor the
//! volatile loops can be turned back into a call to the function itself by
//! the compiler.

use core::arch::asm;

/// Copies `n` bytes from `src` to `dst`; returns `dst`.
///
/// # Safety
/// As C's `memcpy`: `n` bytes valid at both, not overlapping.
pub unsafe fn copy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the direction flag is clear (the ABI).
    unsafe {
        asm!("rep movsb", inout("rcx") n => _, inout("rdi") dst => _,
             inout("rsi") src => _, options(nostack, preserves_flags));
    }
    dst
}

/// Copies `n` bytes from `src` to `dst`, which may overlap; returns `dst`.
///
/// # Safety
/// As C's `memmove`: `n` bytes valid at both.
pub unsafe fn copy_overlapping(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
    if n == 0 {
        return dst;
    }
    if (dst as usize).wrapping_sub(src as usize) >= n {
        // `dst` is below `src`, or past its end: forwards is safe.
        // SAFETY: as `copy`, whose overlap rule this case meets.
        unsafe { copy(dst, src, n) }
    } else {
        // `dst` starts inside `src`: backwards, from the last byte, with
        // the direction flag set and cleared again (the ABI wants it clear).
        // SAFETY: the caller's contract; `n > 0`, so both last bytes are
        // within the ranges.
        unsafe {
            asm!("std", "rep movsb", "cld",
                 inout("rcx") n => _, inout("rdi") dst.add(n - 1) => _,
                 inout("rsi") src.add(n - 1) => _, options(nostack));
        }
        dst
    }
}

/// Sets `n` bytes at `dst` to `c`; returns `dst`.
///
/// # Safety
/// As C's `memset`: `n` bytes valid at `dst`.
pub unsafe fn fill(dst: *mut u8, c: u8, n: usize) -> *mut u8 {
    // SAFETY: the caller's contract; the direction flag is clear.
    unsafe {
        asm!("rep stosb", inout("rcx") n => _, inout("rdi") dst => _,
             in("al") c, options(nostack, preserves_flags));
    }
    dst
}

/// Compares `n` bytes as unsigned: <0, 0 or >0, as C's `memcmp`.
///
/// # Safety
/// As C's `memcmp`: `n` bytes valid at both.
pub unsafe fn compare(a: *const u8, b: *const u8, n: usize) -> i32 {
    for i in 0..n {
        // SAFETY: `i < n`, within both (the caller's contract); volatile,
        // so that the loop is not recognised as a memcmp.
        let (x, y) = unsafe { (a.add(i).read_volatile(), b.add(i).read_volatile()) };
        if x != y {
            return i32::from(x) - i32::from(y);
        }
    }
    0
}

/// The length of the NUL-terminated string at `s`.
///
/// # Safety
/// As C's `strlen`: `s` is NUL-terminated.
pub unsafe fn length(s: *const u8) -> usize {
    let mut n = 0;
    // SAFETY: up to and including the NUL, within the string (the
    // caller's contract); volatile, as in `compare`.
    while unsafe { s.add(n).read_volatile() } != 0 {
        n += 1;
    }
    n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pattern(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 + 3) as u8).collect()
    }

    #[test]
    fn copies_and_fills() {
        for n in [0, 1, 7, 64, 4097] {
            let src = pattern(n);
            let mut dst = vec![0u8; n + 2];
            // SAFETY: `n` bytes at both, separate buffers.
            unsafe { copy(dst.as_mut_ptr().add(1), src.as_ptr(), n) };
            assert_eq!(&dst[1..=n], &src[..], "copy {n}");
            assert_eq!((dst[0], dst[n + 1]), (0, 0), "nothing outside");
            // SAFETY: `n` bytes at dst + 1.
            unsafe { fill(dst.as_mut_ptr().add(1), 0xab, n) };
            assert!(dst[1..=n].iter().all(|&b| b == 0xab));
            assert_eq!((dst[0], dst[n + 1]), (0, 0), "nothing outside");
        }
    }

    #[test]
    fn moves_overlapping_ranges_both_ways() {
        for n in [1, 5, 100, 5000] {
            for shift in [1, 3, n / 2 + 1, n] {
                let orig = pattern(n + shift);
                // Up: dst = src + shift (backwards copy).
                let mut buf = orig.clone();
                // SAFETY: both ranges lie within `buf` (n + shift bytes).
                unsafe { copy_overlapping(buf.as_mut_ptr().add(shift), buf.as_ptr(), n) };
                assert_eq!(&buf[shift..shift + n], &orig[..n], "up {n} by {shift}");
                assert_eq!(&buf[..shift], &orig[..shift]);
                // Down: dst = src - shift (forwards copy).
                let mut buf = orig.clone();
                // SAFETY: as above.
                unsafe { copy_overlapping(buf.as_mut_ptr(), buf.as_ptr().add(shift), n) };
                assert_eq!(&buf[..n], &orig[shift..shift + n], "down {n} by {shift}");
            }
        }
        let mut one = [9u8];
        // SAFETY: zero bytes.
        unsafe { copy_overlapping(one.as_mut_ptr(), one.as_ptr(), 0) };
        assert_eq!(one, [9]);
    }

    #[test]
    fn compares_as_unsigned_bytes_and_measures_strings() {
        let cmp = |a: &[u8], b: &[u8]| {
            // SAFETY: both have a.len() bytes.
            unsafe { compare(a.as_ptr(), b.as_ptr(), a.len()) }.signum()
        };
        assert_eq!(cmp(b"abc", b"abc"), 0);
        assert_eq!(cmp(b"abc", b"abd"), -1);
        assert_eq!(cmp(b"\xff", b"\x01"), 1, "unsigned");
        assert_eq!(cmp(b"", b""), 0);
        // SAFETY: NUL-terminated literals.
        unsafe {
            assert_eq!(length(c"".as_ptr().cast()), 0);
            assert_eq!(length(c"kennel".as_ptr().cast()), 6);
        }
    }
}
