//! Derived-column expressions (`[prepare.derive] ratio = "PSA / VOL"`): a tiny arithmetic
//! language, parsed once and evaluated per row.
//!
//! Grammar (usual precedence, left-associative):
//!
//! ```text
//! expr    := term (("+" | "-") term)*
//! term    := unary (("*" | "/") unary)*
//! unary   := "-" unary | primary
//! primary := NUMBER | COLUMN | FUNC "(" expr ("," expr)* ")" | "(" expr ")"
//! COLUMN  := [A-Za-z_][A-Za-z0-9_]*  |  `any name` (backticks; `` inside doubles a backtick)
//! FUNC    := log | exp | sqrt | abs   (one argument)  |  min | max  (two or more)
//! ```
//!
//! Semantics: every value is a number or *missing*. A missing input makes the result missing;
//! so do division by zero, `log` of x ≤ 0, `sqrt` of x < 0 and any non-finite result. `log` is
//! the natural logarithm. Positions in errors are 1-based character columns of the expression.

use std::fmt;

/// One of the functions an expression may call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Func {
    Log,
    Exp,
    Sqrt,
    Abs,
    Min,
    Max,
}

impl Func {
    const ALL: [(&'static str, Func); 6] = [
        ("log", Func::Log),
        ("exp", Func::Exp),
        ("sqrt", Func::Sqrt),
        ("abs", Func::Abs),
        ("min", Func::Min),
        ("max", Func::Max),
    ];

    fn by_name(name: &str) -> Option<Func> {
        Func::ALL.iter().find(|(n, _)| *n == name).map(|(_, f)| *f)
    }

    fn name(self) -> &'static str {
        Func::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map(|(n, _)| *n)
            .unwrap()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Add,
    Sub,
    Mul,
    Div,
}

/// A parsed expression. Column references carry their position and, once bound, their index.
#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    Num(f64),
    Column {
        name: String,
        /// 0-based character offset and length in the source text.
        at: usize,
        len: usize,
        index: Option<usize>,
    },
    Neg(Box<Expr>),
    Binary(Op, Box<Expr>, Box<Expr>),
    Call(Func, Vec<Expr>),
}

/// A syntax error at a character position.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseError {
    pub message: String,
    /// 0-based character offset and length.
    pub at: usize,
    pub len: usize,
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "1:{}: {}", self.at + 1, self.message)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Num(f64),
    Ident(String),
    Quoted(String),
    Sym(char),
    End,
}

struct Lexer {
    toks: Vec<(Tok, usize, usize)>,
}

#[allow(
    clippy::too_many_lines,
    reason = "a flat match over the expression language's tokens"
)]
fn lex(src: &str) -> Result<Lexer, ParseError> {
    let chars: Vec<char> = src.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c.is_ascii_digit()
            || (c == '.' && chars.get(i + 1).is_some_and(|d| d.is_ascii_digit()))
        {
            let start = i;
            while i < chars.len() && (chars[i].is_ascii_digit() || chars[i] == '.') {
                i += 1;
            }
            if i < chars.len() && (chars[i] == 'e' || chars[i] == 'E') {
                let mut j = i + 1;
                if j < chars.len() && (chars[j] == '+' || chars[j] == '-') {
                    j += 1;
                }
                if j < chars.len() && chars[j].is_ascii_digit() {
                    i = j;
                    while i < chars.len() && chars[i].is_ascii_digit() {
                        i += 1;
                    }
                }
            }
            let text: String = chars[start..i].iter().collect();
            let value = text.parse::<f64>().map_err(|_| ParseError {
                message: format!("`{text}` is not a number"),
                at: start,
                len: i - start,
            })?;
            toks.push((Tok::Num(value), start, i - start));
        } else if c.is_alphabetic() || c == '_' {
            let start = i;
            while i < chars.len() && (chars[i].is_alphanumeric() || chars[i] == '_') {
                i += 1;
            }
            toks.push((
                Tok::Ident(chars[start..i].iter().collect()),
                start,
                i - start,
            ));
        } else if c == '`' {
            let start = i;
            i += 1;
            let mut name = String::new();
            loop {
                match chars.get(i) {
                    None => {
                        return Err(ParseError {
                            message: "unclosed backtick: quote column names as `like this`".into(),
                            at: start,
                            len: 1,
                        })
                    }
                    Some('`') if chars.get(i + 1) == Some(&'`') => {
                        name.push('`');
                        i += 2;
                    }
                    Some('`') => {
                        i += 1;
                        break;
                    }
                    Some(&ch) => {
                        name.push(ch);
                        i += 1;
                    }
                }
            }
            if name.is_empty() {
                return Err(ParseError {
                    message: "empty column name".into(),
                    at: start,
                    len: i - start,
                });
            }
            toks.push((Tok::Quoted(name), start, i - start));
        } else if "+-*/(),".contains(c) {
            toks.push((Tok::Sym(c), i, 1));
            i += 1;
        } else {
            let hint = if c == '"' || c == '\'' {
                " (quote column names with backticks: `my column`)"
            } else {
                ""
            };
            return Err(ParseError {
                message: format!("unexpected character `{c}`{hint}"),
                at: i,
                len: 1,
            });
        }
    }
    toks.push((Tok::End, chars.len(), 1));
    Ok(Lexer { toks })
}

