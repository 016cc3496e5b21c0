//! `[[steps]]`: the rules a user step's table must follow, and the one reading of its `run`
//! placeholders (`{use.STEP.OUTPUT}`, `{out.NAME}`, `{params}`; `{{` and `}}` for braces) that
//! validation and the step's runner share. docs/steps.md describes both.

use super::document::{Entry, Node, Value};
use super::error::{ConfigError, Place};
use super::keys::{list, Locator};
use super::schema::{Config, UserStep};
use crate::project::Step;

/// One piece of a `run` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Text(String),
    /// `{use.STEP.OUTPUT}`: the path of an upstream output.
    Use(String, String),
    /// `{out.NAME}`: where output NAME must be written.
    Out(String),
    /// `{params}`: the JSON file of the step's params.
    Params,
}

/// A placeholder that cannot be read: the character offset in the argument and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    pub at: usize,
    pub len: usize,
    pub message: String,
}

/// Splits a `run` argument into text and placeholders.
pub fn parse_template(arg: &str) -> Result<Vec<Piece>, TemplateError> {
    let chars: Vec<char> = arg.chars().collect();
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut i = 0;
    while i < chars.len() {
        match chars[i] {
            '{' if chars.get(i + 1) == Some(&'{') => {
                text.push('{');
                i += 2;
            }
            '}' if chars.get(i + 1) == Some(&'}') => {
                text.push('}');
                i += 2;
            }
            '}' => {
                return Err(TemplateError {
                    at: i,
                    len: 1,
                    message: "a `}` without its `{` (write `}}` for a brace)".into(),
                })
            }
            '{' => {
                let Some(close) = chars[i..].iter().position(|c| *c == '}') else {
                    return Err(TemplateError {
                        at: i,
                        len: chars.len() - i,
                        message: "a `{` without its `}` (write `{{` for a brace)".into(),
                    });
                };
                let inner: String = chars[i + 1..i + close].iter().collect();
                let piece = placeholder(&inner).ok_or_else(|| TemplateError {
                    at: i,
                    len: close + 1,
                    message: format!(
                        "`{{{inner}}}` is not a placeholder: expected `{{use.STEP.OUTPUT}}`, `{{out.NAME}}` or `{{params}}`"
                    ),
                })?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(piece);
                i += close + 1;
            }
            c => {
                text.push(c);
                i += 1;
            }
        }
    }
    if !text.is_empty() {
        pieces.push(Piece::Text(text));
    }
    Ok(pieces)
}

fn placeholder(inner: &str) -> Option<Piece> {
    if inner == "params" {
        return Some(Piece::Params);
    }
    if let Some(rest) = inner.strip_prefix("use.") {
        let (step, output) = rest.split_once('.')?;
        return (is_name(step) && is_name(output))
            .then(|| Piece::Use(step.to_string(), output.to_string()));
    }
    let name = inner.strip_prefix("out.")?;
    is_name(name).then(|| Piece::Out(name.to_string()))
}

/// A step or output name: a letter, then letters, digits, `_` or `-`.
pub fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && s.len() <= 64
}

/// The built-in step a user step runs after (`None` when `after` names none).
pub fn place_of(step: &UserStep) -> Option<Step> {
    Step::ALL.into_iter().find(|s| s.as_str() == step.after)
}

/// The position of every step in walk order: built-in step k is `1000 * (k + 1)`, a user step
/// after it `1000 * (k + 1) + 1 + (its index in [[steps]])`. Built-in steps keep their order;
/// user steps sharing a place keep file order.
pub fn position(config: &Config, name: &str) -> Option<u32> {
    if let Some(k) = Step::ALL.iter().position(|s| s.as_str() == name) {
        return Some(1000 * (k as u32 + 1));
    }
    let (i, step) = config
        .steps
        .iter()
        .enumerate()
        .find(|(_, s)| s.name == name)?;
    let k = Step::ALL.iter().position(|s| Some(*s) == place_of(step))?;
    Some(1000 * (k as u32 + 1) + 1 + i as u32)
}

/// Every step's name in walk order.
pub fn walk_order(config: &Config) -> Vec<String> {
    let mut named: Vec<(u32, String)> = Step::ALL
        .iter()
        .map(|s| s.as_str().to_string())
        .chain(config.steps.iter().map(|s| s.name.clone()))
        .filter_map(|n| Some((position(config, &n)?, n)))
        .collect();
    named.sort();
    named.into_iter().map(|(_, n)| n).collect()
}

