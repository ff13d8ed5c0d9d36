//! The monitor's runtime: what the C library and Rust's `std` would give
//! the program, cut down to what the monitor uses.
//!
//! Why by hand: one monitor runs per VE. On the C library (static glibc)
//! an idle monitor kept 76 KiB of private pages: the C library's relocated
//! data and its data and bss, its heap, the start-up's stack frames. None
//! of it is the monitor's work, and with thousands of VEs it was a tenth of
//! a VE's memory (docs/DENSITY.md). Without it, the program is a 20 KiB
//! position-dependent static executable (so no relocation dirties a page)
//! whose console backlog sits in bss, touched only as the console writes.
//! `origin`, the crate that starts Rust programs without the C library,
//! tracks rustix's unstable runtime module, which rustix renamed in 1.1.6
//! (origin 0.26 no longer builds with it); what the monitor needs is
//! small: the entry point and panic handler ([`crate::program!`], which the
//! `kennel-monitor` binary expands), the memory and string functions the
//! compiler and `core` call ([`mem`]), the arguments on the initial stack
//! ([`Process`]), and the read-only RELRO the C library's start-up would
//! have made ([`protect_relro`]).

pub mod mem;

use core::ffi::{c_char, CStr};
use core::fmt;

/// The arguments and environment the kernel put on the initial stack.
#[derive(Debug, Clone, Copy)]
pub struct Process {
    argc: usize,
    argv: *const *const c_char,
    envp: *const *const c_char,
}

impl Process {
    /// Reads `argc`, `argv` and `envp` from the stack as the kernel left
    /// it at the entry point (the System V ABI's process stack).
    ///
    /// # Safety
    /// `sp` must be the stack pointer the kernel handed to `_start`.
    pub unsafe fn from_initial_stack(sp: *const usize) -> Process {
        // SAFETY: the kernel places argc at sp, then argc argument
        // pointers and a null, then the environment's pointers.
        unsafe {
            let argc = *sp;
            let argv = sp.add(1) as *const *const c_char;
            Process {
                argc,
                argv,
                envp: argv.add(argc + 1),
            }
        }
    }

    /// The arguments after the program's name.
    pub fn args(&self) -> impl Iterator<Item = &'static CStr> + '_ {
        (1..self.argc).map(move |i| {
            // SAFETY: `i < argc`: the kernel put a pointer to a
            // NUL-terminated string there, which lives as long as the
            // process and is never written.
            unsafe { CStr::from_ptr(*self.argv.add(i)) }
        })
    }

    /// The environment, as `execve` takes it.
    pub fn envp(&self) -> *const *const c_char {
        self.envp
    }
}

// The linker's symbol at this executable's ELF header.
extern "C" {
    static __ehdr_start: u8;
}

/// ELF64 header fields up to the program headers' count.
#[repr(C)]
struct ElfHeader {
    ident: [u8; 16],
    kind: u16,
    machine: u16,
    version: u32,
    entry: u64,
    phoff: u64,
    shoff: u64,
    flags: u32,
    ehsize: u16,
    phentsize: u16,
    phnum: u16,
}

/// An ELF64 program header.
#[repr(C)]
struct ProgramHeader {
    kind: u32,
    flags: u32,
    offset: u64,
    vaddr: u64,
    paddr: u64,
    filesz: u64,
    memsz: u64,
    align: u64,
}

const PT_LOAD: u32 = 1;
const PT_GNU_RELRO: u32 = 0x6474_e552;

/// Makes the program's RELRO region (`.data.rel.ro`, `.got`: the tables of
/// function pointers `core::fmt` calls through) read-only, as the C
/// library's start-up does: the monitor reads a VE's console, so a stray
/// write must not reach a function pointer.
pub fn protect_relro() {
    // SAFETY: the linker places the executable's ELF header at
    // `__ehdr_start`, inside the first loaded segment, mapped for the life
    // of the process; its program headers follow at `phoff` (within the
    // same segment: lld and ld map them, PT_PHDR), `phnum` of
    // `phentsize` bytes each, checked to be the size read.
    unsafe {
        let base = core::ptr::addr_of!(__ehdr_start) as usize;
        let eh = &*(base as *const ElfHeader);
        if usize::from(eh.phentsize) != core::mem::size_of::<ProgramHeader>() {
            return;
        }
        let phdrs = core::slice::from_raw_parts(
            (base + eh.phoff as usize) as *const ProgramHeader,
            usize::from(eh.phnum),
        );
        // The load bias: where the header is against where the first
        // segment asked to be (0 for this position-dependent program).
        let Some(first) = phdrs.iter().find(|p| p.kind == PT_LOAD && p.offset == 0) else {
            return;
        };
        let bias = base.wrapping_sub(first.vaddr as usize);
        for p in phdrs.iter().filter(|p| p.kind == PT_GNU_RELRO) {
            let start = bias.wrapping_add(p.vaddr as usize) & !4095;
            let end = bias.wrapping_add((p.vaddr + p.memsz) as usize) & !4095;
            if end > start {
                let _ = crate::sys::protect_read_only(start, end - start);
            }
        }
    }
}