/// Parentheses, function calls and minus signs an expression may nest, and how deep its tree
/// may be (a long `a + b + …` chain is as deep as it is long): parsing, evaluating and dropping
/// an expression recurse once per level, so without a limit a hostile `ml.toml` could overflow
/// the stack and abort mlbuild.
const MAX_NESTING: usize = 100;
const MAX_DEPTH: usize = 1000;

struct Parser {
    toks: Vec<(Tok, usize, usize)>,
    pos: usize,
    /// Parentheses, calls and minus signs open at the current token.
    nesting: usize,
}

impl Parser {
    fn peek(&self) -> &(Tok, usize, usize) {
        &self.toks[self.pos]
    }

    fn next(&mut self) -> (Tok, usize, usize) {
        let t = self.toks[self.pos].clone();
        if self.pos + 1 < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    fn error(&self, message: impl Into<String>) -> ParseError {
        let (tok, at, len) = self.peek();
        let found = match tok {
            Tok::End => "the end of the expression".to_string(),
            Tok::Num(n) => format!("number `{n}`"),
            Tok::Ident(s) => format!("`{s}`"),
            Tok::Quoted(s) => format!("`{s}`"),
            Tok::Sym(c) => format!("`{c}`"),
        };
        ParseError {
            message: format!("{}, found {found}", message.into()),
            at: *at,
            len: *len,
        }
    }

    /// The error for an expression past [`MAX_NESTING`] or [`MAX_DEPTH`], at the current token.
    fn too_deep(&self) -> ParseError {
        let (_, at, len) = self.peek();
        ParseError {
            message: format!(
                "the expression is nested too deeply (at most {MAX_NESTING} levels of parentheses, calls and minus signs, and {MAX_DEPTH} operators in a chain)"
            ),
            at: *at,
            len: *len,
        }
    }

    /// Opens one level of nesting (before recursing).
    fn enter(&mut self) -> Result<(), ParseError> {
        if self.nesting >= MAX_NESTING {
            return Err(self.too_deep());
        }
        self.nesting += 1;
        Ok(())
    }

    /// A node over children as deep as `depth`: its own depth, checked.
    fn deeper(&self, depth: usize) -> Result<usize, ParseError> {
        if depth >= MAX_DEPTH {
            return Err(self.too_deep());
        }
        Ok(depth + 1)
    }

    /// Each parsing method returns the expression and the depth of its tree.
    fn expr(&mut self) -> Result<(Expr, usize), ParseError> {
        let (mut left, mut depth) = self.term()?;
        loop {
            let op = match self.peek().0 {
                Tok::Sym('+') => Op::Add,
                Tok::Sym('-') => Op::Sub,
                _ => return Ok((left, depth)),
            };
            self.next();
            let (right, right_depth) = self.term()?;
            depth = self.deeper(depth.max(right_depth))?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn term(&mut self) -> Result<(Expr, usize), ParseError> {
        let (mut left, mut depth) = self.unary()?;
        loop {
            let op = match self.peek().0 {
                Tok::Sym('*') => Op::Mul,
                Tok::Sym('/') => Op::Div,
                _ => return Ok((left, depth)),
            };
            self.next();
            let (right, right_depth) = self.unary()?;
            depth = self.deeper(depth.max(right_depth))?;
            left = Expr::Binary(op, Box::new(left), Box::new(right));
        }
    }

    fn unary(&mut self) -> Result<(Expr, usize), ParseError> {
        if self.peek().0 == Tok::Sym('-') {
            self.enter()?;
            self.next();
            let (e, depth) = self.unary()?;
            self.nesting -= 1;
            return Ok((Expr::Neg(Box::new(e)), self.deeper(depth)?));
        }
        self.primary()
    }

    #[allow(
        clippy::too_many_lines,
        reason = "a flat match over the expression grammar's primaries"
    )]
    fn primary(&mut self) -> Result<(Expr, usize), ParseError> {
        match self.peek().clone() {
            (Tok::Num(n), ..) => {
                self.next();
                Ok((Expr::Num(n), 1))
            }
            (Tok::Quoted(name), at, len) => {
                self.next();
                Ok((
                    Expr::Column {
                        name,
                        at,
                        len,
                        index: None,
                    },
                    1,
                ))
            }
            (Tok::Ident(name), at, len) => {
                self.next();
                if self.peek().0 != Tok::Sym('(') {
                    return Ok((
                        Expr::Column {
                            name,
                            at,
                            len,
                            index: None,
                        },
                        1,
                    ));
                }
                let Some(func) = Func::by_name(&name) else {
                    let names: Vec<&str> = Func::ALL.iter().map(|(n, _)| *n).collect();
                    return Err(ParseError {
                        message: format!(
                            "unknown function `{name}` (functions: {})",
                            names.join(", ")
                        ),
                        at,
                        len,
                    });
                };
                self.enter()?;
                self.next(); // (
                let (first, mut depth) = self.expr()?;
                let mut args = vec![first];
                while self.peek().0 == Tok::Sym(',') {
                    self.next();
                    let (arg, arg_depth) = self.expr()?;
                    depth = depth.max(arg_depth);
                    args.push(arg);
                }
                if self.peek().0 != Tok::Sym(')') {
                    return Err(self.error("expected `,` or `)`"));
                }
                self.next();
                self.nesting -= 1;
                let ok = match func {
                    Func::Min | Func::Max => args.len() >= 2,
                    _ => args.len() == 1,
                };
                if !ok {
                    let want = match func {
                        Func::Min | Func::Max => "at least two arguments",
                        _ => "one argument",
                    };
                    return Err(ParseError {
                        message: format!("`{}` takes {want}, found {}", func.name(), args.len()),
                        at,
                        len,
                    });
                }
                Ok((Expr::Call(func, args), self.deeper(depth)?))
            }
            (Tok::Sym('('), ..) => {
                self.enter()?;
                self.next();
                let e = self.expr()?;
                if self.peek().0 != Tok::Sym(')') {
                    return Err(self.error("expected `)`"));
                }
                self.next();
                self.nesting -= 1;
                Ok(e)
            }
            _ => Err(self.error("expected a number, a column or `(`")),
        }
    }
}

/// Parses an expression.
pub fn parse(src: &str) -> Result<Expr, ParseError> {
    let lexer = lex(src)?;
    let mut p = Parser {
        toks: lexer.toks,
        pos: 0,
        nesting: 0,
    };
    let (e, _) = p.expr()?;
    if p.peek().0 != Tok::End {
        return Err(p.error("expected an operator (`+`, `-`, `*`, `/`) or the end"));
    }
    Ok(e)
}

impl Expr {
    /// Every column reference, in source order: `(name, offset, length)`.
    pub fn columns(&self) -> Vec<(&str, usize, usize)> {
        let mut out = Vec::new();
        self.walk(&mut |e| {
            if let Expr::Column { name, at, len, .. } = e {
                out.push((name.as_str(), *at, *len));
            }
        });
        out
    }

