//! The Node.js SDK's view of the schema: TypeScript types, literals and the expressions that
//! fill a resource's inputs, ready for the `templates/nodejs/` templates. Compiling the
//! rendered TypeScript is `tsc.rs`'s job.

use serde::Serialize;
use serde_json::Value;

use super::SdkError;
use super::names::{enum_member_name, ts_module_name, with_article};
use super::schema::{
    ComplexType, EnumValue, Module, Package, Property, Resource, Ty, group_modules, token_name,
};
use super::secrets::{SecretSpec, secret_spec};

/// Everything the Node.js templates see.
#[derive(Debug, Serialize)]
pub struct TsPackage {
    pub pkg: String,
    /// The npm package name (`language.nodejs.packageName`).
    pub package_name: String,
    /// A JavaScript identifier for the package (`dockerBuildkit`), for examples.
    pub pkg_ident: String,
    pub version: String,
    pub description: String,
    /// A JSON array of the keywords.
    pub keywords_json: String,
    pub license: Option<String>,
    pub repository: Option<String>,
    pub homepage: Option<String>,
    /// `undefined` or a string literal.
    pub plugin_download_url: String,
    /// The schema's `pluginDownloadURL` as is: the `server` of the plugin metadata.
    pub server: Option<String>,
    pub resources: Vec<TsResource>,
    pub provider: TsResource,
    pub modules: Vec<Module>,
    pub object_types: Vec<TsObjectType>,
    pub enum_types: Vec<TsEnum>,
    pub config: Vec<TsConfigVar>,
}

