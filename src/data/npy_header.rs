//! The header of a `.npy` file: magic, version, and the Python dict literal that gives the
//! dtype, the order and the shape.
//!
//! Parsed here rather than by a crate because the header is untrusted input whose shape
//! becomes allocation sizes: every number is checked (no product of the shape is formed
//! here; the caller compares it with the file's length in wide arithmetic), and anything
//! unexpected is a reason string, never a panic. The format:
//! <https://numpy.org/doc/stable/reference/generated/numpy.lib.format.html>.

/// What a `.npy` header says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NpyHeader {
    /// The dtype string, as `<f4`.
    pub descr: String,
    /// Column-major data.
    pub fortran_order: bool,
    /// The array's dimensions.
    pub shape: Vec<u64>,
    /// Where the data start: the header's length.
    pub data_offset: usize,
}

const MAGIC: &[u8] = b"\x93NUMPY";

/// Parses the header at the start of `bytes`.
///
/// # Errors
/// What is wrong, in words, for a file that is not a `.npy` file or whose header is not a
/// dict with a string `descr`, a boolean `fortran_order` and a tuple of whole numbers
/// `shape`.
pub(crate) fn parse(bytes: &[u8]) -> Result<NpyHeader, String> {
    if !bytes.starts_with(MAGIC) {
        return Err("no \\x93NUMPY magic at the start".into());
    }
    let (major, minor) = match bytes.get(6..8) {
        Some(&[a, b]) => (a, b),
        _ => return Err("the file ends inside the magic".into()),
    };
    let (len_bytes, start) = match major {
        1 => (2, 10),
        2 | 3 => (4, 12),
        _ => {
            return Err(format!(
                "format version {major}.{minor} is not 1.x, 2.x or 3.x"
            ));
        }
    };
    let len = bytes
        .get(8..8 + len_bytes)
        .ok_or("the file ends inside the header length")?;
    let len = len
        .iter()
        .rev()
        .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
    let text = bytes
        .get(start..start + len)
        .ok_or_else(|| format!("the header of {len} bytes is cut short"))?;
    let mut p = Parser { text, at: 0 };
    let header = p.dict()?;
    Ok(NpyHeader {
        data_offset: start + len,
        ..header
    })
}

