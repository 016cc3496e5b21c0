//! A little-endian cursor over the binary parts of a MOJO (tree files, XGBoost's
//! `boosterBytes`). Every read is bounds-checked, lengths included: bytes that end early are
//! the caller's error (`end`), never a panic.

pub(crate) struct Cursor<'a, E> {
    bytes: &'a [u8],
    /// Where the next read starts; the tree reader seeks by setting it.
    pub(crate) pos: usize,
    /// The error for bytes that end before a read does.
    end: fn() -> E,
}

impl<'a, E> Cursor<'a, E> {
    pub(crate) fn new(bytes: &'a [u8], end: fn() -> E) -> Self {
        Cursor { bytes, pos: 0, end }
    }

    /// The length of the bytes read.
    pub(crate) fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Bytes not read yet.
    pub(crate) fn remaining(&self) -> usize {
        self.bytes.len().saturating_sub(self.pos)
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], E> {
        let s = self
            .pos
            .checked_add(n)
            .and_then(|stop| self.bytes.get(self.pos..stop))
            .ok_or_else(self.end)?;
        self.pos += n;
        Ok(s)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], E> {
        Ok(self.take(N)?.try_into().expect("take returns N bytes"))
    }

    pub(crate) fn u8(&mut self) -> Result<u8, E> {
        Ok(self.take(1)?[0])
    }
    pub(crate) fn u16(&mut self) -> Result<u16, E> {
        Ok(u16::from_le_bytes(self.array()?))
    }
    pub(crate) fn u24(&mut self) -> Result<u32, E> {
        let [a, b, c] = self.array()?;
        Ok(u32::from(a) | u32::from(b) << 8 | u32::from(c) << 16)
    }
    pub(crate) fn i32(&mut self) -> Result<i32, E> {
        Ok(i32::from_le_bytes(self.array()?))
    }
    pub(crate) fn u32(&mut self) -> Result<u32, E> {
        Ok(u32::from_le_bytes(self.array()?))
    }
    pub(crate) fn f32(&mut self) -> Result<f32, E> {
        Ok(f32::from_le_bytes(self.array()?))
    }
    /// A `u64` length, then that many bytes, read as (lossy) UTF-8.
    pub(crate) fn string(&mut self) -> Result<String, E> {
        let len = u64::from_le_bytes(self.array()?);
        let bytes = self.take(usize::try_from(len).unwrap_or(usize::MAX))?;
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::Cursor;

    #[test]
    fn reads_little_endian_and_refuses_to_run_past_the_end() {
        let bytes = [1u8, 0x34, 0x12, 1, 2, 3, 0xff, 0xff, 0xff, 0xff];
        let mut c = Cursor::new(&bytes, || "end");
        assert_eq!(c.u8(), Ok(1));
        assert_eq!(c.u16(), Ok(0x1234));
        assert_eq!(c.u24(), Ok(0x030201));
        assert_eq!(c.i32(), Ok(-1));
        assert_eq!(c.u8(), Err("end"));
        // A length near usize::MAX is an error, not an overflow.
        let huge = u64::MAX.to_le_bytes();
        assert_eq!(Cursor::new(&huge, || "end").string(), Err("end"));
        let mut c = Cursor::new(&[0u8; 4], || "end");
        c.take(2).unwrap();
        assert_eq!(c.take(usize::MAX), Err("end"));
    }
}
