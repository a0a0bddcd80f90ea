"""Shader compilation: every shader compiles and belongs to a layer, the on-disk cache, #include,
GLSL errors that name file and line, and bindings checked by name."""

import re
from pathlib import Path

import numpy as np
import pytest

from vkbackprop import shaders
from vkbackprop.layers import embedding, gemm, gemm_shuffle
from vkbackprop.shaders import ShaderError, compile_shader, shader_root

PACKAGE = Path(__file__).resolve().parent.parent / "vkbackprop"
ALL_SHADERS = sorted(p.relative_to(shader_root()).as_posix() for p in shader_root().rglob("*.comp"))


def referenced_shaders() -> set:
    return {m for f in PACKAGE.rglob("*.py") for m in re.findall(r'"([\w/]+\.comp)"', f.read_text())}


# The -D defines of shaders that need some.
SHADER_DEFINES = {"embedding/backward.comp": {"G": embedding.BACKWARD_FEATURES},
                  "embedding/backward_chains.comp": {"G": embedding.BACKWARD_FEATURES}}


@pytest.mark.parametrize("rel", ALL_SHADERS)
def test_every_shader_compiles_and_declares_its_interface(rel):
    source = (shader_root() / rel).read_text()
    # (defines, the tile constants it must end with): includers of a GEMM core compile for the tile
    # family's cores (their constant_ids follow the includer's: checked 0..n-1 by compile_shader).
    if "gemm_shuffle.glsl" in source:
        variants = [(None, gemm_shuffle.tile_constants(gemm_shuffle.TILE))]
    elif "gemm.glsl" in source:
        variants = [(gemm.tile_defines(t), gemm.tile_constants(t)) for t in (gemm.TILE, gemm.SHARED_TILES[0])]
    else:
        variants = [(SHADER_DEFINES.get(rel), {})]
    for defines, core in variants:
        program = compile_shader(rel, defines)
        assert program.spirv[:4] == b"\x03\x02\x23\x07"  # SPIR-V magic
        assert program.bindings and all(b.reads or b.writes for b in program.bindings)
        assert all(n >= 1 for n in program.local_size)
        assert {c.name for c in program.constants[len(program.constants) - len(core):]} == set(core)


def test_every_shader_belongs_to_a_layer_and_every_named_shader_exists():
    used = referenced_shaders()
    assert set(ALL_SHADERS) == used, f"unused: {set(ALL_SHADERS) - used}; missing: {used - set(ALL_SHADERS)}"


