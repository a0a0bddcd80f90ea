#version 450
#extension GL_GOOGLE_include_directive : require
// dst[DST_OFFSET + i] = src[SRC_OFFSET + i] for i < NUMEL. Device-only memory cannot be written
// from the host: a checkpoint's optimizer state is uploaded into a staged scratch buffer and copied
// into the state buffer with this; data-parallel training packs gradients into one flat buffer per
// bucket (and back) with offsets.

layout(constant_id = 0) const uint NUMEL = 1;
layout(constant_id = 1) const uint SRC_OFFSET = 0;
layout(constant_id = 2) const uint DST_OFFSET = 0;

layout(set = 0, binding = 0) readonly buffer Src { float src[]; };
layout(set = 0, binding = 1) writeonly buffer Dst { float dst[]; };

layout(local_size_x = 256) in;
#include "../common/index.glsl"

void main() {
    const uint i = flat_index();
    if (i < NUMEL) dst[DST_OFFSET + i] = src[SRC_OFFSET + i];
}
