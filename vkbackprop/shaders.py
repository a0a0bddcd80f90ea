"""GLSL compute shaders -> SPIR-V with glslangValidator, cached on disk by content hash.

A `Program` also carries what its source declares (after the preprocessor, so `#if` and macros
count), so the rest of the package binds buffers and specialization constants *by name* and derives
read/write sets for hazard tracking from the `readonly` / `writeonly` qualifiers, instead of
trusting positions:

    layout(set = 0, binding = 2) readonly buffer Weight { float weight[]; };
    layout(set = 0, binding = 3) uniform samplerBuffer x;   // a texel binding: read-only vec4s
    layout(constant_id = 0) const uint M = 1;
    layout(local_size_x_id = 4, local_size_y_id = 5) in;   // constants "local_size_x", "local_size_y"

A constant_id may be a sum of literals (`GEMM_CONSTANTS + 2` after the preprocessor), so an
included core numbers its constants after its includer's.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from importlib import resources
from pathlib import Path


class ShaderError(Exception):
    """A shader failed to compile or does not follow the binding conventions."""

    def __init__(self, message: str, file: str | None = None, line: int | None = None):
        self.file, self.line = file, line
        where = f"{file}:{line}: " if file and line else (f"{file}: " if file else "")
        super().__init__(where + message)


@dataclass(frozen=True)
class Binding:
    index: int
    name: str          # the array name inside the block; what Python binds by
    element_type: str  # float, int, uint
    reads: bool
    writes: bool
    texel: bool = False  # a uniform texel buffer (read with texelFetch, one vec4 per texel)


@dataclass(frozen=True)
class SpecConstant:
    constant_id: int
    name: str
    glsl_type: str     # uint, int, float, bool
    default: str


@dataclass(frozen=True)
class Program:
    path: str                          # relative to the shader root, e.g. "linear/forward.comp"
    spirv: bytes
    bindings: tuple[Binding, ...]      # sorted by index, indices 0..n-1
    constants: tuple[SpecConstant, ...]  # sorted by constant_id, ids 0..n-1
    local_size: tuple[int, int, int]   # as declared; a size set by a constant (local_size_x_id) is 1 here
    defines: tuple = ()                # the -D defines it was compiled with, sorted (name, value) pairs

    def slots(self, stem: str) -> int:
        """How many numbered bindings <stem>0, <stem>1, ... the program declares: the buffers one
        dispatch of a multi-buffer (foreach-style) shader takes."""
        names = {b.name for b in self.bindings}
        count = 0
        while f"{stem}{count}" in names:
            count += 1
        return count


def shader_root() -> Path:
    """The top-level shaders/ folder of a checkout, or the copy shipped inside the wheel."""
    checkout = Path(__file__).resolve().parent.parent / "shaders"
    if checkout.is_dir():
        return checkout
    return Path(str(resources.files("vkbackprop.shaders_data")))


def cache_dir() -> Path:
    root = os.environ.get("VKBACKPROP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "vkbackprop")
    path = Path(root) / "spirv"
    path.mkdir(parents=True, exist_ok=True)
    return path


_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"', re.M)
_BUFFER = re.compile(
    r"layout\s*\(([^)]*)\)\s*((?:(?:readonly|writeonly|restrict|coherent|volatile)\s+)*)buffer\s+\w+\s*"
    r"\{\s*(\w+)\s+(\w+)\s*\[\s*\]\s*;\s*\}\s*;")
_ANY_BUFFER = re.compile(r"\bbuffer\s+\w+\s*\{")
_TEXEL = re.compile(r"layout\s*\(([^)]*)\)\s*uniform\s+([iu]?)samplerBuffer\s+(\w+)\s*;")
_ANY_TEXEL = re.compile(r"\b[iu]?samplerBuffer\b")
_TEXEL_TYPES = {"": "float", "i": "int", "u": "uint"}
_CONSTANT = re.compile(
    r"layout\s*\(\s*constant_id\s*=\s*([\d\s+]+)\)\s*const\s+(\w+)\s+(\w+)\s*=\s*([^;]+);")
_LOCAL_SIZE_ID = re.compile(r"\blocal_size_([xyz])_id\s*=\s*([\d\s+]+)")
_COMMENT = re.compile(r"//[^\n]*|/\*.*?\*/", re.S)


def _layout_args(text: str) -> dict[str, str]:
    args = {}
    for part in text.split(","):
        key, _, value = part.partition("=")
        args[key.strip()] = value.strip()
    return args


def _literal_sum(text: str) -> int:
    """A constant_id as the preprocessor leaves it: `4` or `4 + 2`."""
    return sum(int(term) for term in text.split("+"))


def _resolve_include(name: str, including: Path, root: Path) -> Path:
    for base in (including.parent, root):
        candidate = (base / name).resolve()
        if candidate.is_file():
            return candidate
    raise ShaderError(f'#include "{name}" not found', str(including))


def _sources(path: Path, root: Path, seen: dict[Path, str] | None = None) -> dict[Path, str]:
    """The file and everything it includes, transitively, in a stable order."""
    seen = {} if seen is None else seen
    if path in seen:
        return seen
    text = path.read_text()
    seen[path] = text
    for name in _INCLUDE.findall(_COMMENT.sub("", text)):
        _sources(_resolve_include(name, path, root), root, seen)
    return seen


@functools.cache
def _compiler() -> tuple[str, str]:
    exe = shutil.which("glslangValidator")
    if exe is None:
        raise ShaderError("glslangValidator not found on PATH (Debian package glslang-tools)")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout
    return exe, version


def _parse_interface(rel: str, text: str) -> tuple[tuple[Binding, ...], tuple[SpecConstant, ...]]:
    code = _COMMENT.sub("", text)
    bindings = []
    for layout, quals, etype, name in _BUFFER.findall(code):
        args = _layout_args(layout)
        if args.get("set", "0") != "0" or "binding" not in args:
            raise ShaderError(f"buffer '{name}' must be declared with layout(set = 0, binding = N)", rel)
        bindings.append(Binding(int(args["binding"]), name, etype,
                                reads="writeonly" not in quals, writes="readonly" not in quals))
    if len(bindings) != len(_ANY_BUFFER.findall(code)):
        raise ShaderError("every storage buffer must look like "
                          "'layout(set = 0, binding = N) [readonly|writeonly] buffer B { T name[]; };'", rel)
    texels = _TEXEL.findall(code)
    if len(texels) != len(_ANY_TEXEL.findall(code)):
        raise ShaderError("every texel buffer must look like "
                          "'layout(set = 0, binding = N) uniform [i|u]samplerBuffer name;'", rel)
    for layout, prefix, name in texels:
        args = _layout_args(layout)
        if args.get("set", "0") != "0" or "binding" not in args:
            raise ShaderError(f"texel buffer '{name}' must be declared with layout(set = 0, binding = N)", rel)
        bindings.append(Binding(int(args["binding"]), name, _TEXEL_TYPES[prefix],
                                reads=True, writes=False, texel=True))
    bindings.sort(key=lambda b: b.index)
    if [b.index for b in bindings] != list(range(len(bindings))):
        raise ShaderError(f"bindings must be numbered 0..n-1, got {[b.index for b in bindings]}", rel)
    if len({b.name for b in bindings}) != len(bindings):
        raise ShaderError("two bindings share a name", rel)

    constants = [SpecConstant(_literal_sum(i), n, t, d.strip()) for i, t, n, d in _CONSTANT.findall(code)]
    constants += [SpecConstant(_literal_sum(i), f"local_size_{axis}", "uint", "1")
                  for axis, i in _LOCAL_SIZE_ID.findall(code)]
    constants.sort(key=lambda c: c.constant_id)
    if [c.constant_id for c in constants] != list(range(len(constants))):
        raise ShaderError(f"constant_ids must be numbered 0..n-1, got {[c.constant_id for c in constants]}", rel)

    return tuple(bindings), tuple(constants)


def _local_size(rel: str, spirv: bytes) -> tuple[int, int, int]:
    """The workgroup size, read from the SPIR-V (OpExecutionMode LocalSize) so macros are resolved."""
    words = memoryview(spirv).cast("I")
    i = 5  # after the header
    while i < len(words):
        count, opcode = words[i] >> 16, words[i] & 0xFFFF
        if opcode == 16 and words[i + 2] == 17:  # OpExecutionMode <entry> LocalSize x y z
            return tuple(words[i + 3:i + 6])
        i += max(count, 1)
    raise ShaderError("no literal local_size_x/y/z declared", rel)


_ERROR_LINE = re.compile(r"^ERROR:\s*(.+?):(\d+):\s*(.*)$", re.M)


def _run_compiler(exe: str, path: Path, root: Path, defines: dict[str, object], args: list[str]) -> str:
    """glslangValidator with the include root and -D defines; its stdout, or a ShaderError naming the line."""
    cmd = [exe, *args, "-I" + str(root)] + [f"-D{k}={v}" for k, v in sorted(defines.items())] + [str(path)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        log = proc.stdout + proc.stderr
        first = _ERROR_LINE.search(log)
        if first:
            raise ShaderError(first.group(3).strip() + "\n" + log.strip(), first.group(1), int(first.group(2)))
        raise ShaderError(log.strip() or f"glslangValidator failed ({proc.returncode})", str(path))
    return proc.stdout


def _compile(exe: str, path: Path, root: Path, defines: dict[str, object], spirv: Path, source: Path) -> None:
    """SPIR-V into `spirv`, and the preprocessed source (what the interface is read from) into `source`."""
    source.write_text(_run_compiler(exe, path, root, defines, ["-E"]))
    _run_compiler(exe, path, root, defines, ["-V", "--target-env", "vulkan1.1", "-o", str(spirv)])


def compile_shader(rel: str, defines: dict[str, object] | None = None, root: Path | None = None) -> Program:
    """Compile shaders/<rel> (with -D defines) to SPIR-V, reusing the on-disk cache when nothing changed."""
    return _compile_cached(rel, tuple(sorted((defines or {}).items())), str(root or shader_root()))


@functools.cache
def _compile_cached(rel: str, defines: tuple, root_str: str) -> Program:
    root = Path(root_str)
    path = (root / rel).resolve()
    if not path.is_file():
        raise ShaderError("shader file not found", str(path))
    sources = _sources(path, root)
    exe, version = _compiler()

    digest = hashlib.sha256(version.encode())
    digest.update(repr(defines).encode())
    for file, text in sources.items():
        digest.update(str(file.relative_to(root) if file.is_relative_to(root) else file).encode())
        digest.update(text.encode())
    cached = cache_dir() / f"{digest.hexdigest()[:32]}.spv"
    preprocessed = cached.with_suffix(".glsl")
    if not (cached.is_file() and preprocessed.is_file()):
        # Compile beside the cache entries and rename, SPIR-V last: concurrent processes never see
        # half a file.
        tmp, tmp_source = cached.with_suffix(f".{os.getpid()}.tmp"), cached.with_suffix(f".{os.getpid()}.tmpglsl")
        try:
            _compile(exe, path, root, dict(defines), tmp, tmp_source)
            os.replace(tmp_source, preprocessed)
            os.replace(tmp, cached)
        finally:
            tmp.unlink(missing_ok=True)
            tmp_source.unlink(missing_ok=True)

    bindings, constants = _parse_interface(rel, preprocessed.read_text())
    spirv = cached.read_bytes()
    return Program(rel, spirv, bindings, constants, _local_size(rel, spirv), defines)
