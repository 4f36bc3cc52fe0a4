//! The Python SDK's view of the schema: Python names, type annotations, literals and the
//! expressions that fill a resource's property bag, ready for the `templates/python/`
//! templates. No layout lives here; no type decision lives in the templates.

use serde::Serialize;
use serde_json::Value;

use super::SdkError;
use super::names::{enum_member_name, py_module_name, python_name, snake_case, with_article};
use super::schema::{Module, Package, Property, Resource, Ty, group_modules, token_name};
use super::secrets::{SecretSpec, secret_spec};

/// Everything the Python templates see.
#[derive(Debug, Serialize)]
pub struct PyPackage {
    /// The schema's package name (`docker-buildkit`).
    pub pkg: String,
    /// The import name (`pulumi_docker_buildkit`).
    pub package_name: String,
    pub version: String,
    pub description: String,
    /// A TOML array of the keywords.
    pub keywords_toml: String,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
    /// `None` or a string literal.
    pub plugin_download_url: String,
    /// The schema's `pluginDownloadURL` as is: the `server` of the plugin metadata.
    pub server: Option<String>,
    pub resources: Vec<PyResource>,
    pub provider: PyResource,
    pub modules: Vec<Module>,
    pub object_types: Vec<PyObjectType>,
    pub enum_types: Vec<PyEnum>,
    pub config: Vec<PyConfigVar>,
}

#[derive(Debug, Serialize)]
pub struct PyResource {
    pub token: String,
    pub class: String,
    /// The class with its article (`an Image`), for prose.
    pub a_class: String,
    pub args_class: String,
    /// The file, without `.py`.
    pub module: String,
    pub description: String,
    /// Required inputs first, then the rest, each in schema order.
    pub inputs: Vec<PyInput>,
    /// Every output property, in schema order.
    pub outputs: Vec<PyField>,
    /// Python names of the properties that are outputs only.
    pub output_only: Vec<String>,
    /// A Python list literal of the secret outputs' names, when there are any.
    pub secret_outputs: Option<String>,
    /// Some input is required, so an args object must be given.
    pub has_required: bool,
    /// The package's provider (`pulumi.ProviderResource`) rather than a resource.
    pub is_provider: bool,
    pub deprecation_message: Option<String>,
}

/// An input property of a resource.
#[derive(Debug, Serialize)]
pub struct PyInput {
    pub name: String,
    pub wire: String,
    /// `@pulumi.getter` or `@pulumi.getter(name="buildArgs")`.
    pub getter: String,
    /// The annotation in the `…Args` class.
    pub args_type: String,
    /// The annotation of the keyword argument (object types also as their `…ArgsDict`).
    pub kwarg_type: String,
    /// The type named in `:param` docs.
    pub doc_type: String,
    pub required: bool,
    /// A Python literal, when the schema has a default.
    pub default: Option<String>,
    /// The expression stored in the property bag.
    pub value: String,
    pub description: String,
}

/// A property of an output (a resource's or an object type's).
#[derive(Debug, Serialize)]
pub struct PyField {
    pub name: String,
    pub wire: String,
    pub getter: String,
    /// The plain type (`Optional[...]` when not required).
    pub ty: String,
    pub required: bool,
    pub description: String,
}

/// An object type: `…Args` (+ `…ArgsDict`) in `_inputs.py`, the output class in `outputs.py`.
#[derive(Debug, Serialize)]
pub struct PyObjectType {
    pub token: String,
    pub class: String,
    pub args_class: String,
    pub dict_class: String,
    pub description: String,
    /// Input fields, required first.
    pub inputs: Vec<PyTypeInput>,
    /// Output fields, required first.
    pub outputs: Vec<PyField>,
}