/// A cursor over the dict literal (ASCII; version 3's UTF-8 only matters inside strings,
/// which are kept as they are).
struct Parser<'a> {
    text: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn skip_space(&mut self) {
        while self
            .text
            .get(self.at)
            .is_some_and(|c| c.is_ascii_whitespace())
        {
            self.at += 1;
        }
    }

    /// Consumes `c` (after any space) or says what was found instead.
    fn expect(&mut self, c: u8) -> Result<(), String> {
        self.skip_space();
        match self.text.get(self.at) {
            Some(&found) if found == c => {
                self.at += 1;
                Ok(())
            }
            found => Err(format!(
                "header: expected '{}' at byte {}, found {}",
                c as char,
                self.at,
                found.map_or("the end".into(), |&f| format!("'{}'", f.escape_ascii()))
            )),
        }
    }

    /// Consumes `c` if it comes next.
    fn eat(&mut self, c: u8) -> bool {
        self.skip_space();
        let hit = self.text.get(self.at) == Some(&c);
        self.at += usize::from(hit);
        hit
    }

    fn string(&mut self) -> Result<String, String> {
        self.skip_space();
        let quote = match self.text.get(self.at) {
            Some(&q @ (b'\'' | b'"')) => q,
            _ => return Err(format!("header: expected a string at byte {}", self.at)),
        };
        let start = self.at + 1;
        let len = self.text[start..]
            .iter()
            .position(|&c| c == quote)
            .ok_or("header: a string is not closed")?;
        self.at = start + len + 1;
        String::from_utf8(self.text[start..start + len].to_vec())
            .map_err(|_| "header: a string is not UTF-8".into())
    }

    fn boolean(&mut self) -> Result<bool, String> {
        self.skip_space();
        for (word, value) in [(&b"True"[..], true), (b"False", false)] {
            if self.text[self.at..].starts_with(word) {
                self.at += word.len();
                return Ok(value);
            }
        }
        Err(format!(
            "header: expected True or False at byte {}",
            self.at
        ))
    }

    fn number(&mut self) -> Result<u64, String> {
        self.skip_space();
        let digits = self.text[self.at..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        let text = &self.text[self.at..self.at + digits];
        self.at += digits;
        // Python 2 wrote long integers with an L.
        self.eat(b'L');
        std::str::from_utf8(text)
            .ok()
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| {
                format!(
                    "header: a dimension is not a whole number below 2⁶⁴ (\"{}\")",
                    text.escape_ascii()
                )
            })
    }

    fn tuple(&mut self) -> Result<Vec<u64>, String> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        while !self.eat(b')') {
            dims.push(self.number()?);
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }

    fn dict(&mut self) -> Result<NpyHeader, String> {
        self.expect(b'{')?;
        let (mut descr, mut fortran_order, mut shape) = (None, None, None);
        while !self.eat(b'}') {
            let key = self.string()?;
            self.expect(b':')?;
            match key.as_str() {
                "descr" if descr.is_none() => descr = Some(self.string()?),
                "fortran_order" if fortran_order.is_none() => {
                    fortran_order = Some(self.boolean()?);
                }
                "shape" if shape.is_none() => shape = Some(self.tuple()?),
                "descr" | "fortran_order" | "shape" => {
                    return Err(format!("header: key '{key}' is given twice"));
                }
                _ => return Err(format!("header: unknown key '{key}'")),
            }
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        match (descr, fortran_order, shape) {
            (Some(descr), Some(fortran_order), Some(shape)) => Ok(NpyHeader {
                descr,
                fortran_order,
                shape,
                data_offset: 0,
            }),
            _ => Err("header: needs the keys 'descr', 'fortran_order' and 'shape'".into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(dict: &str) -> Vec<u8> {
        let mut header = dict.as_bytes().to_vec();
        while !(10 + header.len() + 1).is_multiple_of(64) {
            header.push(b' ');
        }
        header.push(b'\n');
        let mut bytes = b"\x93NUMPY\x01\x00".to_vec();
        bytes.extend((header.len() as u16).to_le_bytes());
        bytes.extend(header);
        bytes
    }

    #[test]
    fn numpy_headers_parse() {
        let bytes = file("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2), }");
        let h = parse(&bytes).unwrap();
        assert_eq!(
            h,
            NpyHeader {
                descr: "<f4".into(),
                fortran_order: false,
                shape: vec![3, 2],
                data_offset: bytes.len()
            }
        );
        // Any key order, one-element and empty tuples, Python 2's long integers.
        let h = parse(&file(
            "{\"shape\": (7L,), \"fortran_order\": True, \"descr\": \"<f8\"}",
        ))
        .unwrap();
        assert_eq!((h.shape, h.fortran_order), (vec![7], true));
        let h = parse(&file("{'descr':'<f8','fortran_order':False,'shape':()}")).unwrap();
        assert!(h.shape.is_empty());
        // Version 2: a 4-byte length.
        let mut v2 = b"\x93NUMPY\x02\x00".to_vec();
        let dict = b"{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2), }\n";
        v2.extend((dict.len() as u32).to_le_bytes());
        v2.extend(dict);
        assert_eq!(parse(&v2).unwrap().data_offset, 12 + dict.len());
    }

    #[test]
    fn bad_headers_say_why() {
        let cases: [(&[u8], &str); 9] = [
            (b"a,b\n1,2\n", "magic"),
            (b"\x93NUMPY\x01", "ends inside the magic"),
            (b"\x93NUMPY\x09\x00\x10\x00", "version 9.0"),
            (b"\x93NUMPY\x01\x00\xff\x00{}", "cut short"),
            (
                &file(
                    "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999, 2)}",
                ),
                "below 2⁶⁴",
            ),
            (
                &file("{'descr': '<f4', 'fortran_order': 0, 'shape': (1, 2)}"),
                "True or False",
            ),
            (&file("{'descr': '<f4', 'shape': (1, 2)}"), "needs the keys"),
            (
                &file("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (1,)}"),
                "twice",
            ),
            (
                &file("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 2"),
                "expected ')'",
            ),
        ];
        for (bytes, needle) in cases {
            let err = parse(bytes).unwrap_err();
            assert!(err.contains(needle), "{err} lacks {needle:?}");
        }
    }
}