    fn walk<'a>(&'a self, f: &mut dyn FnMut(&'a Expr)) {
        f(self);
        match self {
            Expr::Neg(e) => e.walk(f),
            Expr::Binary(_, a, b) => {
                a.walk(f);
                b.walk(f);
            }
            Expr::Call(_, args) => args.iter().for_each(|a| a.walk(f)),
            _ => {}
        }
    }

    /// Resolves column names to indexes with `resolve`; the first name it refuses is returned
    /// with its position.
    pub fn bind(
        &mut self,
        resolve: &dyn Fn(&str) -> Option<usize>,
    ) -> Result<(), (String, usize, usize)> {
        match self {
            Expr::Column {
                name,
                at,
                len,
                index,
            } => match resolve(name) {
                Some(i) => {
                    *index = Some(i);
                    Ok(())
                }
                None => Err((name.clone(), *at, *len)),
            },
            Expr::Neg(e) => e.bind(resolve),
            Expr::Binary(_, a, b) => {
                a.bind(resolve)?;
                b.bind(resolve)
            }
            Expr::Call(_, args) => args.iter_mut().try_for_each(|a| a.bind(resolve)),
            Expr::Num(_) => Ok(()),
        }
    }

    /// The value for one row; `value(i)` is bound column `i`'s value (None = missing).
    pub fn eval(&self, value: &dyn Fn(usize) -> Option<f64>) -> Option<f64> {
        let v = match self {
            Expr::Num(n) => *n,
            Expr::Column { index, .. } => value(index.expect("columns are bound before eval"))?,
            Expr::Neg(e) => -e.eval(value)?,
            Expr::Binary(op, a, b) => {
                let (a, b) = (a.eval(value)?, b.eval(value)?);
                match op {
                    Op::Add => a + b,
                    Op::Sub => a - b,
                    Op::Mul => a * b,
                    Op::Div if b == 0.0 => return None,
                    Op::Div => a / b,
                }
            }
            Expr::Call(func, args) => {
                let mut xs = Vec::with_capacity(args.len());
                for a in args {
                    xs.push(a.eval(value)?);
                }
                match func {
                    Func::Log if xs[0] <= 0.0 => return None,
                    Func::Log => xs[0].ln(),
                    Func::Exp => xs[0].exp(),
                    Func::Sqrt if xs[0] < 0.0 => return None,
                    Func::Sqrt => xs[0].sqrt(),
                    Func::Abs => xs[0].abs(),
                    Func::Min => xs.iter().copied().fold(f64::INFINITY, f64::min),
                    Func::Max => xs.iter().copied().fold(f64::NEG_INFINITY, f64::max),
                }
            }
        };
        v.is_finite().then_some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, cols: &[(&str, Option<f64>)]) -> Option<f64> {
        let mut e = parse(src).unwrap();
        e.bind(&|n| cols.iter().position(|(c, _)| *c == n)).unwrap();
        e.eval(&|i| cols[i].1)
    }

