"""Read just enough of an ELF file to tell whether MemoryDenyWriteExecute=yes can load it:
an executable-stack request (PT_GNU_STACK with PF_X) makes ld.so mprotect the stack PROT_EXEC,
and text relocations (DT_TEXTREL / DF_TEXTREL) make it mprotect code writable then executable;
the seccomp filter behind MemoryDenyWriteExecute refuses both, so dlopen fails."""

from __future__ import annotations

import struct
from pathlib import Path

PT_DYNAMIC = 2
PT_GNU_STACK = 0x6474E551
PF_X = 1
DT_NULL, DT_TEXTREL, DT_FLAGS = 0, 0x16, 0x1E
DF_TEXTREL = 0x4


def wx_problems(path: Path) -> list[str]:
    """Reasons this shared object or executable needs W+X memory; [] when it does not."""
    data = path.read_bytes()
    if data[:4] != b"\x7fELF":
        return []
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    if is64:
        phoff, phentsize, phnum = (
            struct.unpack_from(end + "Q", data, 0x20)[0],
            *struct.unpack_from(end + "HH", data, 0x36),
        )
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(end + "I", data, 0x1C)[0],
            *struct.unpack_from(end + "HH", data, 0x2A),
        )
    problems = []
    for i in range(phnum):
        off = phoff + i * phentsize
        if is64:
            p_type, p_flags, p_offset = struct.unpack_from(end + "IIQ", data, off)
            p_filesz = struct.unpack_from(end + "Q", data, off + 32)[0]
        else:
            p_type, p_offset = struct.unpack_from(end + "II", data, off)
            p_filesz, _, p_flags = struct.unpack_from(end + "III", data, off + 16)
        if p_type == PT_GNU_STACK and p_flags & PF_X:
            problems.append("executable stack (PT_GNU_STACK RWE)")
        if p_type == PT_DYNAMIC:
            fmt, size = (end + "qQ", 16) if is64 else (end + "iI", 8)
            for j in range(p_filesz // size):
                tag, val = struct.unpack_from(fmt, data, p_offset + j * size)
                if tag == DT_NULL:
                    break
                if tag == DT_TEXTREL or (tag == DT_FLAGS and val & DF_TEXTREL):
                    problems.append("text relocations (DT_TEXTREL)")
                    break
    return problems
