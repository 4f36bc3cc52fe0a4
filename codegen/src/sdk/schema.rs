//! The Pulumi package schema as the SDK generator reads it: typed views over `schema/schema.json`
//! (serde), and the resolution of a property's JSON type into a [`Ty`].
//!
//! Only the parts of the schema an SDK needs are modelled; everything else in the file is
//! ignored. This module knows nothing of Python or TypeScript.

use indexmap::IndexMap;
use serde::Deserialize;
use serde_json::Value;

use super::SdkError;

/// The whole package (`schema/schema.json`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Package {
    pub name: String,
    #[serde(default)]
    pub version: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub keywords: Vec<String>,
    #[serde(default)]
    pub homepage: Option<String>,
    #[serde(default)]
    pub repository: Option<String>,
    #[serde(default)]
    pub license: Option<String>,
    #[serde(default, rename = "pluginDownloadURL")]
    pub plugin_download_url: Option<String>,
    #[serde(default)]
    pub config: Config,
    #[serde(default)]
    pub provider: Option<Resource>,
    #[serde(default)]
    pub types: IndexMap<String, ComplexType>,
    #[serde(default)]
    pub resources: IndexMap<String, Resource>,
    #[serde(default)]
    pub language: IndexMap<String, Value>,
}

/// `config`: the provider's configuration variables (`pulumi config set docker-buildkit:host`).
#[derive(Debug, Default, Deserialize)]
pub struct Config {
    #[serde(default)]
    pub variables: IndexMap<String, Property>,
}

/// A resource (or the provider itself).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Resource {
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub properties: IndexMap<String, Property>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default)]
    pub input_properties: IndexMap<String, Property>,
    #[serde(default)]
    pub required_inputs: Vec<String>,
    #[serde(default)]
    pub deprecation_message: Option<String>,
}

/// An entry of `types`: an object type or an enum.
#[derive(Debug, Deserialize)]
pub struct ComplexType {
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub properties: IndexMap<String, Property>,
    #[serde(default)]
    pub required: Vec<String>,
    #[serde(default, rename = "enum")]
    pub enum_values: Option<Vec<EnumValue>>,
}

/// One value of an enum type.
#[derive(Debug, Deserialize)]
pub struct EnumValue {
    #[serde(default)]
    pub name: Option<String>,
    pub value: Value,
    #[serde(default)]
    pub description: Option<String>,
}

/// The type part of a property, of an array's `items` or of a map's `additionalProperties`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TypeSpec {
    #[serde(default, rename = "type")]
    pub ty: Option<String>,
    #[serde(default, rename = "$ref")]
    pub reference: Option<String>,
    #[serde(default)]
    pub items: Option<Box<TypeSpec>>,
    #[serde(default)]
    pub additional_properties: Option<Box<TypeSpec>>,
    #[serde(default)]
    pub one_of: Option<Vec<TypeSpec>>,
}

/// A property of a resource, of an object type or of the config.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Property {
    #[serde(flatten)]
    pub ty: TypeSpec,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub default: Option<Value>,
    #[serde(default)]
    pub secret: bool,
    #[serde(default)]
    pub deprecation_message: Option<String>,
}

/// A resolved property type.
#[derive(Debug, Clone, PartialEq)]
pub enum Ty {
    String,
    Boolean,
    Integer,
    Number,
    /// `pulumi.json#/Any` (and `pulumi.json#/Json`, and an `object` without a value type).
    Any,
    /// `pulumi.json#/Archive`.
    Archive,
    /// `pulumi.json#/Asset`: an asset or an archive.
    Asset,
    Array(Box<Ty>),
    /// An object with `additionalProperties`: string keys.
    Map(Box<Ty>),
    /// `#/types/<token>` naming an object type.
    Object(String),
    /// `#/types/<token>` naming an enum type.
    Enum(String),
    /// `oneOf`.
    Union(Vec<Ty>),
}

impl Package {
    /// Parses the text of `schema/schema.json`.
    pub fn parse(text: &str) -> Result<Package, SdkError> {
        serde_json::from_str(text).map_err(|e| SdkError::Schema(e.to_string()))
    }

    /// Resolves a property's type; `at` names the property in errors.
    pub fn resolve(&self, spec: &TypeSpec, at: &str) -> Result<Ty, SdkError> {
        if let Some(reference) = &spec.reference {
            return self.resolve_ref(reference, at);
        }
        if let Some(alternatives) = &spec.one_of {
            let tys = alternatives
                .iter()
                .map(|a| self.resolve(a, at))
                .collect::<Result<Vec<_>, _>>()?;
            return Ok(Ty::Union(tys));
        }
        match spec.ty.as_deref() {
            Some("string") => Ok(Ty::String),
            Some("boolean") => Ok(Ty::Boolean),
            Some("integer") => Ok(Ty::Integer),
            Some("number") => Ok(Ty::Number),
            Some("array") => {
                let items = spec
                    .items
                    .as_deref()
                    .ok_or_else(|| SdkError::Schema(format!("{at}: an array without `items`")))?;
                Ok(Ty::Array(Box::new(self.resolve(items, at)?)))
            }
            Some("object") => match spec.additional_properties.as_deref() {
                Some(values) => Ok(Ty::Map(Box::new(self.resolve(values, at)?))),
                None => Ok(Ty::Map(Box::new(Ty::Any))),
            },
            other => Err(SdkError::Schema(format!(
                "{at}: unsupported type {other:?} (expected string, boolean, integer, number, array, object, $ref or oneOf)"
            ))),
        }
    }

