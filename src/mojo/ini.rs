//! `model.ini`: the `[info]` key/value section, `[columns]` and `[domains]`.
//!
//! genmodel parses every `[info]` value by its form (`ParseUtils.tryParse`); here the caller asks
//! for the type it expects, and a value of the wrong form is an error naming the key. `null`
//! reads as absent. Arrays are written `[a, b, c]`.

use std::collections::HashMap;

use super::MojoError;

#[derive(Debug, Default)]
pub(crate) struct Ini {
    info: HashMap<String, String>,
    pub columns: Vec<String>,
    /// `(column index, number of levels, file name under domains/)`.
    pub domains: Vec<(usize, usize, String)>,
}

impl Ini {
    pub fn parse(text: &str) -> Result<Ini, MojoError> {
        let mut ini = Ini::default();
        let mut section = "";
        for raw in text.lines() {
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                section = match line {
                    "[info]" => "info",
                    "[columns]" => "columns",
                    "[domains]" => "domains",
                    _ => "",
                };
                continue;
            }
            match section {
                "info" => {
                    if let Some((k, v)) = line.split_once('=') {
                        ini.info.insert(k.trim().to_string(), v.trim().to_string());
                    }
                }
                "columns" => ini.columns.push(line.to_string()),
                "domains" => {
                    let bad = || MojoError::Ini(format!("bad `[domains]` line `{line}`"));
                    let (col, rest) = line.split_once(':').ok_or_else(bad)?;
                    let (n, file) = rest.trim().split_once(' ').ok_or_else(bad)?;
                    ini.domains.push((
                        col.trim().parse().map_err(|_| bad())?,
                        n.trim().parse().map_err(|_| bad())?,
                        file.trim().to_string(),
                    ));
                }
                _ => {}
            }
        }
        Ok(ini)
    }

    /// The raw value, `None` when absent or `null`.
    pub fn raw(&self, key: &str) -> Option<&str> {
        self.info
            .get(key)
            .map(String::as_str)
            .filter(|v| *v != "null")
    }

    pub fn str(&self, key: &str) -> Result<&str, MojoError> {
        self.raw(key).ok_or_else(|| missing(key))
    }

    pub fn opt_f64(&self, key: &str) -> Result<Option<f64>, MojoError> {
        self.raw(key).map(|v| number(key, v)).transpose()
    }

    pub fn f64(&self, key: &str) -> Result<f64, MojoError> {
        self.opt_f64(key)?.ok_or_else(|| missing(key))
    }

    pub fn opt_usize(&self, key: &str) -> Result<Option<usize>, MojoError> {
        self.raw(key)
            .map(|v| v.parse().map_err(|_| invalid(key, v)))
            .transpose()
    }

    pub fn usize(&self, key: &str) -> Result<usize, MojoError> {
        self.opt_usize(key)?.ok_or_else(|| missing(key))
    }

    pub fn bool_or(&self, key: &str, default: bool) -> Result<bool, MojoError> {
        match self.raw(key) {
            None => Ok(default),
            Some("true") => Ok(true),
            Some("false") => Ok(false),
            Some(v) => Err(invalid(key, v)),
        }
    }

    pub fn opt_f64s(&self, key: &str) -> Result<Option<Vec<f64>>, MojoError> {
        self.raw(key)
            .map(|v| array(key, v)?.map(|x| number(key, x)).collect())
            .transpose()
    }

    pub fn f64s(&self, key: &str) -> Result<Vec<f64>, MojoError> {
        self.opt_f64s(key)?.ok_or_else(|| missing(key))
    }

    pub fn usizes(&self, key: &str) -> Result<Vec<usize>, MojoError> {
        let v = self.raw(key).ok_or_else(|| missing(key))?;
        array(key, v)?
            .map(|x| x.parse().map_err(|_| invalid(key, v)))
            .collect()
    }
}

/// Java's `Double.toString` output (`1.0E-5`, `NaN`, `Infinity`) parses with Rust's `f64`
/// parser, which rounds correctly like `Double.parseDouble`.
fn number(key: &str, v: &str) -> Result<f64, MojoError> {
    v.parse().map_err(|_| invalid(key, v))
}

fn array<'a>(key: &str, v: &'a str) -> Result<impl Iterator<Item = &'a str>, MojoError> {
    let inner = v
        .strip_prefix('[')
        .and_then(|s| s.strip_suffix(']'))
        .ok_or_else(|| invalid(key, v))?;
    Ok(inner.split(',').map(str::trim).filter(|s| !s.is_empty()))
}

fn missing(key: &str) -> MojoError {
    MojoError::Ini(format!("missing key `{key}`"))
}

fn invalid(key: &str, v: &str) -> MojoError {
    let shown: String = v.chars().take(60).collect();
    MojoError::Ini(format!("bad value for `{key}`: `{shown}`"))
}

/// A domain file's line, unescaped as genmodel does when `escape_domain_values = true`:
/// `\n`, `\r` and `\\` become the character; a backslash before anything else is dropped.
pub(crate) fn unescape_level(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut slash = false;
    for c in line.chars() {
        if slash {
            out.push(match c {
                'n' => '\n',
                'r' => '\r',
                c => c,
            });
            slash = false;
        } else if c == '\\' {
            slash = true;
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_values() {
        let ini = Ini::parse(
            "[info]\nalgo = gbm\ninit_f = -1.5E-3\nx = null\narr = [1, 2.5, NaN]\n\n[columns]\nA\nB\n\n[domains]\n1: 3 d000.txt\n",
        )
        .unwrap();
        assert_eq!(ini.str("algo").unwrap(), "gbm");
        assert_eq!(ini.f64("init_f").unwrap(), -1.5e-3);
        assert!(ini.opt_f64("x").unwrap().is_none());
        let arr = ini.f64s("arr").unwrap();
        assert_eq!(&arr[..2], &[1.0, 2.5]);
        assert!(arr[2].is_nan());
        assert_eq!(ini.columns, ["A", "B"]);
        assert_eq!(ini.domains, [(1, 3, "d000.txt".to_string())]);
        assert!(ini.f64("nope").is_err());
    }

    #[test]
    fn unescapes_levels() {
        assert_eq!(unescape_level(r"a\nb\\c\rd\x"), "a\nb\\c\rdx");
    }
}
