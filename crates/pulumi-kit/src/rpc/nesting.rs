//! Property values nested deeper than the codec reads ([`MAX_NESTING`]), cut out of a
//! request's wire bytes before prost decodes them.
//!
//! prost refuses a message nested more than 100 messages deep (a limit fixed at build time),
//! and a `google.protobuf.Struct` spends three of them per object (two per list): a property
//! value with more than 32 objects one inside the other made the whole request undecodable,
//! an RPC error naming nothing, where any other wrong value is a check failure naming its
//! property. So the RPCs that carry property maps decode through [`CutCodec`]: every list
//! or object lying more than [`MAX_NESTING`] deep inside a property value is replaced, in
//! the bytes, by an empty one of its kind. The codec then finds a list or object too deep at
//! that path, as it would had the value been built in memory ([`Decoded::too_deep`]), and
//! validation fails the property it is in. What was cut is skipped whole (a length-delimited
//! field is stepped over, never read), so this recurses at most [`MAX_NESTING`] deep however
//! deep the value was sent.
//!
//! Not for: judging values (see [`crate::validation`]) or any other message than the
//! `pulumirpc` requests below.
//!
//! [`Decoded::too_deep`]: crate::rpc::codec::Decoded::too_deep

use std::marker::PhantomData;

use prost::Message;
use prost::bytes::Buf;
use tonic::Status;
use tonic::codec::{Codec, DecodeBuf, Decoder};
use tonic_prost::ProstEncoder;

use crate::generated::pulumirpc::{
    CallRequest, CheckRequest, ConfigureRequest, ConstructRequest, CreateRequest, DeleteRequest,
    DiffRequest, InvokeRequest, ReadRequest, UpdateRequest,
};
use crate::rpc::codec::MAX_NESTING;

/// Where a message carries property values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Carrier {
    /// A property map (`google.protobuf.Struct`) at this field number.
    Map(u32),
    /// A lone property value (`google.protobuf.Value`) at this field number.
    Value(u32),
    /// A message (one or repeated) at this field number, carrying these. Property values in
    /// it are cut one level sooner: prost spends one more message on getting there (and no
    /// list or object costs prost less than that).
    Message(u32, &'static [Carrier]),
}

/// A request message whose property values are cut before it is decoded.
pub trait PropertyMaps: Message + Default {
    /// Every field of the message that carries property values (checked against Pulumi's
    /// descriptors by this module's tests).
    const CARRIERS: &'static [Carrier];
}

use Carrier::{Map, Value};

/// `pulumirpc.View`: the `old_views` of Read, Update and Delete.
const VIEW: &[Carrier] = &[Map(5), Map(6)];

impl PropertyMaps for CheckRequest {
    const CARRIERS: &'static [Carrier] = &[Map(2), Map(3), Map(9)];
}
impl PropertyMaps for DiffRequest {
    const CARRIERS: &'static [Carrier] = &[Map(3), Map(4), Map(6)];
}
impl PropertyMaps for ConfigureRequest {
    const CARRIERS: &'static [Carrier] = &[Map(2)];
}
impl PropertyMaps for InvokeRequest {
    const CARRIERS: &'static [Carrier] = &[Map(2)];
}
impl PropertyMaps for CallRequest {
    const CARRIERS: &'static [Carrier] = &[Map(2)];
}
impl PropertyMaps for CreateRequest {
    const CARRIERS: &'static [Carrier] = &[Map(2)];
}
impl PropertyMaps for ReadRequest {
    const CARRIERS: &'static [Carrier] = &[Map(3), Map(4), Carrier::Message(9, VIEW)];
}
impl PropertyMaps for UpdateRequest {
    const CARRIERS: &'static [Carrier] = &[Map(3), Map(4), Map(8), Carrier::Message(13, VIEW)];
}
impl PropertyMaps for DeleteRequest {
    const CARRIERS: &'static [Carrier] = &[Map(3), Map(5), Carrier::Message(10, VIEW)];
}
impl PropertyMaps for ConstructRequest {
    const CARRIERS: &'static [Carrier] = &[Map(10), Value(30)];
}

/// `msg` with every list or object nested more than [`MAX_NESTING`] deep in a property value
/// of `carriers` emptied. `None` when nothing was cut, or when the bytes are not a message
/// this can read (a group, a truncated field): prost then decodes or refuses them as sent.
pub fn cut(msg: &[u8], carriers: &[Carrier]) -> Option<Vec<u8>> {
    cut_message(msg, carriers, 0).ok().flatten()
}