/// The outputs step `name` records, as `ml.lock` names them.
pub fn outputs_of(config: &Config, name: &str) -> Option<Vec<String>> {
    if let Some(s) = Step::ALL.iter().find(|s| s.as_str() == name) {
        return Some(s.output_names().iter().map(|o| o.to_string()).collect());
    }
    let step = config.steps.iter().find(|s| s.name == name)?;
    Some(step.outputs.keys().cloned().collect())
}

/// A relative path inside the project or the step's directory: not absolute, no `..`.
fn is_inner_path(p: &str) -> bool {
    let path = std::path::Path::new(p);
    !p.trim().is_empty()
        && path.is_relative()
        && path
            .components()
            .all(|c| matches!(c, std::path::Component::Normal(_)))
}

fn is_env_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Places inside `[[steps]]`, from the spanned document.
struct At<'a> {
    doc: &'a Node,
    at: &'a Locator<'a>,
}

impl At<'_> {
    fn table(&self, i: usize) -> Option<&Node> {
        match &self.doc.entry("steps")?.node.value {
            Value::Array(items) => items.get(i),
            _ => None,
        }
    }

    /// The value of `key` in step `i` (element `element` of it when an array or table).
    fn place(&self, i: usize, key: &str, element: Option<usize>) -> Place {
        let Some(table) = self.table(i) else {
            return Place::WholeFile {
                path: self.at.path.into(),
            };
        };
        let Some(entry) = table.entry(key) else {
            let whole = Entry {
                key: String::new(),
                key_origin: table.origin.clone(),
                node: table.clone(),
            };
            return self.at.value_place(&whole);
        };
        let item = match (&entry.node.value, element) {
            (Value::Array(items), Some(e)) => items.get(e),
            (Value::Table(entries), Some(e)) => entries.get(e).map(|x| &x.node),
            _ => None,
        };
        match item {
            Some(node) => self.at.value_place(&Entry {
                key: String::new(),
                key_origin: entry.node.origin.clone(),
                node: node.clone(),
            }),
            None => self.at.value_place(entry),
        }
    }

    /// Characters `from..from+len` of element `e` of `run` in step `i`, when written plainly.
    fn inner(&self, i: usize, e: usize, text: &str, from: usize, len: usize) -> Place {
        let whole = self.place(i, "run", Some(e));
        let Some(node) =
            self.table(i)
                .and_then(|t| t.entry("run"))
                .and_then(|r| match &r.node.value {
                    Value::Array(items) => items.get(e),
                    _ => None,
                })
        else {
            return whole;
        };
        if let super::document::Origin::File(span) = &node.origin {
            let open = span.start + 1;
            if self.at.source.get(open..open + text.len()) == Some(text) {
                let start: usize = text.chars().take(from).map(char::len_utf8).sum();
                let width: usize = text
                    .chars()
                    .skip(from)
                    .take(len.max(1))
                    .map(char::len_utf8)
                    .sum();
                return Place::in_file(
                    self.at.path,
                    self.at.source,
                    open + start..open + start + width,
                );
            }
        }
        whole
    }

    fn invalid(&self, place: Place, key: String, message: String, hint: &str) -> ConfigError {
        ConfigError::InvalidValue {
            at: Box::new(place),
            key,
            message,
            hint: (!hint.is_empty()).then(|| hint.to_string()),
        }
    }
}

