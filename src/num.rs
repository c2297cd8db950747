//! Numeric conversions of geometry (pixels, modules, millimetres, counts): the few places
//! where a value changes kind, each named for what it does at its bounds. The rest of the
//! crate denies `clippy::as_conversions`, so a silent truncation or wrap cannot slip in;
//! integer conversions elsewhere use `From`/`TryFrom`.
#![allow(clippy::as_conversions)]

/// An integer as a float, for geometry: exact up to 2^24 (pages, barcodes and counts here are
/// far below), rounded to the nearest float beyond.
pub trait ToF32 {
    fn to_f32(self) -> f32;
}

macro_rules! to_f32 {
    ($($t:ty),*) => {
        $(impl ToF32 for $t {
            fn to_f32(self) -> f32 {
                self as f32
            }
        })*
    };
}

to_f32!(usize, isize, u32, i32, u64);

/// A counter as a float for a report: exact below 2^53, rounded to the nearest float beyond.
pub fn f64_of(n: u64) -> f64 {
    n as f64
}

/// A float as a size or index: towards zero, saturating at 0 and `usize::MAX`, NaN as 0.
pub fn usize_of(x: f32) -> usize {
    x as usize
}

/// A float as a signed pixel coordinate: towards zero, saturating, NaN as 0.
pub fn isize_of(x: f32) -> isize {
    x as isize
}

/// A float already clamped to 0..=255 as a grey value (towards zero, saturating).
pub fn u8_of(x: f32) -> u8 {
    x as u8
}

/// A `u32` dimension as an index: lossless on the 32- and 64-bit targets AU-Relay builds for.
pub fn index(n: u32) -> usize {
    n as usize
}

/// A size as a `u32` dimension, saturating at `u32::MAX`.
pub fn u32_of(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_saturate_instead_of_wrapping() {
        assert_eq!(usize_of(-3.7), 0);
        assert_eq!(usize_of(f32::NAN), 0);
        assert_eq!(usize_of(2.9), 2);
        assert_eq!(isize_of(-2.9), -2);
        assert_eq!(u8_of(300.0), 255);
        assert_eq!(u32_of(usize::MAX), u32::MAX);
        assert_eq!(index(7), 7);
        assert_eq!(1000usize.to_f32(), 1000.0);
    }

    #[test]
    fn counters_become_floats_exactly() {
        for n in [
            0,
            1,
            999_999,
            1_234_567,
            u64::from(u32::MAX) + 1,
            (1 << 53) - 1,
        ] {
            assert_eq!(f64_of(n).to_string(), format!("{n}"));
        }
        assert_eq!(f64_of(1_234_567) / 1e6, 1.234567);
    }
}