/// Bytes that are not a protobuf message this reads.
struct Unreadable;

type Cut = Result<Option<Vec<u8>>, Unreadable>;

fn cut_message(msg: &[u8], carriers: &[Carrier], depth: usize) -> Cut {
    rewrite(msg, |number, payload| {
        match carriers.iter().find(|c| number_of(c) == number) {
            Some(Map(_)) => cut_struct(payload, depth),
            Some(Value(_)) => cut_value(payload, depth),
            Some(Carrier::Message(_, inner)) => cut_message(payload, inner, depth + 1),
            None => Ok(None),
        }
    })
}

fn number_of(c: &Carrier) -> u32 {
    match c {
        Map(n) | Value(n) | Carrier::Message(n, _) => *n,
    }
}

/// A `Struct` whose members are `depth` lists and objects deep in their property value (0
/// for a property map's own members).
fn cut_struct(s: &[u8], depth: usize) -> Cut {
    // fields (1): map entries {key (1), value (2)}.
    rewrite(s, |number, entry| match number {
        1 => rewrite(entry, |number, value| match number {
            2 => cut_value(value, depth),
            _ => Ok(None),
        }),
        _ => Ok(None),
    })
}

/// A `Value` lying `depth` lists and objects deep in its property value.
fn cut_value(v: &[u8], depth: usize) -> Cut {
    // struct_value (5), list_value (6).
    rewrite(v, |number, payload| match number {
        5 | 6 if depth >= MAX_NESTING => Ok((!payload.is_empty()).then(Vec::new)),
        5 => cut_struct(payload, depth + 1),
        6 => rewrite(payload, |number, item| match number {
            // values (1)
            1 => cut_value(item, depth + 1),
            _ => Ok(None),
        }),
        _ => Ok(None),
    })
}

/// `msg` with each length-delimited field `f` rewrites (given its number and payload)
/// replaced; every other byte as it was. `None` when `f` rewrote nothing.
fn rewrite(msg: &[u8], mut f: impl FnMut(u32, &[u8]) -> Cut) -> Cut {
    let mut out: Option<Vec<u8>> = None;
    let mut at = 0;
    while at < msg.len() {
        let start = at;
        let key = varint(msg, &mut at)?;
        let number = u32::try_from(key >> 3).map_err(|_| Unreadable)?;
        if number == 0 {
            return Err(Unreadable);
        }
        let skip = |n: usize, at: &mut usize| -> Result<(), Unreadable> {
            *at = at
                .checked_add(n)
                .filter(|e| *e <= msg.len())
                .ok_or(Unreadable)?;
            Ok(())
        };
        match key & 7 {
            0 => {
                varint(msg, &mut at)?;
            }
            1 => skip(8, &mut at)?,
            5 => skip(4, &mut at)?,
            2 => {
                let len = usize::try_from(varint(msg, &mut at)?).map_err(|_| Unreadable)?;
                let begin = at;
                skip(len, &mut at)?;
                if let Some(new) = f(number, &msg[begin..at])? {
                    let buf = out.get_or_insert_with(|| msg[..start].to_vec());
                    prost::encoding::encode_key(
                        number,
                        prost::encoding::WireType::LengthDelimited,
                        buf,
                    );
                    prost::encoding::encode_varint(new.len() as u64, buf);
                    buf.extend_from_slice(&new);
                    continue;
                }
            }
            // Groups (3, 4) and the wire types protobuf does not have.
            _ => return Err(Unreadable),
        }
        if let Some(buf) = &mut out {
            buf.extend_from_slice(&msg[start..at]);
        }
    }
    Ok(out)
}

fn varint(msg: &[u8], at: &mut usize) -> Result<u64, Unreadable> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *msg.get(*at).ok_or(Unreadable)?;
        *at += 1;
        value |= u64::from(byte & 0x7f) << shift;
        if byte < 0x80 {
            return Ok(value);
        }
    }
    Err(Unreadable)
}

/// tonic's prost codec for a request `U` (answering `T`), except that `U`'s property values
/// are [`cut`] before prost decodes them.
pub struct CutCodec<T, U>(PhantomData<fn() -> (T, U)>);

impl<T, U> Default for CutCodec<T, U> {
    fn default() -> Self {
        Self(PhantomData)
    }
}

impl<T, U> Codec for CutCodec<T, U>
where
    T: Message + Send + 'static,
    U: PropertyMaps + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = CutDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        CutDecoder(PhantomData)
    }
}

