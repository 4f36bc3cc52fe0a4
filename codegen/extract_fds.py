"""Write the FileDescriptorSet of Pulumi's provider and engine protocols.

The descriptors come from the generated modules shipped in the pinned PyPI `pulumi`
wheel (see codegen/PULUMI_VERSION); no .proto text is involved. Output: a serialized
google.protobuf.FileDescriptorSet holding provider.proto, engine.proto and every file
they import (google/protobuf/* included), in dependency order.

Usage: python codegen/extract_fds.py OUT.bin
"""

import sys

from google.protobuf import descriptor_pb2
from pulumi.runtime.proto import engine_pb2, provider_pb2


def collect(fd, seen, out):
    if fd.name in seen:
        return
    seen.add(fd.name)
    for dep in fd.dependencies:
        collect(dep, seen, out)
    proto = descriptor_pb2.FileDescriptorProto()
    fd.CopyToProto(proto)
    out.file.append(proto)


def main():
    fds = descriptor_pb2.FileDescriptorSet()
    seen = set()
    for module in (provider_pb2, engine_pb2):
        collect(module.DESCRIPTOR, seen, fds)
    with open(sys.argv[1], "wb") as f:
        f.write(fds.SerializeToString(deterministic=True))
    print(" ".join(p.name for p in fds.file), file=sys.stderr)


if __name__ == "__main__":
    main()