/// Checks every `[[steps]]` table: names, places, placeholders, paths, `uses` (which must name
/// an output of a step that runs earlier: a later one is an error, one that uses this step back
/// is a cycle) and outputs.
#[allow(
    clippy::too_many_lines,
    reason = "one check per rule, in the order docs/steps.md lists them"
)]
pub(crate) fn check(config: &Config, doc: &Node, at: &Locator) -> Result<(), ConfigError> {
    let at = At { doc, at };
    let builtin: Vec<&str> = Step::ALL.iter().map(|s| s.as_str()).collect();
    for (i, step) in config.steps.iter().enumerate() {
        let key = |k: &str| format!("steps[{i}].{k}");
        if !is_name(&step.name) {
            return Err(at.invalid(
                at.place(i, "name", None),
                key("name"),
                format!("`{}` is not a step name", step.name),
                "a step name starts with a letter and has letters, digits, `_` or `-` (at most 64)",
            ));
        }
        if builtin.contains(&step.name.as_str()) {
            return Err(at.invalid(
                at.place(i, "name", None),
                key("name"),
                format!("`{}` is a built-in step's name", step.name),
                "give your step a name of its own, e.g. `featurize`",
            ));
        }
        if let Some(first) = config.steps[..i].iter().position(|s| s.name == step.name) {
            let first_at = at.place(first, "name", None);
            return Err(at.invalid(
                at.place(i, "name", None),
                key("name"),
                format!("a second step named `{}`", step.name),
                &format!("step names are unique; the first is at {first_at}"),
            ));
        }
        if place_of(step).is_none() {
            let hint = match crate::suggest::closest(&step.after, builtin.iter().copied()) {
                Some(s) => format!(
                    "did you mean `{s}`? `after` names one of {}",
                    list(&builtin)
                ),
                None => format!("`after` names one of {}", list(&builtin)),
            };
            return Err(at.invalid(
                at.place(i, "after", None),
                key("after"),
                format!("`{}` is not a built-in step", step.after),
                &hint,
            ));
        }
        if step.run.first().is_none_or(|p| p.trim().is_empty()) {
            return Err(at.invalid(
                at.place(i, "run", None),
                key("run"),
                "`run` needs a program to run".into(),
                "e.g. `run = [\"python3\", \"featurize.py\", \"{out.features}\"]`",
            ));
        }
        for (e, arg) in step.run.iter().enumerate() {
            let pieces = parse_template(arg).map_err(|t| {
                at.invalid(
                    at.inner(i, e, arg, t.at, t.len),
                    format!("steps[{i}].run[{e}]"),
                    t.message.clone(),
                    "",
                )
            })?;
            for piece in pieces {
                let missing = match &piece {
                    Piece::Use(s, o) if !step.uses.contains(&format!("{s}.{o}")) => Some((
                        format!("`{{use.{s}.{o}}}` names an output the step does not use"),
                        format!("add `\"{s}.{o}\"` to `uses`"),
                    )),
                    Piece::Out(n) if !step.outputs.contains_key(n) => Some((
                        format!("`{{out.{n}}}` names an output the step does not declare"),
                        format!("declare it: `outputs = {{ {n} = \"{n}.csv\" }}`"),
                    )),
                    _ => None,
                };
                if let Some((message, hint)) = missing {
                    return Err(at.invalid(
                        at.place(i, "run", Some(e)),
                        format!("steps[{i}].run[{e}]"),
                        message,
                        &hint,
                    ));
                }
            }
        }
        for (e, input) in step.inputs.iter().enumerate() {
            if !is_inner_path(input) {
                return Err(at.invalid(
                    at.place(i, "inputs", Some(e)),
                    format!("steps[{i}].inputs[{e}]"),
                    format!("`{input}` is not a path inside the project"),
                    "inputs are project-relative files or globs, without `..`",
                ));
            }
        }
        let me = position(config, &step.name).unwrap_or_default();
        for (e, used) in step.uses.iter().enumerate() {
            let place = || at.place(i, "uses", Some(e));
            let ukey = format!("steps[{i}].uses[{e}]");
            let Some((s, o)) = used.split_once('.') else {
                return Err(at.invalid(
                    place(),
                    ukey,
                    format!("`{used}` is not `STEP.OUTPUT`"),
                    "name an upstream output as `ml.lock` does, e.g. `prepare.train`",
                ));
            };
            let Some(outputs) = outputs_of(config, s) else {
                let names = walk_order(config);
                let hint = match crate::suggest::closest(s, names.iter().map(String::as_str)) {
                    Some(n) => format!("did you mean `{n}`?"),
                    None => format!("the steps are {}", names.join(", ")),
                };
                return Err(at.invalid(
                    place(),
                    ukey,
                    format!("`{used}` names no step: there is no step `{s}`"),
                    &hint,
                ));
            };
            if !outputs.iter().any(|x| x == o) {
                return Err(at.invalid(
                    place(),
                    ukey,
                    format!("step `{s}` has no output `{o}`"),
                    &if outputs.is_empty() {
                        format!("`{s}` records no outputs")
                    } else {
                        format!("its outputs are {}", outputs.join(", "))
                    },
                ));
            }
            let theirs = position(config, s).unwrap_or_default();
            if theirs >= me {
                let back = config.steps.iter().find(|x| x.name == s).is_some_and(|x| {
                    x.uses
                        .iter()
                        .any(|u| u.split('.').next() == Some(&step.name))
                });
                let (message, hint) = if s == step.name || back {
                    (
                        format!(
                            "a cycle: `{}` uses `{used}`, and `{s}` uses `{}`",
                            step.name, step.name
                        ),
                        "a step can use only steps that run before it".to_string(),
                    )
                } else if builtin.contains(&s) {
                    (
                        format!(
                            "`{used}` is written by a step that runs after `{}`",
                            step.name
                        ),
                        format!("place `{}` after `{s}` or later", step.name),
                    )
                } else {
                    (
                        format!("`{used}` is written by a step that runs after `{}`", step.name),
                        format!(
                            "place `{}` later (`after`), or `{s}` earlier; steps sharing a place run in file order",
                            step.name
                        ),
                    )
                };
                return Err(at.invalid(place(), ukey, message, &hint));
            }
        }
        if !step.provides.is_empty() {
            let mut wanted = step.provides.clone();
            wanted.sort();
            let place = || at.place(i, "provides", None);
            if wanted != ["holdout", "train"] {
                return Err(at.invalid(
                    place(),
                    key("provides"),
                    "`provides` names both `train` and `holdout`, nothing else".into(),
                    "write `provides = [\"train\", \"holdout\"]`: monitor judges on the same features as execute trains on",
                ));
            }
            if step.after != "prepare" {
                return Err(at.invalid(
                    place(),
                    key("provides"),
                    format!(
                        "a step that provides the training data runs after `prepare`, not after `{}`",
                        step.after
                    ),
                    "set `after = \"prepare\"`",
                ));
            }
            if let Some(missing) = ["train", "holdout"]
                .into_iter()
                .find(|o| !step.outputs.contains_key(*o))
            {
                return Err(at.invalid(
                    place(),
                    key("provides"),
                    format!("the step provides `{missing}` but has no output of that name"),
                    "declare both: `outputs = { train = \"train.csv\", holdout = \"holdout.csv\" }`",
                ));
            }
            if let Some(first) = config.steps[..i].iter().find(|s| !s.provides.is_empty()) {
                return Err(at.invalid(
                    place(),
                    key("provides"),
                    format!("step `{}` already provides the training data", first.name),
                    "one step provides it; chain the others through `uses`",
                ));
            }
        }
        for (e, var) in step.env.iter().enumerate() {
            if !is_env_name(var) {
                return Err(at.invalid(
                    at.place(i, "env", Some(e)),
                    format!("steps[{i}].env[{e}]"),
                    format!("`{var}` is not an environment variable's name"),
                    "list names only, e.g. `env = [\"LANG\"]`; the values come from mlbuild's environment",
                ));
            }
        }
        for (e, tool) in step.tools.iter().enumerate() {
            if tool.split_whitespace().next().is_none() {
                return Err(at.invalid(
                    at.place(i, "tools", Some(e)),
                    format!("steps[{i}].tools[{e}]"),
                    "an empty tool".into(),
                    "name a program, e.g. `tools = [\"python3\"]` (runs `python3 --version`)",
                ));
            }
        }
        for (e, (name, path)) in step.outputs.iter().enumerate() {
            let place = || at.place(i, "outputs", Some(e));
            if !is_name(name) {
                return Err(at.invalid(
                    place(),
                    format!("steps[{i}].outputs.{name}"),
                    format!("`{name}` is not an output name"),
                    "an output name starts with a letter and has letters, digits, `_` or `-`",
                ));
            }
            if !is_inner_path(path) {
                return Err(at.invalid(
                    place(),
                    format!("steps[{i}].outputs.{name}"),
                    format!("`{path}` is not a path inside the step's directory"),
                    "outputs are relative paths, without `..`, e.g. `features.csv`",
                ));
            }
            if let Some((other, _)) = step.outputs.iter().find(|(n, p)| *n < name && *p == path) {
                return Err(at.invalid(
                    place(),
                    format!("steps[{i}].outputs.{name}"),
                    format!("outputs `{other}` and `{name}` are the same file `{path}`"),
                    "give each output a file of its own",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_split_into_text_and_placeholders() {
        assert_eq!(
            parse_template("--in={use.prepare.train}").unwrap(),
            vec![
                Piece::Text("--in=".into()),
                Piece::Use("prepare".into(), "train".into())
            ]
        );
        assert_eq!(
            parse_template("{out.features}{params}").unwrap(),
            vec![Piece::Out("features".into()), Piece::Params]
        );
        assert_eq!(
            parse_template("{{literal}}").unwrap(),
            vec![Piece::Text("{literal}".into())]
        );
        let e = parse_template("a{use.prepare}").unwrap_err();
        assert_eq!((e.at, e.len), (1, 13));
        assert!(parse_template("a{b").is_err());
        assert!(parse_template("a}b").is_err());
    }
}
