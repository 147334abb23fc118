//! pingora-core turns on flate2's `zlib-ng` feature, and the real libz-ng-sys builds zlib-ng with
//! cmake. This stand-in gives flate2 the same zlib API from libz-rs-sys, the C-compatible
//! interface of zlib-rs (pure Rust): the build needs neither cmake nor a C compiler for
//! compression. Symbols are not exported under their C names, so a system libz in the same
//! process is not shadowed.
//!
//! One difference to bridge: libz-ng-sys declares `zalloc`/`zfree` as plain function pointers
//! and flate2 fills them in that way, while libz-rs-sys wraps them in `Option`. `z_stream` here
//! has libz-ng-sys's field types and the same layout (an `Option` of a function pointer is
//! represented exactly as the pointer), and each function that takes a stream forwards it.
#![allow(non_camel_case_types, non_snake_case, clippy::missing_safety_doc)]

use std::ffi::{c_char, c_int};

pub use libz_rs_sys::*;

#[repr(C)]
pub struct z_stream {
    pub next_in: *const Bytef,
    pub avail_in: uInt,
    pub total_in: uLong,
    pub next_out: *mut Bytef,
    pub avail_out: uInt,
    pub total_out: uLong,
    pub msg: *mut c_char,
    pub state: *mut internal_state,
    pub zalloc: alloc_func,
    pub zfree: free_func,
    pub opaque: voidpf,
    pub data_type: c_int,
    pub adler: uLong,
    pub reserved: uLong,
}

pub type z_streamp = *mut z_stream;

// The layouts must agree, or the stream would be misread; checked when this crate compiles.
const _: () = assert!(std::mem::size_of::<z_stream>() == std::mem::size_of::<libz_rs_sys::z_stream>());
const _: () = assert!(std::mem::align_of::<z_stream>() == std::mem::align_of::<libz_rs_sys::z_stream>());

/// Each function that takes a stream, forwarded with the stream cast to libz-rs-sys's type.
macro_rules! forward {
    ($($name:ident($($arg:ident: $ty:ty),*);)*) => {$(
        pub unsafe extern "C" fn $name(strm: z_streamp $(, $arg: $ty)*) -> c_int {
            unsafe { libz_rs_sys::$name(strm.cast() $(, $arg)*) }
        }
    )*};
}

forward! {
    deflate(flush: c_int);
    deflateEnd();
    deflateReset();
    deflateParams(level: c_int, strategy: c_int);
    deflateSetDictionary(dictionary: *const Bytef, dict_length: uInt);
    deflateInit2_(level: c_int, method: c_int, window_bits: c_int, mem_level: c_int,
                  strategy: c_int, version: *const c_char, stream_size: c_int);
    inflate(flush: c_int);
    inflateEnd();
    inflateReset();
    inflateReset2(window_bits: c_int);
    inflateSetDictionary(dictionary: *const Bytef, dict_length: uInt);
    inflateInit2_(window_bits: c_int, version: *const c_char, stream_size: c_int);
}
