//! The Thrift compact protocol, write side only: what Parquet's page headers and footer need
//! (structs, unions, lists, i32/i64, binary, bool). Fields must be written in ascending id
//! order within a struct (the short delta form is then always used up to a gap of 15).

const BOOL_TRUE: u8 = 1;
const BOOL_FALSE: u8 = 2;
const I32: u8 = 5;
const I64: u8 = 6;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const STRUCT: u8 = 12;

/// Element types of the lists we write.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Element {
    Bool,
    I32,
    I64,
    Binary,
    Struct,
}

impl Element {
    fn code(self) -> u8 {
        match self {
            Element::Bool => BOOL_TRUE,
            Element::I32 => I32,
            Element::I64 => I64,
            Element::Binary => BINARY,
            Element::Struct => STRUCT,
        }
    }
}

/// Writes one top-level struct into `out`: `Compact::new(out).struct_body(...)`.
pub struct Compact<'a> {
    out: &'a mut Vec<u8>,
    /// Id of the last field written in the struct being written.
    last: i16,
    /// `last` of each enclosing struct.
    outer: Vec<i16>,
}

impl<'a> Compact<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Compact<'a> {
        Compact {
            out,
            last: 0,
            outer: Vec::new(),
        }
    }

    fn varint(&mut self, mut v: u64) {
        while v >= 0x80 {
            self.out.push((v as u8) | 0x80);
            v >>= 7;
        }
        self.out.push(v as u8);
    }

    fn zigzag(&mut self, v: i64) {
        self.varint(((v << 1) ^ (v >> 63)) as u64);
    }

    fn header(&mut self, id: i16, kind: u8) {
        let delta = id - self.last;
        if (1..=15).contains(&delta) {
            self.out.push(((delta as u8) << 4) | kind);
        } else {
            self.out.push(kind);
            self.zigzag(i64::from(id));
        }
        self.last = id;
    }

    pub fn i32(&mut self, id: i16, v: i32) -> &mut Self {
        self.header(id, I32);
        self.zigzag(i64::from(v));
        self
    }

    pub fn i64(&mut self, id: i16, v: i64) -> &mut Self {
        self.header(id, I64);
        self.zigzag(v);
        self
    }

    pub fn bool(&mut self, id: i16, v: bool) -> &mut Self {
        self.header(id, if v { BOOL_TRUE } else { BOOL_FALSE });
        self
    }

    pub fn binary(&mut self, id: i16, v: &[u8]) -> &mut Self {
        self.header(id, BINARY);
        self.bytes(v);
        self
    }

    /// A nested struct (or union: a struct with one field) field; `body` writes its fields.
    pub fn structure(&mut self, id: i16, body: impl FnOnce(&mut Self)) -> &mut Self {
        self.header(id, STRUCT);
        self.nested(body);
        self
    }

    /// A list field of `len` elements; `body` writes them with the `element_*` methods.
    pub fn list(
        &mut self,
        id: i16,
        element: Element,
        len: usize,
        body: impl FnOnce(&mut Self),
    ) -> &mut Self {
        self.header(id, LIST);
        if len < 15 {
            self.out.push(((len as u8) << 4) | element.code());
        } else {
            self.out.push(0xf0 | element.code());
            self.varint(len as u64);
        }
        body(self);
        self
    }

    pub fn element_i32(&mut self, v: i32) {
        self.zigzag(i64::from(v));
    }

    /// A bool list element: one byte, 1 for true and 2 for false (as in field headers).
    pub fn element_bool(&mut self, v: bool) {
        self.out.push(if v { BOOL_TRUE } else { BOOL_FALSE });
    }

    pub fn element_i64(&mut self, v: i64) {
        self.zigzag(v);
    }

    pub fn element_binary(&mut self, v: &[u8]) {
        self.bytes(v);
    }

    pub fn element_struct(&mut self, body: impl FnOnce(&mut Self)) {
        self.nested(body);
    }

    /// Ends the top-level struct.
    pub fn finish(&mut self) {
        self.out.push(0);
    }

    fn bytes(&mut self, v: &[u8]) {
        self.varint(v.len() as u64);
        self.out.extend_from_slice(v);
    }

    fn nested(&mut self, body: impl FnOnce(&mut Self)) {
        self.outer.push(self.last);
        self.last = 0;
        body(self);
        self.out.push(0);
        self.last = self.outer.pop().unwrap_or(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(body: impl FnOnce(&mut Compact<'_>)) -> Vec<u8> {
        let mut out = Vec::new();
        let mut c = Compact::new(&mut out);
        body(&mut c);
        c.finish();
        out
    }

    #[test]
    fn encodings_match_the_compact_protocol() {
        // Each case from the Thrift compact protocol specification.
        let cases: Vec<(&str, Vec<u8>, Vec<u8>)> = vec![
            (
                "i32 field 1 = 0",
                written(|c| {
                    c.i32(1, 0);
                }),
                vec![0x15, 0x00, 0x00],
            ),
            (
                "i32 -1 zigzags to 1",
                written(|c| {
                    c.i32(1, -1);
                }),
                vec![0x15, 0x01, 0x00],
            ),
            (
                "i32 300 is a two-byte varint",
                written(|c| {
                    c.i32(1, 300);
                }),
                vec![0x15, 0xd8, 0x04, 0x00],
            ),
            (
                "i64 field 3",
                written(|c| {
                    c.i64(3, 1);
                }),
                vec![0x36, 0x02, 0x00],
            ),
            (
                "delta of 16 uses the long form",
                written(|c| {
                    c.i32(16, 1);
                }),
                vec![0x05, 0x20, 0x02, 0x00],
            ),
            (
                "bools are in the header",
                written(|c| {
                    c.bool(1, true).bool(2, false);
                }),
                vec![0x11, 0x12, 0x00],
            ),
            (
                "binary",
                written(|c| {
                    c.binary(4, b"ab");
                }),
                vec![0x48, 0x02, b'a', b'b', 0x00],
            ),
            (
                "nested struct restarts field ids",
                written(|c| {
                    c.structure(2, |s| {
                        s.i32(1, 1);
                    })
                    .i32(3, 2);
                }),
                vec![0x2c, 0x15, 0x02, 0x00, 0x15, 0x04, 0x00],
            ),
            (
                "short list",
                written(|c| {
                    c.list(1, Element::I32, 2, |l| {
                        l.element_i32(0);
                        l.element_i32(3);
                    });
                }),
                vec![0x19, 0x25, 0x00, 0x06, 0x00],
            ),
            (
                "long list",
                written(|c| {
                    c.list(1, Element::I32, 15, |l| {
                        for _ in 0..15 {
                            l.element_i32(0);
                        }
                    });
                }),
                [vec![0x19, 0xf5, 0x0f], vec![0; 15], vec![0x00]].concat(),
            ),
            (
                "list of bools",
                written(|c| {
                    c.list(1, Element::Bool, 2, |l| {
                        l.element_bool(true);
                        l.element_bool(false);
                    });
                }),
                vec![0x19, 0x21, 0x01, 0x02, 0x00],
            ),
            (
                "list of i64",
                written(|c| {
                    c.list(1, Element::I64, 1, |l| l.element_i64(-2));
                }),
                vec![0x19, 0x16, 0x03, 0x00],
            ),
            (
                "list of structs",
                written(|c| {
                    c.list(1, Element::Struct, 1, |l| {
                        l.element_struct(|s| {
                            s.i32(1, 1);
                        })
                    });
                }),
                vec![0x19, 0x1c, 0x15, 0x02, 0x00, 0x00],
            ),
        ];
        for (what, got, want) in cases {
            assert_eq!(got, want, "{what}");
        }
    }
}