/// The monitor's error output (fd 2: `monitor.log`), unbuffered.
#[derive(Debug)]
pub struct Stderr;

impl fmt::Write for Stderr {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s.as_bytes();
        while !rest.is_empty() {
            match crate::sys::write_raw(2, rest) {
                Ok(0) | Err(_) => return Err(fmt::Error),
                Ok(n) => rest = &rest[n..],
            }
        }
        Ok(())
    }
}

/// Writes a line to the monitor's error output.
#[macro_export]
macro_rules! report {
    ($($arg:tt)*) => {{
        use core::fmt::Write as _;
        let _ = writeln!($crate::rt::Stderr, $($arg)*);
    }};
}

/// The program's entry point, panic handler and the memory functions the
/// compiler emits calls to; expanded once, by the `kennel-monitor` binary
/// (a library may not define them: `kennel` links its own C library).
#[macro_export]
macro_rules! program {
    () => {
        #[cfg(not(target_arch = "x86_64"))]
        compile_error!(
            "kennel-monitor's entry point and system calls are written for x86-64 only \
             (crates/kennel-monitor/src/rt.rs, sys.rs)"
        );

        // The kernel starts the program here with the stack pointer at
        // argc; the System V ABI wants it 16-byte aligned before a call.
        core::arch::global_asm!(
            ".globl _start",
            "_start:",
            "xor ebp, ebp",
            "mov rdi, rsp",
            "and rsp, -16",
            "call {entry}",
            "ud2",
            entry = sym __kennel_monitor_entry,
        );

        unsafe extern "C" fn __kennel_monitor_entry(sp: *const usize) -> ! {
            $crate::rt::protect_relro();
            // SAFETY: `_start` passes the stack pointer the kernel gave it.
            let process = unsafe { $crate::rt::Process::from_initial_stack(sp) };
            $crate::main(process)
        }

        #[panic_handler]
        fn panic(info: &core::panic::PanicInfo<'_>) -> ! {
            $crate::report!("kennel-monitor: internal error: {info}");
            $crate::sys::exit(101)
        }

        /// Named by the unwind tables of the precompiled `core`; never
        /// called: panics end the process (`panic = "abort"`).
        #[no_mangle]
        extern "C" fn rust_eh_personality() {}

        // The memory and string functions the compiler and `core` call, as
        // the C library would give them (`kennel_monitor::rt::mem`).

        /// # Safety
        /// As C's `memcpy`.
        #[no_mangle]
        unsafe extern "C" fn memcpy(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            // SAFETY: the caller's contract is `copy`'s.
            unsafe { $crate::rt::mem::copy(dst, src, n) }
        }

        /// # Safety
        /// As C's `memmove`.
        #[no_mangle]
        unsafe extern "C" fn memmove(dst: *mut u8, src: *const u8, n: usize) -> *mut u8 {
            // SAFETY: the caller's contract is `copy_overlapping`'s.
            unsafe { $crate::rt::mem::copy_overlapping(dst, src, n) }
        }

        /// # Safety
        /// As C's `memset`.
        #[no_mangle]
        unsafe extern "C" fn memset(dst: *mut u8, c: i32, n: usize) -> *mut u8 {
            // SAFETY: the caller's contract is `fill`'s.
            unsafe { $crate::rt::mem::fill(dst, c as u8, n) }
        }

        /// # Safety
        /// As C's `memcmp`.
        #[no_mangle]
        unsafe extern "C" fn memcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
            // SAFETY: the caller's contract is `compare`'s.
            unsafe { $crate::rt::mem::compare(a, b, n) }
        }

        /// # Safety
        /// As C's `bcmp`.
        #[no_mangle]
        unsafe extern "C" fn bcmp(a: *const u8, b: *const u8, n: usize) -> i32 {
            // SAFETY: the caller's contract is `compare`'s.
            unsafe { $crate::rt::mem::compare(a, b, n) }
        }

        /// # Safety
        /// As C's `strlen`.
        #[no_mangle]
        unsafe extern "C" fn strlen(s: *const u8) -> usize {
            // SAFETY: the caller's contract is `length`'s.
            unsafe { $crate::rt::mem::length(s) }
        }
    };
}