    #[test]
    fn precedence_parentheses_and_unary_minus() {
        assert_eq!(eval("1 + 2 * 3", &[]), Some(7.0));
        assert_eq!(eval("(1 + 2) * 3", &[]), Some(9.0));
        assert_eq!(eval("10 - 4 - 3", &[]), Some(3.0));
        assert_eq!(eval("8 / 4 / 2", &[]), Some(1.0));
        assert_eq!(eval("-2 * -3", &[]), Some(6.0));
        assert_eq!(eval("1.5e2 + .5", &[]), Some(150.5));
    }

    #[test]
    fn columns_functions_and_missing_values() {
        let cols = [
            ("PSA", Some(8.0)),
            ("VOL", Some(2.0)),
            ("my col", Some(-3.0)),
            ("NA", None),
        ];
        assert_eq!(eval("PSA / VOL", &cols), Some(4.0));
        assert_eq!(eval("abs(`my col`) + sqrt(PSA * VOL)", &cols), Some(7.0));
        assert_eq!(eval("max(PSA, VOL, 9)", &cols), Some(9.0));
        assert_eq!(eval("min(PSA, `my col`)", &cols), Some(-3.0));
        assert_eq!(eval("log(exp(2))", &cols), Some(2.0));
        assert_eq!(eval("PSA + NA", &cols), None, "missing in, missing out");
        assert_eq!(eval("PSA / (VOL - 2)", &cols), None, "division by zero");
        assert_eq!(eval("log(`my col`)", &cols), None);
        assert_eq!(eval("sqrt(`my col`)", &cols), None);
        assert_eq!(eval("exp(1000)", &cols), None, "overflow is missing");
    }