#[derive(Debug, Serialize)]
pub struct PyTypeInput {
    pub name: String,
    pub wire: String,
    pub getter: String,
    pub args_type: String,
    pub dict_type: String,
    pub doc_type: String,
    pub required: bool,
    pub default: Option<String>,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct PyEnum {
    pub token: String,
    pub class: String,
    /// `_builtins.str`, `_builtins.int` or `_builtins.float`.
    pub base: String,
    pub description: String,
    pub members: Vec<PyEnumMember>,
}

#[derive(Debug, Serialize)]
pub struct PyEnumMember {
    pub name: String,
    pub value: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct PyConfigVar {
    pub name: String,
    pub wire: String,
    pub ty: String,
    /// The `pulumi.Config` getter: `get`, `get_bool`, `get_int`, `get_float` or `get_object`.
    pub getter: String,
    pub default: Option<String>,
    pub description: String,
}

/// How object types are spelled in an annotation.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// `'RegistryArgs'`: inside an `…Args` class.
    Args,
    /// `Union['RegistryArgs', 'RegistryArgsDict']`: keyword arguments.
    Kwarg,
    /// `'RegistryArgsDict'`: inside a TypedDict.
    Dict,
}

/// The input annotation of a value (without the outer `pulumi.Input`).
fn in_type(ty: &Ty, style: Style) -> String {
    match ty {
        Ty::String => "_builtins.str".into(),
        Ty::Boolean => "_builtins.bool".into(),
        Ty::Integer => "_builtins.int".into(),
        Ty::Number => "_builtins.float".into(),
        Ty::Any => "Any".into(),
        Ty::Archive => "pulumi.Archive".into(),
        Ty::Asset => "Union[pulumi.Asset, pulumi.Archive]".into(),
        Ty::Array(items) => format!("Sequence[pulumi.Input[{}]]", in_type(items, style)),
        Ty::Map(values) => format!("Mapping[str, pulumi.Input[{}]]", in_type(values, style)),
        Ty::Object(token) => {
            let name = token_name(token);
            match style {
                Style::Args => format!("'{name}Args'"),
                Style::Kwarg => format!("Union['{name}Args', '{name}ArgsDict']"),
                Style::Dict => format!("'{name}ArgsDict'"),
            }
        }
        Ty::Enum(token) => format!("'{}'", token_name(token)),
        Ty::Union(tys) => format!(
            "Union[{}]",
            tys.iter()
                .map(|t| in_type(t, style))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// The output annotation of a value; `qualify` prefixes object types with `outputs.`.
fn out_type(ty: &Ty, qualify: bool) -> String {
    match ty {
        Ty::String => "_builtins.str".into(),
        Ty::Boolean => "_builtins.bool".into(),
        Ty::Integer => "_builtins.int".into(),
        Ty::Number => "_builtins.float".into(),
        Ty::Any => "Any".into(),
        Ty::Archive => "pulumi.Archive".into(),
        Ty::Asset => "Union[pulumi.Asset, pulumi.Archive]".into(),
        Ty::Array(items) => format!("Sequence[{}]", out_type(items, qualify)),
        Ty::Map(values) => format!("Mapping[str, {}]", out_type(values, qualify)),
        Ty::Object(token) if qualify => format!("'outputs.{}'", token_name(token)),
        Ty::Object(token) => format!("'{}'", token_name(token)),
        Ty::Enum(token) => format!("'{}'", token_name(token)),
        Ty::Union(tys) => format!(
            "Union[{}]",
            tys.iter()
                .map(|t| out_type(t, qualify))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A JSON value as a Python literal.
pub fn py_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".into(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Number(n) => n.to_string(),
        // JSON's string escapes are Python's too.
        Value::String(s) => Value::String(s.clone()).to_string(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_literal).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(map) => format!(
            "{{{}}}",
            map.iter()
                .map(|(k, v)| format!(
                    "{}: {}",
                    py_literal(&Value::String(k.clone())),
                    py_literal(v)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

/// A [`SecretSpec`] as the Python literal `_utilities.mark_secrets` walks.
fn secret_literal(spec: &SecretSpec) -> String {
    match spec {
        SecretSpec::All => "True".into(),
        SecretSpec::Items(s) => format!("{{\"items\": {}}}", secret_literal(s)),
        SecretSpec::Values(s) => format!("{{\"values\": {}}}", secret_literal(s)),
        SecretSpec::Props(props) => format!(
            "{{\"props\": [{}]}}",
            props
                .iter()
                .map(|(wire, s)| format!(
                    "(\"{wire}\", \"{}\", {})",
                    python_name(wire),
                    secret_literal(s)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn getter(name: &str, wire: &str) -> String {
    if name == wire {
        "@pulumi.getter".into()
    } else {
        format!("@pulumi.getter(name=\"{wire}\")")
    }
}

fn optional(ty: String, required: bool) -> String {
    if required {
        ty
    } else {
        format!("Optional[{ty}]")
    }
}

fn description(prop: &Property) -> String {
    let mut text = prop.description.clone().unwrap_or_default();
    if let Some(msg) = &prop.deprecation_message {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str("Deprecated: ");
        text.push_str(msg);
    }
    text
}

/// Required names first, each group in schema order.
fn required_first<'a, T>(
    props: impl Iterator<Item = (&'a String, &'a T)>,
    required: &[String],
) -> Vec<(&'a String, &'a T)>
where
    T: 'a,
{
    let (mut req, opt): (Vec<_>, Vec<_>) = props.partition(|(k, _)| required.contains(k));
    req.extend(opt);
    req
}

fn resource(
    pkg: &Package,
    token: &str,
    res: &Resource,
    is_provider: bool,
) -> Result<PyResource, SdkError> {
    let class = if is_provider {
        "Provider".to_string()
    } else {
        token_name(token).to_string()
    };
    let mut inputs = Vec::new();
    for (wire, prop) in required_first(res.input_properties.iter(), &res.required_inputs) {
        let at = format!("{token}.inputProperties.{wire}");
        let ty = pkg.resolve(&prop.ty, &at)?;
        let name = python_name(wire);
        let required = res.required_inputs.contains(wire);
        let plain_args = in_type(&ty, Style::Args);
        let plain_kwarg = in_type(&ty, Style::Kwarg);
        let default = prop.default.as_ref().map(py_literal);
        // Providers take their configuration as strings: anything else goes as JSON.
        let mut value = if is_provider && ty != Ty::String {
            format!(
                "None if {name} is None else pulumi.Output.from_input({name}).apply(pulumi.runtime.to_json)"
            )
        } else {
            name.clone()
        };
        match secret_spec(pkg, prop, &ty) {
            Some(SecretSpec::All) if value == name => {
                value = format!("None if {name} is None else pulumi.Output.secret({name})");
            }
            Some(SecretSpec::All) => value = format!("_utilities.mark_secrets({value}, True)"),
            Some(spec) => {
                value = format!(
                    "_utilities.mark_secrets({value}, {})",
                    secret_literal(&spec)
                );
            }
            None => {}
        }
        inputs.push(PyInput {
            getter: getter(&name, wire),
            args_type: optional(format!("pulumi.Input[{plain_args}]"), required),
            kwarg_type: format!("Optional[pulumi.Input[{plain_kwarg}]]"),
            doc_type: format!("pulumi.Input[{plain_kwarg}]"),
            required,
            default,
            value,
            description: description(prop),
            wire: wire.clone(),
            name,
        });
    }
    let mut outputs = Vec::new();
    let mut output_only = Vec::new();
    let mut secret_outputs = Vec::new();
    for (wire, prop) in &res.properties {
        let at = format!("{token}.properties.{wire}");
        let ty = pkg.resolve(&prop.ty, &at)?;
        let name = python_name(wire);
        let required = res.required.contains(wire);
        if !res.input_properties.contains_key(wire) {
            output_only.push(name.clone());
        }
        if prop.secret {
            secret_outputs.push(format!("\"{name}\""));
        }
        outputs.push(PyField {
            getter: getter(&name, wire),
            ty: optional(out_type(&ty, true), required),
            required,
            description: description(prop),
            wire: wire.clone(),
            name,
        });
    }
    let mut description = res.description.clone().unwrap_or_default();
    if description.is_empty() {
        description = format!("The {class} resource.");
    }
    Ok(PyResource {
        token: token.to_string(),
        a_class: with_article(&class),
        args_class: format!("{class}Args"),
        module: if is_provider {
            "provider".into()
        } else {
            py_module_name(&class)
        },
        class,
        description,
        inputs,
        outputs,
        output_only,
        secret_outputs: (!secret_outputs.is_empty())
            .then(|| format!("[{}]", secret_outputs.join(", "))),
        has_required: !res.required_inputs.is_empty(),
        is_provider,
        deprecation_message: res.deprecation_message.clone(),
    })
}

fn object_type(
    pkg: &Package,
    token: &str,
    ty: &super::schema::ComplexType,
) -> Result<PyObjectType, SdkError> {
    let class = token_name(token).to_string();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (wire, prop) in required_first(ty.properties.iter(), &ty.required) {
        let at = format!("{token}.properties.{wire}");
        let resolved = pkg.resolve(&prop.ty, &at)?;
        let name = python_name(wire);
        let required = ty.required.contains(wire);
        let plain_args = in_type(&resolved, Style::Args);
        let dict = format!("pulumi.Input[{}]", in_type(&resolved, Style::Dict));
        inputs.push(PyTypeInput {
            getter: getter(&name, wire),
            args_type: optional(format!("pulumi.Input[{plain_args}]"), required),
            dict_type: if required {
                dict
            } else {
                format!("NotRequired[{dict}]")
            },
            doc_type: format!("pulumi.Input[{}]", in_type(&resolved, Style::Kwarg)),
            required,
            default: prop.default.as_ref().map(py_literal),
            description: description(prop),
            wire: wire.clone(),
            name: name.clone(),
        });
        outputs.push(PyField {
            getter: getter(&name, wire),
            ty: optional(out_type(&resolved, false), required),
            required,
            description: description(prop),
            wire: wire.clone(),
            name,
        });
    }
    Ok(PyObjectType {
        token: token.to_string(),
        args_class: format!("{class}Args"),
        dict_class: format!("{class}ArgsDict"),
        description: ty.description.clone().unwrap_or_default(),
        class,
        inputs,
        outputs,
    })
}

fn enum_type(
    token: &str,
    ty: &super::schema::ComplexType,
    values: &[super::schema::EnumValue],
) -> Result<PyEnum, SdkError> {
    let base = match ty.ty.as_deref() {
        Some("string") | None => "_builtins.str",
        Some("integer") => "_builtins.int",
        Some("number") => "_builtins.float",
        Some(other) => {
            return Err(SdkError::Schema(format!(
                "{token}: enum of unsupported type {other:?}"
            )));
        }
    };
    let members = values
        .iter()
        .map(|v| {
            // Python spells enum members in upper snake case (`Mode.CAREFUL`).
            let name = snake_case(&enum_member_name(v.name.as_deref(), &v.value)).to_uppercase();
            PyEnumMember {
                name,
                value: py_literal(&v.value),
                description: v.description.clone().unwrap_or_default(),
            }
        })
        .collect();
    Ok(PyEnum {
        token: token.to_string(),
        class: token_name(token).to_string(),
        base: base.to_string(),
        description: ty.description.clone().unwrap_or_default(),
        members,
    })
}

/// Builds the Python view of a package.
pub fn view(pkg: &Package) -> Result<PyPackage, SdkError> {
    let package_name = pkg
        .language_package_name("python")
        .unwrap_or_else(|| format!("pulumi_{}", pkg.name.replace('-', "_")));
    let resources = pkg
        .resources
        .iter()
        .map(|(token, res)| resource(pkg, token, res, false))
        .collect::<Result<Vec<_>, _>>()?;
    let modules = group_modules(
        resources
            .iter()
            .map(|r| (r.token.as_str(), r.class.as_str())),
    );
    let (provider_token, provider_spec) = pkg.provider_resource();
    let provider = resource(pkg, &provider_token, provider_spec, true)?;

    let mut object_types = Vec::new();
    let mut enum_types = Vec::new();
    for (token, ty) in &pkg.types {
        match &ty.enum_values {
            Some(values) => enum_types.push(enum_type(token, ty, values)?),
            None => object_types.push(object_type(pkg, token, ty)?),
        }
    }

    let mut config = Vec::new();
    for (wire, prop) in &pkg.config.variables {
        let ty = pkg.resolve(&prop.ty, &format!("config.{wire}"))?;
        let getter = match ty {
            Ty::String => "get",
            Ty::Boolean => "get_bool",
            Ty::Integer => "get_int",
            Ty::Number => "get_float",
            _ => "get_object",
        };
        config.push(PyConfigVar {
            name: python_name(wire),
            wire: wire.clone(),
            ty: format!("Optional[{}]", out_type(&ty, true)),
            getter: getter.to_string(),
            default: prop.default.as_ref().map(py_literal),
            description: description(prop),
        });
    }

    let keywords_toml = format!(
        "[{}]",
        pkg.keywords
            .iter()
            .map(|k| Value::String(k.clone()).to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(PyPackage {
        pkg: pkg.name.clone(),
        package_name,
        version: pkg.version_or_default().to_string(),
        description: pkg.description.clone().unwrap_or_default(),
        keywords_toml,
        license: pkg.license.clone(),
        repository: pkg.repository.clone(),
        homepage: pkg.homepage.clone(),
        plugin_download_url: pkg
            .plugin_download_url
            .as_ref()
            .map(|u| py_literal(&Value::String(u.clone())))
            .unwrap_or_else(|| "None".into()),
        server: pkg.plugin_download_url.clone(),
        resources,
        provider,
        modules,
        object_types,
        enum_types,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals() {
        assert_eq!(py_literal(&Value::Bool(true)), "True");
        assert_eq!(py_literal(&Value::from(".")), "\".\"");
        assert_eq!(
            py_literal(&serde_json::json!({"a": [1, null]})),
            "{\"a\": [1, None]}"
        );
    }

    #[test]
    fn annotations() {
        let ty = Ty::Map(Box::new(Ty::Array(Box::new(Ty::Object(
            "p:index:Reg".into(),
        )))));
        assert_eq!(
            in_type(&ty, Style::Kwarg),
            "Mapping[str, pulumi.Input[Sequence[pulumi.Input[Union['RegArgs', 'RegArgsDict']]]]]"
        );
        assert_eq!(out_type(&ty, true), "Mapping[str, Sequence['outputs.Reg']]");
    }

    #[test]
    fn secret_literals() {
        let spec = SecretSpec::Items(Box::new(SecretSpec::Props(vec![(
            "apiKey".into(),
            SecretSpec::All,
        )])));
        assert_eq!(
            secret_literal(&spec),
            "{\"items\": {\"props\": [(\"apiKey\", \"api_key\", True)]}}"
        );
    }
}