#[derive(Debug, Serialize)]
pub struct TsResource {
    pub token: String,
    pub class: String,
    /// The class with its article (`an Image`), for prose.
    pub a_class: String,
    /// The file, without `.ts`.
    pub module: String,
    pub description: String,
    pub inputs: Vec<TsInput>,
    pub outputs: Vec<TsField>,
    /// Wire names of the properties that are outputs only.
    pub output_only: Vec<String>,
    /// Wire names of every output property.
    pub all_outputs: Vec<String>,
    pub required_inputs: Vec<String>,
    /// A TypeScript array literal of the secret outputs' names, when there are any.
    pub secret_outputs: Option<String>,
    /// No input is required, so `args` may be left out.
    pub args_optional: bool,
    pub deprecation_message: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct TsInput {
    pub name: String,
    /// `?` for an optional input, else empty.
    pub optional: String,
    /// The type inside `pulumi.Input<…>`.
    pub ty: String,
    pub description: String,
    /// The expression stored in `resourceInputs`.
    pub value: String,
}

#[derive(Debug, Serialize)]
pub struct TsField {
    pub name: String,
    pub optional: String,
    /// The plain type (with `| undefined` for optional resource outputs).
    pub ty: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct TsObjectType {
    pub token: String,
    pub class: String,
    pub args_class: String,
    pub description: String,
    pub inputs: Vec<TsField>,
    pub outputs: Vec<TsField>,
}

#[derive(Debug, Serialize)]
pub struct TsEnum {
    pub token: String,
    pub class: String,
    pub description: String,
    pub members: Vec<TsEnumMember>,
}

#[derive(Debug, Serialize)]
pub struct TsEnumMember {
    pub name: String,
    pub value: String,
    pub description: String,
}

#[derive(Debug, Serialize)]
pub struct TsConfigVar {
    pub name: String,
    pub ty: String,
    /// The `pulumi.Config` call: `get`, `getBoolean`, `getNumber` or `getObject<T>`.
    pub getter: String,
    pub default: Option<String>,
    pub description: String,
}

fn paren_if_union(ty: String) -> String {
    if ty.contains(" | ") && !ty.starts_with('{') {
        format!("({ty})")
    } else {
        ty
    }
}

/// The input type of a value (without the outer `pulumi.Input`).
fn in_type(ty: &Ty) -> String {
    match ty {
        Ty::String => "string".into(),
        Ty::Boolean => "boolean".into(),
        Ty::Integer | Ty::Number => "number".into(),
        Ty::Any => "any".into(),
        Ty::Archive => "pulumi.asset.Archive".into(),
        Ty::Asset => "pulumi.asset.Asset | pulumi.asset.Archive".into(),
        Ty::Array(items) => format!("pulumi.Input<{}>[]", in_type(items)),
        Ty::Map(values) => format!("{{[key: string]: pulumi.Input<{}>}}", in_type(values)),
        Ty::Object(token) => format!("inputs.{}Args", token_name(token)),
        Ty::Enum(token) => format!("enums.{}", token_name(token)),
        Ty::Union(tys) => tys.iter().map(in_type).collect::<Vec<_>>().join(" | "),
    }
}

/// The output type of a value.
fn out_type(ty: &Ty) -> String {
    match ty {
        Ty::String => "string".into(),
        Ty::Boolean => "boolean".into(),
        Ty::Integer | Ty::Number => "number".into(),
        Ty::Any => "any".into(),
        Ty::Archive => "pulumi.asset.Archive".into(),
        Ty::Asset => "pulumi.asset.Asset | pulumi.asset.Archive".into(),
        Ty::Array(items) => format!("{}[]", paren_if_union(out_type(items))),
        Ty::Map(values) => format!("{{[key: string]: {}}}", out_type(values)),
        Ty::Object(token) => format!("outputs.{}", token_name(token)),
        Ty::Enum(token) => format!("enums.{}", token_name(token)),
        Ty::Union(tys) => tys.iter().map(out_type).collect::<Vec<_>>().join(" | "),
    }
}

/// A JSON value as a TypeScript literal (JSON is one).
fn ts_literal(value: &Value) -> String {
    value.to_string()
}

/// A [`SecretSpec`] as the literal `utilities.markSecrets` walks.
fn secret_literal(spec: &SecretSpec) -> String {
    match spec {
        SecretSpec::All => "true".into(),
        SecretSpec::Items(s) => format!("{{ items: {} }}", secret_literal(s)),
        SecretSpec::Values(s) => format!("{{ values: {} }}", secret_literal(s)),
        SecretSpec::Props(props) => format!(
            "{{ props: {{ {} }} }}",
            props
                .iter()
                .map(|(wire, s)| format!("{}: {}", Value::String(wire.clone()), secret_literal(s)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

fn description(prop: &Property) -> String {
    let mut text = prop.description.clone().unwrap_or_default();
    if let Some(msg) = &prop.deprecation_message {
        if !text.is_empty() {
            text.push_str("\n\n");
        }
        text.push_str("@deprecated ");
        text.push_str(msg);
    }
    text
}

fn resource(
    pkg: &Package,
    token: &str,
    res: &Resource,
    is_provider: bool,
) -> Result<TsResource, SdkError> {
    let class = if is_provider {
        "Provider".to_string()
    } else {
        token_name(token).to_string()
    };
    let mut inputs = Vec::new();
    for (wire, prop) in &res.input_properties {
        let ty = pkg.resolve(&prop.ty, &format!("{token}.inputProperties.{wire}"))?;
        let required = res.required_inputs.contains(wire);
        let mut value = format!("args?.{wire}");
        if let Some(default) = &prop.default {
            value = format!("(args?.{wire}) ?? {}", ts_literal(default));
        }
        // Providers take their configuration as strings: anything else goes as JSON.
        if is_provider && ty != Ty::String {
            value = format!("pulumi.output({value}).apply(JSON.stringify)");
        }
        if let Some(spec) = secret_spec(pkg, prop, &ty) {
            value = format!("utilities.markSecrets({value}, {})", secret_literal(&spec));
        }
        inputs.push(TsInput {
            name: wire.clone(),
            optional: if required { "" } else { "?" }.into(),
            ty: in_type(&ty),
            description: description(prop),
            value,
        });
    }
    let mut outputs = Vec::new();
    let mut output_only = Vec::new();
    let mut secret_outputs = Vec::new();
    for (wire, prop) in &res.properties {
        let ty = pkg.resolve(&prop.ty, &format!("{token}.properties.{wire}"))?;
        let required = res.required.contains(wire);
        if !res.input_properties.contains_key(wire) {
            output_only.push(wire.clone());
        }
        if prop.secret {
            secret_outputs.push(Value::String(wire.clone()).to_string());
        }
        let plain = out_type(&ty);
        outputs.push(TsField {
            name: wire.clone(),
            optional: String::new(),
            ty: if required {
                plain
            } else {
                format!("{plain} | undefined")
            },
            description: description(prop),
        });
    }
    let mut description = res.description.clone().unwrap_or_default();
    if description.is_empty() {
        description = format!("The {class} resource.");
    }
    Ok(TsResource {
        token: token.to_string(),
        a_class: with_article(&class),
        module: if is_provider {
            "provider".into()
        } else {
            ts_module_name(&class)
        },
        class,
        description,
        inputs,
        all_outputs: res.properties.keys().cloned().collect(),
        outputs,
        output_only,
        required_inputs: res.required_inputs.clone(),
        secret_outputs: (!secret_outputs.is_empty())
            .then(|| format!("[{}]", secret_outputs.join(", "))),
        args_optional: res.required_inputs.is_empty(),
        deprecation_message: res.deprecation_message.clone(),
    })
}

fn object_type(pkg: &Package, token: &str, ty: &ComplexType) -> Result<TsObjectType, SdkError> {
    let class = token_name(token).to_string();
    let mut inputs = Vec::new();
    let mut outputs = Vec::new();
    for (wire, prop) in &ty.properties {
        let resolved = pkg.resolve(&prop.ty, &format!("{token}.properties.{wire}"))?;
        let optional = if ty.required.contains(wire) { "" } else { "?" };
        inputs.push(TsField {
            name: wire.clone(),
            optional: optional.into(),
            ty: in_type(&resolved),
            description: description(prop),
        });
        outputs.push(TsField {
            name: wire.clone(),
            optional: optional.into(),
            ty: out_type(&resolved),
            description: description(prop),
        });
    }
    Ok(TsObjectType {
        token: token.to_string(),
        args_class: format!("{class}Args"),
        description: ty.description.clone().unwrap_or_default(),
        class,
        inputs,
        outputs,
    })
}

fn enum_type(token: &str, ty: &ComplexType, values: &[EnumValue]) -> TsEnum {
    TsEnum {
        token: token.to_string(),
        class: token_name(token).to_string(),
        description: ty.description.clone().unwrap_or_default(),
        members: values
            .iter()
            .map(|v| TsEnumMember {
                name: enum_member_name(v.name.as_deref(), &v.value),
                value: ts_literal(&v.value),
                description: v.description.clone().unwrap_or_default(),
            })
            .collect(),
    }
}

/// `docker-buildkit` → `dockerBuildkit`.
fn js_identifier(name: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            if upper && !out.is_empty() {
                out.extend(c.to_uppercase());
            } else {
                out.push(c);
            }
            upper = false;
        } else {
            upper = true;
        }
    }
    out
}

/// Builds the Node.js view of a package.
pub fn view(pkg: &Package) -> Result<TsPackage, SdkError> {
    let package_name = pkg
        .language_package_name("nodejs")
        .unwrap_or_else(|| format!("@pulumi/{}", pkg.name));
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
            Some(values) => enum_types.push(enum_type(token, ty, values)),
            None => object_types.push(object_type(pkg, token, ty)?),
        }
    }

    let mut config = Vec::new();
    for (wire, prop) in &pkg.config.variables {
        let ty = pkg.resolve(&prop.ty, &format!("config.{wire}"))?;
        let plain = out_type(&ty);
        let getter = match ty {
            Ty::String => "get".to_string(),
            Ty::Boolean => "getBoolean".to_string(),
            Ty::Integer | Ty::Number => "getNumber".to_string(),
            _ => format!("getObject<{plain}>"),
        };
        config.push(TsConfigVar {
            name: wire.clone(),
            ty: plain,
            getter,
            default: prop.default.as_ref().map(ts_literal),
            description: description(prop),
        });
    }

    Ok(TsPackage {
        pkg: pkg.name.clone(),
        package_name,
        pkg_ident: js_identifier(&pkg.name),
        version: pkg.version_or_default().to_string(),
        description: pkg.description.clone().unwrap_or_default(),
        keywords_json: Value::from(pkg.keywords.clone()).to_string(),
        license: pkg.license.clone(),
        repository: pkg.repository.clone(),
        homepage: pkg.homepage.clone(),
        plugin_download_url: pkg
            .plugin_download_url
            .as_ref()
            .map(|u| ts_literal(&Value::String(u.clone())))
            .unwrap_or_else(|| "undefined".into()),
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
    fn types() {
        let ty = Ty::Map(Box::new(Ty::Array(Box::new(Ty::Object(
            "p:index:Reg".into(),
        )))));
        assert_eq!(
            in_type(&ty),
            "{[key: string]: pulumi.Input<pulumi.Input<inputs.RegArgs>[]>}"
        );
        assert_eq!(out_type(&ty), "{[key: string]: outputs.Reg[]}");
        let union = Ty::Array(Box::new(Ty::Union(vec![Ty::String, Ty::Integer])));
        assert_eq!(out_type(&union), "(string | number)[]");
    }

    #[test]
    fn secret_literals() {
        let spec = SecretSpec::Props(vec![("password".into(), SecretSpec::All)]);
        assert_eq!(secret_literal(&spec), "{ props: { \"password\": true } }");
    }
}
