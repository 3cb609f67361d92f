//! The rsync rolling checksum, used to find a piece of a new file inside an
//! older version of it.
//!
//! A commit torrent stores this checksum for every piece (see `docs/FORMAT.md`),
//! so a peer holding an older version of a file can slide a window over it,
//! test the cheap weak sum at every offset and confirm candidates with the
//! piece's SHA-1. Exactly rsync's `a`/`b` sums, each modulo 2^16, without
//! rsync's character offset: `sum = a | b << 16`.

/// The weak checksum of a whole buffer.
pub fn checksum(data: &[u8]) -> u32 {
    Rolling::new(data).digest()
}

/// A window of fixed length whose checksum can be moved one byte in O(1).
#[derive(Debug, Clone, Copy)]
pub struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    /// Starts a window over `window`.
    pub fn new(window: &[u8]) -> Self {
        let len = window.len() as u32;
        let (mut a, mut b) = (0u32, 0u32);
        for (i, &x) in window.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((len - i as u32).wrapping_mul(u32::from(x)));
        }
        Self {
            a: a & 0xffff,
            b: b & 0xffff,
            len,
        }
    }

    /// Slides the window one byte: `out` leaves at the front, `inp` enters at the back.
    #[inline]
    pub fn roll(&mut self, out: u8, inp: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(inp))
            & 0xffff;
        self.b = self
            .b
            .wrapping_sub(self.len.wrapping_mul(u32::from(out)))
            .wrapping_add(self.a)
            & 0xffff;
    }

    /// The checksum of the current window.
    #[inline]
    pub fn digest(&self) -> u32 {
        self.a | (self.b << 16)
    }
}

/// The same checksum computed over data that arrives in parts: after feeding
/// the bytes of a window in order, `digest` equals [`checksum`] of the window.
#[derive(Debug, Clone, Copy, Default)]
pub struct Streaming {
    a: u32,
    b: u32,
}

impl Streaming {
    /// Feeds the next bytes of the window.
    #[inline]
    pub fn update(&mut self, data: &[u8]) {
        // b is the sum of every prefix sum of a; wrapping mod 2^32 keeps the
        // low 16 bits exact.
        let (mut a, mut b) = (self.a, self.b);
        for &x in data {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add(a);
        }
        self.a = a;
        self.b = b;
    }

    /// The checksum of everything fed so far.
    pub fn digest(&self) -> u32 {
        (self.a & 0xffff) | ((self.b & 0xffff) << 16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_value() {
        // a = 97+98+99 = 294, b = 3*97 + 2*98 + 1*99 = 586
        assert_eq!(checksum(b"abc"), 294 | (586 << 16));
    }

    proptest! {
        #[test]
        fn streaming_equals_checksum(data in proptest::collection::vec(any::<u8>(), 0..2000), cut in 0usize..2000) {
            let cut = cut.min(data.len());
            let mut s = Streaming::default();
            s.update(&data[..cut]);
            s.update(&data[cut..]);
            prop_assert_eq!(s.digest(), checksum(&data));
        }

        #[test]
        fn rolling_equals_fresh_sum(data in proptest::collection::vec(any::<u8>(), 1..600), window in 1usize..64) {
            prop_assume!(window <= data.len());
            let mut rolling = Rolling::new(&data[..window]);
            for start in 0..=data.len() - window {
                prop_assert_eq!(rolling.digest(), checksum(&data[start..start + window]));
                if start + window < data.len() {
                    rolling.roll(data[start], data[start + window]);
                }
            }
        }
    }
}