    #[test]
    fn errors_name_the_position() {
        let e = parse("PSA / ").unwrap_err();
        assert_eq!(
            (e.at, e.to_string()),
            (
                6,
                "1:7: expected a number, a column or `(`, found the end of the expression".into()
            )
        );
        let e = parse("PSA VOL").unwrap_err();
        assert_eq!(e.at, 4);
        assert!(e.message.contains("expected an operator"), "{e}");
        let e = parse("lg(PSA)").unwrap_err();
        assert!(e.message.contains("unknown function `lg`"), "{e}");
        let e = parse("(PSA + 1").unwrap_err();
        assert_eq!(e.at, 8);
        let e = parse("min(PSA)").unwrap_err();
        assert!(e.message.contains("at least two"), "{e}");
        let e = parse("\"PSA\" + 1").unwrap_err();
        assert!(e.message.contains("backticks"), "{e}");
        let e = parse("`PSA + 1").unwrap_err();
        assert_eq!(e.at, 0);
    }

    /// Found by the `ml.toml` property test: 100,000 nested parentheses (or minus signs, or a
    /// chain of 100,000 additions, whose tree is as deep) overflowed the stack while parsing,
    /// evaluating or dropping, which aborts mlbuild.
    #[test]
    fn deep_expressions_are_refused_not_a_stack_overflow() {
        let n = 100_000;
        let parens = format!("{}1{}", "(".repeat(n), ")".repeat(n));
        let minus = format!("{}1", "-".repeat(n));
        let calls = format!("{}1{}", "abs(".repeat(n), ")".repeat(n));
        let chain = vec!["1"; n].join(" + ");
        for src in [&parens, &minus, &calls, &chain] {
            let e = parse(src).unwrap_err();
            assert!(e.message.contains("nested too deeply"), "{e}");
        }
        let e = parse(&parens).unwrap_err();
        assert_eq!(e.at, MAX_NESTING, "the first parenthesis past the limit");
        // Up to the limits, expressions still parse and evaluate.
        let ok = format!("{}1{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert_eq!(eval(&ok, &[]), Some(1.0));
        let sum = vec!["1"; MAX_DEPTH].join(" + ");
        assert_eq!(eval(&sum, &[]), Some(MAX_DEPTH as f64));
        assert!(parse(&vec!["1"; MAX_DEPTH + 2].join(" + ")).is_err());
    }

    #[test]
    fn bind_reports_the_unknown_column_with_its_place() {
        let mut e = parse("PSA / VOLL").unwrap();
        let err = e.bind(&|n| (n == "PSA").then_some(0)).unwrap_err();
        assert_eq!(err, ("VOLL".to_string(), 6, 4));
        assert_eq!(e.columns().len(), 2);
    }
}