    fn resolve_ref(&self, reference: &str, at: &str) -> Result<Ty, SdkError> {
        match reference {
            "pulumi.json#/Any" | "pulumi.json#/Json" => return Ok(Ty::Any),
            "pulumi.json#/Archive" => return Ok(Ty::Archive),
            "pulumi.json#/Asset" => return Ok(Ty::Asset),
            _ => {}
        }
        let token = reference.strip_prefix("#/types/").ok_or_else(|| {
            SdkError::Schema(format!(
                "{at}: unsupported $ref {reference:?} (only #/types/… and pulumi.json#/…)"
            ))
        })?;
        let ty = self.types.get(token).ok_or_else(|| {
            SdkError::Schema(format!(
                "{at}: $ref to {token:?}, which `types` does not define"
            ))
        })?;
        if ty.enum_values.is_some() {
            Ok(Ty::Enum(token.to_string()))
        } else {
            Ok(Ty::Object(token.to_string()))
        }
    }

    /// The package's name for one language (`language.<lang>.packageName`).
    pub fn language_package_name(&self, lang: &str) -> Option<String> {
        self.language
            .get(lang)?
            .get("packageName")?
            .as_str()
            .map(str::to_string)
    }

    /// The version the SDKs carry: the schema's, or `0.0.0` without one.
    pub fn version_or_default(&self) -> &str {
        self.version.as_deref().unwrap_or("0.0.0")
    }
}

/// The last segment of a token: `docker-buildkit:index:Image` → `Image`.
pub fn token_name(token: &str) -> &str {
    token.rsplit(':').next().unwrap_or(token)
}

/// The module segment of a token: `docker-buildkit:index:Image` → `index`.
pub fn token_module(token: &str) -> &str {
    let mut parts = token.split(':');
    parts.next();
    parts.next().unwrap_or("index")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn package() -> Package {
        Package::parse(
            r#"{"name":"p","types":{
                "p:index:Obj":{"type":"object","properties":{}},
                "p:index:Mode":{"type":"string","enum":[{"value":"a"}]}}}"#,
        )
        .unwrap()
    }

    fn resolve(json: &str) -> Result<Ty, SdkError> {
        let spec: TypeSpec = serde_json::from_str(json).unwrap();
        package().resolve(&spec, "x")
    }

    #[test]
    fn resolves_every_kind() {
        assert_eq!(resolve(r#"{"type":"string"}"#).unwrap(), Ty::String);
        assert_eq!(resolve(r#"{"type":"number"}"#).unwrap(), Ty::Number);
        assert_eq!(
            resolve(r#"{"type":"array","items":{"type":"integer"}}"#).unwrap(),
            Ty::Array(Box::new(Ty::Integer))
        );
        assert_eq!(
            resolve(r#"{"type":"object","additionalProperties":{"type":"boolean"}}"#).unwrap(),
            Ty::Map(Box::new(Ty::Boolean))
        );
        assert_eq!(resolve(r#"{"$ref":"pulumi.json#/Any"}"#).unwrap(), Ty::Any);
        assert_eq!(
            resolve(r##"{"$ref":"#/types/p:index:Obj"}"##).unwrap(),
            Ty::Object("p:index:Obj".into())
        );
        assert_eq!(
            resolve(r##"{"$ref":"#/types/p:index:Mode"}"##).unwrap(),
            Ty::Enum("p:index:Mode".into())
        );
    }

    #[test]
    fn names_what_it_cannot_resolve() {
        let err = resolve(r##"{"$ref":"#/types/p:index:Missing"}"##).unwrap_err();
        assert!(err.to_string().contains("p:index:Missing"), "{err}");
        let err = resolve(r#"{"type":"array"}"#).unwrap_err();
        assert!(err.to_string().contains("items"), "{err}");
    }

    #[test]
    fn token_parts() {
        assert_eq!(token_name("docker-buildkit:index:Image"), "Image");
        assert_eq!(token_module("docker-buildkit:index:Image"), "index");
    }
}

/// A module of the package and the resource classes it holds: both SDKs register each
/// module's classes with their runtime.
#[derive(Debug, serde::Serialize)]
pub struct Module {
    pub name: String,
    pub classes: Vec<ClassRef>,
}

/// A resource class and its type token.
#[derive(Debug, serde::Serialize)]
pub struct ClassRef {
    pub token: String,
    pub class: String,
}

/// Groups `(token, class)` pairs by the token's module, keeping first-seen order.
pub fn group_modules<'a>(classes: impl IntoIterator<Item = (&'a str, &'a str)>) -> Vec<Module> {
    let mut modules: Vec<Module> = Vec::new();
    for (token, class) in classes {
        let class_ref = ClassRef {
            token: token.to_string(),
            class: class.to_string(),
        };
        let name = token_module(token);
        match modules.iter_mut().find(|m| m.name == name) {
            Some(m) => m.classes.push(class_ref),
            None => modules.push(Module {
                name: name.to_string(),
                classes: vec![class_ref],
            }),
        }
    }
    modules
}

impl Package {
    /// The provider resource's token and spec (an empty spec when the schema has none).
    pub fn provider_resource(&self) -> (String, &Resource) {
        static EMPTY: std::sync::LazyLock<Resource> = std::sync::LazyLock::new(Resource::default);
        let token = format!("pulumi:providers:{}", self.name);
        (token, self.provider.as_ref().unwrap_or(&EMPTY))
    }
}