def test_bindings_are_parsed_with_their_access():
    program = compile_shader("linear/forward.comp")
    assert [(b.name, b.reads, b.writes) for b in program.bindings] == [
        ("x", True, False), ("weight", True, False), ("bias", True, False), ("y", False, True)]
    assert [c.name for c in program.constants] == ["M", "N", "K", "HAS_BIAS", "RELU",    # the shader's,
                                                   "TM", "TN", "local_size_x", "local_size_y"]   # the core's
    assert [c.constant_id for c in program.constants] == list(range(9))
    sgd = compile_shader("sgd/update.comp")
    access = {b.name: (b.reads, b.writes) for b in sgd.bindings}
    assert access["param0"] == (True, True) and access["guard"] == (True, False)


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A private shader root and cache, and a count of compiler runs."""
    monkeypatch.setenv("VKBACKPROP_CACHE_DIR", str(tmp_path / "cache"))
    shaders._compile_cached.cache_clear()
    runs = []
    real = shaders._compile
    monkeypatch.setattr(shaders, "_compile", lambda *a: (runs.append(a[1]), real(*a))[1])
    root = tmp_path / "src"
    (root / "common").mkdir(parents=True)
    (root / "common" / "value.glsl").write_text("const float VALUE = 2.0;\n")
    (root / "k.comp").write_text(
        "#version 450\n#extension GL_GOOGLE_include_directive : require\n"
        '#include "common/value.glsl"\n'
        "layout(local_size_x = 4) in;\n"
        "layout(set = 0, binding = 0) writeonly buffer Out { float out_values[]; };\n"
        "void main() { out_values[gl_GlobalInvocationID.x] = VALUE; }\n")
    yield root, runs
    shaders._compile_cached.cache_clear()


def test_cache_hit_and_include_change(scratch):
    root, runs = scratch
    first = compile_shader("k.comp", root=root)
    shaders._compile_cached.cache_clear()           # a new process: only the disk cache remains
    assert compile_shader("k.comp", root=root).spirv == first.spirv and len(runs) == 1
    (root / "common" / "value.glsl").write_text("const float VALUE = 3.0;\n")
    shaders._compile_cached.cache_clear()
    changed = compile_shader("k.comp", root=root)
    assert len(runs) == 2 and changed.spirv != first.spirv
    compile_shader("k.comp", {"UNUSED": 1}, root=root)   # defines are part of the key
    assert len(runs) == 3


def test_shader_runs_with_included_constant(scratch, device):
    root, _ = scratch
    program = compile_shader("k.comp", root=root)
    out = device.buffer("out", (8,), staged=True)
    from vkbackprop.schedule import Recorder
    rec = Recorder(device)
    rec.dispatch(device.dispatch(program, {"out_values": out}, (2, 1, 1)))
    rec.download([out])
    rec.sequence.eval()
    np.testing.assert_array_equal(out.host_view(), np.full(8, 2.0, np.float32))


def test_constants_numbered_by_an_include_and_a_workgroup_size_set_by_constants(scratch, device):
    """An included core numbers its constants after its includer's (`FIRST + i`, summed after the
    preprocessor) and may take its workgroup size from constants (local_size_x_id): bound by name
    ("local_size_x"), they size the dispatch's workgroups. A core numbered over its includer's
    constants is refused."""
    root, _ = scratch
    (root / "common" / "core.glsl").write_text(
        "layout(constant_id = FIRST) const uint SCALE = 1;\n"
        "layout(local_size_x_id = FIRST + 1) in;\n"
        "void main() { out_values[gl_GlobalInvocationID.x] = float(gl_WorkGroupSize.x * SCALE + OFFSET); }\n")
    includer = ("#version 450\n#extension GL_GOOGLE_include_directive : require\n"
                "layout(constant_id = 0) const uint OFFSET = 0;\n"
                "layout(set = 0, binding = 0) writeonly buffer Out { float out_values[]; };\n"
                "#define FIRST FIRST_ID\n#include \"common/core.glsl\"\n")
    (root / "sized.comp").write_text(includer.replace("FIRST_ID", "1"))
    program = compile_shader("sized.comp", root=root)
    assert [(c.constant_id, c.name) for c in program.constants] == [(0, "OFFSET"), (1, "SCALE"), (2, "local_size_x")]
    out = device.buffer("out", (12,), staged=True)
    from vkbackprop.schedule import Recorder
    rec = Recorder(device)
    rec.dispatch(device.dispatch(program, {"out_values": out}, (2, 1, 1), dict(OFFSET=5, SCALE=3, local_size_x=6)))
    rec.download([out])
    rec.sequence.eval()
    np.testing.assert_array_equal(out.host_view(), np.full(12, 6 * 3 + 5, np.float32))   # 2 workgroups of 6

    (root / "clash.comp").write_text(includer.replace("FIRST_ID", "0"))
    with pytest.raises(ShaderError, match="constant_id"):
        compile_shader("clash.comp", root=root)
    (root / "gap.comp").write_text(includer.replace("FIRST_ID", "2"))
    with pytest.raises(ShaderError, match=r"constant_ids must be numbered 0..n-1, got \[0, 2, 3\]"):
        compile_shader("gap.comp", root=root)


def test_glsl_error_names_file_and_line(scratch):
    root, _ = scratch
    (root / "bad.comp").write_text("#version 450\nlayout(local_size_x = 1) in;\nvoid main() {\n  undefined_name = 1;\n}\n")
    with pytest.raises(ShaderError) as e:
        compile_shader("bad.comp", root=root)
    assert e.value.line == 4 and e.value.file.endswith("bad.comp")
    assert "bad.comp:4" in str(e.value) and "undefined_name" in str(e.value)


def test_error_inside_an_include_names_the_included_file(scratch):
    root, _ = scratch
    (root / "common" / "broken.glsl").write_text("// fine\nfloat broken() { return nope; }\n")
    (root / "uses.comp").write_text('#version 450\n#extension GL_GOOGLE_include_directive : require\n'
                                    '#include "common/broken.glsl"\nlayout(local_size_x = 1) in;\nvoid main() {}\n')
    with pytest.raises(ShaderError) as e:
        compile_shader("uses.comp", root=root)
    assert e.value.file.endswith("broken.glsl") and e.value.line == 2


def test_missing_include_and_bad_binding_convention(scratch):
    root, _ = scratch
    (root / "inc.comp").write_text('#version 450\n#include "nowhere.glsl"\nlayout(local_size_x = 1) in;\nvoid main() {}\n')
    with pytest.raises(ShaderError, match="nowhere.glsl"):
        compile_shader("inc.comp", root=root)
    (root / "gap.comp").write_text("#version 450\nlayout(local_size_x = 1) in;\n"
                                   "layout(set = 0, binding = 1) buffer A { float a[]; };\nvoid main() { a[0] = 1.0; }\n")
    with pytest.raises(ShaderError, match="numbered 0..n-1"):
        compile_shader("gap.comp", root=root)


def test_interface_is_read_after_the_preprocessor_and_texel_bindings_are_read_only(scratch):
    root, _ = scratch
    (root / "t.comp").write_text(
        '#version 450\n#extension GL_GOOGLE_include_directive : require\n'
        '#include "common/vec4_input.glsl"\nlayout(local_size_x = 1) in;\n'
        'VEC4_INPUT(0, Src, src);\n'
        'layout(set = 0, binding = 1) uniform usamplerBuffer index;\n'
        'layout(set = 0, binding = 2) writeonly buffer Dst { vec4 dst[]; };\n'
        'void main() { dst[0] = LOAD4(src, texelFetch(index, 0).x); }\n')
    (root / "common" / "vec4_input.glsl").write_text((shader_root() / "common" / "vec4_input.glsl").read_text())
    texel = compile_shader("t.comp", {"TEXEL_READS": 1}, root=root).bindings
    assert [(b.name, b.element_type, b.reads, b.writes, b.texel) for b in texel] == [
        ("src", "float", True, False, True), ("index", "uint", True, False, True), ("dst", "vec4", False, True, False)]
    storage = compile_shader("t.comp", {"TEXEL_READS": 0}, root=root).bindings
    assert (storage[0].name, storage[0].element_type, storage[0].texel) == ("src", "vec4", False)

    (root / "odd.comp").write_text("#version 450\nlayout(local_size_x = 1) in;\n"
                                   "layout(set = 0, binding = 0) uniform highp samplerBuffer s;\n"
                                   "layout(set = 0, binding = 1) buffer D { float d[]; };\n"
                                   "void main() { d[0] = texelFetch(s, 0).x; }\n")
    with pytest.raises(ShaderError, match="every texel buffer must look like"):
        compile_shader("odd.comp", root=root)


def test_texel_bindings_need_a_buffer_of_whole_quads(device):
    program = compile_shader("linear/forward_shuffle.comp", dict(TEXEL_READS=1))
    assert [b.name for b in program.bindings if b.texel] == ["x", "weight"]
    buffers = {"x": device.buffer("x", (1, 3)), "weight": device.buffer("w", (4, 3)),
               "bias": device.buffer("b", 4), "y": device.buffer("y", (1, 4))}
    with pytest.raises(ValueError, match="texel binding 'x' needs 1..* vec4 quads but buffer 'x' holds 3 values"):
        device.dispatch(program, buffers, (1, 1, 1), dict(M=1, N=4, K=3))


def test_dispatch_checks_bindings_by_name_and_type(device):
    x, w, b, y = (device.buffer(n, (4, 4)) for n in "xwby")
    args = dict(groups=(1, 1, 1), constants=dict(M=4, N=4, K=4))
    program = compile_shader("linear/forward.comp")
    with pytest.raises(ValueError, match=r"missing \['weight'\], unexpected \['w'\]"):
        device.dispatch(program, {"x": x, "w": w, "bias": b, "y": y}, **args)
    labels = device.buffer("labels", (4, 4), np.int32)
    with pytest.raises(ValueError, match="binding 'x' is float"):
        device.dispatch(program, {"x": labels, "weight": w, "bias": b, "y": y}, **args)
    with pytest.raises(ValueError, match="unknown specialization constants"):
        device.dispatch(program, {"x": x, "weight": w, "bias": b, "y": y}, (1, 1, 1), dict(Q=1))