/// The decoding half of [`CutCodec`].
pub struct CutDecoder<U>(PhantomData<fn() -> U>);

impl<U: PropertyMaps> Decoder for CutDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        let bytes = buf.copy_to_bytes(buf.remaining());
        let decoded = match cut(&bytes, U::CARRIERS) {
            Some(cut) => U::decode(cut.as_slice()),
            None => U::decode(bytes),
        };
        // As tonic's own prost codec answers (which `ShortDecodeErrors` shortens).
        decoded
            .map(Some)
            .map_err(|e| Status::internal(e.to_string()))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::BTreeMap;

    use prost_types::value::Kind;
    use prost_types::{FileDescriptorSet, ListValue, Struct};

    use super::*;
    use crate::rpc::codec::{self, PropertyPath, Seg};

    fn string(s: &str) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StringValue(s.into())),
        }
    }

    fn obj(k: &str, v: prost_types::Value) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::StructValue(Struct {
                fields: [(k.to_string(), v)].into_iter().collect(),
            })),
        }
    }

    fn list(items: Vec<prost_types::Value>) -> prost_types::Value {
        prost_types::Value {
            kind: Some(Kind::ListValue(ListValue { values: items })),
        }
    }

    /// Lists and objects by turns, `levels` of them, around "leaf"; the objects' key is `k`.
    fn mixed(levels: usize) -> prost_types::Value {
        let mut v = string("leaf");
        for i in 0..levels {
            v = if i % 2 == 0 {
                obj("k", v)
            } else {
                list(vec![string("x"), v])
            };
        }
        v
    }

    fn map(pairs: Vec<(&str, prost_types::Value)>) -> Struct {
        Struct {
            fields: pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
        }
    }

    fn check_request(news: Struct) -> Vec<u8> {
        CheckRequest {
            urn: "urn".into(),
            news: Some(news),
            random_seed: vec![1, 2, 3],
            ..Default::default()
        }
        .encode_to_vec()
    }

    #[test]
    fn values_within_the_bound_are_left_as_sent() {
        let bytes = check_request(map(vec![
            ("a", mixed(MAX_NESTING)),
            ("b", string("x")),
            ("c", list(vec![])),
        ]));
        assert_eq!(cut(&bytes, CheckRequest::CARRIERS), None);
    }

    #[test]
    fn what_the_cut_leaves_decodes_as_the_codec_reads_the_value_sent() {
        // The codec's own bound, on the value built in memory, and the cut, on its bytes,
        // agree: the same paths too deep, the same values everywhere else.
        for levels in [MAX_NESTING + 1, MAX_NESTING + 2, 60, 200] {
            let secret = codec::wrap_secret(mixed(levels - 1));
            let news = map(vec![
                ("deep", mixed(levels)),
                ("secret", secret),
                ("fine", mixed(3)),
            ]);
            let bytes = check_request(news.clone());
            let cut = cut(&bytes, CheckRequest::CARRIERS).expect("cut");
            let decoded = CheckRequest::decode(cut.as_slice()).expect("prost decodes the cut");
            assert_eq!(decoded.urn, "urn");
            assert_eq!(decoded.random_seed, vec![1, 2, 3]);
            let from_wire = codec::decode(&decoded.news.unwrap());
            let in_memory = codec::decode(&news);
            assert_eq!(from_wire, in_memory, "{levels}");
            let tops: Vec<_> = in_memory
                .too_deep
                .iter()
                .map(|p| p.top().unwrap())
                .collect();
            assert_eq!(tops, vec!["deep", "secret"], "{levels}");
        }
    }

    #[test]
    fn a_cut_lies_exactly_one_level_past_the_bound() {
        let bytes = check_request(map(vec![("p", mixed(MAX_NESTING + 5))]));
        let cut = cut(&bytes, CheckRequest::CARRIERS).unwrap();
        let news = CheckRequest::decode(cut.as_slice()).unwrap().news.unwrap();
        let d = codec::decode(&news);
        let [path] = d.too_deep.iter().collect::<Vec<_>>()[..] else {
            panic!("{:?}", d.too_deep)
        };
        let nesting = path.0.len() - 1; // the property's own key
        assert_eq!(nesting, MAX_NESTING, "{path}");
        assert_eq!(path.0[0], Seg::Key("p".into()));
    }

    /// A `Value` of `levels` lists one inside the other, as bytes, built without recursion.
    fn deep_list_bytes(levels: usize) -> Vec<u8> {
        let leaf = string("leaf").encode_to_vec();
        let mut lens = Vec::with_capacity(levels);
        let mut len = leaf.len();
        for _ in 0..levels {
            // Value{list_value(6): ListValue{values(1): <len>}}
            let inner = 1 + prost::encoding::encoded_len_varint(len as u64) + len;
            lens.push((inner, len));
            len = 1 + prost::encoding::encoded_len_varint(inner as u64) + inner;
        }
        let mut out = Vec::with_capacity(len);
        for (inner, len) in lens.iter().rev() {
            out.push(0x32);
            prost::encoding::encode_varint(*inner as u64, &mut out);
            out.push(0x0a);
            prost::encoding::encode_varint(*len as u64, &mut out);
        }
        out.extend_from_slice(&leaf);
        out
    }

    #[test]
    fn a_million_levels_are_cut_without_recursing_into_them() {
        let value = deep_list_bytes(1_000_000);
        let mut entry = Vec::new();
        prost::encoding::string::encode(1, &"p".to_string(), &mut entry);
        prost::encoding::bytes::encode(2, &value, &mut entry);
        let mut news = Vec::new();
        prost::encoding::bytes::encode(1, &entry, &mut news);
        let mut msg = Vec::new();
        prost::encoding::bytes::encode(3, &news, &mut msg);
        assert!(CheckRequest::decode(msg.as_slice()).is_err(), "prost alone");
        let cut = cut(&msg, CheckRequest::CARRIERS).unwrap();
        assert!(cut.len() < 200, "{}", cut.len());
        let news = CheckRequest::decode(cut.as_slice()).unwrap().news.unwrap();
        let d = codec::decode(&news);
        assert_eq!(d.too_deep.len(), 1);
        assert_eq!(d.too_deep.first().and_then(PropertyPath::top), Some("p"));
    }

    #[test]
    fn bytes_it_cannot_read_are_left_to_prost() {
        let bytes = check_request(map(vec![("p", mixed(60))]));
        for bad in [
            &bytes[..bytes.len() - 1],
            &[0x1a, 0x05, 0x0a][..],
            &[0x1b][..],
        ] {
            assert_eq!(cut(bad, CheckRequest::CARRIERS), None);
        }
        // A field it does not know is passed on as sent, around the cut.
        let mut with_unknown = bytes.clone();
        prost::encoding::string::encode(99, &"kept".to_string(), &mut with_unknown);
        let cut = cut(&with_unknown, CheckRequest::CARRIERS).unwrap();
        assert!(cut.ends_with(&with_unknown[bytes.len()..]));
    }

    /// Pulumi's descriptors for the protocol, as the generated code was made from.
    fn descriptors() -> FileDescriptorSet {
        FileDescriptorSet::decode(&include_bytes!("../../../../codegen/pulumirpc.fds.bin")[..])
            .unwrap()
    }

    /// Every field carrying property values in the message `name`, from the descriptors.
    fn carriers_in(fds: &FileDescriptorSet, name: &str, seen: &mut Vec<String>) -> Vec<String> {
        let mut messages = BTreeMap::new();
        for file in &fds.file {
            fn add<'a>(
                prefix: &str,
                m: &'a prost_types::DescriptorProto,
                out: &mut BTreeMap<String, &'a prost_types::DescriptorProto>,
            ) {
                let name = format!("{prefix}.{}", m.name());
                for n in &m.nested_type {
                    add(&name, n, out);
                }
                out.insert(name, m);
            }
            for m in &file.message_type {
                add(&format!(".{}", file.package()), m, &mut messages);
            }
        }
        let Some(m) = messages.get(name) else {
            return Vec::new();
        };
        seen.push(name.to_string());
        let mut out = Vec::new();
        for f in &m.field {
            match f.type_name() {
                ".google.protobuf.Struct" => out.push(format!("Map({})", f.number())),
                ".google.protobuf.Value" => out.push(format!("Value({})", f.number())),
                ".google.protobuf.ListValue" => out.push(format!("List({})", f.number())),
                t if !t.is_empty() && !seen.iter().any(|s| s == t) => {
                    let inner = carriers_in(fds, t, seen);
                    if !inner.is_empty() {
                        out.push(format!("Message({}, [{}])", f.number(), inner.join(", ")));
                    }
                }
                _ => {}
            }
        }
        seen.pop();
        out
    }

    fn shown(carriers: &[Carrier]) -> Vec<String> {
        carriers
            .iter()
            .map(|c| match c {
                Map(n) => format!("Map({n})"),
                Value(n) => format!("Value({n})"),
                Carrier::Message(n, inner) => {
                    format!("Message({n}, [{}])", shown(inner).join(", "))
                }
            })
            .collect()
    }

    #[test]
    fn the_carriers_are_those_of_pulumis_descriptors() {
        let fds = descriptors();
        for (name, ours) in [
            ("CheckRequest", CheckRequest::CARRIERS),
            ("DiffRequest", DiffRequest::CARRIERS),
            ("ConfigureRequest", ConfigureRequest::CARRIERS),
            ("InvokeRequest", InvokeRequest::CARRIERS),
            ("CallRequest", CallRequest::CARRIERS),
            ("CreateRequest", CreateRequest::CARRIERS),
            ("ReadRequest", ReadRequest::CARRIERS),
            ("UpdateRequest", UpdateRequest::CARRIERS),
            ("DeleteRequest", DeleteRequest::CARRIERS),
            ("ConstructRequest", ConstructRequest::CARRIERS),
        ] {
            let theirs = carriers_in(&fds, &format!(".pulumirpc.{name}"), &mut Vec::new());
            assert_eq!(shown(ours), theirs, "{name}");
        }
    }

    /// The unary `ResourceProvider` methods whose request carries property values, by the
    /// descriptors (the server routes each through [`CutCodec`]; see its tests).
    pub(crate) fn methods_carrying_values() -> Vec<(String, String)> {
        let fds = descriptors();
        fds.file
            .iter()
            .flat_map(|f| &f.service)
            .filter(|s| s.name() == "ResourceProvider")
            .flat_map(|s| &s.method)
            .filter(|m| !m.client_streaming() && !m.server_streaming())
            .filter(|m| !carriers_in(&fds, m.input_type(), &mut Vec::new()).is_empty())
            .map(|m| (m.name().to_string(), m.input_type().to_string()))
            .collect()
    }

    #[test]
    fn every_routed_request_decodes_cut_at_its_deepest() {
        // Everywhere a request carries values, the cut leaves what prost decodes.
        let deep = |levels| map(vec![("p", mixed(levels))]);
        let view = || crate::generated::pulumirpc::View {
            inputs: Some(deep(300)),
            outputs: Some(deep(300)),
            ..Default::default()
        };
        fn ok<M: PropertyMaps>(m: M) {
            let bytes = m.encode_to_vec();
            assert!(
                M::decode(bytes.as_slice()).is_err(),
                "too deep for prost alone"
            );
            let cut = cut(&bytes, M::CARRIERS).expect("cut");
            M::decode(cut.as_slice()).expect("decodes once cut");
        }
        ok(CheckRequest {
            olds: Some(deep(300)),
            news: Some(deep(300)),
            old_outputs: Some(deep(300)),
            ..Default::default()
        });
        ok(DiffRequest {
            olds: Some(deep(300)),
            news: Some(deep(300)),
            old_inputs: Some(deep(300)),
            ..Default::default()
        });
        ok(ConfigureRequest {
            args: Some(deep(300)),
            ..Default::default()
        });
        ok(InvokeRequest {
            args: Some(deep(300)),
            ..Default::default()
        });
        ok(CallRequest {
            args: Some(deep(300)),
            ..Default::default()
        });
        ok(CreateRequest {
            properties: Some(deep(300)),
            ..Default::default()
        });
        ok(ReadRequest {
            properties: Some(deep(300)),
            inputs: Some(deep(300)),
            old_views: vec![view(), view()],
            ..Default::default()
        });
        ok(UpdateRequest {
            olds: Some(deep(300)),
            news: Some(deep(300)),
            old_inputs: Some(deep(300)),
            old_views: vec![view()],
            ..Default::default()
        });
        ok(DeleteRequest {
            properties: Some(deep(300)),
            old_inputs: Some(deep(300)),
            old_views: vec![view()],
            ..Default::default()
        });
        ok(ConstructRequest {
            inputs: Some(deep(300)),
            replacement_trigger: Some(mixed(300)),
            ..Default::default()
        });
        // All objects (the costliest for prost) at the bound, in a view too.
        let objects = |levels: usize| {
            let mut v = string("leaf");
            for _ in 0..levels {
                v = obj("a", v);
            }
            map(vec![("p", v)])
        };
        ok(UpdateRequest {
            news: Some(objects(MAX_NESTING + 1)),
            old_views: vec![crate::generated::pulumirpc::View {
                inputs: Some(objects(MAX_NESTING + 1)),
                ..Default::default()
            }],
            ..Default::default()
        });
    }
}
