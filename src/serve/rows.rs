//! JSON request bodies → rows of text cells in the scorer's input order.
//!
//! A body is `{"rows": [ROW, …]}` or one `ROW`; a `ROW` is an object of column → value. Numbers
//! become their shortest round-trip text (so `65`, `65.0` and `"65"` are the same value, and a
//! number for a categorical column is looked up as its text: `1` → level `"1"`), strings are
//! taken as they are, `null` is a missing value. Columns the model does not read are ignored;
//! a required column must be present (`null` if unknown).

use serde_json::{Map, Value};

use crate::predict::Scorer;

/// The rows of a request body, or a message for a 400.
pub fn parse(body: &[u8]) -> Result<Vec<Map<String, Value>>, String> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not valid JSON: {e}"))?;
    let Value::Object(mut object) = value else {
        return Err("the body must be a JSON object: `{\"rows\": [{…}]}` or one row `{…}`".into());
    };
    match object.remove("rows") {
        Some(Value::Array(rows)) => rows
            .into_iter()
            .enumerate()
            .map(|(i, r)| match r {
                Value::Object(m) => Ok(m),
                other => Err(format!(
                    "row {i} is {}, not an object of column → value",
                    kind(&other)
                )),
            })
            .collect(),
        Some(other) => Err(format!("`rows` is {}, not an array of rows", kind(&other))),
        None => Ok(vec![object]),
    }
}

/// One row's cells in [`Scorer::inputs`] order (`""` for a missing value).
pub fn cells(row: &Map<String, Value>, scorer: &Scorer) -> Result<Vec<String>, String> {
    let mut cells = Vec::with_capacity(scorer.inputs().len());
    for (i, name) in scorer.inputs().iter().enumerate() {
        let cell = match row.get(name) {
            None if scorer.is_required(i) => {
                return Err(scorer.missing_columns_message(&format!("`{name}`")))
            }
            None | Some(Value::Null) => String::new(),
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => match n.as_f64() {
                Some(x) if n.is_f64() => format!("{x}"),
                _ => n.to_string(),
            },
            Some(other) => {
                return Err(format!(
                    "column `{name}` is {}; give a number, a string or null",
                    kind(other)
                ))
            }
        };
        cells.push(cell);
    }
    Ok(cells)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_and_values() {
        assert_eq!(parse(br#"{"rows":[{"a":1},{"a":2}]}"#).unwrap().len(), 2);
        assert_eq!(parse(br#"{"a":1}"#).unwrap().len(), 1);
        assert!(parse(b"{").unwrap_err().contains("not valid JSON"));
        assert!(parse(b"[1]").unwrap_err().contains("must be a JSON object"));
        assert!(parse(br#"{"rows":[1]}"#)
            .unwrap_err()
            .contains("row 0 is a number"));
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mojo");
        let mojo =
            crate::mojo::Mojo::load(&std::fs::read(root.join("gbm_bin.zip")).unwrap()).unwrap();
        let scorer = Scorer::new(mojo, None, None).unwrap();
        let row = |s: &str| parse(s.as_bytes()).unwrap().remove(0);
        let ok = cells(
            &row(r#"{"AGE":65.0,"RACE":1,"DPROS":"2","DCAPS":null,"PSA":1.4,"VOL":0,"GLEASON":6,"x":true}"#),
            &scorer,
        )
        .unwrap();
        assert!(
            ok.contains(&"65".to_string())
                && ok.contains(&"1.4".to_string())
                && ok.contains(&String::new())
        );
        let e = cells(&row(r#"{"AGE":65}"#), &scorer).unwrap_err();
        assert!(
            e.contains("no column `RACE`") && e.contains("the model needs"),
            "{e}"
        );
        let e = cells(
            &row(r#"{"AGE":true,"RACE":1,"DPROS":2,"DCAPS":1,"PSA":1,"VOL":0,"GLEASON":6}"#),
            &scorer,
        )
        .unwrap_err();
        assert!(e.contains("`AGE` is a boolean"), "{e}");
    }
}
