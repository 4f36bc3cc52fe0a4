//! Which parts of an input are secret: a property marked `"secret": true`, or one nested in an
//! object type (the registry's `password` inside `registry`), through arrays and maps.
//!
//! The result is a [`SecretSpec`] tree; each language renders it as a literal that its
//! runtime helper (`_utilities.mark_secrets`, `utilities.markSecrets`) walks to wrap those
//! values in the runtime's secret before they are sent to the engine.

use super::schema::{Package, Property, Ty};

/// Where the secrets are inside one value.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSpec {
    /// The whole value.
    All,
    /// Each element of an array.
    Items(Box<SecretSpec>),
    /// Each value of a map.
    Values(Box<SecretSpec>),
    /// Some properties of an object: (wire name, spec).
    Props(Vec<(String, SecretSpec)>),
}

/// The secret parts of a property's value, or `None` when nothing in it is secret.
pub fn secret_spec(pkg: &Package, prop: &Property, ty: &Ty) -> Option<SecretSpec> {
    if prop.secret {
        return Some(SecretSpec::All);
    }
    nested(pkg, ty, &mut Vec::new())
}

fn nested(pkg: &Package, ty: &Ty, visiting: &mut Vec<String>) -> Option<SecretSpec> {
    match ty {
        Ty::Array(items) => nested(pkg, items, visiting).map(|s| SecretSpec::Items(Box::new(s))),
        Ty::Map(values) => nested(pkg, values, visiting).map(|s| SecretSpec::Values(Box::new(s))),
        Ty::Object(token) => {
            if visiting.contains(token) {
                return None;
            }
            let object = pkg.types.get(token)?;
            visiting.push(token.clone());
            let mut props = Vec::new();
            for (wire, prop) in &object.properties {
                let spec = if prop.secret {
                    Some(SecretSpec::All)
                } else {
                    pkg.resolve(&prop.ty, wire)
                        .ok()
                        .and_then(|ty| nested(pkg, &ty, visiting))
                };
                if let Some(spec) = spec {
                    props.push((wire.clone(), spec));
                }
            }
            visiting.pop();
            (!props.is_empty()).then_some(SecretSpec::Props(props))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_nested_secrets_and_survives_cycles() {
        let pkg = Package::parse(
            r##"{"name":"p","types":{
              "p:index:Reg":{"type":"object","properties":{
                "user":{"type":"string"},"password":{"type":"string","secret":true},
                "next":{"$ref":"#/types/p:index:Reg"}}}}}"##,
        )
        .unwrap();
        let prop: Property = serde_json::from_str(r##"{"$ref":"#/types/p:index:Reg"}"##).unwrap();
        let ty = Ty::Array(Box::new(Ty::Object("p:index:Reg".into())));
        assert_eq!(
            secret_spec(&pkg, &prop, &ty),
            Some(SecretSpec::Items(Box::new(SecretSpec::Props(vec![(
                "password".into(),
                SecretSpec::All
            )]))))
        );
        let plain: Property = serde_json::from_str(r#"{"type":"string"}"#).unwrap();
        assert_eq!(secret_spec(&pkg, &plain, &Ty::String), None);
    }
}
