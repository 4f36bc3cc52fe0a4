//! The codegen library: the SDK generator (`sdk`), shared by the `codegen` binary and the
//! SDK snapshot and staleness tests in `codegen/tests/`. The protocol and schema steps live
//! in the binary; they need no library surface.

pub mod sdk;
