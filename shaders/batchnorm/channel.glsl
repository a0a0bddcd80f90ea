// Batch norm's view of (batch, CHANNELS, SPATIAL) activations, SPATIAL the product of the dims after
// the channel (1 for BatchNorm1d on (C,) samples). Needs the spec constants CHANNELS and SPATIAL.

// Quads of one plane a per-channel reduction's invocation reads in a row where SPATIAL % 4 == 0:
// 4 where a plane's quads split into fours, so a loop iteration's index arithmetic and lavapipe's
// per-iteration cost serve four quads (in the ResNet benchmark's step: backward_reduce 13.1 -> 10.0
// ms, statistics 8.3 -> 7.6). A run never crosses a plane.
const uint REDUCE_RUN = (SPATIAL / 4) % 4 == 0 ? 4 : 1;

// Flat index of the k-th of a channel's batch * SPATIAL values, in (sample, position) order.
uint channel_value(uint c, uint k) {
    return ((k / SPATIAL) * CHANNELS + c) * SPATIAL + k % SPATIAL;
}

// The channel of flat element i.
uint channel_of(uint i) {
    return (i / SPATIAL) % CHANNELS;
}

// The channels of quad q's four elements (flat elements 4q .. 4q + 3).
uvec4 quad_channels(uint q) {
    return uvec4(channel_of(4 * q), channel_of(4 * q + 1), channel_of(4 * q + 2), channel_of(4 * q + 3));
}

// A per-channel value of each of the channels cs, by its accessor `value_of(c)`.
#define GATHER(value_of, cs) vec4(value_of(cs.x), value_of(cs.y), value_of(cs.z), value_of(cs.w))

// The channel a per-channel workgroup reduces (workgroup counts above 65,535 fold into y).
uint workgroup_channel() {
    return gl_WorkGroupID.x + gl_WorkGroupID.y * gl_NumWorkGroups.x;
}
